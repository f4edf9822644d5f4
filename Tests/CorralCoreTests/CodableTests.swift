import CorralCore
import Foundation
import Testing

@Suite("JSON shapes")
struct CodableTests {
    func roundTrip<T: Codable & Equatable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(value)
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        #expect(try decoder.decode(T.self, from: data) == value)
        return String(decoding: data, as: UTF8.self)
    }

    @Test func runSummaryRoundTripsInSnakeCase() throws {
        let summary = RunSummary(
            agent: "a", group: "standard_agent", cgroup: "/x", command: ["true"], limits: QuotaGroup.standard.limits,
            termination: .signaled(signal: 9), wallSeconds: 1.5, cpu: CPUStat(usageUsec: 5, nrThrottled: 2),
            memoryPeakBytes: 10, memoryPeakExact: true, memoryEvents: MemoryEvents(oomKill: 1, oomGroupKill: 1),
            pidsPeak: 2, pidsPeakExact: false, pidsEvents: PidsEvents(max: 3), spawnMethod: "clone3",
            forwardedSignals: ["SIGTERM"], strayProcessesKilled: false)
        let json = try roundTrip(summary)
        #expect(json.contains("\"oom_kill\":1"))
        #expect(json.contains("\"nr_throttled\":2"))
        #expect(json.contains("\"limits\":{\"cpu\":{"))
        #expect(json.contains("\"termination\":{\"kind\":\"signaled\",\"signal\":9,\"signal_name\":\"SIGKILL\"}"))
        #expect(json.contains("\"action\":\"scale_down\""))
        _ = try roundTrip(Termination.exited(code: 3))
    }
}
