import CorralAPI
import CorralConfig

/// A JSON value as the wire has it: numbers remember whether they were
/// written as integers, so the checker can tell `integer` from `number`.
indirect enum JSON: Equatable, Sendable, CustomStringConvertible {
    case null
    case bool(Bool)
    case number(Double, integral: Bool)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    subscript(key: String) -> JSON? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    var string: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    var array: [JSON]? {
        if case .array(let items) = self { return items }
        return nil
    }

    var object: [String: JSON]? {
        if case .object(let members) = self { return members }
        return nil
    }

    var double: Double? {
        if case .number(let value, _) = self { return value }
        return nil
    }

    var bool: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    var description: String {
        switch self {
        case .null: "null"
        case .bool(let value): "\(value)"
        case .number(let value, let integral): integral ? "\(Int64(exactly: value).map(String.init) ?? "\(value)")" : "\(value)"
        case .string(let text): "\"\(text)\""
        case .array(let items): "[" + items.map(\.description).joined(separator: ",") + "]"
        case .object(let members):
            "{" + members.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",") + "}"
        }
    }

    /// Parses RFC 8259 JSON strictly (no trailing commas, no duplicate keys, no NaN).
    static func parse(_ bytes: [UInt8]) throws(JSONParseError) -> JSON {
        var parser = JSONParser(bytes: bytes)
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        guard parser.index == bytes.count else { throw JSONParseError(offset: parser.index, reason: "trailing bytes") }
        return value
    }

    static func parse(_ text: String) throws(JSONParseError) -> JSON { try parse(Array(text.utf8)) }

    /// A YAML node (the OpenAPI document) as JSON: plain scalars that look
    /// like numbers, booleans or null are those; everything else is a string.
    init(yaml node: YAMLNode) {
        switch node {
        case .scalar(let scalar):
            let text = scalar.string
            if scalar.style != .plain {
                self = .string(text)
            } else if text == "null" || text == "~" {
                self = .null
            } else if text == "true" || text == "false" {
                self = .bool(text == "true")
            } else if let value = Int64(text) {
                self = .number(Double(value), integral: true)
            } else if let value = Double(text), text.first.map({ $0.isNumber || $0 == "-" }) == true {
                self = .number(value, integral: false)
            } else {
                self = .string(text)
            }
        case .mapping(let mapping):
            var members: [String: JSON] = [:]
            for (key, value) in mapping { members[key.string ?? "\(key)"] = JSON(yaml: value) }
            self = .object(members)
        case .sequence(let sequence):
            self = .array(sequence.map { JSON(yaml: $0) })
        }
    }
}

struct JSONParseError: Error, CustomStringConvertible {
    var offset: Int
    var reason: String
    var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

private struct JSONParser {
    let bytes: [UInt8]
    var index = 0

    mutating func skipSpace() {
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }

    func fail(_ reason: String) -> JSONParseError { JSONParseError(offset: index, reason: reason) }

    mutating func expect(_ literal: String) throws(JSONParseError) {
        for byte in literal.utf8 {
            guard index < bytes.count, bytes[index] == byte else { throw fail("expected \(literal)") }
            index += 1
        }
    }

