import CorralAPI
import CorralCgroup
import CorralClient
import CorralConfig
import CorralCore
import CorralEngine
import CorralServer
import CorralTestSupport
import Foundation
import Hummingbird
import Logging
import Synchronization
import Testing

/// openapi/corral.yaml, found from this file's path.
struct OpenAPIDocument: Sendable {
    static let path: String = {
        let parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        return (parts.dropLast(3) + ["openapi", "corral.yaml"]).joined(separator: "/")
    }()

    static let shared: OpenAPIDocument = {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
            case .success(let composed) = YAMLComposer.compose(text), let node = composed.root
        else { fatalError("cannot read \(path)") }
        return OpenAPIDocument(root: JSON(yaml: node))
    }()

    static let methods = ["get", "put", "post", "delete", "patch", "head", "options"]

    let root: JSON

    var checker: SchemaChecker { SchemaChecker(document: root) }

    /// Every documented operation as "METHOD /template".
    var operations: [String] {
        (root["paths"]?.object ?? [:]).flatMap { template, item in
            (item.object ?? [:]).keys.filter(Self.methods.contains).map { "\($0.uppercased()) \(template)" }
        }
        .sorted()
    }

    /// The documented path template `path` (without query) falls under; literal segments win over parameters.
    func template(for path: String) -> String? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        var best: (String, Int)?
        for template in (root["paths"]?.object ?? [:]).keys {
            let parts = template.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
            guard parts.count == segments.count else { continue }
            var literals = 0
            var matches = true
            for (part, segment) in zip(parts, segments) {
                if part.hasPrefix("{") {
                    if segment.isEmpty { matches = false }
                } else if part == segment {
                    literals += 1
                } else {
                    matches = false
                }
            }
            if matches, literals > (best?.1 ?? -1) { best = (template, literals) }
        }
        return best?.0
    }

    /// The documented response of an operation for `status`, with `$ref`s to
    /// components/responses resolved; nil when undocumented.
    func response(_ method: String, _ template: String, _ status: Int) -> JSON? {
        guard let operation = root["paths"]?[template]?[method.lowercased()],
            var response = operation["responses"]?["\(status)"]
        else { return nil }
        if let reference = response["$ref"]?.string { response = checker.resolve(reference) ?? .null }
        return response
    }
}

/// One answer of the live server.
struct Reply: Sendable {
    var method: String
    var path: String
    var status: Int
    var headers: [String: String]
    var body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }
    var json: JSON? { try? JSON.parse(body) }
}

/// Which operations and statuses a test run exercised.
final class Coverage: Sendable {
    private let seen = Mutex<Set<String>>([])

    func note(_ operation: String, _ status: Int) { _ = seen.withLock { $0.insert("\(operation) \(status)") } }

    var all: Set<String> { seen.withLock { $0 } }

    func operations() -> Set<String> {
        Set(all.map { $0.split(separator: " ").prefix(2).joined(separator: " ") })
    }
}

extension OpenAPIDocument {
    /// What is wrong with `reply` according to the document: an undocumented
    /// path, method or status, a wrong content type, a body off its schema.
    func problems(with reply: Reply, coverage: Coverage? = nil) -> [String] {
        let path = String(reply.path.split(separator: "?", maxSplits: 1).first ?? "")
        let what = "\(reply.method) \(reply.path) → \(reply.status)"
        guard let template = template(for: path) else {
            // Not a documented path: it must be the JSON "no such endpoint" error.
            return errorShapeProblems(reply, what: what, statuses: [404, 405])
        }
        guard root["paths"]?[template]?[reply.method.lowercased()] != nil else {
            return errorShapeProblems(reply, what: what, statuses: [404, 405])
        }
        coverage?.note("\(reply.method) \(template)", reply.status)
        guard let response = response(reply.method, template, reply.status) else {
            return ["\(what): status \(reply.status) is not documented for \(reply.method) \(template) (body \(reply.text.prefix(300)))"]
        }
        guard let content = response["content"]?.object else {
            return reply.body.isEmpty ? [] : ["\(what): documented without a body, got \(reply.text.prefix(200))"]
        }
        if content["text/event-stream"] != nil { return [] }
        for type in ["text/plain", "text/html"] where content[type] != nil {
            let actual = reply.headers["content-type"] ?? "none"
            return actual.hasPrefix(type) ? [] : ["\(what): content-type \(actual), not \(type)"]
        }
        guard let schema = content["application/json"]?["schema"] else { return ["\(what): no application/json schema"] }
        guard reply.headers["content-type"]?.hasPrefix("application/json") == true else {
            return ["\(what): content-type \(reply.headers["content-type"] ?? "none"), not application/json"]
        }
        let value: JSON
        do {
            value = try JSON.parse(reply.body)
        } catch {
            return ["\(what): \(error): \(reply.text.prefix(300))"]
        }
        return checker.problems(value, schema).map { "\(what): \($0)" }
    }

