internal import CSeccomp
public import CorralCore
internal import CorralLinux
internal import Synchronization

#if canImport(Glibc)
    internal import Glibc
#endif

/// Why a filter could not be built.
public struct SeccompError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A filter compiled to classic BPF (an array of `struct sock_filter`), ready
/// for seccomp(SECCOMP_SET_MODE_FILTER) in a child between fork and exec.
public struct CompiledFilter: Sendable, Equatable {
    /// The raw `sock_filter` instructions (8 bytes each).
    public let program: [UInt8]
    public var instructionCount: Int { program.count / 8 }
    /// Whether denied calls go to a user-notification listener.
    public let notifies: Bool
}

/// libseccomp, for per-group syscall policies: the library's version for
/// `doctor`, syscall names, filters compiled in the parent and user notifications.
/// The only Swift code that imports libseccomp.
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

    /// Whether the kernel and library support user notification (denials reach the supervisor).
    public static var supportsNotification: Bool {
        apiLevel >= 5
    }

    /// The native architecture's name as libseccomp spells it, e.g. "x86_64".
    public static var nativeArchitecture: String {
        let token = seccomp_arch_native()
        for (name, value) in [("x86_64", "x86_64"), ("aarch64", "aarch64"), ("x86", "x86"), ("arm", "arm"), ("riscv64", "riscv64")] {
            if seccomp_arch_resolve_name(name) == token { return value }
        }
        return "native"
    }

    /// The native syscall number of `name` (nil: libseccomp does not know it
    /// on this architecture; a negative pseudo number means it exists elsewhere only).
    public static func syscallNumber(_ name: String) -> Int32? {
        let number = seccomp_syscall_resolve_name(name)
        return number == corral_nr_scmp_error() ? nil : number
    }

    /// The name of native syscall `number`, e.g. 101 → "ptrace" on x86_64.
    public static func syscallName(_ number: Int32) -> String? {
        guard let name = seccomp_syscall_resolve_num_arch(corral_scmp_arch_native(), number) else { return nil }
        defer { free(name) }
        return String(cString: name)
    }

    /// Every native syscall name (for suggestions).
    public static let knownNames: [String] = (0..<1024).compactMap { syscallName(Int32($0)) }

    /// The known name closest to a misspelt one, when one is close.
    public static func suggestion(for name: String) -> String? {
        let scored = knownNames.map { ($0, editDistance($0, name)) }.min { $0.1 < $1.1 }
        guard let (best, distance) = scored, distance <= max(2, name.count / 4) else { return nil }
        return best
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8)
        let b = Array(b.utf8)
        var previous = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return a.isEmpty ? b.count : previous[b.count]
    }

    /// The errno a denied call gets under `errno` (and that the supervisor answers with).
    public static let deniedErrno: Int32 = EPERM

    /// Compiles `policy` for the native architecture. `notify`: denied calls
    /// go to a user-notification listener (the supervisor answers EPERM and
    /// records them) instead of failing silently; only for action `errno`.
    /// Foreign architectures and x32 calls kill the process.
    public static func compile(_ policy: SeccompPolicy, notify: Bool) throws(SeccompError) -> CompiledFilter {
        try build(policy, notify: notify, pseudoCode: false)
    }

    /// libseccomp's pseudo-code of the filter (`corral seccomp show`).
    public static func pseudoCode(_ policy: SeccompPolicy, notify: Bool) throws(SeccompError) -> String {
        let filter = try build(policy, notify: notify, pseudoCode: true)
        return String(decoding: filter.program, as: UTF8.self)
    }

    static func build(_ policy: SeccompPolicy, notify: Bool, pseudoCode: Bool) throws(SeccompError) -> CompiledFilter {
        guard let context = seccomp_init(corral_scmp_act_allow()) else { throw SeccompError("seccomp_init failed") }
        defer { seccomp_release(context) }
        // A foreign architecture (i386 int 0x80 on x86_64) or an x32 call: kill the whole process.
        guard seccomp_attr_set(context, SCMP_FLTATR_ACT_BADARCH, corral_scmp_act_kill_process()) == 0 else {
            throw SeccompError("cannot set the bad-architecture action")
        }
        let notifies = notify && policy.action == .errno && supportsNotification
        let denied: UInt32 =
            switch policy.action {
            case .kill: corral_scmp_act_kill_process()
            case .errno: notifies ? corral_scmp_act_notify() : corral_scmp_act_errno(UInt16(deniedErrno))
            }
        for rule in policy.rules {
            guard let number = syscallNumber(rule.syscall) else {
                // The built-in lists name a few calls newer than this libseccomp; a user's
                // unknown name is refused by the configuration reader before this point.
                if policy.deny.contains(rule.syscall) { throw SeccompError("unknown syscall '\(rule.syscall)'") }
                continue
            }
            let action = rule.fixedErrno.map { corral_scmp_act_errno(UInt16($0)) } ?? denied
            let rc: Int32
            if let condition = rule.condition {
                var comparison = scmp_arg_cmp()
                comparison.arg = UInt32(condition.argument)
                switch condition.operation {
                case .maskedEqual(let mask, let value):
                    comparison.op = SCMP_CMP_MASKED_EQ
                    comparison.datum_a = mask
                    comparison.datum_b = value
                case .equal(let value):
                    comparison.op = SCMP_CMP_EQ
                    comparison.datum_a = value
                case .greaterThan(let value):
                    comparison.op = SCMP_CMP_GT
                    comparison.datum_a = value
                }
                rc = seccomp_rule_add_array(context, action, number, 1, &comparison)
            } else {
                rc = seccomp_rule_add_array(context, action, number, 0, nil)
            }
            // -EEXIST: the same rule twice (a deny list repeating the profile).
            guard rc == 0 || rc == -EEXIST else {
                throw SeccompError("cannot add the rule for \(rule.syscall): \(String(cString: strerror(-rc)))")
            }
        }
        var buffer: UnsafeMutablePointer<UInt8>?
        var length = 0
        let rc = corral_seccomp_export(context, pseudoCode ? 1 : 0, &buffer, &length)
        guard rc == 0, let buffer else { throw SeccompError("cannot export the filter: \(String(cString: strerror(-rc)))") }
        defer { free(buffer) }
        return CompiledFilter(program: Array(UnsafeBufferPointer(start: buffer, count: length)), notifies: notifies)
    }
}

