import Foundation

/// Files copied from real cgroupfs: `debian-6.1/` from the test VM's stock
/// Debian kernel (pure cgroup v2), `hybrid-host/` from a hybrid host.
enum Fixture {
    static func text(_ name: String) throws -> String {
        guard let url = Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil) else {
            throw FixtureMissing(name: name)
        }
        return try String(contentsOf: url, encoding: .utf8)
    }

    struct FixtureMissing: Error { var name: String }
}
