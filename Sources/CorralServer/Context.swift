import CCorralLinux
public import Hummingbird
public import Logging
public import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// Who is on the other end of the Unix socket (SO_PEERCRED).
public struct PeerCredentials: Equatable, Sendable {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32

    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }
}

/// Request context of the API: keeps the connection's channel so the
/// authorization middleware can ask the kernel who the peer is.
public struct CorralRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: (any Channel)?
    /// Set by the authorization middleware.
    public var caller: Caller = .anonymous
    /// The credentials of a request made in process (no socket, no peer to
    /// ask the kernel about); nil for every request from the socket.
    let inProcessCredentials: PeerCredentials?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
        self.inProcessCredentials = nil
    }

    /// A request handed to the router in process (the server tests that
    /// need no socket): `credentials` stand for SO_PEERCRED and are
    /// authorized by the same policy.
    public init(inProcess credentials: PeerCredentials, logger: Logger) {
        self.coreContext = .init(source: InProcessSource(logger: logger))
        self.channel = nil
        self.inProcessCredentials = credentials
    }

    public var maxUploadSize: Int { maximumBodySize }

    /// The peer's credentials; nil when the transport is not a Unix socket.
    func peerCredentials() async -> PeerCredentials? {
        if let inProcessCredentials { return inProcessCredentials }
        guard let provider = channel as? any SocketOptionProvider else { return nil }
        do {
            let value: corral_ucred = try await provider.unsafeGetSocketOption(
                level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(corral_so_peercred())
            ).get()
            return PeerCredentials(pid: value.pid, uid: value.uid, gid: value.gid)
        } catch {
            // Unknown credentials are nobody's: the caller gets 403, and the log says why.
            logger.warning("cannot read the caller's SO_PEERCRED; treating it as anonymous", metadata: ["error": "\(error)"])
            return nil
        }
    }
}

/// What a caller may do.
public enum Caller: Equatable, Sendable {
    /// root or a member of the admin group: everything.
    case administrator(PeerCredentials)
    /// A process inside an agent's cgroup: read and report for that agent only.
    case agent(String, PeerCredentials)
    /// Anyone else.
    case anonymous
}

/// Where an in-process request's context comes from: a logger, no channel.
struct InProcessSource: RequestContextSource {
    var logger: Logger
}
