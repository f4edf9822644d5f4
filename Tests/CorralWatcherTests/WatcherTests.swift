import CorralCgroup
import CorralCore
import Foundation
import Testing

@testable import CorralWatcher

extension WatcherSuite {
    /// The watcher on a fake tree in a temporary directory: inotify reports the
    /// in-place writes of these regular files as cgroupfs reports the kernel's.
    @Suite("watcher on a fake cgroup tree")
    struct FakeTreeTests {
        let tree: FakeTree
        let log = EventLog()
        /// Time for the tests about sampling, cooldowns and quiet spells: they
        /// move it and settle the loop instead of sleeping.
        let time = ManualWatchTime()

        init() throws {
            tree = try FakeTree()
        }

        /// `manualTime`: the watcher runs on `time`, which only the test moves.
        func makeWatcher(
            interval: Duration = .seconds(60), pressure: PressureThreshold? = .standard, manualTime: Bool = false,
            detail: Duration = .seconds(5)
        ) throws -> CgroupWatcher {
            let log = self.log
            return try CgroupWatcher(
                filesystem: tree.fs, configuration: .init(samplingInterval: interval, pressureThreshold: pressure, detailInterval: detail),
                time: manualTime ? .manual(time) : .continuous, sink: { log.record($0) })
        }

        @Test("a memory.events change is reported at once, as a soft-limit hit")
        func memoryEvent() throws {
            let agent = try tree.makeCgroup("g/a")
            let watcher = try makeWatcher()
            try watcher.watch(agent: "a", path: agent)
            watcher.start()
            defer { watcher.stop() }

            let written = ContinuousClock.now
            tree.set(.memoryEvents, of: agent, tree.memoryEvents(high: 3))
            let entry = try #require(log.first { $0.observation?.trigger == .event(.memoryEvents) })
            let observation = try #require(entry.event.observation)
            #expect(observation.subject == .agent("a"))
            #expect(observation.reading(.memory)?.hitSoft == true)
            #expect(observation.reading(.memory)?.hitHard == false)
            #expect(observation.reading(.memory)?.usage == 1_048_576)
            #expect(observation.sample.memoryEvents.high == 3)
            #expect(observation.seenAt >= written)
            let latency = written.duration(to: entry.arrived)
            print("[watcher] write → observation: \(latency.milliseconds) ms")
            #expect(latency < .milliseconds(500))

            // The same counters again are no news.
            var count = log.count
            tree.set(.memoryEvents, of: agent, tree.memoryEvents(high: 3))
            let again = try #require(log.first(after: count) { $0.observation != nil })
            #expect(again.event.observation?.reading(.memory)?.hitSoft == false)

            count = log.count
            tree.set(.memoryEvents, of: agent, tree.memoryEvents(high: 3, max: 1, oom: 1, oomKill: 1))
            let hard = try #require(log.first(after: count) { $0.observation?.sample.memoryEvents.oomKill == 1 })
            #expect(hard.event.observation?.reading(.memory)?.hitHard == true)
        }

        @Test("pids.events and cgroup.events changes are reported with their file")
        func otherEventFiles() throws {
            let agent = try tree.makeCgroup("g/a")
            let watcher = try makeWatcher()
            try watcher.watch(agent: "a", path: agent)
            watcher.start()
            defer { watcher.stop() }

            tree.set(.pidsEvents, of: agent, "max 2\n")
            let pids = try #require(log.first { $0.observation?.trigger == .event(.pidsEvents) }?.event.observation)
            #expect(pids.reading(.processes)?.hitHard == true)

            tree.set(.events, of: agent, tree.events(populated: true, frozen: true))
            let frozen = try #require(log.first { $0.observation?.trigger == .event(.events) }?.event.observation)
            #expect(frozen.frozen)
            #expect(frozen.populated)
        }

