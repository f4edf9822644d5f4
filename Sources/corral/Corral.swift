import ArgumentParser
import CorralCore

#if canImport(Glibc)
    import Glibc
#endif

@main
struct Corral: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "corral",
        abstract: "Run agents under cgroup v2 quotas and keep the host fair when they misbehave.",
        discussion: """
            Each quota group is a cgroup subtree and each agent a leaf cgroup in it; soft and hard
            limits land in memory.high/memory.max, cpu.max and pids.max, enforced by the kernel.

            Start with `corral doctor` to see whether this host can do it, then
            `corral run -- COMMAND` to run one command under the standard_agent quota.

            Built-in groups (a --config file can redefine them or add groups):
              lightweight_agent        memory 50 MB soft / 100 MB hard, cpu 5% / 10%, processes 10 / 20
              standard_agent           memory 200 MB / 500 MB, cpu 15% / 30%, processes 50 / 100
              heavy_computation_agent  memory 1 GB / 2 GB, cpu 40% / 80%, processes 100 / 200
            """,
        version: CorralVersion.current,
        subcommands: [
            Run.self, Serve.self, AgentsCommand.self, GroupsCommand.self, EventsCommand.self, HistoryCommand.self,
            DegradationCommand.self, RecommendCommand.self, ReportCommand.self, CapacityCommand.self, Doctor.self,
            ConfigCommand.self,
        ]
    )

    /// `corral run` is parsed by itself first (`RunOptions.parsed`): building the
    /// whole command tree costs a start-up that every run pays (swift-argument-parser
    /// reflects over every subcommand; see README "Launch latency"). Help,
    /// completion and every parse error go through the full tree, so they
    /// read exactly as they would without this shortcut.
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "run", DaemonRun.likelyThroughDaemon(Array(arguments.dropFirst())) { DaemonRun.warmCodecs() }
        if arguments.first == "run", let options = RunOptions.parsed(Array(arguments.dropFirst())) {
            do {
                try options.run()
                Corral.exit()
            } catch let status as ExitCode {
                Glibc.exit(status.rawValue)  // the command's status: nothing to print
            } catch {
                Corral.exit(withError: error)
            }
        }
        Corral.main(nil)
    }
}
