public import Foundation
import Synchronization

/// What a finished command did.
public struct CommandResult: Sendable, CustomStringConvertible {
    public var status: Int32
    /// True when the process died of a signal (`status` is then the signal number).
    public var signaled: Bool
    public var stdout: String
    public var stderr: String
    public var seconds: Double

    /// The shell convention: exit code, or 128 + signal.
    public var exitStatus: Int32 { signaled ? 128 + status : status }

    public var description: String {
        "exit \(exitStatus) after \(seconds) s\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)"
    }
}

/// Runs programs for the tests that drive the real `corral` binary.
public enum Subprocess {
    /// Starts `path` with `arguments`; stdout and stderr go to temporary files
    /// (no pipe can fill up and block the child).
    public static func start(
        _ path: String, _ arguments: [String], environment: [String: String]? = nil
    ) throws -> Running {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let directory = FileManager.default.temporaryDirectory
        let out = directory.appendingPathComponent("corral-test-\(UUID().uuidString).out")
        let err = directory.appendingPathComponent("corral-test-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let outHandle = try FileHandle(forWritingTo: out)
        let errHandle = try FileHandle(forWritingTo: err)
        // The child has its own copies once it runs; ours are closed at once,
        // not when Foundation gets round to releasing the Process (a long e2e
        // run otherwise runs out of descriptors).
        defer {
            try? outHandle.close()
            try? errHandle.close()
        }
        process.standardOutput = outHandle
        process.standardError = errHandle
        process.standardInput = FileHandle.nullDevice
        // The moment of exit, taken by Foundation's own thread when the child
        // is reaped: the waiting task may be resumed later than that.
        let ended = ExitMoment()
        process.terminationHandler = { _ in ended.moment.withLock { $0 = Date() } }
        let start = Date()
        try process.run()
        return Running(process: process, out: out, err: err, start: start, ended: ended)
    }

    /// Runs to completion (killing the process after `timeout` seconds),
    /// blocking the calling thread: for threads of a test's own, never a task
    /// (see `execute`).
    public static func run(
        _ path: String, _ arguments: [String], environment: [String: String]? = nil, timeout: Double = 600
    ) throws -> CommandResult {
        try start(path, arguments, environment: environment).wait(timeout: timeout)
    }

    /// Runs to completion (killing the process after `timeout` seconds),
    /// waiting without holding a thread of the cooperative pool. With two
    /// cores the pool has two threads: two tests blocked in the synchronous
    /// form starved every other test for as long as their commands ran (a
    /// CI run lost 30 s that way, and every deadline in the meantime).
    public static func execute(
        _ path: String, _ arguments: [String], environment: [String: String]? = nil, timeout: Double = 600
    ) async throws -> CommandResult {
        try await start(path, arguments, environment: environment).finished(timeout: timeout)
    }

    /// When the child exited; written by Foundation's thread that reaps it.
    final class ExitMoment: Sendable {
        let moment = Mutex<Date?>(nil)
    }

    public final class Running: @unchecked Sendable {
        public let process: Process
        let out: URL
        let err: URL
        let start: Date
        let ended: ExitMoment

        init(process: Process, out: URL, err: URL, start: Date, ended: ExitMoment) {
            self.process = process
            self.out = out
            self.err = err
            self.start = start
            self.ended = ended
        }

        public var pid: Int32 { process.processIdentifier }

        /// What the process has written to stdout so far.
        public var stdoutSoFar: String {
            (try? String(contentsOf: out, encoding: .utf8)) ?? ""
        }

        /// What the process has written to stderr so far.
        public var stderrSoFar: String {
            (try? String(contentsOf: err, encoding: .utf8)) ?? ""
        }

        public func signal(_ signal: Int32) {
            kill(process.processIdentifier, signal)
        }

        /// As `wait`, asleep in the task between looks instead of in the thread.
        public func finished(timeout: Double = 600) async -> CommandResult {
            let deadline = Date().addingTimeInterval(timeout)
            while process.isRunning && Date() < deadline { try? await Task.sleep(for: .milliseconds(10)) }
            return wait(timeout: 0)
        }

        public func wait(timeout: Double = 600) -> CommandResult {
            let deadline = Date().addingTimeInterval(timeout)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
            let stdout = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
            let stderr = (try? String(contentsOf: err, encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(at: out)
            try? FileManager.default.removeItem(at: err)
            return CommandResult(
                status: process.terminationStatus, signaled: process.terminationReason == .uncaughtSignal,
                stdout: stdout, stderr: stderr, seconds: (ended.moment.withLock { $0 } ?? Date()).timeIntervalSince(start))
        }
    }
}

/// JSON as `corral --json` writes it (snake_case keys).
public enum CorralJSON {
    /// Decodes the last line of `output`: `corral run --json` writes its
    /// summary as one line after whatever the command printed.
    public static func decodeLastLine<T: Decodable>(_ type: T.Type, from output: String) throws -> T {
        let line = output.split(separator: "\n").last.map(String.init) ?? ""
        return try decode(type, from: line)
    }

    public static func decode<T: Decodable>(_ type: T.Type, from text: String) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(type, from: Data(text.utf8))
    }
}
