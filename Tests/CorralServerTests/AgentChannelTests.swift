import CorralAPI
import CorralClient
import CorralCore
import CorralEngine
import CorralTestSupport
import CorralThreads
import Foundation
import Synchronization
import Testing

@testable import CorralServer

/// The agent's side of the channel (CorralClient's AgentChannel) against a
/// live server: typed messages as an AsyncSequence, usage reports, acks.
@Suite("Agent channel")
struct AgentChannelTests {
    @Test func anAgentGetsItsScaleDownRequestAndDegradationPlanAndAcknowledges() async throws {
        var configuration = CorralConfiguration.builtIn
        configuration.escalation = EscalationPolicy(delays: [:], terminationGrace: .seconds(1))  // every step at once
        try await withLiveServer(configuration: configuration) { server in
            let registered = try await server.send(
                "POST", "/v1/agents/register",
                json: #"{"id":"chan1","command":["worker"],"limits":{"files":{"soft":10,"hard":20,"action":"scale_down"}}}"#)
            #expect(registered.status == 201)
            #expect(throws: AgentChannel.SetupError.notUnderCorral(missing: "CORRAL_SOCKET")) {
                try AgentChannel.fromEnvironment(["CORRAL_AGENT_ID": "chan1"])
            }
            let channel = try AgentChannel.fromEnvironment(["CORRAL_AGENT_ID": "chan1", "CORRAL_SOCKET": server.socketPath])

            let listener = Task { () throws -> [ChannelEvent] in
                var seen: [ChannelEvent] = []
                // after: 0 replays the recent events: the report below may
                // be handled before this stream reaches the server.
                for try await event in channel.messages(after: 0) {
                    seen.append(event)
                    if case .scaleDown = event.content { try channel.acknowledge(event, note: "closing idle files") }
                    if seen.contains(where: { $0.kind == "acknowledged" }), seen.contains(where: { $0.kind == "degradation_strategy" }) {
                        return seen
                    }
                }
                return seen
            }
            try await offPool { try channel.report(usage: [.files: 25]) }

            let seen = try await withThrowingTaskGroup(of: [ChannelEvent].self) { group in
                group.addTask { try await listener.value }
                group.addTask {
                    try await Task.sleep(for: .seconds(20))
                    listener.cancel()
                    return []
                }
                let first = try await group.next() ?? []
                group.cancelAll()
                return first
            }
            let kinds = seen.map(\.kind)
            let request = seen.lazy.compactMap { if case .scaleDown(let request) = $0.content { request } else { nil } }.first
            #expect(request?.resource == .files)
            #expect(request?.target == 16, "80% of the hard limit 20")
            let plan = seen.lazy.compactMap { if case .degradation(let plan) = $0.content { plan } else { nil } }.first
            #expect(plan?.level == .emergency, "25 of a soft limit of 10 is 2.5×")
            #expect(plan?.strategies.map(\.strategy) == DegradationStrategy.plan(for: .files, at: .emergency))
            #expect(plan?.strategies.first?.parameters["pool_size_factor"] == .number(0.5), "parameter names as sent")
            #expect(kinds.contains("acknowledged"), "\(kinds)")
            #expect(seen.allSatisfy { $0.sequence > 0 })

            // The status shows the level and the pending request; the plan is recorded.
            let status = try await server.send("GET", "/v1/agents/chan1")
            let json = try JSONSerialization.jsonObject(with: Data(status.body)) as? [String: Any]
            #expect((json?["pending_requests"] as? [Any])?.count == 1)
            #expect(((json?["degradation"] as? [[String: Any]])?.first?["level"] as? String) == "emergency")
            let recorded = try await server.engine.degradationHistory(agent: "chan1", limit: 10)
            #expect(recorded.map(\.level) == [.emergency])
        }
    }

