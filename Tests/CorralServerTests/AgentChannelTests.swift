import CorralClient
import CorralCore
import CorralEngine
import Foundation
import Testing

/// The agent's side of the channel (CorralClient's AgentChannel) against a
/// live server: typed messages as an AsyncSequence, usage reports, acks.
@Suite("Agent channel")
struct AgentChannelTests {
    @Test func anAgentGetsItsScaleDownRequestAndDegradationPlanAndAcknowledges() async throws {
        var configuration = CorralConfiguration.builtIn
        configuration.escalation = EscalationPolicy(delays: [:], terminationGrace: .seconds(1))  // every step at once
        try await withLiveServer(configuration: configuration) { server in
            let registered = try await server.send(
                "POST", "/v1/agents/register",
                json: #"{"id":"chan1","command":["worker"],"limits":{"files":{"soft":10,"hard":20,"action":"scale_down"}}}"#)
            #expect(registered.status == 201)
            #expect(throws: AgentChannel.SetupError.notUnderCorral(missing: "CORRAL_SOCKET")) {
                try AgentChannel.fromEnvironment(["CORRAL_AGENT_ID": "chan1"])
            }
            let channel = try AgentChannel.fromEnvironment(["CORRAL_AGENT_ID": "chan1", "CORRAL_SOCKET": server.socketPath])

            let listener = Task { () throws -> [ChannelEvent] in
                var seen: [ChannelEvent] = []
                // after: 0 replays the recent events: the report below may
                // be handled before this stream reaches the server.
                for try await event in channel.messages(after: 0) {
                    seen.append(event)
                    if case .scaleDown = event.content { try channel.acknowledge(event, note: "closing idle files") }
                    if seen.contains(where: { $0.kind == "acknowledged" }), seen.contains(where: { $0.kind == "degradation_strategy" }) {
                        return seen
                    }
                }
                return seen
            }
            try await offPool { try channel.report(usage: [.files: 25]) }

            let seen = try await withThrowingTaskGroup(of: [ChannelEvent].self) { group in
                group.addTask { try await listener.value }
                group.addTask {
                    try await Task.sleep(for: .seconds(20))
                    listener.cancel()
                    return []
                }
                let first = try await group.next() ?? []
                group.cancelAll()
                return first
            }
            let kinds = seen.map(\.kind)
            let request = seen.lazy.compactMap { if case .scaleDown(let request) = $0.content { request } else { nil } }.first
            #expect(request?.resource == .files)
            #expect(request?.target == 16, "80% of the hard limit 20")
            let plan = seen.lazy.compactMap { if case .degradation(let plan) = $0.content { plan } else { nil } }.first
            #expect(plan?.level == .emergency, "25 of a soft limit of 10 is 2.5×")
            #expect(plan?.strategies.map(\.strategy) == DegradationStrategy.plan(for: .files, at: .emergency))
            #expect(plan?.strategies.first?.parameters["pool_size_factor"] == .number(0.5), "parameter names as sent")
            #expect(kinds.contains("acknowledged"), "\(kinds)")
            #expect(seen.allSatisfy { $0.sequence > 0 })

            // The status shows the level and the pending request; the plan is recorded.
            let status = try await server.send("GET", "/v1/agents/chan1")
            let json = try JSONSerialization.jsonObject(with: Data(status.body)) as? [String: Any]
            #expect((json?["pending_requests"] as? [Any])?.count == 1)
            #expect(((json?["degradation"] as? [[String: Any]])?.first?["level"] as? String) == "emergency")
            let recorded = try await server.engine.degradationHistory(agent: "chan1", limit: 10)
            #expect(recorded.map(\.level) == [.emergency])
        }
    }

    @Test func eventsDecodeIntoTypedMessages() throws {
        func decode(_ json: String) throws -> AgentMessage {
            try AgentChannel.decode(ServerSentEvent(id: "1", event: nil, data: json)).content
        }
        #expect(
            try decode(
                #"{"sequence":1,"at":"2026-11-29T10:00:00.000Z","kind":"throttle_notice","message":"m","resource":"cpu","factor":0.85}"#)
                == .throttle(resource: .cpu, factor: 0.85))
        #expect(
            try decode(#"{"sequence":2,"at":"2026-11-29T10:00:00.000Z","kind":"termination_notice","message":"m","grace_seconds":5}"#)
                == .termination(graceSeconds: 5))
        #expect(try decode(#"{"sequence":3,"at":"2026-11-29T10:00:00.000Z","kind":"suspended","message":"m"}"#) == .suspended)
        #expect(
            try decode(#"{"sequence":4,"at":"2026-11-29T10:00:00.000Z","kind":"violation","message":"m"}"#)
                == .other(kind: "violation", message: "m"))
        // A kind without its fields is not mistaken for the typed message.
        #expect(
            try decode(#"{"sequence":5,"at":"2026-11-29T10:00:00.000Z","kind":"throttle_notice","message":"m"}"#)
                == .other(kind: "throttle_notice", message: "m"))
        #expect(throws: (any Error).self) { try decode("not json") }
    }
}
