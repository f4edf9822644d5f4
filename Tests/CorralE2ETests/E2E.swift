import CorralCgroup
import CorralCore
import CorralTestSupport
import Foundation
import Testing

/// The real-kernel suite: enabled by scripts/e2e (CORRAL_E2E=1), which runs it
/// in a VM with a pure cgroup v2 kernel or natively on a unified host as root.
/// Once enabled, a host that cannot run it makes every test fail, never skip.
enum E2E {
    static let enabled = ProcessInfo.processInfo.environment["CORRAL_E2E"] == "1"
    static let mount = "/sys/fs/cgroup"

    struct NotReady: Error, CustomStringConvertible {
        var description: String
    }

    /// The `corral` binary under test and the load generator.
    static func binaries() throws -> (corral: String, stress: String) {
        let environment = ProcessInfo.processInfo.environment
        guard let corral = environment["CORRAL_BINARY"], let stress = environment["CORRAL_STRESS"] else {
            throw NotReady(description: "CORRAL_BINARY and CORRAL_STRESS must name the binaries (scripts/e2e sets them)")
        }
        for path in [corral, stress] where !FileManager.default.isExecutableFile(atPath: path) {
            throw NotReady(description: "\(path) is not an executable file")
        }
        guard geteuid() == 0 else { throw NotReady(description: "the e2e suite must run as root") }
        let controllers = (try? String(contentsOfFile: mount + "/cgroup.controllers", encoding: .utf8)) ?? ""
        for needed in ["memory", "cpu", "pids"]
        where !controllers.split(separator: " ").map({ $0.trimmingCharacters(in: .whitespacesAndNewlines) }).contains(needed) {
            throw NotReady(description: "\(mount) is not a cgroup v2 hierarchy with \(needed) (controllers: '\(controllers)')")
        }
        return (corral, stress)
    }

    /// A fresh cgroup root for one test, checked to be absent before and after.
    static func root(_ name: String) -> String { "\(mount)/corral-e2e-\(name)" }

    static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    static func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

    /// Writes `value` to a cgroup file as one write(2), as an operator's `echo` would; whether it took.
    static func write(_ value: String, to path: String) -> Bool {
        let fd = open(path, O_WRONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        return bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == bytes.count
    }

    /// Runs `corral run` with `arguments` and decodes its --json summary.
    static func run(_ arguments: [String], timeout: Double = 900) throws -> (CommandResult, RunSummary?) {
        let (corral, _) = try binaries()
        let result = try Subprocess.run(corral, ["run"] + arguments, timeout: timeout)
        let summary = try? CorralJSON.decodeLastLine(RunSummary.self, from: result.stdout)
        return (result, summary)
    }

    /// Waits until `condition` holds (polling every 20 ms) or `timeout` passes.
    static func eventually(timeout: Double = 60, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    /// Whether a process exists and is not a zombie.
    static func alive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0, let stat = read("/proc/\(pid)/stat") else { return false }
        guard let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(close, offsetBy: 2)]
        return state != "Z" && state != "X"
    }

    /// Removes a daemon's root: its (empty) group cgroups, supervisor and the root itself.
    static func removeEmptyTree(_ root: String) {
        for child in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: root + "/" + child, isDirectory: &isDirectory), isDirectory.boolValue {
                rmdir(root + "/" + child)
            }
        }
        rmdir(root)
    }

    static func report(_ line: String) {
        print("[e2e] \(line)")
    }
}
