import CorralAPI
import CorralCgroup
import CorralCore
import CorralEngine
import CorralTestSupport
import CorralWatcher
import Synchronization
import Testing

@Suite("The engine's observation queue")
struct ObservationQueueTests {
    static let t0 = ContinuousClock.now

    static func observation(_ agent: String, _ seenMS: Int64, routine: Bool = false) -> WatcherEvent {
        .observation(
            Observation(
                subject: .agent(agent), trigger: routine ? .sample : .event(.memoryEvents), at: Timestamp(milliseconds: seenMS),
                seenAt: t0 + .milliseconds(seenMS), sample: CgroupSample(), readings: [], elapsed: .seconds(1)))
    }

    /// A kernel event (or PSI trigger) of `agent`, seen `seenMS` after t0.
    static func kernelEvent(_ agent: String, _ seenMS: Int64, _ trigger: ObservationTrigger, readings: [UsageReading] = []) -> WatcherEvent
    {
        .observation(
            Observation(
                subject: .agent(agent), trigger: trigger, at: Timestamp(milliseconds: seenMS), seenAt: t0 + .milliseconds(seenMS),
                sample: CgroupSample(), readings: readings, elapsed: .milliseconds(200)))
    }

    static func describe(_ event: WatcherEvent?) -> String {
        switch event {
        case .observation(let observation)?:
            "\(observation.subject.agent ?? "?")@\((observation.seenAt - t0).components.seconds * 1000 + (observation.seenAt - t0).components.attoseconds / 1_000_000_000_000_000)\(observation.trigger == .sample ? "s" : "")"
        case .emptied(let subject, _)?: "\(subject.agent ?? "?") emptied"
        case .vanished(let subject, _)?: "\(subject.agent ?? "?") vanished"
        case .unreadable(let subject, _, _)?: "\(subject.agent ?? "?") unreadable"
        case nil: "end"
        }
    }

    /// Lifecycle and a quiet agent's event first, a bursting agent's events
    /// next, periodic samples last; each lane in order.
    @Test func urgentLanesGoFirst() async {
        let queue = ObservationQueue()
        // "busy" had an event handed out just now: it is in a burst.
        queue.push(Self.observation("busy", 1))
        #expect(Self.describe(await queue.next()) == "busy@1")
        queue.push(Self.observation("a", 10, routine: true))
        queue.push(Self.observation("busy", 11))
        queue.push(Self.observation("b", 12, routine: true))
        queue.push(Self.observation("busy", 13))
        queue.push(Self.observation("new", 14))
        queue.push(.emptied(.agent("gone"), at: Timestamp(milliseconds: 0)))
        var order: [String] = []
        for _ in 0..<5 { order.append(Self.describe(await queue.next())) }
        // busy's second event merged into its first (timed from the first).
        #expect(order == ["new@14", "gone emptied", "busy@11", "a@10s", "b@12s"])
        #expect(queue.depth.lanes == [0, 0, 0] && queue.depth.coalesced == 1)
    }

    /// A sample taken before an event already handed out is dropped: each
    /// agent's readings reach the engine in the order they were taken.
    @Test func aSampleOvertakenByAnEventIsDropped() async {
        let queue = ObservationQueue()
        queue.push(Self.observation("a", 100, routine: true))
        queue.push(Self.observation("a", 200))
        #expect(Self.describe(await queue.next()) == "a@200")
        queue.push(Self.observation("b", 300, routine: true))
        #expect(Self.describe(await queue.next()) == "b@300s")
        #expect(queue.depth.dropped == 1)
        // A newer sample that comes while the older one waits is merged into it, and so not dropped.
        queue.push(Self.observation("c", 100, routine: true))
        queue.push(Self.observation("c", 200))
        queue.push(Self.observation("c", 300, routine: true))
        #expect(Self.describe(await queue.next()) == "c@200")
        // The merged sample is timed from its first (100) and reports the newer reading (300).
        guard case .observation(let merged)? = await queue.next() else {
            Issue.record("no observation")
            return
        }
        #expect(Self.describe(.observation(merged)) == "c@100s" && merged.at.milliseconds == 300)
        #expect(queue.depth.dropped == 1 && queue.depth.coalesced == 1)
    }

