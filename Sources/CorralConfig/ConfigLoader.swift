public import CorralCore
internal import Yams

/// One problem in a configuration file: where, which key, the bad value and
/// what is accepted.
public struct ConfigIssue: Equatable, Sendable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    /// Dotted key path, e.g. "groups.standard_agent.limits.memory.soft".
    public var key: String
    /// The offending value as written (nil for structural problems).
    public var value: String?
    public var message: String
    public var accepted: String?

    public init(line: Int, column: Int, key: String, value: String?, message: String, accepted: String?) {
        self.line = line
        self.column = column
        self.key = key
        self.value = value
        self.message = message
        self.accepted = accepted
    }

    public var description: String {
        var text = "\(line):\(column): \(key.isEmpty ? "(document)" : key): "
        if let value { text += "'\(value)': " }
        text += message
        if let accepted { text += " (accepted: \(accepted))" }
        return text
    }
}

/// A configuration file that cannot be used; nothing of it was applied.
public struct ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var issues: [ConfigIssue]

    public init(file: String, issues: [ConfigIssue]) {
        self.file = file
        self.issues = issues
    }

    public var description: String {
        let header = "\(file): \(issues.count) error\(issues.count == 1 ? "" : "s"); nothing was applied"
        return ([header] + issues.map { "\(file):\($0)" }).joined(separator: "\n")
    }
}

/// Reads Corral's YAML configuration. Every problem is collected (not just
/// the first), each with line:column, key, value and what is accepted.
public enum ConfigLoader {
    /// Parses `text` (the contents of `file`) on top of the built-in seed configuration.
    public static func load(_ text: String, file: String = "<config>") throws(ConfigError) -> CorralConfiguration {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigError(file: file, issues: [issue(from: error)])
        } catch {
            throw ConfigError(file: file, issues: [ConfigIssue(line: 1, column: 1, key: "", value: nil, message: "\(error)", accepted: nil)])
        }
        var reader = Reader()
        var configuration = CorralConfiguration.builtIn
        if let root {
            reader.readDocument(root, into: &configuration)
        }
        if !reader.issues.isEmpty {
            throw ConfigError(file: file, issues: reader.issues.sorted { ($0.line, $0.column) < ($1.line, $1.column) })
        }
        return configuration
    }

    static func issue(from error: YamlError) -> ConfigIssue {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let where_ = context.map { " (\($0.text) at \($0.mark.line):\($0.mark.column))" } ?? ""
            return ConfigIssue(line: mark.line, column: mark.column, key: "", value: nil, message: "invalid YAML: \(problem)\(where_)", accepted: nil)
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ConfigIssue(
                line: context.mark.line, column: context.mark.column, key: "", value: duplicates.joined(separator: ", "),
                message: "key given more than once in one mapping", accepted: "each key once")
        case .reader(let problem, let offset, _, _):
            return ConfigIssue(line: 1, column: (offset ?? 0) + 1, key: "", value: nil, message: "cannot read the file: \(problem)", accepted: "UTF-8 text")
        default:
            return ConfigIssue(line: 1, column: 1, key: "", value: nil, message: "invalid YAML: \(error)", accepted: nil)
        }
    }
}

/// Walks the node tree, collecting issues.
struct Reader {
    var issues: [ConfigIssue] = []

    static let topKeys = ["cgroup_root", "intervals", "reservation", "escalation", "groups", "agents"]
    static let intervalKeys = ["sampling", "analytics", "analytics_window"]
    static let reservationKeys = ["memory", "cpu", "processes"]
    static let escalationKeys = ["delays", "termination_grace"]
    static let groupKeys = ["description", "limits", "totals", "escalation"]
    static let limitKeys = ["soft", "hard", "burst", "action"]
    static let agentKeys = ["group", "limits"]
    static let resourceNames = Resource.allCases.map(\.rawValue)

    mutating func report(_ node: Node?, _ key: String, value: String?, _ message: String, accepted: String? = nil) {
        let mark = node?.mark
        issues.append(ConfigIssue(line: mark?.line ?? 1, column: mark?.column ?? 1, key: key, value: value, message: message, accepted: accepted))
    }