    func errorShapeProblems(_ reply: Reply, what: String, statuses: Set<Int>) -> [String] {
        guard statuses.contains(reply.status) else { return ["\(what): expected one of \(statuses.sorted())"] }
        guard let value = reply.json else { return ["\(what): not JSON: \(reply.text.prefix(200))"] }
        let problems = checker.problems(value, .object(["$ref": .string("#/components/schemas/Error")]))
        return problems.map { "\(what): \($0)" }
    }
}

/// Runs `body` on a thread of its own: the client blocks in read(2), and
/// the server's handlers need the cooperative pool it would otherwise hold.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Foundation.Thread {
            continuation.resume(with: Result { try body() })
        }
        thread.start()
    }
}

/// A real Corral API server on a Unix socket in a temporary directory,
/// over an engine on a fake cgroup tree and a memory store.
struct LiveServer: Sendable {
    let fs: FakeCgroupFilesystem
    let tree: CgroupTree
    let engine: Engine
    let store: MemoryStore
    let socketPath: String
    let client: CorralClient

    static let root = CgroupPath(["corral"])

    /// The leaf of an agent in the fake tree.
    func leaf(_ group: String, _ agent: String) -> CgroupPath { tree.agentPath(group: group, agent: agent) }

    /// Set for a server run in process (`withInProcessServer`): requests
    /// go straight to the router, with this test process's credentials.
    var responder: RouterResponder<CorralRequestContext>? = nil

    func send(_ method: String, _ path: String, body: [UInt8]? = nil) async throws -> Reply {
        if let responder { return try await Self.send(method, path, body: body, to: responder) }
        let client = client
        let response = try await offPool { try client.send(method, path, body: body) }
        return Reply(method: method, path: path, status: response.status, headers: response.headers, body: response.body)
    }

    /// One request through the router in process: the same middleware
    /// (errors, authorization from the given credentials) and routes as on
    /// the socket, without HTTP framing.
    static func send(
        _ method: String, _ path: String, body: [UInt8]?, to responder: RouterResponder<CorralRequestContext>
    ) async throws -> Reply {
        guard let httpMethod = HTTPRequest.Method(method) else { throw InProcessError.badMethod(method) }
        let request = Request(
            head: HTTPRequest(method: httpMethod, scheme: "http", authority: "corral", path: path),
            body: RequestBody(buffer: ByteBuffer(bytes: body ?? [])))
        var logger = Logger(label: "corral-api-test")
        logger.logLevel = .critical
        let context = CorralRequestContext(inProcess: PeerCredentials(pid: getpid(), uid: getuid(), gid: getgid()), logger: logger)
        let response = try await responder.respond(to: request, context: context)
        let sink = BodySink()
        try await response.body.write(CollectingWriter(sink: sink))
        var headers: [String: String] = [:]
        for field in response.headers where headers[field.name.canonicalName.lowercased()] == nil {
            headers[field.name.canonicalName.lowercased()] = field.value
        }
        return Reply(method: method, path: path, status: Int(response.status.code), headers: headers, body: sink.bytes)
    }

    enum InProcessError: Error { case badMethod(String) }

    func send(_ method: String, _ path: String, json: String) async throws -> Reply {
        try await send(method, path, body: Array(json.utf8))
    }
}

