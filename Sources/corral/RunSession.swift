import ArgumentParser
import CorralAPI
import CorralCgroup
import CorralClient
import CorralCore
import CorralEngine
import CorralRuntime
import CorralSeccomp
import CorralThreads
import CorralWatcher
import Synchronization

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#endif

/// Runs an async call from the synchronous CLI and waits for it.
final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}

func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let box = ResultBox<T>()
    let done = Latch()
    Task {
        do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
        done.signal()
    }
    done.wait()
    return try box.result!.get()
}

/// Prints the ladder's doings to stderr while an agent runs.
func narrate(_ event: CorralEvent) {
    switch event.kind {
    case .enforcement, .terminationNotice, .scaleDownRequest, .suspendNotice, .suspended, .throttleRestored, .seccompDenied:
        printError("corral: [\(event.agent ?? "-")] \(event.message)")
    default:
        break
    }
}

/// `corral run` through a running daemon: it creates the cgroup, watches it
/// and walks the ladder; this process starts the command in it and waits.
struct DaemonRun {
    let client: CorralClient
    let filters: FilterCache

    /// What `corral run` reads of the daemon's answer to its registration (the agent's row).
    /// Decoding the whole row made the decoder instantiate a type for each of its fields (the
    /// command, the overrides, the origin, the end…), each first use a scan of the binary's
    /// protocol conformance records: the row's decoding was a fifth of the CLI's instructions
    /// (callgrind of `corral run -- true` through a daemon).
    struct Registration: Decodable {
        var id: String
        var state: AgentState
        var cgroup: String
        var limits: LimitSet
        var security: SecurityPolicy?
        var createdAt: Timestamp
        var queuePosition: Int?

        init(_ record: AgentRecord) {
            (id, state, cgroup, limits, security, createdAt, queuePosition) = (
                record.id, record.state, record.cgroup, record.limits, record.security, record.createdAt, record.queuePosition
            )
        }
    }

    /// How long an agent runs before its narration stream opens (see `run`).
    static let narrationDelay = Duration.milliseconds(300)

    /// What `run` decodes of the finished answer: only the records (the agent's
    /// row in it is not needed here).
    struct Records: Codable { var records: [EnforcementRecord] }

    /// Whether `corral run ARGUMENTS` (before parsing) will likely go through a
    /// daemon: no `--no-daemon` among its options, and a socket to reach.
    static func likelyThroughDaemon(_ arguments: [String]) -> Bool {
        let options = arguments.prefix { $0 != "--" }
        guard !options.contains("--no-daemon") else { return false }
        return options.contains { $0 == "--socket" || $0.hasPrefix("--socket=") }
            || access(CorralClient.configuredSocketPath, F_OK) == 0
    }

    /// The first use of Codable for a type in a process instantiates its
    /// generic metadata and looks up its conformances (scans of the binary's
    /// conformance records): decoding the registration and the finished
    /// answer and encoding the requests cost a cold `corral run` ≈ 6.7 M
    /// instructions, ≈ 50 ms under emulation, on its critical path (callgrind
    /// in the VM; README "Launch latency"). Done once on a thread of its own
    /// while the main thread gets ready and waits for the registration, those
    /// caches are warm when the answers arrive. The answers decoded are
    /// `CodecSamples`, which a test keeps equal to the daemon's encoding.
    /// In the order the main thread needs them after its first request, which
    /// it encodes itself: since the main thread reads its arguments by itself
    /// (`RunOptions.fastParse`), it reaches that request while this thread would
    /// still be encoding the same types, and the runtime's conformance scans
    /// are not shared between threads that miss the cache at once.
    static func warmCodecs() {
        OSThread.start(name: "corral-warm") {
            // The answers as the daemon writes them (decoding a sample encoded here cost twice
            // the instructions: encoding the row is work a run never otherwise does).
            _ = try? CorralClient.decoder.decode(Registration.self, from: Data(CodecSamples.agentRecord.utf8))
            _ = try? CorralClient.encoder.encode(FinishedRequest(exitStatus: 0, reason: nil, pid: 1))
            _ = try? CorralClient.decoder.decode(Records.self, from: Data(CodecSamples.records.utf8))
        }
    }

