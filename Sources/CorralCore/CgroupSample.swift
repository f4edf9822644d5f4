/// One reading of an agent's (or group's) cgroup files.
public struct CgroupSample: Equatable, Codable, Sendable {
    public var memoryCurrent: Int64?
    /// `memory.peak` (kernel 5.19+), nil when absent.
    public var memoryPeak: Int64?
    public var memoryEvents: MemoryEvents
    /// `memory.stat`, nil when it was not read (the watcher does not) or is absent.
    public var memoryStat: MemoryStat?
    public var cpu: CPUStat
    public var pidsCurrent: Int64?
    /// `pids.peak` (kernel 6.1+), nil when absent.
    public var pidsPeak: Int64?
    public var pidsEvents: PidsEvents
    public var events: CgroupEvents
    /// `inactive_file` of `memory.stat` (what the watcher reads of that
    /// file): reclaimable cache, left out of the working set.
    public var inactiveFile: Int64?
    /// The PSI files' stall totals (nil when not read or absent).
    public var pressure: PressureTotals?

    public init(
        memoryCurrent: Int64? = nil, memoryPeak: Int64? = nil, memoryEvents: MemoryEvents = MemoryEvents(),
        memoryStat: MemoryStat? = nil, cpu: CPUStat = CPUStat(), pidsCurrent: Int64? = nil, pidsPeak: Int64? = nil,
        pidsEvents: PidsEvents = PidsEvents(), events: CgroupEvents = CgroupEvents(populated: false, frozen: false),
        inactiveFile: Int64? = nil, pressure: PressureTotals? = nil
    ) {
        self.memoryCurrent = memoryCurrent
        self.memoryPeak = memoryPeak
        self.memoryEvents = memoryEvents
        self.memoryStat = memoryStat
        self.cpu = cpu
        self.pidsCurrent = pidsCurrent
        self.pidsPeak = pidsPeak
        self.pidsEvents = pidsEvents
        self.events = events
        self.inactiveFile = inactiveFile ?? memoryStat?["inactive_file"]
        self.pressure = pressure
    }

    /// The working set as cAdvisor and the kubelet count it: memory.current
    /// less inactive file pages (cache the kernel can take back), never below 0.
    /// Nil without memory.current; memory.current itself without inactive_file.
    public var workingSet: Int64? {
        guard let memoryCurrent else { return nil }
        return max(0, memoryCurrent - (inactiveFile ?? memoryStat?["inactive_file"] ?? 0))
    }
}
