internal import Synchronization

#if canImport(Glibc)
    internal import Glibc
#endif

/// Where the watch loop's monotonic time comes from: the sampling deadlines,
/// the burst cooldown and the spans rates are computed over.
///
/// `.continuous` is real time: deadlines pass by themselves and poll(2)
/// sleeps until the next one. `.manual(time)` moves only when a test calls
/// `time.advance(by:)`, so tests of sampling and cooldowns drive time
/// instead of sleeping and hoping the machine kept up.
public struct WatchTimeSource: Sendable {
    let manual: ManualWatchTime?

    public static let continuous = WatchTimeSource(manual: nil)

    public static func manual(_ time: ManualWatchTime) -> WatchTimeSource { WatchTimeSource(manual: time) }

    var now: ContinuousClock.Instant { manual?.now ?? .now }
}

/// Time for a watcher that moves only when told to, for tests.
///
/// `advance(by:)` moves it and wakes every loop that uses it;
/// `settle()` returns once each of them has done everything that is due
/// and everything the kernel had queued for it, and waits for more.
public final class ManualWatchTime: Sendable {
    private struct State {
        var offset = Duration.zero
        /// Bumped by every `advance` and `settle`: a loop idle at this generation has seen them all.
        var generation = 0
        var loops: [ObjectIdentifier: Loop] = [:]
    }

    private struct Loop {
        var wake: @Sendable () -> Void
        /// The generation the loop last went idle at (-1: never).
        var idleAt = -1
    }

    private let origin = ContinuousClock.now
    private let state = Mutex(State())

    public init() {}

    /// The instant this time has reached.
    public var now: ContinuousClock.Instant { origin.advanced(by: state.withLock { $0.offset }) }

    /// Moves time forward and wakes the loops, which then do what fell due.
    public func advance(by duration: Duration) {
        precondition(duration >= .zero, "time does not go back")
        let wakes = state.withLock { state in
            state.offset += duration
            state.generation += 1
            return state.loops.values.map(\.wake)
        }
        for wake in wakes { wake() }
    }

    /// Waits (in real time, at most `timeout`) until every running loop on
    /// this time is idle: nothing due, nothing queued on its descriptors,
    /// every event sent to its sink. False when that took too long.
    @discardableResult
    public func settle(timeout: Duration = .seconds(10)) -> Bool {
        advance(by: .zero)
        let wanted = state.withLock { $0.generation }
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while state.withLock({ state in state.loops.values.contains { $0.idleAt < wanted } }) {
            if ContinuousClock.now >= deadline { return false }
            usleep(200)
        }
        return true
    }

    /// Advances in steps of at most `step`, settling after each, so that
    /// every deadline on the way is met in order as real time would.
    public func advance(by duration: Duration, step: Duration) {
        precondition(step > .zero, "the step must be positive")
        var left = duration
        while left > .zero {
            let next = min(step, left)
            advance(by: next)
            settle()
            left -= next
        }
    }

    // MARK: For the loop

    var generation: Int { state.withLock { $0.generation } }

    func attach(_ loop: AnyObject, wake: @escaping @Sendable () -> Void) {
        state.withLock { $0.loops[ObjectIdentifier(loop)] = Loop(wake: wake) }
    }

    func detach(_ loop: AnyObject) {
        _ = state.withLock { $0.loops.removeValue(forKey: ObjectIdentifier(loop)) }
    }

    func idle(_ loop: AnyObject, at generation: Int) {
        state.withLock { $0.loops[ObjectIdentifier(loop)]?.idleAt = generation }
    }
}
