internal import CorralCore

/// One `resource: {soft, hard, burst, action}` entry as written, with the
/// nodes of the fields it gives (for positions in errors).
struct LimitEntry {
    var resource: Resource
    var override = LimitOverride()
    var keyNode: YAMLNode
    var node: YAMLNode
    var fields: [String: (node: YAMLNode, text: String)] = [:]
}

/// Walks the node tree, collecting issues.
struct Reader {
    var issues: [ConfigIssue] = []
    /// Keys given more than once in a mapping: the position of the first → the name.
    let duplicatedKeys: [YAMLPosition: String]
    /// Those of them the reader walked past (and so reported).
    var seenDuplicates: Set<YAMLPosition> = []

    init(duplicatedKeys: [YAMLPosition: String] = [:]) {
        self.duplicatedKeys = duplicatedKeys
    }

    static let topKeys = [
        "cgroup_root", "intervals", "reservation", "escalation", "recovery", "handlers", "groups", "agents", "admission",
        "host_pressure",
    ]
    static let recoveryKeys = ["stage_interval", "quiet_period", "usage_below", "thaw_suspended"]
    static let handlerKeys = ["migrate", "custom", "timeout"]
    static let intervalKeys = ["sampling", "idle_sampling", "analytics", "analytics_window", "history_retention"]
    static let reservationKeys = ["memory", "cpu", "processes"]
    static let escalationKeys = ["delays", "termination_grace", "degradation_signal"]
    static let groupKeys = ["description", "limits", "totals", "escalation", "security", "priority"]
    static let limitKeys = ["soft", "hard", "burst", "action"]
    static let agentKeys = ["group", "limits", "security", "priority"]
    static let resourceNames = Resource.allCases.map(\.rawValue).joined(separator: ", ")
    static let acceptedNames =
        "letters, digits, '.', '_' and '-', starting with a letter or digit, at most \(CgroupName.maximumLength) characters (\(CgroupName.pattern))"
    static let acceptedLimit = "a mapping {soft, hard, action} with an optional burst, e.g. {soft: 200MB, hard: 500MB, action: throttle}"

    mutating func report(_ node: YAMLNode?, _ key: String, value: String?, _ message: String, accepted: String?) {
        let position = node?.position
        issues.append(
            ConfigIssue(
                line: max(position?.line ?? 1, 1), column: max(position?.column ?? 1, 1), key: key, value: value, message: message,
                accepted: accepted))
    }

    /// The issues by position; identical ones (an alias read twice) once.
    func sortedIssues() -> [ConfigIssue] {
        var unique: [ConfigIssue] = []
        for issue in issues where !unique.contains(issue) { unique.append(issue) }
        return unique.enumerated().sorted {
            ($0.element.line, $0.element.column, $0.offset) < ($1.element.line, $1.element.column, $1.offset)
        }
        .map(\.element)
    }

    static func kind(of node: YAMLNode) -> String {
        switch node {
        case .mapping: "mapping"
        case .sequence: "list"
        case .scalar: "single value"
        }
    }

    /// The name of a mapping key as written (noting a duplicated one as seen).
    mutating func keyName(_ keyNode: YAMLNode) -> String? {
        if duplicatedKeys[keyNode.position] != nil { seenDuplicates.insert(keyNode.position) }
        return keyNode.scalar?.string
    }

