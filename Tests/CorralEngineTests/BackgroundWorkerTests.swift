import CorralAPI
import Foundation
import Synchronization
import Testing

@testable import CorralEngine

@Suite("The engine's background worker")
struct BackgroundWorkerTests {
    /// Jobs run in order, one at a time, on the worker's own thread.
    @Test func jobsRunInOrderOffTheCallerAtALowPriority() async {
        let worker = BackgroundWorker(name: "test-bg")
        defer { worker.stop() }
        let seen = Mutex<[Int]>([])
        let running = Mutex(0)
        let overlapped = Mutex(false)
        let onWorker = Mutex(true)
        for index in 0..<1000 {
            worker.async {
                let now = running.withLock { running in
                    running += 1
                    return running
                }
                if now > 1 { overlapped.withLock { $0 = true } }
                if index % 100 == 0, (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) != "test-bg\n" {
                    onWorker.withLock { $0 = false }
                }
                seen.withLock { $0.append(index) }
                running.withLock { $0 -= 1 }
            }
        }
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in worker.async { done.resume() } }
        #expect(seen.withLock { $0 } == Array(0..<1000))
        #expect(!overlapped.withLock { $0 })
        #expect(onWorker.withLock { $0 })
    }

    /// Stopping lets what is queued finish; a job handed over later runs at once.
    @Test func stopDrainsAndLaterJobsRunInline() {
        let worker = BackgroundWorker(name: "test-bg")
        let done = Mutex(0)
        for _ in 0..<100 {
            worker.async {
                usleep(100)
                done.withLock { $0 += 1 }
            }
        }
        worker.stop()
        let deadline = ContinuousClock.now + .seconds(10)
        while done.withLock({ $0 }) < 100, ContinuousClock.now < deadline { usleep(1000) }
        #expect(done.withLock { $0 } == 100)
        let inline = Mutex(false)
        worker.async { inline.withLock { $0 = true } }
        #expect(inline.withLock { $0 })
    }
}