    /// How long an agent's command runs before the daemon is told its process
    /// (`attach`: the daemon starts watching it; embedded, the engine starts).
    /// A command that ends sooner is only reported as finished, with its pid:
    /// its limits were in force in the kernel from its first instruction all
    /// the same, and the ladder's shortest step waits seconds. The attach's
    /// round trip and the daemon's setup of a watch were a sixth of corrald's
    /// instructions for a `corral run -- /bin/true` (`scripts/profile-launch`:
    /// 7.70 M → 6.49 M). 200 ms: under emulation a short command's own start
    /// takes 50–100 ms.
    static let attachDelay = Duration.milliseconds(200)

    /// The daemon answered but this caller may not register agents there
    /// (not root, not in its admin group, or inside an agent's cgroup).
    struct NotPermitted: Error {
        var message: String
    }

    /// Nothing listens on the socket (no daemon, or one that is gone): nothing was registered.
    struct NoDaemon: Error {}

    /// `admission: queue`: waits until the daemon starts the queued agent (its cgroup then
    /// exists, state `starting`). ^C or SIGTERM (blocked for forwarding, so seen as pending)
    /// takes it out of the queue.
    func waitForAdmission(_ queued: Registration, quiet: Bool) throws -> Registration {
        let id = queued.id
        var position = queued.queuePosition
        if !quiet {
            printError(
                "corral: \(id) is queued at position \(position ?? 0) (admission: queue): waiting for capacity (corral capacity shows why; ^C gives up)"
            )
        }
        let since = ContinuousClock.now
        while true {
            var pending = sigset_t()
            sigemptyset(&pending)
            sigpending(&pending)
            if sigismember(&pending, SIGINT) == 1 || sigismember(&pending, SIGTERM) == 1 {
                try? client.perform("DELETE", "/v1/agents/\(id)")
                throw fail("interrupted while queued: \(id) was taken out of the queue", status: 130)
            }
            usleep(200_000)
            let current: AgentRecord
            do {
                current = try client.call("GET", "/v1/agents/\(id)", as: AgentStatus.self).agent
            } catch {
                if case .api(404, _, _) = error {
                    throw fail("the daemon no longer holds \(id) in its queue (it restarted?): run the command again")
                }
                throw fail("cannot ask the daemon about queued agent \(id): \(error.description)")
            }
            switch current.state {
            case .queued:
                if current.queuePosition != position, !quiet {
                    printError("corral: \(id) is now at position \(current.queuePosition ?? 0) in the queue")
                }
                position = current.queuePosition
            case .starting:
                if !quiet {
                    let waited = (ContinuousClock.now - since).components.seconds
                    printError("corral: \(id) admitted after \(waited) s in the queue")
                }
                return Registration(current)
            default:
                throw fail("\(id) did not start: \(current.endReason ?? current.state.rawValue)")
            }
        }
    }

