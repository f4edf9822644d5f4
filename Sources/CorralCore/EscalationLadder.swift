/// Settings of the escalation ladder (from the configuration).
public struct LadderSettings: Equatable, Codable, Sendable {
    public var policy: EscalationPolicy
    /// A warning for the same resource and violation kind is not repeated within this time (default: 60 s).
    public var alertInterval: Duration
    /// A violation not observed for this long has cleared (default: 2.5 sampling intervals).
    public var clearAfter: Duration
    /// A scale-down request asks for this share of the violated limit (default: 0.8).
    public var scaleDownTarget: Double
    /// … within this time (default: 30 s).
    public var scaleDownDeadline: Duration

    public init(
        policy: EscalationPolicy = .seed, alertInterval: Duration = .seconds(60), clearAfter: Duration = .milliseconds(2500),
        scaleDownTarget: Double = 0.8, scaleDownDeadline: Duration = .seconds(30)
    ) {
        self.policy = policy
        self.alertInterval = alertInterval
        self.clearAfter = clearAfter
        self.scaleDownTarget = scaleDownTarget
        self.scaleDownDeadline = scaleDownDeadline
    }
}

/// What the ladder asks the engine to do. The engine carries it out and
/// records the real outcome; the ladder never assumes success.
public enum LadderCommand: Equatable, Codable, Sendable {
    case warn(Violation)
    /// Lower the resource's limit by `factor` (cpu.max quota, memory.high, pids.max).
    case throttle(Violation, factor: Double)
    /// The violation cleared: put back what throttling lowered.
    case restore(agent: String, resource: Resource)
    /// Freeze the agent (cgroup.freeze, confirmed by cgroup.events).
    case suspend(Violation)
    /// Notice and SIGTERM now, cgroup.kill after `grace` unless it has exited.
    case terminate(Violation, grace: Duration)
    case scaleDown(Violation, ScaleDownRequest)
    /// A scale-down deadline passed: `met` when usage reached the target.
    case scaleDownResolved(agent: String, request: ScaleDownRequest, usage: Double?, met: Bool)
    case migrate(Violation)
    case custom(Violation)

    /// The action this command records in the history.
    public var action: EnforcementAction? {
        switch self {
        case .warn: .warn
        case .throttle: .throttle
        case .restore: nil
        case .suspend: .suspend
        case .terminate: .terminate
        case .scaleDown, .scaleDownResolved: .scaleDown
        case .migrate: .migrate
        case .custom: .custom
        }
    }
}

/// The escalation state of one agent: a pure state machine fed with
/// observations and the time.
///
/// A violation that persists walks up its ladder of steps, each firing when
/// its delay since the violation began has passed *and* an observation at or
/// after that moment still shows the violation (a violation that cleared while
/// its delay ran is never acted on):
///
///     soft  → warn
///     burst → warn, throttle
///     hard  → warn, throttle, … up to the limit's action:
///             suspend; suspend, terminate; scale_down; migrate; custom
///
/// A step's delay is measured from when the violation first reached a kind
/// that takes that step (a soft violation that turns hard starts the clock of
/// suspend and terminate only then), and due times never decrease along the
/// ladder (defaults: warn 0, throttle 30 s, suspend 5 min, terminate 10 min).
/// A violation that reaches a more severe kind is warned about again (rate-limited).
/// A scale-down is judged by observations at or after its deadline: usage at
/// most the target has met it, which ends the episode as a clear does (its
/// throttle restored; going over again starts a new episode and a new
/// request); usage over it while the violation is still seen has missed it,
/// which escalates to suspend, and terminate after the policy's gap between
/// the two (default: 5 min). A violation unseen for
/// `clearAfter` has cleared: its throttle is restored and the ladder starts
/// over next time. Warnings are rate-limited per resource and kind.
public struct AgentLadder: Equatable, Codable, Sendable {
    public let agent: String
    /// Ongoing violations, by resource.
    public private(set) var episodes: [Resource: Episode] = [:]
    /// When a warning was last emitted, by "resource.kind".
    public private(set) var lastWarned: [String: Timestamp] = [:]
    /// The product of throttle factors applied to a resource and not yet restored.
    public private(set) var throttled: [Resource: Double] = [:]
    public private(set) var scaleDowns: [Resource: ScaleDownRequest] = [:]
    /// The latest usage seen per resource (a reading, else the current of a violation).
    public private(set) var usage: [Resource: Double] = [:]
    /// When the agent was last observed, with or without violations: a step or
    /// deadline due before then has been re-checked.
    public private(set) var lastObserved: Timestamp?
    public private(set) var suspended = false
    public private(set) var terminating = false
    /// Degradation and recovery of each resource (nil in states saved before
    /// degradation existed); kept here so that it persists with the ladder.
    public var degradation: [Resource: DegradationTracker]?
    /// The host ladder's steps in force on this agent (nil: none); kept here so that a
    /// restarted daemon can still undo them (`HostPressureLadder(restoring:)`).
    public var hostSteps: [HostPressureLadder.Step]?

