internal import CCorralLinux
public import CorralCore
public import SystemPackage

#if canImport(Glibc)
    internal import Glibc
#endif

/// cgroupfs below a directory, through directory file descriptors.
///
/// Every path is opened relative to the anchor fd with openat2(2) and
/// RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
/// RESOLVE_NO_XDEV (kernels before 5.6: a component-by-component walk with
/// O_NOFOLLOW), so nothing reaches a path outside the anchor.
public final class DirectoryCgroupFilesystem: CgroupFilesystem {
    /// The anchor's absolute path, for messages.
    public let anchorPath: String
    private let anchorFD: Int32
    private let useOpenat2: Bool

    /// Opens `anchorPath` (a directory; the user's own path, so symlinks in it
    /// are followed once, here).
    public convenience init(anchorPath: String) throws(CgroupError) {
        try self.init(anchorPath: anchorPath, allowOpenat2: true)
    }

    /// `allowOpenat2: false` forces the component walk of kernels before 5.6 (for tests).
    init(anchorPath: String, allowOpenat2: Bool) throws(CgroupError) {
        let fd = open(anchorPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            throw CgroupError.explain(Errno(rawValue: errno), operation: .open, path: anchorPath, file: nil)
        }
        self.anchorPath = anchorPath.count > 1 && anchorPath.hasSuffix("/") ? String(anchorPath.dropLast()) : anchorPath
        self.anchorFD = fd
        // Any failure to open the anchor itself means openat2 is unusable here:
        // ENOSYS before 5.6, EPERM from seccomp profiles that predate it.
        let probe = allowOpenat2 ? corral_openat2(fd, ".", corral_o_path() | O_CLOEXEC, 0, corral_resolve_strict()) : -1
        if probe >= 0 { close(probe) }
        self.useOpenat2 = probe >= 0
    }

    deinit { close(anchorFD) }

    /// `statfs` type of the anchor (cgroup2, tmpfs, …).
    public var anchorFilesystem: FilesystemKind {
        let magic = corral_fstatfs_type(anchorFD)
        return magic < 0 ? .missing : FilesystemKind(magic: Int(magic))
    }

    public func absolutePath(_ path: CgroupPath) -> String {
        path.components.isEmpty ? anchorPath : (anchorPath == "/" ? "" : anchorPath) + "/" + path.relative
    }

    private func absolutePath(_ file: CgroupFile, _ path: CgroupPath) -> String {
        absolutePath(path) + "/" + file.rawValue
    }

    /// Opens `relative` beneath the anchor; -1 with errno set on failure.
    private func openBeneath(_ components: [String], flags: Int32) -> Int32 {
        if useOpenat2 {
            let relative = components.isEmpty ? "." : components.joined(separator: "/")
            return corral_openat2(anchorFD, relative, flags | O_CLOEXEC, 0, corral_resolve_strict())
        }
        // Walk one directory at a time, never following a symlink. A symlink
        // fails as ELOOP, as with openat2: O_NOFOLLOW alone reports ENOTDIR for
        // a directory step, and O_PATH opens the link itself.
        var current = dup(anchorFD)
        guard current >= 0 else { return -1 }
        for (index, name) in components.enumerated() {
            let last = index == components.count - 1
            let stepFlags = last ? flags | O_NOFOLLOW | O_CLOEXEC : corral_o_path() | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
            var next = openat(current, name, stepFlags)
            var saved = errno
            if next >= 0, stepFlags & corral_o_path() != 0, Self.isSymlink(fd: next) {
                close(next)
                next = -1
                saved = ELOOP
            } else if next < 0, Self.isSymlink(name, in: current) {
                saved = ELOOP
            }
            close(current)
            guard next >= 0 else {
                errno = saved
                return -1
            }
            current = next
        }
        if components.isEmpty {
            let reopened = openat(current, ".", flags | O_CLOEXEC)
            let saved = errno
            close(current)
            errno = saved
            return reopened
        }
        return current
    }

    private static func isSymlink(fd: Int32) -> Bool {
        var status = stat()
        return fstat(fd, &status) == 0 && status.st_mode & S_IFMT == S_IFLNK
    }

    private static func isSymlink(_ name: String, in directory: Int32) -> Bool {
        var status = stat()
        return fstatat(directory, name, &status, AT_SYMLINK_NOFOLLOW) == 0 && status.st_mode & S_IFMT == S_IFLNK
    }

    private func fail(_ operation: CgroupError.Operation, _ path: CgroupPath, _ file: CgroupFile?, value: String? = nil)
        -> CgroupError
    {
        CgroupError.explain(Errno(rawValue: errno), operation: operation, path: absolutePath(path), file: file, value: value)
    }

