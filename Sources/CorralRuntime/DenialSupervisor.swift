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
/// any thread) and `inbox` (new listeners) are behind mutexes; reports are
/// handed to `report` on a thread of their own ("corral-denials"), so a slow
/// consumer (a POST to the daemon) never delays an answer. Without this
/// supervisor (the process ended) the agents' denied calls fail with ENOSYS.
///
/// An agent that makes more than `floodLimit` denied calls in a second costs
/// this thread (outside the agent's cgroup) more than it should: its listener
/// is closed, its further denied calls fail with ENOSYS unrecorded, and that is
/// reported once as the pseudo-syscall "(flood: listener closed)".
public final class DenialSupervisor: Sendable {
    public typealias Report = @Sendable (SyscallDenial) -> Void

    private struct Watched {
        var fd: FileDescriptor
        var agent: String
        /// Denied calls in the current second, and when it began.
        var recent = 0
        var windowStart = ContinuousClock.now
        /// Receives that failed in a row (a listener that keeps failing is dropped).
        var failures = 0
    }
    private struct State {
        var inbox: [Watched] = []
        var stopping = false
    }

    private let wake: FileDescriptor
    private let state = Mutex(State())
    private let tallies = Mutex<[String: [String: SyscallDenial]]>([:])
    private let reports: WorkerThread<SyscallDenial>
    private let clock: @Sendable () -> Timestamp
    private let finished = Latch()
    /// Minimum time between two reports of the same agent and syscall.
    public static let reportInterval: Duration = .seconds(1)
    /// Denied calls per second above which an agent's listener is closed.
    public static let floodLimit = 20_000
    public static let floodSyscall = "(flood: listener closed)"

    public init(clock: @escaping @Sendable () -> Timestamp, report: @escaping Report) throws(Errno) {
        self.wake = try WakeEvent.open()
        self.clock = clock
        self.reports = WorkerThread(name: "corral-denials") { batch in batch.forEach(report) }
        OSThread.start(name: "corral-seccomp") { [self] in run() }
    }

    /// Takes over `listener` (closed when the agent's processes are gone or at `stop`).
    public func supervise(_ listener: FileDescriptor, agent: String) {
        let accepted = state.withLock { state in
            guard !state.stopping else { return false }
            state.inbox.append(Watched(fd: listener, agent: agent))
            return true
        }
        // Stopped: nobody will answer; closing makes the agent's denied calls fail (ENOSYS).
        guard accepted else {
            try? listener.close()
            return
        }
        try? WakeEvent.signal(wake)
    }

    private func report(_ denial: SyscallDenial) { reports.enqueue(denial) }

    /// What `agent` was refused so far, by syscall name.
    public func denials(of agent: String) -> [SyscallDenial] {
        tallies.withLock { ($0[agent] ?? [:]).values.sorted { $0.syscall < $1.syscall } }
    }

    /// Records a call the kernel answered itself by killing the process
    /// (`seccomp_action: kill`, learnt from the kernel log), and reports it.
    public func recordKill(agent: String, syscall: String, pid: Int32) {
        let now = clock()
        let denial = tallies.withLock { tallies in
            var denial =
                tallies[agent]?[syscall]
                ?? SyscallDenial(agent: agent, syscall: syscall, count: 0, firstAt: now, lastAt: now, action: .kill, pid: pid)
            denial.count += 1
            denial.lastAt = now
            denial.action = .kill
            denial.pid = pid
            tallies[agent, default: [:]][syscall] = denial
            return denial
        }
        report(denial)
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
        reports.stopAndWait()
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
            guard case .success = retryOnInterrupt({ poll(&polls, nfds_t(polls.count), timeout) }) else {
                usleep(10_000)  // ENOMEM: try again shortly rather than spin
                continue
            }
            if polls[0].revents != 0 { try? WakeEvent.drain(wake) }
            var gone: [Int] = []
            for index in watched.indices {
                let events = polls[index + 1].revents
                if events & Int16(POLLIN) != 0 {
                    if !handle(&watched[index], lastReport: &lastReport, unreported: &unreported) { gone.append(index) }
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

    /// Answers one notification; false when the listener is to be dropped.
    private func handle(_ item: inout Watched, lastReport: inout [String: ContinuousClock.Instant], unreported: inout Set<String>) -> Bool {
        let received: SeccompNotification?
        switch SeccompListener.receive(item.fd.rawValue) {
        case .success(let notification):
            item.failures = 0
            received = notification
        case .failure:
            item.failures += 1
            return item.failures < 3
        }
        guard let notification = received else { return true }
        let instantNow = ContinuousClock.now
        if instantNow - item.windowStart >= .seconds(1) {
            item.windowStart = instantNow
            item.recent = 0
        }
        item.recent += 1
        if item.recent > Self.floodLimit {
            SeccompListener.deny(item.fd.rawValue, id: notification.id, error: Seccomp.deniedErrno)
            let now = clock()
            report(
                SyscallDenial(
                    agent: item.agent, syscall: Self.floodSyscall, count: item.recent, firstAt: now, lastAt: now, action: .errno,
                    pid: notification.pid))
            return false
        }
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
        // Counted before it is answered: once the agent has seen its EPERM,
        // `denials(of:)` holds the call (a caller that waited for the agent to
        // end reads every denial). The count is a dictionary update, the
        // calling thread waits in the kernel for the answer meanwhile.
        SeccompListener.deny(item.fd.rawValue, id: notification.id, error: Seccomp.deniedErrno)
        let key = item.agent + "\u{0}" + name
        let instant = ContinuousClock.now
        if let last = lastReport[key], instant - last < Self.reportInterval {
            unreported.insert(key)
        } else {
            report(denial)
            lastReport[key] = instant
            unreported.remove(key)
        }
        return true
    }

    private func flush(agent: String, unreported: inout Set<String>) {
        for key in unreported where key.hasPrefix(agent + "\u{0}") {
            let name = String(key.dropFirst(agent.count + 1))
            if let denial = tallies.withLock({ $0[agent]?[name] }) { report(denial) }
            unreported.remove(key)
        }
    }
}
