import CorralAPI
import CorralTestSupport
import Foundation
import Hummingbird
import Synchronization
import Testing

@testable import CorralServer

/// One /proc/PID/cgroup path and the agent it belongs to.
struct CgroupCase: Sendable, CustomTestStringConvertible {
    var path: String
    var root: String
    var agent: String?

    var testDescription: String { "\(path) under \(root) → \(agent ?? "nobody")" }
}

/// One request and whether agent "a1" may make it.
struct RequestCase: Sendable, CustomTestStringConvertible {
    var method: HTTPRequest.Method
    var target: String
    var agentMay: Bool

    var testDescription: String { "\(method) \(target)" }

    var path: String { String(target.split(separator: "?", maxSplits: 1).first ?? "") }

    var query: [String: String] { AccessPolicy.query(of: Request(get: target)) }
}

extension Request {
    init(get target: String) {
        self.init(head: HTTPRequest(method: .get, scheme: nil, authority: "corral", path: target), body: RequestBody(buffer: ByteBuffer()))
    }
}

@Suite("Authorization from SO_PEERCRED")
struct AuthorizationTests {
    static let cgroups: [CgroupCase] = [
        CgroupCase(path: "/corral/standard_agent/a1", root: "/corral", agent: "a1"),
        CgroupCase(path: "/corral/standard_agent/a1/", root: "/corral", agent: "a1"),
        CgroupCase(path: "/corral/standard_agent/a1/sub", root: "/corral", agent: "a1"),
        CgroupCase(path: "/corral/standard_agent/a1/sub/deeper/still", root: "/corral", agent: "a1"),
        CgroupCase(path: "/corral/heavy_computation_agent/x.y_z-9", root: "/corral", agent: "x.y_z-9"),
        CgroupCase(path: "/system.slice/corral.service/standard_agent/a1", root: "/system.slice/corral.service", agent: "a1"),
        CgroupCase(path: "/standard_agent/a1", root: "/", agent: "a1"),
        CgroupCase(path: "/corral/supervisor", root: "/corral", agent: nil),
        CgroupCase(path: "/corral/supervisor/a1", root: "/corral", agent: nil),
        CgroupCase(path: "/corral/standard_agent", root: "/corral", agent: nil),
        CgroupCase(path: "/corral", root: "/corral", agent: nil),
        CgroupCase(path: "/", root: "/corral", agent: nil),
        CgroupCase(path: "", root: "/corral", agent: nil),
        CgroupCase(path: "/other/standard_agent/a1", root: "/corral", agent: nil),
        CgroupCase(path: "/corralx/standard_agent/a1", root: "/corral", agent: nil),
        CgroupCase(path: "/user.slice/corral/standard_agent/a1", root: "/corral", agent: nil),
        CgroupCase(path: "/system.slice/corral.service/standard_agent/a1", root: "/corral", agent: nil),
        CgroupCase(path: "/corral/.hidden/a1", root: "/corral", agent: nil),
        CgroupCase(path: "/corral/standard_agent/.a1", root: "/corral", agent: nil),
        CgroupCase(path: "/corral/standard_agent/-a1", root: "/corral", agent: nil),
        CgroupCase(path: "/corral/standard_agent/..", root: "/corral", agent: nil),
        CgroupCase(path: "/corral/standard_agent/a b", root: "/corral", agent: nil),
        CgroupCase(path: "/corral/standard_agent/supervisor", root: "/corral", agent: nil),
        CgroupCase(path: "/corral/standard_agent/" + String(repeating: "a", count: 65), root: "/corral", agent: nil),
        CgroupCase(path: "/corral/standard_agent/ä", root: "/corral", agent: nil),
    ]

    @Test("the agent a cgroup path belongs to", arguments: cgroups)
    func agentOfCgroup(_ item: CgroupCase) {
        #expect(AccessPolicy.agent(inCgroup: item.path, root: item.root) == item.agent)
    }

