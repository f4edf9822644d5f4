internal import CCorralLinux
public import SystemPackage

#if canImport(Glibc)
    internal import Glibc
#endif

/// Signal masks and signalfds of the calling thread.
public enum Signals {
    /// Blocks `signals` in the calling thread (threads it creates afterwards
    /// inherit the mask); whether all of them were blocked already.
    @discardableResult
    public static func block(_ signals: [Int32]) throws(Errno) -> Bool {
        var wereBlocked: Int32 = 0
        try nothingOrErrno(signals.withUnsafeBufferPointer { corral_block_signals($0.baseAddress, Int32($0.count), &wereBlocked) })
            .get()
        return wereBlocked != 0
    }

    public static func unblock(_ signals: [Int32]) throws(Errno) {
        try nothingOrErrno(signals.withUnsafeBufferPointer { corral_unblock_signals($0.baseAddress, Int32($0.count)) }).get()
    }

    /// Blocks every asynchronous signal in the calling thread, for helper
    /// threads: a process-directed signal must reach the thread that waits
    /// for it, never a helper whose default action ends the process.
    public static func blockAsynchronous() throws(Errno) {
        try nothingOrErrno(corral_block_async_signals()).get()
    }

    /// Blocks `signals` and returns a non-blocking, close-on-exec signalfd for them.
    public static func descriptor(for signals: [Int32]) throws(Errno) -> FileDescriptor {
        FileDescriptor(
            rawValue: try valueOrErrno(signals.withUnsafeBufferPointer { corral_signalfd($0.baseAddress, Int32($0.count)) }).get())
    }

    /// One signal taken from a signalfd, nil when none is pending.
    public static func next(from signalFD: FileDescriptor) throws(Errno) -> Received? {
        var code: Int32 = 0
        var sender: pid_t = 0
        let signal = try retryOnInterrupt { corral_signalfd_read(signalFD.rawValue, &code, &sender) }.get()
        return signal > 0 ? Received(signal: signal, code: code, sender: sender) : nil
    }

    /// A signal read from a signalfd.
    public struct Received: Sendable, Equatable {
        public var signal: Int32
        /// ssi_code: `kernelCode` when the kernel sent it (a terminal's ^C).
        public var code: Int32
        public var sender: Int32
    }

    /// SI_KERNEL, which Swift cannot see as a macro.
    public static let kernelCode: Int32 = corral_si_kernel()

    /// Sends `signal` through a pidfd, which cannot hit a recycled pid.
    public static func send(_ signal: Int32, toPidFD pidfd: FileDescriptor) throws(Errno) {
        try nothingOrErrno(corral_pidfd_send_signal(pidfd.rawValue, signal)).get()
    }
}

/// How a child ended, from its wait status.
public enum ChildStatus {
    /// waitpid(2) on `pid` (`block: false`: WNOHANG); the raw status when it
    /// has ended, nil when it runs on.
    public static func wait(for pid: Int32, block: Bool) throws(Errno) -> Int32? {
        var status: Int32 = 0
        let result = try retryOnInterrupt { waitpid(pid, &status, block ? 0 : WNOHANG) }.get()
        return result == pid ? status : nil
    }
}

/// Settings of the calling thread.
public enum CurrentThread {
    /// Names the thread (at most 15 bytes) for ps and top.
    public static func setName(_ name: String) throws(Errno) {
        try nothingOrErrno(corral_set_thread_name(name)).get()
    }

    /// Sets this thread's nice value alone; lowering it needs CAP_SYS_NICE.
    public static func setNice(_ nice: Int32) throws(Errno) {
        try nothingOrErrno(corral_set_thread_nice(nice)).get()
    }
}

/// The process's memory.
public enum Memory {
    /// mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT): pages stay resident
    /// once touched, so a host short of memory cannot evict the daemon's code
    /// while it must act. Needs CAP_IPC_LOCK or a large RLIMIT_MEMLOCK.
    public static func lockAll() throws(Errno) {
        try nothingOrErrno(corral_mlockall_onfault()).get()
    }
}

/// This process as others see it.
public enum CurrentProcess {
    /// prctl(PR_SET_DUMPABLE): a non-dumpable process's /proc/PID files belong to
    /// root, so processes of the same user cannot open its memory.
    public static func setDumpable(_ dumpable: Bool) throws(Errno) {
        try nothingOrErrno(corral_set_dumpable(dumpable ? 1 : 0)).get()
    }

    /// prctl(PR_GET_DUMPABLE).
    public static var isDumpable: Bool { corral_get_dumpable() == 1 }
}
