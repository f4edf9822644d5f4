internal import CSystemd
internal import CorralLinux

#if canImport(Glibc)
    internal import Glibc
#endif

/// The parts of libsystemd Corral uses: service notifications and the
/// library's identity for `corral doctor`.
public enum Systemd {
    /// What `sd_notify` did.
    public enum NotifyResult: Equatable, Sendable {
        /// The message reached the service manager.
        case sent
        /// Not running under systemd (`$NOTIFY_SOCKET` unset): nothing to tell.
        case notUnderSystemd
        /// Sending failed with this errno.
        case failed(errno: Int32)
    }

    /// Sends `state` ("READY=1", "STATUS=…", "WATCHDOG=1", "STOPPING=1").
    @discardableResult
    public static func notify(_ state: String) -> NotifyResult {
        let result = sd_notify(0, state)
        if result > 0 { return .sent }
        if result == 0 { return .notUnderSystemd }
        return .failed(errno: -result)
    }

    /// The watchdog interval systemd expects pings within (WatchdogSec=), when
    /// it set one for this process (`sd_watchdog_enabled`: WATCHDOG_USEC, and
    /// WATCHDOG_PID naming this process when present).
    public static var watchdogInterval: Duration? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return .microseconds(Int64(clamping: usec))
    }

    /// CLOCK_MONOTONIC in microseconds, for RELOADING=1's MONOTONIC_USEC=.
    public static var monotonicMicroseconds: UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
    }

    /// Whether the process runs as a systemd service with a notify socket.
    public static var underServiceManager: Bool {
        getenv("NOTIFY_SOCKET") != nil
    }

    /// The libsystemd shared object this process loaded ("libsystemd.so.0.35.0"),
    /// read from /proc/self/maps; nil when it cannot be determined.
    public static var loadedLibrary: String? {
        // Calling into the library guarantees it is mapped before we look.
        _ = sd_booted()
        return LoadedLibraries.find(prefix: "libsystemd.so")
    }
}
