public import CorralCgroup
public import CorralWatcher

/// The cgroup watcher as the engine uses it (tests put a recorder in its place).
public protocol AgentWatching: Sendable {
    func watch(agent: String, path: CgroupPath)
    func unwatch(agent: String)
    /// Asks for a fresh observation of `agent` soon (before a delayed action);
    /// it comes the way of every observation. Must not block.
    func requestSample(agent: String)
    /// Samples `agent` every `every` (nil: every sampling interval). Must not block.
    func sample(agent: String, every: Duration?)
}

/// The real watcher behind `AgentWatching`: what it cannot watch is reported
/// as vanished, and requested samples are read on the watcher's thread and
/// take the way of every observation (the engine's queue), so the engine sees
/// each agent's readings in order.
public struct WatcherBridge: AgentWatching {
    public let watcher: CgroupWatcher
    public let deliver: @Sendable (WatcherEvent) -> Void

    public init(watcher: CgroupWatcher, deliver: @escaping @Sendable (WatcherEvent) -> Void) {
        self.watcher = watcher
        self.deliver = deliver
    }

    public func watch(agent: String, path: CgroupPath) {
        do {
            try watcher.watch(agent: agent, path: path)
        } catch {
            deliver(.vanished(.agent(agent), at: Engine.wallClock()))
        }
    }

    public func unwatch(agent: String) { watcher.unwatch(agent: agent) }

    /// The watcher's thread reads the cgroup (never the engine's executor).
    public func requestSample(agent: String) { watcher.requestSample(agent: agent) }

    public func sample(agent: String, every: Duration?) { watcher.setSamplingInterval(agent: agent, every: every) }
}
