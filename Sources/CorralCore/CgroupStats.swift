/// Parsers for the kernel's cgroup statistics files. Keys are looked up by
/// name (new kernels add fields mid-file); unknown keys are kept, not rejected.
public enum FlatKeyed {
    /// Parses "key value" lines (memory.events, memory.stat, cpu.stat,
    /// pids.events, cgroup.events). Lines that are not `key integer` are skipped.
    public static func parse(_ text: String) -> [String: Int64] {
        var result: [String: Int64] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count == 2, let value = Int64(fields[1]) else { continue }
            result[String(fields[0])] = value
        }
        return result
    }
}

/// `memory.events` (or `.local`): counters since the cgroup was created.
public struct MemoryEvents: Equatable, Codable, Sendable {
    /// Times usage went over `memory.low` protection.
    public var low: Int64
    /// Times the cgroup was throttled and reclaimed over `memory.high`.
    public var high: Int64
    /// Times usage hit `memory.max`.
    public var max: Int64
    /// Times the OOM killer was invoked (an allocation failed at `memory.max`).
    public var oom: Int64
    /// Processes killed by the OOM killer in this cgroup.
    public var oomKill: Int64
    /// Times the whole cgroup was OOM-killed together (`memory.oom.group`); 0 on kernels without it.
    public var oomGroupKill: Int64

    public init(low: Int64 = 0, high: Int64 = 0, max: Int64 = 0, oom: Int64 = 0, oomKill: Int64 = 0, oomGroupKill: Int64 = 0) {
        self.low = low
        self.high = high
        self.max = max
        self.oom = oom
        self.oomKill = oomKill
        self.oomGroupKill = oomGroupKill
    }

    public init(parsing text: String) {
        let fields = FlatKeyed.parse(text)
        self.init(
            low: fields["low"] ?? 0, high: fields["high"] ?? 0, max: fields["max"] ?? 0,
            oom: fields["oom"] ?? 0, oomKill: fields["oom_kill"] ?? 0,
            oomGroupKill: fields["oom_group_kill"] ?? 0)
    }
}

/// Single-number counter files: `memory.current`, `memory.peak`,
/// `pids.current`, `pids.peak`.
public enum CgroupCounter {
    /// The non-negative integer in `text` (a trailing newline is allowed), nil otherwise.
    public static func parse(_ text: String) -> Int64? {
        guard let value = Int64(text.trimmingSpaces()), value >= 0 else { return nil }
        return value
    }
}

/// `memory.stat`: a breakdown of the cgroup's memory by kind, in bytes, and
/// event counters. Every field is looked up by name: kernels add fields (in
/// the middle of the file) and drop some, so each accessor is nil when this
/// kernel does not report it, and `fields` keeps every key, known or not.
public struct MemoryStat: Equatable, Codable, Sendable {
    /// Every `key value` line of the file.
    public var fields: [String: Int64]

    public init(fields: [String: Int64] = [:]) {
        self.fields = fields
    }

    public init(parsing text: String) {
        self.init(fields: FlatKeyed.parse(text))
    }

    /// Any field by its kernel name ("pgscan", "zswap", …).
    public subscript(key: String) -> Int64? { fields[key] }

    /// Anonymous memory (heap, stack, private mappings), bytes.
    public var anon: Int64? { fields["anon"] }
    /// Page cache, including tmpfs/shmem, bytes.
    public var file: Int64? { fields["file"] }
    /// All kernel memory charged to the cgroup (stacks, page tables, slab, …), bytes; newer kernels only.
    public var kernel: Int64? { fields["kernel"] }
    /// Kernel stacks, bytes.
    public var kernelStack: Int64? { fields["kernel_stack"] }
    /// Page tables, bytes.
    public var pageTables: Int64? { fields["pagetables"] }
    /// Network socket buffers, bytes.
    public var sock: Int64? { fields["sock"] }
    /// tmpfs and shared memory (part of `file`), bytes.
    public var shmem: Int64? { fields["shmem"] }
    /// Page cache mapped into processes, bytes.
    public var fileMapped: Int64? { fields["file_mapped"] }
    /// Page cache modified and not yet written back, bytes.
    public var fileDirty: Int64? { fields["file_dirty"] }
    /// Page cache being written back, bytes.
    public var fileWriteback: Int64? { fields["file_writeback"] }
    /// Slab allocations (reclaimable and not), bytes.
    public var slab: Int64? { fields["slab"] }
    /// Page faults (count).
    public var pageFaults: Int64? { fields["pgfault"] }
    /// Page faults that needed I/O (count).
    public var majorPageFaults: Int64? { fields["pgmajfault"] }
    /// Evicted anonymous pages faulted back in: thrashing under a too-small limit (count).
    public var workingsetRefaultAnon: Int64? { fields["workingset_refault_anon"] }
    /// Evicted page-cache pages read back in (count).
    public var workingsetRefaultFile: Int64? { fields["workingset_refault_file"] }
    /// Pages scanned by reclaim (count).
    public var pagesScanned: Int64? { fields["pgscan"] }
    /// Pages reclaimed (count).
    public var pagesStolen: Int64? { fields["pgsteal"] }
}

