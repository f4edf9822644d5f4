internal import CorralLinux
internal import Foundation
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
        var stopped = false
        var requested = 0
        var served = 0
    }

    private let connection: DatabaseQueue
    private let interval: Duration
    private let condition = NSCondition()
    private let state = Mutex(Progress())
    private let finished = Mutex(false)

    init(path: String, interval: Duration) throws {
        var configuration = Configuration()
        configuration.label = "corral-checkpoint"
        // A connection that only checkpoints: nothing here waits on a lock.
        configuration.busyMode = .immediateError
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA wal_autocheckpoint = 0") }
        connection = try DatabaseQueue(path: path, configuration: configuration)
        self.interval = interval
        let thread = Thread { [self] in
            // Signals are for the thread that waits for them; this one runs on without.
            try? Signals.blockAsynchronous()
            loop()
        }
        thread.name = "corral-checkpoint"
        thread.start()
    }

    var progress: Progress { state.withLock { $0 } }

    /// Runs one round now and returns when it is done (tests).
    func checkpointNow() {
        condition.lock()
        let mine = state.withLock { state in
            state.requested += 1
            return state.requested
        }
        condition.signal()
        condition.unlock()
        while state.withLock({ !$0.stopped && $0.served < mine }) { usleep(1000) }
    }

    /// Stops the thread (after its current round) and closes its connection.
    func stop() {
        condition.lock()
        state.withLock { $0.stopped = true }
        condition.signal()
        condition.unlock()
        while !finished.withLock({ $0 }) { usleep(1000) }
        try? connection.close()
    }

    private func loop() {
        // Bookkeeping: never ahead of the watcher or the engine for the CPU.
        // Both best effort: the thread works the same at nice 0 and unnamed.
        try? CurrentThread.setNice(10)
        try? CurrentThread.setName("corral-ckpt")
        let seconds = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
        while true {
            condition.lock()
            let deadline = Date(timeIntervalSinceNow: seconds)
            while state.withLock({ !$0.stopped && $0.requested == $0.served }), condition.wait(until: deadline) {}
            let serving = state.withLock { $0.requested }
            condition.unlock()
            if state.withLock({ $0.stopped }) { break }
            let result = Result { try connection.inDatabase { db in try db.checkpoint(.passive) } }
            state.withLock { progress in
                progress.rounds += 1
                progress.served = serving
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
        finished.withLock { $0 = true }
    }
}
