import CorralAPI
public import CorralCore
import CorralEngine
import CorralSystemd
import Logging
import ServiceLifecycle

/// The one line systemd shows for the service (`STATUS=`, `systemctl status`):
/// how many agents run and are suspended, and the last enforcement action.
public struct ServiceStatus: Equatable, Sendable {
    public var running = 0
    public var suspended = 0
    /// "throttle a1 cpu: ok" — the last action and its real outcome.
    public var lastAction: String?
    /// Set after a reload that failed, until the next one succeeds.
    public var configurationProblem: String?
    /// While the state database cannot be written: records waiting, and why.
    public var storeProblem: String?

    public init() {}

    public mutating func count(_ agents: [AgentRecord]) {
        running = agents.count { $0.state == .running || $0.state == .starting }
        suspended = agents.count { $0.state == .suspended }
    }

    public mutating func note(_ record: EnforcementRecord) {
        let outcome = record.succeeded ? "ok" : "failed"
        lastAction = "\(record.action.rawValue) \(record.agent) \(record.resource.rawValue): \(outcome) at \(record.at.clockTime)"
    }

    /// One line, as STATUS= wants it.
    public var line: String {
        var parts = ["\(running) agent\(running == 1 ? "" : "s") running, \(suspended) suspended"]
        if let lastAction { parts.append("last action: \(lastAction)") }
        if let configurationProblem { parts.append("configuration NOT reloaded: \(configurationProblem)") }
        if let storeProblem { parts.append("state database NOT writable: \(storeProblem)") }
        return parts.joined(separator: "; ").split(separator: "\n").joined(separator: " ")
    }
}

extension Timestamp {
    /// HH:MM:SS (UTC), for a status line.
    fileprivate var clockTime: String {
        let seconds = Int(milliseconds / 1000) % 86_400
        let pad = { (value: Int) in value < 10 ? "0\(value)" : "\(value)" }
        return "\(pad(seconds / 3600)):\(pad(seconds / 60 % 60)):\(pad(seconds % 60)) UTC"
    }
}

/// Keeps systemd's STATUS= current: notes enforcement actions from the event
/// stream, recounts the agents every 2 s, sends the line when it changed. The reload service reports
/// its outcome through `reloaded(problem:)`.
/// Owner of `status`: this actor.
actor ServiceStatusReporter {
    private let engine: Engine
    private var status = ServiceStatus()
    private var sent: String?

    init(engine: Engine) { self.engine = engine }

    func reloaded(problem: String?) {
        status.configurationProblem = problem
        publish()
    }

    func noteEvent(_ event: CorralEvent) {
        if event.kind == .enforcement, let record = event.record { status.note(record) }
    }

    func refresh() async {
        status.count(await engine.liveAgents())
        let backlog = engine.storeBacklog
        status.storeProblem =
            backlog.pendingSteps > 0
            ? "\(backlog.pendingRecords) records waiting in memory (\(backlog.error?.split(separator: "\n").first ?? "unknown error"))"
            : nil
        publish()
    }

    private func publish() {
        let line = status.line
        guard line != sent else { return }
        sent = line
        Systemd.notify("STATUS=\(line)")
    }
}

/// Runs the reporter: the event stream and a 2 s refresh, until shutdown.
/// (A service that returns before the shutdown fails the whole group.)
struct StatusService: Service {
    let reporter: ServiceStatusReporter
    let hub: EventHub

    func run() async throws {
        let events = hub.subscribe(agent: nil)
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await event in events where event.kind == .enforcement { await reporter.noteEvent(event) }
                }
                group.addTask {
                    while !Task.isCancelled {
                        await reporter.refresh()
                        do { try await Task.sleep(for: .seconds(2)) } catch { return }
                    }
                }
                // The event stream ends when the shutdown begins (EventStreamsService), the
                // refresh when this service is told to stop: both, before returning.
                await group.waitForAll()
            }
        }
    }
}
