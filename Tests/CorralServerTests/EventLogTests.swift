import CorralAPI
import CorralCore
import Logging
import Testing

@testable import CorralServer

/// What the daemon logs (to the journal under systemd) for each engine event:
/// a fixed MESSAGE_ID per kind, the agent, group, resource, action and outcome.
@Suite struct EventLogTests {
    let at = Timestamp(milliseconds: 1_000)

    @Test func anEnforcementActionCarriesItsActionOutcomeAndFields() throws {
        let violation = Violation(agent: "a1", resource: .memory, kind: .hard, current: 600, limit: 500)
        let record = EnforcementRecord(violation: violation, action: .terminate, at: at, succeeded: false, details: "x")
        let event = CorralEvent(at: at, kind: .enforcement, agent: "a1", message: "terminate a1: failed", record: record)
        let entry = try #require(EventLog.entry(event, group: "heavy_computation"))
        #expect(entry.level == .error)
        #expect(entry.message == "terminate a1: failed")
        #expect(
            entry.metadata == [
                "agent": "a1", "group": "heavy_computation", "resource": "memory", "action": "terminate", "outcome": "failed",
                "message_id": .string(EventLog.MessageID.action),
            ])
        let succeeded = CorralEvent(
            at: at, kind: .enforcement, agent: "a1", message: "warn",
            record: EnforcementRecord(violation: violation, action: .warn, at: at, succeeded: true, details: ""))
        #expect(EventLog.entry(succeeded, group: nil)?.level == .notice)
        #expect(EventLog.entry(succeeded, group: nil)?.metadata["outcome"] == "succeeded")
        #expect(EventLog.entry(succeeded, group: nil)?.metadata["group"] == nil)
    }

    @Test func eachKindHasItsOwnMessageIDAndChattyKindsAreNotLogged() {
        func id(_ kind: CorralEvent.Kind) -> String? {
            let violation = Violation(agent: "a1", resource: .cpu, kind: .soft, current: 2, limit: 1)
            let event = CorralEvent(at: at, kind: kind, agent: "a1", message: "m", violation: violation)
            return EventLog.entry(event, group: "g").flatMap { entry in
                if case .string(let id) = entry.metadata["message_id"] { id } else { nil }
            }
        }
        #expect(id(.violation) == EventLog.MessageID.violation)
        #expect(id(.agentStarted) == EventLog.MessageID.agentStarted)
        #expect(id(.agentExited) == EventLog.MessageID.agentEnded)
        #expect(id(.agentRemoved) == EventLog.MessageID.agentEnded)
        #expect(id(.agentReattached) == EventLog.MessageID.agentReattached)
        #expect(id(.degradationStrategy) == EventLog.MessageID.degradation)
        #expect(id(.recoveryStage) == EventLog.MessageID.degradation)
        #expect(id(.suspended) == EventLog.MessageID.suspension)
        #expect(id(.daemon) == EventLog.MessageID.daemon)
        for chatty in [CorralEvent.Kind.usageReported, .acknowledged, .throttleNotice, .suspendNotice] {
            #expect(id(chatty) == nil, "\(chatty)")
        }
        let ids = [
            EventLog.MessageID.violation, EventLog.MessageID.action, EventLog.MessageID.agentStarted, EventLog.MessageID.agentEnded,
            EventLog.MessageID.agentReattached, EventLog.MessageID.reload, EventLog.MessageID.degradation, EventLog.MessageID.suspension,
            EventLog.MessageID.daemon,
        ]
        #expect(Set(ids).count == ids.count)
        #expect(ids.allSatisfy { $0.count == 32 && $0.allSatisfy(\.isHexDigit) })
    }
}