    /// The degradation signal goes to agents without a listener: only the
    /// agent's own process following its stream counts, not an operator.
    @Test func onlyTheAgentsOwnStreamCountsAsItsListener() async throws {
        let inAgent = Mutex(false)
        let policy = AccessPolicy(
            adminGID: nil, cgroupRootInHierarchy: "/corral",
            cgroupOf: { _ in inAgent.withLock { $0 } ? "/corral/standard_agent/l1" : "/user.slice" }, groupsOf: { _ in [] })
        try await withLiveServer(policy: policy) { server in
            let registered = try await server.send("POST", "/v1/agents/register", json: #"{"id":"l1","command":["worker"]}"#)
            #expect(registered.status == 201)
            let hub = server.engine.hub
            let channel = AgentChannel(agent: "l1", client: server.client)

            func follow() -> Task<Void, any Error> {
                Task { for try await _ in channel.messages() {} }
            }
            /// Waits for the count; the server notices a closed stream when it
            /// next writes to it, so an event is published while waiting for fewer.
            func waitFor(subscribers: Int) async throws {
                let deadline = ContinuousClock.now + .seconds(10)
                while hub.subscriberCount != subscribers, ContinuousClock.now < deadline {
                    if hub.subscriberCount > subscribers {
                        hub.publish(CorralEvent(at: Timestamp(milliseconds: 0), kind: .daemon, agent: "l1", message: "probe"))
                    }
                    try await Task.sleep(for: .milliseconds(10))
                }
                #expect(hub.subscriberCount == subscribers)
            }

            let operator_ = follow()  // an administrator (this process, outside any agent's cgroup)
            try await waitFor(subscribers: 1)
            #expect(hub.listenerCount(agent: "l1") == 0)

            inAgent.withLock { $0 = true }
            let agent = follow()  // the agent itself
            try await waitFor(subscribers: 2)
            #expect(hub.listenerCount(agent: "l1") == 1)

            agent.cancel()
            operator_.cancel()
            try await waitFor(subscribers: 0)
            #expect(hub.listenerCount(agent: "l1") == 0)
        }
    }

    /// Across a daemon restart the channel reconnects (also while nothing
    /// answers), resumes after the last sequence, takes the restarted
    /// daemon's lower sequences, and ends only when the daemon refuses it.
    @Test func messagesReconnectAcrossADaemonRestart() async throws {
        func event(_ sequence: Int, _ kind: String) -> String {
            let json = #"{"sequence":\#(sequence),"at":"2026-11-29T10:00:00.000Z","kind":"\#(kind)","agent":"r1","message":"m"}"#
            return "id: \(sequence)\nevent: \(kind)\ndata: \(json)\n\n"
        }
        let stream = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n: corral events for r1\n\n"
        let refusal = #"{"error":{"code":"forbidden","message":"agent r1 may only read and report for itself"}}"#
        let daemon = try ScriptedDaemon(
            before: [stream + event(5, "suspend_notice") + event(6, "suspended")],
            pause: .milliseconds(600),  // longer than the first retry delays: the channel finds nobody and retries
            after: [
                stream + event(1, "thawed") + event(2, "quota_changed"),
                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: \(refusal.utf8.count)\r\n\r\n\(refusal)",
            ])
        defer { daemon.remove() }
        let channel = AgentChannel(agent: "r1", client: CorralClient(socketPath: daemon.path, timeout: 5))
        var received: [ChannelEvent] = []
        var failure: (any Error)?
        do {
            for try await message in channel.messages(after: 0, retryDelay: .milliseconds(100)) { received.append(message) }
        } catch {
            failure = error
        }
        #expect(received.map(\.sequence) == [5, 6, 1, 2])
        #expect(received.map(\.kind) == ["suspend_notice", "suspended", "thawed", "quota_changed"])
        #expect(received.first?.content == .suspendNotice)
        #expect(
            daemon.requests.map { $0.split(separator: " ").dropFirst().first.map(String.init) ?? "" } == [
                "/v1/events?agent=r1&after=0", "/v1/events?agent=r1&after=6", "/v1/events?agent=r1&after=2",
            ])
        #expect((failure as? ClientError) == .api(status: 403, code: "forbidden", message: "agent r1 may only read and report for itself"))
    }

    @Test func messagesEndWhenCancelled() async throws {
        let daemon = try ScriptedDaemon(before: [], pause: .seconds(30), after: [])
        defer { daemon.remove() }
        let channel = AgentChannel(agent: "r2", client: CorralClient(socketPath: daemon.path + ".nothing", timeout: 5))
        let following = Task { () throws -> Int in
            var count = 0
            for try await _ in channel.messages(retryDelay: .milliseconds(20)) { count += 1 }
            return count
        }
        try await Task.sleep(for: .milliseconds(200))
        following.cancel()
        #expect(try await following.value == 0)
    }

