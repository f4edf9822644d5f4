/// Parsers for the kernel's cgroup statistics files. Keys are looked up by
/// name (new kernels add fields mid-file); unknown keys are kept, not rejected.
public enum FlatKeyed {
    /// Parses "key value" lines (memory.events, memory.stat, cpu.stat,
    /// pids.events, cgroup.events). Lines that are not `key integer` are skipped.
    public static func parse(_ text: String) -> [String: Int64] {
        var result: [String: Int64] = [:]
        scan(text) { key, value in result[String(decoding: key, as: UTF8.self)] = value }
        return result
    }

    /// The values of `keys` in `text`, in the order of `keys` (nil: absent
    /// or not an integer). The watcher's parsers: they run for every agent at
    /// every sample, so they read bytes and make no string or dictionary.
    public static func values(_ keys: [StaticString], in text: String) -> [Int64?] {
        var result = [Int64?](repeating: nil, count: keys.count)
        scan(text) { key, value in
            for (index, wanted) in keys.enumerated()
            where wanted.utf8CodeUnitCount == key.count
                && key.elementsEqual(UnsafeBufferPointer(start: wanted.utf8Start, count: wanted.utf8CodeUnitCount))
            {
                result[index] = value
                return
            }
        }
        return result
    }

    /// The integer `text` holds, spaces and newlines around it allowed (nil: anything else, "max" included).
    public static func integer(in text: String) -> Int64? {
        var text = text
        return text.withUTF8 { bytes in
            var index = 0
            while index < bytes.count, isBlank(bytes[index]) { index += 1 }
            guard let (value, end) = integer(bytes, from: index) else { return nil }
            index = end
            while index < bytes.count, isBlank(bytes[index]) { index += 1 }
            return index == bytes.count ? value : nil
        }
    }

    /// Calls `body` with the key bytes and value of every `key integer` line.
    static func scan(_ text: String, _ body: (UnsafeBufferPointer<UInt8>, Int64) -> Void) {
        var text = text
        text.withUTF8 { bytes in
            let end = bytes.count
            var index = 0
            while index < end {
                var lineEnd = index
                while lineEnd < end, bytes[lineEnd] != newline { lineEnd += 1 }
                defer { index = lineEnd + 1 }
                var cursor = index
                while cursor < lineEnd, bytes[cursor] == space { cursor += 1 }
                let keyStart = cursor
                while cursor < lineEnd, bytes[cursor] != space { cursor += 1 }
                let keyEnd = cursor
                guard keyEnd > keyStart else { continue }
                while cursor < lineEnd, bytes[cursor] == space { cursor += 1 }
                guard let (value, valueEnd) = integer(UnsafeBufferPointer(rebasing: bytes[..<lineEnd]), from: cursor) else { continue }
                cursor = valueEnd
                while cursor < lineEnd, bytes[cursor] == space { cursor += 1 }
                guard cursor == lineEnd else { continue }
                body(UnsafeBufferPointer(rebasing: bytes[keyStart..<keyEnd]), value)
            }
        }
    }

    /// An optionally signed decimal Int64 starting at `start`, and where it
    /// ends; nil without digits, on overflow, or when a non-blank follows them.
    static func integer(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> (Int64, Int)? {
        var index = start
        var negative = false
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+") {
            negative = bytes[index] == UInt8(ascii: "-")
            index += 1
        }
        let digitsStart = index
        var value: Int64 = 0
        while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
            let digit = Int64(bytes[index] &- UInt8(ascii: "0"))
            let (times, overflow) = value.multipliedReportingOverflow(by: 10)
            let (sum, carry) = times.addingReportingOverflow(negative ? -digit : digit)
            guard !overflow, !carry else { return nil }
            value = sum
            index += 1
        }
        guard index > digitsStart, index == bytes.count || isBlank(bytes[index]) else { return nil }
        return (value, index)
    }

    static let space = UInt8(ascii: " ")
    static let newline = UInt8(ascii: "\n")

    /// Calls `body` with each non-empty run of `bytes` between `separator`s (the
    /// lines of a file, the fields of a line), in order, until `body` returns false.
    /// Returns whether every call returned true.
    @discardableResult
    static func forEachPiece(
        of bytes: UnsafeBufferPointer<UInt8>, separatedBy separator: UInt8, _ body: (UnsafeBufferPointer<UInt8>) -> Bool
    ) -> Bool {
        var start = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count, bytes[end] != separator { end += 1 }
            defer { start = end + 1 }
            guard end > start else { continue }
            guard body(UnsafeBufferPointer(rebasing: bytes[start..<end])) else { return false }
        }
        return true
    }
    static func isBlank(_ byte: UInt8) -> Bool {
        byte == space || byte == newline || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r")
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
        let fields = FlatKeyed.values(["low", "high", "max", "oom", "oom_kill", "oom_group_kill"], in: text)
        self.init(
            low: fields[0] ?? 0, high: fields[1] ?? 0, max: fields[2] ?? 0, oom: fields[3] ?? 0, oomKill: fields[4] ?? 0,
            oomGroupKill: fields[5] ?? 0)
    }
}

