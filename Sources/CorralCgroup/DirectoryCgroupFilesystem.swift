public import CorralCore
internal import CorralLinux
public import SystemPackage

#if canImport(Glibc)
    internal import Glibc
#endif

/// cgroupfs below a directory, through directory file descriptors.
///
/// Every path is opened relative to the anchor fd with openat2(2) and
/// RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
/// RESOLVE_NO_XDEV, so nothing reaches a path outside the anchor. Where openat2
/// is refused (kernels before 5.6; systemd's `RestrictSUIDSGID=`, which answers
/// it ENOSYS because its flags cannot be inspected): with one openat(2) of the
/// whole relative path when the anchor is a cgroup2 mount, whose directories
/// cannot hold a symlink and whose names Corral validated (`CgroupPath`: no `..`,
/// no `/`); elsewhere a component-by-component walk with O_NOFOLLOW.
public final class DirectoryCgroupFilesystem: CgroupFilesystem {
    /// How paths beneath the anchor are opened.
    enum Resolution: Equatable, Sendable {
        /// openat2 with RESOLVE_BENEATH and no symlinks, mounts or magic links.
        case openat2
        /// One openat of "a/b/file" with O_NOFOLLOW: on cgroup2 only, where no
        /// component can be a symlink (kernfs has none; symlink(2) there fails).
        case direct
        /// One openat per component, each refusing a symlink.
        case walk
    }

    /// The anchor's absolute path, for messages.
    public let anchorPath: String
    private let anchor: FileDescriptor
    let resolution: Resolution

    /// Opens `anchorPath` (a directory; the user's own path, so symlinks in it
    /// are followed once, here).
    public convenience init(anchorPath: String) throws(CgroupError) {
        try self.init(anchorPath: anchorPath, resolution: nil)
    }

