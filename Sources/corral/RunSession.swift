import ArgumentParser
import CorralCgroup
import CorralClient
import CorralCore
import CorralEngine
import CorralRuntime
import CorralWatcher

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
    let done = DispatchSemaphoreLike()
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
    case .enforcement, .terminationNotice, .scaleDownRequest, .suspended, .throttleRestored:
        printError("corral: [\(event.agent ?? "-")] \(event.message)")
    default:
        break
    }
}

/// `corral run` through a running daemon: it creates the cgroup, watches it
/// and walks the ladder; this process starts the command in it and waits.
struct DaemonRun {
    let client: CorralClient

    func run(_ request: RunRequest, overrides: [Resource: LimitOverride], quiet: Bool) throws -> RunSummary {
        struct Register: Encodable {
            var id: String
            var group: String
            var command: [String]
            var limits: [Resource: LimitOverride]
        }
        let record: AgentRecord
        do {
            record = try client.call(
                "POST", "/v1/agents/register",
                body: Register(id: request.agent, group: request.group.name, command: request.command, limits: overrides),
                as: AgentRecord.self)
        } catch {
            if case .api(409, _, let message) = error { throw fail(message) }
            throw fail("the daemon refused to register the agent: \(error.description)")
        }
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

        let narration =
            quiet
            ? nil
            : Task {
                for try await message in client.events(agent: record.id) {
                    if let event = try? CorralClient.decoder.decode(CorralEvent.self, from: Data(message.data.utf8)) { narrate(event) }
                }
            }
        defer { narration?.cancel() }
        var summary: RunSummary
        do {
            summary = try AgentRunner(tree: tree).supervise(request, in: tree, leaf: leaf) { pid in
                struct Attach: Encodable { var pid: Int32 }
                _ = try? client.call("POST", "/v1/agents/\(record.id)/attach", body: Attach(pid: pid), as: AgentRecord.self)
            }
        } catch {
            try? client.perform("DELETE", "/v1/agents/\(record.id)?force=true")
            throw fail(error.description, status: error.exitStatus)
        }
        struct Finished: Encodable {
            var exitStatus: Int32
            var reason: String?
        }
        _ = try? client.call(
            "POST", "/v1/agents/\(record.id)/finished",
            body: Finished(exitStatus: summary.exitStatus, reason: summary.oomKilled ? "OOM-killed at its memory limit" : nil),
            as: AgentRecord.self)
        struct History: Decodable { var records: [EnforcementRecord] }
        summary.enforcement = (try? client.call("GET", "/v1/agents/\(record.id)/history", as: History.self).records) ?? []
        summary.engine = "daemon"
        try? tree.remove(leaf)
        return summary
    }
}

/// `corral run` without a daemon: the same engine, embedded for one agent,
/// with the watcher on its own thread and the history in memory.
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
        let engine = Engine(configuration: configuration, tree: tree, store: MemoryStore())
        let signals = SignalQueue()
        let watcher: CgroupWatcher
        do {
            watcher = try CgroupWatcher(
                filesystem: tree.fs, configuration: CgroupWatcher.Configuration(samplingInterval: configuration.intervals.sampling),
                clock: Engine.wallClock
            ) { event in
                if let signal = WatcherBridge.signal(event) { signals.push(signal) }
            }
        } catch {
            throw fail("cannot watch the agent's cgroup: \(error.description)")
        }
        let agent = request.agent
        do {
            _ = try blocking {
                try await engine.adoptCreated(
                    id: agent, group: request.group.name, command: request.command, limits: request.limits, leaf: leaf)
            }
        } catch {
            throw fail("\(error)")
        }
        let bridge = WatcherBridge(watcher: watcher, deliver: { signals.push($0) })
        let events = engine.hub.subscribe(agent: agent)
        let loop = Task {
            await engine.attach(watcher: bridge)
            await withTaskGroup(of: Void.self) { group in
                group.addTask { while let signal = await signals.next() { await engine.handle(signal) } }
                group.addTask {
                    while !Task.isCancelled {
                        await engine.tick()
                        try? await Task.sleep(for: .milliseconds(200))
                    }
                }
                group.addTask {
                    for await event in events where !quiet { narrate(event) }
                }
                await group.next()
                group.cancelAll()
            }
        }
        watcher.start()
        defer {
            watcher.stop()
            signals.finish()
            engine.hub.finishAll()
            loop.cancel()
        }

        var summary: RunSummary
        do {
            summary = try runner.supervise(request, in: tree, leaf: leaf) { pid in
                _ = try? blocking { try await engine.attach(id: agent, pid: pid) }
            }
        } catch {
            throw fail(error.description, status: error.exitStatus)
        }
        let exitStatus = summary.exitStatus
        _ = try? blocking { try await engine.finished(agent, exitStatus: exitStatus, reason: nil) }
        summary.enforcement = (try? blocking { try await engine.history(agent: agent, since: nil, afterID: nil, limit: 10000) }) ?? []
        summary.engine = "embedded"
        return summary
    }
}
