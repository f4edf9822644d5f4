import CorralAPI
import CorralClient
import CorralCore
import Foundation
import Testing

/// The client's warm-up samples are what the daemon's encoder writes for the
/// same values, byte for byte, and decode back to them.
@Suite("codec samples")
struct CodecSamplesTests {
    static let record = AgentRecord(
        id: "warm", group: QuotaGroup.defaultGroupName, state: .starting, origin: .registered, pid: nil, command: ["true"],
        limits: QuotaGroup.standard.limits, cgroup: "/", createdAt: Timestamp(milliseconds: 0), security: .standard)
    static let records = HistoryList(records: [
        EnforcementRecord(
            violation: Violation(agent: "warm", resource: .memory, kind: .soft, current: 1, limit: 1), action: .warn,
            at: Timestamp(milliseconds: 0), succeeded: true, details: "")
    ])

    @Test func theAgentRowIsTheEncodersOwn() throws {
        let encoded = String(decoding: try CorralClient.encoder.encode(Self.record), as: UTF8.self)
        #expect(encoded == CodecSamples.agentRecord, "CodecSamples.agentRecord is now:\n\(encoded)")
        let decoded = try CorralClient.decoder.decode(AgentRecord.self, from: Data(CodecSamples.agentRecord.utf8))
        #expect(decoded.id == "warm")
        #expect(decoded.limits == Self.record.limits)
        #expect(decoded.security == Self.record.security)
    }

    @Test func theRecordsAreTheEncodersOwn() throws {
        let encoded = String(decoding: try CorralClient.encoder.encode(Self.records), as: UTF8.self)
        #expect(encoded == CodecSamples.records, "CodecSamples.records is now:\n\(encoded)")
        let decoded = try CorralClient.decoder.decode(HistoryList.self, from: Data(CodecSamples.records.utf8))
        #expect(decoded.records.map(\.action) == [.warn])
        #expect(decoded.records.first?.succeeded == true)
    }
}
