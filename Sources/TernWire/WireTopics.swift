import NIOCore
public import TernCore

// The value types of the topic and consumer-group APIs (keys 30–42). They mirror the broker's
// topic types (which live in `TernBroker`, out of this module's reach) with the field names of
// the HTTP API; partitions are `Int` here and `u32` on the wire.

/// A partial change of a topic's attributes (`CreateTopic`): nil leaves a value as it is (or
/// takes the default when the topic is created), the same patch semantics as
/// `PUT /topics/{name}`.
///
/// Wire: `optional<u32>` partitions, `optional<u32>` retention, `patch<u64>` max bytes.
public struct WireTopicPatch: Sendable, Hashable {
    /// Partitions, 1–1,024; fixed at creation (a different count for an existing topic is `Conflict`).
    public var partitions: Int?
    /// How long a batch is kept after it was produced, in seconds (60–31,536,000; default 7 days).
    public var retention: Int?
    /// The most stored bytes per partition: `.some(nil)` turns the limit off; nil leaves it.
    public var maxBytes: Int??

    public init(partitions: Int? = nil, retention: Int? = nil, maxBytes: Int?? = nil) {
        self.partitions = partitions
        self.retention = retention
        self.maxBytes = maxBytes
    }
}

/// The offsets and size of one partition.
///
/// Wire: u32 partition, u64 log start, u64 high watermark, u64 bytes, u64 batches (36 bytes).
public struct WirePartitionInfo: Sendable, Hashable {
    public var partition: Int
    /// The first offset still stored (everything below was dropped by retention).
    public var logStart: UInt64
    /// The offset the next produced message will get.
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

/// A topic as described by `CreateTopic`, `DescribeTopic` and `ListTopics`.
///
/// Wire: `string` name, u32 retention (s), `optional<u64>` max bytes, u64 created at (ms),
/// `array<partition info>` (its count is the partition count).
public struct WireTopicInfo: Sendable, Hashable {
    public var name: String
    /// Seconds a batch is kept after it was produced.
    public var retention: Int
    /// The most stored bytes per partition; nil = unlimited.
    public var maxBytes: Int?
    public var createdAt: Timestamp
    /// One entry per partition, by partition number; `partitions.count` is the partition count.
    public var partitions: [WirePartitionInfo]

    public init(name: String, retention: Int, maxBytes: Int?, createdAt: Timestamp, partitions: [WirePartitionInfo]) {
        self.name = name
        self.retention = retention
        self.maxBytes = maxBytes
        self.createdAt = createdAt
        self.partitions = partitions
    }
}

/// One message to produce.
///
/// Wire: `optional<bytes>` key, `optional<u32>` partition, `bytes` value.
public struct WireTopicMessage: Sendable, Hashable {
    /// The key; messages with equal keys go to the same partition (Kafka's murmur2 partitioner).
    /// nil = no key: the message goes to the request's sticky partition.
    public var key: [UInt8]?
    /// The value, exactly as it will be fetched (may be empty). Key plus value ≤ 1 MiB.
    public var value: [UInt8]
    /// An explicit partition (overrides the key's); nil = chosen by the partitioner.
    public var partition: Int?

    public init(key: [UInt8]? = nil, value: [UInt8], partition: Int? = nil) {
        self.key = key
        self.value = value
        self.partition = partition
    }
}

/// Where a produced message was stored. Wire: u32 partition, u64 offset.
public struct WireTopicOffset: Sendable, Hashable {
    public var partition: Int
    public var offset: UInt64

    public init(partition: Int, offset: UInt64) {
        self.partition = partition
        self.offset = offset
    }
}

/// A message read from a partition (`Fetch`, `GroupConsume`).
///
/// Wire: u32 partition, u64 offset, `optional<bytes>` key, `bytes` value, u64 timestamp (ms).
public struct WireFetchedMessage: Sendable, Hashable {
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

/// The answer of `Fetch`. Wire: u64 high watermark, u64 log start, `array<fetched>`.
public struct WireFetchResult: Sendable, Hashable {
    /// In offset order; empty when nothing arrived within the wait time.
    public var messages: [WireFetchedMessage]
    public var highWatermark: UInt64
    public var logStart: UInt64

