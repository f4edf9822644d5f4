import CorralThreads

/// A thread that runs jobs one at a time, in order: the engine's store work
/// that need not hold it up — usage minutes, analysis, recommendations — and,
/// on a second one, agents' starts (cgroup and process).
///
/// Not at a lower priority: these jobs take SQLite's write lock, and a
/// low-priority thread preempted while holding it makes the engine's next
/// commit wait (measured: a nice-10 worker's 420 ms flush held up a commit
/// for 330 ms). Jobs keep their transactions short instead.
final class BackgroundWorker: Sendable {
    private let thread: WorkerThread<@Sendable () -> Void>

    init(name: String) {
        thread = WorkerThread(name: name) { jobs in
            for job in jobs { job() }
        }
    }

    /// Queues `job`; after `stop` it runs on the caller's thread instead.
    func async(_ job: @escaping @Sendable () -> Void) { thread.enqueue(job) }

    /// Runs `body` on the thread, in order with the other jobs; the task
    /// waits suspended (no thread of the cooperative pool is held).
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<T, any Error>) in
            async { done.resume(with: Result { try body() }) }
        }
    }

    /// Lets the queued jobs run, then ends the thread.
    func stop() { thread.stop() }
}