        @Test("counters that grew before watch() are history, not news")
        func baselineAtWatch() throws {
            let agent = try tree.makeCgroup("g/a")
            tree.set(.memoryEvents, of: agent, tree.memoryEvents(high: 40, max: 2, oom: 2, oomKill: 2))
            tree.set(.pidsEvents, of: agent, "max 9\n")
            let watcher = try makeWatcher()
            let baseline = try watcher.watch(agent: "a", path: agent)
            #expect(baseline.memoryEvents.high == 40)
            watcher.start()
            defer { watcher.stop() }

            tree.set(.pidsEvents, of: agent, "max 9\n")
            let observation = try #require(log.first { $0.observation != nil }?.event.observation)
            #expect(observation.readings.allSatisfy { !$0.hitHard && !$0.hitSoft })
        }

        @Test("the last process leaving is reported once, after the observation that saw it")
        func emptiedOnce() throws {
            let agent = try tree.makeCgroup("g/a", populated: false)
            let watcher = try makeWatcher(manualTime: true)
            try watcher.watch(agent: "a", path: agent)
            watcher.start()
            defer { watcher.stop() }

            // Empty at watch time (the process is not started yet): no news.
            tree.set(.events, of: agent, tree.events(populated: true))
            _ = try #require(log.first { $0.observation?.populated == true })
            tree.set(.events, of: agent, tree.events(populated: false))
            time.advance(by: .milliseconds(200), step: .milliseconds(50))  // a second change waits for the cooldown
            let emptied = try #require(log.first { $0.isEmptied })
            let index = try #require(log.all.firstIndex { $0.event.isEmptied })
            #expect(log.events[index - 1].observation?.populated == false)
            #expect(emptied.event.subject == .agent("a"))

            tree.set(.events, of: agent, tree.events(populated: false))
            tree.set(.memoryEvents, of: agent, tree.memoryEvents())
            time.advance(by: .milliseconds(200), step: .milliseconds(50))
            #expect(log.events.filter(\.isEmptied).count == 1)
        }

        @Test("a removed cgroup is reported emptied and vanished once, then forgotten")
        func removedCgroup() throws {
            let agent = try tree.makeCgroup("g/a")
            let other = try tree.makeCgroup("g/b")
            let watcher = try makeWatcher(manualTime: true)
            try watcher.watch(agent: "a", path: agent)
            try watcher.watch(agent: "b", path: other)
            watcher.start()
            defer { watcher.stop() }

            let removed = ContinuousClock.now
            try tree.remove("g/a")
            let vanished = try #require(log.first { $0.isVanished })
            print("[watcher] rm -r → vanished: \(removed.duration(to: vanished.arrived).milliseconds) ms")
            #expect(vanished.event.subject == .agent("a"))
            #expect(watcher.subjects == [.agent("b")])
            let forA = log.events.filter { $0.subject == .agent("a") && $0.observation == nil }
            #expect(forA.map(\.isEmptied) == [true, false])

            // Still alive and watching the other one.
            tree.set(.memoryEvents, of: other, tree.memoryEvents(high: 1))
            _ = try #require(log.first { $0.observation?.subject == .agent("b") })
            time.advance(by: .milliseconds(100), step: .milliseconds(50))
            #expect(log.events.filter(\.isVanished).count == 1)
        }

        @Test("a cgroup gone without an inotify event (as on cgroupfs) is found by the next sample")
        func vanishedBySampling() throws {
            let agent = try tree.makeCgroup("g/a", populated: false)
            let watcher = try makeWatcher(interval: .milliseconds(50), manualTime: true)
            try watcher.watch(agent: "a", path: agent)
            watcher.start()
            defer { watcher.stop() }

            // A rename leaves the watched files in place: no IN_IGNORED, reads fail with ENOENT.
            try FileManager.default.moveItem(atPath: tree.path("g/a"), toPath: tree.path("g/moved"))
            time.settle()
            #expect(!log.events.contains { $0.isVanished }, "found before the next sample")
            time.advance(by: .milliseconds(50), step: .milliseconds(50))
            let vanished = try #require(log.first { $0.isVanished })
            #expect(vanished.event.subject == .agent("a"))
            #expect(!log.events.contains { $0.isEmptied })
            let count = log.count
            time.advance(by: .milliseconds(200), step: .milliseconds(50))
            #expect(log.count == count)
        }

