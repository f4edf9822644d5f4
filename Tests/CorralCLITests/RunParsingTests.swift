import ArgumentParser
import Foundation
import Testing

@testable import corral

/// `corral run` reads its plain command lines itself (`RunOptions.fastParse`) and leaves
/// everything else to swift-argument-parser (`Run`). Whatever the fast parser accepts
/// must come out exactly as `Run` parses it, validated the same way.
@Suite("corral run's own parser") struct RunParsingTests {
    /// `Run` alone, as the whole tree would parse `corral run ARGUMENTS` (validate included).
    static func reference(_ arguments: [String]) -> RunOptions? {
        (try? Run.parseAsRoot(arguments) as? Run)?.options
    }

    /// The fast parser's reading, validated as `parsed` does; .some(nil): read, but invalid.
    static func fast(_ arguments: [String]) -> RunOptions?? {
        guard var options = RunOptions.fastParse(arguments) else { return nil }
        do {
            try options.validate()
            return .some(options)
        } catch {
            return .some(nil)
        }
    }

    /// Command lines a user writes, which the fast parser must read itself.
    static let plain: [[String]] = [
        ["--", "/bin/true"],
        ["--", "python3", "agent.py", "--verbose", "-x"],
        ["python3", "agent.py"],
        ["--name", "bench", "--", "/bin/true"],
        ["--group", "lightweight_agent", "--name", "crawler-1", "--", "./crawler"],
        ["--memory-max", "256M", "--cpu", "50%", "--pids-max", "64", "--", "make", "-j8"],
        ["--memory-high=100M", "--memory-max=200M", "--", "x"],
        ["--summary-file", "run.json", "--", "./batch-job"],
        ["--json", "--", "./batch-job"],
        ["--user", "nobody", "--seccomp", "strict", "--", "./untrusted-tool"],
        ["--no-seccomp", "--quiet", "--no-daemon", "--", "sh", "-c", "exit 3"],
        ["--socket", "/tmp/c.sock", "--priority", "7", "--config", "/etc/corral/corral.yaml", "--", "x"],
        ["--cgroup-root", "/sys/fs/cgroup/corral", "--", "x"],
        ["--quiet", "python3", "-v", "--json"],
        ["--", "--", "x"],
        ["--name=a.b_c-1", "--group=heavy_computation", "--cpu=250%", "--", "x"],
    ]

    /// Everything else worth comparing: whichever parser reads them, the answers agree.
    static let others: [[String]] = [
        [], ["--"], ["--name", "x"], ["--name"], ["--name", "--", "x"], ["--name=", "--", "x"], ["--name", "", "--", "x"],
        ["--name", "-x", "--", "y"], ["--name=-x", "--", "y"], ["--name", "a", "--name", "b", "--", "x"],
        ["--json", "--json", "--", "x"], ["--json=1", "--", "x"], ["-h"], ["--help"], ["--", "-h"], ["-q", "--", "x"],
        ["--nope", "--", "x"], ["--no-seccomp", "--seccomp", "strict", "--", "x"], ["--no-seccomp", "--seccomp", "none", "--", "x"],
        ["--name", "bad/name", "--", "x"], ["--name", "-", "--", "x"], ["--memory-max", "lots", "--", "x"],
        ["--memory-max", "0", "--", "x"], ["--cpu", "0.01%", "--", "x"], ["--cpu", "30", "--", "x"], ["--pids-max", "1.5", "--", "x"],
        ["--priority", "11", "--", "x"], ["--priority", "high", "--", "x"], ["--seccomp", "paranoid", "--", "x"],
        ["--user", "", "--", "x"], ["", "--", "x"], ["x", "--name", "y"], ["--memory-high", "1G", "--", "x"],
        ["--quiet", "--", "--quiet"], ["--json", "-", "x"], ["--socket=", "x"], ["--=x", "--", "y"], ["---name", "x", "--", "y"],
        ["--socket", "-s", "--", "x"], ["--summary-file", "-", "--", "x"], ["--config", "--json", "--", "x"],
    ]

    @Test(arguments: plain) func plainCommandLinesAreReadByTheFastParser(_ arguments: [String]) throws {
        let fast = try #require(Self.fast(arguments), "the fast parser left \(arguments) to swift-argument-parser")
        let options = try #require(fast, "the fast parser found \(arguments) invalid")
        #expect(options == Self.reference(arguments))
        #expect(RunOptions.parsed(arguments) == options)
    }

    @Test(arguments: plain + others) func bothParsersAgree(_ arguments: [String]) {
        let reference = Self.reference(arguments)
        if let fast = Self.fast(arguments) {
            #expect(fast == reference, "\(arguments)")
        }
        #expect(RunOptions.parsed(arguments) == reference, "\(arguments)")
    }

    /// Each option `Run` defines is one the fast parser knows, as an option or as a flag
    /// as `Run` has it: a new option is read by `Run` (slowly) until it is added here.
    @Test func theFastParserKnowsEveryOptionOfRun() throws {
        let help = try #require(JSONSerialization.jsonObject(with: Data(Run._dumpHelp().utf8)) as? [String: Any])
        let command = try #require(help["command"] as? [String: Any])
        let arguments = try #require(command["arguments"] as? [[String: Any]])
        var options = Set<String>()
        var flags = Set<String>()
        for argument in arguments {
            let kind = argument["kind"] as? String
            let names = (argument["names"] as? [[String: Any]] ?? []).filter { $0["kind"] as? String == "long" }.compactMap {
                $0["name"] as? String
            }
            for name in names where name != "help" {
                if kind == "option" { options.insert(name) } else if kind == "flag" { flags.insert(name) }
            }
        }
        #expect(options == RunOptions.valueOptionNames)
        #expect(flags == RunOptions.flagNames)
    }
}
