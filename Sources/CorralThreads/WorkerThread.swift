/// A thread of its own that hands what is queued to `handle`, in order: all
/// that queued up while the previous call ran, in one call. Any thread may
/// queue; `drain` waits until everything queued so far is handled. With an
/// `interval`, `handle` also runs with nothing queued when that long passed
/// without a call (periodic work). After `stop` (which lets the queue empty
/// first) items are handled on the caller's thread.
///
/// Corral's one way to run queued work on a thread of its own: the engine's
/// committer and background worker, the store's checkpointer.
public final class WorkerThread<Item: Sendable>: @unchecked Sendable {
    private let lock = ConditionLock()
    private let handle: @Sendable ([Item]) -> Void
    private let interval: Duration?
    // Guarded by `lock`.
    private var items: [Item] = []
    private var busy = false
    private var stopped = false
    private var finished = false

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
            let batch: [Item]? = lock.withLock {
                while items.isEmpty && !stopped {
                    if let due = deadline {
                        if !lock.wait(until: due) { break }
                    } else {
                        lock.wait()
                    }
                }
                if items.isEmpty && stopped { return nil }
                busy = true
                defer { items.removeAll() }
                return items
            }
            guard let batch else { break }
            handle(batch)
            if let interval { deadline = ConditionLock.deadline(after: interval) }
            lock.withLock {
                busy = false
                lock.broadcast()
            }
        }
        lock.withLock {
            finished = true
            lock.broadcast()
        }
    }

    /// Queues `item`; after `stop` it is handled at once, on this thread.
    public func enqueue(_ item: Item) {
        let accepted = lock.withLock {
            guard !stopped else { return false }
            items.append(item)
            lock.broadcast()
            return true
        }
        if !accepted { handle([item]) }
    }

    /// Returns once everything queued so far is handled.
    public func drain() {
        lock.withLock {
            while (!items.isEmpty || busy) && !finished { lock.wait() }
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
}
