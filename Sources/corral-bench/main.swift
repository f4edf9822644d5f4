// corral-bench: benchmarks that need a real cgroup v2 kernel (run by
// scripts/bench-reaction in the VM, or natively as root on a unified host).
//
//   corral-bench analytics [AGENTS] [SAMPLES]
//       Pattern classification of AGENTS × SAMPLES generated samples (any host).
//
//   corral-bench metrics [AGENTS] [SCRAPES]
//       The Prometheus exposition of AGENTS agents' latest samples (any host).
//
//   corral-bench scrape [AGENTS] [SCRAPES]
//       A whole scrape natively: an engine on a fake cgroupfs with AGENTS
//       agents, the metrics address served by Hummingbird, a plain socket
//       client in the same process scraping it;
//       the process's CPU per scrape, split into snapshot, exposition and the
//       rest (HTTP), beside a request for the small status page (any host).
//
//   corral-bench memory [AGENTS]
//       Memory per agent natively: an engine on a fake cgroupfs with AGENTS
//       agents (memory, CPU and process limits) fed an hour of samples on a
//       manual clock, as idle agents (one sample each 10 s) and as active ones
//       (each second); the resident memory against the same
//       engine before its agents (any host).
//
//   corral-bench sampling [AGENTS] [ROUNDS]
//       The watcher's full sample, natively: AGENTS directories of regular
//       files with a real kernel's cgroupfs contents (Debian 6.1, from the
//       tests' fixtures), each sampled ROUNDS times through CgroupWatcher, with
//       the files that only the metrics need and without; beside a baseline
//       measured in the same run: the same files opened, read and closed (any
//       host).
//
//   corral-bench reaction [AGENTS] [STRESS] [HOLD_SECONDS]
//       Reaction latency: AGENTS agents (default 120) each cross memory.high
//       once; for every kernel event, the time from the watcher's wake-up
//       (inotify on memory.events) to the engine's recorded action (committed to
//       SQLite), beside a 1 s polling loop (what systemd-oomd and oomd do)
//       watching the same files in the same run.
import CorralAPI
import CorralCgroup
import CorralCore
import CorralEngine
import CorralLinux
import CorralRuntime
import CorralServer
import CorralStore
import CorralTestSupport
import CorralThreads
import CorralWatcher
import Foundation
import Hummingbird
import Synchronization
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

func say(_ text: String) {
    let line = text + "\n"
    _ = line.withCString { write(1, $0, strlen($0)) }
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    let index = min(sorted.count - 1, max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1))
    return sorted[index]
}

func ms(_ duration: Duration) -> Double { Double(duration.microseconds) / 1000 }

func fmt(_ value: Double) -> String { Quantity.formatDecimal(value, places: 1) }

func ProcessInfo_isVerbose() -> Bool { getenv("CORRAL_BENCH_VERBOSE") != nil }

