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

    public init(
        memoryCurrent: Int64? = nil, memoryPeak: Int64? = nil, memoryEvents: MemoryEvents = MemoryEvents(),
        memoryStat: MemoryStat? = nil, cpu: CPUStat = CPUStat(), pidsCurrent: Int64? = nil, pidsPeak: Int64? = nil,
        pidsEvents: PidsEvents = PidsEvents(), events: CgroupEvents = CgroupEvents(populated: false, frozen: false)
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
    }
}
