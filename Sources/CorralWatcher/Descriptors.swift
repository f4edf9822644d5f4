internal import CorralCgroup
internal import CorralCore
internal import CorralLinux
internal import SystemPackage

#if canImport(Glibc)
    internal import Glibc
#endif

/// The files whose changes the kernel announces, most telling first.
let notifyingFiles: [CgroupFile] = [.memoryEvents, .pidsEvents, .events]

/// One decoded inotify event.
struct InotifyEvent {
    var descriptor: Int32
    var mask: UInt32

    var isModify: Bool { mask & UInt32(IN_MODIFY) != 0 }
    /// The watch is gone (file deleted, filesystem unmounted, or removed by us).
    var isIgnored: Bool { mask & UInt32(IN_IGNORED) != 0 }
    var isDeleteSelf: Bool { mask & UInt32(IN_DELETE_SELF) != 0 }
    var isOverflow: Bool { mask & UInt32(IN_Q_OVERFLOW) != 0 }
}

enum Inotify {
    static let watchMask = UInt32(IN_MODIFY) | UInt32(IN_DONT_FOLLOW)

    /// Adds a watch; the watch descriptor or the errno.
    static func add(_ fd: Int32, path: String) -> Result<Int32, Errno> {
        valueOrErrno(inotify_add_watch(fd, path, watchMask))
    }

    /// Removes a watch. Its only failure, EINVAL, means the kernel already
    /// dropped it (its IN_IGNORED is queued), which is what was wanted.
    static func remove(_ fd: Int32, _ wd: Int32) {
        if case .failure(let error) = nothingOrErrno(inotify_rm_watch(fd, wd)) {
            assert(error == .invalidArgument, "inotify_rm_watch(\(wd)): \(error.name)")
        }
    }

    /// Reads every queued event from the non-blocking inotify fd.
    static func drain(_ fd: Int32, buffer: UnsafeMutableRawBufferPointer) -> [InotifyEvent] {
        var events: [InotifyEvent] = []
        let header = MemoryLayout<inotify_event>.size
        while true {
            // EAGAIN: drained. Anything else cannot be retried usefully;
            // the next poll reports the fd again if something is pending.
            guard case .success(let count) = retryOnInterrupt({ read(fd, buffer.baseAddress, buffer.count) }), count > 0 else {
                break
            }
            var offset = 0
            while offset + header <= count {
                let wd = buffer.loadUnaligned(fromByteOffset: offset, as: Int32.self)
                let mask = buffer.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                let length = buffer.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self)
                events.append(InotifyEvent(descriptor: wd, mask: mask))
                offset += header + Int(length)
            }
        }
        return events
    }
}

/// Errors of the watcher's own syscalls, shaped like the cgroup layer's.
extension CgroupError {
    static func inotify(_ errno: Errno, path: String) -> CgroupError {
        switch errno {
        case .noSpace:
            return CgroupError(
                code: .limitReached, operation: .wait, path: path, errno: errno,
                message: "cannot watch \(path): the inotify watch limit of this user is reached",
                fix: "raise fs.inotify.max_user_watches (sysctl -w fs.inotify.max_user_watches=524288)")
        case .tooManyOpenFiles, .tooManyOpenFilesInSystem:
            return CgroupError(
                code: .limitReached, operation: .wait, path: path, errno: errno,
                message: "cannot create an inotify instance: the user's inotify instance limit or the fd limit is reached",
                fix: "raise fs.inotify.max_user_instances or the open-files limit (ulimit -n)")
        default:
            return CgroupError.explain(errno, operation: .wait, path: path, file: nil)
        }
    }

    static func stopped(_ path: String) -> CgroupError {
        CgroupError(
            code: .notSupported, operation: .wait, path: path,
            message: "cannot watch \(path): the watcher has been stopped")
    }

    /// The cgroup is gone (ENODEV while open, ENOENT after).
    var meansRemoved: Bool { code == .removed || code == .notFound }
}

/// Arms PSI triggers on pressure files.
enum PressureTriggers {
    enum Outcome {
        case armed(Int32, PressureThreshold)
        /// The cgroup went away meanwhile.
        case gone
        /// This host (kernel, privileges, filesystem) offers none.
        case unavailable(String)
    }

    static func arm(
        _ file: CgroupFile, of path: CgroupPath, fs: any CgroupFilesystem, threshold: PressureThreshold, checkFilesystem: Bool
    ) -> Outcome {
        let descriptor: FileDescriptor
        do {
            descriptor = try fs.openForWriting(file, of: path)
        } catch {
            if error.code == .removed { return .gone }
            return .unavailable(error.message)
        }
        let where_ = "\(fs.absolutePath(path))/\(file.rawValue)"
        if checkFilesystem {
            let kind = FilesystemKind(magic: (try? descriptor.filesystemType()) ?? -1)
            guard kind == .cgroup2 else {
                try? descriptor.close()
                return .unavailable("\(where_) is not on a cgroup2 filesystem (\(kind.rawValue))")
            }
        }
        var candidates = [threshold]
        if let variant = threshold.unprivilegedVariant { candidates.append(variant) }
        var failure = Errno(rawValue: 0)
        for candidate in candidates {
            // A failed write leaves no trigger on the fd, so the next one may try again.
            let text = Array(candidate.triggerText.utf8)
            switch Result(catching: { () throws(Errno) in try descriptor.writeOnce(text) }) {
            case .success(text.count): return .armed(descriptor.rawValue, candidate)
            case .success: failure = .ioError
            case .failure(let error): failure = error
            }
            // Only EINVAL (unprivileged window, 6.4+) and EPERM are worth the 2 s variant.
            if failure != .invalidArgument && failure != .notPermitted { break }
        }
        try? descriptor.close()
        if failure == .operationNotSupportedByDevice { return .gone }
        return .unavailable("writing '\(threshold.triggerText)' to \(where_) failed: \(failure.name) (\(failure.description))")
    }
}
