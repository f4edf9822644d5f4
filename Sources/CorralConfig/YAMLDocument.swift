/// A composed configuration document, or the issues that make it unreadable.
struct YAMLDocument {
    var root: YAMLNode?
    /// Keys given more than once in a mapping, by the position of their first
    /// occurrence (the reader reports each at its second one).
    var duplicatedKeys: [YAMLPosition: String] = [:]
    /// Set when the text is not YAML: what to report (the syntax error, and
    /// any duplicated key found before it).
    var failures: [ConfigIssue] = []

    init(composing text: String) {
        switch YAMLComposer.compose(text) {
        case .success(let composed):
            root = composed.root
            duplicatedKeys = composed.duplicatedKeys
        case .failure(let failure):
            failures = failure.duplicatesBefore.sorted { $0.key < $1.key }.map { position, name in
                ConfigIssue(
                    line: position.line, column: position.column, key: "", value: name,
                    message: "key given more than once in one mapping (this is the first)", accepted: "each key once; merge the entries")
            }
            failures.append(Self.issue(from: failure.error, in: text))
        }
    }

    static func isBreak(_ scalar: Unicode.Scalar) -> Bool {
        scalar == "\n" || scalar == "\r" || scalar == "\u{85}" || scalar == "\u{2028}" || scalar == "\u{2029}"
    }

    /// The position of the character that starts `offset` bytes into `text`'s UTF-8.
    static func position(afterBytes offset: Int, in text: String) -> YAMLPosition {
        let utf8 = text.utf8
        let end = utf8.index(utf8.startIndex, offsetBy: offset, limitedBy: utf8.endIndex) ?? utf8.endIndex
        var position = YAMLPosition(line: 1, column: 1)
        var previous: Unicode.Scalar?
        for scalar in String(decoding: utf8[..<end], as: UTF8.self).unicodeScalars {
            defer { previous = scalar }
            if scalar == "\u{FEFF}" && previous == nil { continue }
            if scalar == "\n" && previous == "\r" { continue }
            if isBreak(scalar) {
                position = YAMLPosition(line: position.line + 1, column: 1)
            } else {
                position.column += 1
            }
        }
        return position
    }

    static func issue(from error: YAMLError, in text: String) -> ConfigIssue {
        switch error.stage {
        case .reader(let offset, let value):
            let position = Self.position(afterBytes: offset, in: text)
            let shown = value >= 0 ? " (character U+\(String(value, radix: 16, uppercase: true)))" : ""
            return ConfigIssue(
                line: position.line, column: position.column, key: "", value: nil,
                message: "cannot read the file: \(error.problem)\(shown)",
                accepted: "UTF-8 text without control characters other than tab and line breaks")
        case .scanner, .parser, .composer:
            return ConfigIssue(
                line: error.position.line, column: error.position.column, key: "", value: nil, message: "invalid YAML: \(error)",
                accepted: "YAML: a mapping of keys to values, indented with spaces (not tabs), one document")
        }
    }
}