    /// A waiting consumer is woken by a push; finish ends it after what is left.
    @Test func aWaitingConsumerAndFinish() async {
        let queue = ObservationQueue()
        let consumer = Task { () -> [String] in
            var seen: [String] = []
            while let signal = await queue.next() { seen.append(Self.describe(signal)) }
            seen.append("end")
            return seen
        }
        try? await Task.sleep(for: .milliseconds(50))
        queue.push(Self.observation("a", 1))
        try? await Task.sleep(for: .milliseconds(50))
        queue.push(.vanished(.agent("a"), at: Timestamp(milliseconds: 0)))
        queue.finish()
        queue.push(Self.observation("late", 2))
        #expect(await consumer.value == ["a@1", "a vanished", "end"])
    }

    /// Cancelling the waiting consumer ends the queue instead of hanging.
    @Test func cancellingTheConsumerEndsIt() async {
        let queue = ObservationQueue()
        let consumer = Task { await queue.next() == nil }
        try? await Task.sleep(for: .milliseconds(50))
        consumer.cancel()
        #expect(await consumer.value)
    }

    /// Many producers, one consumer: every signal arrives once or is counted
    /// as overtaken, and each agent's arrive in the order they were taken.
    @Test func manyProducersLoseNothing() async {
        let queue = ObservationQueue()
        let producers = 8
        let each = 2000
        let consumer = Task { () -> [String: [Int64]] in
            var seen: [String: [Int64]] = [:]
            while let signal = await queue.next() {
                if case .observation(let observation) = signal, let agent = observation.subject.agent {
                    seen[agent, default: []].append(observation.at.milliseconds)
                }
            }
            return seen
        }
        await withTaskGroup(of: Void.self) { group in
            for producer in 0..<producers {
                group.addTask {
                    for index in 0..<each {
                        queue.push(Self.observation("p\(producer)", Int64(index), routine: index % 3 == 0))
                    }
                }
            }
        }
        queue.finish()
        let seen = await consumer.value
        #expect(seen.count == producers)
        // Each agent's readings in the order they were taken.
        for (_, times) in seen { #expect(times == times.sorted()) }
        let delivered = seen.values.map(\.count).reduce(0, +)
        #expect(delivered + queue.depth.dropped + queue.depth.coalesced == producers * each)
    }

    static func sample(_ agent: String, _ seenMS: Int64, _ readings: [UsageReading]) -> WatcherEvent {
        .observation(
            Observation(
                subject: .agent(agent), trigger: .sample, at: Timestamp(milliseconds: seenMS), seenAt: t0 + .milliseconds(seenMS),
                sample: CgroupSample(), readings: readings, elapsed: .seconds(1)))
    }

    /// Samples of an agent the engine has not taken yet are merged into one,
    /// in the older one's place in line, keeping what the older reported.
    @Test func waitingSamplesOfOneAgentAreMerged() async {
        let queue = ObservationQueue()
        queue.push(
            Self.sample("a", 1, [UsageReading(resource: .memory, usage: 10, hitSoft: true), UsageReading(resource: .cpu, usage: 50)]))
        queue.push(Self.sample("b", 2, [UsageReading(resource: .memory, usage: 5)]))
        queue.push(Self.sample("a", 3, [UsageReading(resource: .memory, usage: 30, hitHard: true)]))
        queue.push(Self.sample("a", 4, [UsageReading(resource: .memory, usage: 20)]))
        #expect(queue.depth.lanes == [0, 0, 2] && queue.depth.coalesced == 2)
        guard case .observation(let first)? = await queue.next() else {
            Issue.record("no observation")
            return
        }
        // a's place (before b), a's newest reading, both limit hits, the CPU rate only the first had.
        #expect(first.subject.agent == "a" && first.at.milliseconds == 4 && first.elapsed == .seconds(3))
        let memory = first.readings.first { $0.resource == .memory }
        #expect(memory?.usage == 20 && memory?.hitSoft == true && memory?.hitHard == true)
        #expect(first.readings.first { $0.resource == .cpu }?.usage == 50)
        #expect(Self.describe(await queue.next()) == "b@2s")
        // Taken: a's next sample waits on its own again.
        queue.push(Self.sample("a", 5, []))
        #expect(Self.describe(await queue.next()) == "a@5s")
        #expect(queue.depth.lanes == [0, 0, 0])
    }

    /// An agent's kernel events that come while one of its events waits are
    /// merged into it: in its lane and place, timed from the first, with the
    /// newest reading and every limit hit; a sample taken before the newest
    /// event is then dropped as overtaken.
    @Test func waitingKernelEventsOfOneAgentAreMerged() async {
        let queue = ObservationQueue()
        func event(_ agent: String, _ seenMS: Int64, _ readings: [UsageReading]) -> WatcherEvent {
            Self.kernelEvent(agent, seenMS, .event(.pidsEvents), readings: readings)
        }
        // "hot" is in a burst: its events go to the second lane.
        queue.push(event("hot", 1, []))
        #expect(Self.describe(await queue.next()) == "hot@1")
        queue.push(event("hot", 10, [UsageReading(resource: .processes, usage: 8, hitHard: true)]))
        queue.push(Self.sample("hot", 15, [UsageReading(resource: .memory, usage: 3)]))
        queue.push(event("hot", 20, [UsageReading(resource: .processes, usage: 6)]))
        queue.push(event("quiet", 25, []))
        queue.push(
            .observation(
                Observation(
                    subject: .agent("hot"), trigger: .pressure(.cpu), at: Timestamp(milliseconds: 30), seenAt: Self.t0 + .milliseconds(30),
                    sample: CgroupSample(), readings: [UsageReading(resource: .cpu, usage: 40)], elapsed: .milliseconds(200))))
        // The cpu.pressure trigger is quiet for "hot": the merged event goes ahead, behind "quiet".
        #expect(queue.depth.lanes == [2, 0, 1] && queue.depth.coalesced == 2)
        #expect(Self.describe(await queue.next()) == "quiet@25")
        guard case .observation(let merged)? = await queue.next() else {
            Issue.record("no observation")
            return
        }
        // Timed and labelled from the first event (pids.events), with the newest reading (at 30).
        #expect(Self.describe(.observation(merged)) == "hot@10" && merged.at.milliseconds == 30)
        #expect(merged.trigger == .event(.pidsEvents))
        #expect(merged.elapsed == .milliseconds(600))
        let processes = merged.readings.first { $0.resource == .processes }
        #expect(processes?.usage == 6 && processes?.hitHard == true)
        #expect(merged.readings.first { $0.resource == .cpu }?.usage == 40)
        // The sample read at 15 is older than the event read at 30, handed out already.
        queue.finish()
        #expect(await queue.next() == nil)
        #expect(queue.depth.dropped == 1)
    }

    /// A burst is per agent and file: an agent sending pids.events (a fork
    /// loop) is not in a burst for memory.events, and the cgroup.events of its
    /// start does not demote its first memory.events either.
    @Test func aBurstOnOneFileDoesNotDemoteAnotherFilesFirstEvent() async {
        let queue = ObservationQueue()
        func event(_ agent: String, _ seenMS: Int64, _ file: CgroupFile) -> WatcherEvent { Self.kernelEvent(agent, seenMS, .event(file)) }
        // Three agents in a burst: forkers on pids.events, "hog" on cgroup.events (its start).
        for (agent, file) in [("fork1", CgroupFile.pidsEvents), ("fork2", .pidsEvents), ("hog", .events)] {
            queue.push(event(agent, 1, file))
            _ = await queue.next()
        }
        queue.push(event("fork1", 10, .pidsEvents))
        queue.push(event("fork2", 11, .pidsEvents))
        queue.push(event("hog", 12, .memoryEvents))
        queue.push(event("hog", 13, .events))
        #expect(queue.depth.lanes == [1, 2, 0], "hog's memory.events in the first lane, its cgroup.events merged into it")
        var order: [String] = []
        for _ in 0..<3 { order.append(Self.describe(await queue.next())) }
        #expect(order == ["hog@12", "fork1@10", "fork2@11"])
        // Handed out, memory.events is now in a burst for "hog" too.
        queue.push(event("fork1", 20, .pidsEvents))
        queue.push(event("hog", 21, .memoryEvents))
        #expect(queue.depth.lanes == [0, 2, 0])
        // A quiet file's event joining one waiting behind the burst takes it ahead.
        queue.push(event("fork2", 22, .memoryEvents))
        queue.push(event("fork2", 23, .pidsEvents))
        #expect(queue.depth.lanes == [1, 2, 0])
        order = []
        for _ in 0..<3 { order.append(Self.describe(await queue.next())) }
        #expect(order == ["fork2@22", "fork1@20", "hog@21"])
        #expect(queue.depth.lanes == [0, 0, 0])
    }

    /// A PSI trigger fires once per window (1 s) for as long as a stall lasts:
    /// its next firing a second later is still the same burst, while a
    /// memory.events a second later is news.
    @Test func aPressureTriggerFiringEveryWindowStaysInItsBurst() async throws {
        let clock = Mutex(ContinuousClock.now)
        let queue = ObservationQueue(now: { clock.withLock { $0 } })
        func event(_ agent: String, _ seenMS: Int64, _ trigger: ObservationTrigger) -> WatcherEvent {
            Self.kernelEvent(agent, seenMS, trigger)
        }
        queue.push(event("spinner", 1, .pressure(.cpu)))
        queue.push(event("hog", 2, .event(.memoryEvents)))
        _ = await queue.next()
        _ = await queue.next()
        clock.withLock { $0 += .milliseconds(1200) }
        queue.push(event("spinner", 1300, .pressure(.cpu)))
        queue.push(event("hog", 1301, .event(.memoryEvents)))
        #expect(queue.depth.lanes == [1, 1, 0])
        #expect(Self.describe(await queue.next()) == "hog@1301")
        #expect(Self.describe(await queue.next()) == "spinner@1300")
    }

    /// A kernel event waiting behind a burst, joined by a quiet file's event
    /// of the same agent, moves ahead with it (its old place is skipped).
    @Test func aMergedEventMovesToTheMoreUrgentLane() async {
        let queue = ObservationQueue()
        func event(_ agent: String, _ seenMS: Int64, _ file: CgroupFile) -> WatcherEvent { Self.kernelEvent(agent, seenMS, .event(file)) }
        for agent in ["a", "b"] {
            queue.push(event(agent, 1, .pidsEvents))
            _ = await queue.next()
        }
        queue.push(event("a", 10, .pidsEvents))
        queue.push(event("b", 11, .pidsEvents))
        queue.push(event("a", 12, .memoryEvents))
        #expect(queue.depth.lanes == [1, 1, 0] && queue.depth.coalesced == 1)
        // Timed from the first (pids.events at 10), ahead of b.
        #expect(Self.describe(await queue.next()) == "a@10")
        #expect(Self.describe(await queue.next()) == "b@11")
        queue.finish()
        #expect(await queue.next() == nil, "a's old place was skipped")
        #expect(queue.depth.lanes == [0, 0, 0])
    }

    /// Positions in line stay right when the lane drops what was taken from its front.
    @Test func mergingFindsItsSampleAfterTheLaneIsCompacted() async {
        let queue = ObservationQueue()
        for index in 0..<3000 { queue.push(Self.sample("s\(index)", Int64(index), [])) }
        for _ in 0..<2000 { _ = await queue.next() }
        queue.push(Self.sample("s2500", 9000, [UsageReading(resource: .processes, usage: 7)]))
        #expect(queue.depth.lanes == [0, 0, 1000] && queue.depth.coalesced == 1)
        for _ in 0..<500 { _ = await queue.next() }
        guard case .observation(let merged)? = await queue.next() else {
            Issue.record("no observation")
            return
        }
        #expect(merged.subject.agent == "s2500" && merged.at.milliseconds == 9000 && merged.readings.first?.usage == 7)
    }
}

@Suite("The engine's runtime loop")
struct EngineLoopTests {
    /// A deadline with nothing queued ends the wait with `.timedOut`, not
    /// before; an event that comes first ends it with the event.
    @Test func waitingUntilADeadline() async {
        let queue = ObservationQueue()
        let start = ContinuousClock.now
        guard case .timedOut = await queue.next(until: start + .milliseconds(100)) else {
            Issue.record("expected a timeout")
            return
        }
        #expect(ContinuousClock.now - start >= .milliseconds(100))
        let waiter = Task { await queue.next(until: .now + .seconds(30)) }
        try? await Task.sleep(for: .milliseconds(50))
        queue.push(ObservationQueueTests.observation("a", 1))
        guard case .event(let event) = await waiter.value else {
            Issue.record("expected the event")
            return
        }
        #expect(ObservationQueueTests.describe(event) == "a@1")
    }