    public init(messages: [WireFetchedMessage], highWatermark: UInt64, logStart: UInt64) {
        self.messages = messages
        self.highWatermark = highWatermark
        self.logStart = logStart
    }
}

/// What a group member learns from `JoinGroup`, `Heartbeat` and `GroupConsume`.
///
/// Wire: u32 generation, `array<u32>` partitions, `bool` rebalance.
public struct WireAssignment: Sendable, Hashable {
    /// The group's generation; a commit must carry it.
    public var generation: UInt32
    /// The member's partitions in this generation, ascending.
    public var partitions: [Int]
    /// Whether the assignment changed since the member last heard.
    public var rebalance: Bool

    public init(generation: UInt32, partitions: [Int], rebalance: Bool = false) {
        self.generation = generation
        self.partitions = partitions
        self.rebalance = rebalance
    }
}

/// Where `ResetOffsets` moves a group. Wire: u8 0 = earliest, 1 = latest, 2 = timestamp + u64 ms.
public enum WireOffsetReset: Sendable, Hashable {
    case earliest
    case latest
    /// The first offset produced at or after the time.
    case timestamp(Timestamp)
}

/// A consumer group as described by `DescribeGroup`.
///
/// Wire: u32 generation, `array<member>`, `array<partition lag>`.
public struct WireGroupInfo: Sendable, Hashable {
    /// Wire: `string` member id, u32 session timeout (s), u64 last seen (ms), `array<u32>` partitions.
    public struct Member: Sendable, Hashable {
        public var id: String
        /// Seconds without a heartbeat after which the member is removed.
        public var sessionTimeout: Int
        /// The member's last join, heartbeat or consume.
        public var lastSeen: Timestamp
        public var partitions: [Int]

        public init(id: String, sessionTimeout: Int, lastSeen: Timestamp, partitions: [Int]) {
            self.id = id
            self.sessionTimeout = sessionTimeout
            self.lastSeen = lastSeen
            self.partitions = partitions
        }
    }

    /// Wire: u32 partition, `optional<u64>` committed, u64 log start, u64 high watermark, u64 lag,
    /// `optional<string>` owner.
    public struct PartitionLag: Sendable, Hashable {
        public var partition: Int
        /// The committed offset (the next to consume), nil when the group never committed one.
        public var committed: UInt64?
        public var logStart: UInt64
        public var highWatermark: UInt64
        /// Messages not yet committed: high watermark − committed (or − log start).
        public var lag: UInt64
        /// The member that owns the partition, nil when none does.
        public var owner: String?

        public init(partition: Int, committed: UInt64?, logStart: UInt64, highWatermark: UInt64, lag: UInt64, owner: String?) {
            self.partition = partition
            self.committed = committed
            self.logStart = logStart
            self.highWatermark = highWatermark
            self.lag = lag
            self.owner = owner
        }
    }

    public var generation: UInt32
    /// Sorted by member id.
    public var members: [Member]
    /// One entry per partition, by partition number.
    public var partitions: [PartitionLag]

    public init(generation: UInt32, members: [Member], partitions: [PartitionLag]) {
        self.generation = generation
        self.members = members
        self.partitions = partitions
    }

    /// The lag of all partitions together.
    public var lag: UInt64 { partitions.reduce(0) { $0 + $1.lag } }
}

// MARK: - Value codecs

extension ByteBuffer {
    mutating func writePartitionNumber(_ partition: Int) {
        writeInteger(UInt32(clamping: partition))
    }

    mutating func writeTopicPatch(_ patch: WireTopicPatch) {
        writeWireOptional(patch.partitions) { $0.writeInteger(UInt32(clamping: $1)) }
        writeWireOptional(patch.retention) { $0.writeInteger(UInt32(clamping: $1)) }
        switch patch.maxBytes {
        case .none: writeInteger(UInt8(0))
        case .some(.some(let value)):
            writeInteger(UInt8(1))
            writeInteger(UInt64(clamping: value))
        case .some(.none): writeInteger(UInt8(2))
        }
    }

