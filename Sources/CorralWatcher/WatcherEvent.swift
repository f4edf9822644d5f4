public import CorralCgroup
public import CorralCore

/// A cgroup the watcher follows: an agent's leaf (events, pressure, periodic
/// samples) or a group (events only).
public enum WatchSubject: Hashable, Sendable, CustomStringConvertible {
    case agent(String)
    case group(String)

    /// The agent's id, nil for a group.
    public var agent: String? {
        if case .agent(let id) = self { return id }
        return nil
    }

    public var description: String {
        switch self {
        case .agent(let id): "agent \(id)"
        case .group(let name): "group \(name)"
        }
    }
}

/// Why an observation was taken.
public enum ObservationTrigger: Hashable, Sendable {
    /// The kernel changed one of the cgroup's `*.events` files. When several
    /// changed at once, the most telling one: memory.events, then pids.events,
    /// then cgroup.events.
    case event(CgroupFile)
    /// A PSI trigger on `memory.pressure` (`.memory`) or `cpu.pressure` (`.cpu`) fired.
    case pressure(Resource)
    /// The periodic sample.
    case sample
    /// `CgroupWatcher.requestSample(agent:)` or `sampleNow(agent:)`.
    case requested
}

/// A fresh reading of one cgroup and what changed since the previous one.
public struct Observation: Equatable, Sendable {
    public var subject: WatchSubject
    public var trigger: ObservationTrigger
    /// Wall-clock time of the reading (the watcher's injected clock).
    public var at: Timestamp
    /// Monotonic time the watcher woke for this trigger, before reading any
    /// file: subtract it from the time an action is recorded to get the
    /// event-to-action latency.
    public var seenAt: ContinuousClock.Instant
    /// When the watcher had read the files (and handed the observation on).
    public var readAt: ContinuousClock.Instant
    /// When the engine's loop took it off the queue (nil before).
    public var dequeuedAt: ContinuousClock.Instant?
    public var sample: CgroupSample
    /// From `UsageReading.readings(previous:current:elapsed:)` against the
    /// previous observation of this cgroup (counter increases are reported
    /// once). The CPU rate spans at least the minimum CPU window, measured
    /// from the last observation that carried one, so frequent events do not
    /// starve it.
    public var readings: [UsageReading]
    /// Time since the previous observation of this cgroup.
    public var elapsed: Duration
    /// The pressure file's content, for `.pressure` triggers.
    public var pressure: Pressure?

    public init(
        subject: WatchSubject, trigger: ObservationTrigger, at: Timestamp, seenAt: ContinuousClock.Instant,
        readAt: ContinuousClock.Instant? = nil, sample: CgroupSample, readings: [UsageReading], elapsed: Duration, pressure: Pressure? = nil
    ) {
        self.subject = subject
        self.trigger = trigger
        self.at = at
        self.seenAt = seenAt
        self.readAt = readAt ?? seenAt
        self.sample = sample
        self.readings = readings
        self.elapsed = elapsed
        self.pressure = pressure
    }

    /// cgroup.events `populated`: the subtree has live processes.
    public var populated: Bool { sample.events.populated }
    /// cgroup.events `frozen`.
    public var frozen: Bool { sample.events.frozen }

    /// The reading of `resource`, if this observation has one.
    public func reading(_ resource: Resource) -> UsageReading? {
        readings.first { $0.resource == resource }
    }
}

/// What the watcher reports, in order, from its own thread.
public enum WatcherEvent: Equatable, Sendable {
    case observation(Observation)
    /// cgroup.events went from `populated 1` to `populated 0`: the last
    /// process of the subtree ended. Reported once per such change, after
    /// the observation that saw it.
    case emptied(WatchSubject, at: Timestamp)
    /// The cgroup was removed (ENODEV/ENOENT, or its files left inotify).
    /// Reported once; the subject is no longer watched.
    case vanished(WatchSubject, at: Timestamp)
    /// Reading the cgroup failed for another reason (permissions, I/O).
    /// Reported once until a read succeeds again; watching goes on.
    case unreadable(WatchSubject, CgroupError, at: Timestamp)

    public var subject: WatchSubject {
        switch self {
        case .observation(let observation): observation.subject
        case .emptied(let subject, _), .vanished(let subject, _), .unreadable(let subject, _, _): subject
        }
    }
}

/// A PSI trigger: wake when tasks stalled for at least `stall` within `window`.
public struct PressureThreshold: Hashable, Sendable {
    public var stall: Duration
    public var window: Duration

    /// The kernel accepts windows of 500 ms to 10 s and a stall no longer than the window.
    public init(stall: Duration, window: Duration) {
        precondition(stall > .zero && stall <= window, "PSI stall must be positive and at most the window")
        precondition(window >= .milliseconds(500) && window <= .seconds(10), "PSI window must be 500 ms to 10 s")
        self.stall = stall
        self.window = window
    }

    /// 150 ms of stall in 1 s, the kernel documentation's example.
    public static let standard = PressureThreshold(stall: .milliseconds(150), window: .seconds(1))

    /// What is written to the pressure file: "some 150000 1000000".
    public var triggerText: String { "some \(stall.microseconds) \(window.microseconds)" }

    /// The same proportion over a window rounded up to a multiple of 2 s,
    /// which writers without CAP_SYS_RESOURCE need (6.4+); nil when it already is one.
    public var unprivilegedVariant: PressureThreshold? {
        let step: Int64 = 2_000_000
        let window = self.window.microseconds
        guard window % step != 0 else { return nil }
        let rounded = min((window / step + 1) * step, 10_000_000)
        let stall = max(1, stall.microseconds * rounded / window)
        return PressureThreshold(stall: .microseconds(min(stall, rounded)), window: .microseconds(rounded))
    }
}

/// Whether the watcher gets PSI triggers.
public enum PressureTriggerStatus: Equatable, Sendable {
    /// Turned off in the configuration.
    case disabled
    /// Not tried yet: no agent has been watched.
    case untried
    /// Triggers are armed for watched agents (with this threshold).
    case active(PressureThreshold)
    /// The first attempt failed; the watcher does without, by events and sampling.
    case unavailable(reason: String)
}
