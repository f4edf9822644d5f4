/// The recent usage of one resource of one agent: a ring of the last
/// `capacity` samples (default 1 h at 1 s). 8 bytes a sample (a 32-bit
/// float and a 32-bit millisecond offset): 28 KiB for an hour at 1 s.
public struct UsageRing: Sendable {
    public let capacity: Int
    private var storage: [Float]
    /// Milliseconds after `base` (an offset wraps after 24 days: `base` moves with the data).
    private var offsets: [Int32]
    private var base: Int64?
    private var next = 0
    public private(set) var count = 0
    /// The newest sample's time.
    public private(set) var newest: Timestamp?

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
        storage = [Float](repeating: 0, count: self.capacity)
        offsets = [Int32](repeating: 0, count: self.capacity)
    }

    /// Bytes held per ring.
    public var bytes: Int { capacity * (MemoryLayout<Float>.size + MemoryLayout<Int32>.size) }

    public mutating func append(_ value: Double, at time: Timestamp) {
        if base == nil || time.milliseconds - base! > Int64(Int32.max) / 2 { rebase(to: time) }
        storage[next] = Float(value)
        offsets[next] = Int32(clamping: time.milliseconds - base!)
        next = (next + 1) % capacity
        count = min(count + 1, capacity)
        newest = time
    }

    /// Moves `base` to the oldest kept sample (or `time`), re-expressing the offsets.
    private mutating func rebase(to time: Timestamp) {
        let oldest = self.oldest?.milliseconds ?? time.milliseconds
        let shift = oldest - (base ?? oldest)
        for i in offsets.indices { offsets[i] = Int32(clamping: Int64(offsets[i]) - shift) }
        base = oldest
    }

    /// The oldest kept sample's time.
    public var oldest: Timestamp? { count > 0 ? time(at: (next - count + capacity) % capacity) : nil }

    private func time(at index: Int) -> Timestamp { Timestamp(milliseconds: (base ?? 0) + Int64(offsets[index])) }

    /// The samples at or after `since` (all when nil), oldest first.
    public func values(since: Timestamp? = nil) -> [Double] {
        samples(since: since).map(\.1)
    }

    /// (time, value) pairs at or after `since`, oldest first.
    public func samples(since: Timestamp? = nil) -> [(Timestamp, Double)] {
        let start = (next - count + capacity) % capacity
        var result: [(Timestamp, Double)] = []
        result.reserveCapacity(count)
        for offset in 0..<count {
            let index = (start + offset) % capacity
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