    /// The pairs of a mapping; reports unknown and repeated keys and non-mappings.
    /// An empty value (`agents:` with everything commented out) is an empty mapping.
    mutating func mapping(_ node: YAMLNode, _ key: String, allowed: [String]?, expected: String? = nil) -> [(
        key: String, keyNode: YAMLNode, value: YAMLNode
    )] {
        if node.isNull { return [] }
        guard case .mapping(let mapping) = node else {
            report(
                node, key, value: node.scalar?.string, "expected a mapping (key: value lines), not a \(Self.kind(of: node))",
                accepted: allowed.map { "the keys " + $0.joined(separator: ", ") } ?? expected ?? "key: value lines")
            return []
        }
        var pairs: [(String, YAMLNode, YAMLNode)] = []
        var first: [String: YAMLNode] = [:]
        for (keyNode, value) in mapping {
            guard let name = keyName(keyNode) else {
                report(
                    keyNode, key, value: nil, "a key must be a plain name, not a \(Self.kind(of: keyNode))",
                    accepted: allowed?.joined(separator: ", ") ?? expected ?? "a name")
                continue
            }
            let path = key.isEmpty ? name : "\(key).\(name)"
            if name == "<<" {
                report(keyNode, path, value: name, "YAML merge keys are not supported", accepted: "the keys written out in full")
                continue
            }
            if let allowed, !allowed.contains(name) {
                report(keyNode, path, value: name, "unknown key '\(name)'", accepted: allowed.joined(separator: ", "))
                continue
            }
            if let earlier = first[name] {
                report(
                    keyNode, path, value: name,
                    "key given more than once in this mapping (first at \(earlier.position))",
                    accepted: "each key once; merge the two entries")
            } else {
                first[name] = keyNode
            }
            pairs.append((name, keyNode, value))
        }
        return pairs
    }

    mutating func scalar(_ node: YAMLNode, _ key: String, accepted: String) -> String? {
        guard let text = node.scalar?.string else {
            report(node, key, value: nil, "expected a single value, not a \(Self.kind(of: node))", accepted: accepted)
            return nil
        }
        if text.trimmingSpaces().isEmpty || node.isNull {
            report(node, key, value: text, "empty value", accepted: accepted)
            return nil
        }
        return text
    }

    mutating func quantity(_ node: YAMLNode, _ key: String, unit: ResourceUnit) -> Double? {
        guard let text = scalar(node, key, accepted: Quantity.accepted(for: unit)) else { return nil }
        switch Quantity.parse(text, as: unit) {
        case .success(let value):
            return value
        case .failure(let error):
            report(node, key, value: text, error.reason, accepted: error.accepted)
            return nil
        }
    }

    mutating func duration(_ node: YAMLNode, _ key: String, positive: Bool = false) -> Duration? {
        guard let text = scalar(node, key, accepted: Quantity.acceptedDurations) else { return nil }
        switch Quantity.parseDuration(text) {
        case .success(let value):
            if positive && value <= .zero {
                report(node, key, value: text, "must be greater than zero", accepted: "above zero: " + Quantity.acceptedDurations)
                return nil
            }
            return value
        case .failure(let error):
            report(node, key, value: text, error.reason, accepted: error.accepted)
            return nil
        }
    }

    /// A priority, 0 … 10.
    mutating func priority(_ node: YAMLNode, _ key: String) -> Priority? {
        guard let text = scalar(node, key, accepted: Priority.acceptedText) else { return nil }
        guard let priority = Priority.parse(text) else {
            report(node, key, value: text, Int(text) == nil ? "not a whole number" : "out of range", accepted: Priority.acceptedText)
            return nil
        }
        return priority
    }

    /// A share of the host, written as a percentage. A bare number is a
    /// percentage too, except one of at most 1: `0.75` is surely meant as 75%.
    mutating func fraction(_ node: YAMLNode, _ key: String) -> Double? {
        let accepted = "a percentage of the host above 0% and at most 100%, e.g. 75%"
        guard let text = scalar(node, key, accepted: accepted) else { return nil }
        guard case .success(let percent) = Quantity.parsePercent(text) else {
            report(node, key, value: text, "not a percentage", accepted: accepted)
            return nil
        }
        guard percent > 0, percent <= 100 else {
            report(node, key, value: text, percent > 100 ? "more than the whole host" : "must be greater than zero", accepted: accepted)
            return nil
        }
        if !text.contains("%"), percent <= 1 {
            report(node, key, value: text, "ambiguous: a fraction or a percentage? Write the percentage with '%'", accepted: accepted)
            return nil
        }
        return percent / 100
    }

    // MARK: Document