/// `cpu.stat`. The throttling fields exist only where the cpu controller is enabled.
public struct CPUStat: Equatable, Codable, Sendable {
    public var usageUsec: Int64
    public var userUsec: Int64
    public var systemUsec: Int64
    public var nrPeriods: Int64?
    public var nrThrottled: Int64?
    public var throttledUsec: Int64?
    public var nrBursts: Int64?
    public var burstUsec: Int64?

    public init(
        usageUsec: Int64 = 0, userUsec: Int64 = 0, systemUsec: Int64 = 0, nrPeriods: Int64? = nil,
        nrThrottled: Int64? = nil, throttledUsec: Int64? = nil, nrBursts: Int64? = nil, burstUsec: Int64? = nil
    ) {
        self.usageUsec = usageUsec
        self.userUsec = userUsec
        self.systemUsec = systemUsec
        self.nrPeriods = nrPeriods
        self.nrThrottled = nrThrottled
        self.throttledUsec = throttledUsec
        self.nrBursts = nrBursts
        self.burstUsec = burstUsec
    }

    public init(parsing text: String) {
        let fields = FlatKeyed.parse(text)
        self.init(
            usageUsec: fields["usage_usec"] ?? 0, userUsec: fields["user_usec"] ?? 0,
            systemUsec: fields["system_usec"] ?? 0, nrPeriods: fields["nr_periods"],
            nrThrottled: fields["nr_throttled"], throttledUsec: fields["throttled_usec"],
            nrBursts: fields["nr_bursts"], burstUsec: fields["burst_usec"])
    }

    /// CPU use between two readings `elapsed` apart, in percent of one CPU
    /// (usage_usec delta / wall time).
    public static func usagePercent(from earlier: CPUStat, to later: CPUStat, elapsed: Duration) -> Double {
        let wall = Double(elapsed.microseconds)
        guard wall > 0 else { return 0 }
        return Double(Swift.max(0, later.usageUsec - earlier.usageUsec)) * 100 / wall
    }
}

/// `pids.events`: `max` counts forks refused at `pids.max`.
public struct PidsEvents: Equatable, Codable, Sendable {
    public var max: Int64

    public init(max: Int64 = 0) { self.max = max }

    public init(parsing text: String) {
        self.init(max: FlatKeyed.parse(text)["max"] ?? 0)
    }
}

/// `cgroup.events`: whether the subtree has live processes and whether it is frozen.
public struct CgroupEvents: Equatable, Codable, Sendable {
    public var populated: Bool
    public var frozen: Bool

    public init(populated: Bool, frozen: Bool) {
        self.populated = populated
        self.frozen = frozen
    }

    public init(parsing text: String) {
        let fields = FlatKeyed.parse(text)
        self.init(populated: fields["populated"] == 1, frozen: fields["frozen"] == 1)
    }
}

/// One line of a PSI file: "some avg10=0.00 avg60=0.00 avg300=0.00 total=0".
public struct PressureLine: Equatable, Codable, Sendable {
    public var avg10: Double
    public var avg60: Double
    public var avg300: Double
    /// Total stall time in microseconds.
    public var total: Int64

    public init(avg10: Double, avg60: Double, avg300: Double, total: Int64) {
        self.avg10 = avg10
        self.avg60 = avg60
        self.avg300 = avg300
        self.total = total
    }
}

/// A PSI file (`memory.pressure`, `cpu.pressure`, `io.pressure`).
public struct Pressure: Equatable, Codable, Sendable {
    public var some: PressureLine
    /// Absent in `cpu.pressure` on older kernels.
    public var full: PressureLine?

