internal import CCorralLinux
public import SystemPackage

#if canImport(Glibc)
    internal import Glibc
#endif

extension FileDescriptor {
    /// Reads to the end of a small file: from the current position, or with
    /// pread(2) from `offset` (which also re-arms kernfs' change notification
    /// of a held cgroup file). More than `maximumBytes` throws EFBIG, for
    /// files a user names (a configuration that turns out to be a disk image).
    ///
    /// `shortReadIsEnd`: a read that returns less than asked is the end (true
    /// of cgroupfs and procfs files, which hand out their whole text in one
    /// read when it fits): one syscall per file instead of two. Not for pipes.
    public func readToEnd(
        fromAbsoluteOffset offset: Int64? = nil, maximumBytes: Int = .max, shortReadIsEnd: Bool = false
    ) throws(Errno) -> String {
        String(
            decoding: try readBytesToEnd(fromAbsoluteOffset: offset, maximumBytes: maximumBytes, shortReadIsEnd: shortReadIsEnd),
            as: UTF8.self)
    }

    /// `readToEnd`, as bytes (for callers that check the encoding themselves).
    public func readBytesToEnd(
        fromAbsoluteOffset offset: Int64? = nil, maximumBytes: Int = .max, shortReadIsEnd: Bool = false
    ) throws(Errno) -> [UInt8] {
        let chunkSize = 8192
        var bytes: [UInt8] = []
        var position = offset ?? 0
        while true {
            // A scratch buffer on the stack, not zeroed: a cgroup file is read
            // several times a second per agent.
            let count = try withUnsafeTemporaryAllocation(byteCount: chunkSize, alignment: 16) { buffer -> Result<Int, Errno> in
                let read = retryOnInterrupt {
                    offset == nil
                        ? Glibc.read(rawValue, buffer.baseAddress, buffer.count)
                        : Glibc.pread(rawValue, buffer.baseAddress, buffer.count, off_t(position))
                }
                if case .success(let count) = read, count > 0 {
                    bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
                }
                return read
            }.get()
            if count == 0 { break }
            if bytes.count > maximumBytes { throw .fileTooLarge }
            position += Int64(count)
            if shortReadIsEnd && count < chunkSize { break }
        }
        return bytes
    }

    /// Writes all of `bytes` in one write(2); the count written (cgroupfs
    /// takes a value in one write, so a short count is for the caller to judge).
    public func writeOnce(_ bytes: [UInt8]) throws(Errno) -> Int {
        try bytes.withUnsafeBytes { buffer in retryOnInterrupt { Glibc.write(rawValue, buffer.baseAddress, buffer.count) } }.get()
    }

    /// `statfs` f_type of the filesystem this descriptor is on.
    public func filesystemType() throws(Errno) -> Int {
        Int(try valueOrErrno(corral_fstatfs_type(rawValue)).get())
    }

    /// flock(LOCK_EX), waiting for the holder.
    public func lockExclusively() throws(Errno) {
        _ = try retryOnInterrupt { corral_lock_exclusive(rawValue) }.get()
    }

    /// flock(LOCK_UN).
    public func unlock() throws(Errno) {
        try nothingOrErrno(corral_unlock(rawValue)).get()
    }

    /// fsetxattr(2).
    public func setExtendedAttribute(_ name: String, to value: [UInt8]) throws(Errno) {
        try nothingOrErrno(value.withUnsafeBytes { corral_fsetxattr(rawValue, name, $0.baseAddress, $0.count, 0) }).get()
    }

    /// fgetxattr(2) into `capacity` bytes: the value (truncated to what fits,
    /// ERANGE when it does not fit at all).
    public func extendedAttribute(_ name: String, capacity: Int) throws(Errno) -> [UInt8] {
        var value = [UInt8](repeating: 0, count: capacity)
        let count = try value.withUnsafeMutableBytes { valueOrErrno(corral_fgetxattr(rawValue, name, $0.baseAddress, $0.count)) }.get()
        return Array(value[0..<count])
    }
}

/// Opens and reads a whole small file (/proc, cgroupfs, a configuration);
/// EFBIG past `maximumBytes`.
public func readWholeFile(atPath path: String, maximumBytes: Int = .max) throws(Errno) -> String {
    String(decoding: try readWholeFileBytes(atPath: path, maximumBytes: maximumBytes), as: UTF8.self)
}

/// `readWholeFile`, as bytes.
public func readWholeFileBytes(atPath path: String, maximumBytes: Int = .max) throws(Errno) -> [UInt8] {
    let descriptor = FileDescriptor(rawValue: try retryOnInterrupt { open(path, O_RDONLY | O_CLOEXEC) }.get())
    defer { try? descriptor.close() }
    return try descriptor.readBytesToEnd(maximumBytes: maximumBytes)
}

/// lgetxattr(2) of `path` (a final symlink is not followed) into `capacity` bytes.
public func extendedAttribute(_ name: String, ofPath path: String, capacity: Int) throws(Errno) -> [UInt8] {
    var value = [UInt8](repeating: 0, count: capacity)
    let count = try value.withUnsafeMutableBytes { valueOrErrno(corral_lgetxattr(path, name, $0.baseAddress, $0.count)) }.get()
    return Array(value[0..<count])
}

/// `statfs` f_type of the filesystem at `path`.
public func filesystemType(atPath path: String) throws(Errno) -> Int {
    Int(try valueOrErrno(corral_statfs_type(path)).get())
}

/// openat2(2) confined beneath `directory`: no symlinks, no magic links, no
/// other mount (ENOSYS before Linux 5.6). Close-on-exec.
public func openBeneath(_ directory: FileDescriptor, _ path: String, flags: Int32) throws(Errno) -> FileDescriptor {
    FileDescriptor(
        rawValue: try retryOnInterrupt {
            corral_openat2(directory.rawValue, path, flags | O_CLOEXEC, 0, corral_resolve_strict())
        }.get())
}

/// O_PATH, which Glibc's Swift module does not export.
public let openPathOnly: Int32 = corral_o_path()

/// Unix stream sockets.
public enum UnixSocket {
    /// A connected, close-on-exec AF_UNIX stream socket to `path`.
    public static func connect(to path: String) throws(Errno) -> FileDescriptor {
        let socket = FileDescriptor(rawValue: try valueOrErrno(corral_unix_socket()).get())
        switch retryOnInterrupt({ corral_unix_connect(socket.rawValue, path) }) {
        case .success: return socket
        case .failure(let error):
            try? socket.close()
            throw error
        }
    }
}
