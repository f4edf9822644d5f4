import CorralCore
import CorralRuntime
import SystemPackage

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#endif

/// What a migrate or custom handler receives on stdin.
struct HandlerInput: Encodable {
    var action: EnforcementAction
    var violation: Violation

    var json: [UInt8] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        return Array((try? encoder.encode(self)) ?? Data("{}".utf8)) + [10]
    }
}

/// Runs a handler command off the engine: the violation as JSON on stdin,
/// killed after `timeout`; success is exit status 0.
enum HandlerRunner {
    struct Outcome: Sendable {
        var succeeded: Bool
        var summary: String
    }

    static func run(_ command: [String], input: [UInt8], timeout: Duration) async -> Outcome {
        guard let program = command.first else { return Outcome(succeeded: false, summary: "empty handler command") }
        let executable: String
        do {
            executable = try ExecutableLookup.resolve(program, path: getenv("PATH").map { String(cString: $0) })
        } catch {
            return Outcome(succeeded: false, summary: error.description)
        }
        let pipe: (readEnd: FileDescriptor, writeEnd: FileDescriptor)
        do {
            pipe = try FileDescriptor.pipe()
        } catch {
            return Outcome(succeeded: false, summary: "cannot create a pipe: \(error)")
        }
        let child: SpawnedProcess
        do {
            child = try Spawner.spawn(
                Spawner.Request(
                    executable: executable, arguments: command, environment: currentEnvironment(), cgroupDirectory: nil,
                    cgroupProcs: nil, standardInput: pipe.readEnd, newSession: true))
        } catch {
            try? pipe.readEnd.close()
            try? pipe.writeEnd.close()
            return Outcome(succeeded: false, summary: error.description)
        }
        try? pipe.readEnd.close()
        _ = try? pipe.writeEnd.writeAll(input)
        try? pipe.writeEnd.close()
        if let pidfd = child.pidfd { try? pidfd.close() }

        let deadline = ContinuousClock.now + timeout
        while true {
            var status: Int32 = 0
            let result = waitpid(child.pid, &status, WNOHANG)
            if result == child.pid {
                let signal = status & 0x7f
                if signal != 0 { return Outcome(succeeded: false, summary: "killed by \(SignalName.name(signal))") }
                let code = (status >> 8) & 0xff
                return Outcome(succeeded: code == 0, summary: "exit status \(code)")
            }
            if result < 0 && errno != EINTR { return Outcome(succeeded: false, summary: "lost track of the handler") }
            if ContinuousClock.now >= deadline {
                kill(child.pid, SIGKILL)
                _ = waitpid(child.pid, &status, 0)
                return Outcome(succeeded: false, summary: "timed out after \(Quantity.formatDuration(timeout)) and was killed")
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    static func currentEnvironment() -> [String] {
        var result: [String] = []
        var pointer = environ
        while let entry = pointer.pointee {
            result.append(String(cString: entry))
            pointer += 1
        }
        return result
    }
}
