public import CorralAPI
import CorralCore
import CorralEngine
import CorralJournal
public import Logging
import ServiceLifecycle

/// The daemon's log of what happens to agents: each engine event that an
/// operator looks for becomes one log entry with a fixed `message_id` per kind
/// and the agent, group, resource, action and outcome as metadata. Through the
/// journal handler they are the fields `MESSAGE_ID`, `CORRAL_AGENT`,
/// `CORRAL_GROUP`, `CORRAL_RESOURCE`, `CORRAL_ACTION`, `CORRAL_OUTCOME`:
///
///     journalctl -u corral CORRAL_AGENT=crawler
///     journalctl -u corral MESSAGE_ID=5778c11af50240aea154c588b621e74c   # every enforcement action
public enum EventLog {
    /// One fixed id per kind of entry (128-bit, as `journalctl MESSAGE_ID=` wants).
    public enum MessageID {
        public static let violation = "708e223543014141b1567f12fdf003aa"
        public static let action = "5778c11af50240aea154c588b621e74c"
        public static let agentStarted = "b27a35b9639f43cf839ef638a0e0ca66"
        public static let agentEnded = "4b1ce0ed8a8749ebbb9f8ea8f2bcc4dc"
        public static let agentReattached = "678b58bddd6841a29f52cfe299b635f6"
        public static let reload = "48c463a1e4064487961275d505cddcdc"
        public static let degradation = "3e229a8c9d6f48cb8b8b21720ba18369"
        public static let suspension = "9a3b0d4ce7a04b56b856aab5d5eb5aef"
        public static let seccompDenied = "7be930787e0243c5922aa2179f03ee53"
        public static let hostPressure = "25ae7376b93046ae8dabe0163bc2f405"
        /// The daemon's own state: a store it cannot write, a cgroup it cannot remove, a restore.
        public static let daemon = "e3014b63a3c44690a58c8394f31696ae"
    }

    /// What to log for `event`, or nil for the chatty kinds (usage reports,
    /// acknowledgements, notices the agent itself is sent).
    public static func entry(_ event: CorralEvent, group: String?) -> (level: Logger.Level, message: String, metadata: Logger.Metadata)? {
        var metadata: Logger.Metadata = [:]
        if let agent = event.agent { metadata["agent"] = .string(agent) }
        if let group { metadata["group"] = .string(group) }
        if let resource = event.resource ?? event.violation?.resource ?? event.record?.resource ?? event.plan?.resource {
            metadata["resource"] = .string(resource.rawValue)
        }
        let level: Logger.Level
        let id: String
        switch event.kind {
        case .violation:
            (level, id) = (.notice, MessageID.violation)
        case .enforcement:
            guard let record = event.record else { return nil }
            metadata["action"] = .string(record.action.rawValue)
            metadata["outcome"] = .string(record.succeeded ? "succeeded" : "failed")
            (level, id) = (record.succeeded ? .notice : .error, MessageID.action)
        case .agentStarted:
            (level, id) = (.info, MessageID.agentStarted)
        case .agentExited, .agentRemoved:
            (level, id) = (.info, MessageID.agentEnded)
        case .agentReattached:
            (level, id) = (.info, MessageID.agentReattached)
        case .degradationStrategy, .recoveryStage:
            if let plan = event.plan { metadata["level"] = .string(plan.level.rawValue) }
            (level, id) = (.notice, MessageID.degradation)
        case .suspended, .thawed:
            (level, id) = (.info, MessageID.suspension)
        case .seccompDenied:
            guard let denial = event.denial else { return nil }
            metadata["syscall"] = .string(denial.syscall)
            metadata["count"] = .stringConvertible(denial.count)
            (level, id) = (.warning, MessageID.seccompDenied)
        case .hostPressure:
            (level, id) = (.warning, MessageID.hostPressure)
        case .daemon:
            (level, id) = (.notice, MessageID.daemon)
        case .throttleNotice, .throttleRestored, .terminationNotice, .scaleDownRequest, .suspendNotice, .quotaChanged,
            .groupChanged, .usageReported, .acknowledged, .recommendation, .priorityChanged, .agentQueued:
            return nil
        }
        metadata[JournalEntry.messageIDKey] = .string(id)
        return (level, event.message, metadata)
    }
}

/// Logs the engine's events (`EventLog`) until shutdown (the stream ends
/// then: EventStreamsService). The stream is subscribed before the daemon
/// restores its state, so the re-attachments are logged too. Owner of `groups` (agent → group, for
/// the `group` field): this service's task.
struct EventLogService: Service {
    let engine: Engine
    let events: AsyncStream<CorralEvent>
    let logger: Logger

    func run() async throws {
        var groups: [String: String] = [:]
        for await event in events {
            var group: String?
            if let agent = event.agent {
                if groups[agent] == nil {
                    for record in await engine.liveAgents() { groups[record.id] = record.group }
                }
                group = groups[agent]
                if event.kind == .agentRemoved { groups[agent] = nil }
            }
            guard let entry = EventLog.entry(event, group: group) else { continue }
            logger.log(level: entry.level, "\(entry.message)", metadata: entry.metadata)
        }
        // The stream ends when the shutdown begins (EventStreamsService goes
        // first); a service that returns before its own turn fails the group.
        await WatcherService.untilShutdown()
    }
}
