import ArgumentParser
import CorralConfig
import CorralCore

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Work with Corral's YAML configuration.",
        subcommands: [Validate.self]
    )

    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "validate",
            abstract: "Check a configuration file; print OK or every error with line:column.",
            discussion: """
                Every error names the line and column, the key, the bad value and what is accepted.
                Unknown keys, soft limits above hard ones, negative or unparsable sizes and unknown
                actions are errors. Exits 0 when the file is valid, 1 when it is not; nothing is
                applied either way.

                Example file:
                  cgroup_root: /sys/fs/cgroup/corral
                  intervals: {sampling: 1s, analytics: 5m}
                  escalation:
                    delays: {warn: 0s, throttle: 30s, suspend: 5m, terminate: 10m}
                    termination_grace: 5s
                  groups:
                    standard_agent:              # redefine part of a built-in group
                      limits:
                        memory: {hard: 1G}
                    gpu_batch:                   # a new group
                      description: Batch jobs
                      limits:
                        memory: {soft: 4G, hard: 6G, action: suspend}
                        cpu: {soft: 150%, hard: 200%, burst: 300%, action: throttle}
                        processes: {soft: 200, hard: 400, action: terminate}
                      totals: {memory: 24G, cpu: 800%, processes: 2000}
                  agents:
                    crawler-1:
                      group: lightweight_agent
                      limits:
                        processes: {hard: 40}
                """
        )

        @Argument(help: ArgumentHelp("The YAML file to check.", valueName: "FILE"))
        var file: String

        @Flag(name: .long, help: "Print the result as JSON on stdout.")
        var json = false

        struct Result: Encodable {
            var file: String
            var valid: Bool
            var groups: [String]
            var errors: [Issue]
        }

        struct Issue: Encodable {
            var line: Int
            var column: Int
            var key: String
            var value: String?
            var message: String
            var accepted: String?
        }

        func run() throws {
            let outcome: Swift.Result<CorralConfiguration, ConfigError> = readTextFile(file).flatMap { text in
                Swift.Result { () throws(ConfigError) in try ConfigLoader.load(text, file: file) }
            }
            switch outcome {
            case .success(let configuration):
                if json {
                    try printJSON(Result(file: file, valid: true, groups: configuration.groupNames, errors: []))
                } else {
                    print(
                        "OK: \(file) is valid (groups: \(configuration.groupNames.joined(separator: ", ")); agents with overrides: \(configuration.agents.count))"
                    )
                }
            case .failure(let error):
                if json {
                    try printJSON(
                        Result(
                            file: file, valid: false, groups: [],
                            errors: error.issues.map {
                                Issue(
                                    line: $0.line, column: $0.column, key: $0.key, value: $0.value, message: $0.message,
                                    accepted: $0.accepted)
                            }))
                } else {
                    printError(error.description)
                }
                throw ExitCode(1)
            }
        }
    }
}
