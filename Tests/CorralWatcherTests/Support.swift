import CorralCgroup
import CorralCore
import Foundation
import Synchronization
import Testing

@testable import CorralWatcher

/// All watcher suites, one test at a time: the real-kernel test times
/// latencies and the fake-tree tests count descriptors.
@Suite(.serialized) enum WatcherSuite {}

/// What the watcher's sink received, with the monotonic time of arrival.
final class EventLog: Sendable {
    struct Entry: Sendable {
        var event: WatcherEvent
        var arrived: ContinuousClock.Instant
    }

    private let entries = Mutex<[Entry]>([])

    func record(_ event: WatcherEvent) {
        let now = ContinuousClock.now
        entries.withLock { $0.append(Entry(event: event, arrived: now)) }
    }

    var all: [Entry] { entries.withLock { $0 } }
    var events: [WatcherEvent] { all.map(\.event) }

    func observations(of subject: WatchSubject) -> [Observation] {
        events.compactMap { event in
            if case .observation(let observation) = event, observation.subject == subject { return observation }
            return nil
        }
    }

    /// The first entry, from index `after` on, that `match` accepts; waits up to `timeout`.
    func first(after: Int = 0, timeout: Duration = .seconds(2), where match: (WatcherEvent) -> Bool) -> Entry? {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            let all = self.all
            if after < all.count, let entry = all[after...].first(where: { match($0.event) }) { return entry }
            if ContinuousClock.now >= deadline { return nil }
            usleep(1000)
        }
    }

    var count: Int { entries.withLock { $0.count } }
}

/// A fake cgroup tree in a temporary directory: regular files with the
/// kernel's formats. inotify reports their in-place writes like cgroupfs does.
final class FakeTree {
    let root: String
    let fs: DirectoryCgroupFilesystem

    init() throws {
        var template = Array((NSTemporaryDirectory() + "corral-watch-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw POSIXError(.EIO) }
        root = String(cString: made)
        fs = try DirectoryCgroupFilesystem(anchorPath: root)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    func path(_ relative: String) -> String { root + "/" + relative }

    /// A cgroup with every file the watcher reads (`controllers: false`: only the core files).
    @discardableResult
    func makeCgroup(_ relative: String, populated: Bool = true, controllers: Bool = true) throws -> CgroupPath {
        try FileManager.default.createDirectory(atPath: path(relative), withIntermediateDirectories: true)
        let cgroup = CgroupPath(relative.split(separator: "/").map(String.init))
        set(.events, of: cgroup, events(populated: populated))
        if controllers {
            set(.memoryEvents, of: cgroup, memoryEvents())
            set(.memoryCurrent, of: cgroup, "1048576\n")
            set(.memoryPeak, of: cgroup, "2097152\n")
            set(.cpuStat, of: cgroup, cpuStat(usage: 0))
            set(.pidsCurrent, of: cgroup, "1\n")
            set(.pidsEvents, of: cgroup, "max 0\n")
        }
        return cgroup
    }

    /// Replaces the content with one pwrite(2) at offset 0, as the kernel
    /// changes a file: no empty file in between (which O_TRUNC would show a
    /// reader woken by the truncation). The text is padded with newlines to
    /// 256 bytes, which every cgroup file parser skips, so it never leaves a
    /// longer old tail behind.
    func set(_ file: CgroupFile, of cgroup: CgroupPath, _ text: String) {
        let fd = open(path(cgroup.relative) + "/" + file.rawValue, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        precondition(fd >= 0, "open \(file.rawValue): errno \(errno)")
        var bytes = Array(text.utf8)
        precondition(bytes.count <= 256, "fake cgroup files hold at most 256 bytes")
        bytes += [UInt8](repeating: 0x0a, count: 256 - bytes.count)
        let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        precondition(written == bytes.count, "write \(file.rawValue): errno \(errno)")
        close(fd)
    }

    func remove(_ relative: String) throws {
        try FileManager.default.removeItem(atPath: path(relative))
    }

    func memoryEvents(high: Int = 0, max: Int = 0, oom: Int = 0, oomKill: Int = 0) -> String {
        "low 0\nhigh \(high)\nmax \(max)\noom \(oom)\noom_kill \(oomKill)\noom_group_kill 0\n"
    }

    func events(populated: Bool, frozen: Bool = false) -> String {
        "populated \(populated ? 1 : 0)\nfrozen \(frozen ? 1 : 0)\n"
    }

    func cpuStat(usage: Int64, throttled: Int64 = 0) -> String {
        "usage_usec \(usage)\nuser_usec \(usage)\nsystem_usec 0\nnr_periods 0\nnr_throttled \(throttled)\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n"
    }
}

/// Descriptors of this process, by what they are.
enum OpenFiles {
    /// Link targets of /proc/self/fd.
    static func targets() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return names.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0) }
    }

    static var count: Int { targets().count }

    /// What `fd` is ("anon_inode:inotify", a path), nil when it is not open.
    static func target(_ fd: Int32) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)")
    }

    /// Watches held by the inotify instance `fd` (/proc/self/fdinfo lines "inotify wd:").
    static func inotifyWatches(of fd: Int32) -> Int {
        let info = (try? String(contentsOfFile: "/proc/self/fdinfo/\(fd)", encoding: .utf8)) ?? ""
        return info.split(separator: "\n").filter { $0.hasPrefix("inotify wd:") }.count
    }
}

/// A slot for a value set after a closure capturing it was made.
final class Slot<Value: Sendable>: Sendable {
    private let value = Mutex<Value?>(nil)

    func set(_ newValue: Value) { value.withLock { $0 = newValue } }

    var get: Value? { value.withLock { $0 } }
}

extension WatcherEvent {
    var observation: Observation? {
        if case .observation(let observation) = self { return observation }
        return nil
    }

    var isVanished: Bool {
        if case .vanished = self { return true }
        return false
    }

    var isEmptied: Bool {
        if case .emptied = self { return true }
        return false
    }

    var isUnreadable: Bool {
        if case .unreadable = self { return true }
        return false
    }
}

extension Duration {
    var milliseconds: Double { Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15 }
}
