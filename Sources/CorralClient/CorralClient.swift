internal import CorralAPI
internal import CorralCore
internal import CorralLinux
internal import CorralThreads
import Synchronization

#if canImport(FoundationEssentials)
    public import FoundationEssentials
#else
    public import Foundation
#endif
#if canImport(Glibc)
    internal import Glibc
#endif

/// Why a call to the daemon failed.
public enum ClientError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Nothing answers on the socket.
    case unreachable(socket: String, reason: String)
    /// The daemon answered with an error.
    case api(status: Int, code: String, message: String)
    /// The answer was not HTTP/JSON as expected.
    case protocolError(String)

    public var description: String {
        switch self {
        case .unreachable(let socket, let reason):
            "cannot reach the Corral daemon at \(socket): \(reason)\n  fix: start it (corral serve, or systemctl start corral), or point CORRAL_SOCKET at its socket"
        case .api(let status, let code, let message):
            "\(message) (HTTP \(status) \(code))"
        case .protocolError(let message):
            "unexpected answer from the daemon: \(message)"
        }
    }
}

/// One HTTP response.
public struct ClientResponse: Sendable {
    public var status: Int
    public var headers: [String: String]
    public var body: [UInt8]
}

/// One Server-Sent Event.
public struct ServerSentEvent: Equatable, Sendable {
    public var id: String?
    public var event: String?
    public var data: String

    public init(id: String?, event: String?, data: String) {
        self.id = id
        self.event = event
        self.data = data
    }
}

/// A client of the daemon's HTTP/JSON API over its Unix socket. Blocking
/// calls (for the CLI); `events` streams on a thread of its own.
public struct CorralClient: Sendable {
    public let socketPath: String
    /// Seconds a call may take before it fails.
    public var timeout: Int32

    public static let defaultSocketPath = "/run/corral/corral.sock"

    /// `$CORRAL_SOCKET`, else the default.
    public static var configuredSocketPath: String {
        getenv("CORRAL_SOCKET").map { String(cString: $0) } ?? defaultSocketPath
    }

    public init(socketPath: String = CorralClient.configuredSocketPath, timeout: Int32 = 30) {
        self.socketPath = socketPath
        self.timeout = timeout
    }

