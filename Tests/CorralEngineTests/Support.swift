import CorralAPI
import CorralCgroup
import CorralCore
import CorralEngine
import CorralTestSupport
import CorralWatcher
import Foundation
import Synchronization

/// A clock the test moves by hand.
final class TestClock: Sendable {
    static let origin = Timestamp(milliseconds: 1_795_000_000_000)

    private let current = Mutex(TestClock.origin)

    var now: Timestamp { current.withLock { $0 } }

    func advance(_ duration: Duration) { current.withLock { $0 = $0 + duration } }

    /// Seconds since the origin (for messages).
    var seconds: Double { Double(now.milliseconds - Self.origin.milliseconds) / 1000 }
}

/// The watcher as the engine sees it, recording what it was asked.
final class RecordingWatcher: AgentWatching {
    enum Call: Hashable, Sendable {
        case watch(String, CgroupPath)
        case unwatch(String)
        case requestSample(String)
        case sample(String, every: Duration?)
    }

    private let recorded = Mutex<[Call]>([])

    var calls: [Call] { recorded.withLock { $0 } }

    func watch(agent: String, path: CgroupPath) { recorded.withLock { $0.append(.watch(agent, path)) } }
    func unwatch(agent: String) { recorded.withLock { $0.append(.unwatch(agent)) } }
    func requestSample(agent: String) { recorded.withLock { $0.append(.requestSample(agent)) } }
    func sample(agent: String, every: Duration?) { recorded.withLock { $0.append(.sample(agent, every: every)) } }
}

/// Short escalation delays so a ladder climbs in a few observations:
/// warn 0, throttle 2 s, suspend 4 s, terminate 6 s, grace 5 s.
extension EscalationPolicy {
    static let quick = EscalationPolicy(
        delays: [
            .warn: .zero, .throttle: .seconds(2), .suspend: .seconds(4), .terminate: .seconds(6), .scaleDown: .zero, .migrate: .zero,
            .custom: .zero,
        ],
        terminationGrace: .seconds(5))
}

/// An engine on a fake cgroup tree, a memory store, a hand-moved clock and a recording watcher.
struct EngineHarness {
    static let root = CgroupPath(["corral"])

    let fs: FakeCgroupFilesystem
    let tree: CgroupTree
    let store: MemoryStore
    let clock: TestClock
    let watcher: RecordingWatcher
    let engine: Engine
    let configuration: CorralConfiguration

    init(
        configuration: CorralConfiguration = EngineHarness.quickConfiguration, fs: FakeCgroupFilesystem? = nil, store: MemoryStore? = nil,
        clock: TestClock? = nil, handlers: ActionHandlers = ActionHandlers(), instruments: (any EngineInstruments)? = nil,
        intents: (any IntentJournal)? = nil, storeWrapper: ((MemoryStore) -> any EngineStore)? = nil
    ) throws {
        let fs = fs ?? FakeCgroupFilesystem()
        if fs.value(.procs, at: Self.root) == nil { fs.seed(Self.root) }
        let tree = CgroupTree(fs: fs, root: Self.root)
        try tree.prepareRoot(selfPID: nil, reservation: nil)
        let store = store ?? MemoryStore()
        let clock = clock ?? TestClock()
        self.fs = fs
        self.tree = tree
        self.store = store
        self.clock = clock
        self.configuration = configuration
        watcher = RecordingWatcher()
        engine = Engine(
            configuration: configuration, tree: tree, store: storeWrapper?(store) ?? store, handlers: handlers, instruments: instruments,
            intents: intents, clock: { clock.now })
    }

    static var quickConfiguration: CorralConfiguration {
        var configuration = CorralConfiguration.builtIn
        configuration.escalation = .quick
        return configuration
    }

    /// Starts the engine's life: restore (empty) and the watcher.
    func start() async throws -> Engine.Reconciliation {
        let report = try await engine.restore()
        await engine.connect(watcher)
        return report
    }

    func leaf(_ group: String, _ agent: String) -> CgroupPath { tree.agentPath(group: group, agent: agent) }

    /// Registers and attaches an agent whose leaf holds `pids` (in the fake only).
    @discardableResult
    func agent(
        _ id: String, group: String = "standard_agent", overrides: [Resource: LimitOverride] = [:], pids: [Int32] = [ghostPID]
    ) async throws -> AgentRecord {
        _ = try await engine.register(id: id, group: group, command: ["worker", id], overrides: overrides)
        if !pids.isEmpty { fs.seed(leaf(group, id), procs: pids) }
        return try await engine.attach(id: id, pid: pids.first ?? ghostPID)
    }

    /// One observation of `agent` now, with these readings.
    func observe(_ agent: String, _ readings: [Resource: Double]) async {
        let list = readings.sorted { $0.key < $1.key }.map { UsageReading(resource: $0.key, usage: $0.value) }
        await engine.handle(.observed(agent: agent, at: clock.now, readings: list))
    }

    /// Observes the same readings every `step` for `duration` (the clock moves, then the observation comes).
    func keepObserving(_ agent: String, _ readings: [Resource: Double], for duration: Duration, every step: Duration = .seconds(1)) async {
        var elapsed = Duration.zero
        while elapsed < duration {
            clock.advance(step)
            elapsed += step
            await observe(agent, readings)
        }
    }

    func history(_ agent: String? = nil) async throws -> [EnforcementRecord] {
        try await engine.history(agent: agent, since: nil, afterID: nil, limit: 10_000)
    }

    func events(_ agent: String) -> [CorralEvent] {
        engine.waitForCommits()  // enforcement records are published once committed
        return engine.hub.recent(agent: agent)
    }

    /// The values written to `file` of `path`, in order.
    func written(_ file: CgroupFile, at path: CgroupPath) -> [String] {
        fs.writes.compactMap {
            if case .write(let where_, let written, let value) = $0, where_ == path.relative, written == file { return value }
            return nil
        }
    }
}

extension WatcherEvent {
    /// A kernel event's observation of `agent` (what the watcher sends when
    /// memory.events changes), with these readings.
    static func observed(
        agent: String, at: Timestamp, readings: [UsageReading], sample: CgroupSample = CgroupSample(),
        trigger: ObservationTrigger = .event(.memoryEvents)
    ) -> WatcherEvent {
        .observation(
            Observation(
                subject: .agent(agent), trigger: trigger, at: at, seenAt: .now, sample: sample, readings: readings,
                elapsed: .seconds(1)))
    }

    /// The agent's cgroup has no live process any more.
    static func emptied(_ agent: String) -> WatcherEvent { .emptied(.agent(agent), at: Timestamp(milliseconds: 0)) }
}