    mutating func writeTopicInfo(_ info: WireTopicInfo) {
        writeWireString(info.name)
        writeInteger(UInt32(clamping: info.retention))
        writeWireOptional(info.maxBytes) { $0.writeInteger(UInt64(clamping: $1)) }
        writeInteger(info.createdAt.milliseconds)
        writeInteger(UInt32(info.partitions.count))
        for partition in info.partitions {
            writePartitionNumber(partition.partition)
            writeInteger(partition.logStart)
            writeInteger(partition.highWatermark)
            writeInteger(partition.bytes)
            writeInteger(partition.batches)
        }
    }

    mutating func writeTopicMessage(_ message: WireTopicMessage) {
        writeWireOptional(message.key) { $0.writeWireBytes($1) }
        writeWireOptional(message.partition) { $0.writePartitionNumber($1) }
        writeWireBytes(message.value)
    }

    mutating func writeFetched(_ messages: [WireFetchedMessage]) {
        writeInteger(UInt32(messages.count))
        for message in messages {
            writePartitionNumber(message.partition)
            writeInteger(message.offset)
            writeWireOptional(message.key) { $0.writeWireBytes($1) }
            writeWireBytes(message.value)
            writeInteger(message.timestamp.milliseconds)
        }
    }

    mutating func writePartitionList(_ partitions: [Int]) {
        writeInteger(UInt32(partitions.count))
        for partition in partitions { writePartitionNumber(partition) }
    }

    mutating func writeAssignment(_ assignment: WireAssignment) {
        writeInteger(assignment.generation)
        writePartitionList(assignment.partitions)
        writeWireBool(assignment.rebalance)
    }

    mutating func writeGroupInfo(_ info: WireGroupInfo) {
        writeInteger(info.generation)
        writeInteger(UInt32(info.members.count))
        for member in info.members {
            writeWireString(member.id)
            writeInteger(UInt32(clamping: member.sessionTimeout))
            writeInteger(member.lastSeen.milliseconds)
            writePartitionList(member.partitions)
        }
        writeInteger(UInt32(info.partitions.count))
        for lag in info.partitions {
            writePartitionNumber(lag.partition)
            writeWireOptional(lag.committed) { $0.writeInteger($1) }
            writeInteger(lag.logStart)
            writeInteger(lag.highWatermark)
            writeInteger(lag.lag)
            writeWireOptional(lag.owner) { $0.writeWireString($1) }
        }
    }

    mutating func writeOffsetReset(_ target: WireOffsetReset) {
        switch target {
        case .earliest: writeInteger(UInt8(0))
        case .latest: writeInteger(UInt8(1))
        case .timestamp(let time):
            writeInteger(UInt8(2))
            writeInteger(time.milliseconds)
        }
    }
}

extension WireReader {
    mutating func readPartitionNumber(_ field: StaticString = "partition") throws(TernError) -> Int {
        Int(try read(UInt32.self, field))
    }

    mutating func readTopicPatch() throws(TernError) -> WireTopicPatch {
        var patch = WireTopicPatch()
        patch.partitions = try readOptional("partitions") { (r: inout WireReader) throws(TernError) in Int(try r.read(UInt32.self, "partitions")) }
        patch.retention = try readOptional("retention") { (r: inout WireReader) throws(TernError) in Int(try r.read(UInt32.self, "retention")) }
        let marker: UInt8 = try read(UInt8.self, "max_bytes")
        switch marker {
        case 0: patch.maxBytes = .none
        case 1: patch.maxBytes = .some(Int(clamping: try read(UInt64.self, "max_bytes")))
        case 2: patch.maxBytes = .some(.none)
        default: throw TernError(.invalidFrame, "max_bytes marker must be 0, 1 or 2, got \(marker)")
        }
        return patch
    }