/// `hold`: how long each agent keeps its memory after crossing. 0: it exits
/// at once, so crossings do not pile up (the reaction path alone); longer: the
/// agents stay throttled at memory.high and keep the kernel and the watcher busy.
func reaction(agents count: Int, stress: String, hold: Int, warmupCount: Int = 10) async throws {
    let holdSeconds = String(hold)
    FileLimit.raise()
    // As corrald does: pages stay resident once touched.
    do {
        try Memory.lockAll()
    } catch {
        say("(could not lock memory as corrald does: \(error))")
    }
    let rootName = "corral-bench-reaction"
    let fs = try DirectoryCgroupFilesystem(anchorPath: "/sys/fs/cgroup")
    let tree = CgroupTree(fs: fs, root: CgroupPath([rootName]))
    _ = try tree.prepareRoot(selfPID: getpid(), reservation: nil)
    let directory = "/tmp/corral-bench-\(getpid())"
    mkdir(directory, 0o700)
    let store = try CorralStore(path: directory + "/corral.db")
    var configuration = CorralConfiguration.builtIn
    configuration.intervals.sampling = .seconds(1)
    let timed = TimedStore(SQLiteEngineStore(store: store))
    let engine = Engine(configuration: configuration, tree: tree, store: timed)

    // When the watcher first saw each agent's memory.events change.
    let seen = Mutex<[String: ContinuousClock.Instant]>([:])
    let handed = Mutex<[String: ContinuousClock.Instant]>([:])
    let timeline = Mutex<[String: [String]]>([:])
    let origin = ContinuousClock.now
    // When the loop took each agent's first crossing observation off the queue.
    let dequeued = Mutex<[String: ContinuousClock.Instant]>([:])
    // The daemon's loop (EngineLoop), with its timers (reaping, delayed
    // ladder steps, usage minutes into SQLite, periodic analytics), timed.
    let loop = EngineLoop(
        engine: engine,
        instruments: EngineLoop.Instruments(
            handled: { event, start, done in
                if case .observation(let observation) = event, let agent = observation.subject.agent,
                    observation.readings.contains(where: { $0.resource == .memory && $0.hitSoft })
                {
                    dequeued.withLock { if $0[agent] == nil { $0[agent] = start } }
                }
                let kind =
                    switch event {
                    case .observation: "(engine.handle)"
                    case .emptied: "(engine.handle emptied)"
                    case .vanished: "(engine.handle vanished)"
                    case .unreadable: "(engine.handle unreadable)"
                    }
                timed.note(kind, from: start, to: done)
            },
            ticked: { start, done, work in
                timed.note("(engine.tick)", from: start, to: done)
                timed.note("(engine.tick, its own work)", from: start, to: start + work)
            }))
    let watcher = try await loop.watcher(for: engine, filesystem: fs, sampling: .seconds(1)) { event in
        if case .observation(let observation) = event, let agent = observation.subject.agent,
            let memory = observation.reading(.memory), memory.usage > 8 * 1_048_576 || memory.hitSoft
        {
            timeline.withLock {
                $0[agent, default: []].append(
                    "\(fmt(ms(observation.seenAt - origin)))ms \(observation.trigger) hitSoft=\(memory.hitSoft) usage=\(Int(memory.usage) / 1024)KiB handed=\(fmt(ms(ContinuousClock.now - origin)))"
                )
            }
            // The first time the watcher saw the crossing, by whatever path.
            let handedAt = ContinuousClock.now
            seen.withLock { if $0[agent] == nil { $0[agent] = observation.seenAt } }
            handed.withLock { if $0[agent] == nil { $0[agent] = handedAt } }
        }
    }
    watcher.start()
    let pump = Task { await loop.run() }

    // Recorded actions: when the transaction holding the warning returned
    // (timed.committed), and when a subscriber of the event stream got the
    // event the engine publishes right after (`recorded`: adds the hop to
    // this process's listener task).
    let recorded = Mutex<[String: ContinuousClock.Instant]>([:])
    let events = engine.hub.subscribe(agent: nil)
    let listener = Task {
        for await event in events where event.kind == .enforcement && event.record?.action == .warn && event.record?.resource == .memory {
            let now = ContinuousClock.now
            if let agent = event.agent { recorded.withLock { if $0[agent] == nil { $0[agent] = now } } }
        }
    }

    // The baseline: a 1 s polling loop over the same memory.events files.
    let polled = Mutex<[String: ContinuousClock.Instant]>([:])
    let names = (0..<count).map { "r\($0)" }
    // The first crossings of a fresh process (and VM) pay one-time costs:
    // code and data touched for the first time, SQLite's first pages, the
    // kernel's first reclaim. WARMUP agents cross first and are reported
    // apart, not counted in the figures.
    let warmupNames = (0..<warmupCount).map { "w\($0)" }
    let allNames = warmupNames + names
    // On a thread of its own, as a separate daemon would be: its blocking
    // reads must not occupy the Swift task pool the engine runs on.
    let pollerStop = Mutex(false)
    OSThread.start(name: "bench-poller") {
        while !pollerStop.withLock({ $0 }) {
            for name in names where polled.withLock({ $0[name] == nil }) {
                let leaf = tree.agentPath(group: "standard_agent", agent: name)
                if let text = try? fs.read(.memoryEvents, of: leaf), MemoryEvents(parsing: text).high > 0 {
                    let now = ContinuousClock.now
                    polled.withLock { $0[name] = now }
                }
            }
            usleep(1_000_000)
        }
    }

    var overrides: [Resource: LimitOverride] = [:]
    overrides[.memory] = LimitOverride(soft: 8 * 1_048_576, hard: 256 * 1_048_576)
    overrides[.cpu] = LimitOverride(soft: 100, hard: 100)
    say(
        "reaction: \(count) agents, each crossing memory.high (8 MiB) once, 250 ms apart, after all are running; each keeps its memory \(hold) s …"
    )
    var children: [Int32] = []
    // Crossings start once every agent runs, so the engine is not busy
    // creating cgroups meanwhile: agent i crosses at first + i × 250 ms.
    let registrationStart = ContinuousClock.now
    let first = ContinuousClock.now + .milliseconds(Int64(allNames.count) * 500 + 10000)
    for (index, name) in allNames.enumerated() {
        let delay = max(0, (first + .milliseconds(Int64(index) * 250) - ContinuousClock.now).seconds)
        let record = try await engine.register(id: name, group: "standard_agent", command: [stress], overrides: overrides)
        let leaf = tree.agentPath(group: record.group, agent: name)
        let dir = try fs.openDirectory(leaf)
        let procs = try fs.openForWriting(.procs, of: leaf)
        let child = try Spawner.spawn(
            .init(
                executable: stress, arguments: [stress, "mem", "10", holdSeconds, "1", Quantity.formatDecimal(delay, places: 3)],
                environment: [], cgroupDirectory: dir, cgroupProcs: procs,
                standardOutput: try FileDescriptor.open("/dev/null", .writeOnly)))
        try? dir.close()
        try? procs.close()
        children.append(child.pid)
        _ = try await engine.attach(id: name, pid: child.pid)
    }
    say(
        "  \(allNames.count) agents (\(warmupCount) of them warm-up) registered and running in \(fmt((ContinuousClock.now - registrationStart).seconds)) s; crossings start \(fmt((first - ContinuousClock.now).seconds)) s later"
    )
    let deadline = ContinuousClock.now + .seconds(Int64(count) + 180)
    while ContinuousClock.now < deadline {
        let done =
            recorded.withLock { $0.count } >= allNames.count && polled.withLock { $0.count } >= count
            && timed.committed.withLock { $0.count } >= allNames.count
        if done { break }
        try await Task.sleep(for: .milliseconds(200))
    }
    try await Task.sleep(for: .seconds(2))

    let seenAt = seen.withLock { $0 }
    let deliveredAt = recorded.withLock { $0 }
    let recordedAt = timed.committed.withLock { $0 }
    var delivered: [Double] = []
    for name in names {
        if let start = seen.withLock({ $0[name] }), let end = deliveredAt[name] { delivered.append(ms(end - start)) }
    }
    let polledAt = polled.withLock { $0 }
    var corral: [Double] = []
    var polling: [Double] = []
    var watcherPart: [Double] = []
    var enginePart: [Double] = []
    let handedAt = handed.withLock { $0 }
    for name in names {
        guard let start = seenAt[name] else { continue }
        if let end = recordedAt[name] { corral.append(ms(end - start)) }
        if let middle = handedAt[name], let end = recordedAt[name] {
            watcherPart.append(ms(middle - start))
            enginePart.append(ms(end - middle))
        }
        if let end = polledAt[name] { polling.append(max(0, ms(end - start))) }
    }
    if ProcessInfo_isVerbose() {
        let worst = names.compactMap { name in seenAt[name].flatMap { start in recordedAt[name].map { (name, ms($0 - start)) } } }
            .sorted { $0.1 > $1.1 }.prefix(3)
        for (name, latency) in worst {
            say("slow \(name): \(fmt(latency)) ms; recorded at \(fmt(ms(recordedAt[name]! - origin)))ms")
            for line in timeline.withLock({ $0[name] ?? [] }).prefix(6) { say("   \(line)") }
        }
    }
    // The engine's part, split: stream and actor queue, the step on the actor
    // (ladder, actions), the committer's queue, the transaction.
    var queued: [Double] = []
    var stepped: [Double] = []
    var committing: [Double] = []
    let dequeuedAt = dequeued.withLock { $0 }
    let commitStartedAt = timed.commitStarted.withLock { $0 }
    for name in names {
        guard let handedAt = handedAt[name], let pulled = dequeuedAt[name], let begun = commitStartedAt[name], let end = recordedAt[name]
        else { continue }
        queued.append(ms(pulled - handedAt))
        stepped.append(ms(begun - pulled))
        committing.append(ms(end - begun))
        if ProcessInfo_isVerbose(), ms(end - handedAt) > 40 {
            say(
                "  split \(name): stream+actor \(fmt(ms(pulled - handedAt))) ms, step+committer queue \(fmt(ms(begun - pulled))) ms, transaction \(fmt(ms(end - begun))) ms"
            )
        }
    }
    if ProcessInfo_isVerbose() {
        for (start, name, elapsed) in timed.slow.withLock({ $0 }) where start > first - .seconds(2) {
            say("  slow call: \(name) at \(fmt(ms(start - origin)))ms took \(fmt(ms(elapsed))) ms")
        }
    }
    say("reaction latency, kernel memory.events change (watcher wake-up) → action recorded in SQLite (transaction committed):")
    say("  events: \(corral.count) of \(count) agents (polling loop saw \(polling.count))")
    let warmupLatencies = warmupNames.compactMap { name in seenAt[name].flatMap { start in recordedAt[name].map { ms($0 - start) } } }
    say(
        "  (warm-up, not counted: \(warmupLatencies.count) crossings, max \(fmt(warmupLatencies.max() ?? .nan)) ms: \(warmupLatencies.map(fmt).joined(separator: ", ")))"
    )
    say(
        "  corral (inotify → ladder → SQLite)  p50 \(fmt(percentile(corral, 0.5))) ms  p99 \(fmt(percentile(corral, 0.99))) ms  max \(fmt(corral.max() ?? .nan)) ms"
    )
    say(
        "    of which the watcher (wake-up → observation handed over)  p50 \(fmt(percentile(watcherPart, 0.5))) ms  p99 \(fmt(percentile(watcherPart, 0.99))) ms"
    )
    say(
        "    and the engine (observation → ladder → record committed)  p50 \(fmt(percentile(enginePart, 0.5))) ms  p99 \(fmt(percentile(enginePart, 0.99))) ms"
    )
    say(
        "      split: to the engine (stream, actor) p50 \(fmt(percentile(queued, 0.5))) p99 \(fmt(percentile(queued, 0.99))); step and commit queue p50 \(fmt(percentile(stepped, 0.5))) p99 \(fmt(percentile(stepped, 0.99))); transaction p50 \(fmt(percentile(committing, 0.5))) p99 \(fmt(percentile(committing, 0.99))) ms"
    )
    for (name, durations) in timed.durations.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
        let values = durations.map(ms)
        say(
            "    store.\(name): \(values.count) calls  p50 \(fmt(percentile(values, 0.5))) ms  p99 \(fmt(percentile(values, 0.99))) ms  max \(fmt(values.max() ?? .nan)) ms  total \(fmt(values.reduce(0, +) / 1000)) s"
        )
    }
    say(
        "  (the event out of the engine's stream, received by a task of this process: p50 \(fmt(percentile(delivered, 0.5))) ms  p99 \(fmt(percentile(delivered, 0.99))) ms)"
    )
    say(
        "  1 s polling loop (detection only)   p50 \(fmt(percentile(polling, 0.5))) ms  p99 \(fmt(percentile(polling, 0.99))) ms  max \(fmt(polling.max() ?? .nan)) ms"
    )
    say(
        "  ratio p99 polling / corral: \(fmt(percentile(polling, 0.99) / percentile(corral, 0.99)))x; target p99 < 50 ms: \(percentile(corral, 0.99) < 50 ? "met" : "MISSED")"
    )

    pollerStop.withLock { $0 = true }
    for pid in children { kill(pid, SIGKILL) }
    for pid in children {
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
    try await Task.sleep(for: .seconds(1))
    for name in allNames { await engine.handle(.emptied(.agent(name), at: Timestamp.now())) }
    watcher.stop()
    loop.stop()
    engine.hub.finishAll()
    pump.cancel()
    listener.cancel()
    try await Task.sleep(for: .seconds(2))
    for name in allNames { try? tree.remove(tree.agentPath(group: "standard_agent", agent: name)) }
    tree.removeIfUnused(tree.groupPath("standard_agent"))
    tree.removeIfUnused(tree.root)
    try? store.close()
}

