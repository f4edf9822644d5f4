import CorralCore
import Foundation
import Testing

@testable import CorralStore

/// The intent journal's file: whole lines in order, a torn last line cut off, cleared at once;
/// and the database's mark of the settled ones.
@Suite("The intent journal and its mark")
struct IntentLogTests {
    struct Entry: Codable, Equatable {
        var sequence: Int
        var text: String
    }

    @Test("entries come back in order, after a reopen too; clear empties the file")
    func roundTrip() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/intents.log"
        let log = try IntentLog(path: path)
        let entries = (1...3).map { Entry(sequence: $0, text: "step \($0) ä\n\"quoted\"") }
        for entry in entries { try log.append(entry) }
        #expect(log.appendedCount == 3)
        #expect(try log.entries(Entry.self).entries == entries)

        let reopened = try IntentLog(path: path)
        #expect(try reopened.entries(Entry.self).entries == entries)
        try reopened.clear()
        #expect(try reopened.entries(Entry.self).entries.isEmpty)
        #expect(reopened.appendedCount == 0)
        // Appends after a clear start at the beginning (O_APPEND), not at the old end.
        try reopened.append(Entry(sequence: 4, text: "after"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)).count < 40)
        #expect(try reopened.entries(Entry.self).entries == [Entry(sequence: 4, text: "after")])
    }

    @Test("a line torn by a crash or a full disk is cut off at the next open; an unreadable line is skipped and named")
    func tornAndUnreadableLines() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/intents.log"
        let whole = #"{"sequence":1,"text":"one"}"# + "\n" + "not json\n" + #"{"sequence":3,"text":"three"}"# + "\n"
        try (whole + #"{"sequence":4,"te"#).write(toFile: path, atomically: false, encoding: .utf8)

        let log = try IntentLog(path: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == whole, "the torn line is gone")
        let (entries, problems) = try log.entries(Entry.self)
        #expect(entries == [Entry(sequence: 1, text: "one"), Entry(sequence: 3, text: "three")])
        #expect(problems.count == 1)
        #expect(problems.first?.contains("\(path), line 2: unreadable") == true, "\(problems)")
        try log.append(Entry(sequence: 5, text: "five"))
        #expect(try log.entries(Entry.self).entries.map(\.sequence) == [1, 3, 5])
    }

    @Test("a journal that cannot be opened says where and what to do")
    func unopenable() throws {
        let error = #expect(throws: StoreError.self) { try IntentLog(path: "/nonexistent-corral-dir/intents.log") }
        #expect(error?.code == .cannotOpen)
        #expect(error?.message.contains("/nonexistent-corral-dir/intents.log") == true)
        #expect(error?.fix?.contains("/nonexistent-corral-dir") == true)
    }

    @Test("the settled mark only rises, and is written in the step's transaction")
    func settledMark() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try CorralStore(path: directory.database)
        #expect(try store.settledIntent() == 0)
        try store.write { try $0.settle(intent: 5) }
        try store.write { try $0.settle(intent: 3) }
        #expect(try store.settledIntent() == 5)
        // A transaction that fails takes its mark with it.
        struct Refused: Error {}
        #expect(throws: Refused.self) {
            try store.write { transaction in
                try transaction.settle(intent: 9)
                throw Refused()
            }
        }
        #expect(try store.settledIntent() == 5)
        try store.close()
        let reopened = try CorralStore(path: directory.database)
        defer { try? reopened.close() }
        #expect(try reopened.settledIntent() == 5)
    }
}