    /// One ongoing violation of one resource.
    public struct Episode: Equatable, Codable, Sendable {
        /// The latest observation of it.
        public var violation: Violation
        public var since: Timestamp
        /// When an observation last showed it: only a sighting re-checks a step.
        public var lastSeen: Timestamp
        /// Steps already taken, in order.
        public var fired: [EnforcementAction]
        /// When a restarted daemon took it up again (`resume(at:)`): it does
        /// not clear before this plus `clearAfter`, though nobody saw it meanwhile.
        public var resumed: Timestamp?
        /// When each kind was first reached in this episode (nil: only `since`, for the first kind).
        public var reached: [ViolationKind: Timestamp]?
        /// Kinds that got their warning in this episode.
        public var warned: [ViolationKind]?
        /// When a missed scale-down escalated this episode to suspend: terminate
        /// follows after the policy's gap between suspend and terminate.
        public var escalated: Timestamp?

        /// When a missed scale-down's terminate falls due.
        public func escalatedTerminateDue(_ policy: EscalationPolicy) -> Timestamp? {
            guard let escalated, !fired.contains(.terminate) else { return nil }
            return escalated + max(.zero, policy.delay(for: .terminate) - policy.delay(for: .suspend))
        }

        /// When `kind` was first reached (nil: not yet).
        public func reachedAt(_ kind: ViolationKind) -> Timestamp? {
            reached?[kind] ?? (kind == violation.kind || (reached == nil && kind <= violation.kind) ? since : nil)
        }

        /// Due times of the steps of the current kind under `limit`: each
        /// counts from the earliest reached kind that takes the step.
        public func schedule(under limit: ResourceLimit, policy: EscalationPolicy) -> [(EnforcementAction, Timestamp)] {
            var previous = Timestamp(milliseconds: Int64.min)
            return AgentLadder.steps(for: violation.kind, under: limit).map { step in
                let base =
                    ViolationKind.allCases
                    .filter { AgentLadder.steps(for: $0, under: limit).contains(step) }
                    .compactMap { reachedAt($0) }
                    .min() ?? since
                previous = max(previous, base + policy.delay(for: step))
                return (step, previous)
            }
        }

        /// Whether `step` still has to fire: each step once per episode, but a
        /// warning again whenever the violation reaches a more severe kind.
        func pending(_ step: EnforcementAction) -> Bool {
            guard step == .warn else { return !fired.contains(step) }
            let warnedKinds = warned ?? (fired.contains(.warn) ? [violation.kind] : [])
            return warnedKinds.max().map { violation.kind > $0 } ?? true
        }

        /// Clearing counts from here: the latest sighting or resumption.
        var heldUntil: Timestamp { max(lastSeen, resumed ?? lastSeen) }
    }

    public init(agent: String) {
        self.agent = agent
    }

    /// The steps a violation of `kind` walks under `limit`.
    public static func steps(for kind: ViolationKind, under limit: ResourceLimit) -> [EnforcementAction] {
        if kind == .hostPressure { return [] }
        return switch kind.action(under: limit) {
        case .warn: [.warn]
        case .throttle: [.warn, .throttle]
        case .suspend: [.warn, .throttle, .suspend]
        case .terminate: [.warn, .throttle, .suspend, .terminate]
        case .scaleDown: [.warn, .throttle, .scaleDown]
        case .migrate: [.warn, .throttle, .migrate]
        case .custom: [.warn, .throttle, .custom]
        }
    }

