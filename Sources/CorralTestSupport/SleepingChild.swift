import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A pid no process can have (above PID_MAX_LIMIT): signals to it fail with ESRCH.
public let ghostPID: Int32 = 5_000_001

public struct SpawnFailure: Error {
    public var errno: Int32

    public init(errno: Int32) { self.errno = errno }
}

/// A real `sleep` to adopt and signal, started with no signal blocked or
/// ignored (Foundation's Process passes on the calling thread's mask, in
/// which the test runner's threads block SIGTERM).
public final class SleepingChild: Sendable {
    public let pid: Int32

    public init(seconds: Int = 120) throws {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let words: [String] = ["/usr/bin/sleep", String(seconds)]
        let arguments = words.map { strdup($0) } + [nil]
        defer { arguments.forEach { free($0) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, "/usr/bin/sleep", nil, &attributes, arguments, environ)
        guard result == 0 else { throw SpawnFailure(errno: result) }
        self.pid = pid
        // posix_spawn returns when the exec has begun, before the new
        // command line is in place; adopting reads it.
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline,
            (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8))?.hasPrefix("/usr/bin/sleep") != true
        {
            usleep(1_000)
        }
    }

    /// Waits up to `timeout` for the child to end; the signal that ended it, nil if it exited or still runs.
    public func waitForSignal(timeout: Duration = .seconds(10)) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        var status: Int32 = 0
        while ContinuousClock.now < deadline {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid { return status & 0x7f == 0 ? nil : status & 0x7f }
            if result < 0 { return nil }
            usleep(5_000)
        }
        return nil
    }

    /// Kills and reaps the child (once; later calls do nothing).
    public func stop() {
        if kill(pid, SIGKILL) == 0 { _ = waitForSignal() }
    }
}
