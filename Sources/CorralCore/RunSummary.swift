/// How an agent's main process ended. JSON (snake_case keys, as everywhere):
/// `{"kind": "exited", "code": 0}` or `{"kind": "signaled", "signal": 9, "signal_name": "SIGKILL"}`.
public enum Termination: Equatable, Codable, Sendable {
    case exited(code: Int32)
    case signaled(signal: Int32)

    enum CodingKeys: String, CodingKey {
        case kind, code, signal
        case signalName
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch try container.decode(String.self, forKey: .kind) {
        case "exited": self = .exited(code: try container.decode(Int32.self, forKey: .code))
        case "signaled": self = .signaled(signal: try container.decode(Int32.self, forKey: .signal))
        case let kind:
            throw DecodingError.dataCorruptedError(forKey: .kind, in: container, debugDescription: "unknown termination kind '\(kind)'")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .exited(let code):
            try container.encode("exited", forKey: .kind)
            try container.encode(code, forKey: .code)
        case .signaled(let signal):
            try container.encode("signaled", forKey: .kind)
            try container.encode(signal, forKey: .signal)
            try container.encode(SignalName.name(signal), forKey: .signalName)
        }
    }

    /// The shell convention: the exit code, or 128 + signal.
    public var exitStatus: Int32 {
        switch self {
        case .exited(let code): code
        case .signaled(let signal): 128 + signal
        }
    }
}

/// What `corral run` reports when an agent finishes: numbers read back from
/// the agent's cgroup just before it is removed.
public struct RunSummary: Equatable, Codable, Sendable {
    public var agent: String
    public var group: String
    /// The agent cgroup, relative to the cgroup mount.
    public var cgroup: String
    public var command: [String]
    public var limits: LimitSet
    public var termination: Termination
    public var exitStatus: Int32
    public var wallSeconds: Double
    public var cpu: CPUStat
    public var memoryPeakBytes: Int64?
    /// Whether `memoryPeakBytes` came from `memory.peak` (exact) or from sampling.
    public var memoryPeakExact: Bool
    public var memoryEvents: MemoryEvents
    public var pidsPeak: Int64?
    /// Whether `pidsPeak` came from `pids.peak` (exact) or from sampling.
    public var pidsPeakExact: Bool
    public var pidsEvents: PidsEvents
    /// The OOM killer ended the agent (memory.events oom_kill > 0 and the main process died of SIGKILL).
    public var oomKilled: Bool
    /// A fork was refused at pids.max at least once.
    public var pidsLimitHit: Bool
    /// "clone3" (CLONE_INTO_CGROUP) or "cgroup.procs" (the fallback).
    public var spawnMethod: String
    /// Signals Corral forwarded to the agent, by name.
    public var forwardedSignals: [String]
    /// Processes still alive after the main one exited, killed through cgroup.kill.
    public var strayProcessesKilled: Bool
    /// What the escalation ladder did during the run, with real outcomes.
    public var enforcement: [EnforcementRecord] = []
    /// "daemon" when a running `corral serve` managed the agent, else "embedded".
    public var engine: String = "embedded"
    /// The isolation the agent ran under (nil: none).
    public var security: SecurityPolicy?
    /// Syscalls its filter refused, counted.
    public var denials: [SyscallDenial]

    public init(
        agent: String, group: String, cgroup: String, command: [String], limits: LimitSet,
        termination: Termination, wallSeconds: Double, cpu: CPUStat, memoryPeakBytes: Int64?,
        memoryPeakExact: Bool, memoryEvents: MemoryEvents, pidsPeak: Int64?, pidsPeakExact: Bool,
        pidsEvents: PidsEvents, spawnMethod: String, forwardedSignals: [String], strayProcessesKilled: Bool,
        security: SecurityPolicy? = nil, denials: [SyscallDenial] = []
    ) {
        self.security = security
        self.denials = denials
        self.agent = agent
        self.group = group
        self.cgroup = cgroup
        self.command = command
        self.limits = limits
        self.termination = termination
        self.exitStatus = termination.exitStatus
        self.wallSeconds = wallSeconds
        self.cpu = cpu
        self.memoryPeakBytes = memoryPeakBytes
        self.memoryPeakExact = memoryPeakExact
        self.memoryEvents = memoryEvents
        self.pidsPeak = pidsPeak
        self.pidsPeakExact = pidsPeakExact
        self.pidsEvents = pidsEvents
        self.oomKilled = memoryEvents.oomKill > 0 && termination == .signaled(signal: 9)
        self.pidsLimitHit = pidsEvents.max > 0
        self.spawnMethod = spawnMethod
        self.forwardedSignals = forwardedSignals
        self.strayProcessesKilled = strayProcessesKilled
    }

    /// Average CPU use over the run, in percent of one CPU.
    public var cpuPercent: Double {
        wallSeconds > 0 ? Double(cpu.usageUsec) / 1e6 / wallSeconds * 100 : 0
    }