extension CompiledFilter {
    /// This filter with its user-notification returns turned into `errno`
    /// returns: what `Seccomp.compile(_, notify: false)` makes of the same
    /// policy, without compiling it again (libseccomp builds the same program
    /// for both; only the deny action's constant differs — `SeccompTests`
    /// checks the bytes for every built-in profile). Nil when this filter does
    /// not notify.
    public func notificationsAsErrno(_ errno: Int32) -> CompiledFilter? {
        guard notifies, program.count % 8 == 0 else { return nil }
        // struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }, native (little-endian) order.
        let retK: UInt16 = 0x06  // BPF_RET | BPF_K
        let notify: UInt32 = 0x7fc0_0000  // SECCOMP_RET_USER_NOTIF
        let replacement: UInt32 = 0x0005_0000 | (UInt32(errno) & 0xffff)  // SECCOMP_RET_ERRNO | errno
        var bytes = program
        for offset in stride(from: 0, to: bytes.count, by: 8) {
            let code = UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
            let k = (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + 4 + $1]) << (8 * UInt32($1)) }
            guard code == retK, k == notify else { continue }
            for index in 0..<4 { bytes[offset + 4 + index] = UInt8(truncatingIfNeeded: replacement >> (8 * UInt32(index))) }
        }
        return CompiledFilter(program: bytes, notifies: false)
    }
}

/// Compiled filters by policy: each policy is compiled once per process.
/// Owned by whoever starts agents (one instance per engine or run); a Mutex
/// guards it because spawns may come from more than one thread, and a
/// compile runs under it, so two threads asking for the same policy compile
/// it once (`corral run` compiles its own policy on a thread while it asks
/// the daemon for the agent's). A plain filter whose notifying twin is here
/// is derived from it, not compiled.
public final class FilterCache: Sendable {
    private struct Key: Hashable {
        var policy: SeccompPolicy
        var notify: Bool
    }
    private let filters = Mutex<[Key: CompiledFilter]>([:])

    public init() {}

    public func filter(for policy: SeccompPolicy, notify: Bool) throws(SeccompError) -> CompiledFilter {
        let key = Key(policy: policy, notify: notify)
        let outcome = filters.withLock { filters -> Result<CompiledFilter, SeccompError> in
            if let cached = filters[key] { return .success(cached) }
            if !notify, let derived = filters[Key(policy: policy, notify: true)]?.notificationsAsErrno(Seccomp.deniedErrno) {
                filters[key] = derived
                return .success(derived)
            }
            do throws(SeccompError) {
                let compiled = try Seccomp.compile(policy, notify: notify)
                filters[key] = compiled
                return .success(compiled)
            } catch {
                return .failure(error)
            }
        }
        return try outcome.get()
    }
}

/// One denied call waiting in the kernel for the supervisor's answer.
public struct SeccompNotification: Sendable {
    public var id: UInt64
    public var pid: Int32
    public var syscall: Int32
}

/// seccomp user notification through libseccomp (seccomp_notify_*): receive
/// a denied call from a listener descriptor, answer it with an errno. Never
/// answers "continue": the call always fails, so the check-then-use race of
/// allowing through notifications (seccomp_unotify(2)) does not arise.
public enum SeccompListener {
    /// Receives one pending notification (the descriptor must be readable); nil
    /// when the process went away meanwhile (ENOENT) or nothing was pending.
    public static func receive(_ fd: Int32) -> Result<SeccompNotification?, SeccompError> {
        var request: UnsafeMutablePointer<seccomp_notif>?
        var response: UnsafeMutablePointer<seccomp_notif_resp>?
        guard seccomp_notify_alloc(&request, &response) == 0, let request, let response else {
            return .failure(SeccompError("seccomp_notify_alloc failed"))
        }
        defer { seccomp_notify_free(request, response) }
        let rc = seccomp_notify_receive(fd, request)
        // libseccomp 2.5 turns a failed ioctl into -ECANCELED and leaves the reason in errno.
        let error = rc == -ECANCELED ? currentErrno.rawValue : -rc
        if rc != 0 && (error == ENOENT || error == EINTR || error == EAGAIN) { return .success(nil) }
        guard rc == 0 else { return .failure(SeccompError("seccomp_notify_receive: \(String(cString: strerror(error)))")) }
        return .success(SeccompNotification(id: request.pointee.id, pid: Int32(request.pointee.pid), syscall: request.pointee.data.nr))
    }

    /// Answers notification `id` with -`error` (the call returns -1, errno = error).
    /// A process that went away meanwhile is not an error.
    public static func deny(_ fd: Int32, id: UInt64, error: Int32) {
        var request: UnsafeMutablePointer<seccomp_notif>?
        var response: UnsafeMutablePointer<seccomp_notif_resp>?
        guard seccomp_notify_alloc(&request, &response) == 0, let request, let response else { return }
        defer { seccomp_notify_free(request, response) }
        response.pointee.id = id
        response.pointee.val = 0
        response.pointee.error = -error
        response.pointee.flags = 0
        _ = seccomp_notify_respond(fd, response)
    }
}
