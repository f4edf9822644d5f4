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

/// An inotify instance.
public enum InotifyInstance {
    /// inotify_init1(IN_NONBLOCK | IN_CLOEXEC).
    public static func open() throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try valueOrErrno(corral_inotify_init()).get())
    }
}
