internal import CCorralLinux
import Foundation
import Synchronization

/// A thread that runs jobs one at a time, in order: the engine's store work
/// that need not hold it up — usage minutes, analysis, recommendations.
///
/// Not at a lower priority: these jobs take SQLite's write lock, and a
/// low-priority thread preempted while holding it makes the engine's next
/// commit wait (measured: a nice-10 worker's 420 ms flush held up a commit
/// for 330 ms). Jobs keep their transactions short instead.
final class BackgroundWorker: Sendable {
    private struct Queue {
        var jobs: [@Sendable () -> Void] = []
        var stopped = false
    }

    /// Shared with the thread, which outlives nothing but its queue.
    private final class Shared: Sendable {
        let queue = Mutex(Queue())
        let condition = NSCondition()

        func run() {
            while true {
                condition.lock()
                while queue.withLock({ $0.jobs.isEmpty && !$0.stopped }) { condition.wait() }
                let (jobs, stopped) = queue.withLock { queue in
                    defer { queue.jobs.removeAll() }
                    return (queue.jobs, queue.stopped)
                }
                condition.unlock()
                for job in jobs { job() }
                if stopped && jobs.isEmpty { return }
            }
        }
    }

    private let shared = Shared()

    init(name: String) {
        let shared = shared
        let thread = Thread {
            _ = name.withCString { corral_set_thread_name($0) }
            shared.run()
        }
        thread.start()
    }

    /// Queues `job`; after `stop` it runs on the caller's thread instead.
    func async(_ job: @escaping @Sendable () -> Void) {
        shared.condition.lock()
        let accepted = shared.queue.withLock { queue in
            guard !queue.stopped else { return false }
            queue.jobs.append(job)
            return true
        }
        shared.condition.signal()
        shared.condition.unlock()
        if !accepted { job() }
    }

    /// Lets the queued jobs run, then ends the thread.
    func stop() {
        shared.condition.lock()
        shared.queue.withLock { $0.stopped = true }
        shared.condition.signal()
        shared.condition.unlock()
    }
}