    /// `localPolicy`: what applies when the daemon names no policy for the agent (one older than policies).
    func run(
        _ request: RunRequest, overrides: [Resource: LimitOverride], security: SecurityOverride, localPolicy: SecurityPolicy, quiet: Bool
    ) throws -> RunSummary {
        var registered: Registration
        do {
            registered = try client.call(
                "POST", "/v1/agents/register",
                body: RegisterRequest(
                    id: request.agent, group: request.group.name, command: request.command, limits: overrides, user: security.user,
                    seccomp: security.seccompBase?.rawValue, priority: request.priorityIsOwn ? request.priority.rawValue : nil),
                as: Registration.self)
        } catch {
            if case .unreachable = error { throw NoDaemon() }
            if case .api(409, _, let message) = error { throw fail(message) }
            if case .api(403, _, let message) = error {
                throw NotPermitted(message: "the daemon on \(client.socketPath) refused: \(message)")
            }
            throw fail("the daemon refused to register the agent: \(error.description)")
        }
        if registered.state == .queued { registered = try waitForAdmission(registered, quiet: quiet) }
        let record = registered
        // The daemon's tree may live elsewhere (e.g. a systemd-delegated cgroup).
        let parts = record.cgroup.split(separator: "/")
        let groupPath = "/" + parts.dropLast().joined(separator: "/")
        let tree: CgroupTree
        do {
            tree = CgroupTree(fs: try DirectoryCgroupFilesystem(anchorPath: groupPath), root: .anchor)
        } catch {
            try? client.perform("DELETE", "/v1/agents/\(record.id)?force=true")
            throw fail(error.description)
        }
        let leaf = CgroupPath([record.id])
        var request = request
        request.limits = record.limits
        // The daemon's policy for the agent (its configuration, with this run's flags):
        // its filters are ready when it is the one `corral run` began compiling.
        do {
            request.isolation = try Isolation.prepare(record.security ?? localPolicy, cache: filters, supervised: true)
        } catch {
            try? client.perform("DELETE", "/v1/agents/\(record.id)?force=true")
            throw fail(error.description, status: ExitStatus.usage)
        }
        // This process holds the agent's seccomp listener: it answers the
        // denied calls and hands each tally to the daemon, which records it.
        let client = client
        request.denials = try DenialSupervisor.forRun { denial in
            guard let body = try? CorralClient.encoder.encode(DenialList(denials: [denial])) else { return }
            _ = try? client.send("POST", "/v1/agents/\(denial.agent)/denials", body: Array(body))
        }
        defer { request.denials?.stop() }

        // The ladder's doings on stderr while the agent runs. The stream opens only once the
        // agent has run for `narrationDelay`: most short commands have ended by then, and the
        // stream (a connection, a thread here, a subscriber in the daemon) cost a short run
        // ≈ 6% of its time under emulation. It then replays this agent's events since its
        // registration from the daemon's recent ones, so what was said meanwhile is narrated
        // late, not lost (and the enforcement records are in the summary either way).
        // It runs on a thread, not a task: this path uses no Swift concurrency otherwise, and a
        // first task starts the runtime's thread pool (≈ 16 ms of a short run under emulation).
        // Both begin from the wait for the command (`AgentRunner.Milestone`): a command that
        // ends sooner starts neither thread.
        let registeredAt = record.createdAt
        var narration: CorralClient.Follower?
        defer { narration?.stop() }
        var summary: RunSummary
        var attach: DeferredCall?
        var pid: Int32?
        let milestones = [
            AgentRunner.Milestone(after: Self.attachDelay) {
                guard let started = pid else { return }
                attach = DeferredCall(name: "corral-attach", delay: .zero) {
                    try? client.perform("POST", "/v1/agents/\(record.id)/attach", body: AttachRequest(pid: started))
                }
            },
            AgentRunner.Milestone(after: Self.narrationDelay) {
                guard !quiet else { return }
                narration = client.follow(agent: record.id, after: 0) { message in
                    guard let event = try? CorralClient.decoder.decode(CorralEvent.self, from: Data(message.data.utf8)),
                        event.at >= registeredAt
                    else { return }  // an earlier agent's under the same id
                    narrate(event)
                }
            },
        ]
        do {
            summary = try AgentRunner(tree: tree).supervise(request, in: tree, leaf: leaf, milestones: milestones) { started in
                pid = started
            }
        } catch {
            attach?.finish()
            try? client.perform("DELETE", "/v1/agents/\(record.id)?force=true")
            throw fail(error.description, status: error.exitStatus)
        }
        // Attached (the command ran past `attachDelay`), or ended before: then its pid goes with the end.
        let attached = attach?.finish() ?? false
        // The answer carries the history: one request, not two. Only the records are decoded.
        let finished = try? client.call(
            "POST", "/v1/agents/\(record.id)/finished",
            body: FinishedRequest(
                exitStatus: summary.exitStatus, reason: summary.oomKilled ? "OOM-killed at its memory limit" : nil,
                pid: attached ? nil : pid),
            as: Records.self)
        summary.enforcement = finished?.records ?? []
        summary.engine = "daemon"
        // The daemon removed the cgroup when it took the end; without its answer, it may not have.
        if finished == nil { try? tree.remove(leaf) }
        return summary
    }
}

extension DenialSupervisor {
    /// The supervisor of one `corral run`'s agent: wall-clock times, `report` on its thread.
    static func forRun(_ report: @escaping Report) throws -> DenialSupervisor {
        do {
            return try DenialSupervisor(clock: { Timestamp.now() }, report: report)
        } catch {
            throw fail("cannot supervise the agent's seccomp filter (eventfd: \(error))")
        }
    }
}

/// `corral run` without a daemon: the same engine, embedded for one agent,
/// with the watcher on its own thread and the history in memory.
///
/// The engine starts on a task of its own once the command has run for
/// `DaemonRun.attachDelay`, as a daemon is told of it then: nothing the
/// ladder does can be due before its first observation, a command that ends
/// sooner ran under its kernel limits all the same, and a short command (the
/// launch benchmark's `/bin/true`) neither waits for an engine nor shares the
/// CPU with one starting (the first task also starts the runtime's pool).
struct EmbeddedRun {
    let tree: CgroupTree
    let configuration: CorralConfiguration

