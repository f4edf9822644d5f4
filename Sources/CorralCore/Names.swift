/// Names that become cgroup directory names: agent ids and group names.
///
/// `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`: no `/`, cannot be `.` or `..`, cannot
/// start with `.` or `-`, so no input can name a path outside its parent.
/// Nor may a name start with a kernel interface file prefix (`memory.`,
/// `cgroup.`, …) or be one of Corral's own directories (`supervisor`).
public enum CgroupName {
    public static let pattern = "[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
    public static let maximumLength = 64

    /// Directory names Corral uses itself and that agents and groups may not take.
    public static let reserved: Set<String> = ["supervisor"]

    /// Prefixes of the kernel's interface files in every cgroup directory
    /// (`cgroup.procs`, `memory.max`, `cpu.stat`, …), each with an example.
    /// A child cgroup named like one would clash with the file (mkdir fails
    /// with EEXIST) or with one a newer kernel adds, so no name may start
    /// with one of them.
    public static let kernelFilePrefixes: KeyValuePairs<String, String> = [
        "cgroup.": "cgroup.procs", "memory.": "memory.max", "cpu.": "cpu.max", "cpuset.": "cpuset.cpus", "io.": "io.max",
        "pids.": "pids.max", "hugetlb.": "hugetlb.2MB.max", "rdma.": "rdma.max", "misc.": "misc.max",
    ]

    /// "cgroup., memory., …, misc.", for messages.
    public static var prefixList: String { kernelFilePrefixes.map(\.key).joined(separator: ", ") }

    /// What a valid name looks like, for "accepted:" in error messages.
    public static var ruleDescription: String {
        "letters, digits, '.', '_' and '-', starting with a letter or digit, at most \(maximumLength) characters (\(pattern)), not starting with \(prefixList) and not \(reserved.sorted().map { "'\($0)'" }.joined(separator: ", "))"
    }

    /// Why `name` is not a valid agent id or group name, or nil when it is.
    public static func problem(with name: String, what: String = "name") -> String? {
        if name.isEmpty { return "\(what) is empty; it must match \(pattern)" }
        if name.utf8.count > maximumLength {
            return "\(what) '\(name.prefix(80))' is \(name.utf8.count) characters long; at most \(maximumLength) are allowed"
        }
        let bytes = Array(name.utf8)
        func isAlnum(_ byte: UInt8) -> Bool {
            (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122)
        }
        if !isAlnum(bytes[0]) {
            return "\(what) '\(name)' must start with a letter or digit (it must match \(pattern))"
        }
        if let bad = bytes.first(where: { !(isAlnum($0) || $0 == 46 || $0 == 95 || $0 == 45) }) {
            let shown = bad < 32 || bad > 126 ? "byte 0x\(String(bad, radix: 16))" : "'\(Character(UnicodeScalar(bad)))'"
            return "\(what) '\(name)' contains \(shown); only letters, digits, '.', '_' and '-' are allowed (it must match \(pattern))"
        }
        if reserved.contains(name) {
            return "\(what) '\(name)' is reserved for Corral's own cgroup"
        }
        if let (prefix, example) = kernelFilePrefixes.first(where: { name.hasPrefix($0.key) }) {
            let suggestion = prefix.dropLast() + "-" + name.dropFirst(prefix.count)
            return
                "\(what) '\(name)' starts with '\(prefix)', the prefix of kernel interface files such as \(example) in every cgroup directory, so its cgroup would clash with them (no name may start with \(prefixList)); use another name, e.g. '\(suggestion)'"
        }
        return nil
    }

    public static func isValid(_ name: String) -> Bool { problem(with: name) == nil }
}

/// Generates agent ids for `corral run` when none is given: the command's
/// base name and a random suffix ("python3-7f3a9c").
public enum AgentIDGenerator {
    public static func make<R: RandomNumberGenerator>(command: String, using generator: inout R) -> String {
        let base = command.split(separator: "/").last.map(String.init) ?? "agent"
        var stem = String(
            base.unicodeScalars.filter { scalar in
                scalar.isASCII
                    && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "_" || scalar == "-" || scalar == ".")
            }.map(Character.init)
        ).prefix(40)
        while let first = stem.first, !(first.isLetter || first.isNumber) { stem.removeFirst() }
        if stem.isEmpty || CgroupName.reserved.contains(String(stem)) { stem = "agent" }
        // "memory.hog" would clash with the kernel's memory.* files: "memory-hog".
        if let prefix = CgroupName.kernelFilePrefixes.first(where: { stem.hasPrefix($0.key) })?.key {
            stem = stem.prefix(prefix.count - 1) + "-" + stem.dropFirst(prefix.count)
        }
        let suffix = String(UInt32.random(in: 0...0xFF_FFFF, using: &generator), radix: 16)
        let padded = String(repeating: "0", count: max(0, 6 - suffix.count)) + suffix
        return "\(stem)-\(padded)"
    }
}