    /// When each step becomes due: the start plus the largest delay up to it.
    public static func schedule(
        _ steps: [EnforcementAction], since: Timestamp, policy: EscalationPolicy
    ) -> [(EnforcementAction, Timestamp)] {
        var delay = Duration.zero
        return steps.map { step in
            delay = max(delay, policy.delay(for: step))
            return (step, since + delay)
        }
    }

    /// Feeds one observation of the agent: the violations it shows now (at
    /// most one per resource) and the usage figures.
    public mutating func observe(_ violations: [Violation], usage readings: [Resource: Double], at now: Timestamp) {
        lastObserved = max(lastObserved ?? now, now)
        usage.merge(readings) { _, new in new }
        for violation in violations where violation.agent == agent {
            // Resources measured or reported by the agent come without a reading:
            // the violation's figure is the freshest usage known.
            if readings[violation.resource] == nil { usage[violation.resource] = violation.current }
            if var episode = episodes[violation.resource] {
                var reached = episode.reached ?? [episode.violation.kind: episode.since]
                if reached[violation.kind] == nil { reached[violation.kind] = now }
                episode.reached = reached
                episode.violation = violation
                episode.lastSeen = max(episode.lastSeen, now)
                episodes[violation.resource] = episode
            } else {
                episodes[violation.resource] = Episode(
                    violation: violation, since: now, lastSeen: now, fired: [], reached: [violation.kind: now], warned: [])
            }
        }
    }

    /// Clears stale violations, fires the steps that are due and resolves
    /// scale-down deadlines. Returns what the engine must do, in order.
    public mutating func advance(to now: Timestamp, limits: LimitSet, settings: LadderSettings) -> [LadderCommand] {
        var commands: [LadderCommand] = []

        for resource in episodes.keys.sorted() {
            guard let episode = episodes[resource], now - episode.heldUntil > settings.clearAfter else { continue }
            episodes[resource] = nil
            if throttled.removeValue(forKey: resource) != nil {
                commands.append(.restore(agent: agent, resource: resource))
            }
            if let request = scaleDowns.removeValue(forKey: resource) {
                // A figure above the target is the last violation's, from before it cleared.
                let current = usage[resource].flatMap { $0 <= request.target ? $0 : nil }
                commands.append(.scaleDownResolved(agent: agent, request: request, usage: current, met: true))
            }
        }

        for resource in scaleDowns.keys.sorted() {
            guard let request = scaleDowns[resource], let met = verdict(on: request) else { continue }
            scaleDowns[resource] = nil
            let current = usage[resource]
            commands.append(.scaleDownResolved(agent: agent, request: request, usage: current, met: met))
            if met {
                // The agent relieved the pressure: the episode ends as a clear does,
                // so a new crossing starts afresh (warn, throttle, a new request).
                episodes[resource] = nil
                if throttled.removeValue(forKey: resource) != nil {
                    commands.append(.restore(agent: agent, resource: resource))
                }
            } else if let episode = episodes[resource] {
                episodes[resource]?.fired.append(.suspend)
                episodes[resource]?.escalated = now
                if !suspended, !terminating {
                    suspended = true
                    commands.append(.suspend(episode.violation))
                }
            }
        }

        for resource in episodes.keys.sorted() {
            guard var episode = episodes[resource], let limit = limits[resource] else { continue }
            for (step, due) in episode.schedule(under: limit, policy: settings.policy) where episode.pending(step) {
                // Due, and re-checked: an observation at or after the due time still shows the violation.
                guard now >= due, episode.lastSeen >= due else { break }
                if step == .warn { episode.warned = (episode.warned ?? []) + [episode.violation.kind] }
                if !episode.fired.contains(step) { episode.fired.append(step) }
                if let command = fire(step, episode.violation, at: now, settings: settings) {
                    commands.append(command)
                }
            }
            // A missed scale-down walks on: suspend (above), then terminate.
            if let due = episode.escalatedTerminateDue(settings.policy), now >= due, episode.lastSeen >= due {
                episode.fired.append(.terminate)
                if let command = fire(.terminate, episode.violation, at: now, settings: settings) { commands.append(command) }
            }
            episodes[resource] = episode
        }
        return commands
    }

