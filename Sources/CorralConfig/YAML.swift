internal import CYAML

/// A line:column in the text, both from 1, columns counted in Unicode
/// scalars (as libyaml counts them).
public struct YAMLPosition: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public static func < (lhs: YAMLPosition, rhs: YAMLPosition) -> Bool {
        (lhs.line, lhs.column) < (rhs.line, rhs.column)
    }

    public var description: String { "\(line):\(column)" }

    init(_ mark: yaml_mark_t) {
        self.init(line: mark.line + 1, column: mark.column + 1)
    }
}

/// A single value as written: its text (no tag resolution, so `1`, `"1"` and
/// `true` are all text here) and how it was quoted.
public struct YAMLScalar: Sendable {
    public enum Style: Sendable { case plain, singleQuoted, doubleQuoted, literal, folded }
    public var string: String
    public var style: Style
    public var position: YAMLPosition
}

/// A mapping's pairs in the order written; a key given twice is kept twice
/// (the reader reports it, with both positions).
public struct YAMLMapping: RandomAccessCollection, Sendable {
    public var pairs: [(key: YAMLNode, value: YAMLNode)]
    public var position: YAMLPosition
    public var startIndex: Int { pairs.startIndex }
    public var endIndex: Int { pairs.endIndex }
    public subscript(index: Int) -> (key: YAMLNode, value: YAMLNode) { pairs[index] }
}

/// A list's items in order.
public struct YAMLSequence: RandomAccessCollection, Sendable {
    public var items: [YAMLNode]
    public var position: YAMLPosition
    public var startIndex: Int { items.startIndex }
    public var endIndex: Int { items.endIndex }
    public subscript(index: Int) -> YAMLNode { items[index] }
}

/// A composed YAML node; aliases are resolved to the node they name.
public enum YAMLNode: Sendable {
    case scalar(YAMLScalar)
    case mapping(YAMLMapping)
    case sequence(YAMLSequence)

    public var position: YAMLPosition {
        switch self {
        case .scalar(let scalar): scalar.position
        case .mapping(let mapping): mapping.position
        case .sequence(let sequence): sequence.position
        }
    }

    public var scalar: YAMLScalar? {
        if case .scalar(let scalar) = self { return scalar }
        return nil
    }

    public var mapping: YAMLMapping? {
        if case .mapping(let mapping) = self { return mapping }
        return nil
    }

    /// The text of a scalar.
    public var string: String? { scalar?.string }

    public var isMapping: Bool { mapping != nil }

    /// An empty value or an explicit null (`key:`, `key: ~`, `key: null`).
    public var isNull: Bool {
        guard case .scalar(let scalar) = self, scalar.style == .plain else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }
}

/// Why a text is not one YAML document, in libyaml's words and marks.
public struct YAMLError: Error, Sendable, CustomStringConvertible {
    public enum Stage: Sendable {
        /// Decoding the bytes (bad UTF-8, a control character): at a byte offset.
        case reader(offset: Int, value: Int32)
        case scanner, parser
        /// Building the tree: an undefined alias, a second document, nesting too deep.
        case composer
    }
    public var stage: Stage
    public var problem: String
    public var position: YAMLPosition
    /// What libyaml was in the middle of, and where that began.
    public var context: (text: String, position: YAMLPosition)?

    public var description: String {
        problem + (context.map { " (\($0.text) at \($0.position))" } ?? "")
    }
}

/// The result of composing a text: its one document's root (nil for an
/// empty text or one of comments only), and the keys given more than once
/// in a mapping, by the position of their first occurrence.
public struct ComposedYAML: Sendable {
    public var root: YAMLNode?
    public var duplicatedKeys: [YAMLPosition: String] = [:]
}

/// Composes a YAML text into `YAMLNode`s from libyaml's parser events.
///
/// Iterative (an explicit stack), so a deep document cannot exhaust the
/// thread's stack; more than `maximumDepth` nested collections is an error,
/// so the recursive walks over the tree stay bounded too.
public enum YAMLComposer {
    public static let maximumDepth = 1000

    /// Composes `text`; on an error, `duplicatesBefore` holds the duplicated
    /// keys found before it (so they can be reported with it).
    public static func compose(_ text: String) -> Result<ComposedYAML, Failure> {
        var bytes = Array(text.utf8)
        return bytes.withUnsafeMutableBufferPointer { buffer in
            var composer = Composer()
            return composer.run(buffer)
        }
    }

    public struct Failure: Error, Sendable {
        public var error: YAMLError
        public var duplicatesBefore: [YAMLPosition: String]
    }

    private enum Frame {
        case sequence(items: [YAMLNode], position: YAMLPosition, anchor: String?)
        case mapping(
            pairs: [(key: YAMLNode, value: YAMLNode)], key: YAMLNode?, first: [String: YAMLPosition], position: YAMLPosition,
            anchor: String?)
    }

    private struct Composer {
        var stack: [Frame] = []
        var anchors: [String: YAMLNode] = [:]
        var result = ComposedYAML()
        var documents = 0
        var firstDocument = YAMLPosition(line: 1, column: 1)

