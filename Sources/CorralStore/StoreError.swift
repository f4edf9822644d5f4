public import CorralCore
internal import Foundation
internal import GRDB

/// A failure of the state database, with a message that names the database
/// path and what was being done, and what to do about it. Shaped like
/// NIOFS's FileSystemError: a code that can grow, a human message, the
/// underlying SQLite result code.
public struct StoreError: Error, Equatable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public var description: String { name }

        /// Another process holds the database (another `corral serve`).
        public static let locked = Code(name: "locked")
        /// The file is not an SQLite database (garbage, truncated, encrypted).
        public static let notADatabase = Code(name: "notADatabase")
        /// An SQLite database, but not Corral's.
        public static let notCorral = Code(name: "notCorral")
        /// Written by a newer Corral whose schema this binary does not know.
        public static let newerSchema = Code(name: "newerSchema")
        /// SQLite or a stored value says the content is damaged.
        public static let corrupt = Code(name: "corrupt")
        public static let diskFull = Code(name: "diskFull")
        /// The file, its directory or the filesystem is read-only or not ours.
        public static let permissionDenied = Code(name: "permissionDenied")
        /// The file cannot be opened or created (missing directory, …).
        public static let cannotOpen = Code(name: "cannotOpen")
        /// A ladder was saved for an agent the store does not have.
        public static let unknownAgent = Code(name: "unknownAgent")
        /// A value cannot be stored (e.g. a JSON encoding failure).
        public static let invalidValue = Code(name: "invalidValue")
        /// The store was closed.
        public static let closed = Code(name: "closed")
        public static let io = Code(name: "io")
        public static let other = Code(name: "other")
    }

    public var code: Code
    /// The database file (":memory:" for an in-memory store).
    public var path: String
    /// What was being done: "saving agent 'a1'", "opening".
    public var operation: String
    /// What happened, naming the path and the operation.
    public var message: String
    /// What the user can do about it.
    public var fix: String?
    /// The extended SQLite result code, when SQLite reported the failure.
    public var sqliteCode: Int32?

    public init(code: Code, path: String, operation: String, message: String, fix: String? = nil, sqliteCode: Int32? = nil) {
        self.code = code
        self.path = path
        self.operation = operation
        self.message = message
        self.fix = fix
        self.sqliteCode = sqliteCode
    }

    public var description: String {
        var text = message
        if let sqliteCode { text += " (SQLite error \(sqliteCode))" }
        if let fix { text += "\n  fix: \(fix)" }
        return text
    }
}

extension StoreError {
    /// Turns whatever `operation` on the database at `path` threw into a
    /// `StoreError`. Errors that are not the store's (thrown by a caller's
    /// transaction body) pass through unchanged.
    static func explain(_ error: any Error, path: String, operation: String) -> any Error {
        switch error {
        case let error as StoreError:
            return error
        case let error as DatabaseError:
            return explain(error, path: path, operation: operation)
        case let error as RowDecodingError:
            return StoreError(
                code: .corrupt, path: path, operation: operation,
                message: "state database \(path): \(operation) failed: a stored value has the wrong type (\(error))",
                fix: corruptFix(path))
        case let error as DecodingError:
            return StoreError(
                code: .corrupt, path: path, operation: operation,
                message: "state database \(path): \(operation) failed: a stored JSON value is unreadable (\(describe(error)))",
                fix: corruptFix(path))
        case let error as EncodingError:
            return StoreError(
                code: .invalidValue, path: path, operation: operation,
                message: "state database \(path): \(operation) failed: the value cannot be encoded as JSON (\(error))")
        default:
            return error
        }
    }

    static func explain(_ error: DatabaseError, path: String, operation: String) -> StoreError {
        let failed = "state database \(path): \(operation) failed"
        let sqlite = error.message.map { ": \($0)" } ?? ""
        let directory = (path as NSString).deletingLastPathComponent
        func make(_ code: Code, _ message: String, fix: String? = nil) -> StoreError {
            StoreError(
                code: code, path: path, operation: operation, message: message, fix: fix,
                sqliteCode: error.extendedResultCode.rawValue)
        }
        switch error.resultCode {
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return make(
                .locked,
                "\(failed): the database is locked by another process (another corral serve, or a sqlite3 shell in a write transaction)",
                fix: "stop the other process, or give this daemon its own state file")
        case .SQLITE_NOTADB:
            return make(
                .notADatabase, "\(failed): the file is not an SQLite database (or is encrypted, or damaged in its header)",
                fix: "move the file aside; corral serve starts with an empty state and re-attaches running agents from the cgroup tree")
        case .SQLITE_CORRUPT:
            return make(.corrupt, "\(failed): the database is damaged\(sqlite)", fix: corruptFix(path))
        case .SQLITE_FULL:
            return make(
                .diskFull, "\(failed): the disk holding \(directory) is full",
                fix: "free space on that filesystem; old enforcement history can be pruned once the daemon runs again")
        case .SQLITE_READONLY, .SQLITE_PERM, .SQLITE_AUTH:
            return make(
                .permissionDenied, "\(failed): the database is read-only for this process\(sqlite)",
                fix:
                    "run corral serve as the owner of \(path) (normally root), and check that \(directory) is writable and not on a read-only mount"
            )
        case .SQLITE_CANTOPEN:
            return make(
                .cannotOpen, "\(failed): cannot open or create \(path)\(sqlite)",
                fix: "check that \(directory) exists and is writable (corral serve creates it at start-up)")
        case .SQLITE_IOERR:
            return make(
                .io, "\(failed): an I/O error occurred\(sqlite)",
                fix: "check the disk and the kernel log (dmesg) for errors on \(directory)")
        case .SQLITE_MISUSE where error.message?.contains("closed") == true:
            return make(.closed, "\(failed): the store has been closed")
        case .SQLITE_CONSTRAINT where error.extendedResultCode == .SQLITE_CONSTRAINT_FOREIGNKEY:
            return make(
                .unknownAgent,
                "\(failed): an escalation state was saved for an agent that is not in the store; nothing of the transaction was written",
                fix: "save the agent in the same transaction as its ladder")
        case .SQLITE_CONSTRAINT:
            return make(.invalidValue, "\(failed): the value breaks a constraint of the schema\(sqlite)")
        default:
            return make(.other, "\(failed)\(sqlite.isEmpty ? ": \(error)" : sqlite)")
        }
    }

    static func corruptFix(_ path: String) -> String {
        "stop corral serve and move \(path) (with its -wal and -shm files) aside, or restore a backup; "
            + "corral serve then starts with an empty state and re-attaches running agents from the cgroup tree"
    }

    /// "key 'limits' at agent.limits: …", without Swift's nested dumps.
    static func describe(_ error: DecodingError) -> String {
        func at(_ context: DecodingError.Context) -> String {
            context.codingPath.isEmpty ? "" : " at '\(context.codingPath.map(\.stringValue).joined(separator: "."))'"
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "missing '\(key.stringValue)'\(at(context))"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            return context.debugDescription + at(context)
        @unknown default:
            return "\(error)"
        }
    }
}

extension StoreError: TransientFailure {
    /// The database may be writable later: space freed, the disk back, the lock released.
    public var isTransient: Bool { [.diskFull, .io, .locked, .permissionDenied, .cannotOpen].contains(code) }
}
