internal import CCorralLinux
import Foundation
import Synchronization

/// A thread of its own that hands what is queued to `handle`, in order: all
/// that queued up while the previous call ran, in one call. Any thread may
/// queue; `drain` waits until everything queued so far is handled. After
/// `stop` (which lets the queue empty first) items are handled on the
/// caller's thread. The engine's committer and background worker.
final class BatchingThread<Item: Sendable>: Sendable {
    private struct Queue {
        var items: [Item] = []
        var busy = false
        var stopped = false
    }

    /// Shared with the thread.
    private final class Shared: Sendable {
        let queue = Mutex(Queue())
        let condition = NSCondition()
        let handle: @Sendable ([Item]) -> Void

        init(handle: @escaping @Sendable ([Item]) -> Void) { self.handle = handle }

        func run() {
            while true {
                condition.lock()
                while queue.withLock({ $0.items.isEmpty && !$0.stopped }) { condition.wait() }
                let batch = queue.withLock { queue in
                    defer { queue.items.removeAll() }
                    queue.busy = !queue.items.isEmpty
                    return queue.items
                }
                condition.unlock()
                if batch.isEmpty { return }  // stopped, nothing left
                handle(batch)
                condition.lock()
                queue.withLock { $0.busy = false }
                condition.broadcast()
                condition.unlock()
            }
        }
    }

    private let shared: Shared

    init(name: String, handle: @escaping @Sendable ([Item]) -> Void) {
        let shared = Shared(handle: handle)
        self.shared = shared
        let thread = Thread {
            _ = name.withCString { corral_set_thread_name($0) }
            _ = corral_block_async_signals()
            shared.run()
        }
        thread.start()
    }

    /// Queues `item`; after `stop` it is handled at once, on this thread.
    func enqueue(_ item: Item) {
        shared.condition.lock()
        let accepted = shared.queue.withLock { queue in
            guard !queue.stopped else { return false }
            queue.items.append(item)
            return true
        }
        shared.condition.broadcast()
        shared.condition.unlock()
        if !accepted { shared.handle([item]) }
    }

    /// Returns once everything queued so far is handled.
    func drain() {
        shared.condition.lock()
        while shared.queue.withLock({ !$0.items.isEmpty || $0.busy }) { shared.condition.wait() }
        shared.condition.unlock()
    }

    /// Handles what is queued, then ends the thread.
    func stop() {
        shared.condition.lock()
        shared.queue.withLock { $0.stopped = true }
        shared.condition.broadcast()
        shared.condition.unlock()
    }
}