    mutating func readTopicInfo() throws(TernError) -> WireTopicInfo {
        let name = try readString("topic name")
        let retention = Int(try read(UInt32.self, "retention"))
        let maxBytes = try readOptional("max_bytes") { (r: inout WireReader) throws(TernError) in Int(clamping: try r.read(UInt64.self, "max_bytes")) }
        let createdAt = Timestamp(milliseconds: try read(UInt64.self, "created at"))
        let count = try readCount("partition count", minimumElementBytes: 36)
        var partitions = [WirePartitionInfo]()
        partitions.reserveCapacity(count)
        for _ in 0..<count {
            partitions.append(WirePartitionInfo(
                partition: try readPartitionNumber(), logStart: try read(UInt64.self, "log start"),
                highWatermark: try read(UInt64.self, "high watermark"), bytes: try read(UInt64.self, "bytes"),
                batches: try read(UInt64.self, "batches")))
        }
        return WireTopicInfo(name: name, retention: retention, maxBytes: maxBytes, createdAt: createdAt, partitions: partitions)
    }

    mutating func readTopicMessage() throws(TernError) -> WireTopicMessage {
        let key = try readOptional("key") { (r: inout WireReader) throws(TernError) in try r.readBytes("key") }
        let partition = try readOptional("partition") { (r: inout WireReader) throws(TernError) in try r.readPartitionNumber() }
        return WireTopicMessage(key: key, value: try readBytes("value"), partition: partition)
    }

    mutating func readFetched() throws(TernError) -> [WireFetchedMessage] {
        let count = try readCount("message count", minimumElementBytes: 25)
        var messages = [WireFetchedMessage]()
        messages.reserveCapacity(count)
        for _ in 0..<count {
            let partition = try readPartitionNumber()
            let offset: UInt64 = try read(UInt64.self, "offset")
            let key = try readOptional("key") { (r: inout WireReader) throws(TernError) in try r.readBytes("key") }
            let value = try readBytes("value")
            let timestamp = Timestamp(milliseconds: try read(UInt64.self, "timestamp"))
            messages.append(WireFetchedMessage(partition: partition, offset: offset, key: key, value: value, timestamp: timestamp))
        }
        return messages
    }

    mutating func readPartitionList() throws(TernError) -> [Int] {
        let count = try readCount("partition count", minimumElementBytes: 4)
        var partitions = [Int]()
        partitions.reserveCapacity(count)
        for _ in 0..<count { partitions.append(try readPartitionNumber()) }
        return partitions
    }

    mutating func readAssignment() throws(TernError) -> WireAssignment {
        WireAssignment(generation: try read(UInt32.self, "generation"), partitions: try readPartitionList(),
                       rebalance: try readBool("rebalance"))
    }

    mutating func readGroupInfo() throws(TernError) -> WireGroupInfo {
        let generation: UInt32 = try read(UInt32.self, "generation")
        let memberCount = try readCount("member count", minimumElementBytes: 18)
        var members = [WireGroupInfo.Member]()
        for _ in 0..<memberCount {
            members.append(WireGroupInfo.Member(
                id: try readString("member id"), sessionTimeout: Int(try read(UInt32.self, "session timeout")),
                lastSeen: Timestamp(milliseconds: try read(UInt64.self, "last seen")), partitions: try readPartitionList()))
        }
        let partitionCount = try readCount("partition count", minimumElementBytes: 30)
        var partitions = [WireGroupInfo.PartitionLag]()
        for _ in 0..<partitionCount {
            let partition = try readPartitionNumber()
            let committed = try readOptional("committed") { (r: inout WireReader) throws(TernError) in try r.read(UInt64.self, "committed") }
            let logStart: UInt64 = try read(UInt64.self, "log start")
            let highWatermark: UInt64 = try read(UInt64.self, "high watermark")
            let lag: UInt64 = try read(UInt64.self, "lag")
            let owner = try readOptional("owner") { (r: inout WireReader) throws(TernError) in try r.readString("owner") }
            partitions.append(.init(partition: partition, committed: committed, logStart: logStart, highWatermark: highWatermark,
                                    lag: lag, owner: owner))
        }
        return WireGroupInfo(generation: generation, members: members, partitions: partitions)
    }

    mutating func readOffsetReset() throws(TernError) -> WireOffsetReset {
        let kind: UInt8 = try read(UInt8.self, "reset target")
        switch kind {
        case 0: return .earliest
        case 1: return .latest
        case 2: return .timestamp(Timestamp(milliseconds: try read(UInt64.self, "timestamp")))
        default: throw TernError(.invalidFrame, "reset target must be 0, 1 or 2, got \(kind)")
        }
    }
}
