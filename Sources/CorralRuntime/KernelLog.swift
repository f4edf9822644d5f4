import CorralLinux
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// The kernel's own record of a seccomp kill: with `seccomp_action: kill` the
/// process dies by SIGSYS inside the kernel (no supervisor sees the call), and
/// the kernel logs an audit record ("type=1326 … pid=N … sig=31 … syscall=M")
/// to its log. Reading /dev/kmsg needs root (or CAP_SYSLOG where dmesg_restrict
/// is set); where it cannot be read the syscall stays unknown.
public enum KernelLog {
    /// The name recorded when the kernel log does not say (unreadable, or the record was lost).
    public static let unknownSyscall = "unknown (not in the kernel log)"

    /// The syscall number of the seccomp kill of `pid`, from /dev/kmsg; nil when
    /// no record is found within `wait` (kauditd prints it asynchronously).
    public static func seccompKill(pid: Int32, wait: Duration = .milliseconds(300)) -> Int32? {
        let deadline = ContinuousClock.now + wait
        while true {
            if let number = scan(pid: pid) { return number }
            if ContinuousClock.now >= deadline { return nil }
            usleep(20_000)
        }
    }

    static func scan(pid: Int32) -> Int32? {
        guard let fd = try? FileDescriptor.open("/dev/kmsg", .readOnly, options: [.nonBlocking, .closeOnExec]) else { return nil }
        defer { try? fd.close() }
        var found: Int32?
        var buffer = [UInt8](repeating: 0, count: 8192)
        // Each read returns one record; EAGAIN ends the buffer, EPIPE skips an overwritten one.
        for _ in 0..<100_000 {
            let result = buffer.withUnsafeMutableBytes { raw in retryOnInterrupt { read(fd.rawValue, raw.baseAddress, raw.count) } }
            switch result {
            case .success(let count) where count > 0:
                if let number = parse(String(decoding: buffer[0..<count], as: UTF8.self), pid: pid) { found = number }
            case .failure(.brokenPipe):
                continue
            default:
                return found
            }
        }
        return found
    }

    /// "syscall=M" of a seccomp audit record (type=1326) for `pid` with sig=31.
    static func parse(_ record: String, pid: Int32) -> Int32? {
        guard record.contains("type=1326"), record.contains(" pid=\(pid) "), record.contains(" sig=31 ") else { return nil }
        for field in record.split(separator: " ") where field.hasPrefix("syscall=") {
            return Int32(field.dropFirst("syscall=".count).prefix { $0.isNumber })
        }
        return nil
    }
}
