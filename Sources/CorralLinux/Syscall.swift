public import SystemPackage

#if canImport(Glibc)
    internal import Glibc
#endif

/// The value a call returned, or its errno: libc and the CCorralLinux shims
/// alike return -1 and set errno on failure. The one place errno is read.
public func valueOrErrno<I: FixedWidthInteger>(_ value: I) -> Result<I, Errno> {
    value == -1 ? .failure(Errno(rawValue: errno)) : .success(value)
}

/// `valueOrErrno` for calls whose success value says nothing.
public func nothingOrErrno<I: FixedWidthInteger>(_ value: I) -> Result<Void, Errno> {
    valueOrErrno(value).map { _ in }
}

/// errno as it is now, for a C library that reports failure its own way and leaves the
/// cause in errno (libseccomp's -ECANCELED).
public var currentErrno: Errno { Errno(rawValue: errno) }

/// For calls that return their error number instead of setting errno
/// (pthreads'): 0 is success, anything else the errno.
public func nothingOrErrno(returned result: Int32) -> Result<Void, Errno> {
    result == 0 ? .success(()) : .failure(Errno(rawValue: result))
}

/// The pointer a call returned, or its errno when it returned NULL.
public func pointerOrErrno<Pointer>(_ pointer: Pointer?) -> Result<Pointer, Errno> {
    pointer.map { .success($0) } ?? .failure(Errno(rawValue: errno))
}

/// Makes `call` again while a signal interrupts it (EINTR): the one place an
/// interrupted call is retried, so no caller forgets it or loops on another errno.
public func retryOnInterrupt<I: FixedWidthInteger>(_ call: () -> I) -> Result<I, Errno> {
    while true {
        let result = valueOrErrno(call())
        if case .failure(.interrupted) = result { continue }
        return result
    }
}
