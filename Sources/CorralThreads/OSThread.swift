internal import CorralLinux

#if canImport(Glibc)
    import Glibc
#endif

/// Starts named, detached pthreads for Corral's helper threads (no Foundation:
/// the agent library links this too).
public enum OSThread {
    /// Runs `body` on a new thread named `name` (≤ 15 bytes show in ps/top),
    /// at `nice` when given, with every asynchronous signal blocked: a
    /// process-directed SIGTERM must reach the thread that waits for it, never
    /// a helper whose default action ends the process. When no thread can be
    /// created (the process is at its thread limit) `body` runs on the caller.
    public static func start(name: String, nice: Int32? = nil, _ body: @escaping @Sendable () -> Void) {
        let context = Unmanaged.passRetained(Context(name: name, nice: nice, body: body))
        var thread = pthread_t()
        let result = pthread_create(
            &thread, nil,
            { raw in
                let context = Unmanaged<Context>.fromOpaque(raw!).takeRetainedValue()
                context.prepare()
                context.body()
                return nil
            }, context.toOpaque())
        if result == 0 {
            pthread_detach(thread)
        } else {
            context.release()
            body()
        }
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