    public func exists(_ path: CgroupPath) throws(CgroupError) -> Bool {
        let fd = openBeneath(path.components, flags: corral_o_path() | O_DIRECTORY)
        if fd >= 0 {
            close(fd)
            return true
        }
        if errno == ENOENT { return false }
        throw fail(.open, path, nil)
    }

    public func makeDirectory(_ path: CgroupPath) throws(CgroupError) {
        guard let parent = path.parent, let name = path.name else {
            throw CgroupError(
                code: .alreadyExists, operation: .makeDirectory, path: anchorPath, message: "\(anchorPath) already exists",
                fix: "nothing to create: \(anchorPath) is the directory Corral works in")
        }
        let parentFD = openBeneath(parent.components, flags: corral_o_path() | O_DIRECTORY)
        guard parentFD >= 0 else { throw fail(.makeDirectory, parent, nil) }
        defer { close(parentFD) }
        if mkdirat(parentFD, name, 0o755) < 0 { throw fail(.makeDirectory, path, nil) }
    }

    public func removeDirectory(_ path: CgroupPath) throws(CgroupError) {
        guard let parent = path.parent, let name = path.name else {
            throw CgroupError(
                code: .notSupported, operation: .removeDirectory, path: anchorPath, message: "refusing to remove the anchor \(anchorPath)",
                fix: "Corral never removes the directory it works in; rmdir \(anchorPath) yourself if it is no longer wanted")
        }
        let parentFD = openBeneath(parent.components, flags: corral_o_path() | O_DIRECTORY)
        guard parentFD >= 0 else { throw fail(.removeDirectory, parent, nil) }
        defer { close(parentFD) }
        if unlinkat(parentFD, name, AT_REMOVEDIR) < 0 { throw fail(.removeDirectory, path, nil) }
    }