        @Test("samples come every interval, and not more often")
        func periodicSampling() throws {
            let agent = try tree.makeCgroup("g/a")
            let watcher = try makeWatcher(interval: .milliseconds(50), manualTime: true)
            try watcher.watch(agent: "a", path: agent)
            watcher.start()
            time.advance(by: .milliseconds(330), step: .milliseconds(10))
            watcher.stop()
            let samples = log.observations(of: .agent("a")).filter { $0.trigger == .sample }
            #expect(samples.count == 6, "one at each 50 ms of 330 ms")
            #expect(samples.count >= 3)
            #expect(samples.count <= 8)
            if let first = samples.first, let last = samples.last, samples.count > 1 {
                // Late ticks catch up, so only the mean spacing is the interval.
                #expect(first.seenAt.duration(to: last.seenAt) / (samples.count - 1) >= .milliseconds(45))
            }
        }

        @Test("an agent given a longer interval is sampled at it; its kernel events are still read at once; nil restores it")
        func perAgentInterval() throws {
            let idle = try tree.makeCgroup("g/idle")
            let busy = try tree.makeCgroup("g/busy")
            let watcher = try makeWatcher(interval: .milliseconds(50), manualTime: true)
            try watcher.watch(agent: "idle", path: idle)
            try watcher.watch(agent: "busy", path: busy)
            watcher.setSamplingInterval(agent: "idle", every: .milliseconds(250))
            #expect(watcher.samplingInterval(agent: "idle") == .milliseconds(250))
            #expect(watcher.samplingInterval(agent: "busy") == nil)
            watcher.start()
            defer { watcher.stop() }
            time.advance(by: .milliseconds(1000), step: .milliseconds(10))
            func samples(_ id: String) -> [Observation] { log.observations(of: .agent(id)).filter { $0.trigger == .sample } }
            let slow = samples("idle").count
            let fast = samples("busy").count
            #expect(fast >= 17 && fast <= 21, "every 50 ms of 1 s: \(fast)")
            #expect(slow >= 3 && slow <= 5, "every 250 ms of 1 s: \(slow)")
            let gaps = zip(samples("idle"), samples("idle").dropFirst()).map { $0.seenAt.duration(to: $1.seenAt) }
            #expect(gaps.allSatisfy { $0 >= .milliseconds(200) }, "\(gaps)")

            // A kernel event between two slow samples is read at once.
            let before = log.count
            tree.set(.memoryEvents, of: idle, tree.memoryEvents(high: 2))
            time.settle()
            let event = log.first(after: before) {
                $0.observation?.subject == .agent("idle") && $0.observation?.trigger == .event(.memoryEvents)
            }
            #expect(event != nil, "the event waited for the slow sample")

            // Back to the sampling interval.
            watcher.setSamplingInterval(agent: "idle", every: nil)
            let restored = samples("idle").count
            time.advance(by: .milliseconds(500), step: .milliseconds(10))
            #expect(samples("idle").count - restored >= 8, "every 50 ms again: \(samples("idle").count - restored)")
        }

        @Test("an idle agent's metrics-only files (memory.stat) are read every third of its samples; an active one's as configured")
        func idleDetail() throws {
            let idle = try tree.makeCgroup("g/idle")
            let busy = try tree.makeCgroup("g/busy")
            let watcher = try makeWatcher(interval: .milliseconds(50), pressure: nil, manualTime: true, detail: .milliseconds(50))
            try watcher.watch(agent: "idle", path: idle)
            try watcher.watch(agent: "busy", path: busy)
            watcher.setSamplingInterval(agent: "idle", every: .milliseconds(250))
            watcher.start()
            defer { watcher.stop() }
            var inactive: Int64 = 0
            func set() {
                inactive += 4096
                for path in [idle, busy] { tree.set(.memoryStat, of: path, "anon 1\ninactive_file \(inactive)\n") }
            }
            // Every 50 ms the working set's input changes; count the samples that carried a new value.
            for _ in 0..<60 {
                set()
                time.advance(by: .milliseconds(50), step: .milliseconds(10))
            }
            func fresh(_ id: String) -> (samples: Int, changes: Int) {
                let values = log.observations(of: .agent(id)).filter { $0.trigger == .sample }.map { $0.sample.inactiveFile }
                return (values.count, zip(values, values.dropFirst()).filter { $0 != $1 }.count)
            }
            let slow = fresh("idle")
            let fast = fresh("busy")
            #expect(fast.changes >= fast.samples - 3, "an active agent reads it at every sample here: \(fast)")
            #expect(slow.samples >= 10, "\(slow)")
            #expect(slow.changes <= slow.samples / 3 + 1 && slow.changes >= slow.samples / 3 - 1, "every third idle sample: \(slow)")
        }

