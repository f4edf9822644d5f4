public import CorralCore

#if canImport(Glibc)
    internal import Glibc
#endif

extension CgroupTree {
    /// Whether `path` holds a live process (`cgroup.events` populated).
    public func isPopulated(_ path: CgroupPath) throws(CgroupError) -> Bool {
        CgroupEvents(parsing: try fs.read(.events, of: path)).populated
    }

    /// Lowers `resource`'s kernel limit of `path` to `cumulative` × the
    /// configured one (the escalation ladder's throttle); returns what changed,
    /// "file before → after". Resources without a kernel control change nothing.
    public func throttle(
        _ path: CgroupPath, _ resource: Resource, limit: ResourceLimit, cumulative: Double, processes: Double?
    ) throws(CgroupError) -> String {
        let file: CgroupFile
        let target: String
        switch resource {
        case .cpu:
            file = .cpuMax
            target = CPUMax(percent: max(CPUMax.minimumPercent, limit.hard * cumulative)).description
        case .memory:
            file = .memoryHigh
            target = String(Int64(max(1_048_576, limit.soft * cumulative)))
        case .processes:
            file = .pidsMax
            // Never above the limit in force: processes counted over it must not raise it.
            let current = Int64(processes ?? 1)
            target = String(min(Int64(limit.hard), max(current, Int64(limit.hard * cumulative), 1)))
        case .files, .connections, .network, .disk:
            return "no kernel control for \(resource.rawValue): throttle notice sent to the agent"
        }
        let before = currentValue(file, of: path)
        try fs.write(target, to: file, of: path)
        return "\(file.rawValue) \(before) → \(target)"
    }

    /// Writes the configured limit of `resource` back (after a throttle);
    /// returns the files written, "file value, …".
    public func restore(_ path: CgroupPath, _ resource: Resource, limit: ResourceLimit?) throws(CgroupError) -> String {
        var only = LimitSet()
        only[resource] = limit
        let writes = CgroupSettings(agentLimits: only).writes.filter { $0.file != .memoryOOMGroup }
        for write in writes {
            try fs.write(write.value, to: write.file, of: path)
        }
        return writes.filter { $0.file != .cpuMaxBurst }.map { "\($0.file.rawValue) \($0.value)" }.joined(separator: ", ")
    }

    /// The host ladder's throttle of an agent: memory.high down to its usage (at
    /// least 1 MiB), cpu.max down to `share` of `cpuLimit` (its hard limit; nil: of
    /// what is in force) with no burst; never looser than what is in force (its own
    /// ladder may have throttled it further). Appends to `changed` each file as
    /// "file before → after", as it is written: a failure part-way throws with
    /// `changed` saying what was done.
    public func clampForHost(
        _ path: CgroupPath, memoryUsage: Int64, cpuLimit: Double?, share: Double, changed: inout [String]
    ) throws(CgroupError) {
        let beforeHigh = try fs.read(.memoryHigh, of: path).trimmingSpaces()
        var high = max(memoryUsage, 1_048_576)
        if let current = CgroupValue(parsing: beforeHigh)?.value { high = min(high, current) }
        try fs.write(String(high), to: .memoryHigh, of: path)
        changed.append("memory.high \(beforeHigh) → \(high)")
        let beforeCPU = CPUMax(parsing: try fs.read(.cpuMax, of: path))
        guard let basis = cpuLimit ?? beforeCPU?.percent else { return }
        var target = CPUMax(percent: max(CPUMax.minimumPercent, basis * share))
        if let current = beforeCPU?.percent, let wanted = target.percent, current < wanted { target = beforeCPU! }
        do {
            try fs.write("0", to: .cpuMaxBurst, of: path)
        } catch  where error.errno == .noSuchFileOrDirectory {
            // No cpu.max.burst before Linux 5.14: there is no burst to take away.
        }
        try fs.write(target.description, to: .cpuMax, of: path)
        changed.append("cpu.max \(beforeCPU?.description ?? "max") → \(target)")
    }

    /// Undoes `clampForHost`: memory.high back to the soft limit ("max" without
    /// one), cpu.max to the configured limit ("max" without one).
    public func releaseHostClamp(_ path: CgroupPath, memory: ResourceLimit?, cpu: ResourceLimit?) throws(CgroupError) {
        try fs.write(memory.map { String(Int64($0.soft)) } ?? "max", to: .memoryHigh, of: path)
        if let cpu {
            _ = try restore(path, .cpu, limit: cpu)
        } else {
            try fs.write(CPUMax(quota: nil).description, to: .cpuMax, of: path)
        }
    }

    /// A group's memory.low (the protection of its agents, summed).
    public func setMemoryLow(_ bytes: Int64, of path: CgroupPath) throws(CgroupError) {
        try fs.write(String(bytes), to: .memoryLow, of: path)
    }

    /// Moves process `pid` into `path` (cgroup.procs).
    public func move(pid: Int32, into path: CgroupPath) throws(CgroupError) {
        try fs.write(String(pid), to: .procs, of: path)
    }

    /// Sends `signal` to every process in `path` and below; how many got it.
    /// A cgroup that cannot be listed (gone) has nobody to signal.
    public func signalAll(_ path: CgroupPath, _ signal: Int32) -> Int {
        let pids: [Int32]
        do {
            pids = try allProcesses(path)
        } catch {
            return 0
        }
        return pids.filter { self.signal($0, signal) == 0 }.count
    }

    /// A limit file's value for messages ("?" when it cannot be read).
    private func currentValue(_ file: CgroupFile, of path: CgroupPath) -> String {
        do {
            return try fs.read(file, of: path).trimmingSpaces()
        } catch {
            return "?"
        }
    }
}
