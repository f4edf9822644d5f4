public import CorralCgroup
public import CorralWatcher

/// The cgroup watcher as the engine sees it. Requested samples go the way
/// of all observations, so the engine handles them in order.
public struct WatcherBridge: AgentWatching {
    public let watcher: CgroupWatcher
    public let deliver: @Sendable (WatchSignal) -> Void

    public init(watcher: CgroupWatcher, deliver: @escaping @Sendable (WatchSignal) -> Void) {
        self.watcher = watcher
        self.deliver = deliver
    }

    public func watch(agent: String, path: CgroupPath) {
        do {
            try watcher.watch(agent: agent, path: path)
        } catch {
            deliver(.vanished(agent: agent))
        }
    }

    public func unwatch(agent: String) { watcher.unwatch(agent: agent) }

    public func sampleNow(agent: String) {
        if let observation = try? watcher.sampleNow(agent: agent), let signal = Self.signal(.observation(observation)) {
            deliver(signal)
        }
    }

    /// The engine's view of a watcher event (groups and unreadable reads are
    /// not escalated: the next successful read decides).
    public static func signal(_ event: WatcherEvent) -> WatchSignal? {
        switch event {
        case .observation(let observation):
            guard let agent = observation.subject.agent else { return nil }
            return .observed(
                AgentObservation(
                    agent: agent, at: observation.at, readings: observation.readings, sample: observation.sample, seen: observation.seenAt,
                    routine: observation.trigger == .sample))
        case .emptied(let subject, _):
            return subject.agent.map { .emptied(agent: $0) }
        case .vanished(let subject, _):
            return subject.agent.map { .vanished(agent: $0) }
        case .unreadable:
            return nil
        }
    }
}