    static let requests: [RequestCase] = [
        RequestCase(method: .get, target: "/v1/agents/a1", agentMay: true),
        RequestCase(method: .get, target: "/v1/agents/a1/history", agentMay: true),
        RequestCase(method: .get, target: "/v1/agents/a1/history?limit=5", agentMay: true),
        RequestCase(method: .get, target: "/v1/agents/a1/compliance", agentMay: true),
        RequestCase(method: .post, target: "/v1/agents/a1/usage", agentMay: true),
        RequestCase(method: .post, target: "/v1/agents/a1/acks", agentMay: true),
        RequestCase(method: .get, target: "/v1/agents/a1/degradation", agentMay: true),
        RequestCase(method: .get, target: "/v1/agents/a1/recommendations", agentMay: true),
        RequestCase(method: .get, target: "/v1/events?agent=a1", agentMay: true),
        RequestCase(method: .get, target: "/v1/events?agent=a1&after=3", agentMay: true),
        RequestCase(method: .get, target: "/v1/events/recent?agent=a1", agentMay: true),
        // Other agents, everything, and mutations are out of reach.
        RequestCase(method: .get, target: "/v1/agents/a2", agentMay: false),
        RequestCase(method: .get, target: "/v1/agents/a2/history", agentMay: false),
        RequestCase(method: .get, target: "/v1/agents/a2/compliance", agentMay: false),
        RequestCase(method: .post, target: "/v1/agents/a2/usage", agentMay: false),
        RequestCase(method: .post, target: "/v1/agents/a2/acks", agentMay: false),
        RequestCase(method: .get, target: "/v1/agents/a2/degradation", agentMay: false),
        RequestCase(method: .get, target: "/v1/agents/a1/acks", agentMay: false),
        RequestCase(method: .post, target: "/v1/agents/a1/degradation", agentMay: false),
        RequestCase(method: .post, target: "/v1/agents/a1/recommendations/apply", agentMay: false),
        RequestCase(method: .get, target: "/v1/agents/a1x", agentMay: false),
        RequestCase(method: .get, target: "/v1/agents/a%31", agentMay: false),
        RequestCase(method: .get, target: "/v1/events", agentMay: false),
        RequestCase(method: .get, target: "/v1/events?agent=a2", agentMay: false),
        RequestCase(method: .get, target: "/v1/events?agent=", agentMay: false),
        RequestCase(method: .get, target: "/v1/events?agent=a2&agent=a1", agentMay: false),
        RequestCase(method: .get, target: "/v1/events/recent", agentMay: false),
        RequestCase(method: .get, target: "/v1/events/recent?agent=a2", agentMay: false),
        RequestCase(method: .get, target: "/v1/events/recent?agent=a2&agent=a1", agentMay: false),
        RequestCase(method: .get, target: "/v1/history?agent=a1", agentMay: false),
        RequestCase(method: .get, target: "/v1/history", agentMay: false),
        RequestCase(method: .get, target: "/v1/health", agentMay: false),
        RequestCase(method: .get, target: "/v1/agents", agentMay: false),
        RequestCase(method: .get, target: "/v1/groups", agentMay: false),
        RequestCase(method: .get, target: "/v1/groups/standard_agent", agentMay: false),
        RequestCase(method: .patch, target: "/v1/groups/standard_agent", agentMay: false),
        RequestCase(method: .post, target: "/v1/agents", agentMay: false),
        RequestCase(method: .post, target: "/v1/agents/register", agentMay: false),
        RequestCase(method: .post, target: "/v1/agents/adopt", agentMay: false),
        RequestCase(method: .post, target: "/v1/agents/a1/attach", agentMay: false),
        RequestCase(method: .post, target: "/v1/agents/a1/finished", agentMay: false),
        RequestCase(method: .post, target: "/v1/agents/a1/stop", agentMay: false),
        RequestCase(method: .post, target: "/v1/agents/a1/freeze", agentMay: false),
        RequestCase(method: .post, target: "/v1/agents/a1/thaw", agentMay: false),
        RequestCase(method: .post, target: "/v1/agents/a1/kill", agentMay: false),
        RequestCase(method: .put, target: "/v1/agents/a1/limits", agentMay: false),
        RequestCase(method: .delete, target: "/v1/agents/a1", agentMay: false),
        RequestCase(method: .post, target: "/v1/agents/a1", agentMay: false),
        RequestCase(method: .put, target: "/v1/agents/a1/usage", agentMay: false),
        RequestCase(method: .get, target: "/v1/agents/a1/usage", agentMay: false),
        RequestCase(method: .post, target: "/v1/agents/a1/history", agentMay: false),
        RequestCase(method: .get, target: "/v1/agents/a1/history/extra", agentMay: false),
        RequestCase(method: .get, target: "/v1/agents/a1/../a2", agentMay: false),
        RequestCase(method: .get, target: "/v2/agents/a1", agentMay: false),
        RequestCase(method: .get, target: "/agents/a1", agentMay: false),
    ]

