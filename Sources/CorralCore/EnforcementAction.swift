/// What the escalation ladder may do about a violation.
///
/// One closed vocabulary for configuration, API, history and the ladder
/// (closed and total: `custom` is the one name for a handler's action, and
/// `migrate` is an action like the others).
public enum EnforcementAction: String, CaseIterable, Codable, CodingKeyRepresentable, Sendable, Comparable, CaseHashable {
    /// Record and publish a warning.
    case warn
    /// Lower `cpu.max` by the throttle factor and tighten `memory.high`.
    case throttle
    /// Freeze the agent's cgroup (`cgroup.freeze`), confirmed by `cgroup.events`.
    case suspend
    /// Notice, SIGTERM, grace period, then `cgroup.kill`.
    case terminate
    /// Ask the agent to shrink to 80% of the limit before a deadline.
    case scaleDown = "scale_down"
    /// Hand the agent to an external scheduler; falls back to suspend.
    case migrate
    /// Run a configured handler with the violation as JSON on stdin.
    case custom

    /// How severe the action is, for ordering the ladder: warn is the mildest.
    public var severity: Int {
        switch self {
        case .warn: 0
        case .throttle: 1
        case .scaleDown: 2
        case .custom: 2
        case .migrate: 3
        case .suspend: 3
        case .terminate: 4
        }
    }

    public static func < (lhs: EnforcementAction, rhs: EnforcementAction) -> Bool {
        (lhs.severity, lhs.rawValue) < (rhs.severity, rhs.rawValue)
    }

    /// The spelling used in configuration files and the API.
    public static var acceptedNames: String {
        allCases.map(\.rawValue).joined(separator: ", ")
    }
}
