// An agent that cooperates with Corral through the agent channel
// (CorralClient's AgentChannel): it holds memory as a stand-in for a cache,
// frees it when asked to scale down, and applies degradation strategies.
//
//   corral-example-agent [--hold MB | --fill PERCENT] [--seconds N] [--uncooperative]
//
// --fill grows until the agent's own memory.current is PERCENT of its
// memory.max (read from its cgroup), in small steps near the end so that it
// never crosses the limit: pressing on the hard limit without being OOM-killed.
//
// Started by Corral (corral run, corral agents start) it has CORRAL_SOCKET and
// CORRAL_AGENT_ID in its environment, and keeps listening across a daemon
// restart. With --uncooperative it listens but does nothing, like a program
// that ignores its notices (the e2e's other twin).
import CorralClient
import CorralCore
import Foundation

struct Options {
    var holdMB = 64
    var fillPercent: Double?
    var seconds = 600
    var cooperative = true

    init(_ arguments: [String]) throws {
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            switch argument {
            case "--hold": holdMB = try Self.number(rest.popFirst(), argument)
            case "--fill":
                let percent = try Self.number(rest.popFirst(), argument)
                guard (1...99).contains(percent) else { throw Failure("--fill takes a percentage from 1 to 99, not \(percent)") }
                fillPercent = Double(percent)
            case "--seconds": seconds = try Self.number(rest.popFirst(), argument)
            case "--uncooperative": cooperative = false
            case "-h", "--help":
                print("usage: corral-example-agent [--hold MB | --fill PERCENT] [--seconds N] [--uncooperative]")
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
    private var chunks: [(pointer: UnsafeMutableRawPointer, size: Int)] = []

    var bytes: Int { lock.withLock { chunks.reduce(0) { $0 + $1.size } } }

    private func add(_ size: Int) -> Bool {
        guard let pointer = malloc(size) else { return false }
        memset(pointer, 0x5a, size)
        chunks.append((pointer, size))
        return true
    }

    func grow(toMB target: Int) {
        lock.withLock {
            while chunks.reduce(0, { $0 + $1.size }) < target << 20 {
                guard add(1 << 20) else { return }
            }
        }
    }

    /// Grows until `current()` reaches `target` bytes: 1 MiB steps while far
    /// from it, 64 KiB steps within 4 MiB.
    func fill(to target: Double, current: () -> Double?) {
        lock.withLock {
            while let now = current(), now < target {
                guard add(target - now > 4 * 1_048_576 ? 1 << 20 : 64 << 10) else { return }
            }
        }
    }

    /// Frees chunks until at most `bytes` remain (memory.current also counts the program itself).
    func shrink(toBytes bytes: Double) {
        lock.withLock {
            while let last = chunks.last, Double(chunks.reduce(0) { $0 + $1.size }) > bytes {
                free(last.pointer)
                chunks.removeLast()
            }
        }
    }
}

/// This process's cgroup directory, from /proc/self/cgroup ("0::/path").
func ownCgroup() -> String? {
    guard let text = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8),
        let line = text.split(separator: "\n").first(where: { $0.hasPrefix("0::") })
    else { return nil }
    return "/sys/fs/cgroup" + line.dropFirst(3)
}

func readNumber(_ path: String) -> Double? {
    (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
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
if let percent = options.fillPercent {
    guard let cgroup = ownCgroup(), let max = readNumber(cgroup + "/memory.max") else {
        log("--fill needs a memory.max of its own cgroup (run under corral with a memory limit)")
        exit(2)
    }
    cache.fill(to: max * percent / 100) { readNumber(cgroup + "/memory.current") }
    log("filled to \(Int(readNumber(cgroup + "/memory.current") ?? 0) >> 20) MiB of memory.max \(Int(max) >> 20) MiB")
} else {
    cache.grow(toMB: options.holdMB)
}
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

// The channel reconnects on its own when the daemon restarts (and resumes
// after the last event seen); it ends only if the daemon refuses this agent.
do {
    for try await event in channel.messages(after: 0) {
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
        case .suspendNotice:
            log("suspend notice: about to be frozen")
        default:
            break
        }
    }
} catch {
    log("the daemon refused the event stream: \(error)")
}
deadline.cancel()
