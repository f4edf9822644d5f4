internal import CSeccomp

/// libseccomp, for per-group syscall policies. For now: the library's
/// version and the kernel API level it detected, shown by `corral doctor`.
public enum Seccomp {
    /// The runtime library version, e.g. "2.5.4".
    public static var libraryVersion: String {
        guard let version = seccomp_version() else { return "unknown" }
        return "\(version.pointee.major).\(version.pointee.minor).\(version.pointee.micro)"
    }

    /// The API level libseccomp detected for this kernel (0: none; ≥ 3 has
    /// SECCOMP_FILTER_FLAG_TSYNC, ≥ 5 user notification, ≥ 6 precomputed filters).
    public static var apiLevel: UInt32 {
        seccomp_api_get()
    }

    /// Whether the running kernel supports seccomp filters at all.
    public static var kernelSupportsFilters: Bool {
        apiLevel >= 1
    }
}
