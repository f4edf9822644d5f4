public import CorralCore

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
    /// Parses `text` (the contents of `file`) on top of the built-in configuration.
    ///
    /// Throws every problem, sorted by position, when there is any; nothing of
    /// an invalid file is returned. An empty file (or one with only comments)
    /// yields the built-in configuration.
    public static func load(_ text: String, file: String = "<config>") throws(ConfigError) -> CorralConfiguration {
        let document = YAMLDocument(composing: text)
        if !document.failures.isEmpty {
            throw ConfigError(file: file, issues: document.failures)
        }
        var reader = Reader(duplicatedKeys: document.duplicatedKeys)
        var configuration = CorralConfiguration.builtIn
        if let root = document.root {
            reader.readDocument(root, into: &configuration)
            reader.reportUnseenDuplicates(in: root)
        }
        if !reader.issues.isEmpty {
            throw ConfigError(file: file, issues: reader.sortedIssues())
        }
        return configuration
    }
}
