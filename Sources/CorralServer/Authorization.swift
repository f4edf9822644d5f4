import CorralCore
import CorralLinux
import Hummingbird

#if canImport(Glibc)
    import Glibc
#endif

/// Decides who a peer is and what it may do.
///
/// A process inside an agent's cgroup is that agent, whatever its uid: the
/// agents Corral starts run as root, and must not get administrator rights
/// by it. Such a peer may read its own agent, its history, compliance,
/// degradation and events, and report usage and acknowledgements for it.
/// Any other peer that is root or a member of the admin group may do
/// everything (the daemon itself lives in `supervisor/`, not an agent's
/// cgroup; `corral` runs outside the tree). Anyone else gets 403.
public struct AccessPolicy: Sendable {
    /// Members of this group are administrators (nil: only root).
    public var adminGID: UInt32?
    /// The cgroup root as /proc/PID/cgroup shows it ("/corral"), to recognise agents.
    public var cgroupRootInHierarchy: String
    /// The cgroup v2 path of a process as /proc/PID/cgroup shows it (nil: unknown).
    var cgroupOf: @Sendable (Int32) -> String?
    /// The supplementary group ids of a process.
    var groupsOf: @Sendable (Int32) -> [UInt32]
    /// Whether a directory below the root is a quota group. Consulted only
    /// when the root is the hierarchy's root, where systemd's slices sit
    /// beside the groups (a root shell in /user.slice/user-0.slice/… is not
    /// agent "user-0.slice").
    var isQuotaGroup: @Sendable (String) -> Bool = { _ in true }

    public init(adminGID: UInt32?, cgroupRootInHierarchy: String) {
        self.init(
            adminGID: adminGID, cgroupRootInHierarchy: cgroupRootInHierarchy, cgroupOf: Self.procCgroup,
            groupsOf: Self.supplementaryGroups)
    }

    /// A policy that learns a peer's cgroup and groups from these functions
    /// instead of /proc (tests).
    init(
        adminGID: UInt32?, cgroupRootInHierarchy: String, cgroupOf: @escaping @Sendable (Int32) -> String?,
        groupsOf: @escaping @Sendable (Int32) -> [UInt32]
    ) {
        self.adminGID = adminGID
        self.cgroupRootInHierarchy = cgroupRootInHierarchy
        self.cgroupOf = cgroupOf
        self.groupsOf = groupsOf
    }

    /// Who `peer` is: its agent first (an agent stays an agent as root),
    /// then root or the admin group, else nobody.
    public func identify(_ peer: PeerCredentials) -> Caller {
        if let agent = agent(of: peer.pid) { return .agent(agent, peer) }
        if peer.uid == 0 { return .administrator(peer) }
        if let adminGID, peer.gid == adminGID || groupsOf(peer.pid).contains(adminGID) {
            return .administrator(peer)
        }
        return .anonymous
    }

    /// The agent whose cgroup (or a cgroup below it) holds `pid`.
    func agent(of pid: Int32) -> String? {
        guard let path = cgroupOf(pid), let agent = Self.agent(inCgroup: path, root: cgroupRootInHierarchy) else { return nil }
        if cgroupRootInHierarchy.split(separator: "/").isEmpty {
            let group = path.split(separator: "/").first.map(String.init) ?? ""
            guard isQuotaGroup(group) else { return nil }
        }
        return agent
    }

    /// The unified (v2) cgroup path of `pid` from /proc/PID/cgroup.
    static func procCgroup(of pid: Int32) -> String? {
        read("/proc/\(pid)/cgroup").flatMap(ProcCgroup.unifiedPath)
    }

