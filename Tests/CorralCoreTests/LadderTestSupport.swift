import CorralCore
import Foundation
import Testing

/// The fake clock of the ladder tests: `.fake(12.5)` is 12.5 s after an
/// arbitrary wall-clock origin. The ladder never reads a clock, so these
/// are just values passed in.
extension Timestamp {
    static let fakeOrigin = Timestamp(milliseconds: 1_795_000_000_000)

    static func fake(_ seconds: Double) -> Timestamp {
        Timestamp(milliseconds: fakeOrigin.milliseconds + Int64((seconds * 1000).rounded()))
    }

    var fakeSeconds: Double { Double(milliseconds - Self.fakeOrigin.milliseconds) / 1000 }
}

/// One command with the fake time of the `advance` that returned it.
struct Fired: Equatable, CustomStringConvertible {
    var time: Double
    var command: LadderCommand

    init(_ time: Double, _ command: LadderCommand) {
        self.time = time
        self.command = command
    }

    var description: String { "\(time)s \(command)" }
}

/// Drives one agent's ladder as the engine does: an observation (usage
/// classified against the limits) followed by an advance at the same time;
/// or a timer that advances without observing. Records every command.
struct LadderRun {
    var ladder: AgentLadder
    var limits: LimitSet
    var settings: LadderSettings
    var log: [Fired] = []

    init(agent: String = "agent-1", limits: LimitSet, settings: LadderSettings = LadderSettings()) {
        self.ladder = AgentLadder(agent: agent)
        self.limits = limits
        self.settings = settings
    }

    var agent: String { ladder.agent }

    /// The violations `usage` shows under the limits.
    func violations(_ usage: [Resource: Double]) -> [Violation] {
        limits.violations(agent: agent, usage: usage)
    }

    /// The violation of one resource at `usage` (a test precondition: there is one).
    func violation(_ resource: Resource, _ usage: Double) -> Violation {
        Violation.classify(agent: agent, resource: resource, usage: usage, limit: limits[resource]!)!
    }

    /// Observes `usage` (classified against the limits) at `time`, then advances.
    @discardableResult
    mutating func observe(_ time: Double, _ usage: [Resource: Double]) -> [LadderCommand] {
        observe(time, violations: violations(usage), usage: usage)
    }

    /// Observes these violations and readings at `time`, then advances.
    @discardableResult
    mutating func observe(_ time: Double, violations: [Violation], usage: [Resource: Double] = [:]) -> [LadderCommand] {
        ladder.observe(violations, usage: usage, at: .fake(time))
        return advance(time)
    }

    /// A timer: advances without observing.
    @discardableResult
    mutating func advance(_ time: Double) -> [LadderCommand] {
        let commands = ladder.advance(to: .fake(time), limits: limits, settings: settings)
        log += commands.map { Fired(time, $0) }
        return commands
    }

    /// Observes the same usage every `step` seconds from `start` through `end`.
    mutating func hold(_ usage: [Resource: Double], from start: Double, through end: Double, every step: Double = 1) {
        for time in stride(from: start, through: end, by: step) {
            observe(time, usage)
        }
    }

    /// Advances every `step` seconds from `start` through `end` without observing.
    mutating func idle(from start: Double, through end: Double, every step: Double = 1) {
        for time in stride(from: start, through: end, by: step) {
            advance(time)
        }
    }

    var nextDue: Double? {
        let due = ladder.nextDue(limits: limits, settings: settings)?.fakeSeconds
        // The engine skips quiet ladders on its tick: nothing may be due then.
        if ladder.isQuiet { #expect(due == nil, "a quiet ladder has nothing due") }
        return due
    }

    /// The log without warnings' and restores' details: (time, action) pairs.
    var actions: [String] {
        log.map { fired in
            let name =
                switch fired.command {
                case .restore: "restore"
                case .scaleDownResolved(_, _, _, let met): met ? "scale_down met" : "scale_down missed"
                default: fired.command.action!.rawValue
                }
            return "\(Int(fired.time)) \(name)"
        }
    }
}

/// Snake-case JSON, as the rest of the project writes it.
enum LadderJSON {
    static func encode<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(value)
    }

    static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(type, from: data)
    }

    /// What a restarted daemon reads back.
    static func roundTrip<T: Codable>(_ value: T) throws -> T {
        try decode(T.self, from: encode(value))
    }
}

/// A small, fast, seedable generator (Steele, Lea & Flood's SplitMix64), so
/// property runs are reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
