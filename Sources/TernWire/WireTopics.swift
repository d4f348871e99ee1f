import NIOCore
public import TernCore

// The topic and consumer-group APIs (keys 30–42) carry TernCore's topic values (`TopicInfo`,
// `TopicMessage`, `FetchResult`, …) and the group values below; partitions are `Int` in Swift
// and `u32` on the wire.

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

    mutating func writeTopicPatch(_ patch: TopicAttributes.Patch) {
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

    /// `string` name, u32 retention (s), `optional<u64>` max bytes, u64 created at (ms),
    /// `array<partition info>` (its count is the partition count).
    mutating func writeTopicInfo(_ info: TopicInfo) {
        writeWireString(info.name.rawValue)
        writeInteger(UInt32(clamping: info.attributes.retention))
        writeWireOptional(info.attributes.maxBytes) { $0.writeInteger(UInt64(clamping: $1)) }
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

    mutating func writeTopicMessage(_ message: TopicMessage) {
        writeWireOptional(message.key) { $0.writeWireBytes($1) }
        writeWireOptional(message.partition) { $0.writePartitionNumber($1) }
        writeWireBytes(message.value)
    }

    mutating func writeFetched(_ messages: [FetchedMessage]) {
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

    mutating func writeAssignment(_ assignment: GroupAssignment) {
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

    mutating func writeOffsetReset(_ target: OffsetReset) {
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

    mutating func readTopicPatch() throws(TernError) -> TopicAttributes.Patch {
        var patch = TopicAttributes.Patch()
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

    mutating func readTopicInfo() throws(TernError) -> TopicInfo {
        let name = try readQueueName("topic name")
        let retention = Int(try read(UInt32.self, "retention"))
        let maxBytes = try readOptional("max_bytes") { (r: inout WireReader) throws(TernError) in Int(clamping: try r.read(UInt64.self, "max_bytes")) }
        let createdAt = Timestamp(milliseconds: try read(UInt64.self, "created at"))
        let count = try readCount("partition count", minimumElementBytes: 36)
        var partitions = [PartitionInfo]()
        partitions.reserveCapacity(count)
        for _ in 0..<count {
            partitions.append(PartitionInfo(
                partition: try readPartitionNumber(), logStart: try read(UInt64.self, "log start"),
                highWatermark: try read(UInt64.self, "high watermark"), bytes: try read(UInt64.self, "bytes"),
                batches: try read(UInt64.self, "batches")))
        }
        var attributes = TopicAttributes()
        attributes.partitions = partitions.count
        attributes.retention = retention
        attributes.maxBytes = maxBytes
        return TopicInfo(name: name, attributes: attributes, createdAt: createdAt, partitions: partitions)
    }

    mutating func readTopicMessage() throws(TernError) -> TopicMessage {
        let key = try readOptional("key") { (r: inout WireReader) throws(TernError) in try r.readBytes("key") }
        let partition = try readOptional("partition") { (r: inout WireReader) throws(TernError) in try r.readPartitionNumber() }
        return TopicMessage(key: key, value: try readBytes("value"), partition: partition)
    }

    mutating func readFetched() throws(TernError) -> [FetchedMessage] {
        let count = try readCount("message count", minimumElementBytes: 25)
        var messages = [FetchedMessage]()
        messages.reserveCapacity(count)
        for _ in 0..<count {
            let partition = try readPartitionNumber()
            let offset: UInt64 = try read(UInt64.self, "offset")
            let key = try readOptional("key") { (r: inout WireReader) throws(TernError) in try r.readBytes("key") }
            let value = try readBytes("value")
            let timestamp = Timestamp(milliseconds: try read(UInt64.self, "timestamp"))
            messages.append(FetchedMessage(partition: partition, offset: offset, key: key, value: value, timestamp: timestamp))
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

    mutating func readAssignment() throws(TernError) -> GroupAssignment {
        GroupAssignment(generation: try read(UInt32.self, "generation"), partitions: try readPartitionList(),
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

    mutating func readOffsetReset() throws(TernError) -> OffsetReset {
        let kind: UInt8 = try read(UInt8.self, "reset target")
        switch kind {
        case 0: return .earliest
        case 1: return .latest
        case 2: return .timestamp(Timestamp(milliseconds: try read(UInt64.self, "timestamp")))
        default: throw TernError(.invalidFrame, "reset target must be 0, 1 or 2, got \(kind)")
        }
    }
}
