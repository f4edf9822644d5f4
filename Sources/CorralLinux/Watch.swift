internal import CCorralLinux
public import SystemPackage

#if canImport(Glibc)
    internal import Glibc
#endif

/// An eventfd that wakes a poll loop from other threads.
public enum WakeEvent {
    /// A non-blocking, close-on-exec eventfd.
    public static func open() throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try valueOrErrno(corral_eventfd()).get())
    }

    /// Adds 1 (a saturated counter counts: a wake-up is pending anyway).
    public static func signal(_ fd: FileDescriptor) throws(Errno) {
        _ = try retryOnInterrupt { corral_eventfd_signal(fd.rawValue) }.get()
    }

    /// Resets the counter; nothing pending is not an error.
    public static func drain(_ fd: FileDescriptor) throws(Errno) {
        _ = try retryOnInterrupt { corral_eventfd_drain(fd.rawValue) }.get()
    }
}

/// An epoll instance: descriptors registered with a token each, waited on together
/// (the kernel's cost is the ready ones, not all registered, unlike poll(2)).
public enum Epoll {
    public static let readable = corral_epoll_in
    /// POLLPRI: a PSI trigger fired.
    public static let priority = corral_epoll_pri
    public static let error = corral_epoll_err
    public static let hangUp = corral_epoll_hup

    /// epoll_create1(EPOLL_CLOEXEC).
    public static func create() throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try valueOrErrno(corral_epoll_create()).get())
    }

    /// Registers `fd` for `events`; a wait reports it with `token`.
    public static func add(_ epoll: FileDescriptor, _ fd: Int32, events: UInt32, token: UInt64) throws(Errno) {
        _ = try valueOrErrno(corral_epoll_add(epoll.rawValue, fd, events, token)).get()
    }

    /// Unregisters `fd` (nothing when it was not registered).
    public static func remove(_ epoll: FileDescriptor, _ fd: Int32) {
        _ = corral_epoll_delete(epoll.rawValue, fd)
    }

    /// Waits up to `timeout` ms (-1: for ever) and fills `tokens` and `events`
    /// (their common count is the most taken at once): how many are ready.
    public static func wait(
        _ epoll: FileDescriptor, tokens: inout [UInt64], events: inout [UInt32], timeout: Int32
    ) -> Result<Int, Errno> {
        let capacity = Int32(min(tokens.count, events.count))
        return valueOrErrno(corral_epoll_wait(epoll.rawValue, &tokens, &events, capacity, timeout)).map { Int($0) }
    }
}

/// poll(2), for a few descriptors (many belong in an `Epoll`).
public enum Poll {
    /// One descriptor to wait on: `events` asked, `returned` what poll reported.
    public struct Descriptor: Sendable, Equatable {
        public var fd: Int32
        public var events: Int16
        public var returned: Int16 = 0

        public init(fd: Int32, events: Int16) {
            self.fd = fd
            self.events = events
        }
    }

    public static let readable = Int16(POLLIN)
    /// A PSI trigger fired.
    public static let priority = Int16(POLLPRI)
    public static let error = Int16(POLLERR)
    public static let hangUp = Int16(POLLHUP)
    /// The descriptor is not open.
    public static let invalid = Int16(POLLNVAL)

    /// Waits up to `timeout` ms (-1: for ever) for the events asked in `fds`
    /// and sets what each got in `returned`: how many got any (0: the time
    /// ran out). A signal's interruption (EINTR) waits again for the time left.
    public static func wait(_ fds: inout [Descriptor], timeout: Int32) -> Result<Int, Errno> {
        let deadline = timeout > 0 ? ContinuousClock.now.advanced(by: .milliseconds(timeout)) : nil
        var polled = fds.map { pollfd(fd: $0.fd, events: $0.events, revents: 0) }
        let count = nfds_t(polled.count)
        let result = polled.withUnsafeMutableBufferPointer { polled in
            retryOnInterrupt { poll(polled.baseAddress, count, deadline.map(millisecondsLeft(until:)) ?? timeout) }
        }
        for index in fds.indices { fds[index].returned = polled[index].revents }
        return result.map { Int($0) }
    }

    /// The whole milliseconds until `deadline`, rounded up (a wait never ends
    /// early), 0 once it passed.
    private static func millisecondsLeft(until deadline: ContinuousClock.Instant) -> Int32 {
        let left = ContinuousClock.now.duration(to: deadline).components
        guard left.seconds >= 0, left.seconds > 0 || left.attoseconds > 0 else { return 0 }
        let milliseconds = left.seconds * 1000 + (left.attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: milliseconds)
    }
}

/// An inotify instance.
public enum InotifyInstance {
    /// inotify_init1(IN_NONBLOCK | IN_CLOEXEC).
    public static func open() throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try valueOrErrno(corral_inotify_init()).get())
    }
}