    func run(_ request: RunRequest, overrides: [Resource: LimitOverride], quiet: Bool) throws -> RunSummary {
        let runner = AgentRunner(tree: tree)
        let leaf: CgroupPath
        do {
            leaf = try runner.create(request)
        } catch {
            throw fail(error.description, status: error.exitStatus)
        }
        defer {
            try? tree.remove(leaf)
            runner.cleanUpShared(group: request.group.name)
        }

        var configuration = configuration
        configuration.groups[request.group.name] = request.group
        let started = OneShot<Int32?>()
        let gate = EngineGate()
        // Set once by the deferred start's thread; read after `finish` has waited for it.
        let startup = Mutex<Task<EmbeddedEngine, any Error>?>(nil)
        // Begun from the wait for the command (`AgentRunner.Milestone`), once it has run for
        // `attachDelay`: a command that ends sooner starts no thread for it.
        var launch: DeferredCall?
        let engineMilestone = AgentRunner.Milestone(after: DaemonRun.attachDelay) { [tree, configuration] in
            launch = DeferredCall(name: "corral-engine", delay: .zero) {
                let task = Task {
                    try await EmbeddedEngine.start(
                        request: request, leaf: leaf, tree: tree, configuration: configuration, quiet: quiet, pid: started, gate: gate)
                }
                startup.withLock { $0 = task }
            }
        }

        var summary: RunSummary
        do {
            summary = try runner.supervise(request, in: tree, leaf: leaf, milestones: [engineMilestone]) { pid in
                started.deliver(pid)
            }
        } catch {
            started.deliver(nil)
            launch?.finish()
            if gate.conclude() == .watching, let task = startup.withLock({ $0 }) { _ = try? blocking { try await task.value.stop() } }
            throw fail(error.description, status: error.exitStatus)
        }
        summary.engine = "embedded"
        let agent = request.agent
        // Ended before its engine was started: the kernel's limits were all there was to enforce.
        guard launch?.finish() == true, let startup = startup.withLock({ $0 }) else { return summary }
        switch gate.conclude() {
        case .starting, .abandoned:
            // The engine had not yet begun to watch the agent when it ended: it
            // has nothing to report (the ladder acts on observations only) and
            // is left to stop by itself rather than waited for.
            return summary
        case .failed:
            // Warned when it failed; the kernel enforced the limits all the same.
            summary.engine = "none"
            return summary
        case .watching:
            break
        }
        do {
            summary.enforcement = try blocking {
                let running = try await startup.value
                // The command ended: nothing more to watch. The watcher winds
                // down while the history is read and the cgroup removed.
                running.stop(waitForWatcher: false)
                return try await running.engine.history(agent: agent, since: nil, afterID: nil, limit: 10000)
            }
        } catch {
            // The kernel enforced the limits all the same; only the ladder was missing.
            printError("corral: warning: the escalation ladder did not run for \(agent): \(error)")
            summary.engine = "none"
        }
        return summary
    }
}

/// The embedded engine of one `corral run`: engine, watcher and the
/// runtime loop (`EngineLoop`) that feeds one to the other.
final class EmbeddedEngine: Sendable {
    let engine: Engine
    let watcher: CgroupWatcher
    let loop: EngineLoop
    let tasks: Task<Void, Never>

    private init(engine: Engine, watcher: CgroupWatcher, loop: EngineLoop, tasks: Task<Void, Never>) {
        self.engine = engine
        self.watcher = watcher
        self.loop = loop
        self.tasks = tasks
    }

    /// Starts the engine for the agent in `leaf` and attaches the agent's
    /// process once `pid` is delivered (nil: it never started). A failure is
    /// also left on `gate`, for the run to report.
    static func start(
        request: RunRequest, leaf: CgroupPath, tree: CgroupTree, configuration: CorralConfiguration, quiet: Bool,
        pid: OneShot<Int32?>, gate: EngineGate
    ) async throws -> EmbeddedEngine {
        do {
            return try await startEngine(
                request: request, leaf: leaf, tree: tree, configuration: configuration, quiet: quiet, pid: pid, gate: gate)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            // Said at once: the command runs on, under the kernel's limits only.
            if gate.failed(error) {
                printError("corral: warning: the escalation ladder is not running for \(request.agent): \(error)")
            }
            throw error
        }
    }

