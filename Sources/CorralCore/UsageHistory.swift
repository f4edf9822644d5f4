/// The recent usage of one resource of one agent: a ring of at most
/// `capacity` samples (default 1 h at 1 s) and, with a `window`, none older
/// than it; 8 bytes a sample (a 32-bit float and a 32-bit millisecond
/// offset). It grows as samples come rather than taking its whole capacity
/// at once: an hour at 1 s is 28 KiB, an idle agent sampled every 10 s keeps
/// a tenth of that. Beside them, the kernel's hard-limit events as counts per
/// minute, one 12-byte slot per minute of the window, allocated at the first
/// event (most agents never hit a hard limit: the 61 slots of three rings were
/// 2.2 KiB of an idle agent's 31): the size never depends on how often the
/// limit is hit.
public struct UsageRing: Sendable {
    public let capacity: Int
    /// Samples older than this (against the newest) are dropped (nil: only `capacity` bounds the ring).
    public let window: Duration?
    /// The slots in use so far (grown up to `capacity`); `next` is the slot the next sample takes.
    private var storage: [Float] = []
    /// Milliseconds after `base` (an offset wraps after 24 days: `base` moves with the data).
    private var offsets: [Int32] = []
    private var base: Int64?
    private var next = 0
    public private(set) var count = 0
    /// The newest sample's time.
    public private(set) var newest: Timestamp?
    /// Hard-limit events per minute: slot `m % eventSlots` holds minute `m`'s
    /// count. Empty until the first event.
    private var eventMinutes: [Int64] = []
    private var eventCounts: [Int32] = []
    private let eventSlots: Int
    /// The kernel's cumulative counter as last seen (nil: not yet, the next one is the baseline).
    private var lastCounter: Int64?

    /// `eventMinutes`: how many minutes of hard-limit events to keep (the window's, plus one).
    public init(capacity: Int, window: Duration? = nil, eventMinutes: Int = 61) {
        self.capacity = max(1, capacity)
        self.window = window
        eventSlots = max(1, eventMinutes)
    }

    /// Bytes the ring holds now: the sample slots allocated and the event slots (once there was an event).
    public var bytes: Int {
        storage.capacity * MemoryLayout<Float>.size + offsets.capacity * MemoryLayout<Int32>.size + eventMinutes.count
            * (MemoryLayout<Int64>.size + MemoryLayout<Int32>.size)
    }

    /// The most a ring of `capacity` samples and `eventMinutes` event slots
    /// holds, events included (the arrays' elements; each array adds a 32-byte header).
    public static func bytes(capacity: Int, eventMinutes: Int) -> Int {
        max(1, capacity) * (MemoryLayout<Float>.size + MemoryLayout<Int32>.size)
            + max(1, eventMinutes) * (MemoryLayout<Int64>.size + MemoryLayout<Int32>.size)
    }

    public mutating func append(_ value: Double, at time: Timestamp) {
        if base == nil || time.milliseconds - base! > Int64(Int32.max) / 2 { rebase(to: time) }
        if let window {
            // Out of the window: the oldest samples' slots are free again.
            let cutoff = time.milliseconds - Int64(window.seconds * 1000)
            while count > 0, let oldest, oldest.milliseconds < cutoff { count -= 1 }
        }
        if count == storage.count && storage.count < capacity {
            grow()
        }
        storage[next] = Float(value)
        offsets[next] = Int32(clamping: time.milliseconds - base!)
        next = (next + 1) % storage.count
        count = min(count + 1, storage.count)
        newest = time
    }

    /// One more slot, at `next`: the kept samples are put in order first (so
    /// the new slot is the last), then the arrays grow by a quarter (not the
    /// doubling of an append: most agents never fill an hour at 1 s).
    private mutating func grow() {
        let start = (next - count + storage.count) % max(storage.count, 1)
        if start != 0 {
            storage = Array(storage[start...] + storage[..<start])
            offsets = Array(offsets[start...] + offsets[..<start])
        }
        if storage.count == storage.capacity {
            let more = min(capacity, max(32, storage.count + storage.count / 4))
            storage.reserveCapacity(more)
            offsets.reserveCapacity(more)
        }
        storage.append(0)
        offsets.append(0)
        next = count
    }

    /// Takes the kernel's cumulative hard-limit counter (memory.events max +
    /// oom_kill, pids.events max) as read at `time`: its increase since the
    /// last reading is counted in `time`'s minute. The first reading is the
    /// baseline (events before it are history, not news), and so is one
    /// lower than the last (a new cgroup).
    public mutating func recordHardLimitCounter(_ counter: Int64, at time: Timestamp) {
        defer { lastCounter = counter }
        guard let last = lastCounter, counter > last else { return }
        if eventMinutes.isEmpty {
            eventMinutes = [Int64](repeating: .min, count: eventSlots)
            eventCounts = [Int32](repeating: 0, count: eventSlots)
        }
        let minute = Self.minute(of: time)
        let slot = Int(((minute % Int64(eventSlots)) + Int64(eventSlots)) % Int64(eventSlots))
        if eventMinutes[slot] != minute {
            eventMinutes[slot] = minute
            eventCounts[slot] = 0
        }
        eventCounts[slot] = Int32(clamping: Int64(eventCounts[slot]) + (counter - last))
    }

