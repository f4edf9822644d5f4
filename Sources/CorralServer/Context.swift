import CCorralLinux
public import Hummingbird
import Logging
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

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }

    public var maxUploadSize: Int { maximumBodySize }

    /// The peer's credentials; nil when the transport is not a Unix socket.
    func peerCredentials() async -> PeerCredentials? {
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
