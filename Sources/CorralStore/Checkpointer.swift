internal import CorralThreads
internal import GRDB
import Synchronization

/// Copies the WAL back into the database file on its own thread and its own
/// connection, so that a commit never pays for it.
///
/// Left to itself SQLite checkpoints inside the commit that makes the WAL
/// reach 1,000 pages: that commit then copies ~4 MB and takes tens of
/// milliseconds instead of a fraction of one (the engine waits on commits: it
/// is the tail of the reaction latency). Here the writer's automatic
/// checkpoint is raised to a backstop (`backstopPages`, reached only when this
/// thread falls behind or fails), and this thread runs a PASSIVE checkpoint
/// every `interval`: PASSIVE never waits for the writer or the readers and
/// never blocks them; what it cannot copy yet it copies next time.
final class Checkpointer: Sendable {
    /// The writer's own automatic checkpoint, a backstop only (≈ 16 MB of WAL).
    static let backstopPages = 4000

    struct Progress: Sendable {
        var rounds = 0
        /// Frames in the WAL and frames copied back, at the last round.
        var walFrames = 0
        var checkpointedFrames = 0
        var lastError: String?
    }

    private final class Shared: Sendable {
        let progress = Mutex(Progress())
        let closed = Mutex(false)
    }

    private let connection: DatabaseQueue
    private let shared = Shared()
    /// Runs a round every `interval`, and at once when one is asked for.
    /// Bookkeeping: at nice 10, never ahead of the watcher or the engine for the CPU.
    private let thread: WorkerThread<Void>

    init(path: String, interval: Duration) throws {
        var configuration = Configuration()
        configuration.label = "corral-checkpoint"
        // A connection that only checkpoints: nothing here waits on a lock.
        configuration.busyMode = .immediateError
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA wal_autocheckpoint = 0") }
        let connection = try DatabaseQueue(path: path, configuration: configuration)
        let shared = shared
        self.connection = connection
        thread = WorkerThread(name: "corral-ckpt", nice: 10, interval: interval) { _ in
            let result = Result { try connection.inDatabase { db in try db.checkpoint(.passive) } }
            shared.progress.withLock { progress in
                progress.rounds += 1
                switch result {
                case .success(let frames):
                    progress.walFrames = frames.walFrameCount
                    progress.checkpointedFrames = frames.checkpointedFrameCount
                    progress.lastError = nil
                case .failure(let error):
                    progress.lastError = String(describing: error)
                }
            }
        }
    }

    var progress: Progress { shared.progress.withLock { $0 } }

    /// Runs one round now and returns when it is done (tests).
    func checkpointNow() {
        thread.enqueue(())
        thread.drain()
    }

    /// Stops the thread (after its current round) and closes its connection
    /// (once: later calls do nothing).
    func stop() throws {
        thread.stopAndWait()
        guard
            shared.closed.withLock({ closed in
                defer { closed = true }
                return !closed
            })
        else { return }
        try connection.close()
    }
}