    /// `resolution`: nil chooses (openat2 where it works, else `direct` on a cgroup2
    /// anchor, else the walk); tests force one.
    init(anchorPath: String, resolution forced: Resolution?) throws(CgroupError) {
        switch valueOrErrno(open(anchorPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {
        case .success(let fd): anchor = FileDescriptor(rawValue: fd)
        case .failure(let error): throw CgroupError.explain(error, operation: .open, path: anchorPath, file: nil)
        }
        self.anchorPath = anchorPath.count > 1 && anchorPath.hasSuffix("/") ? String(anchorPath.dropLast()) : anchorPath
        if let forced {
            resolution = forced
            return
        }
        // Any failure to open the anchor itself means openat2 is unusable here:
        // ENOSYS before 5.6 or under systemd's RestrictSUIDSGID=, EPERM from seccomp
        // profiles that predate it.
        if let probe = try? CorralLinux.openBeneath(anchor, ".", flags: openPathOnly) {
            try? probe.close()
            resolution = .openat2
        } else if (try? anchor.filesystemType()).map(FilesystemKind.init(magic:)) == .cgroup2 {
            resolution = .direct
        } else {
            resolution = .walk
        }
    }

    deinit { try? anchor.close() }

    /// `statfs` type of the anchor (cgroup2, tmpfs, …).
    public var anchorFilesystem: FilesystemKind {
        (try? anchor.filesystemType()).map(FilesystemKind.init(magic:)) ?? .missing
    }

    public func absolutePath(_ path: CgroupPath) -> String {
        path.components.isEmpty ? anchorPath : (anchorPath == "/" ? "" : anchorPath) + "/" + path.relative
    }

    private func absolutePath(_ file: CgroupFile, _ path: CgroupPath) -> String {
        absolutePath(path) + "/" + file.rawValue
    }

    /// Opens `components` beneath the anchor (close-on-exec).
    private func openBeneath(_ components: [String], flags: Int32) throws(Errno) -> FileDescriptor {
        switch resolution {
        case .openat2:
            return try CorralLinux.openBeneath(anchor, components.isEmpty ? "." : components.joined(separator: "/"), flags: flags)
        case .direct:
            // Under the hardened unit this is every cgroup file corrald opens: the walk cost
            // each file a dup, and an openat, fstat and close per directory above it.
            let relative = components.isEmpty ? "." : components.joined(separator: "/")
            return FileDescriptor(
                rawValue: try retryOnInterrupt { openat(anchor.rawValue, relative, flags | O_NOFOLLOW | O_CLOEXEC) }.get())
        case .walk:
            break
        }
        // Walk one directory at a time, never following a symlink. A symlink
        // fails as ELOOP, as with openat2: O_NOFOLLOW alone reports ENOTDIR for
        // a directory step, and O_PATH opens the link itself.
        var current = FileDescriptor(rawValue: try valueOrErrno(dup(anchor.rawValue)).get())
        for (index, name) in components.enumerated() {
            let last = index == components.count - 1
            let stepFlags = last ? flags | O_NOFOLLOW | O_CLOEXEC : openPathOnly | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
            let directory = current
            defer { try? directory.close() }
            let step = retryOnInterrupt { openat(directory.rawValue, name, stepFlags) }.map(FileDescriptor.init(rawValue:))
            switch step {
            case .success(let next) where stepFlags & openPathOnly != 0 && Self.isSymlink(fd: next):
                try? next.close()
                throw .tooManySymbolicLinkLevels
            case .success(let next):
                current = next
            case .failure where Self.isSymlink(name, in: directory):
                throw .tooManySymbolicLinkLevels
            case .failure(let error):
                throw error
            }
        }
        if components.isEmpty {
            defer { try? current.close() }
            return FileDescriptor(rawValue: try retryOnInterrupt { openat(current.rawValue, ".", flags | O_CLOEXEC) }.get())
        }
        return current
    }

    private static func isSymlink(fd: FileDescriptor) -> Bool {
        var status = stat()
        return fstat(fd.rawValue, &status) == 0 && status.st_mode & S_IFMT == S_IFLNK
    }

    private static func isSymlink(_ name: String, in directory: FileDescriptor) -> Bool {
        var status = stat()
        return fstatat(directory.rawValue, name, &status, AT_SYMLINK_NOFOLLOW) == 0 && status.st_mode & S_IFMT == S_IFLNK
    }

    private func fail(
        _ error: Errno, _ operation: CgroupError.Operation, _ path: CgroupPath, _ file: CgroupFile?, value: String? = nil
    ) -> CgroupError {
        CgroupError.explain(error, operation: operation, path: absolutePath(path), file: file, value: value)
    }

    /// Opens `file` of `path` (nil: the directory) beneath the anchor; a failure explained as one of `operation`.
    private func openCgroup(
        _ path: CgroupPath, _ file: CgroupFile? = nil, flags: Int32, for operation: CgroupError.Operation, value: String? = nil
    ) throws(CgroupError) -> FileDescriptor {
        do {
            return try openBeneath(path.components + (file.map { [$0.rawValue] } ?? []), flags: flags)
        } catch {
            throw fail(error, operation, path, file, value: value)
        }
    }

    public func exists(_ path: CgroupPath) throws(CgroupError) -> Bool {
        do {
            let fd = try openBeneath(path.components, flags: openPathOnly | O_DIRECTORY)
            try? fd.close()
            return true
        } catch .noSuchFileOrDirectory {
            return false
        } catch {
            throw fail(error, .open, path, nil)
        }
    }

    public func makeDirectory(_ path: CgroupPath) throws(CgroupError) {
        guard let parent = path.parent, let name = path.name else {
            throw CgroupError(
                code: .alreadyExists, operation: .makeDirectory, path: anchorPath, message: "\(anchorPath) already exists",
                fix: "nothing to create: \(anchorPath) is the directory Corral works in")
        }
        let parentFD = try openCgroup(parent, flags: openPathOnly | O_DIRECTORY, for: .makeDirectory)
        defer { try? parentFD.close() }
        if case .failure(let error) = nothingOrErrno(mkdirat(parentFD.rawValue, name, 0o755)) {
            throw fail(error, .makeDirectory, path, nil)
        }
    }

    public func removeDirectory(_ path: CgroupPath) throws(CgroupError) {
        guard let parent = path.parent, let name = path.name else {
            throw CgroupError(
                code: .notSupported, operation: .removeDirectory, path: anchorPath, message: "refusing to remove the anchor \(anchorPath)",
                fix: "Corral never removes the directory it works in; rmdir \(anchorPath) yourself if it is no longer wanted")
        }
        let parentFD = try openCgroup(parent, flags: openPathOnly | O_DIRECTORY, for: .removeDirectory)
        defer { try? parentFD.close() }
        if case .failure(let error) = nothingOrErrno(unlinkat(parentFD.rawValue, name, AT_REMOVEDIR)) {
            throw fail(error, .removeDirectory, path, nil)
        }
    }

    public func children(of path: CgroupPath) throws(CgroupError) -> [String] {
        let fd = try openCgroup(path, flags: O_RDONLY | O_DIRECTORY, for: .list)
        let dir: OpaquePointer
        switch pointerOrErrno(fdopendir(fd.rawValue)) {
        case .success(let opened): dir = opened
        case .failure(let error):
            try? fd.close()
            throw fail(error, .list, path, nil)
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
        guard let fd = try? openBeneath(path.components + [file.rawValue], flags: openPathOnly) else { return false }
        try? fd.close()
        return true
    }

    public func read(_ file: CgroupFile, of path: CgroupPath) throws(CgroupError) -> String {
        let fd = try openCgroup(path, file, flags: O_RDONLY, for: .read)
        defer { try? fd.close() }
        do {
            return try fd.readToEnd(shortReadIsEnd: true)
        } catch {
            throw fail(error, .read, path, file)
        }
    }

    public func write(_ value: String, to file: CgroupFile, of path: CgroupPath) throws(CgroupError) {
        let fd = try openCgroup(path, file, flags: O_WRONLY, for: .write, value: value)
        defer { try? fd.close() }
        let bytes = Array(value.utf8)
        let written: Int
        do {
            written = try fd.writeOnce(bytes)
        } catch {
            throw fail(error, .write, path, file, value: value)
        }
        if written != bytes.count {
            throw CgroupError(
                code: .io, operation: .write, path: absolutePath(file, path), value: value,
                message: "short write to \(absolutePath(file, path)): \(written) of \(bytes.count) bytes of '\(value)'",
                fix:
                    "retry; cgroupfs takes a value in one write, so a short write that repeats means \(absolutePath(file, path)) is not a cgroup file"
            )
        }
    }

    public func wait(
        for file: CgroupFile, of path: CgroupPath, timeout: Duration, until condition: (String) -> Bool
    ) throws(CgroupError) -> String? {
        let fd = try openCgroup(path, file, flags: O_RDONLY, for: .wait)
        defer { try? fd.close() }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while true {
            // Reading re-arms kernfs' change notification for this fd.
            let text: String
            do { text = try fd.readToEnd(fromAbsoluteOffset: 0, shortReadIsEnd: true) } catch { throw fail(error, .wait, path, file) }
            if condition(text) { return text }
            let remaining = clock.now.duration(to: deadline)
            if remaining <= .zero { return nil }
            var pollFD = pollfd(fd: fd.rawValue, events: Int16(POLLPRI), revents: 0)
            let milliseconds = Int32(min(Int64(Int32.max), max(1, remaining.microseconds / 1000 + 1)))
            // Interrupted: read again, and wait for what is left.
            switch valueOrErrno(poll(&pollFD, 1, milliseconds)) {
            case .success, .failure(.interrupted): continue
            case .failure(let error): throw fail(error, .wait, path, file)
            }
        }
    }

    public func openDirectory(_ path: CgroupPath) throws(CgroupError) -> FileDescriptor {
        try openCgroup(path, flags: O_RDONLY | O_DIRECTORY, for: .open)
    }

    public func openForReading(_ file: CgroupFile, of path: CgroupPath) throws(CgroupError) -> FileDescriptor {
        try openCgroup(path, file, flags: O_RDONLY, for: .open)
    }

    public func openForWriting(_ file: CgroupFile, of path: CgroupPath) throws(CgroupError) -> FileDescriptor {
        try openCgroup(path, file, flags: O_WRONLY, for: .open)
    }

    /// The extended attribute that marks a cgroup Corral created.
    public static let creationMark = "user.corral.created"

    public func markCreatedByCorral(_ path: CgroupPath) throws(CgroupError) {
        let fd = try openCgroup(path, flags: O_RDONLY | O_DIRECTORY, for: .open)
        defer { try? fd.close() }
        do {
            try fd.setExtendedAttribute(Self.creationMark, to: Array("1".utf8))
        } catch {
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
        guard let fd = try? openBeneath(path.components, flags: O_RDONLY | O_DIRECTORY) else { return false }
        defer { try? fd.close() }
        return (try? fd.extendedAttribute(Self.creationMark, capacity: 1)) == Array("1".utf8)
    }

    /// Whether the directory at `path` (absolute; a final symlink is not
    /// followed) carries the creation mark; for `corral doctor`.
    public static func hasCreationMark(atPath path: String) -> Bool {
        (try? extendedAttribute(creationMark, ofPath: path, capacity: 1)) == Array("1".utf8)
    }

    public func lockTree() throws(CgroupError) -> TreeLock {
        // A new open file description, so the lock also excludes other
        // threads of this process, not only other processes.
        let fd: FileDescriptor
        do {
            fd = FileDescriptor(rawValue: try retryOnInterrupt { openat(anchor.rawValue, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }.get())
        } catch {
            throw fail(error, .lock, .anchor, nil)
        }
        do {
            try fd.lockExclusively()
        } catch {
            try? fd.close()
            throw fail(error, .lock, .anchor, nil)
        }
        return TreeLock {
            try? fd.unlock()
            try? fd.close()
        }
    }
}