    /// One line saying how the run ended.
    public var headline: String {
        var text = "corral: agent \(agent) (\(group)) "
        switch termination {
        case .exited(let code):
            text += "exited with status \(code)"
        case .signaled(let signal):
            text += "was killed by \(SignalName.name(signal))"
            if oomKilled { text += ": OOM-killed at its memory limit" }
            if signal == 31, security?.seccomp.action == .kill {
                let calls = denials.filter { $0.action == .kill }.map(\.syscall)
                text +=
                    ": its seccomp filter (seccomp_action: kill) refused " + (calls.isEmpty ? "a syscall" : calls.joined(separator: ", "))
            }
        }
        text += " after \(Quantity.formatSeconds(wallSeconds))"
        if pidsLimitHit { text += "; it hit its process limit" }
        return text
    }

    /// The human summary printed to stderr.
    public var text: String {
        var lines = [headline]
        let cpuLimit = limits[.cpu].map { " of a \(Quantity.formatPercent($0.hard)) limit" } ?? ""
        var cpuLine =
            "  cpu        \(Quantity.formatSeconds(Double(cpu.usageUsec) / 1e6)) (\(Quantity.formatPercent(cpuPercent)) of one CPU\(cpuLimit); user \(Quantity.formatSeconds(Double(cpu.userUsec) / 1e6)), system \(Quantity.formatSeconds(Double(cpu.systemUsec) / 1e6)))"
        if let throttled = cpu.throttledUsec, let periods = cpu.nrThrottled {
            cpuLine += ", throttled \(Quantity.formatSeconds(Double(throttled) / 1e6)) in \(periods) periods"
        }
        lines.append(cpuLine)
        var memoryLine = "  memory     peak " + (memoryPeakBytes.map { Quantity.formatBytes(Double($0)) } ?? "unknown")
        if !memoryPeakExact, memoryPeakBytes != nil { memoryLine += " (sampled)" }
        if let memory = limits[.memory] {
            memoryLine += " (high \(Quantity.formatBytes(memory.soft)), max \(Quantity.formatBytes(memory.hard)))"
        }
        memoryLine +=
            "; events: high \(memoryEvents.high), max \(memoryEvents.max), oom \(memoryEvents.oom), oom_kill \(memoryEvents.oomKill)"
        if memoryEvents.oomGroupKill > 0 { memoryLine += ", oom_group_kill \(memoryEvents.oomGroupKill)" }
        lines.append(memoryLine)
        var pidsLine = "  processes  peak " + (pidsPeak.map(String.init) ?? "unknown")
        if !pidsPeakExact, pidsPeak != nil { pidsLine += " (sampled)" }
        if let processes = limits[.processes] { pidsLine += " of \(Quantity.formatCount(processes.hard))" }
        pidsLine += "; forks refused at pids.max: \(pidsEvents.max)"
        lines.append(pidsLine)
        if strayProcessesKilled {
            lines.append("  note       processes left behind by the command were killed with its cgroup")
        }
        if !enforcement.isEmpty {
            let actions = enforcement.map { "\($0.action.rawValue) \($0.resource.rawValue)\($0.succeeded ? "" : " (failed)")" }
            lines.append("  actions    \(actions.joined(separator: ", ")) (by the \(engine) engine)")
        }
        if !forwardedSignals.isEmpty {
            lines.append("  signals    forwarded \(forwardedSignals.joined(separator: ", "))")
        }
        if let security {
            lines.append("  isolation  \(security.summary)")
        }
        if !denials.isEmpty {
            let calls = denials.map { "\($0.syscall) ×\($0.count)" }
            let answer = denials.contains { $0.action == .kill } ? "the process killed by SIGSYS" : "answered EPERM"
            lines.append("  denied     \(calls.joined(separator: ", ")) (seccomp: \(answer))")
        }
        return lines.joined(separator: "\n")
    }
}

/// Signal names for messages (Linux numbering).
public enum SignalName {
    static let names: [Int32: String] = [
        1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS",
        8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE",
        14: "SIGALRM", 15: "SIGTERM", 17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP",
        21: "SIGTTIN", 22: "SIGTTOU", 24: "SIGXCPU", 25: "SIGXFSZ", 26: "SIGVTALRM", 27: "SIGPROF",
        23: "SIGURG", 28: "SIGWINCH", 31: "SIGSYS",
    ]

    public static func name(_ signal: Int32) -> String {
        names[signal] ?? "signal \(signal)"
    }

    /// Signals an agent may be sent as a notice (they do not stop or kill a
    /// program that handles them, and are ignored by default or harmless).
    public static let notices: [Int32] = [1, 10, 12, 28, 23]

    /// "SIGUSR1", "USR1" or "usr1" → 10, among `notices` only.
    public static func notice(named text: String) -> Int32? {
        let upper = text.uppercased()
        let name = upper.hasPrefix("SIG") ? upper : "SIG" + upper
        let all = names.merging([28: "SIGWINCH", 23: "SIGURG"]) { old, _ in old }
        return notices.first { all[$0] == name }
    }
}