        @Test("CPU rate is the usage_usec delta over wall time")
        func cpuRate() throws {
            let agent = try tree.makeCgroup("g/a")
            let watcher = try makeWatcher(interval: .milliseconds(300), manualTime: true)
            try watcher.watch(agent: "a", path: agent)
            watcher.start()
            defer { watcher.stop() }

            tree.set(.cpuStat, of: agent, tree.cpuStat(usage: 150_000, throttled: 2))
            time.advance(by: .milliseconds(300), step: .milliseconds(100))
            let sample = try #require(log.first { $0.observation?.reading(.cpu) != nil }?.event.observation)
            let cpu = try #require(sample.reading(.cpu))
            let expected = 150_000 * 100 / Double(sample.elapsed.microseconds)
            #expect(sample.elapsed == .milliseconds(300))
            #expect(abs(cpu.usage - expected) < 1)
            #expect(cpu.hitHard)
            #expect(sample.readings.map(\.resource) == [.memory, .cpu, .processes])
        }

        @Test("events faster than the CPU window do not starve the CPU rate")
        func cpuRateUnderEventStorm() throws {
            let agent = try tree.makeCgroup("g/a")
            let watcher = try makeWatcher(interval: .milliseconds(300), manualTime: true)
            try watcher.watch(agent: "a", path: agent)
            watcher.start()
            defer { watcher.stop() }

            for step in 1...40 {
                tree.set(.cpuStat, of: agent, tree.cpuStat(usage: Int64(step) * 10_000))
                tree.set(.memoryEvents, of: agent, tree.memoryEvents(high: step))
                time.settle()
                time.advance(by: .milliseconds(20))
            }
            time.settle()
            let observations = log.observations(of: .agent("a"))
            // A storm is read at most once per 200 ms cooldown (merged, never lost):
            // 40 changes in 800 ms make a handful of event observations.
            let events = observations.filter { $0.trigger == .event(.memoryEvents) }
            #expect(events.count >= 3 && events.count <= 10, "\(events.count) event observations")
            #expect(events.last?.sample.memoryEvents.high == 40, "the last change is not lost")
            let rates = observations.compactMap { $0.reading(.cpu)?.usage }
            #expect(rates.count >= 2)
            // 10 ms of CPU every 20 ms: 50 %.
            #expect(rates.allSatisfy { $0 > 0 && $0 < 60 })
        }

        @Test("unwatch stops the observations of that agent only")
        func unwatch() throws {
            let first = try tree.makeCgroup("g/a")
            let second = try tree.makeCgroup("g/b")
            let watcher = try makeWatcher(interval: .milliseconds(50), manualTime: true)
            try watcher.watch(agent: "a", path: first)
            try watcher.watch(agent: "b", path: second)
            watcher.start()
            defer { watcher.stop() }

            tree.set(.memoryEvents, of: first, tree.memoryEvents(high: 1))
            _ = try #require(log.first { $0.observation?.subject == .agent("a") && $0.observation?.trigger == .event(.memoryEvents) })
            watcher.unwatch(agent: "a")
            time.settle()  // an observation already on its way may still arrive
            let count = log.observations(of: .agent("a")).count
            tree.set(.memoryEvents, of: first, tree.memoryEvents(high: 2))
            time.advance(by: .milliseconds(200), step: .milliseconds(50))
            #expect(log.observations(of: .agent("a")).count == count)
            #expect(log.observations(of: .agent("b")).count >= 2)
            #expect(watcher.subjects == [.agent("b")])
            #expect(try watcher.sampleNow(agent: "a") == nil)
        }