    /// Groups' events and failed reads never reach the engine.
    @Test func onlyAgentsEventsAreQueued() async {
        let queue = ObservationQueue()
        queue.push(.emptied(.group("g"), at: Timestamp(milliseconds: 0)))
        queue.push(
            .unreadable(
                .agent("a"), CgroupError(code: .permissionDenied, operation: .read, path: "/x", message: "x"),
                at: Timestamp(milliseconds: 0)))
        queue.push(ObservationQueueTests.observation("a", 1))
        queue.finish()
        #expect(ObservationQueueTests.describe(await queue.next()) == "a@1")
        #expect(await queue.next() == nil)
    }

    /// The loop runs the engine's timers without any event: a stop's grace
    /// ends in cgroup.kill on time.
    @Test func theLoopWakesWhenSomethingIsDue() async throws {
        var configuration = EngineHarness.quickConfiguration
        configuration.escalation.terminationGrace = .milliseconds(300)
        let fake = FakeCgroupFilesystem()
        fake.seed(EngineHarness.root)
        let tree = CgroupTree(fs: fake, root: EngineHarness.root)
        try tree.prepareRoot(selfPID: nil, reservation: nil)
        let engine = Engine(configuration: configuration, tree: tree, store: MemoryStore())
        _ = try await engine.restore()
        _ = try await engine.register(id: "s1", group: "standard_agent", command: ["worker"], overrides: [:])
        let leaf = tree.agentPath(group: "standard_agent", agent: "s1")
        fake.seed(leaf, procs: [ghostPID])
        _ = try await engine.attach(id: "s1", pid: ghostPID)
        let ticks = Mutex(0)
        let loop = EngineLoop(
            engine: engine,
            instruments: EngineLoop.Instruments(handled: { _, _, _ in }, ticked: { _, _, _ in ticks.withLock { $0 += 1 } }))
        let running = Task { await loop.run() }
        defer {
            loop.stop()
            running.cancel()
        }
        // The loop's first tick.
        while ticks.withLock({ $0 }) == 0 { try await Task.sleep(for: .milliseconds(10)) }
        let stopped = ContinuousClock.now
        _ = try await engine.stop("s1")
        let deadline = ContinuousClock.now + .seconds(120)
        while !fake.killed.contains(ghostPID), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(fake.killed.contains(ghostPID), "cgroup.kill when the grace ended")
        #expect(ContinuousClock.now - stopped >= .milliseconds(300), "not before the grace ended")
    }
}

extension EngineLoopTests {
    /// A ladder step that is due stays due until a fresh observation confirms
    /// it; while one is, events must not each run the timers (each run asks
    /// the watcher for samples): the timers run every `spacing`, however many
    /// events come.
    @Test func aDueStepDoesNotMakeTheLoopTickPerEvent() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        try await harness.agent("due")
        try await harness.agent("quiet")
        // Over the hard limit: warned at once, the throttle due 2 s later (quick policy).
        await harness.observe("due", [.memory: 600_000_000])
        harness.clock.advance(.seconds(3))  // due now, and stays due: no observation confirms it
        #expect(try await harness.engine.status(of: "due").ladder?.episodes[.memory]?.fired == [.warn], "due, not yet taken")
        let ticks = Mutex(0)
        let loop = EngineLoop(
            engine: harness.engine, spacing: .milliseconds(200),
            instruments: EngineLoop.Instruments(handled: { _, _, _ in }, ticked: { _, _, _ in ticks.withLock { $0 += 1 } }))
        let running = Task { await loop.run() }
        let start = ContinuousClock.now
        var pushed = 0
        while ContinuousClock.now - start < .seconds(1) {
            loop.queue.push(.observed(agent: "quiet", at: harness.clock.now, readings: [UsageReading(resource: .memory, usage: 1_000_000)]))
            pushed += 1
            try await Task.sleep(for: .milliseconds(5))
        }
        loop.stop()
        await running.value
        let elapsed = ContinuousClock.now - start
        let ran = ticks.withLock { $0 }
        // One run per 200 ms at most (plus the first), however many events came.
        #expect(ran <= Int(elapsed / .milliseconds(200)) + 2, "\(ran) runs of the timers for \(pushed) events in \(elapsed)")
        #expect(ran >= 1, "the timers ran: \(ran)")
    }
}