/// Analytics: classify AGENTS series of SAMPLES samples each (generated,
/// one per agent, all five patterns), timing only the analysis; beside a
/// baseline measured in the same run: one pass that sums the same samples.
func analytics(agents: Int, samples: Int) {
    var random = SeededGenerator(seed: 42)
    var analysisTime = Duration.zero
    var baselineTime = Duration.zero
    var counts: [UsagePattern: Int] = [:]
    var recommendations = 0
    var checksum = 0.0
    let clock = ContinuousClock()
    for agent in 0..<agents {
        let pattern = UsagePattern.allCases[agent % UsagePattern.allCases.count]
        let series = SeriesGenerator.series(pattern, count: samples, using: &random)
        let baselineStart = clock.now
        checksum += series.reduce(0, +)
        baselineTime += clock.now - baselineStart
        // Classification and recommendation of the series as memory in MB.
        let megabytes = series.map { $0 * 1_000_000 }
        let start = clock.now
        let analysis = PatternClassifier.analyze(megabytes, interval: .seconds(1))
        let usage = ResourceUsage(resource: .memory, values: megabytes, interval: .seconds(1), analysis: analysis)
        let recommended = Recommender.recommend(
            agent: "a\(agent)", group: QuotaGroup.standard.name, limits: QuotaGroup.standard.limits, usage: [usage],
            groups: QuotaGroup.seedGroups, at: Timestamp(milliseconds: 0))
        analysisTime += clock.now - start
        counts[analysis.pattern, default: 0] += 1
        recommendations += recommended.count
    }
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    let seconds = Double(analysisTime.components.seconds) + Double(analysisTime.components.attoseconds) / 1e18
    let baseline = Double(baselineTime.components.seconds) + Double(baselineTime.components.attoseconds) / 1e18
    say("analytics: \(agents) agents × \(samples) samples (\(agents * samples / 1_000_000) M samples), one core")
    say(
        "  classify + recommend   \(String(format: "%.3f", seconds)) s  (\(String(format: "%.1f", seconds / Double(agents) * 1e6)) µs per agent)"
    )
    say(
        "  baseline (one summing pass over the same samples)   \(String(format: "%.3f", baseline)) s;  ratio \(String(format: "%.1f", seconds / baseline))×"
    )
    say("  peak RSS \(usage.ru_maxrss / 1024) MiB (the process, with one series at a time: \(samples * 8 / 1024) KiB each)")
    say("  patterns found: " + UsagePattern.allCases.map { "\($0.rawValue) \(counts[$0] ?? 0)" }.joined(separator: ", "))
    say("  recommendations made: \(recommendations)")
    say("  target < 1 s: \(seconds < 1 ? "met" : "MISSED")  (checksum \(Int(checksum) % 1000))")
}

