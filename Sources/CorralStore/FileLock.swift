internal import CorralLinux
internal import Foundation
internal import Synchronization
internal import SystemPackage

#if canImport(Glibc)
    internal import Glibc
#elseif canImport(Darwin)
    internal import Darwin
#endif

/// An exclusive `flock(2)` on `<database>-lock`, held while a store is open,
/// so that a second `corral serve` on the same state fails at once with a
/// clear message instead of two daemons interleaving writes. A sidecar file,
/// not the database itself: closing any descriptor of the database file would
/// drop SQLite's own POSIX locks. The kernel releases it when the holder dies
/// (kill -9 included), so a crash never leaves a stale lock.
final class FileLock: Sendable {
    let path: String
    private let descriptor: Mutex<Int32?>

    init(databasePath: String) throws {
        let path = databasePath + "-lock"
        self.path = path
        let fd: Int32
        switch retryOnInterrupt({ open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600) }) {
        case .success(let opened): fd = opened
        case .failure(let error):
            throw StoreError(
                code: error == .permissionDenied || error == .readOnlyFileSystem || error == .notPermitted
                    ? .permissionDenied : .cannotOpen,
                path: databasePath, operation: "opening",
                message: "state database \(databasePath): cannot create its lock file \(path): \(error.description)",
                fix: "check that \((databasePath as NSString).deletingLastPathComponent) exists and is writable by this user")
        }
        // A refusal is retried for a moment: the lock belongs to the open file
        // description, and a child forked by any thread of the last holder's
        // process (a test binary, a daemon spawning agents) shares it until
        // that child execs — a window of microseconds to a few milliseconds.
        var result: Result<Int32, Errno>
        let deadline = ContinuousClock.now.advanced(by: Self.patience)
        while true {
            result = retryOnInterrupt { flock(fd, LOCK_EX | LOCK_NB) }
            guard case .failure(.wouldBlock) = result, ContinuousClock.now < deadline else { break }
            usleep(10_000)
        }
        if case .failure(let error) = result {
            let holder = Self.readHolder(fd)
            close(fd)
            guard error == .wouldBlock else {
                throw StoreError(
                    code: .io, path: databasePath, operation: "opening",
                    message: "state database \(databasePath): cannot lock \(path): \(error.description)")
            }
            throw StoreError(
                code: .locked, path: databasePath, operation: "opening",
                message: "state database \(databasePath) is in use by another corral serve\(holder.map { " (pid \($0))" } ?? "")",
                fix: "stop the other daemon (systemctl stop corral), or give this one another state file")
        }
        // Who holds it, for the message above; a failure here loses only that detail.
        let pid = "\(getpid())\n"
        if ftruncate(fd, 0) == 0 {
            _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
        }
        descriptor = Mutex(fd)
    }

    /// How long a held lock is waited for before `.locked` is thrown.
    static let patience = Duration.milliseconds(500)

    deinit { release() }

    func release() {
        descriptor.withLock { fd in
            if let open = fd { close(open) }
            fd = nil
        }
    }

    private static func readHolder(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        return Int32(String(decoding: buffer[..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