    private static func startEngine(
        request: RunRequest, leaf: CgroupPath, tree: CgroupTree, configuration: CorralConfiguration, quiet: Bool,
        pid: OneShot<Int32?>, gate: EngineGate
    ) async throws -> EmbeddedEngine {
        guard !gate.isAbandoned else { throw CancellationError() }
        let engine = Engine(configuration: configuration, tree: tree, store: MemoryStore())
        let loop = EngineLoop(engine: engine)
        let watcher: CgroupWatcher
        do {
            watcher = try await loop.watcher(for: engine, filesystem: tree.fs, sampling: configuration.intervals.sampling)
        } catch {
            throw RunSessionError("cannot watch the agent's cgroup: \(error.description)")
        }
        let agent = request.agent
        _ = try await engine.adoptCreated(
            id: agent, group: request.group.name, command: request.command, limits: request.limits, leaf: leaf,
            priority: request.priority, priorityIsOwn: request.priorityIsOwn)
        let events = engine.hub.subscribe(agent: agent)
        let tasks = Task {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await loop.run() }
                group.addTask {
                    for await event in events where !quiet { narrate(event) }
                }
                await group.next()
                group.cancelAll()
            }
        }
        watcher.start()
        let running = EmbeddedEngine(engine: engine, watcher: watcher, loop: loop, tasks: tasks)
        guard let pid = await pid.value, !gate.isAbandoned else {
            running.stop(waitForWatcher: false)
            throw CancellationError()
        }
        do {
            _ = try await engine.attach(id: agent, pid: pid)
        } catch {
            running.stop(waitForWatcher: false)
            throw error
        }
        guard gate.attached() else {
            running.stop(waitForWatcher: false)
            throw CancellationError()
        }
        return running
    }

    func stop(waitForWatcher: Bool = true) {
        if waitForWatcher { watcher.stop() } else { watcher.stopWithoutWaiting() }
        loop.stop()
        engine.hub.finishAll()
        tasks.cancel()
    }
}

/// Whether the embedded engine watched the agent before it ended.
///
/// The ladder acts on observations compared with the baseline sample taken
/// when the engine attaches, so an engine that had not finished attaching
/// when the command ended has nothing to report: `corral run` does not wait
/// for it. (A command that ends within its first few tens of milliseconds
/// still gets its kernel counters in the summary; only the ladder, which
/// acts over seconds, never saw it.)
final class EngineGate: Sendable {
    enum State: Equatable {
        case starting, watching, abandoned
        /// The engine could not start (the message says why).
        case failed(String)
    }
    private let state = Mutex(State.starting)

    var isAbandoned: Bool { state.withLock { $0 == .abandoned } }

    /// The engine has attached: false when the command ended meanwhile.
    func attached() -> Bool {
        state.withLock { state in
            guard state == .starting else { return false }
            state = .watching
            return true
        }
    }

    /// The engine could not start; false when the command had ended already.
    func failed(_ error: any Error) -> Bool {
        state.withLock { state in
            guard state == .starting else { return false }
            state = .failed("\(error)")
            return true
        }
    }

    /// The command ended: `.abandoned` when the engine had not attached (and
    /// now will not be waited for), else what it came to.
    func conclude() -> State {
        state.withLock { state in
            if state == .starting { state = .abandoned }
            return state
        }
    }
}

struct RunSessionError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A value handed over once, from a thread to whoever awaits it.
final class OneShot<Value: Sendable>: Sendable {
    private struct State {
        var value: Value?
        var delivered = false
        var waiters: [CheckedContinuation<Value, Never>] = []
    }
    private let state = Mutex(State())

    /// The first delivery counts; later ones are ignored.
    func deliver(_ value: Value) {
        let waiters = state.withLock { state -> [CheckedContinuation<Value, Never>] in
            guard !state.delivered else { return [] }
            state.value = value
            state.delivered = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: value) }
    }

    var value: Value {
        get async {
            await withCheckedContinuation { continuation in
                let ready = state.withLock { state -> Value?? in
                    if state.delivered { return .some(state.value) }
                    state.waiters.append(continuation)
                    return .none
                }
                if case .some(let value) = ready { continuation.resume(returning: value!) }
            }
        }
    }
}
