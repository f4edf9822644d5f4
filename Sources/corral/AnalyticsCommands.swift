import ArgumentParser
import CorralAPI
import CorralClient
import CorralCore

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

struct RecommendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recommend",
        abstract: "Quota recommendations from the daemon's analytics: increase, decrease, optimize_code, change_group.",
        discussion: """
            The daemon analyses every agent's usage every intervals.analytics (5 min) over intervals.analytics_window (1 h).
            Examples: corral recommend; corral recommend crawler --run; corral recommend crawler --apply memory
            """)
    @OptionGroup var options: ClientOptions
    @Argument(help: "Only this agent.") var agent: String?
    @Flag(name: .customLong("run"), help: "Run the analysis now instead of showing the last run's.") var runNow = false
    @Option(
        name: .long, help: ArgumentHelp("Apply the agent's increase or decrease for RESOURCE as a quota override.", valueName: "RESOURCE"))
    var apply: String?

    func validate() throws {
        if let agent { try ensureValidID(agent) }
        if let apply {
            guard agent != nil else { throw ValidationError("--apply needs the agent: corral recommend ID --apply \(apply)") }
            guard Resource(rawValue: apply) != nil else {
                throw ValidationError(
                    "--apply '\(apply)': not a resource; use one of \(Resource.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }
    }

    func run() throws {
        if let apply, let agent, let resource = Resource(rawValue: apply) {
            let record = try options.call(
                "POST", "/v1/agents/\(agent)/recommendations/apply", body: ApplyRequest(resource: resource), as: AgentRecord.self)
            if options.json { return try printJSON(record) }
            let limit = record.limits[Resource(rawValue: apply)!]
            writeOut(
                "applied to \(agent): \(apply) soft \(limit.map { Resource(rawValue: apply)!.unit.format($0.soft) } ?? "-"), hard \(limit.map { Resource(rawValue: apply)!.unit.format($0.hard) } ?? "-")\n"
            )
            return
        }
        let ran = runNow ? try options.call("POST", "/v1/analytics/run", as: RecommendationList.self).recommendations : nil
        let recommendations: [Recommendation]
        if let ran, agent == nil {
            recommendations = ran
        } else {
            // One agent's are asked for by name even after a run: the daemon answers 404 for an agent it does not
            // know, where the run's list would just have none for it.
            recommendations = try options.call(
                "GET", "/v1/recommendations" + (agent.map { "?agent=\($0)" } ?? ""), as: RecommendationList.self
            )
            .recommendations
        }
        if options.json { return try printJSON(recommendations) }
        if recommendations.isEmpty {
            writeOut(
                "no recommendations\(agent.map { " for \($0)" } ?? "") (the analysis needs a few minutes of samples; --run runs it now)\n")
            return
        }
        let rows = recommendations.map { item -> [String] in
            let unit = item.resource.unit
            let change =
                item.suggested.map {
                    "soft \(unit.format(item.current.soft)) → \(unit.format($0.soft)), hard \(unit.format(item.current.hard)) → \(unit.format($0.hard))"
                } ?? item.group.map { "group → \($0)" } ?? "-"
            return [
                item.agent, item.resource.rawValue, item.kind.rawValue, change, item.pattern.rawValue,
                "\(Int((item.confidence * 100).rounded()))%", item.rationale,
            ]
        }
        writeOut(table(["AGENT", "RESOURCE", "RECOMMENDATION", "CHANGE", "PATTERN", "CONFIDENCE", "WHY"], rows))
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Usage per agent and resource: mean, percentiles, peak, pattern, time over limits, actions.",
        discussion: "Examples: corral report; corral report --agent crawler --since 30m; corral report --format html --output report.html")
    enum Format: String, ExpressibleByArgument, CaseIterable {
        case table, json, html
    }
    @OptionGroup var options: ClientOptions
    @Option(name: .long, help: "Only this agent.") var agent: String?
    @Option(
        name: .long,
        help: ArgumentHelp("The window: the last DURATION, more than zero; \(Quantity.acceptedDurations).", valueName: "DURATION"))
    var since = "1h"
    @Option(name: .long, help: "table (default), json or html (one self-contained page with charts).") var format: Format = .table
    @Option(name: .long, help: ArgumentHelp("Write to FILE instead of standard output.", valueName: "FILE")) var output: String?

    func validate() throws {
        if let agent { try ensureValidID(agent) }
        switch Quantity.parseDuration(since) {
        case .failure(let error): throw ValidationError("--since '\(since)': \(error.description)")
        case .success(let window) where window <= .zero:
            throw ValidationError("--since '\(since)': the window must be longer than zero (e.g. 30m, 1h, 2d)")
        case .success: break
        }
    }

    func run() throws {
        guard case .success(let window) = Quantity.parseDuration(since) else { return }
        var query = ["since=\(queryValue((Timestamp.now() + (Duration.zero - window)).iso8601))"]
        if let agent { query.append("agent=\(agent)") }
        let report = try options.call("GET", "/v1/report?" + query.joined(separator: "&"), as: UsageReport.self)
        let text: String
        switch options.json ? .json : format {
        case .json: text = try encodeJSON(report, pretty: true)
        case .html: text = ReportHTML.render(report)
        case .table:
            var rows: [[String]] = []
            for agent in report.agents {
                for resource in agent.resources {
                    let unit = resource.unit
                    let stats = resource.statistics
                    rows.append([
                        agent.agent, resource.resource.rawValue, unit.format(stats.mean), unit.format(stats.p90), unit.format(stats.p99),
                        unit.format(stats.maximum), "\(unit.format(resource.soft)) / \(unit.format(resource.hard))",
                        resource.pattern.rawValue,
                        "\(Int(resource.secondsOverSoft)) s / \(Int(resource.secondsOverHard)) s",
                        agent.actions.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "),
                    ])
                }
            }
            text = table(
                ["AGENT", "RESOURCE", "MEAN", "P90", "P99", "PEAK", "SOFT / HARD", "PATTERN", "OVER SOFT / HARD", "ACTIONS"], rows)
        }
        if let output {
            do {
                try text.write(toFile: output, atomically: true, encoding: .utf8)
            } catch {
                throw fail("cannot write \(output): \(error)")
            }
            printError("corral: report written to \(output)")
        } else {
            writeOut(text.hasSuffix("\n") ? text : text + "\n")
        }
    }
}
