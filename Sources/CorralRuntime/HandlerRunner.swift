import CorralCore
import CorralLinux
import CorralThreads
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// Runs a migrate or custom handler command: `input` on its stdin, killed
/// after `timeout`; success is exit status 0. The wait is on the process's
/// pidfd, on a thread of its own: nothing polls, nothing blocks the
/// cooperative pool.
public enum HandlerRunner {
    public struct Outcome: Sendable {
        public var succeeded: Bool
        public var summary: String
    }

    public static func run(_ command: [String], input: [UInt8], timeout: Duration) async -> Outcome {
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
                    executable: executable, arguments: command, environment: Spawner.currentEnvironment(), cgroupDirectory: nil,
                    cgroupProcs: nil, standardInput: pipe.readEnd, newSession: true))
        } catch {
            close(pipe.readEnd)
            close(pipe.writeEnd)
            return Outcome(succeeded: false, summary: error.description)
        }
        close(pipe.readEnd)
        var note = ""
        do {
            // A handler that exits without reading its input closes the pipe: EPIPE, not a failure of the run.
            _ = try pipe.writeEnd.writeAll(input)
        } catch  where (error as? Errno) == .brokenPipe {
        } catch {
            note = " (its input could not be written: \(error))"
        }
        close(pipe.writeEnd)
        let exited = await exit(of: child, within: timeout)
        defer { close(child.pidfd) }
        if !exited {
            // Killed through the pidfd where there is one: it cannot hit a recycled pid.
            if let pidfd = child.pidfd {
                do { try Signals.send(SIGKILL, toPidFD: pidfd) } catch {}
            } else {
                _ = kill(child.pid, SIGKILL)
            }
        }
        let status: Int32?
        do {
            status = try ChildStatus.wait(for: child.pid, block: true)
        } catch {
            return Outcome(succeeded: false, summary: "lost track of the handler: \(error)" + note)
        }
        guard exited else {
            return Outcome(succeeded: false, summary: "timed out after \(Quantity.formatDuration(timeout)) and was killed" + note)
        }
        switch status.map(Termination.init(waitStatus:)) {
        case .exited(let code)?: return Outcome(succeeded: code == 0, summary: "exit status \(code)" + note)
        case .signaled(let signal)?: return Outcome(succeeded: false, summary: "killed by \(SignalName.name(signal))" + note)
        case nil: return Outcome(succeeded: false, summary: "lost track of the handler" + note)
        }
    }

    /// Waits until `child` has exited (true) or `timeout` passed (false):
    /// poll(2) on its pidfd, which becomes readable when the process exits.
    /// Without a pidfd (kernels before 5.3) the wait is on waitid(WNOWAIT).
    static func exit(of child: SpawnedProcess, within timeout: Duration) async -> Bool {
        let pid = child.pid
        let pidfd = child.pidfd?.rawValue
        return await withCheckedContinuation { (done: CheckedContinuation<Bool, Never>) in
            OSThread.start(name: "corral-handler") {
                let deadline = ContinuousClock.now + timeout
                while true {
                    let left = deadline - ContinuousClock.now
                    guard left > .zero else { return done.resume(returning: false) }
                    let milliseconds = Int32(
                        clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
                    if let pidfd {
                        var entry = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
                        switch valueOrErrno(poll(&entry, 1, milliseconds)) {
                        case .success(let ready) where ready > 0: return done.resume(returning: true)
                        case .success, .failure(.interrupted): continue  // timed out (checked above), or a signal
                        case .failure: return done.resume(returning: true)  // the reap says what happened
                        }
                    } else {
                        var info = siginfo_t()
                        if case .success = nothingOrErrno(waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT)),
                            info._sifields._sigchld.si_pid == pid
                        {
                            return done.resume(returning: true)
                        }
                        usleep(20_000)
                    }
                }
            }
        }
    }

    /// Closes a descriptor opened here; a failed close of a pipe end or
    /// pidfd loses nothing.
    private static func close(_ fd: FileDescriptor?) {
        guard let fd else { return }
        do { try fd.close() } catch {}
    }
}
