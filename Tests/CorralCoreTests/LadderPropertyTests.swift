import CorralCore
import Foundation
import Testing

/// Random observation sequences against the ladder's promises. Each
/// scenario draws limits, a policy, settings and a usage walk from a seeded
/// generator, drives the ladder as an engine would (observations, bare
/// timers, failed commands, thaws, restarts through JSON) and checks every
/// command against what the test itself saw.
@Suite("Escalation ladder properties")
struct LadderPropertyTests {
    static let agent = "agent-1"
    /// 2400 scenarios in shards that run in parallel.
    static let shardSize: UInt64 = 200

    @Test(arguments: 0..<12)
    func randomObservationSequencesKeepTheLaddersPromises(shard: Int) async throws {
        var failures: [String] = []
        var commands = 0
        for seed in UInt64(shard) * Self.shardSize..<UInt64(shard + 1) * Self.shardSize {
            // A turn for the other tests: this loop would otherwise hold a thread of the
            // two-thread cooperative pool for many seconds (a CI run's deadlines lapsed so).
            await Task.yield()
            var scenario = Scenario(seed: seed)
            try scenario.run()
            failures += scenario.failures.map { "seed \(seed): \($0)" }
            commands += scenario.commands
            if failures.count > 20 { break }
        }
        #expect(failures.isEmpty, "\(failures.prefix(20).joined(separator: "\n"))")
        #expect(commands > 3000)  // the scenarios do escalate
    }

    /// One random scenario and the facts it checks commands against.
    struct Scenario {
        var rng: SplitMix64
        let limits: LimitSet
        let settings: LadderSettings
        var ladder = AgentLadder(agent: LadderPropertyTests.agent)
        var failures: [String] = []
        var commands = 0

        var now = Timestamp.fake(0)
        /// Usage level per resource as a multiple of its hard limit.
        var level: [Resource: Double] = [:]
        /// The last observation of any kind, and the last one showing each resource's violation.
        var lastObservation: Timestamp?
        var sighting: [Resource: (time: Timestamp, kind: ViolationKind)] = [:]
        /// Throttles not yet restored (nor reported failed).
        var outstanding: Set<Resource> = []
        var frozen = false
        var terminated = false
        var pendingScaleDowns: [Resource: ScaleDownRequest] = [:]
        var lastWarned: [String: Timestamp] = [:]
        /// Steps fired per resource in the episode that began at `since`.
        var firedIn: [Resource: (since: Timestamp, steps: [EnforcementAction])] = [:]
        var warnedIn: [Resource: (since: Timestamp, kinds: [ViolationKind])] = [:]

        init(seed: UInt64) {
            var rng = SplitMix64(seed: seed &* 0x2545_F491_4F6C_DD1D &+ 1)
            limits = Self.randomLimits(&rng)
            let policy = Self.randomPolicy(&rng)
            settings = LadderSettings(
                policy: policy,
                alertInterval: .milliseconds([0, 5000, 60_000].randomElement(using: &rng)!),
                clearAfter: .milliseconds([500, 1000, 2500, 5000].randomElement(using: &rng)!),
                scaleDownTarget: [0.5, 0.8, 1.0].randomElement(using: &rng)!,
                scaleDownDeadline: .milliseconds([1000, 5000, 30_000].randomElement(using: &rng)!))
            self.rng = rng
        }

        static func randomLimits(_ rng: inout SplitMix64) -> LimitSet {
            if Int.random(in: 0..<3, using: &rng) == 0 {
                return QuotaGroup.seedGroups.randomElement(using: &rng)!.limits
            }
            var limits = LimitSet()
            for resource in [Resource.memory, .cpu, .processes, .files, .connections] where Double.random(in: 0..<1, using: &rng) < 0.75 {
                let soft = Double(Int.random(in: 10...100, using: &rng))
                let hard = (soft * Double.random(in: 1.2...3, using: &rng)).rounded()
                var burst: Double?
                if Bool.random(using: &rng) {
                    burst = resource == .cpu ? hard * Double.random(in: 1...2, using: &rng) : ((soft + hard) / 2).rounded()
                }
                limits[resource] = ResourceLimit(
                    soft: soft, hard: hard, burst: burst, action: EnforcementAction.allCases.randomElement(using: &rng)!)
            }
            return limits
        }

        static func randomPolicy(_ rng: inout SplitMix64) -> EscalationPolicy {
            if Bool.random(using: &rng) { return .seed }
            var delays: [EnforcementAction: Duration] = [:]
            for action in EnforcementAction.allCases where Double.random(in: 0..<1, using: &rng) < 0.8 {
                delays[action] = .milliseconds(Int64.random(in: 0...40_000, using: &rng))
            }
            return EscalationPolicy(delays: delays, terminationGrace: .milliseconds(Int64.random(in: 1000...10_000, using: &rng)))
        }