/// Starts a server, runs `body` against it and shuts it down.
func withLiveServer(
    policy: AccessPolicy = AccessPolicy(adminGID: nil, cgroupRootInHierarchy: "/corral"),
    configuration: CorralConfiguration = .builtIn,
    _ body: (LiveServer) async throws -> Void
) async throws {
    signal(SIGPIPE, SIG_IGN)
    var template = Array("/tmp/corral-api-XXXXXX".utf8CString)
    let directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    chmod(directory, 0o755)
    defer {
        unlink(directory + "/corral.sock")
        rmdir(directory)
    }
    let socketPath = directory + "/corral.sock"
    let fs = FakeCgroupFilesystem()
    fs.seed(LiveServer.root)
    let tree = CgroupTree(fs: fs, root: LiveServer.root)
    try tree.prepareRoot(selfPID: nil, reservation: nil)
    let store = MemoryStore()
    let engine = Engine(configuration: configuration, tree: tree, store: store, socketPath: socketPath)
    _ = try await engine.restore()
    let settings = APISettings(version: "test", socketPath: socketPath, cgroupRoot: fs.absolutePath(LiveServer.root), policy: policy)
    var logger = Logger(label: "corral-api-test")
    logger.logLevel = .critical
    let (ready, readyContinuation) = AsyncStream.makeStream(of: Bool.self)
    let app = Application(
        router: buildRouter(engine: engine, settings: settings),
        configuration: ApplicationConfiguration(address: .unixDomainSocket(path: socketPath), serverName: "corral"),
        onServerRunning: { _ in
            chmod(socketPath, 0o666)
            readyContinuation.yield(true)
        },
        logger: logger)
    // The server's handlers and the engine run on the cooperative pool, two threads on a
    // two-core machine, which other suites' synchronous tests hold at times for 20 s and
    // more (seen in full unit runs): a request waits that out rather than failing.
    let server = LiveServer(
        fs: fs, tree: tree, engine: engine, store: store, socketPath: socketPath, client: CorralClient(socketPath: socketPath, timeout: 60))
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            defer { readyContinuation.finish() }
            try await app.run()
        }
        var started = false
        for await value in ready {
            started = value
            break
        }
        guard started else {
            try await group.next()
            throw ClientError.unreachable(socket: socketPath, reason: "the server did not start")
        }
        defer {
            engine.hub.finishAll()
            group.cancelAll()
        }
        try await body(server)
    }
}

/// The router of a server over an engine on a fake tree, run in process:
/// no socket, no HTTP framing; `send` hands requests to the router. For the
/// tests that are about the routes, not the transport.
func withInProcessServer(configuration: CorralConfiguration = .builtIn, _ body: (LiveServer) async throws -> Void) async throws {
    let fs = FakeCgroupFilesystem()
    fs.seed(LiveServer.root)
    let tree = CgroupTree(fs: fs, root: LiveServer.root)
    try tree.prepareRoot(selfPID: nil, reservation: nil)
    let store = MemoryStore()
    let engine = Engine(configuration: configuration, tree: tree, store: store)
    _ = try await engine.restore()
    let settings = APISettings(
        version: "test", socketPath: "(in process)", cgroupRoot: fs.absolutePath(LiveServer.root),
        policy: AccessPolicy(adminGID: nil, cgroupRootInHierarchy: "/corral"))
    var server = LiveServer(
        fs: fs, tree: tree, engine: engine, store: store, socketPath: "(in process)",
        client: CorralClient(socketPath: "/nonexistent", timeout: 1))
    server.responder = buildRouter(engine: engine, settings: settings).buildResponder()
    defer { engine.hub.finishAll() }
    try await body(server)
}

/// Collects a response body written in process.
final class BodySink: @unchecked Sendable {
    var bytes: [UInt8] = []
}

struct CollectingWriter: ResponseBodyWriter {
    let sink: BodySink

    mutating func write(_ buffer: ByteBuffer) async throws { sink.bytes += buffer.readableBytesView }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

/// SplitMix64: a small seeded generator, so every fuzz run is reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
