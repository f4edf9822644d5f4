import CorralThreads
import Foundation
import Synchronization
import Testing

/// `drain` and `drained` wait for what was queued before them, not for an
/// empty queue: under a steady stream (the committer during a burst of
/// ladder steps) the queue never empties, and a reader waited for seconds.
@Suite("WorkerThread drains")
struct WorkerThreadTests {
    /// A worker whose each call takes 2 ms, fed one item a millisecond until `stop` is set.
    final class Count: Sendable {
        let value = Mutex(0)
    }

    final class Stream: Sendable {
        let count = Count()
        let stop = Mutex(false)
        let worker: WorkerThread<Int>

        init() {
            let count = count
            worker = WorkerThread(name: "test-stream") { batch in
                usleep(2_000)
                count.value.withLock { $0 += batch.count }
            }
        }

        func feed() -> Thread {
            let thread = Thread { [self] in
                while !stop.withLock({ $0 }) {
                    worker.enqueue(1)
                    usleep(1_000)
                }
            }
            thread.start()
            return thread
        }
    }

    @Test("drain returns while others keep queueing, with everything queued before it handled")
    func drainUnderStream() {
        let stream = Stream()
        _ = stream.feed()
        defer { stream.stop.withLock { $0 = true } }
        usleep(50_000)
        for _ in 0..<20 {
            stream.worker.enqueue(1)
            stream.worker.drain()
        }
        // Each drain returned while the feeder was still going (it stops only now).
        #expect(stream.stop.withLock { !$0 })
        #expect(stream.count.value.withLock { $0 } >= 20)
    }

    @Test("drained resumes the task while others keep queueing")
    func drainedUnderStream() async {
        let stream = Stream()
        _ = stream.feed()
        defer { stream.stop.withLock { $0 = true } }
        try? await Task.sleep(for: .milliseconds(50))
        for _ in 0..<20 {
            let before = stream.count.value.withLock { $0 }
            stream.worker.enqueue(1)
            await stream.worker.drained()
            #expect(stream.count.value.withLock { $0 } > before)
        }
        #expect(stream.stop.withLock { !$0 })
    }
}