        @Test("groups get events but no periodic observations")
        func groups() throws {
            let group = try tree.makeCgroup("g")
            let watcher = try makeWatcher(interval: .milliseconds(30), manualTime: true)
            try watcher.watchGroup(name: "g", path: group)
            watcher.start()
            defer { watcher.stop() }

            time.advance(by: .milliseconds(200), step: .milliseconds(10))
            #expect(log.count == 0)
            tree.set(.memoryEvents, of: group, tree.memoryEvents(high: 1))
            let observation = try #require(log.first { $0.observation != nil }?.event.observation)
            #expect(observation.subject == .group("g"))
            #expect(observation.reading(.memory)?.hitSoft == true)
            #expect(watcher.pressureTriggers == .untried)
            // A group that goes away is still noticed, by the sampling tick.
            try FileManager.default.moveItem(atPath: tree.path("g"), toPath: tree.path("gone"))
            time.advance(by: .milliseconds(30), step: .milliseconds(10))
            _ = try #require(log.first { $0.isVanished && $0.subject == .group("g") })
        }

        @Test("an agent and a group on one cgroup share its inotify watches")
        func sharedDescriptors() throws {
            let cgroup = try tree.makeCgroup("g")
            let watcher = try makeWatcher()
            try watcher.watch(agent: "a", path: cgroup)
            try watcher.watchGroup(name: "g", path: cgroup)
            watcher.start()
            defer { watcher.stop() }

            tree.set(.memoryEvents, of: cgroup, tree.memoryEvents(high: 1))
            _ = try #require(log.first { $0.observation?.subject == .agent("a") })
            _ = try #require(log.first { $0.observation?.subject == .group("g") })
            watcher.unwatch(agent: "a")
            let count = log.count
            tree.set(.memoryEvents, of: cgroup, tree.memoryEvents(high: 2))
            let next = try #require(log.first(after: count) { $0.observation != nil })
            #expect(next.event.subject == .group("g"))
        }

        @Test("sampleNow returns a fresh observation that becomes the baseline")
        func sampleNow() throws {
            let agent = try tree.makeCgroup("g/a")
            let watcher = try makeWatcher(manualTime: true)
            try watcher.watch(agent: "a", path: agent)
            #expect(try watcher.sampleNow(agent: "nobody") == nil)

            // Before start: synchronous all the same.
            tree.set(.memoryEvents, of: agent, tree.memoryEvents(high: 2))
            let observation = try #require(try watcher.sampleNow(agent: "a"))
            #expect(observation.trigger == .requested)
            #expect(observation.reading(.memory)?.hitSoft == true)
            let again = try #require(try watcher.sampleNow(agent: "a"))
            #expect(again.reading(.memory)?.hitSoft == false)

            watcher.start()
            defer { watcher.stop() }
            try tree.remove("g/a")
            time.settle()  // the loop has read the removal's inotify events
            #expect(try watcher.sampleNow(agent: "a") == nil)
            #expect(log.events.filter(\.isVanished).count == 1)
        }

        @Test("requestSample: the loop's thread reads the agent and sends the observation to the sink, once per batch of requests")
        func requestSample() throws {
            let agent = try tree.makeCgroup("g/a")
            let watcher = try makeWatcher(manualTime: true)
            try watcher.watch(agent: "a", path: agent)
            watcher.requestSample(agent: "nobody")  // not watched: nothing
            // memory.current is no *.events file: only a reading sees the change.
            tree.set(.memoryCurrent, of: agent, "123456")
            // Asked twice before the thread takes the requests: one reading.
            watcher.requestSample(agent: "a")
            watcher.requestSample(agent: "a")
            watcher.start()
            defer { watcher.stop() }
            let observation = try #require(log.first { $0.observation?.trigger == .requested }?.event.observation)
            #expect(observation.subject == .agent("a"))
            #expect(observation.sample.memoryCurrent == 123456)
            time.settle()
            #expect(log.observations(of: .agent("a")).filter { $0.trigger == .requested }.count == 1)
            #expect(log.observations(of: .agent("nobody")).isEmpty)
            // A requested reading starts no event cooldown: a kernel event right after is read at once.
            tree.set(.memoryEvents, of: agent, tree.memoryEvents(high: 3))
            _ = try #require(log.first { $0.observation?.trigger == .event(.memoryEvents) })
        }