    mutating func readDocument(_ root: YAMLNode, into configuration: inout CorralConfiguration) {
        // Read after the rest (every copy, if the key is repeated): groups use the
        // file's escalation, agents refer to groups.
        var groupsNodes: [YAMLNode] = []
        var agentsNodes: [YAMLNode] = []
        for (name, _, value) in mapping(root, "", allowed: Self.topKeys) {
            switch name {
            case "host_pressure":
                readHostPressure(value, into: &configuration.hostPressure)
            case "admission":
                guard let text = scalar(value, "admission", accepted: AdmissionPolicy.acceptedText) else { break }
                if let policy = AdmissionPolicy(rawValue: text) {
                    configuration.admission = policy
                } else {
                    report(value, "admission", value: text, "unknown policy", accepted: AdmissionPolicy.acceptedText)
                }
            case "cgroup_root":
                let accepted = "an absolute path without '..', such as /sys/fs/cgroup/corral"
                if let text = scalar(value, name, accepted: accepted) {
                    if !text.hasPrefix("/") || text.split(separator: "/").contains("..") {
                        report(value, name, value: text, "must be an absolute path without '..'", accepted: accepted)
                    } else {
                        configuration.cgroupRoot = text
                    }
                }
            case "intervals":
                for (key, _, node) in mapping(value, name, allowed: Self.intervalKeys) {
                    guard let duration = duration(node, "intervals.\(key)", positive: true) else { continue }
                    switch key {
                    case "sampling": configuration.intervals.sampling = duration
                    case "idle_sampling": configuration.intervals.idleSampling = duration
                    case "analytics": configuration.intervals.analytics = duration
                    case "history_retention": configuration.intervals.historyRetention = duration
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
            case "recovery":
                for (key, _, node) in mapping(value, name, allowed: Self.recoveryKeys) {
                    switch key {
                    case "stage_interval":
                        if let interval = duration(node, "recovery.stage_interval", positive: true) {
                            configuration.recovery.stageInterval = interval
                        }
                    case "quiet_period":
                        if let period = duration(node, "recovery.quiet_period") { configuration.recovery.quietPeriod = period }
                    case "usage_below":
                        let accepted = "a share of the soft limit above 0% and at most 100%, e.g. 80%"
                        guard let text = scalar(node, "recovery.usage_below", accepted: accepted) else { continue }
                        if case .success(let percent) = Quantity.parsePercent(text), text.contains("%"), percent > 0, percent <= 100 {
                            configuration.recovery.usageBelow = percent / 100
                        } else {
                            report(node, "recovery.usage_below", value: text, "not a percentage in (0%, 100%]", accepted: accepted)
                        }
                    default:
                        let accepted = "true or false"
                        guard let text = scalar(node, "recovery.thaw_suspended", accepted: accepted) else { continue }
                        switch text {
                        case "true": configuration.recovery.thawSuspended = true
                        case "false": configuration.recovery.thawSuspended = false
                        default: report(node, "recovery.thaw_suspended", value: text, "not a boolean", accepted: accepted)
                        }
                    }
                }
            case "handlers":
                for (key, _, node) in mapping(value, name, allowed: Self.handlerKeys) {
                    if key == "timeout" {
                        if let timeout = duration(node, "handlers.timeout", positive: true) { configuration.handlers.timeout = timeout }
                        continue
                    }
                    guard let command = command(node, "handlers.\(key)") else { continue }
                    if key == "migrate" { configuration.handlers.migrate = command } else { configuration.handlers.custom = command }
                }
            case "groups":
                groupsNodes.append(value)
            case "agents":
                agentsNodes.append(value)
            default:
                break
            }
        }
        for node in groupsNodes { readGroups(node, into: &configuration) }
        for node in agentsNodes { readAgents(node, into: &configuration) }
    }

    /// A command: a list of strings whose first is an absolute path.
    mutating func command(_ node: YAMLNode, _ key: String) -> [String]? {
        let accepted = "a list: the program's absolute path and its arguments, e.g. [/usr/local/bin/hand-off, --to, node-2]"
        guard case .sequence(let sequence) = node else {
            report(node, key, value: node.scalar?.string, "expected a list", accepted: accepted)
            return nil
        }
        var command: [String] = []
        for item in sequence {
            guard let text = item.scalar?.string, !text.isEmpty else {
                report(item, key, value: nil, "each entry must be a non-empty string", accepted: accepted)
                return nil
            }
            command.append(text)
        }
        guard let program = command.first, program.hasPrefix("/") else {
            report(node, key, value: command.first, "the program must be an absolute path", accepted: accepted)
            return nil
        }
        return command
    }

    mutating func escalation(_ node: YAMLNode, _ key: String, base: EscalationPolicy) -> EscalationPolicy {
        var policy = base
        for (name, _, value) in mapping(node, key, allowed: Self.escalationKeys) {
            if name == "termination_grace" {
                if let grace = duration(value, "\(key).termination_grace") { policy.terminationGrace = grace }
                continue
            }
            if name == "degradation_signal" {
                let accepted =
                    "none, or SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH, SIGURG (the program must handle it: the first three end it by default)"
                guard let text = scalar(value, "\(key).degradation_signal", accepted: accepted) else { continue }
                if text.lowercased() == "none" {
                    policy.degradationSignal = nil
                } else if let signal = SignalName.notice(named: text) {
                    policy.degradationSignal = signal
                } else {
                    report(value, "\(key).degradation_signal", value: text, "not a notice signal", accepted: accepted)
                }
                continue
            }
            let delays = mapping(
                value, "\(key).delays", allowed: nil, expected: "action names mapped to delays, e.g. {throttle: 30s, suspend: 5m}")
            for (actionName, actionNode, delayNode) in delays {
                guard let action = EnforcementAction(rawValue: actionName) else {
                    report(
                        actionNode, "\(key).delays.\(actionName)", value: actionName, "unknown action\(Self.actionHint(actionName))",
                        accepted: EnforcementAction.acceptedNames)
                    continue
                }
                if let delay = duration(delayNode, "\(key).delays.\(actionName)") { policy.delays[action] = delay }
            }
        }
        return policy
    }

    static func actionHint(_ text: String) -> String {
        text == "custom_handler" ? " (custom_handler is called custom in Corral)" : ""
    }

    // MARK: Groups

    mutating func readGroups(_ node: YAMLNode, into configuration: inout CorralConfiguration) {
        let groups = mapping(node, "groups", allowed: nil, expected: "group names mapped to {description, limits, totals, escalation}")
        for (name, keyNode, value) in groups {
            let key = "groups.\(name)"
            if let problem = CgroupName.problem(with: name, what: "group name") {
                report(keyNode, key, value: name, problem, accepted: Self.acceptedNames)
                continue
            }
            let existing = configuration.groups[name]
            let origin = CorralConfiguration.seedGroups[name] != nil ? "the built-in group \(name)" : "group \(name)"
            var group = existing ?? QuotaGroup(name: name, description: "", limits: LimitSet(), totals: [:])
            var limitsNode: YAMLNode?
            for (field, _, fieldNode) in mapping(value, key, allowed: Self.groupKeys) {
                switch field {
                case "description":
                    if fieldNode.isNull {
                        group.description = ""
                    } else if let text = fieldNode.scalar?.string {
                        group.description = text
                    } else {
                        report(
                            fieldNode, "\(key).description", value: nil, "expected text, not a \(Self.kind(of: fieldNode))",
                            accepted: "one line of text")
                    }
                case "limits":
                    limitsNode = fieldNode
                    for entry in limitEntries(fieldNode, "\(key).limits") {
                        let resourceKey = "\(key).limits.\(entry.resource.rawValue)"
                        if let current = group.limits[entry.resource] {
                            let merged = entry.override.apply(to: current, of: entry.resource)
                            checkLimit(merged, entry, key: resourceKey, origin: origin)
                            group.limits[entry.resource] = merged
                        } else if let complete = entry.override.asLimit() {
                            checkLimit(complete, entry, key: resourceKey, origin: origin)
                            group.limits[entry.resource] = complete
                        } else {
                            let missing = [
                                ("soft", entry.override.soft == nil), ("hard", entry.override.hard == nil),
                                ("action", entry.override.action == nil),
                            ]
                            .filter(\.1).map(\.0)
                            report(
                                entry.keyNode, resourceKey, value: nil,
                                "a new \(entry.resource.rawValue) limit needs \(missing.joined(separator: ", "))",
                                accepted: Self.acceptedLimit)
                        }
                    }
                case "totals":
                    readTotals(fieldNode, "\(key).totals", into: &group)
                case "escalation":
                    group.escalation = escalation(fieldNode, "\(key).escalation", base: group.escalation ?? configuration.escalation)
                case "security":
                    group.security = security(fieldNode, "\(key).security").apply(to: group.security)
                case "priority":
                    if let priority = priority(fieldNode, "\(key).priority") { group.priority = priority }
                default:
                    break
                }
            }
            if existing == nil, value.isMapping || value.isNull {
                let accepted = "limits: {memory: {soft, hard, action}, cpu: …, processes: …}"
                if let limitsNode {
                    if limitsNode.isNull || limitsNode.mapping?.count == 0 {
                        report(limitsNode, "\(key).limits", value: nil, "a new group needs at least one limit", accepted: accepted)
                    }
                } else {
                    report(keyNode, key, value: nil, "a new group needs limits", accepted: accepted)
                }
            }
            configuration.groups[name] = group
        }
    }

    mutating func readTotals(_ node: YAMLNode, _ key: String, into group: inout QuotaGroup) {
        let totals = mapping(
            node, key, allowed: nil, expected: "memory, cpu or processes mapped to an amount, e.g. {memory: 4G, cpu: 400%}")
        for (resourceName, resourceKeyNode, amountNode) in totals {
            let resourceKey = "\(key).\(resourceName)"
            guard let resource = Resource(rawValue: resourceName) else {
                report(resourceKeyNode, resourceKey, value: resourceName, "unknown resource", accepted: "memory, cpu, processes")
                continue
            }
            guard resource.hasController else {
                report(
                    resourceKeyNode, resourceKey, value: resourceName,
                    "group totals are enforced by the kernel and exist only for memory, cpu and processes",
                    accepted: "memory, cpu, processes")
                continue
            }
            guard let amount = quantity(amountNode, resourceKey, unit: resource.unit) else { continue }
            let text = amountNode.scalar?.string
            if amount <= 0 {
                report(
                    amountNode, resourceKey, value: text, "must be greater than zero",
                    accepted: "above zero: " + Quantity.accepted(for: resource.unit))
            } else if resource == .cpu, amount < CPUMax.minimumPercent {
                report(
                    amountNode, resourceKey, value: text, "below the kernel's minimum of 0.1% of one CPU",
                    accepted: Quantity.acceptedPercents)
            } else {
                group.totals[resource] = amount
            }
        }
    }

    /// `{memory: {soft: …, hard: …, burst: …, action: …}, …}` as written. An
    /// entry with a bad field is left out (its error is reported).
    mutating func limitEntries(_ node: YAMLNode, _ key: String) -> [LimitEntry] {
        var result: [LimitEntry] = []
        let limits = mapping(node, key, allowed: nil, expected: "resource names mapped to {soft, hard, burst, action}")
        for (resourceName, resourceKeyNode, limitNode) in limits {
            let resourceKey = "\(key).\(resourceName)"
            guard let resource = Resource(rawValue: resourceName) else {
                report(resourceKeyNode, resourceKey, value: resourceName, "unknown resource", accepted: Self.resourceNames)
                continue
            }
            var entry = LimitEntry(resource: resource, keyNode: resourceKeyNode, node: limitNode)
            var valid = limitNode.isMapping || limitNode.isNull
            for (field, _, valueNode) in mapping(limitNode, resourceKey, allowed: Self.limitKeys) {
                let fieldKey = "\(resourceKey).\(field)"
                if field == "action" {
                    guard let text = scalar(valueNode, fieldKey, accepted: EnforcementAction.acceptedNames) else {
                        valid = false
                        continue
                    }
                    guard let action = EnforcementAction(rawValue: text) else {
                        report(
                            valueNode, fieldKey, value: text, "unknown action\(Self.actionHint(text))",
                            accepted: EnforcementAction.acceptedNames)
                        valid = false
                        continue
                    }
                    entry.override.action = action
                    entry.fields[field] = (valueNode, text)
                    continue
                }
                guard let amount = quantity(valueNode, fieldKey, unit: resource.unit) else {
                    valid = false
                    continue
                }
                switch field {
                case "soft": entry.override.soft = amount
                case "hard": entry.override.hard = amount
                default: entry.override.burst = amount
                }
                entry.fields[field] = (valueNode, valueNode.scalar?.string ?? "")
            }
            if valid { result.append(entry) }
        }
        return result
    }

    /// Reports what makes `limit` (the result of `entry`, possibly merged
    /// with limits from `origin`) unusable, at the field that was written.
    mutating func checkLimit(_ limit: ResourceLimit, _ entry: LimitEntry, key: String, origin: String?) {
        let unit = entry.resource.unit
        let before = issues.count
        /// The first of `fields` the entry gives: its node, text and key; else the entry's key.
        func place(_ fields: [String]) -> (node: YAMLNode, value: String?, key: String) {
            for field in fields {
                if let given = entry.fields[field] { return (given.node, given.text, "\(key).\(field)") }
            }
            return (entry.keyNode, nil, key)
        }
        /// " (from group x)" when `field` was not written here.
        func from(_ field: String) -> String {
            guard entry.fields[field] == nil, let origin else { return "" }
            return " (from \(origin))"
        }
        func add(_ fields: [String], _ message: String, accepted: String) {
            let at = place(fields)
            report(at.node, at.key, value: at.value, message, accepted: accepted)
        }

        if limit.hard <= 0 {
            add(
                ["hard"], "hard limit \(unit.format(limit.hard)) must be greater than zero",
                accepted: "above zero: " + Quantity.accepted(for: unit))
        } else if entry.resource == .cpu, limit.hard < CPUMax.minimumPercent {
            add(
                ["hard"],
                "cpu hard limit \(unit.format(limit.hard)) is below the kernel's minimum of \(unit.format(CPUMax.minimumPercent)) (1 ms per 1 s period)",
                accepted: "at least \(unit.format(CPUMax.minimumPercent))")
        }
        if limit.soft > limit.hard {
            add(
                ["soft", "hard"],
                "soft limit \(unit.format(limit.soft))\(from("soft")) is above the hard limit \(unit.format(limit.hard))\(from("hard"))",
                accepted: "a soft limit at most the hard limit (\(unit.format(limit.hard)))")
        }
        if let burst = limit.burst {
            if entry.resource == .cpu {
                if burst < limit.hard {
                    add(
                        ["burst", "hard"],
                        "cpu burst \(unit.format(burst))\(from("burst")) is below the hard limit \(unit.format(limit.hard))\(from("hard")); a cpu burst is how far above hard the kernel may briefly allow",
                        accepted: "a cpu burst at or above the hard limit (\(unit.format(limit.hard)))")
                }
            } else if burst < limit.soft || burst > limit.hard {
                add(
                    ["burst", burst < limit.soft ? "soft" : "hard"],
                    "burst \(unit.format(burst))\(from("burst")) is not between soft \(unit.format(limit.soft))\(from("soft")) and hard \(unit.format(limit.hard))\(from("hard"))",
                    accepted: "a burst between the soft and the hard limit (\(unit.format(limit.soft)) to \(unit.format(limit.hard)))")
            }
        }
        // Anything else CorralCore rejects (it has the last word on validity).
        if issues.count == before {
            for problem in limit.problems(for: entry.resource) {
                report(entry.keyNode, key, value: nil, problem + (origin.map { " (with \($0))" } ?? ""), accepted: Self.acceptedLimit)
            }
        }
    }

    // MARK: Agents

    mutating func readAgents(_ node: YAMLNode, into configuration: inout CorralConfiguration) {
        let agents = mapping(node, "agents", allowed: nil, expected: "agent ids mapped to {group, limits}")
        for (name, keyNode, value) in agents {
            let key = "agents.\(name)"
            if let problem = CgroupName.problem(with: name, what: "agent id") {
                report(keyNode, key, value: name, problem, accepted: Self.acceptedNames)
                continue
            }
            var agent = AgentOverride()
            var entries: [LimitEntry] = []
            var groupKnown = true
            for (field, _, fieldNode) in mapping(value, key, allowed: Self.agentKeys) {
                if field == "group" {
                    let accepted = configuration.groupNames.joined(separator: ", ")
                    guard let group = scalar(fieldNode, "\(key).group", accepted: accepted) else {
                        groupKnown = false
                        continue
                    }
                    if configuration.groups[group] == nil {
                        report(fieldNode, "\(key).group", value: group, "unknown group", accepted: accepted)
                        groupKnown = false
                    } else {
                        agent.group = group
                    }
                } else if field == "security" {
                    agent.security = security(fieldNode, "\(key).security")
                } else if field == "priority" {
                    agent.priority = priority(fieldNode, "\(key).priority")
                } else {
                    entries += limitEntries(fieldNode, "\(key).limits")
                }
            }
            for entry in entries { agent.limits[entry.resource] = entry.override }
            // The effective limits must be valid in the agent's group (the
            // default group when none is named).
            let groupName = agent.group ?? QuotaGroup.defaultGroupName
            if groupKnown, let group = configuration.groups[groupName] {
                for entry in entries {
                    let resourceKey = "\(key).limits.\(entry.resource.rawValue)"
                    if let current = group.limits[entry.resource] {
                        checkLimit(
                            entry.override.apply(to: current, of: entry.resource), entry, key: resourceKey, origin: "group \(groupName)")
                    } else if let created = LimitSet().applying([entry.resource: entry.override])[entry.resource] {
                        checkLimit(created, entry, key: resourceKey, origin: nil)
                    } else {
                        report(
                            entry.keyNode, resourceKey, value: nil,
                            "group \(groupName) sets no \(entry.resource.rawValue) limit, so this override needs at least hard",
                            accepted: "hard (soft then defaults to hard and action to warn), or soft, hard and action")
                    }
                }
            }
            configuration.agents[name] = agent
        }
    }

    // MARK: Duplicates

    /// Duplicated keys the reader never walked past (under a key it rejected):
    /// reported from a plain walk of the tree so no duplicate goes unmentioned.
    mutating func reportUnseenDuplicates(in root: YAMLNode) {
        let unseen = Set(duplicatedKeys.keys).subtracting(seenDuplicates)
        guard !unseen.isEmpty else { return }
        var found: [(YAMLNode, String, String, YAMLPosition)] = []
        func walk(_ node: YAMLNode, _ path: String) {
            switch node {
            case .mapping(let mapping):
                var first: [String: YAMLNode] = [:]
                for (keyNode, value) in mapping {
                    let name = keyNode.scalar?.string ?? "?"
                    let keyPath = path.isEmpty ? name : "\(path).\(name)"
                    if let earlier = first[name] {
                        if unseen.contains(earlier.position) {
                            found.append((keyNode, keyPath, name, earlier.position))
                        }
                    } else {
                        first[name] = keyNode
                    }
                    walk(value, keyPath)
                }
            case .sequence(let sequence):
                for (index, element) in sequence.enumerated() { walk(element, "\(path)[\(index)]") }
            default:
                break
            }
        }
        walk(root, "")
        for (node, path, name, earlier) in found {
            report(
                node, path, value: name, "key given more than once in this mapping (first at \(earlier))",
                accepted: "each key once; merge the two entries")
        }
        if found.isEmpty {
            for position in unseen.sorted() {
                issues.append(
                    ConfigIssue(
                        line: position.line, column: position.column, key: "", value: duplicatedKeys[position],
                        message: "key given more than once in one mapping", accepted: "each key once; merge the two entries"))
            }
        }
    }
}