        mutating func run(_ buffer: UnsafeMutableBufferPointer<UInt8>) -> Result<ComposedYAML, Failure> {
            var parser = yaml_parser_t()
            guard yaml_parser_initialize(&parser) == 1 else {
                return .failure(fail("out of memory", at: YAMLPosition(line: 1, column: 1), stage: .composer))
            }
            defer { yaml_parser_delete(&parser) }
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            // UTF-8 explicitly: nothing read from the environment.
            yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else { return .failure(parserFailure(parser)) }
                defer { yaml_event_delete(&event) }
                let position = YAMLPosition(event.start_mark)
                switch event.type {
                case YAML_STREAM_END_EVENT:
                    return .success(result)
                case YAML_DOCUMENT_START_EVENT:
                    documents += 1
                    if documents == 1 {
                        firstDocument = position
                    } else {
                        var failure = fail("but found another document", at: position, stage: .composer)
                        failure.error.context = ("expected a single document in the stream", firstDocument)
                        return .failure(failure)
                    }
                case YAML_ALIAS_EVENT:
                    let name = Self.text(event.data.alias.anchor)
                    guard let node = name.flatMap({ anchors[$0] }) else {
                        return .failure(fail("found undefined alias", at: position, stage: .composer))
                    }
                    add(node)
                case YAML_SCALAR_EVENT:
                    let scalar = event.data.scalar
                    let string = String(decoding: UnsafeBufferPointer(start: scalar.value, count: scalar.length), as: UTF8.self)
                    let node = YAMLNode.scalar(YAMLScalar(string: string, style: Self.style(scalar.style), position: position))
                    if let anchor = Self.text(scalar.anchor) { anchors[anchor] = node }
                    add(node)
                case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                    guard stack.count < YAMLComposer.maximumDepth else {
                        return .failure(
                            fail("nested too deeply (more than \(YAMLComposer.maximumDepth) levels)", at: position, stage: .composer))
                    }
                    if event.type == YAML_SEQUENCE_START_EVENT {
                        stack.append(.sequence(items: [], position: position, anchor: Self.text(event.data.sequence_start.anchor)))
                    } else {
                        stack.append(
                            .mapping(
                                pairs: [], key: nil, first: [:], position: position, anchor: Self.text(event.data.mapping_start.anchor)))
                    }
                case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                    let node: YAMLNode
                    let anchor: String?
                    switch stack.removeLast() {
                    case .sequence(let items, let start, let name):
                        node = .sequence(YAMLSequence(items: items, position: start))
                        anchor = name
                    case .mapping(let pairs, _, _, let start, let name):
                        node = .mapping(YAMLMapping(pairs: pairs, position: start))
                        anchor = name
                    }
                    if let anchor { anchors[anchor] = node }
                    add(node)
                default:
                    break
                }
            }
        }

        /// Hands a finished node to the collection being built, or makes it the root.
        mutating func add(_ node: YAMLNode) {
            guard let top = stack.popLast() else {
                result.root = node
                return
            }
            switch top {
            case .sequence(var items, let position, let anchor):
                items.append(node)
                stack.append(.sequence(items: items, position: position, anchor: anchor))
            case .mapping(var pairs, let key, var first, let position, let anchor):
                if let key {
                    pairs.append((key, node))
                    stack.append(.mapping(pairs: pairs, key: nil, first: first, position: position, anchor: anchor))
                } else {
                    if let name = node.string {
                        if let earlier = first[name] {
                            result.duplicatedKeys[earlier] = name
                        } else {
                            first[name] = node.position
                        }
                    }
                    stack.append(.mapping(pairs: pairs, key: node, first: first, position: position, anchor: anchor))
                }
            }
        }

        func fail(_ problem: String, at position: YAMLPosition, stage: YAMLError.Stage) -> Failure {
            Failure(error: YAMLError(stage: stage, problem: problem, position: position), duplicatesBefore: result.duplicatedKeys)
        }

        func parserFailure(_ parser: yaml_parser_t) -> Failure {
            let problem = parser.problem.map { String(cString: $0) } ?? "unknown error"
            let stage: YAMLError.Stage =
                switch parser.error {
                case YAML_READER_ERROR: .reader(offset: parser.problem_offset, value: parser.problem_value)
                case YAML_SCANNER_ERROR: .scanner
                default: .parser
                }
            var failure = fail(problem, at: YAMLPosition(parser.problem_mark), stage: stage)
            if let context = parser.context {
                failure.error.context = (String(cString: context), YAMLPosition(parser.context_mark))
            }
            return failure
        }

        static func text(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
            pointer.map { String(cString: $0) }
        }

        static func style(_ style: yaml_scalar_style_t) -> YAMLScalar.Style {
            switch style {
            case YAML_SINGLE_QUOTED_SCALAR_STYLE: .singleQuoted
            case YAML_DOUBLE_QUOTED_SCALAR_STYLE: .doubleQuoted
            case YAML_LITERAL_SCALAR_STYLE: .literal
            case YAML_FOLDED_SCALAR_STYLE: .folded
            default: .plain
            }
        }
    }
}
