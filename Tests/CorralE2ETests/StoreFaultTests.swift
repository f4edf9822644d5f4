import CorralAPI
import CorralCore
import CorralTestSupport
import Foundation
import Testing

/// The state directory on a small tmpfs that fills up: enforcement goes on (the ladder acts on
/// the kernel), the daemon says so in /v1/health and its log, the records wait in memory and
/// are stored, in order and none lost, once space returns.
@Suite("e2e: a full disk under the state database", .serialized, .enabled(if: E2E.enabled))
struct StoreFaultTests {
    @Test func aFullStateDiskDelaysRecordsAndLosesNone() throws {
        let (_, stress) = try E2E.binaries()
        let daemon = try DaemonTests.Daemon(
            name: "fulldisk", intervals: "{sampling: 500ms}", delays: "{warn: 0s, throttle: 3s, suspend: 120s, terminate: 240s}")
        try FileManager.default.createDirectory(atPath: daemon.state, withIntermediateDirectories: true)
        let mount = try Subprocess.run("/bin/mount", ["-t", "tmpfs", "-o", "size=8m", "corral-e2e-state", daemon.state], timeout: 30)
        try #require(mount.status == 0, "mount a tmpfs on the state directory: \(mount)")
        let filler = daemon.state + "/filler"
        defer {
            _ = try? daemon.cli(["agents", "kill", "late"])
            _ = daemon.stop()
            try? FileManager.default.removeItem(atPath: filler)
            _ = try? Subprocess.run("/bin/umount", ["-l", daemon.state], timeout: 30)
            _ = E2E.eventually(timeout: 30) {
                rmdir(daemon.cgroup("lightweight_agent", "late")) == 0
                    || !E2E.exists(daemon.cgroup("lightweight_agent", "late"))
            }
            E2E.removeEmptyTree(daemon.root)
        }
        try daemon.start()
        // A CPU spinner that begins 10 s after its start (its start is stored while there is room).
        try daemon.startAgent([
            "--name", "late", "--group", "lightweight_agent", "--", "/bin/sh", "-c", "sleep 10; exec \(stress) spin 600",
        ])
        // Fill the tmpfs. SQLite still writes into the room its WAL file already has; the
        // writes that follow (denied syscalls reported for the agent, one row each) need
        // new pages, and from then on no transaction can be stored.
        let fill = try Subprocess.run("/bin/dd", ["if=/dev/zero", "of=\(filler)", "bs=64k"], timeout: 60)
        E2E.report("state tmpfs filled: \(fill.stderr.split(separator: "\n").last ?? "")")
        for round in 0..<10 {
            let denials = (0..<200).map { index in
                #"{"agent":"late","syscall":"fill\#(round)x\#(index)","count":1,"first_at":"2026-12-04T10:00:00Z","last_at":"2026-12-04T10:00:00Z","action":"errno"}"#
            }
            _ = try Subprocess.run(
                "/usr/bin/curl",
                [
                    "-sS", "--unix-socket", daemon.socket, "-H", "Content-Type: application/json", "-X", "POST", "-d",
                    #"{"denials":[\#(denials.joined(separator: ","))]}"#, "http://corral/v1/agents/late/denials",
                ], timeout: 60)
        }

        // The ladder acts on the kernel while nothing can be stored: warn, then throttle (cpu.max lowered from 10%).
        let leaf = daemon.cgroup("lightweight_agent", "late")
        let throttled = E2E.eventually(timeout: 90) {
            (Int(E2E.read(leaf + "/cpu.max")?.split(separator: " ").first ?? "") ?? 0).isBetween(1, 9999)
        }
        #expect(throttled, "throttled in the kernel with a full disk: cpu.max \(E2E.read(leaf + "/cpu.max") ?? "?")")
        var health = try daemon.health()
        E2E.report("health with a full disk: \(health.status), store \(health.store.map { "\($0)" } ?? "-")")
        #expect(health.status == "degraded")
        #expect(health.store?.status == "failing")
        #expect((health.store?.pendingRecords ?? 0) >= 1, "the throttle (and what came after) waits in memory")
        #expect(health.store?.error?.contains("full") == true)
        let waiting = health.store?.pendingRecords ?? 0
        let storedWhileFull = try daemon.history("late")
        #expect(!storedWhileFull.contains { $0.action == .throttle }, "the throttle could not be stored: \(storedWhileFull.map(\.action))")

        // Space returns: the records are stored in order, none lost, ids contiguous.
        try FileManager.default.removeItem(atPath: filler)
        #expect(E2E.eventually(timeout: 30) { (try? daemon.health())?.store?.status == "ok" })
        health = try daemon.health()
        #expect(health.status == "ok" && health.store?.droppedRecords == 0)
        let history = try daemon.history("late")
        E2E.report(
            "after space returned: \(history.map { "\($0.id ?? 0):\($0.action.rawValue)" }.joined(separator: " ")) (\(waiting) were waiting)"
        )
        #expect(history.count >= storedWhileFull.count + waiting, "none of the \(waiting) waiting records lost")
        #expect(Array(history.filter { $0.resource == .cpu && $0.succeeded }.map(\.action).prefix(2)) == [.warn, .throttle])
        let all = try daemon.json(["history", "--limit", "10000"], as: [EnforcementRecord].self).compactMap(\.id).sorted()
        #expect(all == Array(1...(all.last ?? 0)), "ids contiguous: \(all)")
        // Said in the log.
        let log = daemon.stop().map { $0.stdout + $0.stderr } ?? ""
        #expect(log.contains("state database cannot be written"), "the log says it")
        #expect(log.contains("state database is writable again"))
    }

}

extension Int {
    fileprivate func isBetween(_ low: Int, _ high: Int) -> Bool { self >= low && self <= high }
}