extension EngineLoopTests {
    /// systemd's watchdog is pinged only while the engine makes progress: a
    /// tick that does not return (a wedged engine) stops the pings, and they
    /// resume when it moves again. The stand-in's tick waits, without holding a
    /// thread, until the test lets it go.
    @Test func aWedgedEngineStopsTheWatchdogPings() async throws {
        let wedge = Wedge()
        let loop = EngineLoop(
            handle: { _ in },
            tick: {
                await wedge.pass()
                return .zero
            }, spacing: .milliseconds(50))
        let gate = WatchdogGate(watchdog: .seconds(1), sampling: .seconds(1))
        let started = ContinuousClock.now
        let running = Task { await loop.run() }
        defer {
            Task { await wedge.release() }
            loop.stop()
            running.cancel()
        }
        func stall() -> String? {
            gate.stall(now: .now, lastTick: loop.lastTick, lastWatcherRound: .now, startedAt: started)
        }
        while loop.lastTick == nil { try await Task.sleep(for: .milliseconds(10)) }
        for _ in 0..<4 {
            let slept = ContinuousClock.now
            try await Task.sleep(for: .milliseconds(200))
            // This task came back late: the other suites held both pool threads, the loop's
            // included, so this round says nothing of the loop (seen in full unit runs).
            if ContinuousClock.now - slept > .milliseconds(350) { continue }
            #expect(stall() == nil, "a ticking engine is healthy")
        }
        await wedge.close()
        let wedgedAt = ContinuousClock.now
        let deadline = wedgedAt + .seconds(30)
        while stall() == nil, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        let reason = stall()
        #expect(reason?.hasPrefix("the engine has not completed a tick for") == true, "\(reason ?? "no stall")")
        // Not before the tick limit had passed since the last tick the loop completed (the
        // wedge's moment is no measure: the pool may have held the loop back before it).
        let lastTick = try #require(loop.lastTick)
        #expect(ContinuousClock.now - lastTick >= gate.tickLimit)
        await wedge.release()
        // Pings resume once the engine moves: the stall clears. (Asked until it does: a check
        // right after one tick can come half a second late when other suites hold the pool.)
        var resumed = false
        while !resumed, ContinuousClock.now < deadline {
            resumed = stall() == nil
            if !resumed { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(resumed, "pings resume once the engine moves: \(stall() ?? "")")
    }

    /// The watcher's loop counts too: one that stopped going round stalls the
    /// pings after its sampling interval plus half the watchdog's.
    @Test func aStoppedWatcherStallsTheWatchdog() {
        let gate = WatchdogGate(watchdog: .seconds(30), sampling: .seconds(1))
        let now = ContinuousClock.now
        #expect(gate.stall(now: now, lastTick: now, lastWatcherRound: now - .seconds(15), startedAt: now - .seconds(60)) == nil)
        let reason = gate.stall(now: now, lastTick: now, lastWatcherRound: now - .seconds(17), startedAt: now - .seconds(60))
        #expect(reason == "the watcher's loop has not gone round for 17 s")
        // Before the first round, the time since start counts.
        #expect(gate.stall(now: now, lastTick: nil, lastWatcherRound: nil, startedAt: now - .seconds(2)) == nil)
        #expect(gate.stall(now: now, lastTick: nil, lastWatcherRound: nil, startedAt: now - .seconds(20)) != nil)
    }
}

@Suite struct EventHubShutdownTests {
    /// Once the daemon's shutdown has ended every stream, a stream opened
    /// late (a request still in flight) ends at once instead of holding the
    /// API's graceful shutdown open.
    @Test func streamsOpenedAfterFinishAllEndAtOnce() async {
        let hub = EventHub()
        let early = hub.subscribe(agent: nil)
        hub.finishAll()
        let late = hub.subscribe(agent: "a1")
        var earlyCount = 0
        for await _ in early { earlyCount += 1 }
        var lateCount = 0
        for await _ in late { lateCount += 1 }
        #expect(earlyCount == 0 && lateCount == 0)
        #expect(hub.subscriberCount == 0)
    }
}

/// A gate that ticks pass through while open; closed, they wait (suspended,
/// holding no thread) until it opens again.
actor Wedge {
    private var closed = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func pass() async {
        guard closed else { return }
        await withCheckedContinuation { waiting.append($0) }
    }

    func close() { closed = true }

    func release() {
        closed = false
        for continuation in waiting { continuation.resume() }
        waiting = []
    }
}