/// Single-number counter files: `memory.current`, `memory.peak`,
/// `pids.current`, `pids.peak`.
public enum CgroupCounter {
    /// The non-negative integer in `text` (a trailing newline is allowed), nil otherwise.
    public static func parse(_ text: String) -> Int64? {
        guard let value = FlatKeyed.integer(in: text), value >= 0 else { return nil }
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
        let fields = FlatKeyed.values(
            ["usage_usec", "user_usec", "system_usec", "nr_periods", "nr_throttled", "throttled_usec", "nr_bursts", "burst_usec"],
            in: text)
        self.init(
            usageUsec: fields[0] ?? 0, userUsec: fields[1] ?? 0, systemUsec: fields[2] ?? 0, nrPeriods: fields[3], nrThrottled: fields[4],
            throttledUsec: fields[5], nrBursts: fields[6], burstUsec: fields[7])
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
        self.init(max: FlatKeyed.values(["max"], in: text)[0] ?? 0)
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
        let fields = FlatKeyed.values(["populated", "frozen"], in: text)
        self.init(populated: fields[0] == 1, frozen: fields[1] == 1)
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

    /// Parses a PSI file ("some avg10=0.00 avg60=0.00 avg300=0.00 total=0",
    /// and a "full" line). Nil when a line lacks one of the four fields or
    /// there is no "some" line. Over the bytes, without a dictionary per line:
    /// the host monitor reads three of these every second.
    public init?(parsing text: String) {
        var some: PressureLine?
        var full: PressureLine?
        var text = text
        let complete: Bool = text.withUTF8 { bytes in
            FlatKeyed.forEachPiece(of: bytes, separatedBy: FlatKeyed.newline) { bytes in
                guard let line = Self.line(bytes) else { return false }
                if line.kind == "some" { some = line.values } else if line.kind == "full" { full = line.values }
                return true
            }
        }
        guard complete, let some else { return nil }
        self.init(some: some, full: full)
    }

    /// One line: its first field and the four values (nil when one is missing or not a number).
    private static func line(_ bytes: UnsafeBufferPointer<UInt8>) -> (kind: String, values: PressureLine)? {
        var kind: String?
        var avg10: Double?
        var avg60: Double?
        var avg300: Double?
        var total: Int64?
        FlatKeyed.forEachPiece(of: bytes, separatedBy: FlatKeyed.space) { field in
            guard kind != nil else {
                kind = String(decoding: field, as: UTF8.self)
                return true
            }
            guard let equals = field.firstIndex(of: UInt8(ascii: "=")) else { return true }
            let key = UnsafeBufferPointer(rebasing: field[..<equals])
            let value = String(decoding: UnsafeBufferPointer(rebasing: field[(equals + 1)...]), as: UTF8.self)
            if key.elementsEqual("avg10".utf8) {
                avg10 = Double(value)
            } else if key.elementsEqual("avg60".utf8) {
                avg60 = Double(value)
            } else if key.elementsEqual("avg300".utf8) {
                avg300 = Double(value)
            } else if key.elementsEqual("total".utf8) {
                total = Int64(value)
            }
            return true
        }
        guard let kind, let avg10, let avg60, let avg300, let total else { return nil }
        return (kind, PressureLine(avg10: avg10, avg60: avg60, avg300: avg300, total: total))
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
        var text = text
        text.withUTF8 { bytes in
            let marker: StaticString = "total="
            let markerBytes = UnsafeBufferPointer(start: marker.utf8Start, count: marker.utf8CodeUnitCount)
            var index = 0
            while index < bytes.count {
                var lineEnd = index
                while lineEnd < bytes.count, bytes[lineEnd] != FlatKeyed.newline { lineEnd += 1 }
                defer { index = lineEnd + 1 }
                let line = UnsafeBufferPointer(rebasing: bytes[index..<lineEnd])
                guard line.count > 4 else { continue }
                let isSome = line.starts(with: "some".utf8)
                guard isSome || line.starts(with: "full".utf8) else { continue }
                // The last field: "total=N".
                var start = line.count
                while start > 0, line[start - 1] != FlatKeyed.space { start -= 1 }
                let field = UnsafeBufferPointer(rebasing: line[start...])
                guard field.starts(with: markerBytes),
                    let (value, end) = FlatKeyed.integer(field, from: markerBytes.count), end == field.count
                else { continue }
                if isSome { some = value } else { full = value }
            }
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
            return FlatKeyed.integer(in: String(decoding: rest, as: UTF8.self))
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
