import CorralCore
import CorralLinux
import CorralTestSupport
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `corral report` and `corral recommend`: bad input is refused before the
/// daemon is contacted (the socket given does not exist, so contacting it
/// would say "cannot reach"), and an unknown agent is an error, not an
/// empty answer.
@Suite("corral report and recommend")
struct AnalyticsCLITests {
    static let absentSocket = "/nonexistent/corral-analytics-test.sock"

    @Test(arguments: [
        (["report", "--since", "banana"], "--since 'banana': not a number in 'banana'"),
        (["report", "--since", "banana"], "accepted: a number with a unit: us, ms, s, m, h, d"),
        (["report", "--since", "3w"], "unknown duration unit 'w'"),
        (["report", "--since", "0"], "--since '0': the window must be longer than zero"),
        (["report", "--since", "0h"], "--since '0h': the window must be longer than zero"),
        (["report", "--since=-5m"], "negative value in '-5m'"),
        (["report", "--format", "pdf"], "'pdf'"),
        (["report", "--agent", "../x"], "must start with a letter or digit"),
        (["recommend", "a/b"], "contains '/'"),
        (["recommend", "--apply", "memory"], "--apply needs the agent"),
        (["recommend", "crawler", "--apply", "gpu"], "--apply 'gpu': not a resource; use one of"),
    ])
    func badInputIsRefusedBeforeTheDaemon(arguments: [String], message: String) async throws {
        let result = try await CLI.run(arguments + ["--socket", Self.absentSocket])
        #expect(result.exitStatus == 64, "\(result)")
        #expect(result.stderr.contains(message), "\(result)")
        #expect(!result.stderr.contains("cannot reach"), "validated before contacting the daemon: \(result)")
        #expect(!result.stderr.contains("Fatal error"))
    }

    @Test func aBadFormatNamesTheFormats() async throws {
        let result = try await CLI.run(["report", "--format", "pdf", "--socket", Self.absentSocket])
        #expect(result.exitStatus == 64)
        for format in ["table", "json", "html"] { #expect(result.stderr.contains(format), "\(result)") }
    }

    /// Valid input does go to the daemon (the counterpart of the checks above).
    @Test func validInputContactsTheDaemon() async throws {
        for arguments in [["report", "--since", "2d", "--agent", "ghost"], ["recommend", "ghost"]] {
            let result = try await CLI.run(arguments + ["--socket", Self.absentSocket])
            #expect(result.exitStatus == 125, "\(result)")
            #expect(result.stderr.contains("cannot reach the Corral daemon at \(Self.absentSocket)"), "\(result)")
        }
    }

    /// The help lists the units the parser takes.
    @Test func sinceHelpListsTheAcceptedUnits() async throws {
        let help = try await CLI.run(["report", "--help"])
        #expect(help.exitStatus == 0)
        let flat = help.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(flat.contains(Quantity.acceptedDurations), "\(help.stdout)")
        #expect(flat.contains("more than zero"))
    }

    /// The daemon's 404 for an unknown agent ends `corral recommend` with
    /// its message and status 3, also after `--run` (which asks for the
    /// agent's own recommendations instead of filtering the run's).
    @Test func anUnknownAgentIsAnErrorNotAnEmptyList() async throws {
        let message = "no agent 'ghost'; corral agents list shows the agents"
        let daemon = try FakeDaemon { request in
            if request.hasPrefix("POST /v1/analytics/run ") { return (200, #"{"recommendations": []}"#) }
            if request.contains("ghost") { return (404, #"{"error": {"code": "not_found", "message": "\#(message)"}}"#) }
            return (200, #"{"recommendations": []}"#)
        }
        defer { daemon.stop() }
        for arguments in [["recommend", "ghost"], ["recommend", "ghost", "--run"], ["report", "--agent", "ghost"]] {
            let result = try await CLI.run(arguments + ["--socket", daemon.socket])
            #expect(result.exitStatus == 3, "\(arguments): \(result)")
            #expect(result.stderr.contains(message), "\(arguments): \(result)")
            #expect(!result.stdout.contains("no recommendations"), "\(arguments): \(result)")
        }
        let requests = daemon.requests
        #expect(requests.count == 4, "\(requests)")
        #expect(
            requests.prefix(3) == ["GET /v1/recommendations?agent=ghost", "POST /v1/analytics/run", "GET /v1/recommendations?agent=ghost"])
        #expect(requests.last?.hasPrefix("GET /v1/report?since=") == true && requests.last?.hasSuffix("&agent=ghost") == true)

        // A known agent without recommendations is not an error.
        let known = try await CLI.run(["recommend", "crawler", "--socket", daemon.socket])
        #expect(known.exitStatus == 0, "\(known)")
        #expect(known.stdout.contains("no recommendations for crawler"))
    }
}

/// A stand-in for the daemon on a Unix socket: answers each request with
/// what `answer` returns for its request line ("METHOD /path") and records
/// the request lines.
final class FakeDaemon: Sendable {
    let socket: String
    private let fd: Int32
    private let recorded = Mutex<[String]>([])

    var requests: [String] { recorded.withLock { $0 } }

    init(answer: @escaping @Sendable (String) -> (Int, String)) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("corral-fake-\(UUID().uuidString.prefix(8)).sock").path
        let fd = try valueOrErrno(Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)).get()
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in path.utf8.prefix(buffer.count - 1).enumerated() { buffer[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if case .failure(let error) = nothingOrErrno(bound).flatMap({ nothingOrErrno(listen(fd, 8)) }) {
            close(fd)
            throw error
        }
        self.fd = fd
        socket = path
        let thread = Thread { [self] in serve(answer) }
        thread.start()
    }

    private func serve(_ answer: (String) -> (Int, String)) {
        while true {
            guard case .success(let client) = retryOnInterrupt({ accept(fd, nil, nil) }) else { return }  // stopped
            var head: [UInt8] = []
            var byte: UInt8 = 0
            while !head.suffix(4).elementsEqual("\r\n\r\n".utf8), read(client, &byte, 1) == 1 { head.append(byte) }
            let line = String(decoding: head.prefix { $0 != 13 }, as: UTF8.self)
            let request = line.split(separator: " ").prefix(2).joined(separator: " ")
            recorded.withLock { $0.append(request) }
            let (status, body) = answer(request + " ")
            let response =
                "HTTP/1.1 \(status) \(status == 200 ? "OK" : "Error")\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
            var bytes = Array(response.utf8)[...]
            while !bytes.isEmpty {
                let written = bytes.withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
                if written <= 0 { break }
                bytes = bytes.dropFirst(written)
            }
            close(client)
        }
    }

    /// Stops accepting (the serving thread's `accept` fails and it ends).
    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        unlink(socket)
    }
}