    /// Whether a scale-down met its target, once an observation at or after its
    /// deadline tells: missed only when that observation still shows the
    /// violation (the re-check before escalating); nil while undecided. A
    /// violation no longer shown either returns (missed) or clears (met).
    private func verdict(on request: ScaleDownRequest) -> Bool? {
        guard let observed = lastObserved, observed >= request.deadline else { return nil }
        if let current = usage[request.resource], current <= request.target { return true }
        guard let episode = episodes[request.resource], episode.lastSeen >= request.deadline else { return nil }
        return false
    }

    private mutating func fire(_ step: EnforcementAction, _ violation: Violation, at now: Timestamp, settings: LadderSettings)
        -> LadderCommand?
    {
        switch step {
        case .warn:
            let key = "\(violation.resource.rawValue).\(violation.kind.rawValue)"
            if let last = lastWarned[key], now - last < settings.alertInterval { return nil }
            lastWarned[key] = now
            return .warn(violation)
        case .throttle:
            let factor = ThrottleFactor.forExcess(violation.excessRatio)
            throttled[violation.resource] = (throttled[violation.resource] ?? 1) * factor
            return .throttle(violation, factor: factor)
        case .suspend:
            guard !suspended, !terminating else { return nil }
            suspended = true
            return .suspend(violation)
        case .terminate:
            guard !terminating else { return nil }
            terminating = true
            return .terminate(violation, grace: settings.policy.terminationGrace)
        case .scaleDown:
            let request = ScaleDownRequest(
                resource: violation.resource, current: violation.current,
                target: violation.limit * settings.scaleDownTarget, deadline: now + settings.scaleDownDeadline)
            scaleDowns[violation.resource] = request
            return .scaleDown(violation, request)
        case .migrate:
            return .migrate(violation)
        case .custom:
            return .custom(violation)
        }
    }

    /// The earliest time a pending step or deadline may fire (the engine
    /// observes the agent then); nil when nothing is pending.
    ///
    /// A step or deadline that an observation at or after it did not confirm
    /// waits for the next observation showing the violation, at the latest
    /// the one at the clear time; it is not reported again, so an engine that
    /// samples at `nextDue` does not spin on a time already past.
    /// No violation and no pending request: nothing is ever due
    /// (`nextDue` is nil), whatever the limits and settings.
    public var isQuiet: Bool { episodes.isEmpty && scaleDowns.isEmpty }

    public func nextDue(limits: LimitSet, settings: LadderSettings) -> Timestamp? {
        func rechecked(_ due: Timestamp) -> Bool { lastObserved.map { $0 >= due } ?? false }
        var times: [Timestamp] = []
        for request in scaleDowns.values where verdict(on: request) != nil || !rechecked(request.deadline) {
            times.append(request.deadline)
        }
        for (resource, episode) in episodes {
            times.append(episode.heldUntil + settings.clearAfter + .milliseconds(1))
            guard let limit = limits[resource] else { continue }
            let pending = episode.schedule(under: limit, policy: settings.policy).first { episode.pending($0.0) }
            if let (_, due) = pending, episode.lastSeen >= due || !rechecked(due) { times.append(due) }
            if let due = episode.escalatedTerminateDue(settings.policy), episode.lastSeen >= due || !rechecked(due) { times.append(due) }
        }
        return times.min()
    }

    /// The operator (or recovery) thawed the agent: suspension may fire again.
    public mutating func noteThawed() { suspended = false }

    /// A suspend command failed: the agent is not frozen.
    public mutating func noteSuspendFailed() { suspended = false }

    /// The engine froze the agent outside the ladder's own steps (a migrate
    /// that fell back to suspend): no other resource freezes it again.
    public mutating func noteSuspended() { suspended = true }

    /// A throttle could not be applied: there is nothing to restore.
    public mutating func noteThrottleFailed(_ resource: Resource, factor: Double) {
        guard let current = throttled[resource] else { return }
        let remaining = current / factor
        throttled[resource] = remaining >= 0.999 ? nil : remaining
    }
}

extension AgentLadder {
    /// After a restart: nobody watched while the daemon was down, so ongoing
    /// violations do not clear before `clearAfter` from now, and the next
    /// observations decide whether they still hold: a step that fell due
    /// meanwhile fires only when one of them shows the violation (the
    /// downtime is no sighting). Start times and fired steps are kept, so the
    /// ladder continues where it was.
    public mutating func resume(at now: Timestamp) {
        for resource in episodes.keys {
            episodes[resource]?.resumed = now
        }
    }
}
