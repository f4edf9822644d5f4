import CorralJournal
import Logging
import Synchronization
import Testing

@Suite struct JournalLogHandlerTests {
    @Test func levelsMapToSyslogPriorities() {
        #expect(JournalEntry.priority(.critical) == 2)
        #expect(JournalEntry.priority(.error) == 3)
        #expect(JournalEntry.priority(.warning) == 4)
        #expect(JournalEntry.priority(.notice) == 5)
        #expect(JournalEntry.priority(.info) == 6)
        #expect(JournalEntry.priority(.debug) == 7)
        #expect(JournalEntry.priority(.trace) == 7)
    }

    @Test func metadataKeysBecomeCorralFields() {
        #expect(JournalEntry.fieldName("agent") == "CORRAL_AGENT")
        #expect(JournalEntry.fieldName("cgroup-root") == "CORRAL_CGROUP_ROOT")
        #expect(JournalEntry.fieldName("Ärger.x") == "CORRAL__RGER_X")
        #expect(JournalEntry.fieldName("message_id") == "MESSAGE_ID")
        #expect(JournalEntry.fieldName(String(repeating: "k", count: 100)).count == 64)
    }

    @Test func anEntryCarriesMessagePriorityIdentifierLocationAndMetadata() {
        let fields = JournalEntry.fields(
            level: .notice, message: "throttle a1 cpu: succeeded\nsecond line",
            metadata: ["agent": "a1", "outcome": .stringConvertible(true), "message_id": "5778c11af50240aea154c588b621e74c"],
            identifier: "corrald", file: "Engine.swift", function: "f()", line: 12)
        #expect(
            fields == [
                "MESSAGE=throttle a1 cpu: succeeded\nsecond line", "PRIORITY=5", "SYSLOG_IDENTIFIER=corrald", "CODE_FILE=Engine.swift",
                "CODE_LINE=12", "CODE_FUNC=f()", "CORRAL_AGENT=a1", "MESSAGE_ID=5778c11af50240aea154c588b621e74c",
                "CORRAL_OUTCOME=true",
            ])
    }

    @Test func theHandlerMergesLoggerAndCallMetadataAndSendsOnce() {
        let sent = Mutex<[[String]]>([])
        var handler = JournalLogHandler(identifier: "test") { fields in
            sent.withLock { $0.append(fields) }
            return nil
        }
        handler.logLevel = .debug
        handler[metadataKey: "group"] = "standard_agent"
        handler[metadataKey: "agent"] = "from-logger"
        let logger = Logger(label: "corral") { _ in handler }
        logger.debug("hello", metadata: ["agent": "a2"])
        logger.trace("below the level")
        let entries = sent.withLock { $0 }
        #expect(entries.count == 1)
        #expect(entries.first?.contains("CORRAL_AGENT=a2") == true)
        #expect(entries.first?.contains("CORRAL_GROUP=standard_agent") == true)
        #expect(entries.first?.contains("PRIORITY=7") == true)
        #expect(entries.first?.first == "MESSAGE=hello")
    }
}
