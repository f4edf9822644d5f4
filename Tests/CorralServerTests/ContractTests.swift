import CorralAPI
import CorralCgroup
import CorralClient
import CorralCore
import CorralEngine
import CorralServer
import CorralTestSupport
import Foundation
import Synchronization
import Testing

/// Sends requests to a live server and checks every answer against openapi/corral.yaml.
struct ContractSession {
    let server: LiveServer
    let coverage: Coverage
    let document = OpenAPIDocument.shared

    /// Sends a request, checks the answer against the document and its status against `expect`.
    @discardableResult
    func call(
        _ method: String, _ path: String, _ body: String? = nil, expect status: Int,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> Reply {
        let reply = try await server.send(method, path, body: body.map { Array($0.utf8) })
        for problem in document.problems(with: reply, coverage: coverage) {
            Issue.record(Comment(rawValue: problem), sourceLocation: sourceLocation)
        }
        #expect(
            reply.status == status, "\(method) \(path): expected \(status), got \(reply.status): \(reply.text.prefix(400))",
            sourceLocation: sourceLocation)
        if reply.status >= 400 {
            #expect(reply.json?["error"]?["message"]?.string?.isEmpty == false, sourceLocation: sourceLocation)
        }
        return reply
    }
}

/// Follows an event stream in the background and keeps what arrives.
final class EventCollector: Sendable {
    private final class State: Sendable {
        let received = Mutex<[ServerSentEvent]>([])
        let failure = Mutex<String?>(nil)
    }

    private let state = State()
    private let task: Task<Void, Never>

    init(_ stream: AsyncThrowingStream<ServerSentEvent, any Error>) {
        let state = state
        task = Task {
            do {
                for try await event in stream { state.received.withLock { $0.append(event) } }
            } catch {
                state.failure.withLock { $0 = "\(error)" }
            }
        }
    }

    var events: [ServerSentEvent] { state.received.withLock { $0 } }
    var error: String? { state.failure.withLock { $0 } }

    /// The first event matching `predicate`, waiting up to `timeout`.
    func first(within timeout: Duration = .seconds(10), where predicate: (ServerSentEvent) -> Bool) async -> ServerSentEvent? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let event = events.first(where: predicate) { return event }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return events.first(where: predicate)
    }

    func stop() { task.cancel() }

    deinit { task.cancel() }
}

@Suite("The API against openapi/corral.yaml")
struct ContractTests {
    let document = OpenAPIDocument.shared

