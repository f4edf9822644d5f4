/// What to do with a new agent whose hard limits would commit more than its
/// group's totals or the allocatable (`admission:` in the configuration).
public enum AdmissionPolicy: String, Codable, Sendable, CaseIterable {
    /// Start it all the same, with a warning (the event stream, the log).
    case allow
    /// Refuse it (409), naming the resource and the numbers.
    case refuse
    /// Hold it (202, state `queued` with its position) and start it, highest priority first,
    /// when capacity frees; `corral run` waits and says so.
    case queue

    public static let acceptedText =
        "allow (start it with a warning), refuse (answer 409 with the numbers) or queue (hold it until capacity frees)"
}

/// What is left to hand out, per resource (allocatable − used): the host, what
/// is kept for the system, what agents may have (allocatable), what their
/// limits commit, what they use now, and what is left.
public struct CapacityReport: Equatable, Codable, Sendable {
    public struct Group: Equatable, Codable, Sendable {
        public var group: String
        /// The group's total (nil: none).
        public var total: Double?
        public var committedHard: Double
        public var committedSoft: Double
        public var used: Double
        public var agents: Int

        public init(group: String, total: Double?, committedHard: Double, committedSoft: Double, used: Double, agents: Int) {
            self.group = group
            self.total = total
            self.committedHard = committedHard
            self.committedSoft = committedSoft
            self.used = used
            self.agents = agents
        }
    }

    public struct Line: Equatable, Codable, Sendable {
        public var resource: Resource
        /// The host's, within the limits of Corral's root's ancestors.
        public var host: Double
        /// Kept for the system: host − allocatable.
        public var reserved: Double
        /// What all agents together may have: the root's own limit.
        public var allocatable: Double
        /// Sums of the live agents' hard and soft limits.
        public var committedHard: Double
        public var committedSoft: Double
        /// The live agents' latest usage, summed.
        public var used: Double
        /// allocatable − used, at least 0.
        public var available: Double
        public var groups: [Group]

        public init(
            resource: Resource, host: Double, reserved: Double, allocatable: Double, committedHard: Double, committedSoft: Double,
            used: Double, available: Double, groups: [Group]
        ) {
            self.resource = resource
            self.host = host
            self.reserved = reserved
            self.allocatable = allocatable
            self.committedHard = committedHard
            self.committedSoft = committedSoft
            self.used = used
            self.available = available
            self.groups = groups
        }
    }

    public var resources: [Line]
    public var admission: AdmissionPolicy
    /// The host ladder's state and the root's latest reading (nil: not known here).
    public var hostPressure: HostPressureStatus?

    public init(resources: [Line], admission: AdmissionPolicy, hostPressure: HostPressureStatus? = nil) {
        self.resources = resources
        self.admission = admission
        self.hostPressure = hostPressure
    }

    public subscript(resource: Resource) -> Line? { resources.first { $0.resource == resource } }

    /// An agent as capacity counts it.
    public struct Agent: Sendable {
        public var group: String
        public var limits: LimitSet
        public var usage: [Resource: Double]

        public init(group: String, limits: LimitSet, usage: [Resource: Double]) {
            self.group = group
            self.limits = limits
            self.usage = usage
        }
    }

    /// Resources that have a kernel controller and so a host total.
    public static let resources: [Resource] = [.memory, .cpu, .processes]

    /// What the live agents of one group commit and use, summed.
    public struct GroupSums: Equatable, Sendable {
        public var hard: [Resource: Double] = [:]
        public var soft: [Resource: Double] = [:]
        public var used: [Resource: Double] = [:]
        public var agents = 0

        public init(hard: [Resource: Double] = [:], soft: [Resource: Double] = [:], used: [Resource: Double] = [:], agents: Int = 0) {
            self.hard = hard
            self.soft = soft
            self.used = used
            self.agents = agents
        }

        /// Adds one agent.
        public mutating func add(limits: LimitSet, usage: [Resource: Double]) {
            agents += 1
            for resource in CapacityReport.resources {
                if let limit = limits[resource] {
                    hard[resource, default: 0] += limit.hard
                    soft[resource, default: 0] += limit.soft
                }
                if let amount = usage[resource] { used[resource, default: 0] += amount }
            }
        }

        /// Takes away one agent's limits that `add` added (its usage is not tracked
        /// here); back to zero once no agent is left, so no rounding stays behind.
        public mutating func remove(limits: LimitSet) {
            agents -= 1
            guard agents > 0 else {
                self = GroupSums(used: used)
                return
            }
            for resource in CapacityReport.resources {
                guard let limit = limits[resource] else { continue }
                hard[resource, default: 0] -= limit.hard
                soft[resource, default: 0] -= limit.soft
            }
        }
    }

