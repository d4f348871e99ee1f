
/// The settings of one topic. Durations in whole seconds, sizes in bytes.
public struct TopicAttributes: Hashable, Sendable {
    /// Partitions, 1–1,024. Fixed at creation (keys map to partitions by the partition count).
    public var partitions: Int = 1
    /// How long a batch is kept after it was produced, in seconds, counted from the produce
    /// (downtime included). Default 604,800 (7 days), range 60–31,536,000 (365 days).
    public var retention: Int = 604_800
    /// The most stored bytes per partition (compressed batch records); the oldest batches are
    /// dropped beyond it. nil (the default) = unlimited.
    public var maxBytes: Int? = nil

    public init() {}

    public static let partitionsRange = 1...1024
    public static let retentionRange = 60...31_536_000

    /// - Throws: ``TernError`` with ``ErrorCode/invalidAttribute`` naming the first bad attribute.
    public func validate() throws(TernError) {
        guard Self.partitionsRange.contains(partitions) else {
            throw TernError(.invalidAttribute, "partitions must be 1–1024, got \(partitions)")
        }
        guard Self.retentionRange.contains(retention) else {
            throw TernError(.invalidAttribute, "retention must be 60–31536000 seconds, got \(retention)")
        }
        if let maxBytes, maxBytes < 1 { throw TernError(.invalidAttribute, "max_bytes must be at least 1") }
    }

    /// A partial change: nil leaves a value as it is; `.some(nil)` turns `maxBytes` off.
    public struct Patch: Sendable, Hashable {
        public var partitions: Int?
        public var retention: Int?
        public var maxBytes: Int??

        public init(partitions: Int? = nil, retention: Int? = nil, maxBytes: Int?? = nil) {
            self.partitions = partitions
            self.retention = retention
            self.maxBytes = maxBytes
        }

        public func applied(to base: TopicAttributes) -> TopicAttributes {
            var result = base
            if let partitions { result.partitions = partitions }
            if let retention { result.retention = retention }
            if let maxBytes { result.maxBytes = maxBytes }
            return result
        }
    }
}

/// One message to produce to a topic.
public struct TopicMessage: Sendable, Hashable {
    /// The key (UTF-8 bytes); nil = no key (the message goes to the request's sticky partition).
    public var key: [UInt8]?
    /// The value, exactly as it will be fetched (may be empty).
    public var value: [UInt8]
    /// An explicit partition (overrides the key's); nil = chosen by the partitioner.
    public var partition: Int?

    public init(key: [UInt8]? = nil, value: [UInt8], partition: Int? = nil) {
        self.key = key
        self.value = value
        self.partition = partition
    }
}

/// Where a produced message was stored.
public struct TopicOffset: Sendable, Hashable {
    public var partition: Int
    public var offset: UInt64

    public init(partition: Int, offset: UInt64) {
        self.partition = partition
        self.offset = offset
    }
}

/// A message read from a partition.
public struct FetchedMessage: Sendable, Hashable {
    public var partition: Int
    public var offset: UInt64
    public var key: [UInt8]?
    public var value: [UInt8]
    /// When the message was produced.
    public var timestamp: Timestamp

    public init(partition: Int, offset: UInt64, key: [UInt8]?, value: [UInt8], timestamp: Timestamp) {
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.timestamp = timestamp
    }
}

/// The offsets and size of one partition.
public struct PartitionInfo: Sendable, Hashable {
    public var partition: Int
    /// The first offset still stored (everything below was dropped by retention).
    public var logStart: UInt64
    /// The offset the next produced message will get (one past the last stored message).
    public var highWatermark: UInt64
    /// Stored bytes (compressed batch records).
    public var bytes: UInt64
    /// Stored batches (one per produce request and partition).
    public var batches: UInt64

    public init(partition: Int, logStart: UInt64 = 0, highWatermark: UInt64 = 0, bytes: UInt64 = 0, batches: UInt64 = 0) {
        self.partition = partition
        self.logStart = logStart
        self.highWatermark = highWatermark
        self.bytes = bytes
        self.batches = batches
    }
}

/// A topic as described by list and describe calls.
public struct TopicInfo: Sendable, Hashable {
    public var name: QueueName
    public var attributes: TopicAttributes
    public var createdAt: Timestamp
    /// One entry per partition, by partition number.
    public var partitions: [PartitionInfo]

    public init(name: QueueName, attributes: TopicAttributes, createdAt: Timestamp, partitions: [PartitionInfo]) {
        self.name = name
        self.attributes = attributes
        self.createdAt = createdAt
        self.partitions = partitions
    }
}

/// The answer of a partition fetch.
public struct FetchResult: Sendable, Hashable {
    /// In offset order; empty when nothing arrived within the wait time.
    public var messages: [FetchedMessage]
    public var highWatermark: UInt64
    public var logStart: UInt64

    public init(messages: [FetchedMessage], highWatermark: UInt64, logStart: UInt64) {
        self.messages = messages
        self.highWatermark = highWatermark
        self.logStart = logStart
    }
}

/// What a consumer-group member learns from a join, heartbeat or consume.
public struct GroupAssignment: Sendable, Hashable {
    /// The group's generation; a commit must carry it.
    public var generation: UInt32
    /// The member's partitions in this generation, ascending.
    public var partitions: [Int]
    /// Whether the assignment changed since the member last heard (it should commit what it
    /// processed and continue with the new partitions).
    public var rebalance: Bool

    public init(generation: UInt32, partitions: [Int], rebalance: Bool = false) {
        self.generation = generation
        self.partitions = partitions
        self.rebalance = rebalance
    }
}

/// Where a reset moves a consumer group's committed offsets.
public enum OffsetReset: Sendable, Hashable {
    case earliest
    case latest
    /// The first offset produced at or after the time.
    case timestamp(Timestamp)
}
