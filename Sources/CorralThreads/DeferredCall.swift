/// A call made on a thread of its own once `delay` has passed, unless it is
/// cancelled first (`corral run` attaching its command to the daemon only once
/// the command has run for a while: most short commands end before).
///
/// Owner of its state: the thread it starts sets `began` once, before the
/// call; `finish` reads it after that thread has ended.
public final class DeferredCall: @unchecked Sendable {
    private let cancelled = Latch()
    private let ended = Latch()
    private var began = false  // written by the call's thread before `ended`; read after it

    /// Starts the wait for `delay`, then `body`, on a new thread.
    public init(name: String, delay: Duration, _ body: @escaping @Sendable () -> Void) {
        OSThread.start(name: name) { [self] in
            defer { ended.signal() }
            if cancelled.wait(for: delay) { return }
            began = true
            body()
        }
    }

    /// Keeps the call from beginning if it has not yet; otherwise waits until
    /// it has returned. Whether it was made.
    @discardableResult
    public func finish() -> Bool {
        cancelled.signal()
        ended.wait()
        return began
    }
}