    public static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }

    public static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }

    func connect() throws(ClientError) -> Int32 {
        let fd: Int32
        do {
            fd = try UnixSocket.connect(to: socketPath).rawValue
        } catch {
            throw .unreachable(socket: socketPath, reason: "\(error)")
        }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        if case .failure(let error) = nothingOrErrno(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))) {
            close(fd)
            throw .protocolError("cannot set the socket's timeout: \(error)")
        }
        return fd
    }

    static func requestBytes(_ method: String, _ path: String, body: [UInt8]?) -> [UInt8] {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: corral\r\nAccept: application/json\r\nConnection: close\r\n"
        if let body {
            head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n"
        } else if method != "GET" && method != "DELETE" {
            head += "Content-Length: 0\r\n"
        }
        head += "\r\n"
        return Array(head.utf8) + (body ?? [])
    }

    static func send(_ fd: Int32, _ bytes: [UInt8]) throws(ClientError) {
        var offset = 0
        while offset < bytes.count {
            // MSG_NOSIGNAL: a daemon that closed early is an error, not a SIGPIPE.
            let result = bytes[offset...].withUnsafeBytes { buffer in
                retryOnInterrupt { Glibc.send(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL)) }
            }
            switch result {
            case .success(let written): offset += written
            case .failure(let error): throw .protocolError("cannot send the request: \(error)")
            }
        }
    }

    /// Sends one request and reads the whole response.
    public func send(_ method: String, _ path: String, body: [UInt8]? = nil) throws(ClientError) -> ClientResponse {
        let fd = try connect()
        defer { close(fd) }
        try Self.send(fd, Self.requestBytes(method, path, body: body))
        var reader = ResponseReader(fd: fd)
        return try reader.readResponse()
    }

    /// Decodes a successful JSON answer, or throws the daemon's error.
    public func call<T: Decodable>(_ method: String, _ path: String, body: (some Encodable)? = Optional<Int>.none, as type: T.Type)
        throws(ClientError) -> T
    {
        let response = try send(method, path, body: try body.map { body throws(ClientError) in try Self.bytes(of: body) })
        try Self.check(response)
        do {
            return try Self.decoder.decode(T.self, from: Data(response.body))
        } catch {
            throw .protocolError("cannot decode \(T.self) from \(String(decoding: response.body.prefix(200), as: UTF8.self)): \(error)")
        }
    }

    /// For calls without a body in the answer (204).
    public func perform(_ method: String, _ path: String) throws(ClientError) {
        try Self.check(try send(method, path))
    }

    /// For calls whose answer the caller does not need: not decoded (under
    /// emulation a decode of an `AgentRecord` costs milliseconds), only checked.
    public func perform(_ method: String, _ path: String, body: some Encodable) throws(ClientError) {
        try Self.check(try send(method, path, body: try Self.bytes(of: body)))
    }

    /// A request's JSON body.
    static func bytes(of body: some Encodable) throws(ClientError) -> [UInt8] {
        do { return Array(try encoder.encode(body)) } catch { throw .protocolError("cannot encode the request: \(error)") }
    }

    static func check(_ response: ClientResponse) throws(ClientError) {
        guard response.status >= 300 else { return }
        if let error = try? decoder.decode(ErrorBody.self, from: Data(response.body)) {
            throw .api(status: response.status, code: error.error.code, message: error.error.message)
        }
        throw .api(status: response.status, code: "http", message: String(decoding: response.body.prefix(300), as: UTF8.self))
    }

    /// Follows `/v1/events` (Server-Sent Events) until the daemon closes the
    /// stream or the consumer stops iterating.
    public func events(agent: String? = nil, after: Int64? = nil) -> AsyncThrowingStream<ServerSentEvent, any Error> {
        serverSentEvents(Self.eventsPath(agent: agent, after: after))
    }

    /// `/v1/events` with its query.
    static func eventsPath(agent: String?, after: Int64?) -> String {
        var path = "/v1/events"
        var query: [String] = []
        if let agent { query.append("agent=\(agent)") }
        if let after { query.append("after=\(after)") }
        if !query.isEmpty { path += "?" + query.joined(separator: "&") }
        return path
    }

    /// Follows any Server-Sent Events endpoint (`/v1/events`, `/status/events`).
    public func serverSentEvents(_ path: String) -> AsyncThrowingStream<ServerSentEvent, any Error> {
        let socketPath = socketPath
        let request = Self.requestBytes("GET", path, body: nil)
        return AsyncThrowingStream(ServerSentEvent.self) { (continuation: AsyncThrowingStream<ServerSentEvent, any Error>.Continuation) in
            let fd: Int32
            do {
                fd = try UnixSocket.connect(to: socketPath).rawValue
            } catch {
                continuation.finish(throwing: ClientError.unreachable(socket: socketPath, reason: "\(error)"))
                return
            }
            let box = FDBox(fd: fd)
            continuation.onTermination = { _ in box.shutdown() }
            OSThread.start(name: "corral-events") {
                defer { box.close() }
                do {
                    try Self.stream(request, on: fd) { continuation.yield($0) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
        }
    }

    /// A stream followed on a thread of its own (`follow`): `stop` ends it.
    public final class Follower: Sendable {
        let stopped = Latch()
        let socket = Mutex<FDBox?>(nil)
        let ended = Latch()

        /// Ends the stream (or keeps it from opening) and waits for its thread.
        public func stop() {
            stopped.signal()
            socket.withLock { $0?.shutdown() }
            ended.wait()
        }
    }

    /// Follows `/v1/events` for `agent` from `after` on a thread of its own, without Swift
    /// concurrency (a synchronous caller that starts its first task starts the runtime's
    /// thread pool: ≈ 16 ms of `corral run` under emulation). The stream opens after
    /// `delay`, unless stopped first; `onEvent` runs on that thread. Errors end it silently.
    public func follow(
        agent: String, after: Int64, delay: Duration = .zero, onEvent: @escaping @Sendable (ServerSentEvent) -> Void
    ) -> Follower {
        let follower = Follower()
        let socketPath = socketPath
        let request = Self.requestBytes("GET", Self.eventsPath(agent: agent, after: after), body: nil)
        OSThread.start(name: "corral-events") {
            defer { follower.ended.signal() }
            if delay > .zero, follower.stopped.wait(for: delay) { return }
            guard let fd = try? UnixSocket.connect(to: socketPath).rawValue else { return }
            let box = FDBox(fd: fd)
            defer { box.close() }
            follower.socket.withLock { $0 = box }
            // A stop between the connect and the line above found no socket to shut down.
            guard !follower.stopped.wait(for: .zero) else { return }
            try? Self.stream(request, on: fd, onEvent)
        }
        return follower
    }

    /// Sends `request` on `fd` and hands each event of the answer's stream to `onEvent` until it ends.
    static func stream(_ request: [UInt8], on fd: Int32, _ onEvent: (ServerSentEvent) -> Void) throws {
        try send(fd, request)
        var reader = ResponseReader(fd: fd)
        let head = try reader.readHead()
        if head.status >= 300 {
            let body = try reader.readBody(head)
            try check(ClientResponse(status: head.status, headers: head.headers, body: body))
        }
        var pending: [UInt8] = []
        try reader.streamBody(head) { chunk in
            pending += chunk.filter { $0 != 13 }
            while let end = blankLine(in: pending) {
                let block = String(decoding: pending[..<end], as: UTF8.self)
                pending.removeSubrange(..<(end + 2))
                if let event = parseEvent(block) { onEvent(event) }
            }
        }
    }

    /// Index of the first "\n\n" (the end of an event).
    static func blankLine(in bytes: [UInt8]) -> Int? {
        guard bytes.count >= 2 else { return nil }
        for index in 0..<(bytes.count - 1) where bytes[index] == 10 && bytes[index + 1] == 10 { return index }
        return nil
    }

    static func parseEvent(_ block: String) -> ServerSentEvent? {
        var event = ServerSentEvent(id: nil, event: nil, data: "")
        var data: [String] = []
        for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix(":") { continue }
            let field = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(field[0])
            var value = field.count > 1 ? String(field[1]) : ""
            if value.hasPrefix(" ") { value.removeFirst() }
            switch name {
            case "id": event.id = value
            case "event": event.event = value
            case "data": data.append(value)
            default: break
            }
        }
        guard !data.isEmpty else { return nil }
        event.data = data.joined(separator: "\n")
        return event
    }
}

/// Closes a descriptor once, from whichever side ends first.
final class FDBox: Sendable {
    private let fd: Int32
    private let closed = Mutex(false)

    init(fd: Int32) { self.fd = fd }

    /// Wakes a reader blocked on the socket (the stream's consumer went away).
    func shutdown() {
        closed.withLock { closed in
            if !closed { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    func close() {
        closed.withLock { closed in
            if !closed {
                closed = true
                _ = Glibc.close(fd)
            }
        }
    }
}

/// Parses an HTTP/1.1 response from a socket.
struct ResponseReader {
    let fd: Int32
    var buffer: [UInt8] = []

    init(fd: Int32) { self.fd = fd }

    struct Head {
        var status: Int
        var headers: [String: String]
    }

    /// Reads more bytes; false at end of stream.
    mutating func fill() throws(ClientError) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 16384)
        switch chunk.withUnsafeMutableBytes({ bytes in retryOnInterrupt { read(fd, bytes.baseAddress, bytes.count) } }) {
        case .success(0):
            return false
        case .success(let count):
            buffer.append(contentsOf: chunk[0..<count])
            return true
        case .failure(.resourceTemporarilyUnavailable), .failure(.wouldBlock):
            throw .protocolError("the daemon did not answer in time")
        case .failure(let error):
            throw .protocolError("\(error)")
        }
    }

    mutating func readLine() throws(ClientError) -> String {
        while true {
            if let index = buffer.firstIndex(of: 10) {
                var line = Array(buffer[..<index])
                buffer.removeSubrange(...index)
                if line.last == 13 { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            guard try fill() else { throw .protocolError("the connection closed in the middle of a response") }
        }
    }

    mutating func readHead() throws(ClientError) -> Head {
        let statusLine = try readLine()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw .protocolError("not an HTTP response: '\(statusLine.prefix(80))'")
        }
        var headers: [String: String] = [:]
        while true {
            let line = try readLine()
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingSpaces()
        }
        return Head(status: status, headers: headers)
    }

    mutating func readExactly(_ count: Int) throws(ClientError) -> [UInt8] {
        while buffer.count < count {
            guard try fill() else { throw .protocolError("the connection closed after \(buffer.count) of \(count) bytes") }
        }
        let bytes = Array(buffer[..<count])
        buffer.removeSubrange(..<count)
        return bytes
    }

    mutating func readBody(_ head: Head) throws(ClientError) -> [UInt8] {
        var body: [UInt8] = []
        try streamBody(head) { body.append(contentsOf: $0) }
        return body
    }

    /// Delivers the body as it arrives (chunked, by Content-Length, or to end of stream).
    mutating func streamBody(_ head: Head, _ deliver: ([UInt8]) throws(ClientError) -> Void) throws(ClientError) {
        if head.headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            while true {
                let sizeLine = try readLine()
                guard let size = Int(sizeLine.split(separator: ";").first.map(String.init)?.trimmingSpaces() ?? "", radix: 16) else {
                    throw .protocolError("bad chunk size '\(sizeLine.prefix(40))'")
                }
                if size == 0 {
                    _ = try? readLine()
                    return
                }
                try deliver(try readExactly(size))
                _ = try readLine()
            }
        } else if let length = head.headers["content-length"].flatMap({ Int($0) }) {
            try deliver(try readExactly(length))
        } else {
            if !buffer.isEmpty {
                try deliver(buffer)
                buffer.removeAll()
            }
            while try fill() {
                try deliver(buffer)
                buffer.removeAll()
            }
        }
    }

    mutating func readResponse() throws(ClientError) -> ClientResponse {
        let head = try readHead()
        let body = try readBody(head)
        return ClientResponse(status: head.status, headers: head.headers, body: body)
    }
}
