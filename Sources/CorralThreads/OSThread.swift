internal import CorralLinux

#if canImport(Glibc)
    import Glibc
#endif

/// Starts named pthreads for Corral's helper threads (no Foundation: the
/// agent library links this too): detached (`start`), or joined by their
/// owner (`startJoinable`).
public enum OSThread {
    /// Runs `body` on a new thread named `name` (≤ 15 bytes show in ps/top),
    /// at `nice` when given, with every asynchronous signal blocked: a
    /// process-directed SIGTERM must reach the thread that waits for it, never
    /// a helper whose default action ends the process. When no thread can be
    /// created (the process is at its thread limit) `body` runs on the caller.
    public static func start(name: String, nice: Int32? = nil, _ body: @escaping @Sendable () -> Void) {
        do {
            pthread_detach(try create(name: name, nice: nice, body))
        } catch {
            body()
        }
    }

    /// `start`'s thread (named, at `nice`, asynchronous signals blocked) left
    /// joinable: its owner joins or detaches it, once. Throws pthread_create's
    /// `Errno` (EAGAIN: the process is at its thread limit); `body` never runs then.
    public static func startJoinable(name: String, nice: Int32? = nil, _ body: @escaping @Sendable () -> Void) throws -> Joinable {
        Joinable(thread: try create(name: name, nice: nice, body))
    }

    /// A thread `startJoinable` started. Join or detach it exactly once.
    public struct Joinable: Sendable {
        fileprivate let thread: pthread_t

        /// Whether the caller runs on this thread (which cannot join itself).
        public var isCurrent: Bool { pthread_equal(thread, pthread_self()) != 0 }

        /// Waits until the thread's body has returned; throws pthread_join's `Errno`.
        public func join() throws {
            try nothingOrErrno(returned: pthread_join(thread, nil)).get()
        }

        /// Lets the thread end on its own; throws pthread_detach's `Errno`.
        public func detach() throws {
            try nothingOrErrno(returned: pthread_detach(thread)).get()
        }
    }

    /// A joinable thread that runs `body` once `Context.prepare` set it up.
    private static func create(name: String, nice: Int32?, _ body: @escaping @Sendable () -> Void) throws -> pthread_t {
        let context = Unmanaged.passRetained(Context(name: name, nice: nice, body: body))
        var thread = pthread_t()
        let created = nothingOrErrno(
            returned: pthread_create(
                &thread, nil,
                { raw in
                    let context = Unmanaged<Context>.fromOpaque(raw!).takeRetainedValue()
                    context.prepare()
                    context.body()
                    return nil
                }, context.toOpaque()))
        if case .failure = created { context.release() }
        try created.get()
        return thread
    }

    private final class Context: Sendable {
        let name: String
        let nice: Int32?
        let body: @Sendable () -> Void

        init(name: String, nice: Int32?, body: @escaping @Sendable () -> Void) {
            self.name = name
            self.nice = nice
            self.body = body
        }

        /// Best effort, each: a thread without its name or its nice value
        /// works the same, and blocking signals fails only for invalid input.
        func prepare() {
            do { try Signals.blockAsynchronous() } catch {}
            do { try CurrentThread.setName(name) } catch {}
            if let nice {
                do { try CurrentThread.setNice(nice) } catch {}
            }
        }
    }
}