/// The metrics exposition: SCRAPES scrapes of a snapshot of AGENTS agents
/// with full samples (every family present), timed; beside a baseline
/// measured in the same run: the same agents' records encoded as JSON, as
/// `GET /v1/agents` sends them. Machine-independent of cgroupfs: the
/// exposition reads no file (the engine's latest samples are its input).
/// An agent's sample with every figure the metrics carry (the metrics benchmarks' input).
let metricsSample = CgroupSample(
    memoryCurrent: 100 << 20, memoryEvents: MemoryEvents(high: 7, max: 3, oom: 1, oomKill: 1),
    cpu: CPUStat(
        usageUsec: 2_500_000, userUsec: 2_000_000, systemUsec: 500_000, nrPeriods: 40, nrThrottled: 12, throttledUsec: 750_000),
    pidsCurrent: 4, events: CgroupEvents(populated: true, frozen: false), inactiveFile: 30 << 20,
    pressure: PressureTotals(
        cpuSome: 1_500_000, cpuFull: 250_000, memorySome: 3_000_000, memoryFull: 1_000_000, ioSome: 500_000, ioFull: 0))

func metricsExposition(agents count: Int, scrapes: Int) throws {
    let sample = metricsSample
    var agents: [AgentMetrics] = []
    var records: [AgentRecord] = []
    for index in 0..<count {
        var varied = sample
        varied.cpu.usageUsec += Int64(index) * 1000
        agents.append(
            AgentMetrics(
                id: "agent\(index)", group: "standard_agent", state: .running, priority: .standard, limits: QuotaGroup.standard.limits,
                sample: varied, degradation: .none, escalationStep: 0))
        records.append(
            AgentRecord(
                id: "agent\(index)", group: "standard_agent", state: .running, origin: .launched, pid: 1000 + Int32(index),
                command: ["/usr/bin/python3", "worker.py"], limits: QuotaGroup.standard.limits,
                cgroup: "/sys/fs/cgroup/corral/standard_agent/agent\(index)",
                createdAt: Timestamp(milliseconds: 0)))
    }
    let capacity = CapacityReport(resources: [], admission: .allow, hostPressure: nil)
    let heapBefore = anonymousResident()
    let metrics = DaemonMetrics(version: "bench")
    let clock = ContinuousClock()
    var bytes = 0
    var series = 0
    var times: [Double] = []
    for scrape in 0..<scrapes {
        var snapshot = MetricsSnapshot(agents: agents, states: [.running: count], capacity: capacity)
        // The counters move between scrapes, as they would.
        for index in snapshot.agents.indices { snapshot.agents[index].sample?.cpu.usageUsec += Int64(scrape) * 10_000 }
        let start = clock.now
        let text = metrics.exposition(snapshot)
        times.append(ms(clock.now - start))
        bytes = text.utf8.count
        series = text.split(separator: "\n").filter { !$0.hasPrefix("#") }.count
    }
    let kept = anonymousResident() - heapBefore
    withExtendedLifetime(metrics) {}
    var jsonTimes: [Double] = []
    for _ in 0..<scrapes {
        let start = clock.now
        let data = try APIJSON.encoder.encode(AgentList(agents: records))
        jsonTimes.append(ms(clock.now - start))
        precondition(!data.isEmpty)
    }
    let median = percentile(times, 0.5)
    let first = times.first ?? 0
    let jsonMedian = percentile(jsonTimes, 0.5)
    say("metrics: \(count) agents, \(scrapes) scrapes, one core (no cgroupfs: the engine's samples are the input)")
    say(
        "  exposition: \(series) series, \(bytes) bytes; first scrape \(fmt(first)) ms, then median \(String(format: "%.2f", median)) ms, p90 \(String(format: "%.2f", percentile(times, 0.9))) ms (\(String(format: "%.2f", median * 1000 / Double(max(series, 1)))) µs per series)"
    )
    say(
        "  baseline (the same agents as JSON, GET /v1/agents): median \(String(format: "%.2f", jsonMedian)) ms; ratio \(String(format: "%.2f", median / jsonMedian))×"
    )
    say(
        "  kept between scrapes (anonymous resident memory, the last text of \(bytes / 1024) KiB included): \(kept / 1024) KiB, \(String(format: "%.1f", Double(kept) / 1024 / Double(max(count, 1)))) KiB per agent"
    )
}

