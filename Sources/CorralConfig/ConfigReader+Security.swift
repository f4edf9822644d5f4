internal import CorralCore
internal import CorralSeccomp

/// `security:` of a group or an agent.
extension Reader {
    static let securityKeys = [
        "user", "group", "seccomp", "seccomp_action", "no_new_privileges", "cgroup_namespace", "rlimits", "capabilities",
    ]
    static let seccompKeys = ["base", "deny", "allow"]
    static let acceptedSeccomp =
        "default, strict, none, or a mapping {base: default, deny: [syscall, …], allow: [syscall, …]}"
    static let acceptedUser = "a user name or numeric uid that exists on the host, e.g. nobody or 65534"

    /// Reads a `security:` mapping into an override (what it sets).
    mutating func security(_ node: YAMLNode, _ key: String) -> SecurityOverride {
        var result = SecurityOverride()
        for (field, _, value) in mapping(node, key, allowed: Self.securityKeys) {
            let fieldKey = "\(key).\(field)"
            switch field {
            case "user", "group":
                guard let text = scalar(value, fieldKey, accepted: Self.acceptedUser) else { continue }
                if let problem = UserName.problem(with: text) {
                    report(value, fieldKey, value: text, problem, accepted: Self.acceptedUser)
                    continue
                }
                if field == "user" { result.user = text } else { result.group = text }
            case "seccomp":
                result.seccomp = seccomp(value, fieldKey)
            case "capabilities":
                let accepted = "default (Docker's default set for root agents) or all"
                guard let text = scalar(value, fieldKey, accepted: accepted) else { continue }
                guard let policy = CapabilityPolicy(rawValue: text) else {
                    report(value, fieldKey, value: text, "unknown capability policy", accepted: accepted)
                    continue
                }
                result.capabilities = policy
            case "seccomp_action":
                let accepted = SeccompAction.allCases.map(\.rawValue).joined(separator: ", ")
                guard let text = scalar(value, fieldKey, accepted: accepted) else { continue }
                guard let action = SeccompAction(rawValue: text) else {
                    report(value, fieldKey, value: text, "unknown seccomp action", accepted: accepted)
                    continue
                }
                result.seccompAction = action
            case "no_new_privileges", "cgroup_namespace":
                guard let flag = boolean(value, fieldKey) else { continue }
                if field == "no_new_privileges" { result.noNewPrivileges = flag } else { result.cgroupNamespace = flag }
            case "rlimits":
                let accepted = "rlimit names (\(ResourceLimitName.acceptedNames)) mapped to \(RlimitValue.accepted)"
                for (name, nameNode, limitNode) in mapping(value, fieldKey, allowed: nil, expected: accepted) {
                    let limitKey = "\(fieldKey).\(name)"
                    guard let resource = ResourceLimitName(rawValue: name) else {
                        report(nameNode, limitKey, value: name, "unknown rlimit", accepted: ResourceLimitName.acceptedNames)
                        continue
                    }
                    guard let text = scalar(limitNode, limitKey, accepted: RlimitValue.accepted) else { continue }
                    switch RlimitValue.parse(text) {
                    case .success(let limit): result.rlimits[resource] = limit
                    case .failure(let error): report(limitNode, limitKey, value: text, error.reason, accepted: error.accepted)
                    }
                }
            default:
                break
            }
        }
        if let policy = result.seccomp, !policy.filters, result.seccompAction != nil {
            report(
                node, "\(key).seccomp_action", value: result.seccompAction?.rawValue, "has no effect with seccomp: none",
                accepted: "remove seccomp_action, or choose a profile")
        }
        return result
    }

    mutating func boolean(_ node: YAMLNode, _ key: String) -> Bool? {
        guard let text = scalar(node, key, accepted: "true or false") else { return nil }
        switch text {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            report(node, key, value: text, "not a boolean", accepted: "true or false")
            return nil
        }
    }

    mutating func seccomp(_ node: YAMLNode, _ key: String) -> SeccompPolicy? {
        let profiles = SeccompProfile.allCases.map(\.rawValue).joined(separator: ", ")
        if let text = node.scalar?.string, !node.isNull {
            guard let profile = SeccompProfile(rawValue: text) else {
                report(node, key, value: text, "unknown seccomp profile", accepted: Self.acceptedSeccomp)
                return nil
            }
            return SeccompPolicy(base: profile)
        }
        var policy = SeccompPolicy()
        var valid = true
        for (field, _, value) in mapping(node, key, allowed: Self.seccompKeys) {
            let fieldKey = "\(key).\(field)"
            switch field {
            case "base":
                guard let text = scalar(value, fieldKey, accepted: profiles) else {
                    valid = false
                    continue
                }
                guard let profile = SeccompProfile(rawValue: text) else {
                    report(value, fieldKey, value: text, "unknown seccomp profile", accepted: profiles)
                    valid = false
                    continue
                }
                policy.base = profile
            default:
                guard let names = syscallNames(value, fieldKey) else {
                    valid = false
                    continue
                }
                if field == "allow", names.contains("clone3") {
                    // clone3's flags sit in memory a filter cannot read: allowing it would
                    // let an agent create user namespaces past the clone rule.
                    report(
                        value, fieldKey, value: "clone3",
                        "clone3 cannot be allowed: its flags are out of the filter's sight (it answers ENOSYS and glibc uses clone)",
                        accepted: "remove clone3 from allow")
                    valid = false
                    continue
                }
                if field == "deny" { policy.deny = names } else { policy.allow = names }
            }
        }
        return valid ? policy : nil
    }

    /// A list of syscall names, each one libseccomp knows on this architecture.
    mutating func syscallNames(_ node: YAMLNode, _ key: String) -> [String]? {
        let accepted = "a list of syscall names this architecture knows, e.g. [ptrace, mount]"
        guard case .sequence(let sequence) = node else {
            report(node, key, value: node.scalar?.string, "expected a list", accepted: accepted)
            return nil
        }
        var names: [String] = []
        var valid = true
        for item in sequence {
            guard let name = item.scalar?.string, !name.isEmpty else {
                report(item, key, value: nil, "each entry must be a syscall name", accepted: accepted)
                valid = false
                continue
            }
            guard Seccomp.syscallNumber(name) != nil else {
                let near = Seccomp.suggestion(for: name).map { " (did you mean '\($0)'?)" } ?? ""
                report(item, key, value: name, "unknown syscall '\(name)' on \(Seccomp.nativeArchitecture)\(near)", accepted: accepted)
                valid = false
                continue
            }
            if !names.contains(name) { names.append(name) }
        }
        return valid ? names : nil
    }
}

/// User and group names as the config may give them (existence is checked when an agent starts).
enum UserName {
    static func problem(with text: String) -> String? {
        if let number = UInt32(text) { return number == UInt32.max ? "uid/gid 4294967295 is reserved (-1)" : nil }
        let allowed = text.unicodeScalars.allSatisfy {
            ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || "._-".unicodeScalars.contains($0)
        }
        guard allowed, !text.hasPrefix("-"), text.count <= 32 else { return "not a user or group name" }
        return nil
    }
}
