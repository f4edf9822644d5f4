internal import CorralLinux
internal import Foundation
internal import Synchronization
internal import SystemPackage

#if canImport(Glibc)
    internal import Glibc
#endif

/// An append-only file of JSON lines beside the database: the engine's
/// write-ahead intents (what a step is about to do, written before it does
/// it). Each entry is one `write(2)` on an `O_APPEND` descriptor, so a kill -9
/// of the daemon keeps every entry whose append returned (the page cache
/// outlives the process); not synced, so a power cut may lose the last ones,
/// as it may the database's last WAL frames. A line torn by a full disk is
/// cut off when the file is next opened, so the next entry starts clean.
///
/// One writer (the engine); `entries` is read once, at start-up.
public final class IntentLog: Sendable {
    public let path: String
    private let descriptor: Int32
    /// Appends since the file was opened or cleared.
    private let appended = Atomic<Int>(0)

    public init(path: String) throws {
        self.path = path
        switch retryOnInterrupt({ open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o600) }) {
        case .success(let fd): descriptor = fd
        case .failure(let error):
            throw StoreError(
                code: error == .permissionDenied || error == .readOnlyFileSystem ? .permissionDenied : .cannotOpen, path: path,
                operation: "opening the intent journal", message: "intent journal \(path): cannot open it: \(error.description)",
                fix: "check that \((path as NSString).deletingLastPathComponent) exists and is writable by this user")
        }
        try trimTornLine()
    }

    deinit { close(descriptor) }

    /// Appends `value` as one JSON line.
    public func append(_ value: some Encodable) throws {
        var line = Array(try StoreJSON.encode(value).utf8)
        line.append(UInt8(ascii: "\n"))
        let written = line.withUnsafeBytes { buffer in retryOnInterrupt { write(descriptor, buffer.baseAddress, buffer.count) } }
        switch written {
        case .success(let count) where count == line.count:
            appended.add(1, ordering: .relaxed)
        case .success(let count):
            // Out of space part-way: the torn line is cut off so the file stays whole lines.
            _ = retryOnInterrupt { ftruncate(descriptor, lseek(descriptor, 0, SEEK_END) - off_t(count)) }
            throw failure(.noSpace, "appending")
        case .failure(let error):
            throw failure(error, "appending")
        }
    }

    /// Every entry in order; lines that do not decode as `T` are skipped and described.
    public func entries<T: Decodable>(_ type: T.Type) throws -> (entries: [T], problems: [String]) {
        let bytes: [UInt8]
        do {
            bytes = try readWholeFileBytes(atPath: path)
        } catch {
            throw failure(error, "reading")
        }
        var entries: [T] = []
        var problems: [String] = []
        for (index, line) in bytes.split(separator: UInt8(ascii: "\n")).enumerated() {
            do {
                entries.append(try StoreJSON.decode(T.self, from: String(decoding: line, as: UTF8.self)))
            } catch {
                problems.append("intent journal \(path), line \(index + 1): unreadable (\(error)); skipped")
            }
        }
        return (entries, problems)
    }

    /// Empties the file (every entry in it is settled).
    public func clear() throws {
        if case .failure(let error) = retryOnInterrupt({ ftruncate(descriptor, 0) }) { throw failure(error, "clearing") }
        appended.store(0, ordering: .relaxed)
    }

    /// Entries appended since the file was opened or last cleared.
    public var appendedCount: Int { appended.load(ordering: .relaxed) }

    /// A file that does not end with a newline ends with a torn append: cut back to the last whole line.
    private func trimTornLine() throws {
        let bytes: [UInt8]
        do {
            bytes = try readWholeFileBytes(atPath: path)
        } catch {
            throw failure(error, "reading")
        }
        guard let last = bytes.last, last != UInt8(ascii: "\n") else { return }
        let keep = bytes.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0
        if case .failure(let error) = retryOnInterrupt({ ftruncate(descriptor, off_t(keep)) }) { throw failure(error, "trimming") }
    }

    private func failure(_ error: Errno, _ operation: String) -> StoreError {
        StoreError(
            code: error == .noSpace ? .diskFull : .io, path: path, operation: "\(operation) the intent journal",
            message: "intent journal \(path): \(operation) failed: \(error.description)",
            fix: error == .noSpace ? "free space on the state directory's filesystem" : nil)
    }
}