/// This process's /proc/self/statm in bytes: size, resident, shared, text, lib, data, dt.
func statm() -> [Int] {
    let text = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? ""
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    return text.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }.map { $0 * page }
}

/// Resident bytes not backed by a file (statm's resident less shared): the heap, coarsely.
func anonymousResident() -> Int {
    let fields = statm()
    return fields.count > 2 ? fields[1] - fields[2] : 0
}

/// CPU time this process has used (all threads), user and system.
func processCPU() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

/// A `sleep 600` the bench started.
struct Sleeper {
    var processIdentifier: Int32
    func terminate() { kill(processIdentifier, SIGTERM) }
}

/// `count` processes of `sleep 600` (attaching an agent reads a live process's command line).
/// Spawned with `posix_spawn` directly: Foundation's `Process` closes the descriptors
/// above 2 with `close_range`, which valgrind refuses (EBADF), and `callgrind` of a
/// bench is how its instructions are counted.
func startSleepers(_ count: Int) throws -> [Sleeper] {
    try (0..<count).map { _ in
        var pid: pid_t = 0
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("sleep"), strdup("600"), nil]
        defer { for arg in argv { free(arg) } }
        let status = posix_spawn(&pid, "/usr/bin/sleep", &actions, nil, argv, environ)
        guard status == 0 else {
            throw CocoaError(
                .executableLoad, userInfo: [NSLocalizedDescriptionKey: "posix_spawn sleep: \(String(cString: strerror(status)))"])
        }
        return Sleeper(processIdentifier: pid)
    }
}

