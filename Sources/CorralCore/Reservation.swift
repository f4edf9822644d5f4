/// What the host has, read at the edge (/proc/meminfo, CPU count, pid_max).
public struct HostCapacity: Equatable, Codable, Sendable {
    public var memoryBytes: Int64
    public var cpus: Int
    public var pidMax: Int64

    public init(memoryBytes: Int64, cpus: Int, pidMax: Int64) {
        self.memoryBytes = memoryBytes
        self.cpus = cpus
        self.pidMax = pidMax
    }
}

/// The share of the host that Corral's agents may use all together; the rest
/// stays for the system. Seed: 75% of memory, 80% of the CPUs, 90% of pids.
public struct SystemReservation: Equatable, Codable, Sendable {
    /// Fractions (0…1] of the host's memory, CPUs and pid_max that are allocatable.
    public var memory: Double
    public var cpu: Double
    public var processes: Double

    public init(memory: Double, cpu: Double, processes: Double) {
        self.memory = memory
        self.cpu = cpu
        self.processes = processes
    }

    public static let seed = SystemReservation(memory: 0.75, cpu: 0.80, processes: 0.90)

    /// Settings for Corral's root cgroup: memory.max, cpu.max and pids.max at the allocatable share.
    public func rootSettings(for host: HostCapacity) -> CgroupSettings {
        var settings = CgroupSettings()
        settings.memoryMax = .limit(Int64(Double(host.memoryBytes) * memory))
        settings.cpuMax = CPUMax(percent: Double(host.cpus) * 100 * cpu)
        settings.pidsMax = .limit(Int64(Double(host.pidMax) * processes))
        return settings
    }

    /// Allocatable amounts per resource, in each resource's unit.
    public func allocatable(for host: HostCapacity) -> [Resource: Double] {
        [
            .memory: (Double(host.memoryBytes) * memory).rounded(.down),
            .cpu: Double(host.cpus) * 100 * cpu,
            .processes: (Double(host.pidMax) * processes).rounded(.down),
        ]
    }
}