    @Test("the checker rejects what the document does not allow")
    func checkerCatchesDeviations() throws {
        let checker = document.checker
        let record: JSON = .object(["$ref": .string("#/components/schemas/EnforcementRecord")])
        let good = try JSON.parse(
            #"{"id":3,"agent":"a1","resource":"memory","kind":"hard","current":6e8,"limit":5e8,"action":"warn","at":"2026-11-29T09:50:00.123Z","succeeded":true,"details":"x"}"#
        )
        #expect(checker.problems(good, record).isEmpty)
        let cases: [(String, String)] = [
            (#""extra":1"#, "not in the document"),
            (#""id":3.5"#, "not of type integer"),
            (#""resource":"gpu""#, "is not one of"),
            (#""at":"yesterday""#, "not a date-time"),
            (#""succeeded":"yes""#, "not of type boolean"),
        ]
        for (change, expected) in cases {
            guard case .object(var members) = good, case .object(let patch) = try JSON.parse("{\(change)}") else { continue }
            members.merge(patch) { _, new in new }
            let problems = checker.problems(.object(members), record)
            #expect(problems.contains { $0.contains(expected) }, "\(change): \(problems)")
        }
        guard case .object(var missing) = good else { return }
        missing["details"] = nil
        #expect(checker.problems(.object(missing), record).contains { $0.contains("required field 'details'") })
        #expect(checker.problems(.number(1, integral: true), .object(["type": .string("string"), "oneOf": .array([])])).count == 2)
        // allOf applies each schema; const pins a value.
        let pinned = JSON.object([
            "allOf": .array([
                .object(["type": .string("object"), "required": .array([.string("kind")])]),
                .object(["properties": .object(["kind": .object(["const": .string("suspended")])])]),
            ])
        ])
        #expect(checker.problems(.object(["kind": .string("suspended")]), pinned).isEmpty)
        #expect(
            checker.problems(.object(["kind": .string("thawed")]), pinned).contains { $0.contains("is not the constant \"suspended\"") })
        #expect(checker.problems(.object([:]), pinned).contains { $0.contains("required field 'kind'") })
        #expect(checker.problems(.null, .object(["allOf": .array([])])).contains { $0.contains("non-empty") })
        #expect(throws: JSONParseError.self) { try JSON.parse(#"{"a":1,"a":2}"#) }
        #expect(throws: JSONParseError.self) { try JSON.parse("[1,]") }
        #expect(document.template(for: "/v1/agents/register") == "/v1/agents/register")
        #expect(document.template(for: "/v1/agents/x1") == "/v1/agents/{id}")
        #expect(document.template(for: "/v1/agents/x1/stop") == "/v1/agents/{id}/stop")
        #expect(document.template(for: "/v1/nothing") == nil)
        #expect(document.operations.count == 40)
    }

    /// Found by Schemathesis: a sample read for the metrics carries inactive_file and the PSI
    /// totals, which the document did not allow.
    @Test("a sample with every field read is what CgroupSample documents")
    func fullSample() throws {
        let sample = CgroupSample(
            memoryCurrent: 1 << 20, memoryPeak: 2 << 20, memoryStat: MemoryStat(fields: ["anon": 4096, "inactive_file": 8192]),
            pidsCurrent: 3, pidsPeak: 4,
            pressure: PressureTotals(cpuSome: 1, cpuFull: 2, memorySome: 3, memoryFull: 4, ioSome: 5, ioFull: 6))
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let json = try JSON.parse(String(decoding: try encoder.encode(sample), as: UTF8.self))
        let problems = document.checker.problems(json, .object(["$ref": .string("#/components/schemas/CgroupSample")]))
        #expect(problems.isEmpty, "\(problems)")
    }

    @Test("every documented operation answers as documented, errors included")
    func everyOperation() async throws {
        let coverage = Coverage()
        let adopted = try SleepingChild()
        let attached = try SleepingChild()
        var launchedPID: Int32?
        defer {
            adopted.stop()
            attached.stop()
            if let launchedPID {
                kill(launchedPID, SIGKILL)
                waitpid(launchedPID, nil, 0)
            }
        }
        try await withLiveServer { server in
            let api = ContractSession(server: server, coverage: coverage)
            let fs = server.fs

            // Health and groups.
            let health = try await api.call("GET", "/v1/health", expect: 200)
            #expect(health.json?["status"]?.string == "ok")
            #expect(health.json?["socket"]?.string == server.socketPath)
            #expect(health.json?["sampling"]?["active"]?.double == 0 && health.json?["sampling"]?["idle"]?.double == 0, "no agent yet")
            let groups = try await api.call("GET", "/v1/groups", expect: 200)
            #expect(groups.json?["groups"]?.array?.count == 3)
            let group = try await api.call("GET", "/v1/groups/standard_agent", expect: 200)
            #expect(group.json?["limits"]?["cpu"]?["hard"]?.double == 30)
            try await api.call("GET", "/v1/groups/no_such_group", expect: 404)

            // Register, attach.
            let registered = try await api.call(
                "POST", "/v1/agents/register",
                #"{"id":"reg1","command":["worker","--fast"],"limits":{"files":{"soft":10,"hard":20,"action":"warn"}}}"#, expect: 201)
            #expect(registered.json?["state"]?.string == "starting")
            #expect(registered.json?["origin"]?.string == "registered")
            #expect(registered.json?["limits"]?["files"]?["hard"]?.double == 20)
            #expect(fs.value(.cpuMax, at: server.leaf("standard_agent", "reg1")) == "30000 100000")
            try await api.call("POST", "/v1/agents/register", #"{"id":"reg1","command":["worker"]}"#, expect: 409)
            try await api.call(
                "POST", "/v1/agents/register", #"{"id":"reg2","command":["w"],"limits":{"memory":{"soft":500,"hard":100}}}"#, expect: 422)
            try await api.call("POST", "/v1/agents/register", #"{"id":"../x","command":["w"]}"#, expect: 422)
            try await api.call("POST", "/v1/agents/register", #"{"id":"a/b","command":["w"]}"#, expect: 422)
            try await api.call("POST", "/v1/agents/register", #"{"id":"reg2","command":["w"],"group":"no_such_group"}"#, expect: 422)
            try await api.call("POST", "/v1/agents/register", #"{"id":"reg2","command":["w"]"#, expect: 400)
            try await api.call("POST", "/v1/agents/register", #"{"id":"reg2"}"#, expect: 400)
            try await api.call("POST", "/v1/agents/register", #"{"id":"reg2","command":"w"}"#, expect: 400)
            try await api.call("POST", "/v1/agents/register", nil, expect: 400)
            let oversized = #"{"id":"big","command":[""# + String(repeating: "x", count: 70_000) + #""]}"#
            try await api.call("POST", "/v1/agents/register", oversized, expect: 413)
            #expect(fs.value(.cgroupEventsProbe, at: server.leaf("standard_agent", "big")) == nil)

            try await api.call("POST", "/v1/agents/reg1/attach", #"{"pid":\#(attached.pid)}"#, expect: 200)
            try await api.call("POST", "/v1/agents/reg1/attach", #"{"pid":\#(attached.pid)}"#, expect: 409)
            try await api.call("POST", "/v1/agents/nobody/attach", #"{"pid":5}"#, expect: 404)
            try await api.call("POST", "/v1/agents/reg1/attach", #"{"pid":"12"}"#, expect: 400)
            try await api.call("POST", "/v1/agents/register", #"{"id":"reg3","command":["w"]}"#, expect: 201)
            try await api.call("POST", "/v1/agents/reg3/attach", #"{"pid":-1}"#, expect: 400)
            try await api.call("POST", "/v1/agents/reg3/attach", #"{"pid":0}"#, expect: 400)
            try await api.call("POST", "/v1/agents/reg3/attach", oversized, expect: 413)

            // Lists and one agent.
            let all = try await api.call("GET", "/v1/agents", expect: 200)
            #expect(all.json?["agents"]?.array?.compactMap { $0["id"]?.string } == ["reg1", "reg3"])
            try await api.call("GET", "/v1/agents?state=live", expect: 200)
            try await api.call("GET", "/v1/agents?state=all", expect: 200)
            try await api.call("GET", "/v1/agents?state=dead", expect: 400)
            // Pages: `next` names the last agent of a page that has more after it.
            let first = try await api.call("GET", "/v1/agents?limit=1", expect: 200)
            #expect(first.json?["agents"]?.array?.compactMap { $0["id"]?.string } == ["reg1"])
            #expect(first.json?["next"]?.string == "reg1")
            let second = try await api.call("GET", "/v1/agents?limit=1&after=reg1", expect: 200)
            #expect(second.json?["agents"]?.array?.compactMap { $0["id"]?.string } == ["reg3"])
            #expect(second.json?["next"] == nil)
            #expect(all.json?["next"] == nil)
            try await api.call("GET", "/v1/agents?limit=0", expect: 400)
            try await api.call("GET", "/v1/agents?limit=10001", expect: 400)
            try await api.call("GET", "/v1/agents?limit=two", expect: 400)
            try await api.call("GET", "/v1/agents?after=..", expect: 400)
            let status = try await api.call("GET", "/v1/agents/reg1", expect: 200)
            #expect(status.json?["agent"]?["pid"]?.double == Double(attached.pid))
            #expect(status.json?["agent"]?["state"]?.string == "running")
            try await api.call("GET", "/v1/agents/nobody", expect: 404)
            try await api.call("GET", "/v1/agents/..", expect: 400)
            try await api.call("GET", "/v1/agents/a%2Fb", expect: 400)
            try await api.call("GET", "/v1/agents/%2E%2E%2Fetc", expect: 400)
            try await api.call("GET", "/v1/agents/-x", expect: 400)

            // Usage reports and compliance.
            let usage = try await api.call("POST", "/v1/agents/reg1/usage", #"{"usage":{"files":25}}"#, expect: 200)
            #expect(usage.json?["compliant"]?.bool == false)
            #expect(usage.json?["violations"]?.array?.first?["kind"]?.string == "hard")
            try await api.call("POST", "/v1/agents/reg1/usage", #"{"usage":{"memory":1}}"#, expect: 422)
            try await api.call("POST", "/v1/agents/reg1/usage", #"{"usage":{"files":-1}}"#, expect: 422)
            try await api.call("POST", "/v1/agents/reg1/usage", #"{"usage":{"files":1e300}}"#, expect: 422)
            try await api.call("POST", "/v1/agents/reg1/usage", #"{"usage":{"files":"many"}}"#, expect: 400)
            try await api.call("POST", "/v1/agents/reg1/usage", #"{"usage":{"gpu":1}}"#, expect: 400)
            try await api.call("POST", "/v1/agents/nobody/usage", #"{"usage":{"files":1}}"#, expect: 404)
            try await api.call("POST", "/v1/agents/reg1/usage", oversized, expect: 413)
            // The ladder has seen the agent now: its state is part of the status.
            let observed = try await api.call("GET", "/v1/agents/reg1", expect: 200)
            #expect(observed.json?["ladder"]?["episodes"]?["files"]?["fired"]?.array == [.string("warn")])
            #expect(observed.json?["ladder"]?["last_observed"] != nil)
            #expect(observed.json?["violations"]?.array?.count == 1, "the status shows what compliance shows")
            #expect(observed.json?["usage"]?["files"]?.double == 25)
            let compliance = try await api.call("GET", "/v1/agents/reg1/compliance", expect: 200)
            #expect(compliance.json?["violations"]?.array?.count == 1)
            try await api.call("GET", "/v1/agents/nobody/compliance", expect: 404)
            try await api.call("GET", "/v1/agents/a%2Fb/compliance", expect: 400)

            // Degradation: files far over their soft limit is an emergency, recorded as a plan.
            let degradation = try await api.call("GET", "/v1/agents/reg1/degradation", expect: 200)
            let plan = degradation.json?["plans"]?.array?.first
            #expect(plan?["reason"]?.string == "pressure")
            #expect(plan?["resource"]?.string == "files")
            #expect(plan?["strategies"]?.array?.first?["strategy"]?.string == "release_handles")
            let levelled = try await api.call("GET", "/v1/agents/reg1", expect: 200)
            #expect(levelled.json?["degradation"]?.array?.first?["level"]?.string == plan?["level"]?.string)
            try await api.call("GET", "/v1/degradation?agent=reg1&limit=5", expect: 200)
            try await api.call("GET", "/v1/degradation?limit=0", expect: 400)
            try await api.call("GET", "/v1/degradation?agent=a%2Fb", expect: 400)
            try await api.call("GET", "/v1/agents/reg1/degradation?limit=x", expect: 400)

            // Seccomp denials: the registered agent carries its policy; its supervisor reports, the daemon records.
            #expect(registered.json?["security"]?["seccomp"]?["base"]?.string == "default")
            let denial =
                #"{"denials":[{"agent":"reg1","syscall":"ptrace","count":3,"first_at":"2026-12-04T05:00:00.000Z","last_at":"2026-12-04T05:00:01.000Z","action":"errno","pid":42}]}"#
            try await api.call("POST", "/v1/agents/reg1/denials", denial, expect: 204)
            try await api.call("POST", "/v1/agents/nobody/denials", denial, expect: 404)
            try await api.call("POST", "/v1/agents/reg1/denials", #"{"denials":[{"syscall":"ptrace"}]}"#, expect: 400)
            let denials = try await api.call("GET", "/v1/agents/reg1/denials", expect: 200)
            #expect(denials.json?["denials"]?.array?.first?["syscall"]?.string == "ptrace")
            #expect(denials.json?["denials"]?.array?.first?["count"]?.double == 3)
            try await api.call("GET", "/v1/denials?agent=reg1&limit=5", expect: 200)
            try await api.call("GET", "/v1/denials?limit=0", expect: 400)

            // Analytics: run now, recommendations, report, apply.
            let ran = try await api.call("POST", "/v1/analytics/run", expect: 200)
            #expect(ran.json?["recommendations"]?.array != nil)
            try await api.call("GET", "/v1/recommendations", expect: 200)
            try await api.call("GET", "/v1/recommendations?agent=reg1", expect: 200)
            try await api.call("GET", "/v1/recommendations?agent=a%2Fb", expect: 400)
            try await api.call("GET", "/v1/agents/reg1/recommendations", expect: 200)
            let report = try await api.call("GET", "/v1/report?agent=reg1&since=2000-01-01T00:00:00Z", expect: 200)
            #expect(report.json?["agents"]?.array?.first?["agent"]?.string == "reg1")
            #expect(report.json?["agents"]?.array?.first?["resources"]?.array?.first?["resource"]?.string == "files")
            try await api.call("GET", "/v1/report", expect: 200)
            try await api.call("GET", "/v1/report?agent=nobody", expect: 404)
            try await api.call("GET", "/v1/report?since=yesterday", expect: 400)
            try await api.call("GET", "/v1/report?agent=..%2Fx", expect: 400)
            try await api.call("POST", "/v1/agents/reg1/recommendations/apply", #"{"resource":"memory"}"#, expect: 404)
            try await api.call("POST", "/v1/agents/reg1/recommendations/apply", #"{"resource":"gpu"}"#, expect: 400)
            try await api.call("POST", "/v1/agents/reg1/recommendations/apply", oversized, expect: 413)

            // Acknowledgements.
            try await api.call(
                "POST", "/v1/agents/reg1/acks", #"{"sequence":1,"kind":"degradation_strategy","note":"batching"}"#, expect: 204)
            try await api.call("POST", "/v1/agents/reg1/acks", #"{"sequence":0,"kind":"x"}"#, expect: 422)
            try await api.call("POST", "/v1/agents/reg1/acks", #"{"kind":"x"}"#, expect: 400)
            try await api.call("POST", "/v1/agents/nobody/acks", #"{"sequence":1,"kind":"x"}"#, expect: 404)
            try await api.call("POST", "/v1/agents/reg1/acks", oversized, expect: 413)

            // History.
            let history = try await api.call("GET", "/v1/agents/reg1/history", expect: 200)
            let records = history.json?["records"]?.array ?? []
            #expect(records.first?["action"]?.string == "warn")
            #expect(records.first?["resource"]?.string == "files")
            try await api.call("GET", "/v1/agents/reg1/history?limit=1&after=0&since=2000-01-01T00:00:00Z", expect: 200)
            try await api.call("GET", "/v1/agents/reg1/history?limit=0", expect: 400)
            try await api.call("GET", "/v1/agents/reg1/history?limit=10001", expect: 400)
            try await api.call("GET", "/v1/agents/reg1/history?since=yesterday", expect: 400)
            try await api.call("GET", "/v1/agents/reg1/history?after=-1", expect: 400)
            try await api.call("GET", "/v1/agents/..%2Fx/history", expect: 400)
            try await api.call("GET", "/v1/history", expect: 200)
            let filtered = try await api.call("GET", "/v1/history?agent=reg1&limit=5", expect: 200)
            #expect(filtered.json?["records"]?.array?.allSatisfy { $0["agent"]?.string == "reg1" } == true)
            try await api.call("GET", "/v1/history?agent=..%2Fx", expect: 400)
            try await api.call("GET", "/v1/history?after=x", expect: 400)

            // Events: the recent list, bad queries, and the stream.
            let recent = try await api.call("GET", "/v1/events/recent", expect: 200)
            #expect(recent.json?["events"]?.array?.isEmpty == false)
            let recentOfReg1 = try await api.call("GET", "/v1/events/recent?agent=reg1&limit=5", expect: 200)
            #expect(recentOfReg1.json?["events"]?.array?.allSatisfy { $0["agent"]?.string == "reg1" } == true)
            try await api.call("GET", "/v1/events?after=x", expect: 400)
            try await api.call("GET", "/v1/events?agent=..%2Fx", expect: 400)
            try await checkEventStream(server, coverage: coverage)

            // Overrides.
            try await api.call("PUT", "/v1/agents/reg1/limits", #"{"limits":{"memory":{"hard":300000000}}}"#, expect: 200)
            #expect(fs.value(.memoryMax, at: server.leaf("standard_agent", "reg1")) == "300000000")
            try await api.call("PUT", "/v1/agents/reg1/limits", #"{"limits":{"memory":{"soft":400000000,"hard":300000000}}}"#, expect: 422)
            try await api.call("PUT", "/v1/agents/reg1/limits", #"{"limits":{"memory":{"hard":1e300}}}"#, expect: 422)
            #expect(fs.value(.memoryMax, at: server.leaf("standard_agent", "reg1")) == "300000000")
            try await api.call("PUT", "/v1/agents/nobody/limits", #"{"limits":{}}"#, expect: 404)
            try await api.call("PUT", "/v1/agents/reg1/limits", #"{"limits":[]}"#, expect: 400)
            try await api.call("PUT", "/v1/agents/reg1/limits", oversized, expect: 413)

            // Capacity: the live agents' hard limits committed, per group and overall.
            let capacity = try await api.call("GET", "/v1/capacity", expect: 200)
            let memory = capacity.json?["resources"]?.array?.first { $0["resource"]?.string == "memory" }
            #expect(capacity.json?["admission"]?.string == "allow")
            #expect((memory?["committed_hard"]?.double ?? 0) > 0 && memory?["groups"]?.array?.isEmpty == false)

            // Observability: the metrics, the status page, its data and its stream.
            let metrics = try await api.call("GET", "/metrics", expect: 200)
            #expect(metrics.text.contains("corral_agent_state{agent=\"reg1\",group=\"standard_agent\",state=\"running\"} 1"))
            let page = try await api.call("GET", "/", expect: 200)
            #expect(page.text.hasPrefix("<!doctype html>") && page.text.contains("status/events"))
            let statusData = try await api.call("GET", "/status.json", expect: 200)
            let statusIDs = statusData.json?["agents"]?.array?.compactMap { $0["id"]?.string } ?? []
            #expect(statusIDs.contains("reg1"))
            let statusEvents = EventCollector(server.client.serverSentEvents("/status/events"))
            // The stream has no replay: report again until one arrives after the subscription.
            var statusEvent: ServerSentEvent?
            for _ in 0..<10 where statusEvent == nil {
                try await server.send("POST", "/v1/agents/reg1/usage", json: #"{"usage":{"files":1}}"#).expectStatus(200)
                statusEvent = await statusEvents.first(within: .seconds(2)) { $0.data.contains("usage_reported") }
            }
            statusEvents.stop()
            #expect(statusEvent != nil, "no status event: \(statusEvents.events) \(statusEvents.error ?? "")")
            if let statusEvent {
                coverage.note("GET /status/events", 200)
                let schema: JSON = .object(["$ref": .string("#/components/schemas/StatusEvent")])
                let problems = document.checker.problems(try JSON.parse(statusEvent.data), schema)
                #expect(problems.isEmpty, "\(problems)")
            }

            // Priority, live: the leaf's weights and protection, then back to the group's.
            let leaf = server.leaf("standard_agent", "reg1")
            let raised = try await api.call("PUT", "/v1/agents/reg1/priority", #"{"priority":7}"#, expect: 200)
            #expect(raised.json?["priority"]?.double == 7 && raised.json?["priority_is_own"] == .bool(true))
            #expect(fs.value(.cpuWeight, at: leaf) == "400")
            // 2/5 of the memory soft limit (200 MB) is protected, and the group claims it.
            #expect(fs.value(.memoryLow, at: leaf) == "80000000")
            #expect(fs.value(.memoryLow, at: server.tree.groupPath("standard_agent")) == "80000000")
            let back = try await api.call("PUT", "/v1/agents/reg1/priority", #"{"priority":null}"#, expect: 200)
            #expect(back.json?["priority"]?.double == 5 && back.json?["priority_is_own"] == .bool(false))
            #expect(fs.value(.cpuWeight, at: leaf) == "100" && fs.value(.memoryLow, at: leaf) == "0")
            #expect(fs.value(.memoryLow, at: server.tree.groupPath("standard_agent")) == "0")
            try await api.call("PUT", "/v1/agents/reg1/priority", #"{"priority":11}"#, expect: 422)
            try await api.call("PUT", "/v1/agents/reg1/priority", "{}", expect: 400)
            try await api.call("PUT", "/v1/agents/reg1/priority", #"{"priority":"high"}"#, expect: 400)
            try await api.call("PUT", "/v1/agents/nobody/priority", #"{"priority":1}"#, expect: 404)
            try await api.call("PUT", "/v1/agents/reg1/priority", oversized, expect: 413)
            #expect(fs.value(.cpuWeight, at: leaf) == "100")

            // Live group update: group totals and the agents' files.
            let updated = try await api.call(
                "PATCH", "/v1/groups/standard_agent", #"{"totals":{"memory":3000000000},"limits":{"cpu":{"hard":40}}}"#, expect: 200)
            #expect(updated.json?["limits"]?["cpu"]?["hard"]?.double == 40)
            #expect(fs.value(.memoryMax, at: server.tree.groupPath("standard_agent")) == "3000000000")
            #expect(fs.value(.cpuMax, at: server.leaf("standard_agent", "reg1")) == "40000 100000")
            // A group's priority: its own weight, and its agents' that follow it.
            let lowered = try await api.call("PATCH", "/v1/groups/standard_agent", #"{"priority":3}"#, expect: 200)
            #expect(lowered.json?["priority"]?.double == 3)
            #expect(fs.value(.cpuWeight, at: server.tree.groupPath("standard_agent")) == "25")
            #expect(fs.value(.cpuWeight, at: server.leaf("standard_agent", "reg1")) == "25")
            try await api.call("PATCH", "/v1/groups/standard_agent", #"{"priority":-1}"#, expect: 422)
            try await api.call("PATCH", "/v1/groups/standard_agent", #"{"priority":5}"#, expect: 200)
            #expect(fs.value(.cpuWeight, at: server.leaf("standard_agent", "reg1")) == "100")
            try await api.call("PATCH", "/v1/groups/standard_agent", "{}", expect: 422)
            try await api.call("PATCH", "/v1/groups/standard_agent", #"{"limits":{"cpu":{"soft":50,"hard":40}}}"#, expect: 422)
            try await api.call("PATCH", "/v1/groups/standard_agent", #"{"totals":{"files":3}}"#, expect: 422)
            try await api.call("PATCH", "/v1/groups/standard_agent", #"{"totals":{"memory":1e300}}"#, expect: 422)
            try await api.call("PATCH", "/v1/groups/standard_agent", #"{"totals":{"processes":1e12}}"#, expect: 422)
            #expect(fs.value(.memoryMax, at: server.tree.groupPath("standard_agent")) == "3000000000")
            try await api.call("PATCH", "/v1/groups/no_such_group", #"{"totals":{"memory":1}}"#, expect: 404)
            try await api.call("PATCH", "/v1/groups/standard_agent", "{totals}", expect: 400)
            try await api.call("PATCH", "/v1/groups/standard_agent", oversized, expect: 413)

            // Adopt an existing process.
            fs.seed(.anchor, procs: [adopted.pid])
            let adoption = try await api.call(
                "POST", "/v1/agents/adopt", #"{"pid":\#(adopted.pid),"id":"adp1","group":"lightweight_agent"}"#, expect: 201)
            #expect(adoption.json?["origin"]?.string == "adopted")
            #expect(adoption.json?["command"]?.array?.first?.string == "/usr/bin/sleep")
            #expect(fs.procs(server.leaf("lightweight_agent", "adp1")) == [adopted.pid])
            try await api.call("POST", "/v1/agents/adopt", #"{"pid":\#(adopted.pid),"id":"adp1"}"#, expect: 409)
            try await api.call("POST", "/v1/agents/adopt", #"{"pid":-5}"#, expect: 422)
            try await api.call("POST", "/v1/agents/adopt", #"{"pid":1}"#, expect: 422)
            try await api.call("POST", "/v1/agents/adopt", #"{"pid":"x"}"#, expect: 400)
            try await api.call("POST", "/v1/agents/adopt", #"{"pid":99999999999}"#, expect: 400)
            try await api.call("POST", "/v1/agents/adopt", oversized, expect: 413)

            // Launch: clone3 into the fake's /dev/null "cgroup" fails with EBADF,
            // so the spawner's cgroup.procs fallback runs (writing to /dev/null).
            let launch = try await api.call("POST", "/v1/agents", #"{"id":"lch1","command":["sleep","60"]}"#, expect: 201)
            launchedPID = launch.json?["pid"]?.double.map { Int32($0) }
            #expect(launch.json?["origin"]?.string == "launched")
            #expect(launchedPID.map { kill($0, 0) == 0 } == true)
            try await api.call("POST", "/v1/agents", #"{"command":[]}"#, expect: 422)
            try await api.call("POST", "/v1/agents", #"{"command":["/nonexistent/corral-test-program"]}"#, expect: 422)
            try await api.call("POST", "/v1/agents", #"{"id":"reg1","command":["sleep","1"]}"#, expect: 409)
            try await api.call("POST", "/v1/agents", #"{"command":["sleep"],"limits":{"cpu":{"hard":-4}}}"#, expect: 422)
            try await api.call("POST", "/v1/agents", #"{"command":["sleep"],"environment":{"A":1}}"#, expect: 400)
            try await api.call("POST", "/v1/agents", oversized, expect: 413)

            // Freeze, thaw.
            let frozen = try await api.call("POST", "/v1/agents/adp1/freeze", expect: 200)
            #expect(frozen.json?["state"]?.string == "suspended")
            #expect(fs.value(.freeze, at: server.leaf("lightweight_agent", "adp1")) == "1")
            let thawed = try await api.call("POST", "/v1/agents/adp1/thaw", expect: 200)
            #expect(thawed.json?["state"]?.string == "running")
            #expect(fs.value(.freeze, at: server.leaf("lightweight_agent", "adp1")) == "0")
            try await api.call("POST", "/v1/agents/nobody/freeze", expect: 404)
            try await api.call("POST", "/v1/agents/nobody/thaw", expect: 404)
            try await api.call("POST", "/v1/agents/..%2Fx/freeze", expect: 400)
            try await api.call("POST", "/v1/agents/..%2Fx/thaw", expect: 400)
            fs.freezeCompletes = false
            try await api.call("POST", "/v1/agents/adp1/freeze", expect: 500)
            fs.freezeCompletes = true

            // Stop sends a real SIGTERM to the adopted sleep; kill writes cgroup.kill.
            try await api.call("POST", "/v1/agents/adp1/stop", expect: 200)
            #expect(adopted.waitForSignal() == SIGTERM)
            try await api.call("POST", "/v1/agents/nobody/stop", expect: 404)
            try await api.call("POST", "/v1/agents/..%2Fx/stop", expect: 400)
            try await api.call("POST", "/v1/agents/adp1/kill", expect: 200)
            #expect(fs.killed == [adopted.pid])
            try await api.call("POST", "/v1/agents/nobody/kill", expect: 404)
            try await api.call("POST", "/v1/agents/..%2Fx/kill", expect: 400)

            // Finished, then everything that needs a live agent conflicts.
            let finished = try await api.call("POST", "/v1/agents/reg1/finished", #"{"exit_status":3,"reason":"done"}"#, expect: 200)
            #expect(finished.json?["agent"]?["state"]?.string == "exited")
            #expect(finished.json?["agent"]?["exit_status"]?.double == 3)
            #expect(finished.json?["records"]?.array != nil, "the agent's history comes with it")
            try await api.call("POST", "/v1/agents/nobody/finished", "{}", expect: 404)
            try await api.call("POST", "/v1/agents/reg1/finished", "[", expect: 400)
            try await api.call("POST", "/v1/agents/reg1/finished", oversized, expect: 413)
            try await api.call("POST", "/v1/agents/reg1/stop", expect: 409)
            try await api.call("POST", "/v1/agents/reg1/freeze", expect: 409)
            try await api.call("POST", "/v1/agents/reg1/thaw", expect: 409)
            try await api.call("POST", "/v1/agents/reg1/kill", expect: 409)
            try await api.call("PUT", "/v1/agents/reg1/limits", #"{"limits":{}}"#, expect: 409)
            try await api.call("POST", "/v1/agents/reg1/usage", #"{"usage":{"files":1}}"#, expect: 409)
            try await api.call("POST", "/v1/agents/reg1/acks", #"{"sequence":1,"kind":"x"}"#, expect: 409)
            try await api.call("POST", "/v1/agents/reg1/recommendations/apply", #"{"resource":"files"}"#, expect: 409)
            try await api.call("POST", "/v1/agents/reg1/attach", #"{"pid":\#(attached.pid)}"#, expect: 409)

            // Remove.
            try await api.call("DELETE", "/v1/agents/reg1", expect: 204)
            try await api.call("DELETE", "/v1/agents/reg1", expect: 404)

            // The same name again (as `corral run --name` does run after run): its end carries its
            // own records only, never the earlier agent's; the pid names a process never attached.
            #expect(finished.json?["records"]?.array?.isEmpty == false, "the first reg1 had records")
            try await api.call("POST", "/v1/agents/register", #"{"id":"reg1","command":["worker"]}"#, expect: 201)
            try await api.call("POST", "/v1/agents/reg1/finished", #"{"exit_status":0,"pid":0}"#, expect: 400)
            let again = try await api.call("POST", "/v1/agents/reg1/finished", #"{"exit_status":0,"pid":4242}"#, expect: 200)
            #expect(again.json?["records"]?.array?.isEmpty == true, "\(again.text.prefix(400))")
            #expect(again.json?["agent"]?["pid"]?.double == 4242)
            try await api.call("DELETE", "/v1/agents/reg1", expect: 204)
            try await api.call("DELETE", "/v1/agents/adp1", expect: 409)
            try await api.call("DELETE", "/v1/agents/adp1?force=yes", expect: 400)
            try await api.call("DELETE", "/v1/agents/adp1?force=true", expect: 204)
            #expect(fs.value(.cgroupEventsProbe, at: server.leaf("lightweight_agent", "adp1")) == nil)
            try await api.call("DELETE", "/v1/agents/..", expect: 400)
            let remaining = try await api.call("GET", "/v1/agents", expect: 200)
            #expect(remaining.json?["agents"]?.array?.compactMap { $0["id"]?.string } == ["lch1", "reg3"])
            try await api.call("DELETE", "/v1/agents/lch1?force=true", expect: 204)

            // What the document does not have is a JSON 404 (or 405).
            for (method, path) in [
                ("GET", "/v1/nothing"), ("DELETE", "/v1/health"), ("POST", "/v1/groups"), ("GET", "/nothing"), ("PUT", "/v1/agents"),
            ] {
                let reply = try await server.send(method, path)
                let problems = document.errorShapeProblems(reply, what: "\(method) \(path)", statuses: [404, 405])
                #expect(problems.isEmpty, "\(problems)")
            }
        }

        let missing = Set(document.operations).subtracting(coverage.operations())
        #expect(missing.isEmpty, "operations never exercised: \(missing.sorted())")
        for required in [
            "POST /v1/agents/register 400", "POST /v1/agents/register 409", "POST /v1/agents/register 413",
            "POST /v1/agents/register 422", "GET /v1/agents/{id} 404", "PATCH /v1/groups/{name} 413",
        ] {
            #expect(coverage.all.contains(required), "\(required) never seen")
        }
    }

    /// The schema of each typed message of the agent channel, by kind.
    static let messageSchemas: [String: String] = [
        "throttle_notice": "ThrottleNotice", "suspend_notice": "SuspendNotice", "suspended": "SuspendedMessage",
        "termination_notice": "TerminationNotice", "scale_down_request": "ScaleDownRequestMessage",
        "degradation_strategy": "DegradationStrategyMessage", "recovery_stage": "RecoveryStageMessage",
        "quota_changed": "QuotaChangedMessage",
    ]

    @Test("every message kind of the agent channel, as emitted, matches its schema and no other message's")
    func channelMessagesMatchTheirSchemas() async throws {
        var configuration = CorralConfiguration.builtIn
        configuration.escalation = EscalationPolicy(delays: [:], terminationGrace: .seconds(30))  // every step at once
        configuration.recovery = RecoveryPolicy(stageInterval: .milliseconds(100), quietPeriod: .milliseconds(100))
        try await withLiveServer(configuration: configuration) { server in
            let collector = EventCollector(server.client.events(agent: "msg1", after: 0))
            defer { collector.stop() }
            try await server.send(
                "POST", "/v1/agents/register",
                json: #"{"id":"msg1","command":["worker"],"limits":{"files":{"soft":10,"hard":20,"action":"scale_down"}}}"#
            ).expectStatus(201)
            try await server.send("POST", "/v1/agents/msg1/attach", json: #"{"pid":\#(ghostPID)}"#).expectStatus(200)
            // Over the hard limit: throttle notice, scale-down request, degradation plan.
            try await server.send("POST", "/v1/agents/msg1/usage", json: #"{"usage":{"files":25}}"#).expectStatus(200)
            // Back down: once the violation has cleared, recovery stages.
            let deadline = ContinuousClock.now + .seconds(15)
            while !collector.events.contains(where: { $0.event == "recovery_stage" }), ContinuousClock.now < deadline {
                try await server.send("POST", "/v1/agents/msg1/usage", json: #"{"usage":{"files":1}}"#).expectStatus(200)
                try await Task.sleep(for: .milliseconds(100))
            }
            try await server.send("PUT", "/v1/agents/msg1/limits", json: #"{"limits":{"files":{"soft":12}}}"#).expectStatus(200)
            try await server.send("POST", "/v1/agents/msg1/freeze").expectStatus(200)
            try await server.send("POST", "/v1/agents/msg1/thaw").expectStatus(200)
            try await server.send("POST", "/v1/agents/msg1/stop").expectStatus(200)
            _ = await collector.first { $0.event == "termination_notice" }

            var seen: Set<String> = []
            for event in collector.events {
                guard let kind = event.event, let name = Self.messageSchemas[kind] else { continue }
                seen.insert(kind)
                let value = try JSON.parse(event.data)
                let own = JSON.object(["$ref": .string("#/components/schemas/\(name)")])
                #expect(document.checker.problems(value, own).isEmpty, "\(kind) vs \(name): \(document.checker.problems(value, own))")
                // The pinned kind tells the messages apart: no other message schema accepts it.
                for (otherKind, other) in Self.messageSchemas where otherKind != kind {
                    let schema = JSON.object(["$ref": .string("#/components/schemas/\(other)")])
                    #expect(!document.checker.problems(value, schema).isEmpty, "\(kind) passes as \(other)")
                }
            }
            #expect(seen == Set(Self.messageSchemas.keys), "missing: \(Set(Self.messageSchemas.keys).subtracting(seen).sorted())")
        }
    }

    /// Subscribes to one agent's events: the replay of what happened, then a live event, each a CorralEvent.
    func checkEventStream(_ server: LiveServer, coverage: Coverage) async throws {
        let collector = EventCollector(server.client.events(agent: "reg1", after: 0))
        defer { collector.stop() }
        let started = await collector.first { $0.event == "agent_started" }
        #expect(started != nil, "no agent_started replayed: \(collector.events) \(collector.error ?? "")")
        try await server.send("POST", "/v1/agents/reg1/usage", json: #"{"usage":{"connections":3}}"#).expectStatus(200)
        let live = await collector.first { $0.event == "usage_reported" && $0.data.contains("connections") }
        #expect(live != nil, "no live usage_reported event: \(collector.events) \(collector.error ?? "")")
        coverage.note("GET /v1/events", 200)
        let schema: JSON = .object(["$ref": .string("#/components/schemas/CorralEvent")])
        for event in collector.events {
            let value = try JSON.parse(event.data)
            #expect(document.checker.problems(value, schema).isEmpty, "\(document.checker.problems(value, schema))")
            let decoded = try CorralClient.decoder.decode(CorralEvent.self, from: Data(event.data.utf8))
            #expect(decoded.agent == "reg1")
            #expect(event.id == String(decoded.sequence))
            #expect(event.event == decoded.kind.rawValue)
        }
        let sequences = collector.events.compactMap { $0.id.flatMap { Int64($0) } }
        #expect(sequences == sequences.sorted() && Set(sequences).count == sequences.count)
    }
}

extension Reply {
    func expectStatus(_ status: Int, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(self.status == status, "\(method) \(path): \(self.status) \(text.prefix(300))", sourceLocation: sourceLocation)
    }
}

extension CgroupFile {
    /// A file every cgroup has: nil from the fake means the cgroup does not exist.
    static let cgroupEventsProbe = CgroupFile.procs
}