    /// "/corral/standard_agent/a1/sub" under root "/corral" → "a1".
    static func agent(inCgroup path: String, root: String) -> String? {
        let rootParts = root.split(separator: "/")
        let parts = path.split(separator: "/")
        guard parts.count >= rootParts.count + 2, Array(parts.prefix(rootParts.count)) == rootParts else { return nil }
        let group = String(parts[rootParts.count])
        let agent = String(parts[rootParts.count + 1])
        guard group != "supervisor", CgroupName.isValid(group), CgroupName.isValid(agent) else { return nil }
        return agent
    }

    static func supplementaryGroups(of pid: Int32) -> [UInt32] {
        guard let status = read("/proc/\(pid)/status") else { return [] }
        for line in status.split(separator: "\n") where line.hasPrefix("Groups:") {
            return line.dropFirst("Groups:".count).split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { UInt32($0) }
        }
        return []
    }

    /// A small /proc file (nil when it cannot be read: the process is gone).
    static func read(_ path: String) -> String? {
        do {
            return try readWholeFile(atPath: path, maximumBytes: 1 << 20)
        } catch {
            return nil
        }
    }

    /// The query parameters as the routes read them: of a repeated name the
    /// first value counts (`?agent=other&agent=me` must not pass as "me").
    static func query(of request: Request) -> [String: String] {
        var query: [String: String] = [:]
        for (key, value) in request.uri.queryParameters where query[String(key)] == nil { query[String(key)] = String(value) }
        return query
    }

    /// Whether `caller` may make this request.
    static func allows(_ caller: Caller, method: HTTPRequest.Method, path: String, query: [String: String]) -> Bool {
        switch caller {
        case .administrator: return true
        case .anonymous: return false
        case .agent(let agent, _):
            let parts = path.split(separator: "/").map(String.init)
            if method == .get, parts == ["v1", "events"] || parts == ["v1", "events", "recent"] { return query["agent"] == agent }
            guard parts.count >= 3, parts[0] == "v1", parts[1] == "agents", parts[2] == agent else { return false }
            switch (method, Array(parts.dropFirst(3))) {
            case (.get, []), (.get, ["history"]), (.get, ["compliance"]), (.get, ["degradation"]), (.get, ["recommendations"]),
                (.get, ["denials"]), (.post, ["usage"]), (.post, ["acks"]):
                return true
            default: return false
            }
        }
    }
}

/// Identifies the caller from SO_PEERCRED and refuses what it may not do (403).
struct AuthorizationMiddleware: RouterMiddleware {
    typealias Context = CorralRequestContext
    let policy: AccessPolicy

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        guard let peer = await context.peerCredentials() else {
            throw APIError(.forbidden, "forbidden", "the caller's credentials are unknown (Corral only serves its Unix socket)")
        }
        context.caller = policy.identify(peer)
        let query = AccessPolicy.query(of: request)
        guard AccessPolicy.allows(context.caller, method: request.method, path: request.uri.path, query: query) else {
            let who: String
            switch context.caller {
            case .agent(let agent, _): who = "agent \(agent) may only read and report for itself"
            default: who = "uid \(peer.uid) is neither root nor in the admin group, nor inside an agent's cgroup"
            }
            throw APIError(.forbidden, "forbidden", "\(request.method) \(request.uri.path) is not allowed: \(who)")
        }
        return try await next(request, context)
    }
}

/// Turns every error into the API's JSON error shape; nothing escapes as a crash.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = CorralRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return error.response()
        } catch let error as EngineErrorBridge {
            return error.api.response()
        } catch let error as HTTPError {
            let code = error.status == .notFound ? "not_found" : error.status == .contentTooLarge ? "too_large" : "bad_request"
            let message =
                error.status == .notFound
                ? "no such endpoint: \(request.method) \(request.uri.path) (see openapi/corral.yaml)" : (error.body ?? "\(error.status)")
            return APIError(error.status, code, message).response()
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(error)", "path": "\(request.uri.path)"])
            return APIError(.internalServerError, "failed", "\(error)").response()
        }
    }
}

/// Wraps an engine error thrown through route closures.
struct EngineErrorBridge: Error {
    var api: APIError
}