    /// The report for `agents` (the live ones) in `groups`. `host` is what the
    /// host has; `allocatable` what the root may hand out (its own limits, or the
    /// reservation's share when it has none).
    public static func compute(
        host: HostCapacity, allocatable: [Resource: Double], groups: [QuotaGroup], agents: [Agent], admission: AdmissionPolicy
    ) -> CapacityReport {
        var sums: [String: GroupSums] = [:]
        for agent in agents { sums[agent.group, default: GroupSums()].add(limits: agent.limits, usage: agent.usage) }
        return compute(host: host, allocatable: allocatable, groups: groups, sums: sums, admission: admission)
    }

    /// The report from the live agents' sums by group (`sums`; a group missing
    /// from `groups` counts in the totals only): the same as from the agents
    /// themselves, without a walk over them.
    public static func compute(
        host: HostCapacity, allocatable: [Resource: Double], groups: [QuotaGroup], sums: [String: GroupSums], admission: AdmissionPolicy
    ) -> CapacityReport {
        let hostAmounts: [Resource: Double] = [
            .memory: Double(host.memoryBytes), .cpu: Double(host.cpus) * 100, .processes: Double(host.pidMax),
        ]
        var lines: [Line] = []
        for resource in resources {
            let hostAmount = hostAmounts[resource] ?? 0
            let allocatableAmount = min(allocatable[resource] ?? hostAmount, hostAmount)
            var groupLines: [Group] = []
            for group in groups.sorted(by: { $0.name < $1.name }) {
                let members = sums[group.name] ?? GroupSums()
                groupLines.append(
                    Group(
                        group: group.name, total: group.totals[resource], committedHard: members.hard[resource] ?? 0,
                        committedSoft: members.soft[resource] ?? 0, used: members.used[resource] ?? 0, agents: members.agents))
            }
            // Summed in the groups' order, so that the totals do not depend on a dictionary's.
            let all = sums.sorted { $0.key < $1.key }.map(\.value)
            let used = all.reduce(0) { $0 + ($1.used[resource] ?? 0) }
            lines.append(
                Line(
                    resource: resource, host: hostAmount, reserved: max(0, hostAmount - allocatableAmount), allocatable: allocatableAmount,
                    committedHard: all.reduce(0) { $0 + ($1.hard[resource] ?? 0) },
                    committedSoft: all.reduce(0) { $0 + ($1.soft[resource] ?? 0) }, used: used,
                    available: max(0, allocatableAmount - used), groups: groupLines))
        }
        return CapacityReport(resources: lines, admission: admission)
    }

    /// Where admitting an agent with `limits` into `group` would commit more
    /// (hard limits) than the group's total or the allocatable; empty: it fits.
    public func shortfalls(admitting limits: LimitSet, into group: String) -> [Shortfall] {
        var found: [Shortfall] = []
        for line in resources {
            guard let adding = limits[line.resource]?.hard else { continue }
            if let groupLine = line.groups.first(where: { $0.group == group }), let total = groupLine.total,
                groupLine.committedHard + adding > total
            {
                found.append(
                    Shortfall(
                        resource: line.resource, scope: .group(group), committed: groupLine.committedHard, adding: adding, capacity: total))
            }
            if line.committedHard + adding > line.allocatable {
                found.append(
                    Shortfall(
                        resource: line.resource, scope: .allocatable, committed: line.committedHard, adding: adding,
                        capacity: line.allocatable))
            }
        }
        return found
    }
}

/// One way in which a new agent does not fit.
public struct Shortfall: Equatable, Codable, Sendable, CustomStringConvertible {
    public enum Scope: Equatable, Codable, Sendable {
        case group(String)
        case allocatable
    }

    public var resource: Resource
    public var scope: Scope
    /// Hard limits already committed there.
    public var committed: Double
    /// The new agent's hard limit.
    public var adding: Double
    /// The group's total or the allocatable.
    public var capacity: Double

    public init(resource: Resource, scope: Scope, committed: Double, adding: Double, capacity: Double) {
        self.resource = resource
        self.scope = scope
        self.committed = committed
        self.adding = adding
        self.capacity = capacity
    }

    /// "memory: 3.5 GB committed + 500 MB would exceed group standard_agent's total of 4 GB".
    public var description: String {
        let unit = resource.unit
        let place =
            switch scope {
            case .group(let name): "group \(name)'s total of \(unit.format(capacity))"
            case .allocatable: "the host's allocatable \(unit.format(capacity))"
            }
        return "\(resource.rawValue): \(unit.format(committed)) committed + \(unit.format(adding)) would exceed \(place)"
    }
}
