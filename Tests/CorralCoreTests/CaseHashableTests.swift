import CorralCore
import Testing

/// The enums hashed by their case (`CaseHashable`): each value is its tag alone,
/// and hashing agrees with equality, case by case and through the raw value.
@Suite("Enums hashed by their case")
struct CaseHashableTests {
    func check<T: CaseHashable & CaseIterable>(_ type: T.Type) {
        #expect(MemoryLayout<T>.size <= 1, "\(T.self) is not a bare tag: hashing its first byte would not do")
        let all = Array(T.allCases)
        #expect(Set(all).count == all.count, "\(T.self): a case lost in a set")
        #expect(Set(all.map(\.hashValue)).count == all.count, "\(T.self): two cases hash alike")
        #expect(all.indices.allSatisfy { all[$0].caseIndex == $0 }, "\(T.self): a case's index is not its place in allCases")
        var table: [T: String] = [:]
        for value in all { table[value] = value.rawValue }
        for value in all {
            let again = T(rawValue: value.rawValue)
            #expect(again?.hashValue == value.hashValue)
            #expect(table[again!] == value.rawValue, "\(T.self).\(value.rawValue) found again by its raw value")
        }
    }

    @Test func everyAdopterHashesItsCase() {
        check(Resource.self)
        check(AgentState.self)
        check(SamplingCadence.self)
        check(ViolationKind.self)
        check(EnforcementAction.self)
        check(DegradationLevel.self)
        check(DegradationStrategy.self)
        check(Controller.self)
        check(CgroupFile.self)
        check(ResourceLimitName.self)
        check(SeccompAction.self)
        check(SeccompProfile.self)
        check(CapabilityPolicy.self)
        check(HostStage.self)
        check(UsagePattern.self)
        #expect(MemoryLayout<AgentOrigin>.size <= 1)
        #expect(Set([AgentOrigin.launched, .registered, .launched]).count == 2)
    }
}