        mutating func fail(_ message: String) {
            failures.append("t=\(now.fakeSeconds) \(message)")
        }

        mutating func run() throws {
            let events = Int.random(in: 30...160, using: &rng)
            // Seed delays reach 600 s: take bigger strides under them.
            let scale = settings.policy == .seed ? 4.0 : [0.3, 1.0].randomElement(using: &rng)!
            for resource in limits.resources { level[resource] = Double.random(in: 0...2.5, using: &rng) }
            for _ in 0..<events {
                let gap =
                    Double.random(in: 0..<1, using: &rng) < 0.04
                    ? Double.random(in: 5...60, using: &rng) : Double.random(in: 0...3, using: &rng)
                now = now + .milliseconds(Int64((gap * scale * 1000).rounded()))
                let roll = Double.random(in: 0..<1, using: &rng)
                if roll < 0.75 {
                    observe()
                } else if roll < 0.95 {
                    advance(observed: false)
                } else if roll < 0.965 {
                    try restart()
                } else if frozen {
                    ladder.noteThawed()
                    frozen = false
                }
                if failures.count > 5 { return }
            }
            // Observations stop: everything clears, every throttle is restored once.
            now = now + .seconds(36_000)
            for command in advance(observed: false) {
                switch command {
                case .restore, .scaleDownResolved(_, _, _, true): break
                default: fail("after observations stopped: \(command)")
                }
            }
            if !outstanding.isEmpty { fail("throttles never restored: \(outstanding)") }
            if !pendingScaleDowns.isEmpty { fail("scale-downs never resolved: \(pendingScaleDowns)") }
            if !ladder.episodes.isEmpty || !ladder.throttled.isEmpty { fail("not idle: \(ladder)") }
            if ladder.nextDue(limits: limits, settings: settings) != nil { fail("nextDue while idle") }
        }

        /// An observation: usage walks, violations as the engine classifies them
        /// (files come as violations only, like usage the agent reports).
        mutating func observe() {
            var readings: [Resource: Double] = [:]
            var violations: [Violation] = []
            for resource in limits.resources {
                if Double.random(in: 0..<1, using: &rng) < 0.08 { level[resource] = Double.random(in: 0...2.5, using: &rng) }
                let limit = limits[resource]!
                let usage = limit.hard * level[resource]! * Double.random(in: 0.97...1.03, using: &rng)
                if resource != .files { readings[resource] = usage }
                if let violation = Violation.classify(agent: LadderPropertyTests.agent, resource: resource, usage: usage, limit: limit) {
                    violations.append(violation)
                    sighting[resource] = (now, violation.kind)
                }
            }
            if Double.random(in: 0..<1, using: &rng) < 0.1 {
                violations.append(Violation(agent: "agent-2", resource: .memory, kind: .hard, current: 1e12, limit: 1))
            }
            ladder.observe(violations, usage: readings, at: now)
            lastObservation = now
            advance(observed: true)
        }

        /// What a restarted daemon does: reads the ladder back, maybe resumes it.
        mutating func restart() throws {
            let decoded = try LadderJSON.roundTrip(ladder)
            if decoded != ladder { fail("JSON round trip changed the ladder") }
            ladder = decoded
            if Bool.random(using: &rng) { ladder.resume(at: now) }
        }

        @discardableResult
        mutating func advance(observed: Bool) -> [LadderCommand] {
            let due = ladder.nextDue(limits: limits, settings: settings)
            let commands = ladder.advance(to: now, limits: limits, settings: settings)
            self.commands += commands.count
            if !commands.isEmpty, !(due.map { $0 <= now } ?? false) {
                fail("commands \(commands) although nextDue was \(String(describing: due))")
            }
            if observed, let after = ladder.nextDue(limits: limits, settings: settings), after <= now {
                fail("nextDue \(after) is not after the observation just advanced: an engine would spin")
            }
            var missed: Set<Resource> = []
            for command in commands { check(command, missed: &missed) }
            return commands
        }

