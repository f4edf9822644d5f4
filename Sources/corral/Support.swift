import ArgumentParser
import CorralCgroup
import CorralConfig
import CorralCore
import CorralLinux
import SystemPackage

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

/// Writes all of `text` to file descriptor `fd` (1: stdout, 2: stderr). A
/// closed pipe or a full disk loses the text: there is nowhere left to say so.
func writeOut(_ text: String, to fd: Int32 = 1) {
    do { _ = try FileDescriptor(rawValue: fd).writeAll(text.utf8) } catch {}
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
    func problem(_ message: String) -> ConfigError {
        ConfigError(file: path, issues: [ConfigIssue(line: 1, column: 1, key: "", value: nil, message: message, accepted: nil)])
    }
    let file: FileDescriptor
    do {
        file = try FileDescriptor.open(path, .readOnly, options: [.closeOnExec])
    } catch {
        return .failure(problem("cannot open: \(error)"))
    }
    defer { do { try file.close() } catch {} }
    let bytes: [UInt8]
    do {
        bytes = try file.readBytesToEnd(maximumBytes: 4 << 20)
    } catch .fileTooLarge {
        return .failure(problem("larger than 4 MiB; this is not a Corral configuration"))
    } catch {
        return .failure(problem("cannot read: \(error)"))
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
        Self.resolve(path, configuration)
    }

    static func resolve(_ path: String?, _ configuration: CorralConfiguration) -> String {
        path ?? configuration.cgroupRoot ?? CgroupRootLocation.defaultRootPath
    }
}
