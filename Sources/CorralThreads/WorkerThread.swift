/// A thread of its own that hands what is queued to `handle`, in order: all
/// that queued up while the previous call ran, in one call. Any thread may
/// queue; `drain` waits until everything queued so far is handled. With an
/// `interval`, `handle` also runs with nothing queued when that long passed
/// without a call (periodic work). After `stop` (which lets the queue empty
/// first) items are handled on the caller's thread.
///
/// `drain` waits for the items queued before it, not for an empty queue: a
/// steady stream of items (the committer under a burst of ladder steps) never
/// lets the queue empty, and a reader of the store once waited a second for
/// it. Items are numbered as they are queued; a waiter waits for its number.
///
/// Corral's one way to run queued work on a thread of its own: the engine's
/// committer and background worker, the store's checkpointer.
public final class WorkerThread<Item: Sendable>: @unchecked Sendable {
    private let lock = ConditionLock()
    private let handle: @Sendable ([Item]) -> Void
    private let interval: Duration?
    // Guarded by `lock`.
    private var items: [Item] = []
    /// How many items were ever queued, and how many of them were handled.
    private var queued = 0
    private var handled = 0
    private var stopped = false
    private var finished = false
    /// Tasks waiting (`drained`) until `handled` reaches their number.
    private var waiters: [(upTo: Int, continuation: CheckedContinuation<Void, Never>)] = []

    public init(
        name: String, nice: Int32? = nil, interval: Duration? = nil, handle: @escaping @Sendable ([Item]) -> Void
    ) {
        self.handle = handle
        self.interval = interval
        OSThread.start(name: name, nice: nice) { [self] in run() }
    }

    private func run() {
        var deadline = interval.map(ConditionLock.deadline(after:))
        while true {
            let taken: (batch: [Item], upTo: Int)? = lock.withLock {
                while items.isEmpty && !stopped {
                    if let due = deadline {
                        if !lock.wait(until: due) { break }
                    } else {
                        lock.wait()
                    }
                }
                if items.isEmpty && stopped { return nil }
                defer { items.removeAll() }
                return (items, queued)
            }
            guard let taken else { break }
            handle(taken.batch)
            if let interval { deadline = ConditionLock.deadline(after: interval) }
            let ready = lock.withLock {
                handled = taken.upTo
                lock.broadcast()
                return takeWaiters { $0 <= taken.upTo }
            }
            for waiter in ready { waiter.resume() }
        }
        let rest = lock.withLock {
            finished = true
            lock.broadcast()
            return takeWaiters { _ in true }
        }
        for waiter in rest { waiter.resume() }
    }

    /// Under `lock`: removes and returns the waiters whose number `done` says is handled.
    private func takeWaiters(_ done: (Int) -> Bool) -> [CheckedContinuation<Void, Never>] {
        guard !waiters.isEmpty else { return [] }
        var ready: [CheckedContinuation<Void, Never>] = []
        waiters.removeAll { waiter in
            guard done(waiter.upTo) else { return false }
            ready.append(waiter.continuation)
            return true
        }
        return ready
    }

    /// Queues `item`; after `stop` it is handled at once, on this thread.
    public func enqueue(_ item: Item) {
        let accepted = lock.withLock {
            guard !stopped else { return false }
            items.append(item)
            queued += 1
            lock.broadcast()
            return true
        }
        if !accepted { handle([item]) }
    }

    /// Returns once everything queued before the call is handled (not
    /// waiting for what others queue meanwhile). Blocks the calling thread.
    public func drain() {
        lock.withLock {
            let upTo = queued
            while handled < upTo && !finished { lock.wait() }
        }
    }

    /// `drain` without blocking a thread: the task is resumed by the worker
    /// once everything queued before the call is handled.
    public func drained() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let waiting = lock.withLock {
                guard handled < queued && !finished else { return false }
                waiters.append((queued, continuation))
                return true
            }
            if !waiting { continuation.resume() }
        }
    }

    /// Handles what is queued, then ends the thread (without waiting for it).
    public func stop() {
        lock.withLock {
            stopped = true
            lock.broadcast()
        }
    }

    /// `stop`, then waits until the thread has ended (never from the thread itself).
    public func stopAndWait() {
        stop()
        lock.withLock {
            while !finished { lock.wait() }
        }
    }
}

/// A one-time signal a thread can wait for (the synchronous CLI waiting for a
/// task): `wait` returns once `signal` has been called, before or after.
public final class Latch: @unchecked Sendable {
    private let lock = ConditionLock()
    private var signalled = false  // guarded by `lock`

    public init() {}

    public func signal() {
        lock.withLock {
            signalled = true
            lock.broadcast()
        }
    }

    public func wait() {
        lock.withLock {
            while !signalled { lock.wait() }
        }
    }

    /// Waits at most `duration`; whether `signal` was called.
    public func wait(for duration: Duration) -> Bool {
        let deadline = ConditionLock.deadline(after: duration)
        return lock.withLock {
            while !signalled {
                if !lock.wait(until: deadline) { return signalled }
            }
            return true
        }
    }
}