        mutating func check(_ command: LadderCommand, missed: inout Set<Resource>) {
            switch command {
            case .restore(let agent, let resource):
                if agent != LadderPropertyTests.agent { fail("restore for \(agent)") }
                if !outstanding.contains(resource) { fail("restore of \(resource) without a throttle") }
                outstanding.remove(resource)
            case .scaleDownResolved(_, let request, let usage, let met):
                let resource = request.resource
                if pendingScaleDowns.removeValue(forKey: resource) != request { fail("resolved an unknown \(request)") }
                if !met {
                    if now < request.deadline { fail("scale-down missed before its deadline") }
                    if (sighting[resource]?.time ?? .zero) < request.deadline {
                        fail("scale-down missed without an observation of the violation since its deadline")
                    }
                    if (usage ?? .infinity) <= request.target { fail("missed at \(String(describing: usage)) ≤ \(request.target)") }
                    missed.insert(resource)
                } else if let usage, usage > request.target {
                    fail("met at \(usage) > \(request.target)")
                }
            case .suspend(let violation) where missed.contains(violation.resource):
                missed.remove(violation.resource)
                suspended(violation)
            case .warn(let violation), .throttle(let violation, _), .suspend(let violation), .terminate(let violation, _),
                .scaleDown(let violation, _), .migrate(let violation), .custom(let violation):
                step(command, command.action!, violation)
            }
        }

        mutating func suspended(_ violation: Violation) {
            if frozen { fail("suspend of a suspended agent (\(violation.resource))") }
            if terminated { fail("suspend of a terminating agent") }
            frozen = true
            if Double.random(in: 0..<1, using: &rng) < 0.15 {
                ladder.noteSuspendFailed()
                frozen = false
            }
        }

        /// A step of a ladder: due, re-checked, its ladder's, once per episode.
        mutating func step(_ command: LadderCommand, _ action: EnforcementAction, _ violation: Violation) {
            let resource = violation.resource
            guard violation.agent == LadderPropertyTests.agent, let limit = limits[resource] else {
                return fail("\(action) for \(violation.agent)'s unlimited \(resource)")
            }
            guard let episode = ladder.episodes[resource], let seen = sighting[resource] else {
                return fail("\(action) of \(resource) without an episode")
            }
            let steps = AgentLadder.steps(for: seen.kind, under: limit)
            // A missed scale-down walks on to terminate after the suspend–terminate gap.
            let gap = max(.zero, settings.policy.delay(for: .terminate) - settings.policy.delay(for: .suspend))
            let escalated = action == .terminate ? episode.escalated.map { $0 + gap } : nil
            guard
                let due = escalated
                    ?? (steps.contains(action)
                        ? episode.schedule(under: limit, policy: settings.policy).first(where: { $0.0 == action })?.1 : nil)
            else {
                return fail("\(action) is no step of a \(seen.kind) violation under \(limit.action)")
            }
            if now < due { fail("\(action) of \(resource) before its delay (due \(due.fakeSeconds))") }
            if seen.time < due { fail("\(action) of \(resource) without a sighting since it fell due at \(due.fakeSeconds)") }
            if (lastObservation ?? .zero) < due { fail("\(action) in an advance whose last observation predates \(due.fakeSeconds)") }
            var fired = firedIn[resource].flatMap { $0.since == episode.since ? $0.steps : nil } ?? []
            if action == .warn {
                // One warning per kind reached, each more severe than the last.
                let warned = warnedIn[resource].flatMap { $0.since == episode.since ? $0.kinds : nil } ?? []
                if let worst = warned.max(), violation.kind <= worst {
                    fail("warn of \(resource) \(violation.kind) after a \(worst) warning in one episode")
                }
                warnedIn[resource] = (episode.since, warned + [violation.kind])
            } else if fired.contains(action) {
                fail("\(action) of \(resource) twice in one episode")
            }
            fired.append(action)
            firedIn[resource] = (episode.since, fired)

            switch command {
            case .warn:
                let key = "\(resource.rawValue).\(violation.kind.rawValue)"
                if let last = lastWarned[key], now - last < settings.alertInterval {
                    fail("warned \(key) again after \(now - last)")
                }
                lastWarned[key] = now
            case .throttle(_, let factor):
                if outstanding.contains(resource) { fail("throttled \(resource) twice without a restore") }
                if factor != ThrottleFactor.forExcess(violation.excessRatio) { fail("throttle factor \(factor) for \(violation)") }
                outstanding.insert(resource)
                if Double.random(in: 0..<1, using: &rng) < 0.15 {
                    ladder.noteThrottleFailed(resource, factor: factor)
                    outstanding.remove(resource)
                }
            case .suspend:
                suspended(violation)
            case .terminate(_, let grace):
                if terminated { fail("terminated twice") }
                if grace != settings.policy.terminationGrace { fail("grace \(grace)") }
                terminated = true
            case .scaleDown(_, let request):
                if request.deadline != now + settings.scaleDownDeadline { fail("deadline \(request.deadline)") }
                if request.target != violation.limit * settings.scaleDownTarget { fail("target \(request.target)") }
                if pendingScaleDowns[resource] != nil { fail("a second scale-down of \(resource) while one is pending") }
                pendingScaleDowns[resource] = request
            default:
                break
            }
        }
    }
}
