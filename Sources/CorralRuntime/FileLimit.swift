#if canImport(Glibc)
    internal import Glibc
#endif

/// The open-file limit. Corral holds a few descriptors per watched cgroup,
/// so it raises its soft limit to the hard one, and gives the agents it
/// starts the limit it had been given (programs that use select(2) break
/// above 1024).
public enum FileLimit {
    public struct Limit: Equatable, Sendable {
        public var soft: UInt64
        public var hard: UInt64
    }

    /// Raises this process's soft RLIMIT_NOFILE to its hard limit; returns
    /// the limit it had before (for the agents), nil when it cannot be read.
    @discardableResult
    public static func raise() -> Limit? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        let original = Limit(soft: UInt64(limit.rlim_cur), hard: UInt64(limit.rlim_max))
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        inherited = original
        return original
    }

    /// What agents get: the limit this process started with (nil: unchanged).
    nonisolated(unsafe) public private(set) static var inherited: Limit?
}
