internal import Yams

/// A line:column in the file, both from 1, columns counted in Unicode scalars (as libyaml does).
struct Position: Hashable, Comparable, CustomStringConvertible {
    var line: Int
    var column: Int

    static func < (lhs: Position, rhs: Position) -> Bool {
        (lhs.line, lhs.column) < (rhs.line, rhs.column)
    }

    var description: String { "\(line):\(column)" }
}

extension Node {
    var position: Position? { mark.map { Position(line: $0.line, column: $0.column) } }

    var isMapping: Bool {
        if case .mapping = self { return true }
        return false
    }

    /// An empty value or an explicit null (`key:`, `key: ~`, `key: null`).
    var isNull: Bool {
        guard case .scalar(let scalar) = self, scalar.style == .plain else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }
}

/// A composed YAML document whose duplicated keys were renamed so the rest
/// of it can still be checked.
///
/// libyaml rejects a mapping with a duplicated key as a whole, which would
/// hide every other error and name neither the key path nor the second
/// occurrence. So the first scalar of one occurrence is replaced, in place,
/// by a private-use character (same length: no other position moves) and
/// the text is composed again; `renamedKeys` maps the position of each
/// renamed key back to its name, and the reader reports the duplicate.
struct YAMLDocument {
    var root: Node?
    var renamedKeys: [Position: String] = [:]
    /// Set when the text is not YAML: what to report (the syntax error, and
    /// any duplicated key found before it).
    var failures: [ConfigIssue] = []

    /// Each rename costs another pass over the whole text; past this many the
    /// next duplicate is reported as libyaml words it (and the rest of the file is not checked).
    static let maximumRenames = 16

    init(composing text: String) {
        var scalars = Array(text.unicodeScalars)
        var current = text
        for attempt in 0...Self.maximumRenames {
            do {
                // UTF-8 explicitly: Yams' default reads the environment and may print to stdout.
                // No tag resolution: every value is read as text here, and resolving
                // (a regular expression per scalar) would make keys `1` and `"1"` differ.
                root = try Yams.compose(yaml: current, .basic, .default, .utf8)
                return
            } catch let error as YamlError {
                if case .duplicatedKeysInMapping(let names, let context) = error, attempt < Self.maximumRenames,
                    let name = names.first,
                    let marker = Unicode.Scalar(0xE000 + attempt),
                    Self.rename(&scalars, at: Position(line: context.mark.line, column: context.mark.column), name: name, marker: marker)
                {
                    renamedKeys[Position(line: context.mark.line, column: context.mark.column)] = name
                    var view = String.UnicodeScalarView()
                    view.append(contentsOf: scalars)
                    current = String(view)
                    continue
                }
                fail(Self.issue(from: error, in: text))
                return
            } catch {
                fail(ConfigIssue(line: 1, column: 1, key: "", value: nil, message: "invalid YAML: \(error)", accepted: "YAML text"))
                return
            }
        }
    }

    mutating func fail(_ issue: ConfigIssue) {
        root = nil
        failures = renamedKeys.sorted { $0.key < $1.key }.map { position, name in
            ConfigIssue(
                line: position.line, column: position.column, key: "", value: name,
                message: "key given more than once in one mapping (this is the first)", accepted: "each key once; merge the entries")
        }
        failures.append(issue)
        failures.sort { ($0.line, $0.column) < ($1.line, $1.column) }
    }

    /// Replaces the first scalar of the key `name` that starts at `position`
    /// by `marker`; false when that is not safely possible (escapes, anchors, tags…).
    static func rename(_ scalars: inout [Unicode.Scalar], at position: Position, name: String, marker: Unicode.Scalar) -> Bool {
        guard var index = index(of: position, in: scalars), let first = name.unicodeScalars.first else { return false }
        if scalars[index] == "\"" || scalars[index] == "'" {
            let quote = scalars[index]
            index += 1
            guard index < scalars.count, scalars[index] != quote, !(quote == "\"" && scalars[index] == "\\") else { return false }
        }
        guard index < scalars.count, scalars[index] == first else { return false }
        scalars[index] = marker
        return true
    }

    /// The index in `scalars` of a libyaml position (breaks: LF, CR, CRLF, NEL, LS, PS; a leading BOM is skipped).
    static func index(of position: Position, in scalars: [Unicode.Scalar]) -> Int? {
        var line = 1
        var column = 1
        var index = scalars.first == "\u{FEFF}" ? 1 : 0
        while index < scalars.count {
            if line == position.line && column == position.column { return index }
            if line > position.line { return nil }
            let scalar = scalars[index]
            if scalar == "\r", index + 1 < scalars.count, scalars[index + 1] == "\n" { index += 1 }
            if isBreak(scalar) {
                line += 1
                column = 1
            } else {
                column += 1
            }
            index += 1
        }
        return nil
    }

    static func isBreak(_ scalar: Unicode.Scalar) -> Bool {
        scalar == "\n" || scalar == "\r" || scalar == "\u{85}" || scalar == "\u{2028}" || scalar == "\u{2029}"
    }

    /// The position just before `count` leading characters of `text`.
    static func position(afterCharacters count: Int, in text: String) -> Position {
        let end = text.index(text.startIndex, offsetBy: count, limitedBy: text.endIndex) ?? text.endIndex
        var position = Position(line: 1, column: 1)
        var previous: Unicode.Scalar?
        for scalar in text[..<end].unicodeScalars {
            defer { previous = scalar }
            if scalar == "\u{FEFF}" && previous == nil { continue }
            if scalar == "\n" && previous == "\r" { continue }
            if isBreak(scalar) {
                position = Position(line: position.line + 1, column: 1)
            } else {
                position.column += 1
            }
        }
        return position
    }

    static func issue(from error: YamlError, in text: String) -> ConfigIssue {
        func at(_ mark: Mark) -> (Int, Int) { (max(mark.line, 1), max(mark.column, 1)) }
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let (line, column) = at(mark)
            // libyaml's wording names its C API; say what it means instead.
            let problem = problem.hasPrefix("Maximum nesting level") ? "nested too deeply (more than 1000 levels)" : problem
            let while_ = context.map { " (\($0.text) at \($0.mark.line):\($0.mark.column))" } ?? ""
            return ConfigIssue(
                line: line, column: column, key: "", value: nil, message: "invalid YAML: \(problem)\(while_)",
                accepted: "YAML: a mapping of keys to values, indented with spaces (not tabs), one document")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let (line, column) = at(context.mark)
            return ConfigIssue(
                line: line, column: column, key: "", value: duplicates.joined(separator: ", "),
                message: "key given more than once in one mapping", accepted: "each key once in a mapping")
        case .reader(let problem, let offset, let value, _):
            let position = Self.position(afterCharacters: offset ?? 0, in: text)
            let shown = value >= 0 ? " (character U+\(String(value, radix: 16, uppercase: true)))" : ""
            return ConfigIssue(
                line: position.line, column: position.column, key: "", value: nil, message: "cannot read the file: \(problem)\(shown)",
                accepted: "UTF-8 text without control characters other than tab and line breaks")
        default:
            return ConfigIssue(line: 1, column: 1, key: "", value: nil, message: "invalid YAML: \(error)", accepted: "YAML text")
        }
    }
}
