/// A cgroup limit file's value: a number or `max` (no limit).
public enum CgroupValue: Equatable, Hashable, Codable, Sendable, CustomStringConvertible {
    case max
    case limit(Int64)

    /// The text written to / read from the file.
    public var description: String {
        switch self {
        case .max: "max"
        case .limit(let value): String(value)
        }
    }

    /// Parses "max" or a non-negative integer (trailing newline allowed).
    public init?(parsing text: String) {
        let trimmed = text.trimmingSpaces()
        if trimmed == "max" {
            self = .max
        } else if let value = Int64(trimmed), value >= 0 {
            self = .limit(value)
        } else {
            return nil
        }
    }

    /// The numeric limit, nil for `max`.
    public var value: Int64? {
        if case .limit(let value) = self { return value }
        return nil
    }
}

/// `cpu.max`: "$QUOTA $PERIOD" in microseconds, or "max $PERIOD".
public struct CPUMax: Equatable, Hashable, Codable, Sendable, CustomStringConvertible {
    /// Microseconds of CPU time per period; nil means `max` (unlimited).
    public var quota: Int64?
    /// Period in microseconds (kernel: 1 ms … 1 s).
    public var period: Int64

    public static let defaultPeriod: Int64 = 100_000
    /// The smallest quota the kernel accepts is 1 ms; with the longest period
    /// (1 s) that is 0.1% of one CPU.
    public static let minimumPercent = 0.1

    public init(quota: Int64?, period: Int64 = CPUMax.defaultPeriod) {
        self.quota = quota
        self.period = period
    }

    /// `percent` of one CPU: quota = percent × period / 100, using the default
    /// 100 ms period unless that would put the quota under the kernel's 1 ms
    /// minimum, in which case the period grows to 1 s.
    public init(percent: Double) {
        var period = CPUMax.defaultPeriod
        var quota = Int64((percent * Double(period) / 100).rounded())
        if quota < 1000 {
            period = 1_000_000
            quota = Swift.max(1000, Int64((percent * Double(period) / 100).rounded()))
        }
        self.init(quota: quota, period: period)
    }

    /// The limit as a percentage of one CPU (nil when unlimited).
    public var percent: Double? {
        quota.map { Double($0) * 100 / Double(period) }
    }

    public var description: String {
        "\(quota.map(String.init) ?? "max") \(period)"
    }

    /// Parses the kernel's "max 100000" / "30000 100000".
    public init?(parsing text: String) {
        let fields = text.trimmingSpaces().split(separator: " ")
        guard fields.count == 2, let period = Int64(fields[1]), period > 0 else { return nil }
        if fields[0] == "max" {
            self.init(quota: nil, period: period)
        } else if let quota = Int64(fields[0]), quota > 0 {
            self.init(quota: quota, period: period)
        } else {
            return nil
        }
    }
}

/// The limit files Corral writes on one cgroup; nil fields are left as they are.
public struct CgroupSettings: Equatable, Codable, Sendable {
    public var memoryHigh: CgroupValue?
    public var memoryMax: CgroupValue?
    /// `memory.oom.group`: kill the whole cgroup together on OOM.
    public var memoryOOMGroup: Bool?
    public var cpuMax: CPUMax?
    /// `cpu.max.burst` in microseconds.
    public var cpuMaxBurst: Int64?
    public var pidsMax: CgroupValue?
    /// `memory.low`: protection from reclaim (see `Priority`).
    public var memoryLow: CgroupValue?
    /// `cpu.weight` (1…10000, default 100).
    public var cpuWeight: Int?
    /// `io.weight` (1…10000, default 100); written only where the io controller is enabled.
    public var ioWeight: Int?

    public init(
        memoryHigh: CgroupValue? = nil, memoryMax: CgroupValue? = nil, memoryOOMGroup: Bool? = nil,
        cpuMax: CPUMax? = nil, cpuMaxBurst: Int64? = nil, pidsMax: CgroupValue? = nil
    ) {
        self.memoryHigh = memoryHigh
        self.memoryMax = memoryMax
        self.memoryOOMGroup = memoryOOMGroup
        self.cpuMax = cpuMax
        self.cpuMaxBurst = cpuMaxBurst
        self.pidsMax = pidsMax
    }

    /// The kernel settings of an agent leaf for `limits`:
    /// memory soft → memory.high, hard → memory.max, memory.oom.group = 1;
    /// cpu hard → cpu.max, burst above hard → cpu.max.burst; processes hard → pids.max.
    /// `priority` adds cpu.weight, io.weight and memory.low when it is not the default.
    public init(agentLimits limits: LimitSet, priority: Priority = .standard) {
        self.init()
        applyPriority(priority, memorySoft: limits[.memory]?.soft, always: false)
        if let memory = limits[.memory] {
            memoryHigh = .limit(Int64(memory.soft))
            memoryMax = .limit(Int64(memory.hard))
            memoryOOMGroup = true
        }
        if let cpu = limits[.cpu] {
            let max = CPUMax(percent: cpu.hard)
            cpuMax = max
            if let burst = cpu.burst, burst > cpu.hard, let quota = max.quota {
                let extra = Int64(((burst - cpu.hard) * Double(max.period) / 100).rounded())
                cpuMaxBurst = Swift.min(extra, quota)
            }
        }
        if let processes = limits[.processes] {
            pidsMax = .limit(Int64(processes.hard))
        }
    }