    @Test func eventsDecodeIntoTypedMessages() throws {
        func decode(_ json: String) throws -> AgentMessage {
            try AgentChannel.decode(ServerSentEvent(id: "1", event: nil, data: json)).content
        }
        #expect(
            try decode(
                #"{"sequence":1,"at":"2026-11-29T10:00:00.000Z","kind":"throttle_notice","message":"m","resource":"cpu","factor":0.85}"#)
                == .throttle(resource: .cpu, factor: 0.85))
        #expect(
            try decode(#"{"sequence":2,"at":"2026-11-29T10:00:00.000Z","kind":"termination_notice","message":"m","grace_seconds":5}"#)
                == .termination(graceSeconds: 5))
        #expect(try decode(#"{"sequence":3,"at":"2026-11-29T10:00:00.000Z","kind":"suspended","message":"m"}"#) == .suspended)
        #expect(
            try decode(#"{"sequence":3,"at":"2026-11-29T10:00:00.000Z","kind":"suspend_notice","message":"m","agent":"a"}"#)
                == .suspendNotice)
        #expect(
            try decode(#"{"sequence":4,"at":"2026-11-29T10:00:00.000Z","kind":"violation","message":"m"}"#)
                == .other(kind: "violation", message: "m"))
        // A kind without its fields is not mistaken for the typed message.
        #expect(
            try decode(#"{"sequence":5,"at":"2026-11-29T10:00:00.000Z","kind":"throttle_notice","message":"m"}"#)
                == .other(kind: "throttle_notice", message: "m"))
        #expect(throws: (any Error).self) { try decode("not json") }
    }
}

/// A stand-in daemon on a Unix socket that answers each connection with a
/// scripted response and closes it; between `before` and `after` it goes
/// away for `pause` (socket removed, as during a restart).
final class ScriptedDaemon: Sendable {
    let path: String
    private let directory: String
    private let seen = Mutex<[String]>([])

    /// The request line of each connection, in order.
    var requests: [String] { seen.withLock { $0 } }

    init(before: [String], pause: Duration, after: [String]) throws {
        var template = Array("/tmp/corral-chan-XXXXXX".utf8CString)
        directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        path = directory + "/corral.sock"
        let first = try Self.listen(path)
        Thread.detachNewThread { [self] in
            answer(first, before)
            close(first)
            unlink(path)
            Thread.sleep(forTimeInterval: Double(pause.components.seconds) + Double(pause.components.attoseconds) / 1e18)
            guard let second = try? Self.listen(path) else { return }
            answer(second, after)
            close(second)
        }
    }

    func remove() {
        unlink(path)
        rmdir(directory)
    }

    static func listen(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SpawnFailure(errno: errno) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in raw.copyBytes(from: Array(path.utf8) + [0]) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 8) == 0 else {
            let saved = errno
            close(fd)
            throw SpawnFailure(errno: saved)
        }
        return fd
    }

    /// Reads a request's head from `connection`; its first line.
    static func requestLine(_ connection: Int32) -> String {
        var head: [UInt8] = []
        var byte: UInt8 = 0
        while read(connection, &byte, 1) == 1 {
            head.append(byte)
            if head.suffix(4) == Array("\r\n\r\n".utf8) { break }
        }
        return String(decoding: head, as: UTF8.self).split(separator: "\r\n").first.map(String.init) ?? ""
    }

    /// Accepts one connection per response: reads the request head, writes the response, closes.
    func answer(_ listener: Int32, _ responses: [String]) {
        for response in responses {
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { return }
            let requestLine = Self.requestLine(connection)
            seen.withLock { $0.append(requestLine) }
            let bytes = Array(response.utf8)
            var written = 0
            while written < bytes.count {
                let count = bytes[written...].withUnsafeBytes { write(connection, $0.baseAddress, $0.count) }
                guard count > 0 else { break }
                written += count
            }
            close(connection)
        }
    }
}

