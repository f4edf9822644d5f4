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

/// An inotify instance.
public enum InotifyInstance {
    /// inotify_init1(IN_NONBLOCK | IN_CLOEXEC).
    public static func open() throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try valueOrErrno(corral_inotify_init()).get())
    }
}