    @Test("administrators may do everything, agent a1 only its own reads and reports, anyone else nothing", arguments: requests)
    func allows(_ request: RequestCase) {
        let peer = PeerCredentials(pid: 4321, uid: 1000, gid: 1000)
        #expect(AccessPolicy.allows(.administrator(peer), method: request.method, path: request.path, query: request.query))
        #expect(
            AccessPolicy.allows(.agent("a1", peer), method: request.method, path: request.path, query: request.query) == request.agentMay)
        #expect(!AccessPolicy.allows(.anonymous, method: request.method, path: request.path, query: request.query))
    }

    @Test("the middleware reads a repeated query parameter as the routes do (the first)")
    func repeatedQueryParameter() {
        let request = Request(get: "/v1/events?agent=a2&agent=a1&after=7")
        #expect(AccessPolicy.query(of: request)["agent"] == request.uri.queryParameters["agent"].map(String.init))
        #expect(AccessPolicy.query(of: request) == ["agent": "a2", "after": "7"])
    }

    @Test("identify: root, the admin group, anyone else")
    func identify() {
        let me = getpid()
        let root = PeerCredentials(pid: me, uid: 0, gid: 0)
        let user = PeerCredentials(pid: me, uid: 1000, gid: 1000)
        let onlyRoot = AccessPolicy(adminGID: nil, cgroupRootInHierarchy: "/corral")
        #expect(onlyRoot.identify(root) == .administrator(root))
        #expect(
            onlyRoot.identify(PeerCredentials(pid: me, uid: 0, gid: 1000)) == .administrator(PeerCredentials(pid: me, uid: 0, gid: 1000)))
        #expect(onlyRoot.identify(user) == .anonymous)
        #expect(AccessPolicy(adminGID: 1000, cgroupRootInHierarchy: "/corral").identify(user) == .administrator(user))
        #expect(AccessPolicy(adminGID: 1001, cgroupRootInHierarchy: "/corral").identify(user) == .anonymous)
        // A pid that does not exist has no cgroup and no groups.
        let gone = PeerCredentials(pid: 99_999_999, uid: 1000, gid: 1000)
        #expect(AccessPolicy(adminGID: 4242, cgroupRootInHierarchy: "/").identify(gone) == .anonymous)
    }

    /// A policy that sees pid 10 in agent a1's cgroup, pid 20 in the
    /// supervisor, pid 30 outside the tree; pid 40 is in group 4242.
    static func fakePolicy(adminGID: UInt32?) -> AccessPolicy {
        AccessPolicy(
            adminGID: adminGID, cgroupRootInHierarchy: "/corral",
            cgroupOf: { pid in
                switch pid {
                case 10: "/corral/standard_agent/a1/worker"
                case 20: "/corral/supervisor"
                case 30, 40: "/user.slice/user-1000.slice/session-2.scope"
                default: nil
                }
            },
            groupsOf: { $0 == 40 || $0 == 10 ? [4242] : [] })
    }

    static let identities: [(peer: PeerCredentials, caller: Caller)] = [
        // Inside an agent's cgroup: that agent, even as root or in the admin group.
        (PeerCredentials(pid: 10, uid: 0, gid: 0), .agent("a1", PeerCredentials(pid: 10, uid: 0, gid: 0))),
        (PeerCredentials(pid: 10, uid: 1000, gid: 4242), .agent("a1", PeerCredentials(pid: 10, uid: 1000, gid: 4242))),
        (PeerCredentials(pid: 10, uid: 1000, gid: 1000), .agent("a1", PeerCredentials(pid: 10, uid: 1000, gid: 1000))),
        // The daemon in supervisor/ and `corral` outside the tree: root and the admin group administer.
        (PeerCredentials(pid: 20, uid: 0, gid: 0), .administrator(PeerCredentials(pid: 20, uid: 0, gid: 0))),
        (PeerCredentials(pid: 30, uid: 0, gid: 0), .administrator(PeerCredentials(pid: 30, uid: 0, gid: 0))),
        (PeerCredentials(pid: 30, uid: 1000, gid: 4242), .administrator(PeerCredentials(pid: 30, uid: 1000, gid: 4242))),
        (PeerCredentials(pid: 40, uid: 1000, gid: 1000), .administrator(PeerCredentials(pid: 40, uid: 1000, gid: 1000))),
        (PeerCredentials(pid: 50, uid: 0, gid: 0), .administrator(PeerCredentials(pid: 50, uid: 0, gid: 0))),
        // Anyone else: nobody.
        (PeerCredentials(pid: 20, uid: 1000, gid: 1000), .anonymous),
        (PeerCredentials(pid: 30, uid: 1000, gid: 1000), .anonymous),
        (PeerCredentials(pid: 50, uid: 1000, gid: 1000), .anonymous),
    ]

    @Test("identify: an agent's cgroup comes first (an agent running as root is still only that agent)")
    func identifyOrder() {
        let policy = Self.fakePolicy(adminGID: 4242)
        for (peer, caller) in Self.identities {
            #expect(policy.identify(peer) == caller, "\(peer)")
        }
        // Without an admin group only root administers; the agent is still the agent.
        let onlyRoot = Self.fakePolicy(adminGID: nil)
        #expect(onlyRoot.identify(PeerCredentials(pid: 40, uid: 1000, gid: 1000)) == .anonymous)
        #expect(onlyRoot.identify(PeerCredentials(pid: 10, uid: 0, gid: 0)) == .agent("a1", PeerCredentials(pid: 10, uid: 0, gid: 0)))
    }

    /// With the hierarchy's root as Corral's root, systemd's slices sit beside
    /// the quota groups: a root shell in /user.slice/user-0.slice/session-3.scope
    /// is an administrator, not agent "user-0.slice".
    @Test func atTheHierarchyRootOnlyQuotaGroupsHoldAgents() {
        var policy = AccessPolicy(
            adminGID: nil, cgroupRootInHierarchy: "/",
            cgroupOf: { pid in pid == 1 ? "/user.slice/user-0.slice/session-3.scope" : "/standard_agent/a1" }, groupsOf: { _ in [] })
        policy.isQuotaGroup = { ["standard_agent", "lightweight_agent"].contains($0) }
        let shell = PeerCredentials(pid: 1, uid: 0, gid: 0)
        let agent = PeerCredentials(pid: 2, uid: 0, gid: 0)
        #expect(policy.identify(shell) == .administrator(shell))
        #expect(policy.identify(agent) == .agent("a1", agent))
    }

    @Test("identify reads the peer's own cgroup from /proc (this process is outside any Corral tree)")
    func identifyFromProc() {
        let me = getpid()
        let path = AccessPolicy.procCgroup(of: me)
        #expect(path != nil)
        let here = PeerCredentials(pid: me, uid: 0, gid: 0)
        #expect(AccessPolicy(adminGID: nil, cgroupRootInHierarchy: "/corral-test-nowhere").identify(here) == .administrator(here))
    }

    @Test("a live server: a caller inside agent a1's cgroup (as root) may only reach a1's endpoints")
    func agentScopedCallerOnALiveServer() async throws {
        let inAgent = Mutex(false)
        let policy = AccessPolicy(
            adminGID: nil, cgroupRootInHierarchy: "/corral",
            cgroupOf: { _ in inAgent.withLock { $0 } ? "/corral/standard_agent/a1" : "/user.slice" }, groupsOf: { _ in [] })
        let document = OpenAPIDocument.shared
        try await withLiveServer(policy: policy) { server in
            for id in ["a1", "a2"] {
                let registered = try await server.send("POST", "/v1/agents/register", json: #"{"id":"\#(id)","command":["worker"]}"#)
                #expect(registered.status == 201, "\(registered.text)")
            }
            inAgent.withLock { $0 = true }
            // Whatever this process's uid (root here), inside a1's cgroup it is only agent a1.
            for (method, path, json) in [
                ("GET", "/v1/agents", nil), ("GET", "/v1/agents/a2", nil), ("GET", "/v1/agents/a2/degradation", nil),
                ("POST", "/v1/agents/a2/usage", #"{"usage":{"files":1}}"#), ("POST", "/v1/agents/a2/acks", #"{"sequence":1}"#),
                ("POST", "/v1/agents/a2/kill", nil), ("POST", "/v1/agents/a1/kill", nil), ("GET", "/v1/events?agent=a2", nil),
                ("PATCH", "/v1/groups/standard_agent", #"{"limits":{}}"#),
            ] as [(String, String, String?)] {
                let reply = try await server.send(method, path, body: json.map { Array($0.utf8) })
                #expect(reply.status == 403, "\(method) \(path): \(reply.text)")
                #expect(reply.json?["error"]?["code"]?.string == "forbidden")
                #expect(reply.json?["error"]?["message"]?.string?.contains("agent a1") == true, "\(reply.text)")
                #expect(document.problems(with: reply).isEmpty, "\(document.problems(with: reply))")
            }
            for path in ["/v1/agents/a1", "/v1/agents/a1/degradation", "/v1/agents/a1/history", "/v1/agents/a1/compliance"] {
                let reply = try await server.send("GET", path)
                #expect(reply.status == 200, "GET \(path): \(reply.text)")
                #expect(document.problems(with: reply).isEmpty, "\(document.problems(with: reply))")
            }
            let report = try await server.send("POST", "/v1/agents/a1/usage", json: #"{"usage":{"files":3}}"#)
            #expect(report.status == 200, "\(report.text)")
            // Both agents are still there: the agent could not kill either.
            inAgent.withLock { $0 = false }
            #expect(try await server.engine.list().map(\.id).sorted() == ["a1", "a2"])
        }
    }

    static let canSwitchUser = getuid() == 0 && access("/usr/bin/setpriv", X_OK) == 0 && access("/usr/bin/curl", X_OK) == 0

    @Test("identify: a supplementary group of the peer process counts", .enabled(if: canSwitchUser))
    func supplementaryAdminGroup() async throws {
        // The child lives until the defer kills it: in the full run this task can
        // wait longer than 30 s for a thread of the cooperative pool.
        let child = try Subprocess.start(
            "/usr/bin/setpriv", ["--reuid=1000", "--regid=1000", "--groups=4242,4343", "/usr/bin/sleep", "3600"])
        defer {
            child.signal(SIGKILL)
            _ = child.wait(timeout: 10)
        }
        // Until exec, /proc/PID/status shows setpriv as root.
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline, AccessPolicy.supplementaryGroups(of: child.pid) != [4242, 4343] {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(AccessPolicy.supplementaryGroups(of: child.pid) == [4242, 4343])
        let peer = PeerCredentials(pid: child.pid, uid: 1000, gid: 1000)
        #expect(AccessPolicy(adminGID: 4343, cgroupRootInHierarchy: "/corral").identify(peer) == .administrator(peer))
        #expect(AccessPolicy(adminGID: 4444, cgroupRootInHierarchy: "/corral").identify(peer) == .anonymous)
    }

    /// curl as `nobody` against the live socket: status and body.
    func curlAsNobody(_ socket: String, _ method: String, _ path: String, groups: String? = nil) async throws -> Reply {
        let identity = ["--reuid=65534", "--regid=65534"] + (groups.map { ["--groups=\($0)"] } ?? ["--clear-groups"])
        let arguments =
            identity + [
                "/usr/bin/curl", "-sS", "-X", method, "--unix-socket", socket, "-H", "Content-Type: application/json",
                "-w", "\n%{http_code} %{content_type}", "http://corral" + path,
            ] + (method == "POST" ? ["--data", #"{"command":["w"],"id":"sneaky"}"#] : [])
        let result = try await Subprocess.execute("/usr/bin/setpriv", arguments, timeout: 30)
        #expect(result.exitStatus == 0, "\(result)")
        var lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        let trailer = lines.popLast()?.split(separator: " ", maxSplits: 1) ?? []
        return Reply(
            method: method, path: path, status: trailer.first.flatMap { Int($0) } ?? 0,
            headers: ["content-type": trailer.count > 1 ? String(trailer[1]) : ""], body: Array(lines.joined(separator: "\n").utf8))
    }

    @Test("a live server refuses a peer that is neither root nor admin nor an agent (403)", .enabled(if: canSwitchUser))
    func nonRootPeer() async throws {
        let document = OpenAPIDocument.shared
        try await withLiveServer(policy: AccessPolicy(adminGID: 4242, cgroupRootInHierarchy: "/corral")) { server in
            for (method, path) in [
                ("GET", "/v1/health"), ("GET", "/v1/agents"), ("POST", "/v1/agents/register"), ("GET", "/v1/agents/sneaky"),
            ] {
                let reply = try await curlAsNobody(server.socketPath, method, path)
                #expect(reply.status == 403, "\(method) \(path): \(reply.text)")
                #expect(document.problems(with: reply).isEmpty, "\(document.problems(with: reply))")
                #expect(reply.json?["error"]?["code"]?.string == "forbidden")
                #expect(reply.json?["error"]?["message"]?.string?.contains("uid 65534") == true)
            }
            #expect(try await server.engine.list().isEmpty)
            // The same user in the admin group may.
            let admitted = try await curlAsNobody(server.socketPath, "GET", "/v1/agents", groups: "4242")
            #expect(admitted.status == 200, "\(admitted.text)")
            #expect(document.problems(with: admitted).isEmpty, "\(document.problems(with: admitted))")
        }
    }
}