    /// Hard-limit events in the minutes from the one holding `since` on (to the
    /// minute; at most the kept minutes).
    public func hardLimitEvents(since: Timestamp) -> Int {
        let first = Self.minute(of: since)
        var total = 0
        for (minute, count) in zip(eventMinutes, eventCounts) where minute >= first { total += Int(count) }
        return total
    }

    /// Minutes since the epoch, rounded down.
    private static func minute(of time: Timestamp) -> Int64 {
        time.milliseconds >= 0 ? time.milliseconds / 60_000 : (time.milliseconds + 1) / 60_000 - 1
    }

    /// Moves `base` to the oldest kept sample (or `time`), re-expressing the offsets.
    private mutating func rebase(to time: Timestamp) {
        let oldest = self.oldest?.milliseconds ?? time.milliseconds
        let shift = oldest - (base ?? oldest)
        for i in offsets.indices { offsets[i] = Int32(clamping: Int64(offsets[i]) - shift) }
        base = oldest
    }

    /// The oldest kept sample's time.
    public var oldest: Timestamp? { count > 0 ? time(at: (next - count + storage.count) % storage.count) : nil }

    private func time(at index: Int) -> Timestamp { Timestamp(milliseconds: (base ?? 0) + Int64(offsets[index])) }

    /// The samples at or after `since` (all when nil), oldest first.
    public func values(since: Timestamp? = nil) -> [Double] {
        samples(since: since).map(\.1)
    }

    /// The samples at or after `since` on a regular grid of `interval`:
    /// where two samples are further apart than an interval (an agent sampled
    /// at the idle interval, a daemon restart), the earlier value is held
    /// for the missing steps (usage between two readings is not known; the
    /// last one is the best guess, and it keeps the series' time scale for
    /// the classifier and the recommender). Samples about an interval apart
    /// come out as they are. At most `limit` values, the newest kept.
    public func filled(since: Timestamp? = nil, interval: Duration, limit: Int = .max) -> [(Timestamp, Double)] {
        let samples = samples(since: since)
        let step = max(Int64(interval.seconds * 1000), 1)
        guard step > 0, samples.count > 0 else { return samples }
        var result: [(Timestamp, Double)] = []
        result.reserveCapacity(samples.count)
        for (index, (at, value)) in samples.enumerated() {
            if index > 0 {
                let (previousAt, previousValue) = samples[index - 1]
                let missing = Int((Double(at.milliseconds - previousAt.milliseconds) / Double(step)).rounded()) - 1
                if missing > 0 {
                    for k in 1...min(missing, max(limit, 1)) {
                        result.append((Timestamp(milliseconds: previousAt.milliseconds + Int64(k) * step), previousValue))
                    }
                }
            }
            result.append((at, value))
        }
        return result.count > limit ? Array(result.suffix(limit)) : result
    }

    /// (time, value) pairs at or after `since`, oldest first.
    public func samples(since: Timestamp? = nil) -> [(Timestamp, Double)] {
        guard count > 0 else { return [] }
        let start = (next - count + storage.count) % storage.count
        var result: [(Timestamp, Double)] = []
        result.reserveCapacity(count)
        for offset in 0..<count {
            let index = (start + offset) % storage.count
            let at = time(at: index)
            if let since, at < since { continue }
            result.append((at, Double(storage[index])))
        }
        return result
    }
}

/// One minute of one resource of one agent, for the downsampled history.
public struct UsageMinute: Codable, Equatable, Sendable {
    public var agent: String
    public var resource: Resource
    /// The minute's start.
    public var minute: Timestamp
    public var mean: Double
    public var peak: Double
    public var samples: Int

    public init(agent: String, resource: Resource, minute: Timestamp, mean: Double, peak: Double, samples: Int) {
        self.agent = agent
        self.resource = resource
        self.minute = minute
        self.mean = mean
        self.peak = peak
        self.samples = samples
    }
}

/// Folds samples into minutes: returns the finished minute when a sample
/// of a later minute arrives.
public struct MinuteAccumulator: Sendable {
    public private(set) var minute: Int64?
    private var sum = 0.0
    private var peak = -Double.infinity
    private var samples = 0

    public init() {}

    public mutating func add(_ value: Double, at time: Timestamp, agent: String, resource: Resource) -> UsageMinute? {
        let start = time.milliseconds - ((time.milliseconds % 60_000) + 60_000) % 60_000
        var finished: UsageMinute?
        if let minute, minute != start, samples > 0 {
            finished = UsageMinute(
                agent: agent, resource: resource, minute: Timestamp(milliseconds: minute), mean: sum / Double(samples), peak: peak,
                samples: samples)
        }
        if minute != start {
            minute = start
            sum = 0
            peak = -.infinity
            samples = 0
        }
        sum += value
        peak = max(peak, value)
        samples += 1
        return finished
    }
}
