import CorralAPI
import CorralClient
import CorralCore
import CorralEngine
import CorralServer
import CorralTestSupport
import Foundation
import Hummingbird
import Testing

/// Random and mutated JSON bodies, reproducible from a seed.
struct BodyFuzzer {
    var random: SplitMix64

    init(seed: UInt64) { random = SplitMix64(seed: seed) }

    static let keys = [
        "id", "group", "command", "environment", "working_directory", "workingDirectory", "limits", "pid", "exit_status",
        "reason", "totals", "usage", "soft", "hard", "burst", "action", "memory", "cpu", "processes", "files", "connections",
        "network", "disk", "", "Memory", "scale_down", "__proto__", "../x", "a/b", "ä",
    ]

    static let atoms = [
        "0", "1", "-1", "7", "2147483647", "2147483648", "-2147483649", "9223372036854775807", "9223372036854775808",
        "18446744073709551616", "1e308", "-1e308", "1e309", "1e400", "-0", "0.5", "1.0e2", "4.9e-324", "1e-400", "1E+2",
        "0.1", "99999999999999999999999999999", "-1e19", "1e19", "9007199254740993", #""NaN""#, #""Infinity""#,
        #""-Infinity""#, "NaN", "Infinity", "-Infinity", "nan", "null", "true", "false", #""""#, #""x""#, #""../x""#,
        #""a/b""#, #""..""#, #"".""#, #""%2e%2e%2fx""#, #""\u0000""#, #""😀""#, #""\ud800""#, #""\udc00x""#, #""ä""#,
        #""supervisor""#, "[]", "{}", "[[[[[[[[[[1]]]]]]]]]]", #"["sleep"]"#, "[1,2]", #"{"a":1}"#, #""memory""#,
        #""warn""#, #""scale_down""#, #""standard_agent""#, #""2026-11-29T09:50:00Z""#,
        "\"" + String(repeating: "a", count: 300) + "\"",
    ]

    static let resources = ["memory", "cpu", "processes", "files", "connections", "network", "disk"]

    mutating func pick<T>(_ items: [T]) -> T { items[Int(random.next() % UInt64(items.count))] }

    mutating func chance(_ percent: UInt64) -> Bool { random.next() % 100 < percent }

    mutating func number() -> String {
        switch random.next() % 6 {
        case 0: String(Int64(bitPattern: random.next()))
        case 1: String(Int(random.next() % 1000))
        case 2: String(Double(bitPattern: random.next()).isFinite ? Double(bitPattern: random.next()) : 1.5)
        case 3: "\(Double(random.next() % 1_000_000) / 7)"
        case 4: "-\(random.next() % 100)"
        default: pick(Self.atoms)
        }
    }

    mutating func text() -> String {
        var scalars = ""
        for _ in 0..<(random.next() % 12) {
            switch random.next() % 5 {
            case 0: scalars.append(pick(["\\\"", "\\\\", "\\n", "\\u0000", "\\u00e4", "\\ud83d\\ude00", "/", ".."]))
            case 1: scalars.append(pick(["ä", "😀", "\u{202E}", "\u{FEFF}", "中"]))
            default: scalars.append(Character(UnicodeScalar(UInt8(97 + random.next() % 26))))
            }
        }
        return "\"\(scalars)\""
    }

    /// A random JSON value (not always valid JSON: atoms include NaN and friends).
    mutating func value(depth: Int = 0) -> String {
        let roll = depth > 3 ? random.next() % 3 : random.next() % 9
        switch roll {
        case 0: return pick(Self.atoms)
        case 1: return number()
        case 2: return text()
        case 3: return "[" + (0..<Int(random.next() % 4)).map { _ in value(depth: depth + 1) }.joined(separator: ",") + "]"
        case 4: return limit()
        case 5: return "{" + (0..<Int(random.next() % 3)).map { _ in "\"\(pick(Self.resources))\":\(limit())" }.joined(separator: ",") + "}"
        case 6:
            return "{" + (0..<Int(random.next() % 3)).map { _ in "\"\(pick(Self.resources))\":\(number())" }.joined(separator: ",") + "}"
        case 7: return #"["sleep","\#(random.next() % 100)"]"#
        default: return object(depth: depth + 1)
        }
    }