    public func children(of path: CgroupPath) throws(CgroupError) -> [String] {
        let fd = openBeneath(path.components, flags: O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { throw fail(.list, path, nil) }
        guard let dir = fdopendir(fd) else {
            let error = fail(.list, path, nil)
            close(fd)
            throw error
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            guard entry.pointee.d_type == UInt8(DT_DIR) else { continue }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    public func contains(_ file: CgroupFile, in path: CgroupPath) -> Bool {
        let fd = openBeneath(path.components + [file.rawValue], flags: corral_o_path())
        if fd >= 0 { close(fd) }
        return fd >= 0
    }

    public func read(_ file: CgroupFile, of path: CgroupPath) throws(CgroupError) -> String {
        let fd = openBeneath(path.components + [file.rawValue], flags: O_RDONLY)
        guard fd >= 0 else { throw fail(.read, path, file) }
        defer { close(fd) }
        guard let text = Self.readAll(fd, offset: nil) else { throw fail(.read, path, file) }
        return text
    }

    /// Reads a whole (small) file; pread from `offset` when given.
    private static func readAll(_ fd: Int32, offset: Int?) -> String? {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 8192)
        var position = offset ?? 0
        while true {
            let count = chunk.withUnsafeMutableBytes { buffer in
                offset == nil
                    ? Glibc.read(fd, buffer.baseAddress, buffer.count)
                    : pread(fd, buffer.baseAddress, buffer.count, off_t(position))
            }
            if count < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
            position += count
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    public func write(_ value: String, to file: CgroupFile, of path: CgroupPath) throws(CgroupError) {
        let fd = openBeneath(path.components + [file.rawValue], flags: O_WRONLY)
        guard fd >= 0 else { throw fail(.write, path, file, value: value) }
        defer { close(fd) }
        var bytes = Array(value.utf8)
        var written: Int
        repeat {
            written = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        } while written < 0 && errno == EINTR
        if written < 0 { throw fail(.write, path, file, value: value) }
        if written != bytes.count {
            throw CgroupError(
                code: .io, operation: .write, path: absolutePath(file, path), value: value,
                message: "short write to \(absolutePath(file, path)): \(written) of \(bytes.count) bytes of '\(value)'",
                fix:
                    "retry; cgroupfs takes a value in one write, so a short write that repeats means \(absolutePath(file, path)) is not a cgroup file"
            )
        }
        bytes.removeAll()
    }

    public func wait(
        for file: CgroupFile, of path: CgroupPath, timeout: Duration, until condition: (String) -> Bool
    ) throws(CgroupError) -> String? {
        let fd = openBeneath(path.components + [file.rawValue], flags: O_RDONLY)
        guard fd >= 0 else { throw fail(.wait, path, file) }
        defer { close(fd) }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while true {
            // Reading re-arms kernfs' change notification for this fd.
            guard let text = Self.readAll(fd, offset: 0) else { throw fail(.wait, path, file) }
            if condition(text) { return text }
            let remaining = clock.now.duration(to: deadline)
            if remaining <= .zero { return nil }
            var pollFD = pollfd(fd: fd, events: Int16(POLLPRI), revents: 0)
            let milliseconds = Int32(min(Int64(Int32.max), max(1, remaining.microseconds / 1000 + 1)))
            let ready = poll(&pollFD, 1, milliseconds)
            if ready < 0 && errno != EINTR { throw fail(.wait, path, file) }
        }
    }

    public func openDirectory(_ path: CgroupPath) throws(CgroupError) -> FileDescriptor {
        let fd = openBeneath(path.components, flags: O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { throw fail(.open, path, nil) }
        return FileDescriptor(rawValue: fd)
    }

    public func openForReading(_ file: CgroupFile, of path: CgroupPath) throws(CgroupError) -> FileDescriptor {
        let fd = openBeneath(path.components + [file.rawValue], flags: O_RDONLY)
        guard fd >= 0 else { throw fail(.open, path, file) }
        return FileDescriptor(rawValue: fd)
    }

    public func openForWriting(_ file: CgroupFile, of path: CgroupPath) throws(CgroupError) -> FileDescriptor {
        let fd = openBeneath(path.components + [file.rawValue], flags: O_WRONLY)
        guard fd >= 0 else { throw fail(.open, path, file) }
        return FileDescriptor(rawValue: fd)
    }

    /// The extended attribute that marks a cgroup Corral created.
    public static let creationMark = "user.corral.created"

    public func markCreatedByCorral(_ path: CgroupPath) throws(CgroupError) {
        let fd = openBeneath(path.components, flags: O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { throw fail(.open, path, nil) }
        defer { close(fd) }
        guard let setAttribute = Self.extendedAttributes.set else {
            throw CgroupError(
                code: .notSupported, operation: .write, path: absolutePath(path), value: Self.creationMark,
                message: "cannot mark \(absolutePath(path)) as Corral's: this C library has no fsetxattr",
                fix: "nothing to do: Corral removes a root it created only from the process that created it")
        }
        if setAttribute(fd, Self.creationMark, "1", 1, 0) < 0 {
            let error = Errno(rawValue: errno)
            throw CgroupError(
                code: error == .notSupported ? .notSupported : .io, operation: .write, path: absolutePath(path), value: Self.creationMark,
                errno: error,
                message: "cannot set the extended attribute '\(Self.creationMark)' on \(absolutePath(path)): \(error.description)",
                fix:
                    "nothing to do for this run; cgroupfs keeps user.* attributes from Linux 5.7 on, without them only the process that created the root removes it"
            )
        }
    }

    public func isMarkedCreatedByCorral(_ path: CgroupPath) -> Bool {
        guard let getAttribute = Self.extendedAttributes.get else { return false }
        let fd = openBeneath(path.components, flags: O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var value: UInt8 = 0
        return getAttribute(fd, Self.creationMark, &value, 1) == 1 && value == UInt8(ascii: "1")
    }

    /// Whether the directory at `path` (absolute; a final symlink is not
    /// followed) carries the creation mark; for `corral doctor`.
    public static func hasCreationMark(atPath path: String) -> Bool {
        guard let getAttribute = extendedAttributes.getByPath else { return false }
        var value: UInt8 = 0
        return getAttribute(path, creationMark, &value, 1) == 1 && value == UInt8(ascii: "1")
    }

    private typealias SetAttribute = @convention(c) (Int32, UnsafePointer<CChar>, UnsafeRawPointer?, Int, Int32) -> Int32
    private typealias GetAttribute = @convention(c) (Int32, UnsafePointer<CChar>, UnsafeMutableRawPointer?, Int) -> Int
    private typealias GetAttributeByPath = @convention(c) (UnsafePointer<CChar>, UnsafePointer<CChar>, UnsafeMutableRawPointer?, Int) -> Int

    /// fsetxattr(2), fgetxattr(2) and lgetxattr(2) from the C library:
    /// Glibc's Swift module does not import <sys/xattr.h>, so they are looked
    /// up once by name.
    private static let extendedAttributes: (set: SetAttribute?, get: GetAttribute?, getByPath: GetAttributeByPath?) = {
        let handle = dlopen(nil, RTLD_NOW)
        return (
            dlsym(handle, "fsetxattr").map { unsafeBitCast($0, to: SetAttribute.self) },
            dlsym(handle, "fgetxattr").map { unsafeBitCast($0, to: GetAttribute.self) },
            dlsym(handle, "lgetxattr").map { unsafeBitCast($0, to: GetAttributeByPath.self) }
        )
    }()

    public func lockTree() throws(CgroupError) -> TreeLock {
        // A new open file description, so the lock also excludes other
        // threads of this process, not only other processes.
        let fd = openat(anchorFD, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0, corral_lock_exclusive(fd) == 0 else {
            let error = fail(.lock, .anchor, nil)
            if fd >= 0 { close(fd) }
            throw error
        }
        return TreeLock {
            _ = corral_unlock(fd)
            close(fd)
        }
    }
}
