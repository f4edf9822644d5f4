import CorralCore
import CorralEngine
import Synchronization
import Testing

@Suite("The engine's signal queue")
struct SignalQueueTests {
    static let t0 = ContinuousClock.now

    static func observation(_ agent: String, _ seenMS: Int64, routine: Bool = false) -> WatchSignal {
        .observed(
            AgentObservation(
                agent: agent, at: Timestamp(milliseconds: seenMS), readings: [], sample: nil, seen: t0 + .milliseconds(seenMS),
                routine: routine))
    }

    static func describe(_ signal: WatchSignal?) -> String {
        switch signal {
        case .observed(let observation)?:
            "\(observation.agent)@\((observation.seen - t0).components.seconds * 1000 + (observation.seen - t0).components.attoseconds / 1_000_000_000_000_000)\(observation.routine ? "s" : "")"
        case .emptied(let agent)?: "\(agent) emptied"
        case .vanished(let agent)?: "\(agent) vanished"
        case nil: "end"
        }
    }

    /// Lifecycle and a quiet agent's event first, a bursting agent's events
    /// next, periodic samples last; each lane in order.
    @Test func urgentLanesGoFirst() async {
        let queue = SignalQueue()
        // "busy" had an event handed out just now: it is in a burst.
        queue.push(Self.observation("busy", 1))
        #expect(Self.describe(await queue.next()) == "busy@1")
        queue.push(Self.observation("a", 10, routine: true))
        queue.push(Self.observation("busy", 11))
        queue.push(Self.observation("b", 12, routine: true))
        queue.push(Self.observation("busy", 13))
        queue.push(Self.observation("new", 14))
        queue.push(.emptied(agent: "gone"))
        var order: [String] = []
        for _ in 0..<6 { order.append(Self.describe(await queue.next())) }
        #expect(order == ["new@14", "gone emptied", "busy@11", "busy@13", "a@10s", "b@12s"])
        #expect(queue.depth.lanes == [0, 0, 0])
    }

    /// A sample taken before an event already handed out is dropped: each
    /// agent's readings reach the engine in the order they were taken.
    @Test func aSampleOvertakenByAnEventIsDropped() async {
        let queue = SignalQueue()
        queue.push(Self.observation("a", 100, routine: true))
        queue.push(Self.observation("a", 200))
        queue.push(Self.observation("a", 300, routine: true))
        #expect(Self.describe(await queue.next()) == "a@200")
        #expect(Self.describe(await queue.next()) == "a@300s")
        #expect(queue.depth.dropped == 1)
    }

    /// A waiting consumer is woken by a push; finish ends it after what is left.
    @Test func aWaitingConsumerAndFinish() async {
        let queue = SignalQueue()
        let consumer = Task { () -> [String] in
            var seen: [String] = []
            while let signal = await queue.next() { seen.append(Self.describe(signal)) }
            seen.append("end")
            return seen
        }
        try? await Task.sleep(for: .milliseconds(50))
        queue.push(Self.observation("a", 1))
        try? await Task.sleep(for: .milliseconds(50))
        queue.push(.vanished(agent: "a"))
        queue.finish()
        queue.push(Self.observation("late", 2))
        #expect(await consumer.value == ["a@1", "a vanished", "end"])
    }

    /// Cancelling the waiting consumer ends the queue instead of hanging.
    @Test func cancellingTheConsumerEndsIt() async {
        let queue = SignalQueue()
        let consumer = Task { await queue.next() == nil }
        try? await Task.sleep(for: .milliseconds(50))
        consumer.cancel()
        #expect(await consumer.value)
    }

    /// Many producers, one consumer: every signal arrives once or is counted
    /// as overtaken, and each agent's arrive in the order they were taken.
    @Test func manyProducersLoseNothing() async {
        let queue = SignalQueue()
        let producers = 8
        let each = 2000
        let consumer = Task { () -> [String: [Int64]] in
            var seen: [String: [Int64]] = [:]
            while let signal = await queue.next() {
                if case .observed(let observation) = signal {
                    seen[observation.agent, default: []].append(observation.at.milliseconds)
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
        #expect(delivered + queue.depth.dropped == producers * each)
    }
}