func scrape(agents count: Int, scrapes: Int) async throws {
    let fs = FakeCgroupFilesystem()
    let root = CgroupPath(["bench-corral"])
    fs.seed(root)
    let tree = CgroupTree(fs: fs, root: root)
    try tree.prepareRoot(selfPID: nil, reservation: nil)
    let metrics = DaemonMetrics(version: "bench")
    let engine = Engine(configuration: .builtIn, tree: tree, store: MemoryStore(), instruments: metrics)
    _ = try await engine.restore()
    // One sleeper per agent: attaching reads the process's command line.
    let sleepers = try startSleepers(count)
    defer { for sleeper in sleepers { sleeper.terminate() } }
    let sample = metricsSample
    for (index, sleeper) in sleepers.enumerated() {
        let id = "agent\(index)"
        _ = try await engine.register(id: id, group: "standard_agent", command: ["worker"], overrides: [:])
        _ = try await engine.attach(id: id, pid: sleeper.processIdentifier)
    }
    /// New samples for the agents (every `share`-th one, by round), as the watcher's would be.
    func feed(_ round: Int, share: Int = 1) async {
        for index in 0..<count where index % share == round % share {
            var varied = sample
            varied.cpu.usageUsec += Int64(index * 1000 + round * 10_000)
            varied.memoryCurrent = (100 << 20) + Int64(round * 4096)
            await engine.handle(
                .observation(
                    Observation(
                        subject: .agent("agent\(index)"), trigger: .sample, at: Engine.wallClock(), seenAt: .now, sample: varied,
                        readings: [], elapsed: .seconds(1))))
        }
    }
    await feed(0)
    let port = 19_464
    let app = Application(
        router: buildMetricsRouter(engine: engine, metrics: metrics),
        configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: port), serverName: "corral-bench"))
    let server = Task { try await app.runService() }
    defer { server.cancel() }
    let client = BenchHTTPClient(port: UInt16(port))
    defer { client.disconnect() }
    func get(_ path: String, keepAlive: Bool = false) throws -> Int { try client.get(path, keepAlive: keepAlive) }
    // Wait for the listener.
    var ready = false
    for _ in 0..<100 where !ready {
        ready = (try? get("/")) != nil
        if !ready { try await Task.sleep(for: .milliseconds(50)) }
    }
    guard ready else { throw CocoaError(.fileReadUnknown) }
    _ = try get("/metrics")
    // The samples move between scrapes (as the watcher's would), outside the measured CPU:
    // every agent's (each sampled every second), or one in ten (idle agents sampled every 10 s).
    func measure(_ path: String, share: Int, keepAlive: Bool = false) async throws -> (cpu: Double, bytes: Int) {
        var cpu = 0.0
        var bytes = 0
        for round in 1...scrapes {
            await feed(round, share: share)
            let before = processCPU()
            bytes = try get(path, keepAlive: keepAlive)
            cpu += processCPU() - before
        }
        return (cpu * 1000 / Double(scrapes), bytes)
    }
    /// The parts, in process: the snapshot and the exposition's median times.
    func parts(share: Int) async -> (snapshot: Double, exposition: Double) {
        let clock = ContinuousClock()
        var snapshotTimes: [Double] = []
        var expositionTimes: [Double] = []
        for round in 1...scrapes {
            await feed(scrapes + round, share: share)
            let start = clock.now
            // As a scrape asks: the agents not changed since the last one come as unchanged.
            let snapshot = await engine.metrics(drawnThrough: metrics.drawnThrough)
            let middle = clock.now
            let bytes = metrics.expositionBuffer(snapshot) ?? ByteBuffer()
            snapshotTimes.append(ms(middle - start))
            expositionTimes.append(ms(clock.now - middle))
            precondition(bytes.readableBytes > 0)
        }
        return (percentile(snapshotTimes, 0.5), percentile(expositionTimes, 0.5))
    }
    let page = try await measure("/", share: 1)
    let keptPage = try await measure("/", share: 1, keepAlive: true)
    say("scrape: \(count) agents, \(scrapes) scrapes over TCP from a client in this process, the process's CPU (all threads) per request")
    for (share, what) in [(1, "every agent sampled between scrapes"), (10, "one agent in ten sampled between scrapes (idle ones, 10 s)")] {
        let whole = try await measure("/metrics", share: share)
        let kept = try await measure("/metrics", share: share, keepAlive: true)
        let (snapshot, exposition) = await parts(share: share)
        say("  GET /metrics, \(what), \(whole.bytes) bytes:")
        say(
            "    a connection per scrape (curl): \(String(format: "%.2f", whole.cpu)) ms CPU; on one kept connection (Prometheus): \(String(format: "%.2f", kept.cpu)) ms"
        )
        say(
            "    snapshot (Engine.metrics): median \(String(format: "%.2f", snapshot)) ms; exposition: median \(String(format: "%.2f", exposition)) ms; the rest on a kept connection (HTTP, the kernel's send): \(String(format: "%.2f", kept.cpu - snapshot - exposition)) ms"
        )
    }
    say(
        "  baseline GET / (the status page, \(page.bytes) bytes): \(String(format: "%.2f", page.cpu)) ms CPU a connection per request, \(String(format: "%.2f", keptPage.cpu)) ms on a kept one"
    )
    engine.hub.finishAll()
}

/// A plain-socket HTTP/1.1 client in the bench's own process: the process's
/// CPU per request is then the server's and this client's reads, with no curl
/// to spawn. A connection per request (`Connection: close`, as curl), or one
/// kept between requests (as Prometheus keeps its scrape connections).
final class BenchHTTPClient {
    let port: UInt16
    var kept: Int32 = -1
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    struct Failed: Error { var why: String }

    init(port: UInt16) { self.port = port }

    func connectSocket() throws -> Int32 {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw Failed(why: "socket") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(port.bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(socket)
            throw Failed(why: "connect")
        }
        return socket
    }

    func disconnect() {
        if kept >= 0 { close(kept) }
        kept = -1
    }

    /// GET `path`: the body's size. The body is counted, not kept (the
    /// client's own copies would count as the server's CPU here).
    func get(_ path: String, keepAlive: Bool) throws -> Int {
        let socket: Int32
        if keepAlive {
            if kept < 0 { kept = try connectSocket() }
            socket = kept
        } else {
            socket = try connectSocket()
        }
        defer { if !keepAlive { close(socket) } }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\(keepAlive ? "" : "Connection: close\r\n")\r\n".utf8)
        guard write(socket, request, request.count) == request.count else { throw Failed(why: "write") }
        var head: [UInt8] = []
        var headerEnd: Int?
        var received = 0
        var length: Int?
        while length.map({ received < $0 }) ?? true {
            let count = read(socket, &chunk, chunk.count)
            guard count > 0 else { break }
            received += count
            guard headerEnd == nil else { continue }
            head.append(contentsOf: chunk[..<count])
            guard let end = head.firstRange(of: Array("\r\n\r\n".utf8))?.upperBound else { continue }
            headerEnd = end
            let header = String(decoding: head[..<end], as: UTF8.self).lowercased()
            guard header.hasPrefix("http/1.1 200") else { throw Failed(why: header) }
            if let line = header.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }) {
                length = end + (Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0)
            } else if keepAlive {
                throw Failed(why: "no content-length on a kept connection")
            }
        }
        guard let headerEnd else { throw Failed(why: "no response") }
        return received - headerEnd
    }
}

/// A store that keeps nothing: the minutes and records the daemon writes to
/// SQLite on disk would otherwise count as the engine's memory here.
final class DiscardingStore: ForwardingEngineStore {
    let base: any EngineStore = MemoryStore()
    func record(minutes: [UsageMinute], pruneBefore: Timestamp?) throws {}
    func commit(batch: [CommitRequest]) throws -> [[EnforcementRecord]] { batch.map(\.records) }
}

