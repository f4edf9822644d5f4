import CorralAPI
public import CorralCore
public import CorralEngine
public import Hummingbird
import NIOCore

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Runs an engine call, turning its errors into API errors.
func engineCall<T: Sendable>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as EngineError {
        throw APIError.from(error)
    }
}

/// Settings the routes need besides the engine.
public struct APISettings: Sendable {
    public var version: String
    public var socketPath: String
    public var cgroupRoot: String
    public var policy: AccessPolicy
    /// What the daemon cannot do where it runs (see `Limitation`), asked at each health check.
    public var limitations: @Sendable () -> [Limitation]
    /// The daemon's metrics (`GET /metrics`; the engine feeds them as its instruments).
    public var metrics: DaemonMetrics

    public init(
        version: String, socketPath: String, cgroupRoot: String, policy: AccessPolicy,
        limitations: @escaping @Sendable () -> [Limitation] = { [] }, metrics: DaemonMetrics? = nil
    ) {
        self.metrics = metrics ?? DaemonMetrics(version: version)
        self.version = version
        self.socketPath = socketPath
        self.cgroupRoot = cgroupRoot
        self.policy = policy
        self.limitations = limitations
    }
}

/// The control API (documented in openapi/corral.yaml).
public func buildRouter(engine: Engine, settings: APISettings) -> Router<CorralRequestContext> {
    let router = Router(context: CorralRequestContext.self)
    router.add(middleware: ErrorMiddleware())
    router.add(middleware: AuthorizationMiddleware(policy: settings.policy))

    @Sendable func agentID(_ context: CorralRequestContext) throws -> String {
        let id = try context.parameters.require("id")
        if let problem = CgroupName.problem(with: id, what: "agent id") {
            throw APIError(.badRequest, "bad_request", problem)
        }
        return id
    }

    @Sendable func query(_ request: Request, _ name: String) -> String? {
        request.uri.queryParameters[Substring(name)].map(String.init)
    }

    /// `?agent=ID`, checked like a path id.
    @Sendable func agentQuery(_ request: Request) throws -> String? {
        let agent = query(request, "agent")
        if let agent, let problem = CgroupName.problem(with: agent, what: "agent id") {
            throw APIError(.badRequest, "bad_request", problem)
        }
        return agent
    }

    addObservabilityRoutes(to: router, engine: engine, metrics: settings.metrics)

    let v1 = router.group("v1")

    v1.get("health") { _, _ in
        let agents = await engine.liveCount()
        let sampling = await engine.samplingCounts()
        let backlog = engine.storeBacklog
        let failing = backlog.pendingSteps > 0
        return jsonResponse(
            Health(
                status: failing ? "degraded" : "ok", version: settings.version, agents: agents, cgroupRoot: settings.cgroupRoot,
                socket: settings.socketPath, limitations: settings.limitations(),
                sampling: SamplingCounts(active: sampling[.active] ?? 0, idle: sampling[.idle] ?? 0),
                store: StoreHealth(
                    status: failing ? "failing" : "ok", pendingRecords: backlog.pendingRecords, droppedRecords: backlog.droppedRecords,
                    error: backlog.error))
        )
    }

    v1.get("capacity") { _, _ in
        jsonResponse(await engine.capacity())
    }

    // Groups
    v1.get("groups") { _, _ in
        jsonResponse(GroupList(groups: await engine.groups()))
    }
    v1.get("groups/:name") { _, context in
        let name = try context.parameters.require("name")
        return jsonResponse(try await engineCall { try await engine.group(name) })
    }
    v1.patch("groups/:name") { request, context in
        let name = try context.parameters.require("name")
        let update = try await decodeBody(GroupUpdateRequest.self, from: request)
        try checkAmounts(limits: update.limits, totals: update.totals)
        guard update.limits != nil || update.totals != nil || update.priority != nil else {
            throw APIError(.unprocessableContent, "invalid", "give limits, totals and/or priority to change")
        }
        return jsonResponse(
            try await engineCall {
                try await engine.updateGroup(name, limits: update.limits ?? [:], totals: update.totals ?? [:], priority: update.priority)
            })
    }

    // Agents
    v1.get("agents") { request, _ in
        let state = query(request, "state") ?? "all"
        guard state == "all" || state == "live" else {
            throw APIError(.badRequest, "bad_request", "state must be 'all' or 'live', not '\(state)'")
        }
        // Paged when asked: ?limit=N (1–10000), ?after=ID (the `next` of the page before).
        let limit = query(request, "limit") == nil ? nil : try limitParameter(request)
        let after = query(request, "after")
        if let after, let problem = CgroupName.problem(with: after, what: "after (an agent id)") {
            throw APIError(.badRequest, "bad_request", problem)
        }
        return jsonResponse(try await engineCall { try await engine.list(includeEnded: state == "all", after: after, limit: limit) })
    }
    v1.post("agents") { request, _ in
        let launch = try await decodeBody(LaunchRequest.self, from: request)
        try checkAmounts(limits: launch.limits)
        let record = try await engineCall { try await engine.launch(launch) }
        return jsonResponse(record, status: record.state == .queued ? .accepted : .created)
    }
    v1.post("agents/register") { request, _ in
        let body = try await decodeBody(RegisterRequest.self, from: request)
        try checkAmounts(limits: body.limits)
        let record = try await engineCall {
            try await engine.register(
                id: body.id, group: body.group, command: body.command, overrides: body.limits ?? [:], user: body.user,
                seccomp: body.seccomp, priority: body.priority)
        }
        return jsonResponse(record, status: record.state == .queued ? .accepted : .created)
    }
    v1.post("agents/adopt") { request, _ in
        let body = try await decodeBody(AdoptRequest.self, from: request)
        return jsonResponse(
            try await engineCall { try await engine.adopt(pid: body.pid, id: body.id, group: body.group) }, status: .created)
    }
    v1.get("agents/:id") { _, context in
        let id = try agentID(context)
        return jsonResponse(try await engineCall { try await engine.status(of: id) })
    }
    v1.delete("agents/:id") { request, context in
        let id = try agentID(context)
        let force = query(request, "force") ?? "false"
        guard force == "true" || force == "false" else {
            throw APIError(.badRequest, "bad_request", "force must be 'true' or 'false', not '\(force)'")
        }
        try await engineCall { try await engine.remove(id, force: force == "true") }
        return Response(status: .noContent)
    }
    v1.post("agents/:id/attach") { request, context in
        let id = try agentID(context)
        let body = try await decodeBody(AttachRequest.self, from: request)
        guard body.pid > 0 else {
            throw APIError(.badRequest, "bad_request", "pid must be the id of the agent's process (above 0), not \(body.pid)")
        }
        return jsonResponse(try await engineCall { try await engine.attach(id: id, pid: body.pid) })
    }
    v1.post("agents/:id/finished") { request, context in
        let id = try agentID(context)
        let body = try await decodeBody(FinishedRequest.self, from: request)
        if let pid = body.pid, pid <= 0 {
            throw APIError(.badRequest, "bad_request", "pid must be the id of the agent's process (above 0), not \(pid)")
        }
        let agent = try await engineCall { try await engine.finished(id, exitStatus: body.exitStatus, reason: body.reason, pid: body.pid) }
        // This agent's records: an earlier agent of the same name (`corral run --name` run after run) ended before it began.
        let records = try await engineCall {
            try await engine.history(agent: id, since: agent.createdAt, afterID: nil, limit: 1000)
        }
        return jsonResponse(FinishedResponse(agent: agent, records: records))
    }
    v1.post("agents/:id/stop") { _, context in
        let id = try agentID(context)
        return jsonResponse(try await engineCall { try await engine.stop(id) })
    }
    v1.post("agents/:id/freeze") { _, context in
        let id = try agentID(context)
        return jsonResponse(try await engineCall { try await engine.freeze(id) })
    }
    v1.post("agents/:id/thaw") { _, context in
        let id = try agentID(context)
        return jsonResponse(try await engineCall { try await engine.thaw(id) })
    }
    v1.post("agents/:id/kill") { _, context in
        let id = try agentID(context)
        return jsonResponse(try await engineCall { try await engine.kill(agent: id) })
    }
    v1.put("agents/:id/limits") { request, context in
        let id = try agentID(context)
        let body = try await decodeBody(LimitsRequest.self, from: request)
        try checkAmounts(limits: body.limits)
        return jsonResponse(try await engineCall { try await engine.setOverrides(id, body.limits) })
    }
    v1.put("agents/:id/priority") { request, context in
        let id = try agentID(context)
        let body = try await decodeBody(PriorityRequest.self, from: request)
        return jsonResponse(try await engineCall { try await engine.setPriority(id, body.priority) })
    }
    v1.get("agents/:id/compliance") { _, context in
        let id = try agentID(context)
        let violations = try await engineCall { try await engine.compliance(of: id) }
        return jsonResponse(ComplianceReport(agent: id, compliant: violations.isEmpty, violations: violations))
    }
    v1.post("agents/:id/usage") { request, context in
        let id = try agentID(context)
        let body = try await decodeBody(UsageRequest.self, from: request)
        try checkAmounts(usage: body.usage)
        let violations = try await engineCall { try await engine.report(usage: body.usage, for: id) }
        return jsonResponse(ComplianceReport(agent: id, compliant: violations.isEmpty, violations: violations))
    }
    v1.get("agents/:id/history") { request, context in
        let id = try agentID(context)
        return try await history(engine, request, agent: id)
    }
    v1.post("agents/:id/acks") { request, context in
        let id = try agentID(context)
        let body = try await decodeBody(Acknowledgement.self, from: request)
        try await engineCall { try await engine.acknowledge(body, from: id) }
        return Response(status: .noContent)
    }
    v1.get("agents/:id/degradation") { request, context in
        let id = try agentID(context)
        let limit = try limitParameter(request)
        return jsonResponse(DegradationList(plans: try await engineCall { try await engine.degradationHistory(agent: id, limit: limit) }))
    }
    v1.get("agents/:id/denials") { request, context in
        let id = try agentID(context)
        let limit = try limitParameter(request)
        return jsonResponse(DenialList(denials: try await engineCall { try await engine.denialHistory(agent: id, limit: limit) }))
    }
    // The supervisor of a `corral run` (which holds its agent's seccomp listener) reports its denials; administrators only.
    v1.post("agents/:id/denials") { request, context in
        let id = try agentID(context)
        let body = try await decodeBody(DenialList.self, from: request)
        try await engineCall { try await engine.recordDenials(body.denials, agent: id) }
        return Response(status: .noContent)
    }
    v1.get("denials") { request, _ in
        let agent = try agentQuery(request)
        let limit = try limitParameter(request)
        return jsonResponse(DenialList(denials: try await engineCall { try await engine.denialHistory(agent: agent, limit: limit) }))
    }
    v1.get("agents/:id/recommendations") { _, context in
        let id = try agentID(context)
        return jsonResponse(RecommendationList(recommendations: try await engineCall { try await engine.recommendations(agent: id) }))
    }
    v1.post("agents/:id/recommendations/apply") { request, context in
        let id = try agentID(context)
        let body = try await decodeBody(ApplyRequest.self, from: request)
        return jsonResponse(try await engineCall { try await engine.applyRecommendation(agent: id, resource: body.resource) })
    }
    v1.get("recommendations") { request, _ in
        let agent = try agentQuery(request)
        return jsonResponse(RecommendationList(recommendations: try await engineCall { try await engine.recommendations(agent: agent) }))
    }
    v1.post("analytics/run") { _, _ in
        jsonResponse(RecommendationList(recommendations: await engine.runAnalytics()))
    }
    v1.get("report") { request, _ in
        let agent = try agentQuery(request)
        let since = try sinceParameter(request)
        return jsonResponse(
            try await engineCall { try await engine.report(agent: agent, since: since ?? Engine.wallClock() + .seconds(-3600)) })
    }
    v1.get("degradation") { request, _ in
        let agent = try agentQuery(request)
        let limit = try limitParameter(request)
        return jsonResponse(
            DegradationList(plans: try await engineCall { try await engine.degradationHistory(agent: agent, limit: limit) }))
    }

    // History and events
    v1.get("history") { request, _ in
        let agent = try agentQuery(request)
        return try await history(engine, request, agent: agent)
    }
    v1.get("events/recent") { request, _ in
        let agent = query(request, "agent")
        let limit = Int(query(request, "limit") ?? "100") ?? 100
        let events = engine.hub.recent(agent: agent).suffix(max(1, min(limit, 1000)))
        return jsonResponse(EventList(events: Array(events)))
    }
    v1.get("events") { request, context in
        let agent = try agentQuery(request)
        // The agent's own process following its stream is its listener (the
        // degradation signal is for agents without one); an operator is not.
        var isListener = false
        if case .agent(let caller, _) = context.caller, caller == agent { isListener = true }
        let after = try query(request, "after").map { text -> Int64 in
            guard let value = Int64(text), value >= 0 else {
                throw APIError(.badRequest, "bad_request", "after must be an event sequence number, not '\(text)'")
            }
            return value
        }
        let stream = engine.hub.subscribe(agent: agent, after: after, isListener: isListener)
        let encoder = APIJSON.encoder
        let body = ResponseBody { writer in
            var buffer = ByteBuffer(string: ": corral events\(agent.map { " for \($0)" } ?? "")\n\n")
            try await writer.write(buffer)
            for await event in stream {
                do {
                    let json = String(decoding: try encoder.encode(event), as: UTF8.self)
                    buffer = ByteBuffer(string: "id: \(event.sequence)\nevent: \(event.kind.rawValue)\ndata: \(json)\n\n")
                } catch {
                    // A comment line: clients skip it, and whoever reads the raw stream sees why an event is missing.
                    buffer = ByteBuffer(string: ": event \(event.sequence) (\(event.kind.rawValue)) could not be encoded: \(error)\n\n")
                }
                try await writer.write(buffer)
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }

    return router
}

/// `?limit=N` (1–10000, default 1000).
func limitParameter(_ request: Request) throws -> Int {
    guard let text = request.uri.queryParameters["limit"] else { return 1000 }
    guard let value = Int(String(text)), (1...10000).contains(value) else {
        throw APIError(.badRequest, "bad_request", "limit must be a whole number from 1 to 10000, not '\(text)'")
    }
    return value
}

/// `?since=TIME` (ISO 8601 UTC), nil when absent.
func sinceParameter(_ request: Request) throws -> Timestamp? {
    try request.uri.queryParameters["since"].map { text -> Timestamp in
        guard let time = Timestamp(iso8601: String(text)) else {
            throw APIError(.badRequest, "bad_request", "since must be an ISO 8601 UTC time like 2026-11-29T09:00:00Z, not '\(text)'")
        }
        return time
    }
}

func history(_ engine: Engine, _ request: Request, agent: String?) async throws -> Response {
    let parameters = request.uri.queryParameters
    let since = try sinceParameter(request)
    let after = try parameters["after"].map { text -> Int64 in
        guard let value = Int64(String(text)), value >= 0 else {
            throw APIError(.badRequest, "bad_request", "after must be a record id, not '\(text)'")
        }
        return value
    }
    let limit = try limitParameter(request)
    let records = try await engineCall { try await engine.history(agent: agent, since: since, afterID: after, limit: limit) }
    return jsonResponse(HistoryList(records: records))
}
