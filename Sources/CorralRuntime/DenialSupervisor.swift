public import CorralCore
import CorralLinux
import CorralSeccomp
import CorralThreads
import Synchronization
public import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// Answers the denied syscalls of agents whose filter notifies (seccomp user
/// notification) and counts them: every call is refused with EPERM at once,
/// then tallied per agent and syscall; `report` hears of the first denial of
/// a syscall at once and of further ones at most once a second (and when the
/// agent's last process is gone).
///
/// Ownership: the supervisor's thread ("corral-seccomp") owns the listener
/// descriptors and the report times; `tallies` (read by `denials(of:)` from
/// any thread) and `inbox` (new listeners) are behind mutexes. Without this
/// supervisor (the process ended) the agents' denied calls fail with ENOSYS.
public final class DenialSupervisor: Sendable {
    public typealias Report = @Sendable (SyscallDenial) -> Void

    private struct Watched {
        var fd: FileDescriptor
        var agent: String
    }
    private struct State {
        var inbox: [Watched] = []
        var stopping = false
    }

    private let wake: FileDescriptor
    private let state = Mutex(State())
    private let tallies = Mutex<[String: [String: SyscallDenial]]>([:])
    private let report: Report
    private let clock: @Sendable () -> Timestamp
    private let finished = Latch()
    /// Minimum time between two reports of the same agent and syscall.
    public static let reportInterval: Duration = .seconds(1)

    public init(clock: @escaping @Sendable () -> Timestamp, report: @escaping Report) throws(Errno) {
        self.wake = try WakeEvent.open()
        self.clock = clock
        self.report = report
        OSThread.start(name: "corral-seccomp") { [self] in run() }
    }

    /// Takes over `listener` (closed when the agent's processes are gone or at `stop`).
    public func supervise(_ listener: FileDescriptor, agent: String) {
        state.withLock { $0.inbox.append(Watched(fd: listener, agent: agent)) }
        try? WakeEvent.signal(wake)
    }

    /// What `agent` was refused so far, by syscall name.
    public func denials(of agent: String) -> [SyscallDenial] {
        tallies.withLock { ($0[agent] ?? [:]).values.sorted { $0.syscall < $1.syscall } }
    }

    /// Forgets an agent's tallies (it was removed).
    public func forget(_ agent: String) {
        _ = tallies.withLock { $0.removeValue(forKey: agent) }
    }

    /// Stops the thread and closes every listener (their agents' denied calls then fail with ENOSYS).
    public func stop() {
        let already = state.withLock { state in
            defer { state.stopping = true }
            return state.stopping
        }
        guard !already else { return }
        try? WakeEvent.signal(wake)
        finished.wait()
        try? wake.close()
    }

    private func run() {
        var watched: [Watched] = []
        var lastReport: [String: ContinuousClock.Instant] = [:]
        var unreported: Set<String> = []
        defer {
            for item in watched { try? item.fd.close() }
            for item in state.withLock({ $0.inbox }) { try? item.fd.close() }
            finished.signal()
        }
        while true {
            let (incoming, stopping) = state.withLock { state in
                defer { state.inbox = [] }
                return (state.inbox, state.stopping)
            }
            if stopping { return }
            watched += incoming
            var polls = [pollfd(fd: wake.rawValue, events: Int16(POLLIN), revents: 0)]
            polls += watched.map { pollfd(fd: $0.fd.rawValue, events: Int16(POLLIN), revents: 0) }
            let timeout: Int32 = unreported.isEmpty ? -1 : 1000
            guard case .success = retryOnInterrupt({ poll(&polls, nfds_t(polls.count), timeout) }) else { continue }
            if polls[0].revents != 0 { try? WakeEvent.drain(wake) }
            var gone: [Int] = []
            for (index, item) in watched.enumerated() {
                let events = polls[index + 1].revents
                if events & Int16(POLLIN) != 0 {
                    handle(item, lastReport: &lastReport, unreported: &unreported)
                } else if events & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 {
                    gone.append(index)
                }
            }
            for index in gone.reversed() {
                let item = watched.remove(at: index)
                try? item.fd.close()
                flush(agent: item.agent, unreported: &unreported)
            }
            // Folded repeats whose second has passed.
            let now = ContinuousClock.now
            for key in unreported where lastReport[key].map({ now - $0 >= Self.reportInterval }) ?? true {
                let parts = key.split(separator: "\u{0}", maxSplits: 1).map(String.init)
                if let denial = tallies.withLock({ $0[parts[0]]?[parts[1]] }) {
                    report(denial)
                    lastReport[key] = now
                }
                unreported.remove(key)
            }
        }
    }

    private func handle(_ item: Watched, lastReport: inout [String: ContinuousClock.Instant], unreported: inout Set<String>) {
        guard case .success(let received) = SeccompListener.receive(item.fd.rawValue), let notification = received else { return }
        // Refuse first: the calling thread waits in the kernel until answered.
        SeccompListener.deny(item.fd.rawValue, id: notification.id, error: Seccomp.deniedErrno)
        let name = Seccomp.syscallName(notification.syscall) ?? "syscall \(notification.syscall)"
        let now = clock()
        let denial = tallies.withLock { tallies in
            var denial =
                tallies[item.agent]?[name]
                ?? SyscallDenial(agent: item.agent, syscall: name, count: 0, firstAt: now, lastAt: now, action: .errno, pid: nil)
            denial.count += 1
            denial.lastAt = now
            denial.pid = notification.pid
            tallies[item.agent, default: [:]][name] = denial
            return denial
        }
        let key = item.agent + "\u{0}" + name
        let instant = ContinuousClock.now
        if let last = lastReport[key], instant - last < Self.reportInterval {
            unreported.insert(key)
        } else {
            report(denial)
            lastReport[key] = instant
            unreported.remove(key)
        }
    }

    private func flush(agent: String, unreported: inout Set<String>) {
        for key in unreported where key.hasPrefix(agent + "\u{0}") {
            let name = String(key.dropFirst(agent.count + 1))
            if let denial = tallies.withLock({ $0[agent]?[name] }) { report(denial) }
            unreported.remove(key)
        }
    }
}