    /// The pairs of a mapping; reports unknown keys and non-mappings.
    mutating func mapping(_ node: Node, _ key: String, allowed: [String]?) -> [(key: String, keyNode: Node, value: Node)] {
        guard case .mapping(let mapping) = node else {
            report(node, key, value: node.scalar?.string, "expected a mapping (key: value lines)", accepted: allowed.map { $0.joined(separator: ", ") })
            return []
        }
        var pairs: [(String, Node, Node)] = []
        for (keyNode, value) in mapping {
            guard let name = keyNode.scalar?.string else {
                report(keyNode, key, value: nil, "keys must be plain names")
                continue
            }
            let path = key.isEmpty ? name : "\(key).\(name)"
            if let allowed, !allowed.contains(name) {
                report(keyNode, path, value: nil, "unknown key '\(name)'", accepted: allowed.joined(separator: ", "))
                continue
            }
            pairs.append((name, keyNode, value))
        }
        return pairs
    }

    mutating func scalar(_ node: Node, _ key: String, accepted: String) -> String? {
        guard let text = node.scalar?.string else {
            report(node, key, value: nil, "expected a single value, not a \(node.isMapping ? "mapping" : "list")", accepted: accepted)
            return nil
        }
        if text.trimmingSpaces().isEmpty || (node.scalar?.style == .plain && ["~", "null", "Null", "NULL"].contains(text)) {
            report(node, key, value: text, "empty value", accepted: accepted)
            return nil
        }
        return text
    }

    mutating func quantity(_ node: Node, _ key: String, unit: ResourceUnit) -> Double? {
        guard let text = scalar(node, key, accepted: Quantity.accepted(for: unit)) else { return nil }
        switch Quantity.parse(text, as: unit) {
        case .success(let value): return value
        case .failure(let error):
            report(node, key, value: text, error.reason, accepted: error.accepted)
            return nil
        }
    }

    mutating func duration(_ node: Node, _ key: String, positive: Bool = false) -> Duration? {
        guard let text = scalar(node, key, accepted: Quantity.acceptedDurations) else { return nil }
        switch Quantity.parseDuration(text) {
        case .success(let value):
            if positive && value <= .zero {
                report(node, key, value: text, "must be greater than zero", accepted: Quantity.acceptedDurations)
                return nil
            }
            return value
        case .failure(let error):
            report(node, key, value: text, error.reason, accepted: error.accepted)
            return nil
        }
    }

    mutating func fraction(_ node: Node, _ key: String) -> Double? {
        let accepted = "a percentage of the host above 0% and at most 100%, e.g. 75%"
        guard let text = scalar(node, key, accepted: accepted) else { return nil }
        guard case .success(let percent) = Quantity.parsePercent(text), percent > 0, percent <= 100 else {
            report(node, key, value: text, "not a share of the host", accepted: accepted)
            return nil
        }
        return percent / 100
    }

    // MARK: Document

    mutating func readDocument(_ root: Node, into configuration: inout CorralConfiguration) {
        var groupsNode: Node?
        var agentsNode: Node?
        for (name, _, value) in mapping(root, "", allowed: Self.topKeys) {
            switch name {
            case "cgroup_root":
                if let text = scalar(value, name, accepted: "an absolute path such as /sys/fs/cgroup/corral") {
                    if !text.hasPrefix("/") || text.split(separator: "/").contains("..") {
                        report(value, name, value: text, "must be an absolute path without '..'", accepted: "e.g. /sys/fs/cgroup/corral")
                    } else {
                        configuration.cgroupRoot = text
                    }
                }
            case "intervals":
                for (key, _, node) in mapping(value, name, allowed: Self.intervalKeys) {
                    guard let duration = duration(node, "intervals.\(key)", positive: true) else { continue }
                    switch key {
                    case "sampling": configuration.intervals.sampling = duration
                    case "analytics": configuration.intervals.analytics = duration
                    default: configuration.intervals.analyticsWindow = duration
                    }
                }
            case "reservation":
                for (key, _, node) in mapping(value, name, allowed: Self.reservationKeys) {
                    guard let share = fraction(node, "reservation.\(key)") else { continue }
                    switch key {
                    case "memory": configuration.reservation.memory = share
                    case "cpu": configuration.reservation.cpu = share
                    default: configuration.reservation.processes = share
                    }
                }
            case "escalation":
                configuration.escalation = escalation(value, name, base: configuration.escalation)
            case "groups":
                groupsNode = value
            case "agents":
                agentsNode = value
            default:
                break
            }
        }
        // Groups before agents: agents refer to groups.
        if let groupsNode { readGroups(groupsNode, into: &configuration) }
        if let agentsNode { readAgents(agentsNode, into: &configuration) }
    }