    mutating func value(depth: Int) throws(JSONParseError) -> JSON {
        guard depth < 512 else { throw fail("nested too deeply") }
        skipSpace()
        guard index < bytes.count else { throw fail("unexpected end") }
        switch bytes[index] {
        case UInt8(ascii: "n"):
            try expect("null")
            return .null
        case UInt8(ascii: "t"):
            try expect("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expect("false")
            return .bool(false)
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "["):
            index += 1
            var items: [JSON] = []
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(items)
            }
            while true {
                items.append(try value(depth: depth + 1))
                skipSpace()
                guard index < bytes.count else { throw fail("unterminated array") }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                } else if bytes[index] == UInt8(ascii: "]") {
                    index += 1
                    return .array(items)
                } else {
                    throw fail("expected , or ]")
                }
            }
        case UInt8(ascii: "{"):
            index += 1
            var members: [String: JSON] = [:]
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            }
            while true {
                skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw fail("expected a key") }
                let key = try string()
                guard members[key] == nil else { throw fail("duplicate key \(key)") }
                skipSpace()
                try expect(":")
                members[key] = try value(depth: depth + 1)
                skipSpace()
                guard index < bytes.count else { throw fail("unterminated object") }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                } else if bytes[index] == UInt8(ascii: "}") {
                    index += 1
                    return .object(members)
                } else {
                    throw fail("expected , or }")
                }
            }
        default:
            return try number()
        }
    }

    mutating func number() throws(JSONParseError) -> JSON {
        let start = index
        var integral = true
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
        func digits(_ parser: inout JSONParser) -> Int {
            var count = 0
            while parser.index < parser.bytes.count, (48...57).contains(parser.bytes[parser.index]) {
                parser.index += 1
                count += 1
            }
            return count
        }
        let intStart = index
        guard digits(&self) > 0 else { throw fail("expected a value") }
        if bytes[intStart] == UInt8(ascii: "0"), index - intStart > 1 { throw fail("leading zero") }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            integral = false
            index += 1
            guard digits(&self) > 0 else { throw fail("expected digits after .") }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            integral = false
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard digits(&self) > 0 else { throw fail("expected exponent digits") }
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        guard let value = Double(text), value.isFinite else { throw fail("number \(text) out of range") }
        return .number(value, integral: integral)
    }

    mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard index + 4 <= bytes.count, let value = UInt32(String(decoding: bytes[index..<index + 4], as: UTF8.self), radix: 16)
        else { throw fail("bad \\u escape") }
        index += 4
        return value
    }

    mutating func string() throws(JSONParseError) -> String {
        index += 1
        var scalars = String.UnicodeScalarView()
        var run: [UInt8] = []
        func flush(_ run: inout [UInt8], _ scalars: inout String.UnicodeScalarView) {
            scalars.append(contentsOf: String(decoding: run, as: UTF8.self).unicodeScalars)
            run.removeAll()
        }
        while true {
            guard index < bytes.count else { throw fail("unterminated string") }
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                flush(&run, &scalars)
                return String(scalars)
            }
            guard byte >= 0x20 else { throw fail("control character in string") }
            if byte != UInt8(ascii: "\\") {
                run.append(byte)
                index += 1
                continue
            }
            flush(&run, &scalars)
            index += 1
            guard index < bytes.count else { throw fail("unterminated escape") }
            let escape = bytes[index]
            index += 1
            switch escape {
            case UInt8(ascii: "\""): scalars.append("\"")
            case UInt8(ascii: "\\"): scalars.append("\\")
            case UInt8(ascii: "/"): scalars.append("/")
            case UInt8(ascii: "b"): scalars.append("\u{08}")
            case UInt8(ascii: "f"): scalars.append("\u{0C}")
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "t"): scalars.append("\t")
            case UInt8(ascii: "u"):
                var code = try hex4()
                if (0xD800...0xDBFF).contains(code) {
                    try expect("\\u")
                    let low = try hex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw fail("lone surrogate") }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let scalar = Unicode.Scalar(code) else { throw fail("lone surrogate") }
                scalars.append(scalar)
            default:
                throw fail("bad escape")
            }
        }
    }
}

/// The parts of JSON Schema (2020-12, as OpenAPI 3.1 uses it) that
/// openapi/corral.yaml uses. A keyword it does not know is an error, so a
/// schema can never pass by being misunderstood.
struct SchemaChecker {
    let document: JSON

    static let keywords: Set<String> = [
        "type", "properties", "required", "additionalProperties", "items", "enum", "$ref", "format", "description",
        "minItems", "minimum", "maximum", "pattern", "allOf", "const",
    ]

