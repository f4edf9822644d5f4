// An agent that cooperates with Corral through the agent channel
// (CorralClient's AgentChannel): it holds memory as a stand-in for a cache,
// frees it when asked to scale down, and applies degradation strategies.
//
//   corral-example-agent [--hold MB] [--seconds N] [--uncooperative]
//
// Started by Corral (corral run, corral agents start) it has CORRAL_SOCKET and
// CORRAL_AGENT_ID in its environment. With --uncooperative it listens but does
// nothing, like a program that ignores its notices (the e2e's other twin).
import CorralClient
import CorralCore
import Foundation

struct Options {
    var holdMB = 64
    var seconds = 600
    var cooperative = true

    init(_ arguments: [String]) throws {
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            switch argument {
            case "--hold": holdMB = try Self.number(rest.popFirst(), argument)
            case "--seconds": seconds = try Self.number(rest.popFirst(), argument)
            case "--uncooperative": cooperative = false
            case "-h", "--help":
                print("usage: corral-example-agent [--hold MB] [--seconds N] [--uncooperative]")
                exit(0)
            default: throw Failure("unknown argument '\(argument)' (see --help)")
            }
        }
    }

    static func number(_ text: String?, _ option: String) throws -> Int {
        guard let text, let value = Int(text), value >= 0 else { throw Failure("\(option) needs a whole number, not '\(text ?? "")'") }
        return value
    }
}

struct Failure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Memory the agent holds, in 1 MiB chunks that are written to (so they count).
final class Cache: @unchecked Sendable {
    private let lock = NSLock()
    private var chunks: [UnsafeMutableRawPointer] = []
    static let chunk = 1 << 20

    var bytes: Int { lock.withLock { chunks.count * Self.chunk } }

    func grow(toMB target: Int) {
        lock.withLock {
            while chunks.count < target {
                guard let pointer = malloc(Self.chunk) else { return }
                memset(pointer, 0x5a, Self.chunk)
                chunks.append(pointer)
            }
        }
    }

    /// Frees chunks until at most `bytes` remain (memory.current also counts the program itself).
    func shrink(toBytes bytes: Double) {
        lock.withLock {
            while !chunks.isEmpty, Double(chunks.count * Self.chunk) > bytes { free(chunks.removeLast()) }
        }
    }
}

func log(_ text: String) {
    FileHandle.standardError.write(Data("corral-example-agent: \(text)\n".utf8))
}

let options: Options
do {
    options = try Options(Array(CommandLine.arguments.dropFirst()))
} catch {
    log("\(error)")
    exit(2)
}

let cache = Cache()
cache.grow(toMB: options.holdMB)
log("holding \(cache.bytes >> 20) MiB\(options.cooperative ? "" : " (uncooperative)")")

let channel: AgentChannel
do {
    channel = try AgentChannel.fromEnvironment()
} catch {
    log("\(error); holding memory without a channel")
    sleep(UInt32(options.seconds))
    exit(0)
}

let deadline = Task {
    try await Task.sleep(for: .seconds(options.seconds))
    exit(0)
}

do {
    for try await event in channel.messages() {
        guard options.cooperative else {
            log("ignoring \(event.kind)")
            continue
        }
        switch event.content {
        case .scaleDown(let request) where request.resource == .memory:
            // Below the target with room to spare: the program itself counts too.
            cache.shrink(toBytes: request.target * 0.6)
            log("scale-down to \(Int(request.target) >> 20) MiB: now holding \(cache.bytes >> 20) MiB")
            try channel.acknowledge(event, note: "cache shrunk to \(cache.bytes >> 20) MiB")
        case .degradation(let plan):
            let applied = plan.strategies.map(\.strategy.rawValue).joined(separator: ", ")
            if plan.resource == .memory, plan.strategies.contains(where: { $0.strategy == .dropNonEssential }) {
                cache.shrink(toBytes: plan.targetUsage * 0.8)
            }
            log("\(plan.level.rawValue) degradation of \(plan.resource.rawValue): applying \(applied)")
            try channel.acknowledge(event, note: "applied \(applied)")
        case .recovery(let plan):
            log("recovery stage \(plan.recoveryStage) of \(plan.resource.rawValue): level \(plan.level.rawValue)")
            try channel.acknowledge(event, note: "level \(plan.level.rawValue)")
        case .termination(let grace):
            log("termination notice: \(grace) s to finish")
        default:
            break
        }
    }
} catch {
    log("event stream ended: \(error)")
}
deadline.cancel()