    public init(some: PressureLine, full: PressureLine?) {
        self.some = some
        self.full = full
    }

    public init?(parsing text: String) {
        var some: PressureLine?
        var full: PressureLine?
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard let kind = fields.first else { continue }
            var values: [Substring: Substring] = [:]
            for field in fields.dropFirst() {
                let pair = field.split(separator: "=", maxSplits: 1)
                if pair.count == 2 { values[pair[0]] = pair[1] }
            }
            guard let avg10 = values["avg10"].flatMap({ Double($0) }),
                let avg60 = values["avg60"].flatMap({ Double($0) }),
                let avg300 = values["avg300"].flatMap({ Double($0) }),
                let total = values["total"].flatMap({ Int64($0) })
            else { return nil }
            let parsed = PressureLine(avg10: avg10, avg60: avg60, avg300: avg300, total: total)
            if kind == "some" { some = parsed } else if kind == "full" { full = parsed }
        }
        guard let some else { return nil }
        self.init(some: some, full: full)
    }
}

/// The cumulative stall totals of the three PSI files, in microseconds
/// (node_exporter's and cAdvisor's `*_waiting_seconds_total` = "some",
/// `*_stalled_seconds_total` = "full"). Nil: the file or line is absent
/// (no `full` line in `cpu.pressure` before 5.13).
public struct PressureTotals: Equatable, Codable, Sendable {
    public var cpuSome: Int64?
    public var cpuFull: Int64?
    public var memorySome: Int64?
    public var memoryFull: Int64?
    public var ioSome: Int64?
    public var ioFull: Int64?

    public init(
        cpuSome: Int64? = nil, cpuFull: Int64? = nil, memorySome: Int64? = nil, memoryFull: Int64? = nil, ioSome: Int64? = nil,
        ioFull: Int64? = nil
    ) {
        self.cpuSome = cpuSome
        self.cpuFull = cpuFull
        self.memorySome = memorySome
        self.memoryFull = memoryFull
        self.ioSome = ioSome
        self.ioFull = ioFull
    }

    /// The `total=` of the "some" and "full" lines of one PSI file, without
    /// parsing the averages (this runs for every agent on every sample).
    public static func totals(parsing text: String) -> (some: Int64?, full: Int64?) {
        var some: Int64?
        var full: Int64?
        for line in text.utf8.split(separator: UInt8(ascii: "\n")) {
            guard let marker = line.firstRange(of: "total=".utf8) else { continue }
            let digits = line[marker.upperBound...].prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
            guard let value = Int64(String(decoding: digits, as: UTF8.self)) else { continue }
            if line.starts(with: "some".utf8) { some = value } else if line.starts(with: "full".utf8) { full = value }
        }
        return (some, full)
    }
}

extension FlatKeyed {
    /// One key's value of a flat-keyed file, without building the whole
    /// dictionary (memory.stat has some 40 lines; the watcher needs one).
    public static func value(of key: String, in text: String) -> Int64? {
        for line in text.utf8.split(separator: UInt8(ascii: "\n")) {
            guard line.count > key.utf8.count + 1, line.starts(with: key.utf8),
                line[line.index(line.startIndex, offsetBy: key.utf8.count)] == UInt8(ascii: " ")
            else { continue }
            let rest = line[line.index(line.startIndex, offsetBy: key.utf8.count + 1)...]
            return Int64(String(decoding: rest, as: UTF8.self).trimmingSpaces())
        }
        return nil
    }
}

/// A space-separated controller list (`cgroup.controllers`, `cgroup.subtree_control`).
public enum ControllerList {
    /// All names in the file, known to Corral or not.
    public static func parse(_ text: String) -> Set<String> {
        Set(text.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
    }
}

/// `cgroup.procs`: one PID per line.
public enum ProcessList {
    public static func parse(_ text: String) -> [Int32] {
        text.split(separator: "\n").compactMap { Int32($0.trimmingSpaces()) }
    }
}

/// `/proc/PID/cgroup`.
public enum ProcCgroup {
    /// The cgroup v2 path ("0::/path") of the process, nil when it has none.
    public static func unifiedPath(_ text: String) -> String? {
        for line in text.split(separator: "\n") where line.hasPrefix("0::") {
            return String(line.dropFirst(3))
        }
        return nil
    }
}
