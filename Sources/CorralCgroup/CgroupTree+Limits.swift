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
