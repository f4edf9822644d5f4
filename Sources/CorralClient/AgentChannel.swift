internal import CorralAPI
public import CorralCore

#if canImport(FoundationEssentials)
    public import FoundationEssentials
#else
    public import Foundation
#endif

/// A message Corral sends an agent on its event stream (the agent channel):
/// one case per kind the OpenAPI document describes, `other` for the rest.
public enum AgentMessage: Equatable, Sendable {
    /// The resource's kernel limit was multiplied by `factor`.
    case throttle(resource: Resource, factor: Double)
    /// The throttle of `resource` was lifted: the configured limit applies again.
    case throttleRestored
    /// The agent is about to be frozen (sent before the freeze).
    case suspendNotice
    /// The freeze is confirmed (the agent reads this once thawed).
    case suspended
    case thawed
    /// SIGTERM now, cgroup.kill after `graceSeconds`.
    case termination(graceSeconds: Double)
    /// Get `request.resource` to `request.target` or below by `request.deadline`.
    case scaleDown(ScaleDownRequest)
    /// The degradation level rose: apply `plan.strategies`.
    case degradation(DegradationPlan)
    /// Recovery took a strategy away (`plan.reason == .recovery`) or a relapse put one back.
    case recovery(DegradationPlan)
    /// The agent's limits changed.
    case quotaChanged(LimitSet)
    /// Any other event (violations, enforcement records, the agent's own reports…).
    case other(kind: String, message: String)
}

/// One event of the agent's stream, with its sequence number (for acks).
public struct ChannelEvent: Equatable, Sendable {
    public var sequence: Int64
    public var kind: String
    public var message: String
    public var content: AgentMessage
}

/// The agent's end of the channel: its identity from the environment
/// Corral gave it (`CORRAL_SOCKET`, `CORRAL_AGENT_ID`), its event stream as
/// an `AsyncSequence`, usage reports and acknowledgements.
///
///     let channel = try AgentChannel.fromEnvironment()
///     for try await event in channel.messages() {
///         if case .scaleDown(let request) = event.content {
///             shrink(to: request.target)
///             try channel.acknowledge(event, note: "shrunk")
///         }
///     }
public struct AgentChannel: Sendable {
    public let agent: String
    public let client: CorralClient

    public init(agent: String, client: CorralClient) {
        self.agent = agent
        self.client = client
    }

    public enum SetupError: Error, Equatable, CustomStringConvertible {
        case notUnderCorral(missing: String)

        public var description: String {
            switch self {
            case .notUnderCorral(let missing):
                "\(missing) is not set: this program was not started by Corral (corral run or corral agents start)"
            }
        }
    }

