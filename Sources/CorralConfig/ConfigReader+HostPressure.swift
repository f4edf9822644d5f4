internal import CorralCore

extension Reader {
    static let hostPressureKeys = [
        "enabled", "memory_high", "memory_critical", "memory_pressure", "cpu_pressure", "io_pressure", "step_interval",
        "quiet_period", "recovery_interval", "protect_above", "terminate",
    ]

    /// `host_pressure:`: when the root as a whole is short, and what the host ladder does.
    mutating func readHostPressure(_ node: YAMLNode, into policy: inout HostPressurePolicy) {
        /// A PSI share: "20%"; cpu and io also take "off".
        func psi(_ node: YAMLNode, _ key: String, off: Bool) -> Double?? {
            let accepted = "a percentage of time stalled, e.g. 20%" + (off ? ", or off" : "")
            guard let text = scalar(node, key, accepted: accepted) else { return nil }
            if off, text == "off" { return .some(nil) }
            guard text.contains("%"), case .success(let percent) = Quantity.parsePercent(text), percent > 0, percent <= 100 else {
                report(node, key, value: text, "not a percentage in (0%, 100%]", accepted: accepted)
                return nil
            }
            return .some(percent)
        }
        var mark: (YAMLNode, String)?
        for (key, _, value) in mapping(node, "host_pressure", allowed: Self.hostPressureKeys) {
            let path = "host_pressure.\(key)"
            switch key {
            case "enabled": if let flag = boolean(value, path) { policy.enabled = flag }
            case "terminate": if let flag = boolean(value, path) { policy.terminate = flag }
            case "memory_high", "memory_critical":
                guard let share = fraction(value, path) else { continue }
                mark = mark ?? (value, path)
                if key == "memory_high" { policy.memoryHigh = share } else { policy.memoryCritical = share }
            case "memory_pressure": if let percent = psi(value, path, off: false) ?? nil { policy.memoryPressure = percent }
            case "cpu_pressure": if let percent = psi(value, path, off: true) { policy.cpuPressure = percent }
            case "io_pressure": if let percent = psi(value, path, off: true) { policy.ioPressure = percent }
            case "step_interval": if let interval = duration(value, path, positive: true) { policy.stepInterval = interval }
            case "quiet_period": if let period = duration(value, path) { policy.quietPeriod = period }
            case "recovery_interval": if let interval = duration(value, path, positive: true) { policy.recoveryInterval = interval }
            default: if let priority = priority(value, path) { policy.protectAbove = priority }
            }
        }
        if let (node, key) = mark, let problem = policy.problems.first {
            report(
                node, key, value: nil, problem,
                accepted: "e.g. memory_high: 85%, memory_critical: 95%")
        }
    }
}