    /// Problems of `value` under `schema`, each naming where; empty when it conforms.
    func problems(_ value: JSON, _ schema: JSON, at path: String = "$") -> [String] {
        guard let rules = schema.object else { return ["\(path): the schema is not an object: \(schema)"] }
        if let reference = rules["$ref"]?.string {
            guard let target = resolve(reference) else { return ["\(path): cannot resolve \(reference)"] }
            return problems(value, target, at: path)
        }
        var found: [String] = []
        for keyword in rules.keys where !Self.keywords.contains(keyword) {
            found.append("\(path): the checker does not know the keyword '\(keyword)'")
        }
        // Every schema of an allOf applies to the whole value.
        if let all = rules["allOf"] {
            guard let schemas = all.array, !schemas.isEmpty else { return found + ["\(path): allOf must be a non-empty list"] }
            for schema in schemas { found += problems(value, schema, at: path) }
        }
        if let expected = rules["const"], value != expected {
            found.append("\(path): \(value) is not the constant \(expected)")
        }
        if let type = rules["type"]?.string, let problem = Self.typeProblem(value, type) {
            return found + ["\(path): \(problem)"]
        }
        // A list of types: any of them (["integer", "null"]); null has no further rules.
        if let types = rules["type"]?.array?.compactMap(\.string) {
            guard types.contains(where: { Self.typeProblem(value, $0) == nil }) else {
                return found + ["\(path): \(value) is none of the types \(types.joined(separator: ", "))"]
            }
            if value == .null { return found }
        }
        if let allowed = rules["enum"]?.array, !allowed.contains(value) {
            found.append("\(path): \(value) is not one of \(allowed.map(\.description).joined(separator: ", "))")
        }
        if rules["format"]?.string == "date-time", let text = value.string, !Self.isDateTime(text) {
            found.append("\(path): '\(text)' is not a date-time")
        }
        if let number = value.double {
            if let minimum = rules["minimum"]?.double, number < minimum { found.append("\(path): \(number) < \(minimum)") }
            if let maximum = rules["maximum"]?.double, number > maximum { found.append("\(path): \(number) > \(maximum)") }
        }
        if let items = value.array {
            if let minimum = rules["minItems"]?.double, Double(items.count) < minimum {
                found.append("\(path): \(items.count) items, at least \(Int(minimum)) required")
            }
            if let itemSchema = rules["items"] {
                for (index, item) in items.enumerated() { found += problems(item, itemSchema, at: "\(path)[\(index)]") }
            }
        }
        if let members = value.object {
            let properties = rules["properties"]?.object ?? [:]
            for name in rules["required"]?.array?.compactMap(\.string) ?? [] where members[name] == nil {
                found.append("\(path): required field '\(name)' is missing")
            }
            for (name, member) in members.sorted(by: { $0.key < $1.key }) {
                if let property = properties[name] {
                    found += problems(member, property, at: "\(path).\(name)")
                } else {
                    switch rules["additionalProperties"] {
                    case .bool(false): found.append("\(path): field '\(name)' is not in the document")
                    case .some(let extra) where extra.object != nil: found += problems(member, extra, at: "\(path).\(name)")
                    default: break
                    }
                }
            }
        }
        return found
    }

    func resolve(_ reference: String) -> JSON? {
        guard reference.hasPrefix("#/") else { return nil }
        var node: JSON? = document
        for part in reference.dropFirst(2).split(separator: "/") { node = node?[String(part)] }
        return node
    }

    static func typeProblem(_ value: JSON, _ type: String) -> String? {
        let ok: Bool
        switch (type, value) {
        case ("null", .null), ("boolean", .bool), ("string", .string), ("array", .array), ("object", .object): ok = true
        case ("number", .number): ok = true
        case ("integer", .number(let number, let integral)): ok = integral && number == number.rounded()
        default: ok = false
        }
        return ok ? nil : "\(value) is not of type \(type)"
    }

    /// ISO 8601 with a time and a zone: 2026-11-29T09:50:00.123Z (fraction optional, Z or ±hh:mm).
    static func isDateTime(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        func digits(_ range: Range<Int>) -> Bool { range.upperBound <= bytes.count && bytes[range].allSatisfy { (48...57).contains($0) } }
        guard bytes.count >= 20, digits(0..<4), bytes[4] == 45, digits(5..<7), bytes[7] == 45, digits(8..<10), bytes[10] == 84,
            digits(11..<13), bytes[13] == 58, digits(14..<16), bytes[16] == 58, digits(17..<19)
        else { return false }
        var index = 19
        if bytes[index] == 46 {
            index += 1
            let start = index
            while index < bytes.count, (48...57).contains(bytes[index]) { index += 1 }
            guard index > start else { return false }
        }
        let zone = String(decoding: bytes[index...], as: UTF8.self)
        if zone == "Z" { return true }
        let zoneBytes = Array(zone.utf8)
        return zoneBytes.count == 6 && (zoneBytes[0] == 43 || zoneBytes[0] == 45) && zoneBytes[3] == 58
    }
}
