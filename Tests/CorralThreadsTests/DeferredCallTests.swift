import CorralThreads
import Synchronization
import Testing

/// `corral run`'s deferred attach: made after its delay unless finished first,
/// and `finish` waits for a call already begun.
@Suite("DeferredCall")
struct DeferredCallTests {
    final class Calls: Sendable {
        let count = Mutex(0)
    }

    @Test("finished before its delay: never made")
    func cancelledBeforeTheDelay() {
        let calls = Calls()
        let call = DeferredCall(name: "test-deferred", delay: .seconds(30)) { calls.count.withLock { $0 += 1 } }
        #expect(call.finish() == false)
        #expect(calls.count.withLock { $0 } == 0)
    }

    @Test("past its delay: made once, and finish waits until it has returned")
    func madeAfterTheDelay() {
        let calls = Calls()
        let started = Latch()
        let call = DeferredCall(name: "test-deferred", delay: .milliseconds(1)) {
            started.signal()
            usleepForTest(50_000)
            calls.count.withLock { $0 += 1 }
        }
        started.wait()
        #expect(call.finish() == true)
        #expect(calls.count.withLock { $0 } == 1, "finish returned only after the call had")
        #expect(call.finish() == true, "a second finish says the same")
    }
}

#if canImport(Glibc)
    import Glibc
    func usleepForTest(_ microseconds: UInt32) { usleep(microseconds) }
#endif
