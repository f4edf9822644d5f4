import CorralAPI
import CorralCore
import CorralEngine
public import Hummingbird
import NIOCore

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// An error response: `{"error": {"code": "...", "message": "..."}}`.
public struct APIError: Error, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    func response() -> Response {
        jsonResponse(ErrorBody(code: code, message: message), status: status)
    }

    static func from(_ error: EngineError) -> APIError {
        switch error.code {
        case .notFound: APIError(.notFound, "not_found", error.message)
        case .conflict: APIError(.conflict, "conflict", error.message)
        case .invalid: APIError(.unprocessableContent, "invalid", error.message)
        case .failed: APIError(.internalServerError, "failed", error.message)
        }
    }

    /// Describes a decoding failure by the field it happened at.
    static func from(decoding error: DecodingError) -> APIError {
        func path(_ codingPath: [any CodingKey]) -> String {
            let text = codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return text.isEmpty ? "the body" : "'\(text)'"
        }
        let message: String
        switch error {
        case .typeMismatch(let type, let context):
            message = "\(path(context.codingPath)) must be \(describe(type))"
        case .valueNotFound(let type, let context):
            message = "\(path(context.codingPath)) must be \(describe(type)), not null"
        case .keyNotFound(let key, let context):
            message = "missing field '\(path(context.codingPath + [key]).trimmingCharacters("'"))'"
        case .dataCorrupted(let context):
            message =
                context.codingPath.isEmpty
                ? "the body is not valid JSON" : "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            message = "the body does not match the expected shape"
        }
        return APIError(.badRequest, "bad_request", message)
    }

    static func describe(_ type: Any.Type) -> String {
        let name = String(describing: type)
        switch name {
        case "String": return "a string"
        case "Double", "Float": return "a number"
        case "Int", "Int32", "Int64": return "an integer"
        case "Bool": return "true or false"
        case let name where name.hasPrefix("Array"): return "a list"
        case let name where name.hasPrefix("Dictionary"): return "an object"
        default: return "a \(name)"
        }
    }
}

extension String {
    fileprivate func trimmingCharacters(_ character: Character) -> String {
        var text = Substring(self)
        while text.first == character { text.removeFirst() }
        while text.last == character { text.removeLast() }
        return String(text)
    }
}

func jsonResponse<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
    let data: Data
    do {
        data = try APIJSON.encoder.encode(value)
    } catch {
        // A value JSON cannot hold (a non-finite number): said, not sent as an empty success.
        let body = ErrorBody(code: "failed", message: "the response could not be encoded as JSON: \(error)")
        return jsonResponse(body, status: .internalServerError)
    }
    var buffer = ByteBuffer()
    buffer.writeBytes(data)
    buffer.writeString("\n")
    return Response(
        status: status, headers: [.contentType: "application/json; charset=utf-8"], body: ResponseBody(byteBuffer: buffer))
}

/// The largest request body the API reads.
let maximumBodySize = 64 * 1024

/// Reads and decodes a JSON request body; every failure is a 4xx with a message.
func decodeBody<T: Decodable>(_ type: T.Type, from request: Request) async throws -> T {
    let buffer: ByteBuffer
    do {
        buffer = try await request.body.collect(upTo: maximumBodySize)
    } catch {
        throw APIError(.contentTooLarge, "too_large", "the request body is larger than \(maximumBodySize / 1024) KiB")
    }
    return try decodeJSON(type, from: buffer)
}

/// Decodes `buffer` as `T` (also used directly by the fuzz tests).
public func decodeJSON<T: Decodable>(_ type: T.Type, from buffer: ByteBuffer) throws -> T {
    guard buffer.readableBytes > 0 else {
        throw APIError(.badRequest, "bad_request", "the request needs a JSON body")
    }
    do {
        return try APIJSON.decoder.decode(type, from: Data(buffer.readableBytesView))
    } catch let error as DecodingError {
        throw APIError.from(decoding: error)
    } catch {
        throw APIError(.badRequest, "bad_request", "the body is not valid JSON")
    }
}

/// The largest amount a request may give: beyond 2^53 a Double skips whole
/// numbers, and neither cgroup files nor messages can hold what it means.
let maximumAmount: Double = 9_007_199_254_740_992

/// Refuses amounts that no limit, total or usage can mean (422) before they
/// reach the engine, whose Int64 conversions would trap on them.
func checkAmounts(limits: [Resource: LimitOverride]? = nil, totals: [Resource: Double]? = nil, usage: [Resource: Double]? = nil) throws {
    var named: [(String, Double)] = []
    for (resource, limit) in limits ?? [:] {
        for (field, value) in [("soft", limit.soft), ("hard", limit.hard), ("burst", limit.burst)] {
            if let value { named.append(("limits.\(resource.rawValue).\(field)", value)) }
        }
    }
    for (resource, value) in totals ?? [:] { named.append(("totals.\(resource.rawValue)", value)) }
    for (resource, value) in usage ?? [:] { named.append(("usage.\(resource.rawValue)", value)) }
    for (name, value) in named.sorted(by: { $0.0 < $1.0 }) where !(value.magnitude <= maximumAmount) {
        throw APIError(.unprocessableContent, "invalid", "\(name) is \(value): amounts must lie within ±\(Int64(maximumAmount))")
    }
    if let processes = totals?[.processes], processes > SystemLimits.maximumProcesses {
        throw APIError(
            .unprocessableContent, "invalid",
            "totals.processes \(Int64(processes)) is above the kernel's maximum of \(Int64(SystemLimits.maximumProcesses)) (PID_MAX_LIMIT)")
    }
}