func memory(agents count: Int, every: Int64) async throws {
    let sleepers = try startSleepers(count)
    defer { for sleeper in sleepers { sleeper.terminate() } }
    /// Resident bytes (what the daemon benchmarks read as VmRSS).
    func heap() -> Int {
        let fields = statm()
        return fields.count > 1 ? fields[1] : 0
    }
    /// Heap bytes per agent after an hour of samples every `every` seconds, and the engine's own figure for its rings.
    func run(every: Int64) async throws -> (perAgent: Double, rings: Int) {
        let fs = FakeCgroupFilesystem()
        let root = CgroupPath(["bench-corral"])
        fs.seed(root)
        let tree = CgroupTree(fs: fs, root: root)
        try tree.prepareRoot(selfPID: nil, reservation: nil)
        let time = Mutex(Timestamp(milliseconds: 1_800_000_000_000))
        let engine = Engine(
            configuration: .builtIn, tree: tree, store: DiscardingStore(), clock: { time.withLock { $0 } })
        _ = try await engine.restore()
        let before = heap()
        for (index, sleeper) in sleepers.enumerated() {
            let id = "agent\(index)"
            _ = try await engine.register(id: id, group: "lightweight_agent", command: ["worker"], overrides: [:])
            _ = try await engine.attach(id: id, pid: sleeper.processIdentifier)
        }
        var sample = metricsSample
        for round in 0..<(3600 / every) {
            time.withLock { $0 = $0 + .seconds(every) }
            sample.cpu.usageUsec += 1000
            for index in 0..<count {
                let readings = [
                    UsageReading(resource: .memory, usage: Double(1 << 20) + Double(round % 7) * 4096),
                    UsageReading(resource: .cpu, usage: 0.1), UsageReading(resource: .processes, usage: 1),
                ]
                await engine.handle(
                    .observation(
                        Observation(
                            subject: .agent("agent\(index)"), trigger: .sample, at: time.withLock { $0 }, seenAt: .now, sample: sample,
                            readings: readings, elapsed: .seconds(every))))
            }
            // As the daemon's timer: finished minutes go to the store every 10 s (kept otherwise, and counted here).
            await engine.tick()
        }
        engine.waitForCommits()
        let after = heap()
        let rings = await engine.ringBytesInUse()
        engine.hub.finishAll()
        withExtendedLifetime(engine) {}
        return (Double(after - before) / Double(max(count, 1)), rings / max(count, 1))
    }
    let result = try await run(every: every)
    say(
        "memory: \(count) agents with memory, CPU and process limits, an hour of samples each, one every \(every) s: \(String(format: "%.1f", result.perAgent / 1024)) KiB resident per agent, of which rings \(String(format: "%.1f", Double(result.rings) / 1024)) KiB"
    )
}

