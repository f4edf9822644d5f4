import CorralCore
import CorralTestSupport
import Foundation
import Testing

/// `corral doctor` run on this host: it must report only what it found.
/// Before, it judged features from the kernel version and told a hybrid
/// host (no memory controller in cgroup v2) "memory.peak available".
@Suite("corral doctor on this host")
struct DoctorCLITests {
    struct Report: Decodable {
        struct Check: Decodable {
            var name: String
            var status: String
            var detail: String
            var fix: String?
            var basis: String?
        }

        var ready: Bool
        var cgroupMode: String
        var checks: [Check]

        func check(_ name: String) -> Check? { checks.first { $0.name == name } }
    }

    static func report() async throws -> Report {
        let result = try await CLI.run(["doctor", "--json"])
        #expect(result.exitStatus == 0 || result.exitStatus == 1, "\(result)")
        #expect(!result.stderr.contains("Fatal error"))
        return try CorralJSON.decode(Report.self, from: result.stdout)
    }

    static let features = ["clone3 into cgroup", "cgroup.kill", "cgroup.freeze", "memory.peak", "pids.peak", "PSI"]

    /// Every feature that `ok` was decided from a file names that file, and it exists.
    @Test func anAvailableFeatureNamesAFileThatExists() async throws {
        let report = try await Self.report()
        for name in Self.features {
            let check = try #require(report.check(name), "no check for \(name)")
            #expect(["file", "kernel version"].contains(check.basis ?? ""), "\(name): \(check.basis ?? "no basis")")
            guard check.status == "ok", check.basis == "file" else { continue }
            #expect(check.detail.hasSuffix(" exists"), "\(name): \(check.detail)")
            let path = String(check.detail.dropLast(" exists".count))
            #expect(path.hasPrefix("/"), "\(name): \(check.detail)")
            #expect(FileManager.default.fileExists(atPath: path), "\(name) claims \(path)")
        }
        // clone3 has no side-effect-free probe: the report says it went by the version.
        let clone3 = try #require(report.check("clone3 into cgroup"))
        #expect(clone3.basis == "kernel version")
        if clone3.status == "ok" { #expect(clone3.detail.contains("not probed")) }
    }

    /// Isolation: seccomp as libseccomp probed this kernel (filters and user
    /// notification are there on every kernel CI runs), cgroup namespaces as root.
    @Test func isolationIsReportedFromWhatTheKernelShows() async throws {
        let report = try await Self.report()
        let filters = try #require(report.check("seccomp filters"))
        #expect(filters.status == "ok" && filters.detail.contains("API level"), "\(filters.detail)")
        let notification = try #require(report.check("seccomp user notification"))
        #expect(notification.status == "ok", "\(notification.detail)")
        let namespaces = try #require(report.check("cgroup namespaces"))
        #expect(namespaces.status == (geteuid() == 0 ? "ok" : "warning"), "\(namespaces.detail)")
        // nsdelegate is only asked of a unified hierarchy (on a hybrid host there is none to ask).
        #expect((report.check("nsdelegate") != nil) == (report.cgroupMode == "unified"))
    }

    /// This machine's cgroup v2 (at /sys/fs/cgroup/unified) has no memory
    /// or pids controller, so memory.peak and pids.peak cannot exist there.
    @Test(.enabled(if: CLI.hostIsHybrid && !CLI.hostIsUnified))
    func aHybridHostIsNotToldItHasMemoryPeak() async throws {
        let report = try await Self.report()
        #expect(report.cgroupMode == "hybrid")
        for name in ["memory.peak", "pids.peak"] {
            let check = try #require(report.check(name))
            #expect(check.status == "warning", "\(name): \(check.status) \(check.detail)")
            #expect(check.detail.hasPrefix("absent: cgroup v2 has no"), "\(check.detail)")
            #expect(check.detail.contains("/sys/fs/cgroup/unified/cgroup.controllers"), "\(check.detail)")
        }
        // cgroup.kill and cgroup.freeze live only below the root: with no
        // child cgroup in the v2 hierarchy they are "not checked", never "ok"
        // on the strength of the kernel version.
        let children = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup/unified")) ?? []
        let hasChild = children.contains { FileManager.default.fileExists(atPath: "/sys/fs/cgroup/unified/\($0)/cgroup.procs") }
        for name in ["cgroup.kill", "cgroup.freeze"] {
            let check = try #require(report.check(name))
            if hasChild {
                #expect(check.status != "unchecked", "\(check.detail)")
            } else {
                #expect(check.status == "unchecked", "\(name): \(check.status) \(check.detail)")
                #expect(check.detail.hasPrefix("not checked: /sys/fs/cgroup/unified has no child cgroup"), "\(check.detail)")
            }
        }
        let text = try await CLI.run(["doctor"])
        #expect(text.exitStatus == 1)
        #expect(!text.stderr.contains("memory.peak         available"))
        #expect(!text.stderr.contains("available\n"), "no bare 'available' verdicts: \(text.stderr)")
        #expect(text.stderr.contains("warn  memory.peak"))
    }

    /// The help promises exactly the features the report contains.
    @Test func theHelpPromisesOnlyWhatIsChecked() async throws {
        let help = try await CLI.run(["doctor", "--help"])
        #expect(help.exitStatus == 0)
        let text = help.stdout.replacingOccurrences(of: "\n", with: " ")
        let report = try await Self.report()
        for name in ["cgroup.kill", "cgroup.freeze", "memory.peak", "pids.peak", "PSI", "clone3"] {
            #expect(text.contains(name), "help does not mention \(name)")
            #expect(report.checks.contains { $0.name.hasPrefix(name) }, "help mentions \(name), the report has no check for it")
        }
        #expect(text.contains("kernel version"), "help says clone3 is judged from the version")
    }

    /// The CLI does not link libsystemd (only corrald does): its start-up would
    /// load it and the six libraries it needs on every `corral run`.
    @Test func theCLIDoesNotLinkLibsystemd() async throws {
        let result = try await Subprocess.execute("/usr/bin/readelf", ["-d", CLI.binary], timeout: 60)
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("(NEEDED)") && result.stdout.contains("libseccomp"), "readelf shows the needed libraries")
        #expect(!result.stdout.contains("libsystemd"), "\(result.stdout)")
    }

    /// The libsystemd line shows the library's file name and says that is what it is.
    @Test func libsystemdIsLabelledAsTheLibraryFileName() async throws {
        let check = try #require(try await Self.report().check("libsystemd"))
        #expect(check.detail.contains("libsystemd"))
        #expect(check.detail.contains("(library file name; libsystemd reports no systemd version)"), "\(check.detail)")
    }
}