    mutating func limit() -> String {
        var fields: [String] = []
        for key in ["soft", "hard", "burst", "action"] where chance(70) {
            fields.append(
                "\"\(key)\":"
                    + (key == "action"
                        ? pick([
                            #""warn""#, #""throttle""#, #""suspend""#, #""terminate""#, #""scale_down""#, #""migrate""#, #""custom""#,
                            #""kill""#, "3",
                        ]) : number()))
        }
        return "{" + fields.joined(separator: ",") + "}"
    }

    mutating func object(depth: Int = 0) -> String {
        let count = Int(random.next() % 5)
        return "{" + (0..<count).map { _ in "\"\(pick(Self.keys))\":\(value(depth: depth + 1))" }.joined(separator: ",") + "}"
    }

    /// Byte-level damage: truncation, bit flips, deletions, duplications, insertions, splices.
    mutating func mutate(_ input: [UInt8], with other: [UInt8]) -> [UInt8] {
        var bytes = input
        for _ in 0..<(1 + random.next() % 3) {
            let count = bytes.count
            let at = count == 0 ? 0 : Int(random.next() % UInt64(count))
            switch random.next() % 7 {
            case 0: bytes = Array(bytes.prefix(at))
            case 1 where count > 0: bytes[at] ^= UInt8(1 << (random.next() % 8))
            case 2 where count > 0: bytes.removeSubrange(at..<min(count, at + 1 + Int(random.next() % 8)))
            case 3 where count > 0:
                let end = min(count, at + 1 + Int(random.next() % 16))
                bytes.insert(contentsOf: bytes[at..<end], at: at)
            case 4: bytes.insert(contentsOf: Array(pick(Self.atoms + [",", ":", "{", "}", "[", "]", "\"", "\\"]).utf8), at: at)
            case 5: bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: at)
            default:
                let cut = other.isEmpty ? 0 : Int(random.next() % UInt64(other.count))
                bytes = Array(bytes.prefix(at)) + other.suffix(from: cut)
            }
        }
        return bytes
    }

    /// `text` with one of its numbers replaced by another (huge, negative, fractional, not a number at all).
    mutating func renumber(_ text: String) -> String {
        let bytes = Array(text.utf8)
        var runs: [Range<Int>] = []
        var index = 0
        while index < bytes.count {
            guard (48...57).contains(bytes[index]) else {
                index += 1
                continue
            }
            let start = index
            while index < bytes.count, (48...57).contains(bytes[index]) || bytes[index] == UInt8(ascii: ".") { index += 1 }
            runs.append(start..<index)
        }
        guard let run = runs.randomElement(using: &random) else { return text }
        return String(decoding: bytes[..<run.lowerBound], as: UTF8.self) + number()
            + String(decoding: bytes[run.upperBound...], as: UTF8.self)
    }

    /// One body: valid seeds, generated objects, mutations of both, and a few pathological shapes.
    mutating func body(seeds: [String]) -> [UInt8] {
        let seed = Array(pick(seeds).utf8)
        switch random.next() % 12 {
        case 0: return seed
        case 10, 11: return Array(renumber(pick(seeds)).utf8)
        case 1, 2: return Array(object().utf8)
        case 3:
            // A seed with one field's value replaced by something of another type.
            guard case .object(let members)? = try? JSON.parse(seed), let key = members.keys.sorted().randomElement(using: &random)
            else { return seed }
            let rest = members.filter { $0.key != key }.map { "\"\($0.key)\":\($0.value)" }
            return Array(("{" + (rest + ["\"\(key)\":\(value())"]).joined(separator: ",") + "}").utf8)
        case 4:
            let depth = 1 + Int(random.next() % 5000)
            let open = pick(["[", #"{"a":"#, #"{"limits":{"memory":"#])
            return Array((String(repeating: open, count: depth) + "1" + String(repeating: open == "[" ? "]" : "}", count: depth)).utf8)
        case 5: return (0..<Int(random.next() % 64)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        default: return mutate(chance(50) ? seed : Array(object().utf8), with: Array(pick(seeds).utf8))
        }
    }
}

/// A request decoder and bodies it should accept.
struct DecoderCase: Sendable, CustomTestStringConvertible {
    let name: String
    let seeds: [String]
    let decode: @Sendable (ByteBuffer) throws -> Void

    var testDescription: String { name }

    static let all: [DecoderCase] = [
        DecoderCase(
            name: "LaunchRequest",
            seeds: [
                #"{"command":["sleep","1"]}"#,
                #"{"id":"a1","group":"standard_agent","command":["python3","agent.py"],"environment":{"A":"b"},"working_directory":"/tmp","limits":{"memory":{"hard":100000000},"cpu":{"soft":5,"hard":10,"action":"throttle"}}}"#,
            ], decode: { _ = try decodeJSON(LaunchRequest.self, from: $0) }),
        DecoderCase(
            name: "RegisterRequest",
            seeds: [
                #"{"command":["x"]}"#,
                #"{"id":"r1","group":"lightweight_agent","command":["x","y"],"limits":{"files":{"soft":1,"hard":2,"action":"warn"}}}"#,
            ],
            decode: { _ = try decodeJSON(RegisterRequest.self, from: $0) }),
        DecoderCase(
            name: "AdoptRequest", seeds: [#"{"pid":1234}"#, #"{"pid":1234,"id":"a","group":"standard_agent"}"#],
            decode: { _ = try decodeJSON(AdoptRequest.self, from: $0) }),
        DecoderCase(name: "AttachRequest", seeds: [#"{"pid":1234}"#], decode: { _ = try decodeJSON(AttachRequest.self, from: $0) }),
        DecoderCase(
            name: "FinishedRequest", seeds: ["{}", #"{"exit_status":0,"reason":"done"}"#],
            decode: { _ = try decodeJSON(FinishedRequest.self, from: $0) }),
        DecoderCase(
            name: "LimitsRequest",
            seeds: [#"{"limits":{}}"#, #"{"limits":{"memory":{"soft":1,"hard":2,"burst":1.5,"action":"suspend"}}}"#],
            decode: { _ = try decodeJSON(LimitsRequest.self, from: $0) }),
        DecoderCase(
            name: "GroupUpdateRequest", seeds: [#"{"totals":{"memory":1000}}"#, #"{"limits":{"cpu":{"hard":40}},"totals":{"cpu":200}}"#],
            decode: { _ = try decodeJSON(GroupUpdateRequest.self, from: $0) }),
        DecoderCase(
            name: "UsageRequest", seeds: [#"{"usage":{"files":3}}"#, #"{"usage":{"connections":2.5,"network":100}}"#],
            decode: { _ = try decodeJSON(UsageRequest.self, from: $0) }),
    ]
}

/// The seed of a fuzz run: `CORRAL_FUZZ_SEED` (to explore or reproduce), else a fixed one.
func fuzzSeed(default seed: UInt64) -> UInt64 {
    ProcessInfo.processInfo.environment["CORRAL_FUZZ_SEED"].flatMap { UInt64($0) } ?? seed
}

@Suite("Bad input never crashes the API")
struct FuzzTests {
    @Test("every request decoder either decodes or throws a 4xx APIError with a message", arguments: DecoderCase.all)
    func decoder(_ decoder: DecoderCase) async {
        var fuzzer = BodyFuzzer(seed: fuzzSeed(default: 0xC0_22A1) ^ UInt64(decoder.name.utf8.count) &* 0x9E37)
        for seed in decoder.seeds {
            #expect(throws: Never.self, "seed \(seed)") { try decoder.decode(ByteBuffer(bytes: Array(seed.utf8))) }
        }
        var decoded = 0
        var refused = 0
        var failures: [String] = []
        for iteration in 0..<3000 {
            // A turn for the other tests: this loop would otherwise hold a thread of the
            // two-thread cooperative pool for many seconds (a CI run's deadlines lapsed so).
            await Task.yield()
            let body = iteration == 0 ? [] : fuzzer.body(seeds: decoder.seeds)
            do {
                try decoder.decode(ByteBuffer(bytes: body))
                decoded += 1
            } catch let error as APIError {
                refused += 1
                if !(400..<500).contains(error.status.code) || error.message.isEmpty || error.code.isEmpty {
                    failures.append("\(error.status.code) '\(error.message)' for \(String(decoding: body.prefix(200), as: UTF8.self))")
                }
            } catch {
                failures.append("\(type(of: error)) \(error) for \(String(decoding: body.prefix(200), as: UTF8.self))")
            }
        }
        #expect(failures.isEmpty, "\(failures.count) bad outcomes, e.g. \(failures.prefix(5))")
        #expect(decoded > 0 && refused > 1000, "decoded \(decoded), refused \(refused)")
    }

    @Test("a nesting far beyond any limit is refused, not a stack overflow")
    func deepNesting() {
        for open in ["[", #"{"limits":"#] {
            let body = String(repeating: open, count: 200_000)
            #expect(throws: APIError.self) { try decodeJSON(LimitsRequest.self, from: ByteBuffer(string: body)) }
        }
    }

    /// Through the router in process (the routes, their decoders and the
    /// middleware, not the socket; the contract test covers that): 2,000 requests.
    @Test("random requests through the router get 2xx or a 4xx JSON error, and it keeps answering")
    func routerInProcess() async throws {
        let document = OpenAPIDocument.shared
        let templates = (document.root["paths"]?.object ?? [:]).keys.sorted()
        let seeds = DecoderCase.all.flatMap(\.seeds)
        try await withInProcessServer { server in
            var fuzzer = BodyFuzzer(seed: fuzzSeed(default: 0x5EED_0F_C022A1))
            let segments = [
                "a1", "fz-1", "reg", "standard_agent", "lightweight_agent", "..", ".", "..%2Fx", "a%2Fb", "%2e%2e", "%2E%2E%2Fetc",
                "%00", "%C3%A4", "%F0%9F%98%80", "supervisor", "-x", "x%20y", String(repeating: "b", count: 100), "%ZZ", "a;b",
            ]
            let queries = [
                "", "?state=live", "?state=nope", "?force=true", "?force=1", "?limit=0", "?limit=-3", "?limit=99999999999999999999",
                "?since=2026-13-45T99:99:99Z", "?since=2000-01-01T00:00:00Z", "?after=-1", "?after=x", "?agent=..%2Fx",
                "?agent=a1&agent=b2", "?%%%", "?a=%ZZ", "?=",
            ]
            for setup in [
                #"{"id":"a1","command":["w"],"limits":{"files":{"soft":1,"hard":2,"action":"warn"}}}"#,
                #"{"id":"reg","command":["w"],"group":"lightweight_agent"}"#,
            ] {
                try await server.send("POST", "/v1/agents/register", json: setup).expectStatus(201)
            }
            try await server.send("POST", "/v1/agents/a1/attach", json: #"{"pid":\#(ghostPID)}"#).expectStatus(200)
            // Each operation with a body, with the bodies its decoder takes.
            let operations: [(String, String, [String])] = [
                ("POST", "/v1/agents", bodies(of: "LaunchRequest")), ("POST", "/v1/agents/register", bodies(of: "RegisterRequest")),
                ("POST", "/v1/agents/adopt", bodies(of: "AdoptRequest")), ("POST", "/v1/agents/{id}/attach", bodies(of: "AttachRequest")),
                ("POST", "/v1/agents/{id}/finished", bodies(of: "FinishedRequest")),
                ("PUT", "/v1/agents/{id}/limits", bodies(of: "LimitsRequest")),
                ("PATCH", "/v1/groups/{name}", bodies(of: "GroupUpdateRequest")),
                ("POST", "/v1/agents/{id}/usage", bodies(of: "UsageRequest")),
            ]
            var seen: [Int: Int] = [:]
            var failures: [String] = []
            for _ in 0..<2000 {
                var method = fuzzer.pick(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
                var template = fuzzer.pick(templates)
                var bodySeeds = seeds
                if fuzzer.chance(50) {
                    (method, template, bodySeeds) = fuzzer.pick(operations)
                }
                if fuzzer.chance(10) { template += fuzzer.pick(["/extra", "/", "/../v1/health", "/%2e%2e"]) }
                var parts: [String] = []
                for part in template.split(separator: "/", omittingEmptySubsequences: false) {
                    if !part.hasPrefix("{") {
                        parts.append(String(part))
                    } else if fuzzer.chance(60) {
                        parts.append(fuzzer.pick(["a1", "reg", "standard_agent"]))
                    } else {
                        parts.append(fuzzer.pick(segments))
                    }
                }
                let path = parts.joined(separator: "/") + fuzzer.pick(queries)
                // The stream never ends by itself (with or without a trailing slash): leave it to the contract test.
                let nonEmpty = parts.filter { !$0.isEmpty }
                if method == "GET", nonEmpty == ["v1", "events"] || nonEmpty == ["status", "events"] { continue }
                var body: [UInt8]? = fuzzer.chance(85) ? fuzzer.body(seeds: bodySeeds) : nil
                if fuzzer.chance(3) { body = Array(repeating: UInt8(ascii: "["), count: 70_000) }
                body = body.map(harmless)
                let reply = try await server.send(method, path, body: body)
                seen[reply.status, default: 0] += 1
                if !(200..<300).contains(reply.status) && !(400..<500).contains(reply.status) {
                    failures.append("\(method) \(path) → \(reply.status) \(reply.text.prefix(300))")
                } else if reply.status >= 400 {
                    let problems = document.errorShapeProblems(reply, what: "\(method) \(path)", statuses: Set(400..<500))
                    if !problems.isEmpty { failures.append(contentsOf: problems) }
                } else if reply.status != 204, reply.json == nil, reply.headers["content-type"]?.hasPrefix("text/") != true {
                    failures.append("\(method) \(path) → \(reply.status) with a body that is not JSON: \(reply.text.prefix(200))")
                }
            }
            #expect(failures.isEmpty, "\(failures.count) bad answers, e.g. \(failures.prefix(8))")
            #expect(seen.keys.contains { (200..<300).contains($0) } && seen.keys.contains(400) && seen.keys.contains(404))
            let health = try await server.send("GET", "/v1/health")
            #expect(health.status == 200)
        }
    }

    func bodies(of decoder: String) -> [String] { DecoderCase.all.first { $0.name == decoder }?.seeds ?? [] }

    /// Keeps a fuzzed request from starting or adopting real processes,
    /// whatever path it goes to: a body that decodes as a launch gets a
    /// command that does not exist, one naming a live pid a pid that cannot exist.
    func harmless(_ body: [UInt8]) -> [UInt8] {
        let buffer = ByteBuffer(bytes: body)
        if var launch = try? decodeJSON(LaunchRequest.self, from: buffer) {
            launch.command = ["/nonexistent/corral-fuzz"] + launch.command.dropFirst()
            return Array((try? CorralClient.encoder.encode(launch)) ?? Data("{}".utf8))
        }
        if let adopt = try? decodeJSON(AdoptRequest.self, from: buffer), adopt.pid > 1, kill(adopt.pid, 0) == 0 || errno == EPERM {
            return Array(#"{"pid":99999999}"#.utf8)
        }
        return body
    }
}