        @Test("a cgroup removed after an event was read is reported: the event path holds no cgroup.events open")
        func removalAfterEvent() throws {
            let agent = try tree.makeCgroup("g/a")
            let watcher = try makeWatcher(manualTime: true)
            try watcher.watch(agent: "a", path: agent)
            watcher.start()
            defer { watcher.stop() }
            tree.set(.memoryEvents, of: agent, tree.memoryEvents(high: 1))
            time.settle()
            #expect(log.events.contains { $0.observation?.trigger == .event(.memoryEvents) })
            // An open cgroup.events keeps its inode: its removal would send no IN_IGNORED until the close.
            #expect(OpenFiles.targets().filter { $0.hasPrefix(tree.root + "/") && $0.hasSuffix("/cgroup.events") } == [])
            try tree.remove("g/a")
            time.settle()
            #expect(log.events.filter(\.isVanished).count == 1)
            #expect(try watcher.sampleNow(agent: "a") == nil)
        }

        @Test("sampleNow on a cgroup removed unnoticed throws, and the sink gets .vanished")
        func sampleNowVanished() throws {
            let agent = try tree.makeCgroup("g/a")
            let watcher = try makeWatcher()
            try watcher.watch(agent: "a", path: agent)
            watcher.start()
            defer { watcher.stop() }
            try FileManager.default.moveItem(atPath: tree.path("g/a"), toPath: tree.path("g/moved"))
            #expect(throws: CgroupError.self) { try watcher.sampleNow(agent: "a") }
            let events = try #require(log.first { $0.isVanished })
            #expect(events.event.subject == .agent("a"))
            #expect(log.events.map(\.isEmptied) == [true, false])
        }

        @Test("a cgroup without controller files is watched on cgroup.events alone")
        func coreFilesOnly() throws {
            let agent = try tree.makeCgroup("g/a", controllers: false)
            let watcher = try makeWatcher()
            let baseline = try watcher.watch(agent: "a", path: agent)
            #expect(baseline.memoryCurrent == nil)
            watcher.start()
            defer { watcher.stop() }

            tree.set(.events, of: agent, tree.events(populated: false))
            let observation = try #require(log.first { $0.observation != nil }?.event.observation)
            #expect(observation.trigger == .event(.events))
            #expect(observation.readings.isEmpty)
            _ = try #require(log.first { $0.isEmptied })
        }

        @Test("watching a cgroup that does not exist throws notFound")
        func missingCgroup() throws {
            let watcher = try makeWatcher()
            #expect {
                try watcher.watch(agent: "a", path: CgroupPath(["nowhere"]))
            } throws: { error in
                (error as? CgroupError)?.code == .notFound
            }
            #expect(watcher.subjects.isEmpty)
        }

