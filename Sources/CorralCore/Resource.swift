/// A kind of resource Corral accounts for.
///
/// Memory, CPU and processes have cgroup v2 controllers and are enforced by the
/// kernel; the others are measured per agent or reported by the agent, and are
/// enforced by the escalation ladder alone.
public enum Resource: String, CaseIterable, Codable, CodingKeyRepresentable, Sendable, Comparable, CaseHashable {
    case memory
    case cpu
    case processes
    case files
    case connections
    case network
    case disk

    /// The unit every amount of this resource is expressed in.
    public var unit: ResourceUnit {
        switch self {
        case .memory: .bytes
        case .cpu: .percentOfCPU
        case .processes, .files, .connections: .count
        case .network, .disk: .bytesPerSecond
        }
    }

    /// Whether a cgroup v2 controller enforces this resource.
    public var hasController: Bool {
        switch self {
        case .memory, .cpu, .processes: true
        case .files, .connections, .network, .disk: false
        }
    }

    public static func < (lhs: Resource, rhs: Resource) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// Units of resource amounts. Amounts are stored as `Double` in these units.
public enum ResourceUnit: String, Codable, Sendable {
    /// Bytes of memory.
    case bytes
    /// Percent of one CPU: 100 is one full CPU, 250 is two and a half.
    case percentOfCPU = "percent"
    /// A number of things (processes, open files, sockets).
    case count
    /// Bytes per second of throughput.
    case bytesPerSecond = "bytes_per_second"

    /// Renders an amount for people: "95.4 MiB", "30%", "12".
    public func format(_ amount: Double) -> String {
        switch self {
        case .bytes: Quantity.formatBytes(amount)
        case .percentOfCPU: Quantity.formatPercent(amount)
        case .count: Quantity.formatCount(amount)
        case .bytesPerSecond: Quantity.formatBytes(amount) + "/s"
        }
    }
}