    mutating func escalation(_ node: Node, _ key: String, base: EscalationPolicy) -> EscalationPolicy {
        var policy = base
        for (name, _, value) in mapping(node, key, allowed: Self.escalationKeys) {
            if name == "termination_grace" {
                if let grace = duration(value, "\(key).termination_grace") { policy.terminationGrace = grace }
                continue
            }
            for (actionName, actionNode, delayNode) in mapping(value, "\(key).delays", allowed: nil) {
                guard let action = EnforcementAction(rawValue: actionName) else {
                    report(actionNode, "\(key).delays.\(actionName)", value: actionName, "unknown action", accepted: EnforcementAction.acceptedNames)
                    continue
                }
                if let delay = duration(delayNode, "\(key).delays.\(actionName)") { policy.delays[action] = delay }
            }
        }
        return policy
    }

    // MARK: Groups

    mutating func readGroups(_ node: Node, into configuration: inout CorralConfiguration) {
        for (name, keyNode, value) in mapping(node, "groups", allowed: nil) {
            let key = "groups.\(name)"
            if let problem = CgroupName.problem(with: name, what: "group name") {
                report(keyNode, key, value: name, problem)
                continue
            }
            let existing = configuration.groups[name]
            var group = existing ?? QuotaGroup(name: name, description: "", limits: LimitSet(), totals: [:])
            var sawLimits = false
            for (field, fieldKeyNode, fieldNode) in mapping(value, key, allowed: Self.groupKeys) {
                switch field {
                case "description":
                    if let text = fieldNode.scalar?.string { group.description = text } else {
                        report(fieldNode, "\(key).description", value: nil, "expected text")
                    }
                case "limits":
                    sawLimits = true
                    let overrides = limitOverrides(fieldNode, "\(key).limits")
                    for (resource, (override, overrideNode)) in overrides {
                        if let current = group.limits[resource] {
                            group.limits[resource] = override.apply(to: current)
                        } else if let complete = override.asLimit() {
                            group.limits[resource] = complete
                        } else {
                            let missing = [("soft", override.soft == nil), ("hard", override.hard == nil), ("action", override.action == nil)]
                                .filter(\.1).map(\.0)
                            report(
                                overrideNode, "\(key).limits.\(resource.rawValue)", value: nil,
                                "a new limit needs \(missing.joined(separator: ", "))", accepted: "soft, hard and action (burst optional)")
                            continue
                        }
                        checkLimit(group.limits[resource]!, resource: resource, node: overrideNode, key: "\(key).limits.\(resource.rawValue)")
                    }
                    _ = fieldKeyNode
                case "totals":
                    for (resourceName, resourceKeyNode, amountNode) in mapping(fieldNode, "\(key).totals", allowed: nil) {
                        guard let resource = Resource(rawValue: resourceName) else {
                            report(resourceKeyNode, "\(key).totals.\(resourceName)", value: resourceName, "unknown resource", accepted: Self.resourceNames.joined(separator: ", "))
                            continue
                        }
                        guard resource.hasController else {
                            report(resourceKeyNode, "\(key).totals.\(resourceName)", value: resourceName, "group totals are enforced by the kernel and exist only for memory, cpu and processes", accepted: "memory, cpu, processes")
                            continue
                        }
                        if let amount = quantity(amountNode, "\(key).totals.\(resourceName)", unit: resource.unit) {
                            if amount <= 0 {
                                report(amountNode, "\(key).totals.\(resourceName)", value: amountNode.scalar?.string, "must be greater than zero", accepted: Quantity.accepted(for: resource.unit))
                            } else if resource == .cpu, amount < CPUMax.minimumPercent {
                                report(amountNode, "\(key).totals.cpu", value: amountNode.scalar?.string, "below the kernel's minimum of 0.1% of one CPU", accepted: Quantity.acceptedPercents)
                            } else {
                                group.totals[resource] = amount
                            }
                        }
                    }
                case "escalation":
                    group.escalation = escalation(fieldNode, "\(key).escalation", base: group.escalation ?? configuration.escalation)
                default:
                    break
                }
            }
            if existing == nil && !sawLimits && value.isMapping {
                report(value, key, value: nil, "a new group needs limits", accepted: "limits: {memory: {soft, hard, action}, cpu: …, processes: …}")
            }
            configuration.groups[name] = group
        }
    }

