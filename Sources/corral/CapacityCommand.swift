import ArgumentParser
import CorralAPI
import CorralClient
import CorralCore

/// `corral capacity`: per resource, what is left (allocatable − used), from the daemon.
struct CapacityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "capacity",
        abstract: "What the host has, keeps for the system, lets agents have, has promised them and they use now.",
        discussion: """
            Per resource (memory, cpu in percent of one CPU, processes): HOST is the host's (within the limits of \
            the cgroup root's ancestors), RESERVED what the system reservation keeps, ALLOCATABLE what all agents \
            together may have (the root's own limit), COMMITTED the sums of the live agents' hard and soft limits, \
            IN USE their latest usage and AVAILABLE = ALLOCATABLE − IN USE. Then the same per group, against its \
            totals. A new agent whose hard limits would commit more than its group's total or the allocatable is \
            started with a warning (admission: allow, the default) or refused (admission: refuse).
            """)
    @OptionGroup var options: ClientOptions

    func run() throws {
        let report = try options.call("GET", "/v1/capacity", as: CapacityReport.self)
        if options.json { return try printJSON(report) }
        let rows = report.resources.map { line -> [String] in
            let unit = line.resource.unit
            return [
                line.resource.rawValue, unit.format(line.host), unit.format(line.reserved), unit.format(line.allocatable),
                "\(unit.format(line.committedHard)) / \(unit.format(line.committedSoft))", unit.format(line.used),
                unit.format(line.available),
            ]
        }
        var text = table(["RESOURCE", "HOST", "RESERVED", "ALLOCATABLE", "COMMITTED hard/soft", "IN USE", "AVAILABLE"], rows)
        let groupRows = report.resources.flatMap { line in
            line.groups.map { group -> [String] in
                let unit = line.resource.unit
                return [
                    group.group, line.resource.rawValue, String(group.agents), group.total.map { unit.format($0) } ?? "-",
                    "\(unit.format(group.committedHard)) / \(unit.format(group.committedSoft))", unit.format(group.used),
                ]
            }
        }
        text += "\n" + table(["GROUP", "RESOURCE", "AGENTS", "TOTAL", "COMMITTED hard/soft", "IN USE"], groupRows)
        text += "\nadmission: \(report.admission.rawValue)\n"
        if let host = report.hostPressure {
            var line = "host pressure: \(host.enabled ? host.phase.rawValue : "off")"
            if let since = host.since { line += " since \(since)" }
            if let reading = host.reading {
                line +=
                    " (memory \(Quantity.formatBytes(reading.memoryUsed)) of \(Quantity.formatBytes(reading.memoryAllocatable)), \(Int((reading.memoryShare * 100).rounded()))%"
                    + (reading.memory.map { ", PSI memory some \($0.some.avg10)% full \($0.full?.avg10 ?? 0)%" } ?? "") + ")"
            }
            text += line + "\n"
            for step in host.steps { text += "  \(step.at)  \(step.agent) \(step.stage.rawValue)\n" }
        }
        writeOut(text)
    }
}