    /// The file writes that apply these settings, in a safe order: a lower
    /// `cpu.max` is rejected while `cpu.max.burst` exceeds it, so the burst
    /// is reset first whenever it is rewritten.
    public var writes: [(file: CgroupFile, value: String)] {
        var writes: [(CgroupFile, String)] = []
        if let memoryMax { writes.append((.memoryMax, memoryMax.description)) }
        if let memoryHigh { writes.append((.memoryHigh, memoryHigh.description)) }
        if let memoryLow { writes.append((.memoryLow, memoryLow.description)) }
        if let memoryOOMGroup { writes.append((.memoryOOMGroup, memoryOOMGroup ? "1" : "0")) }
        if cpuMaxBurst != nil { writes.append((.cpuMaxBurst, "0")) }
        if let cpuMax { writes.append((.cpuMax, cpuMax.description)) }
        if let cpuMaxBurst, cpuMaxBurst > 0 { writes.append((.cpuMaxBurst, String(cpuMaxBurst))) }
        if let pidsMax { writes.append((.pidsMax, pidsMax.description)) }
        if let cpuWeight { writes.append((.cpuWeight, String(cpuWeight))) }
        if let ioWeight { writes.append((.ioWeight, String(ioWeight))) }
        return writes
    }

    /// Controllers these settings need enabled on the parent.
    public var controllers: Set<Controller> {
        var needed: Set<Controller> = []
        if memoryHigh != nil || memoryMax != nil || memoryOOMGroup != nil || memoryLow != nil { needed.insert(.memory) }
        if cpuMax != nil || cpuMaxBurst != nil || cpuWeight != nil { needed.insert(.cpu) }
        if pidsMax != nil { needed.insert(.pids) }
        return needed
    }
}

/// cgroup v2 controllers Corral uses.
public enum Controller: String, CaseIterable, Codable, Sendable, Comparable, CaseHashable {
    case memory
    case cpu
    case pids
    case io

    public static func < (lhs: Controller, rhs: Controller) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }

    /// The controllers `corral run` cannot work without.
    public static let required: [Controller] = [.memory, .cpu, .pids]
}

/// The cgroupfs files Corral reads or writes. A closed set: no file name is
/// ever taken from input.
public enum CgroupFile: String, CaseIterable, Sendable, CaseHashable {
    case controllers = "cgroup.controllers"
    case subtreeControl = "cgroup.subtree_control"
    case procs = "cgroup.procs"
    case events = "cgroup.events"
    case freeze = "cgroup.freeze"
    case kill = "cgroup.kill"
    case type = "cgroup.type"
    case maxDepth = "cgroup.max.depth"
    case maxDescendants = "cgroup.max.descendants"
    case memoryCurrent = "memory.current"
    case memoryPeak = "memory.peak"
    case memoryHigh = "memory.high"
    case memoryMax = "memory.max"
    case memoryLow = "memory.low"
    case memoryEvents = "memory.events"
    case memoryEventsLocal = "memory.events.local"
    case memoryStat = "memory.stat"
    case memoryOOMGroup = "memory.oom.group"
    case memoryPressure = "memory.pressure"
    case memorySwapMax = "memory.swap.max"
    case cpuMax = "cpu.max"
    case cpuMaxBurst = "cpu.max.burst"
    case cpuStat = "cpu.stat"
    case cpuWeight = "cpu.weight"
    case cpuPressure = "cpu.pressure"
    case ioMax = "io.max"
    case ioWeight = "io.weight"
    case ioPressure = "io.pressure"
    case pidsCurrent = "pids.current"
    case pidsMax = "pids.max"
    case pidsPeak = "pids.peak"
    case pidsEvents = "pids.events"
}

extension CgroupSettings {
    /// These limits, none above `ceiling`'s (memory.max, cpu.max as a rate, pids.max): a
    /// group's totals written below a root whose limits are tighter (a container's, the
    /// system reservation) say what the kernel will really allow. Unlimited values take the
    /// ceiling's.
    public func clamped(to ceiling: CgroupSettings) -> CgroupSettings {
        var clamped = self
        if let limit = ceiling.memoryMax?.value, let own = memoryMax {
            clamped.memoryMax = .limit(own.value.map { Swift.min($0, limit) } ?? limit)
        }
        if let cpu = ceiling.cpuMax, let ceilingQuota = cpu.quota, let own = cpuMax {
            let ceilingRate = Double(ceilingQuota) / Double(cpu.period)
            let ownRate = own.quota.map { Double($0) / Double(own.period) }
            if ownRate.map({ $0 > ceilingRate }) ?? true { clamped.cpuMax = CPUMax(percent: ceilingRate * 100) }
        }
        if let limit = ceiling.pidsMax?.value, let own = pidsMax {
            clamped.pidsMax = .limit(own.value.map { Swift.min($0, limit) } ?? limit)
        }
        return clamped
    }
}
