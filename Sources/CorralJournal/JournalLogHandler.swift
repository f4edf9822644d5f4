import CorralSystemd
public import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// A swift-log handler that writes native journal entries through libsystemd
/// (`sd_journal_sendv`): `PRIORITY` from the level, `MESSAGE`, `MESSAGE_ID`
/// from the `message_id` metadata key, every other metadata key as a
/// `CORRAL_<KEY>` field (`agent` → `CORRAL_AGENT`), the code location, and
/// `SYSLOG_IDENTIFIER`. So `journalctl -u corral CORRAL_AGENT=crawler` finds
/// one agent's entries. An entry the journal refuses is written to stderr.
public struct JournalLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let identifier: String
    private let send: @Sendable ([String]) -> Int32?

    /// Writes to the journal (`Systemd.journalSend`).
    public init(identifier: String = "corrald") {
        self.init(identifier: identifier, send: { Systemd.journalSend($0) })
    }

    /// Hands each entry's fields to `send` (which returns nil or an errno): for tests.
    public init(identifier: String, send: @escaping @Sendable ([String]) -> Int32?) {
        self.identifier = identifier
        self.send = send
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let own = event.metadata { merged.merge(own) { _, new in new } }
        let fields = JournalEntry.fields(
            level: event.level, message: event.message.description, metadata: merged, identifier: identifier,
            file: event.file, function: event.function, line: event.line)
        if let errno = send(fields) {
            var text = "\(event.level) \(event.message) (the journal refused the entry: errno \(errno))\n"
            _ = text.withUTF8 { write(2, $0.baseAddress, $0.count) }
        }
    }
}

/// The fields of one journal entry (pure, for tests).
public enum JournalEntry {
    /// The metadata key whose value becomes `MESSAGE_ID`.
    public static let messageIDKey = "message_id"

    /// syslog(3) priorities: critical 2, error 3, warning 4, notice 5, info 6, debug and trace 7.
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .critical: 2
        case .error: 3
        case .warning: 4
        case .notice: 5
        case .info: 6
        case .debug, .trace: 7
        }
    }

    /// The journal field for a metadata key: `CORRAL_` and the key in upper
    /// case, every character outside A–Z and 0–9 turned into `_`
    /// ("agent" → CORRAL_AGENT, "cgroup-root" → CORRAL_CGROUP_ROOT); journal
    /// field names are at most 64 characters.
    public static func fieldName(_ key: String) -> String {
        if key == messageIDKey { return "MESSAGE_ID" }
        let body = key.uppercased().unicodeScalars.map { scalar -> Character in
            ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar) ? Character(scalar) : "_"
        }
        return String(("CORRAL_" + String(body)).prefix(64))
    }

    public static func fields(
        level: Logger.Level, message: String, metadata: Logger.Metadata, identifier: String, file: String, function: String,
        line: UInt
    ) -> [String] {
        var fields = [
            "MESSAGE=\(message)",
            "PRIORITY=\(priority(level))",
            "SYSLOG_IDENTIFIER=\(identifier)",
            "CODE_FILE=\(file)",
            "CODE_LINE=\(line)",
            "CODE_FUNC=\(function)",
        ]
        for key in metadata.keys.sorted() {
            fields.append("\(fieldName(key))=\(text(metadata[key]!))")
        }
        return fields
    }

    static func text(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let string): string
        case .stringConvertible(let convertible): convertible.description
        case .array, .dictionary: value.description
        }
    }
}
