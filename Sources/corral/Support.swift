import ArgumentParser
import CorralCgroup
import CorralConfig
import CorralCore

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#endif

/// Exit statuses of `corral` itself (a run exits with its command's status).
enum ExitStatus {
    /// Corral could not do what was asked (host, config, cgroup errors): like env(1) and docker.
    static let failure: Int32 = 125
    /// Invalid command line (ArgumentParser's usage errors use 64 too).
    static let usage: Int32 = 64
}

/// Writes all of `text` to file descriptor `fd` (1: stdout, 2: stderr).
func writeOut(_ text: String, to fd: Int32 = 1) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if written < 0 {
            if errno == EINTR { continue }
            return
        }
        bytes = bytes.dropFirst(written)
    }
}

/// Writes a message for people to stderr.
func printError(_ message: String) {
    writeOut(message.hasSuffix("\n") ? message : message + "\n", to: 2)
}

/// Prints `corral: <message>` to stderr and exits with `status`, never a backtrace.
func fail(_ message: String, status: Int32 = ExitStatus.failure) -> ExitCode {
    printError("corral: " + message)
    return ExitCode(status)
}

/// Stable JSON of `value` (snake_case keys, sorted) followed by a newline.
func encodeJSON<T: Encodable>(_ value: T, pretty: Bool = true) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
    encoder.keyEncodingStrategy = .convertToSnakeCase
    return String(decoding: try encoder.encode(value), as: UTF8.self) + "\n"
}

/// Pretty JSON of `value` on stdout.
func printJSON<T: Encodable>(_ value: T) throws {
    writeOut(try encodeJSON(value))
}

/// Reads a whole text file, or says why not.
func readTextFile(_ path: String) -> Result<String, ConfigError> {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    func problem(_ message: String) -> ConfigError {
        ConfigError(file: path, issues: [ConfigIssue(line: 1, column: 1, key: "", value: nil, message: message, accepted: nil)])
    }
    guard fd >= 0 else {
        return .failure(problem("cannot open: \(String(cString: strerror(errno)))"))
    }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == EINTR { continue }
            return .failure(problem("cannot read: \(String(cString: strerror(errno)))"))
        }
        if count == 0 { break }
        bytes.append(contentsOf: chunk[0..<count])
        if bytes.count > 4 << 20 { return .failure(problem("larger than 4 MiB; this is not a Corral configuration")) }
    }
    guard let text = String(validating: bytes, as: UTF8.self) else {
        return .failure(problem("not UTF-8 text"))
    }
    return .success(text)
}

/// The configuration to use: the file's, or the built-in groups.
func loadConfiguration(_ path: String?) throws -> CorralConfiguration {
    guard let path else { return .builtIn }
    switch readTextFile(path) {
    case .failure(let error):
        throw fail(error.issues.first.map { "\(path): \($0.message)" } ?? "\(path): cannot read")
    case .success(let text):
        do {
            return try ConfigLoader.load(text, file: path)
        } catch {
            throw fail(error.description)
        }
    }
}

/// Options shared by the commands that touch the cgroup tree.
struct CgroupRootOption: ParsableArguments {
    @Option(
        name: .customLong("cgroup-root"),
        help: ArgumentHelp(
            "The cgroup directory Corral owns (created when missing; its parent must be in a cgroup v2 hierarchy).",
            valueName: "DIR"))
    var path: String?

    /// The flag, then the configuration's `cgroup_root`, then the default.
    func resolve(_ configuration: CorralConfiguration) -> String {
        path ?? configuration.cgroupRoot ?? CgroupRootLocation.defaultRootPath
    }
}