extension AgentChannelTests {
    /// `corral run`'s narration: a follower on a thread of its own opens its stream after its
    /// delay and hands over what the stream says; one stopped during its delay never connects;
    /// a stop closes the connection. Against a stand-in daemon on a thread (the live server's
    /// replay of `after=0` is tested with the server's events route).
    @Test("a follower opens after its delay, hands over the stream's events, and stops; stopped early it never connects")
    func followerOpensAfterItsDelay() async throws {
        let event = { (sequence: Int, connections: Int) in
            let json =
                #"{"sequence":\#(sequence),"at":"2026-11-29T10:00:00.000Z","kind":"usage_reported","agent":"told1","message":"\#(connections)"}"#
            return "id: \(sequence)\nevent: usage_reported\ndata: \(json)\n\n"
        }
        let daemon = try HeldStreamDaemon(
            opening: "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n: corral events for told1\n\n" + event(1, 3))
        defer { daemon.remove() }
        let client = CorralClient(socketPath: daemon.path, timeout: 5)

        let early = client.follow(agent: "told1", after: 0, delay: .seconds(30)) { _ in }
        // Timed on the stopping thread: the way back onto a busy cooperative pool is not the stop's.
        let stopTook = try await offPool { () -> Duration in
            let stopping = ContinuousClock.now
            early.stop()  // it waits for the thread: not on the cooperative pool
            return ContinuousClock.now - stopping
        }
        #expect(stopTook < .seconds(5), "a stop during the delay ends the wait")

        let seen = Mutex<[ServerSentEvent]>([])
        let started = ContinuousClock.now
        let follower = client.follow(agent: "told1", after: 0, delay: .milliseconds(200)) { event in
            seen.withLock { $0.append(event) }
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while seen.withLock({ $0.isEmpty }), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(seen.withLock { $0.map(\.id) } == ["1"], "the opening's event: \(seen.withLock { $0 })")
        // The daemon accepts in order: had the early follower connected, its request would be first.
        #expect(daemon.requests == ["GET /v1/events?agent=told1&after=0 HTTP/1.1"], "one connection, the second follower's")
        let opened = try #require(daemon.acceptedAt)
        #expect(opened - started >= .milliseconds(200), "not during its delay")

        daemon.push(event(2, 4))
        let live = ContinuousClock.now + .seconds(10)  // its own wait: the pool may have used up the first one
        while seen.withLock({ $0.count }) < 2, ContinuousClock.now < live { try await Task.sleep(for: .milliseconds(20)) }
        #expect(seen.withLock { $0.map(\.id) } == ["1", "2"], "then live")
        #expect(seen.withLock { $0.allSatisfy { $0.event == "usage_reported" && $0.data.contains("told1") } })

        try await offPool { follower.stop() }  // returns once its thread has ended
        #expect(daemon.peerClosed.wait(for: .seconds(5)), "stop closes the connection")
        daemon.push(event(3, 5))
        try await Task.sleep(for: .milliseconds(100))
        #expect(seen.withLock { $0.count } == 2, "nothing handed over after stop")
    }
}

/// A stand-in daemon that answers one connection with `opening`, keeps it open for
/// `push`, and notes when the peer closes it (a read that ends).
final class HeldStreamDaemon: Sendable {
    let path: String
    private let directory: String
    private let state = Mutex<(requests: [String], acceptedAt: ContinuousClock.Instant?, connection: Int32)>(([], nil, -1))
    let peerClosed = Latch()

    var requests: [String] { state.withLock { $0.requests } }
    var acceptedAt: ContinuousClock.Instant? { state.withLock { $0.acceptedAt } }

    init(opening: String) throws {
        var template = Array("/tmp/corral-held-XXXXXX".utf8CString)
        directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        path = directory + "/corral.sock"
        let listener = try ScriptedDaemon.listen(path)
        Thread.detachNewThread { [self] in
            defer { close(listener) }
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { return }
            let accepted = ContinuousClock.now
            let requestLine = ScriptedDaemon.requestLine(connection)
            state.withLock { $0 = ([requestLine], accepted, connection) }
            push(opening)
            var buffer = [UInt8](repeating: 0, count: 256)
            while read(connection, &buffer, buffer.count) > 0 {}
            state.withLock { $0.connection = -1 }
            close(connection)
            peerClosed.signal()
        }
    }

    /// Writes `text` to the open connection, if there is one.
    func push(_ text: String) {
        state.withLock { state in
            guard state.connection >= 0 else { return }
            let bytes = Array(text.utf8)
            var written = 0
            while written < bytes.count {
                let count = bytes[written...].withUnsafeBytes { send(state.connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard count > 0 else { return }
                written += count
            }
        }
    }

    func remove() {
        unlink(path)
        rmdir(directory)
    }
}