    /// The channel of the agent this process belongs to.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> AgentChannel {
        guard let agent = environment["CORRAL_AGENT_ID"], !agent.isEmpty else {
            throw SetupError.notUnderCorral(missing: "CORRAL_AGENT_ID")
        }
        guard let socket = environment["CORRAL_SOCKET"], !socket.isEmpty else { throw SetupError.notUnderCorral(missing: "CORRAL_SOCKET") }
        return AgentChannel(agent: agent, client: CorralClient(socketPath: socket))
    }

    /// The agent's events as they happen (after `after`, replaying the recent
    /// ones with a higher sequence first).
    ///
    /// The sequence outlives the daemon: when the stream ends or the daemon
    /// is unreachable (a restart), it reconnects after `retryDelay` (doubling
    /// up to `maxRetryDelay`) and resumes after the last sequence seen. A
    /// restarted daemon numbers its events from 1 again: an event with a lower
    /// sequence than the last is taken as such, and what that daemon published
    /// before the reconnection is not replayed. It ends when the task is
    /// cancelled, or throws when the daemon refuses the agent (an `api` error
    /// below 500: unknown agent, not inside its cgroup) or sends an event
    /// that is not JSON.
    public func messages(
        after: Int64? = nil, retryDelay: Duration = .milliseconds(250), maxRetryDelay: Duration = .seconds(5)
    ) -> AsyncThrowingStream<ChannelEvent, any Error> {
        let client = client
        let agent = agent
        return AsyncThrowingStream { continuation in
            let task = Task {
                var last = after
                var delay = retryDelay
                while !Task.isCancelled {
                    do {
                        for try await event in client.events(agent: agent, after: last) {
                            let message = try Self.decode(event)
                            last = message.sequence
                            delay = retryDelay
                            continuation.yield(message)
                        }
                    } catch let error as ClientError where !Self.isTransient(error) {
                        continuation.finish(throwing: error)
                        return
                    } catch let error as DecodingError {
                        continuation.finish(throwing: error)
                        return
                    } catch {
                        // Unreachable, cut off mid-stream: the daemon is restarting.
                    }
                    do {
                        try await Task.sleep(for: delay)
                    } catch {
                        break
                    }
                    delay = min(delay * 2, maxRetryDelay)
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// Whether following the stream again may work: the daemon is away or
    /// failed, as opposed to refusing this agent.
    static func isTransient(_ error: ClientError) -> Bool {
        if case .api(let status, _, _) = error { return status >= 500 }
        return true
    }

    /// Usage of resources without a cgroup controller (files, connections, network, disk).
    public func report(usage: [Resource: Double]) throws(ClientError) {
        _ = try client.call("POST", "/v1/agents/\(agent)/usage", body: UsageRequest(usage: usage), as: IgnoredBody.self)
    }

    /// Tells Corral the agent saw `event` and what it did about it.
    public func acknowledge(_ event: ChannelEvent, note: String? = nil) throws(ClientError) {
        let data: Data
        do {
            data = try CorralClient.encoder.encode(Acknowledgement(sequence: event.sequence, kind: event.kind, note: note))
        } catch {
            throw .protocolError("cannot encode the acknowledgement: \(error)")
        }
        let response = try client.send("POST", "/v1/agents/\(agent)/acks", body: [UInt8](data))
        try CorralClient.check(response)
    }

    struct IgnoredBody: Decodable {}

    /// The fields of an event (the daemon's `CorralEvent`) that agents need, with `kind` as
    /// text: an agent built against this client keeps working when a newer daemon sends a
    /// kind it does not know (`.other`), where decoding `CorralEvent.Kind` would fail.
    struct Wire: Decodable {
        var sequence: Int64
        var kind: String
        var message: String
        var request: ScaleDownRequest?
        var resource: Resource?
        var factor: Double?
        var graceSeconds: Double?
        var plan: DegradationPlan?
        var limits: LimitSet?
    }

    /// The typed form of one event of the stream.
    public static func decode(_ event: ServerSentEvent) throws -> ChannelEvent {
        let wire = try CorralClient.decoder.decode(Wire.self, from: Data(event.data.utf8))
        let content: AgentMessage =
            switch wire.kind {
            case "throttle_notice" where wire.resource != nil && wire.factor != nil:
                .throttle(resource: wire.resource!, factor: wire.factor!)
            case "throttle_restored": .throttleRestored
            case "suspend_notice": .suspendNotice
            case "suspended": .suspended
            case "thawed": .thawed
            case "termination_notice" where wire.graceSeconds != nil: .termination(graceSeconds: wire.graceSeconds!)
            case "scale_down_request" where wire.request != nil: .scaleDown(wire.request!)
            case "degradation_strategy" where wire.plan != nil: .degradation(wire.plan!)
            case "recovery_stage" where wire.plan != nil: .recovery(wire.plan!)
            case "quota_changed" where wire.limits != nil: .quotaChanged(wire.limits!)
            default: .other(kind: wire.kind, message: wire.message)
            }
        return ChannelEvent(sequence: wire.sequence, kind: wire.kind, message: wire.message, content: content)
    }
}
