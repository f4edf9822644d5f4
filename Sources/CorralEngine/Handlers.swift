import CorralCore

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// What a migrate or custom handler receives on stdin.
struct HandlerInput: Encodable {
    var action: EnforcementAction
    var violation: Violation

    /// One line of JSON. Numbers that JSON cannot hold (an infinite limit)
    /// are written as strings, so encoding cannot fail on them.
    var json: [UInt8] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do {
            return Array(try encoder.encode(self)) + [10]
        } catch {
            return Array("{\"action\":\"\(action.rawValue)\",\"error\":\"the violation could not be encoded\"}\n".utf8)
        }
    }
}