func sampling(agents count: Int, rounds: Int) throws {
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Tests/CorralCoreTests/Fixtures/debian-6.1")
    let names = try FileManager.default.contentsOfDirectory(atPath: fixtures.path).filter { $0.hasPrefix("fx.") }.sorted()
    let files = try names.map { (String($0.dropFirst(3)), try Data(contentsOf: fixtures.appendingPathComponent($0))) }
    guard !files.isEmpty else { throw CocoaError(.fileNoSuchFile) }
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("corral-bench-sampling-\(getpid())")
    defer { try? FileManager.default.removeItem(at: root) }
    for index in 0..<count {
        let directory = root.appendingPathComponent("agent\(index)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for (name, data) in files { try data.write(to: directory.appendingPathComponent(name)) }
    }
    let fs = try DirectoryCgroupFilesystem(anchorPath: root.path)
    /// CPU per sample in µs, every sample reading the metrics' files (`detail`) or none of them.
    func watched(detail: Bool) throws -> Double {
        let watcher = try CgroupWatcher(
            filesystem: fs,
            configuration: .init(pressureThreshold: nil, detailInterval: detail ? .zero : .seconds(3600)), sink: { _ in })
        for index in 0..<count { _ = try watcher.watch(agent: "agent\(index)", path: CgroupPath(["agent\(index)"])) }
        let before = processCPU()
        for _ in 0..<rounds {
            for index in 0..<count {
                let observation = try watcher.sampleNow(agent: "agent\(index)")
                precondition(observation != nil)
            }
        }
        return (processCPU() - before) * 1e6 / Double(count * rounds)
    }
    /// The files a full sample reads, read plainly: open, read, close (the syscalls alone, no parsing).
    let sampled = [
        "memory.current", "memory.peak", "memory.events", "cpu.stat", "pids.current", "pids.peak", "pids.events", "cgroup.events",
        "memory.stat", "cpu.pressure", "memory.pressure", "io.pressure",
    ].filter { name in files.contains { $0.0 == name } }
    func plain() -> Double {
        let before = processCPU()
        var buffer = [UInt8](repeating: 0, count: 8192)
        for _ in 0..<rounds {
            for index in 0..<count {
                for name in sampled {
                    let fd = open(root.appendingPathComponent("agent\(index)/\(name)").path, O_RDONLY)
                    precondition(fd >= 0)
                    _ = read(fd, &buffer, buffer.count)
                    close(fd)
                }
            }
        }
        return (processCPU() - before) * 1e6 / Double(count * rounds)
    }
    let baseline = plain()
    let full = try watched(detail: true)
    let lean = try watched(detail: false)
    say("sampling: \(count) agents × \(rounds) rounds, regular files with a real cgroupfs's contents (Debian 6.1)")
    say("  a full sample with the metrics' files (memory.stat, PSI; an idle agent's every sample): \(String(format: "%.1f", full)) µs CPU")
    say("  a full sample without them (an active agent's samples between detail reads): \(String(format: "%.1f", lean)) µs CPU")
    say(
        "  baseline, the \(sampled.count) files a full sample reads opened, read and closed (no parsing): \(String(format: "%.1f", baseline)) µs; ratios \(String(format: "%.2f", full / baseline))× and \(String(format: "%.2f", lean / baseline))×"
    )
}

let arguments = CommandLine.arguments
switch arguments.count > 1 ? arguments[1] : "" {
case "analytics":
    let agents = arguments.count > 2 ? Int(arguments[2]) ?? 10_000 : 10_000
    let samples = arguments.count > 3 ? Int(arguments[3]) ?? 3_600 : 3_600
    analytics(agents: agents, samples: samples)
case "metrics":
    let count = arguments.count > 2 ? Int(arguments[2]) ?? 200 : 200
    let scrapes = arguments.count > 3 ? Int(arguments[3]) ?? 50 : 50
    try metricsExposition(agents: count, scrapes: scrapes)
case "scrape":
    let count = arguments.count > 2 ? Int(arguments[2]) ?? 200 : 200
    let scrapes = arguments.count > 3 ? Int(arguments[3]) ?? 50 : 50
    try await scrape(agents: count, scrapes: scrapes)
case "sampling":
    try sampling(
        agents: arguments.count > 2 ? Int(arguments[2]) ?? 1000 : 1000, rounds: arguments.count > 3 ? Int(arguments[3]) ?? 20 : 20)
case "memory":
    try await memory(
        agents: arguments.count > 2 ? Int(arguments[2]) ?? 1000 : 1000, every: arguments.count > 3 ? max(1, Int64(arguments[3]) ?? 10) : 10)
case "reaction":
    let count = arguments.count > 2 ? Int(arguments[2]) ?? 120 : 120
    let stress = arguments.count > 3 ? arguments[3] : "corral-stress"
    let hold = arguments.count > 4 ? Int(arguments[4]) ?? 0 : 0
    try await reaction(agents: count, stress: stress, hold: hold)
default:
    say(
        "usage: corral-bench reaction [AGENTS] [STRESS] [HOLD_SECONDS] | corral-bench analytics [AGENTS] [SAMPLES] | corral-bench metrics [AGENTS] [SCRAPES] | corral-bench scrape [AGENTS] [SCRAPES] | corral-bench memory [AGENTS] [SECONDS] | corral-bench sampling [AGENTS] [ROUNDS]"
    )
    exit(2)
}

/// The daemon's store, timing the calls the engine makes while it runs.
final class TimedStore: ForwardingEngineStore {
    let sqlite: SQLiteEngineStore
    var base: any EngineStore { sqlite }
    let durations = Mutex<[String: [Duration]]>([:])
    /// When the transaction holding each agent's first memory warning began.
    let commitStarted = Mutex<[String: ContinuousClock.Instant]>([:])
    /// When each agent's memory warning was committed (the first time).
    let committed = Mutex<[String: ContinuousClock.Instant]>([:])

    func noteCommitted(_ records: [EnforcementRecord]) {
        let now = ContinuousClock.now
        for record in records where record.action == .warn && record.resource == .memory {
            committed.withLock { if $0[record.agent] == nil { $0[record.agent] = now } }
        }
    }
    /// Calls over 20 ms: (start, name, duration), for CORRAL_BENCH_VERBOSE.
    let slow = Mutex<[(ContinuousClock.Instant, String, Duration)]>([])

    func note(_ name: String, from start: ContinuousClock.Instant, to end: ContinuousClock.Instant = .now) {
        let elapsed = end - start
        durations.withLock { $0[name, default: []].append(elapsed) }
        if elapsed > .milliseconds(20) { slow.withLock { $0.append((start, name, elapsed)) } }
    }

    init(_ sqlite: SQLiteEngineStore) { self.sqlite = sqlite }

    func timed<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
        let start = ContinuousClock.now
        defer { note(name, from: start) }
        return try body()
    }

    func save(_ agent: AgentRecord) throws { try timed("save") { try base.save(agent) } }
    func agents() throws -> [AgentRecord] { try timed("agents") { try base.agents() } }
    func delete(agent: String) throws { try timed("delete") { try base.delete(agent: agent) } }
    func commit(batch: [CommitRequest]) throws -> [[EnforcementRecord]] {
        let start = ContinuousClock.now
        for request in batch where request.records.contains(where: { $0.action == .warn && $0.resource == .memory }) {
            commitStarted.withLock { if $0[request.records[0].agent] == nil { $0[request.records[0].agent] = start } }
        }
        let stored = try timed("commit(batch of \(batch.count > 1 ? "several" : "one"))") { try base.commit(batch: batch) }
        noteCommitted(stored.flatMap { $0 })
        return stored
    }
    func record(minutes: [UsageMinute], pruneBefore: Timestamp?) throws {
        try timed("record(minutes:)") { try base.record(minutes: minutes, pruneBefore: pruneBefore) }
    }
    func replaceRecommendations(agent: String, with recommendations: [Recommendation]) throws {
        try timed("replaceRecommendations") { try base.replaceRecommendations(agent: agent, with: recommendations) }
    }
    func deleteLadder(agent: String) throws { try timed("deleteLadder") { try base.deleteLadder(agent: agent) } }
}