        @Test("without PSI (not cgroup2) the watcher does without, and says so")
        func pressureUnavailable() throws {
            let agent = try tree.makeCgroup("g/a")
            tree.set(.memoryPressure, of: agent, "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
            tree.set(.cpuPressure, of: agent, "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
            let watcher = try makeWatcher()
            #expect(watcher.pressureTriggers == .untried)
            try watcher.watch(agent: "a", path: agent)
            guard case .unavailable(let reason) = watcher.pressureTriggers else {
                Issue.record("PSI triggers on a temporary directory: \(watcher.pressureTriggers)")
                return
            }
            #expect(reason.contains("cgroup2"))
            // Not written to: a trigger is only written once the filesystem is cgroup2.
            #expect(try String(contentsOfFile: tree.path("g/a/memory.pressure"), encoding: .utf8).hasPrefix("some avg10"))
            watcher.start()
            defer { watcher.stop() }
            tree.set(.memoryEvents, of: agent, tree.memoryEvents(high: 1))
            _ = try #require(log.first { $0.observation?.trigger == .event(.memoryEvents) })

            let without = try CgroupWatcher(filesystem: tree.fs, configuration: .init(pressureThreshold: nil), sink: { _ in })
            try without.watch(agent: "a", path: agent)
            #expect(without.pressureTriggers == .disabled)
        }

        @Test("PSI trigger text, and the 2 s variant for unprivileged writers")
        func pressureThreshold() {
            #expect(PressureThreshold.standard.triggerText == "some 150000 1000000")
            #expect(PressureThreshold.standard.unprivilegedVariant?.triggerText == "some 300000 2000000")
            let custom = PressureThreshold(stall: .milliseconds(500), window: .seconds(2))
            #expect(custom.triggerText == "some 500000 2000000")
            #expect(custom.unprivilegedVariant == nil)
            let long = PressureThreshold(stall: .seconds(3), window: .milliseconds(9500))
            #expect(long.unprivilegedVariant?.window == .seconds(10))
        }

        @Test("after an inotify queue overflow every cgroup is read again")
        func queueOverflow() throws {
            let noisy = try tree.makeCgroup("g/a")
            let quiet = try tree.makeCgroup("g/b")
            let log = self.log
            // A sink that stalls the loop on its first event until the queue is full.
            let stalled = Slot<Bool>()
            let release = Slot<Bool>()
            let watcher = try CgroupWatcher(filesystem: tree.fs, configuration: .init(samplingInterval: .seconds(60))) { event in
                if stalled.get == nil {
                    stalled.set(true)
                    while release.get == nil { usleep(1000) }
                }
                log.record(event)
            }
            try watcher.watch(agent: "a", path: noisy)
            try watcher.watch(agent: "b", path: quiet)
            watcher.start()
            defer { watcher.stop() }
            tree.set(.pidsEvents, of: noisy, "max 0\n")
            while stalled.get == nil { usleep(1000) }
            // Alternating files are not merged by inotify: more than max_queued_events
            // (16384), so the change of b after them is lost but for the overflow.
            let limit =
                Int((try? String(contentsOfFile: "/proc/sys/fs/inotify/max_queued_events", encoding: .utf8))?.trimmingSpaces() ?? "")
                ?? 16384
            let files = [CgroupFile.memoryEvents, .pidsEvents].map { open(tree.path("g/a/" + $0.rawValue), O_WRONLY | O_CLOEXEC) }
            // Rewrite the first byte ("low …", "max …"): same content, one IN_MODIFY each.
            let first: [[UInt8]] = [Array("l".utf8), Array("m".utf8)]
            for step in 0...(limit + 100) {
                #expect(pwrite(files[step % 2], first[step % 2], 1, 0) == 1)
            }
            for fd in files { close(fd) }
            tree.set(.memoryEvents, of: quiet, tree.memoryEvents(high: 1))
            release.set(true)
            let seen = try #require(log.first(timeout: .seconds(5)) { $0.observation?.subject == .agent("b") })
            #expect(seen.event.observation?.reading(.memory)?.hitSoft == true)
        }

        @Test("an unreadable cgroup is reported once per streak, and watching goes on")
        func unreadable() throws {
            let agent = try tree.makeCgroup("g/a")
            let watcher = try makeWatcher(interval: .milliseconds(30), manualTime: true)
            try watcher.watch(agent: "a", path: agent)
            watcher.start()
            defer { watcher.stop() }

            // A directory where memory.events was: read(2) fails with EISDIR.
            try FileManager.default.removeItem(atPath: tree.path("g/a/memory.events"))
            try FileManager.default.createDirectory(atPath: tree.path("g/a/memory.events"), withIntermediateDirectories: false)
            time.advance(by: .milliseconds(30), step: .milliseconds(10))
            _ = try #require(log.first { $0.isUnreadable })
            time.advance(by: .milliseconds(200), step: .milliseconds(10))
            #expect(log.events.filter(\.isUnreadable).count == 1)

            try FileManager.default.removeItem(atPath: tree.path("g/a/memory.events"))
            tree.set(.memoryEvents, of: agent, tree.memoryEvents())
            let count = log.count
            time.advance(by: .milliseconds(30), step: .milliseconds(10))
            _ = try #require(log.first(after: count) { $0.observation?.trigger == .sample })
            #expect(watcher.subjects == [.agent("a")])
        }

        @Test("stop joins with watches active, is idempotent, and later watches are refused")
        func stop() throws {
            let watcher = try makeWatcher(interval: .milliseconds(10), manualTime: true)
            for name in ["a", "b", "c"] {
                try watcher.watch(agent: name, path: try tree.makeCgroup("g/\(name)"))
            }
            watcher.start()
            watcher.start()
            #expect(watcher.isRunning)
            time.advance(by: .milliseconds(50), step: .milliseconds(10))
            watcher.stop()
            #expect(!watcher.isRunning)
            let count = log.count
            watcher.stop()
            usleep(50_000)  // a thread that outlived stop() would deliver now
            #expect(log.count == count)
            #expect(watcher.subjects.isEmpty)
            #expect(throws: CgroupError.self) { try watcher.watch(agent: "d", path: try tree.makeCgroup("g/d")) }
            watcher.start()
            #expect(!watcher.isRunning)

            let neverStarted = try makeWatcher()
            neverStarted.stop()
            neverStarted.stop()
        }

        @Test("the sink may call back into the watcher, stop included")
        func reentrantSink() throws {
            let agent = try tree.makeCgroup("g/a")
            let slot = Slot<CgroupWatcher>()
            let log = self.log
            let watcher = try CgroupWatcher(filesystem: tree.fs, configuration: .init(samplingInterval: .seconds(60))) { event in
                log.record(event)
                guard let watcher = slot.get else { return }
                _ = try? watcher.sampleNow(agent: "a")
                _ = watcher.subjects
                watcher.stop()
            }
            slot.set(watcher)
            try watcher.watch(agent: "a", path: agent)
            watcher.start()
            tree.set(.memoryEvents, of: agent, tree.memoryEvents(high: 1))
            _ = try #require(log.first { $0.observation != nil })
            let deadline = ContinuousClock.now.advanced(by: .seconds(2))
            while watcher.isRunning && ContinuousClock.now < deadline { usleep(1000) }
            #expect(!watcher.isRunning)
        }

        @Test("thousands of watch/unwatch cycles leak no descriptor and no inotify watch")
        func noLeaks() throws {
            let agents = try (0..<4).map { try tree.makeCgroup("g/a\($0)") }
            let filesBefore = OpenFiles.count
            let watcher = try makeWatcher(interval: .milliseconds(5))
            let own = watcher.loop.descriptors
            #expect(OpenFiles.target(own.inotify) == "anon_inode:inotify")
            #expect(OpenFiles.target(own.wake) == "anon_inode:[eventfd]")
            watcher.start()
            for cycle in 0..<3000 {
                try watcher.watch(agent: "a\(cycle % 4)", path: agents[cycle % 4])
                if cycle % 3 != 0 { watcher.unwatch(agent: "a\(cycle % 4)") }
                if cycle % 100 == 0 {
                    tree.set(.memoryEvents, of: agents[cycle % 4], tree.memoryEvents(high: cycle))
                }
            }
            let watching = watcher.subjects.count
            #expect(watching > 0)
            #expect(OpenFiles.inotifyWatches(of: own.inotify) == watching * 3)
            for index in 0..<4 { watcher.unwatch(agent: "a\(index)") }
            #expect(OpenFiles.inotifyWatches(of: own.inotify) == 0)
            let during = OpenFiles.count
            watcher.stop()
            let after = OpenFiles.count
            print("[watcher] descriptors: \(filesBefore) before, \(during) after 3000 cycles, \(after) after stop")
            // Other suites open files meanwhile; a leak per cycle would show as thousands.
            #expect(during - filesBefore < 50)
            #expect(after - filesBefore < 50)
        }
    }
}
