import CorralAPI
import CorralCore
public import CorralEngine
public import Hummingbird
import NIOCore

/// What the status page shows, as `GET /status.json` serves it.
struct StatusPageData: Encodable {
    struct Amount: Encodable {
        var used: Double?
        var soft: Double?
        var hard: Double?
    }
    struct Agent: Encodable {
        var id: String
        var group: String
        var state: String
        var priority: Int
        var degradation: String
        var escalationStep: Int
        var queuePosition: Int?
        var memory: Amount
        var workingSet: Double?
        var cpu: Amount
        var processes: Amount
    }
    struct Action: Encodable {
        var sequence: Int64
        var at: Timestamp
        var agent: String?
        var action: String
        var resource: String
        var outcome: String
    }
    var version: String
    var at: Timestamp
    var agents: [Agent]
    var capacity: CapacityReport
    var actions: [Action]

    init(version: String, at: Timestamp, snapshot: MetricsSnapshot, recent: [CorralEvent]) {
        self.version = version
        self.at = at
        capacity = snapshot.capacity
        agents = snapshot.agents.map { agent in
            func amount(_ resource: Resource, used: Double?) -> Amount {
                let limit = agent.limits[resource]
                return Amount(used: used, soft: limit.map(\.soft), hard: limit.map(\.hard))
            }
            let memoryUsed = agent.sample?.memoryCurrent.map(Double.init) ?? agent.usage[.memory]
            return Agent(
                id: agent.id, group: agent.group, state: agent.state.rawValue, priority: agent.priority.rawValue,
                degradation: agent.degradation.rawValue, escalationStep: agent.escalationStep, queuePosition: agent.queuePosition,
                memory: amount(.memory, used: memoryUsed), workingSet: agent.sample?.workingSet.map(Double.init),
                cpu: amount(.cpu, used: agent.usage[.cpu]),
                processes: amount(.processes, used: agent.sample?.pidsCurrent.map(Double.init) ?? agent.usage[.processes]))
        }
        actions = recent.suffix(20).reversed().compactMap { event in
            guard let record = event.record else { return nil }
            return Action(
                sequence: event.sequence, at: event.at, agent: event.agent, action: record.action.rawValue,
                resource: record.resource.rawValue,
                outcome: record.succeeded ? "succeeded" : "failed")
        }
    }
}

/// Adds the read-only observability endpoints: `GET /metrics` (Prometheus),
/// `GET /` (the status page), `GET /status.json` (its data) and
/// `GET /status/events` (its live updates: each event's sequence, kind,
/// agent and, for an action, what it was; no messages or command lines).
/// On the API socket they sit behind the authorization middleware
/// (administrators only); on the metrics address they are all there is.
func addObservabilityRoutes(to router: Router<some RequestContext>, engine: Engine, metrics: DaemonMetrics) {
    router.get("metrics") { _, _ -> Response in
        let body = await metrics.scrape(engine)
        return Response(status: .ok, headers: [.contentType: DaemonMetrics.contentType], body: ResponseBody(byteBuffer: body))
    }
    router.get("/") { _, _ -> Response in
        Response(
            status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-cache"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: StatusPage.html)))
    }
    router.get("status.json") { _, _ -> Response in
        let snapshot = await engine.metrics()
        let recent = engine.hub.recent(agent: nil).filter { $0.kind == .enforcement }
        return jsonResponse(StatusPageData(version: metrics.version, at: Engine.wallClock(), snapshot: snapshot, recent: recent))
    }
    router.get("status/events") { _, _ -> Response in
        let stream = engine.hub.subscribe(agent: nil)
        let body = ResponseBody { writer in
            try await writer.write(ByteBuffer(string: ": corral status\n\n"))
            for await event in stream {
                var fields = ["\"sequence\":\(event.sequence)", "\"kind\":\"\(event.kind.rawValue)\""]
                if let agent = event.agent { fields.append("\"agent\":\"\(agent)\"") }
                if let record = event.record {
                    fields.append("\"action\":\"\(record.action.rawValue)\"")
                    fields.append("\"resource\":\"\(record.resource.rawValue)\"")
                    fields.append("\"outcome\":\"\(record.succeeded ? "succeeded" : "failed")\"")
                }
                try await writer.write(ByteBuffer(string: "id: \(event.sequence)\ndata: {\(fields.joined(separator: ","))}\n\n"))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }
}

/// The router of `corrald --metrics-address`: the observability endpoints
/// only, read-only, for anyone who can reach the address (keep it on
/// loopback or a private network; the API itself stays on the socket).
public func buildMetricsRouter(engine: Engine, metrics: DaemonMetrics) -> Router<BasicRequestContext> {
    let router = Router(context: BasicRequestContext.self)
    addObservabilityRoutes(to: router, engine: engine, metrics: metrics)
    return router
}