    mutating func checkLimit(_ limit: ResourceLimit, resource: Resource, node: Node, key: String) {
        for problem in limit.problems(for: resource) {
            report(node, key, value: nil, problem)
        }
    }

    /// `{memory: {soft: …, hard: …, burst: …, action: …}, …}` as overrides, with the node of each.
    mutating func limitOverrides(_ node: Node, _ key: String) -> [Resource: (LimitOverride, Node)] {
        var result: [Resource: (LimitOverride, Node)] = [:]
        for (resourceName, resourceKeyNode, limitNode) in mapping(node, key, allowed: nil) {
            let resourceKey = "\(key).\(resourceName)"
            guard let resource = Resource(rawValue: resourceName) else {
                report(resourceKeyNode, resourceKey, value: resourceName, "unknown resource", accepted: Self.resourceNames.joined(separator: ", "))
                continue
            }
            var override = LimitOverride()
            var valid = true
            for (field, _, valueNode) in mapping(limitNode, resourceKey, allowed: Self.limitKeys) {
                let fieldKey = "\(resourceKey).\(field)"
                if field == "action" {
                    guard let text = scalar(valueNode, fieldKey, accepted: EnforcementAction.acceptedNames) else { valid = false; continue }
                    if let action = EnforcementAction(rawValue: text) {
                        override.action = action
                    } else {
                        let hint = text == "custom_handler" ? " (the seed's custom_handler is called custom)" : ""
                        report(valueNode, fieldKey, value: text, "unknown action\(hint)", accepted: EnforcementAction.acceptedNames)
                        valid = false
                    }
                    continue
                }
                guard let amount = quantity(valueNode, fieldKey, unit: resource.unit) else { valid = false; continue }
                switch field {
                case "soft": override.soft = amount
                case "hard": override.hard = amount
                default: override.burst = amount
                }
            }
            if valid, limitNode.isMapping { result[resource] = (override, limitNode) }
        }
        return result
    }

    // MARK: Agents

    mutating func readAgents(_ node: Node, into configuration: inout CorralConfiguration) {
        for (name, keyNode, value) in mapping(node, "agents", allowed: nil) {
            let key = "agents.\(name)"
            if let problem = CgroupName.problem(with: name, what: "agent id") {
                report(keyNode, key, value: name, problem)
                continue
            }
            var agent = AgentOverride()
            var limitsNode: Node?
            for (field, _, fieldNode) in mapping(value, key, allowed: Self.agentKeys) {
                if field == "group" {
                    guard let group = scalar(fieldNode, "\(key).group", accepted: configuration.groupNames.joined(separator: ", ")) else { continue }
                    if configuration.groups[group] == nil {
                        report(fieldNode, "\(key).group", value: group, "unknown group", accepted: configuration.groupNames.joined(separator: ", "))
                    } else {
                        agent.group = group
                    }
                } else {
                    limitsNode = fieldNode
                    for (resource, (override, _)) in limitOverrides(fieldNode, "\(key).limits") {
                        agent.limits[resource] = override
                    }
                }
            }
            // The effective limits must be valid in the agent's group (the
            // default group when none is named).
            let groupName = agent.group ?? QuotaGroup.defaultGroupName
            if let group = configuration.groups[groupName], let limitsNode {
                let effective = group.limits.applying(agent.limits)
                for resource in agent.limits.keys.sorted() {
                    guard let limit = effective[resource] else { continue }
                    for problem in limit.problems(for: resource) {
                        report(limitsNode, "\(key).limits.\(resource.rawValue)", value: nil, problem + " (in group \(groupName))")
                    }
                }
            }
            configuration.agents[name] = agent
        }
    }
}

extension Node {
    var isMapping: Bool {
        if case .mapping = self { return true }
        return false
    }
}
