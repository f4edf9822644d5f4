import CorralLinux
import Foundation
import Synchronization
import SystemPackage
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("syscall layer")
struct SyscallTests {
    @Test func aFailedCallCarriesItsErrno() {
        #expect(valueOrErrno(close(-1)) == .failure(.badFileDescriptor))
        #expect(valueOrErrno(Int32(7)) == .success(7))
        #expect(throws: Errno.noSuchFileOrDirectory) { try pointerOrErrno(fopen("/nonexistent/corral", "r")).get() }
    }

    @Test func anInterruptedCallIsMadeAgainAndOnlyThat() {
        var calls = 0
        let interruptedTwice = retryOnInterrupt { () -> Int32 in
            calls += 1
            if calls < 3 {
                errno = EINTR
                return -1
            }
            return 42
        }
        #expect(interruptedTwice == .success(42))
        #expect(calls == 3)

        calls = 0
        let refused = retryOnInterrupt { () -> Int32 in
            calls += 1
            errno = EAGAIN
            return -1
        }
        #expect(refused == .failure(.resourceTemporarilyUnavailable))
        #expect(calls == 1)
    }

    @Test func aWholeFileAcrossSeveralReads() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("corral-read-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let text = String(repeating: "usage_usec 123456789\n", count: 2000)  // ~42 KB: six 8 KiB chunks
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        #expect(try readWholeFile(atPath: path) == text)
        #expect(throws: Errno.fileTooLarge) { try readWholeFile(atPath: path, maximumBytes: 4096) }
        #expect(throws: Errno.noSuchFileOrDirectory) { try readWholeFile(atPath: path + ".missing") }

        // pread from 0 reads the same again on a held descriptor.
        let held = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec])
        defer { try? held.close() }
        #expect(try held.readToEnd(fromAbsoluteOffset: 0) == text)
        #expect(try held.readToEnd(fromAbsoluteOffset: 0) == text)
        #expect(try held.readToEnd(fromAbsoluteOffset: Int64(text.utf8.count - 3)) == "89\n")
    }

    @Test func aCallThatReturnsItsErrorNumber() {
        #expect(throws: Never.self) { try nothingOrErrno(returned: 0).get() }
        // No such signal: pthread_kill returns EINVAL rather than setting errno.
        #expect(throws: Errno.invalidArgument) { try nothingOrErrno(returned: pthread_kill(pthread_self(), 1000)).get() }
    }

    @Test func pollReportsReadinessTimeoutsAndClosedDescriptors() throws {
        let event = try WakeEvent.open()
        defer { try? event.close() }
        var fds = [Poll.Descriptor(fd: event.rawValue, events: Poll.readable)]
        #expect(Poll.wait(&fds, timeout: 0) == .success(0))
        #expect(fds[0].returned == 0)

        let started = ContinuousClock.now
        #expect(Poll.wait(&fds, timeout: 30) == .success(0))
        #expect(started.duration(to: .now) >= .milliseconds(30))

        try WakeEvent.signal(event)
        #expect(Poll.wait(&fds, timeout: -1) == .success(1))
        #expect(fds[0].returned & Poll.readable != 0)

        // A descriptor that is not open is reported (POLLNVAL), not failed; a negative one is skipped.
        fds = [Poll.Descriptor(fd: Int32.max, events: Poll.readable), Poll.Descriptor(fd: -1, events: Poll.readable)]
        #expect(Poll.wait(&fds, timeout: 0) == .success(1))
        #expect(fds[0].returned == Poll.invalid)
        #expect(fds[1].returned == 0)
    }

    @Test func pollFailsWithItsErrno() throws {
        // More descriptors than RLIMIT_NOFILE allows: EINVAL.
        var limit = rlimit()
        #expect(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0)
        try #require(limit.rlim_cur < 1 << 24, "RLIMIT_NOFILE \(limit.rlim_cur) is too large to exceed in a test")
        var fds = [Poll.Descriptor](repeating: Poll.Descriptor(fd: -1, events: Poll.readable), count: Int(limit.rlim_cur) + 1)
        #expect(Poll.wait(&fds, timeout: 0) == .failure(.invalidArgument))
    }

    /// A signal with a handler interrupts poll(2) whatever SA_RESTART says (EINTR):
    /// the wait goes on, for the time that was left.
    @Test func pollWaitsOnThroughASignal() throws {
        let previous = signal(SIGUSR2) { _ in pollInterruptions.add(1, ordering: .relaxed) }
        defer { signal(SIGUSR2, previous) }
        let event = try WakeEvent.open()
        defer { try? event.close() }
        let fd = event.rawValue

        /// Polls `fd` on a thread of its own with `timeout` ms; signals the thread
        /// after `interruptAfter` ms, then the eventfd `readyAfter` ms later when given.
        func pollInterrupted(timeout: Int32, interruptAfter: UInt32, readyAfter: UInt32?) throws -> PolledOutcome {
            let before = pollInterruptions.load(ordering: .relaxed)
            let polling = PollingThread()
            let thread = Thread {
                do { try Signals.unblock([SIGUSR2]) } catch { Issue.record("cannot unblock SIGUSR2: \(error)") }
                polling.state.withLock { $0.thread = pthread_self() }
                var fds = [Poll.Descriptor(fd: fd, events: Poll.readable)]
                let started = ContinuousClock.now
                let result = Poll.wait(&fds, timeout: timeout)
                let took = started.duration(to: .now)
                polling.state.withLock { $0.outcome = PolledOutcome(result: result, took: took) }
                polling.done.signal()
                polling.signalled.wait()  // alive until pthread_kill is done with it
            }
            thread.start()
            while polling.state.withLock({ $0.thread }) == nil { usleep(1000) }
            usleep(interruptAfter * 1000)
            #expect(pthread_kill(try #require(polling.state.withLock { $0.thread }), SIGUSR2) == 0)
            polling.signalled.signal()
            if let readyAfter {
                usleep(readyAfter * 1000)
                try WakeEvent.signal(event)
            }
            polling.done.wait()
            #expect(pollInterruptions.load(ordering: .relaxed) == before + 1, "the handler ran on the polling thread")
            return try #require(polling.state.withLock { $0.outcome })
        }

        // Interrupted, then ready: the readiness, not EINTR.
        let ready = try pollInterrupted(timeout: 5000, interruptAfter: 100, readyAfter: 100)
        #expect(ready.result == .success(1))
        try WakeEvent.drain(event)

        // Interrupted at 300 of 400 ms, never ready: the time runs out at 400 ms, not at 300 + 400.
        let timedOut = try pollInterrupted(timeout: 400, interruptAfter: 300, readyAfter: nil)
        #expect(timedOut.result == .success(0))
        #expect(timedOut.took >= .milliseconds(400))
        #expect(timedOut.took < .milliseconds(650))
    }
}

/// How many times `pollWaitsOnThroughASignal`'s SIGUSR2 handler ran.
private let pollInterruptions = Atomic<Int>(0)

/// What `Poll.wait` returned on the polling thread, and how long it took.
private struct PolledOutcome: Sendable {
    var result: Result<Int, Errno>
    var took: Duration
}

/// The polling thread of `pollWaitsOnThroughASignal`: its pthread, then its outcome.
private final class PollingThread: Sendable {
    let state = Mutex<(thread: pthread_t?, outcome: PolledOutcome?)>((nil, nil))
    let done = DispatchSemaphore(value: 0)
    let signalled = DispatchSemaphore(value: 0)
}
