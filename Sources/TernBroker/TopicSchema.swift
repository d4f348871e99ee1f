public import TernCore
public import TernStorage

/// The LMDB layout of topics and consumer-group offsets (same environment as the queues;
/// `docs/storage.md` lists every database).
///
/// | database | key (big-endian) | value |
/// |---|---|---|
/// | `topic_names` | topic name (UTF-8) | topic id u32 |
/// | `topics` | topic id u32 | ``TopicRecord`` |
/// | `topic_partitions` | topic id u32, partition u32 | ``PartitionState`` |
/// | `topic_batches` | topic id u32, partition u32, base offset u64 | ``TopicBatch``, snappy when it pays |
/// | `group_offsets` | topic id u32, group name (UTF-8), 0x00, partition u32 | offset u64, committed at ms u64 |
///
/// Topic ids come from the `next_topic_id` counter in `meta` and are never reused.
public enum TopicSchema {
    public static let databaseNames = ["topic_names", "topics", "topic_partitions", "topic_batches", "group_offsets"]
    static let nextTopicIDKey = Array("next_topic_id".utf8)

    public static func topicKey(_ topic: UInt32) -> [UInt8] {
        var writer = BigEndianWriter(capacity: 4)
        writer.write(topic)
        return writer.bytes
    }

    public static func partitionKey(topic: UInt32, partition: UInt32) -> [UInt8] {
        var writer = BigEndianWriter(capacity: 8)
        writer.write(topic)
        writer.write(partition)
        return writer.bytes
    }

    public static func batchKey(topic: UInt32, partition: UInt32, baseOffset: UInt64) -> [UInt8] {
        var writer = BigEndianWriter(capacity: 16)
        writer.write(topic)
        writer.write(partition)
        writer.write(baseOffset)
        return writer.bytes
    }

    /// Decodes a `topic_batches` key into (topic id, partition, base offset).
    public static func decodeBatchKey(_ key: [UInt8]) throws(StorageError) -> (topic: UInt32, partition: UInt32, baseOffset: UInt64) {
        var reader = BigEndianReader(key)
        return (try reader.readUInt32(), try reader.readUInt32(), try reader.readUInt64())
    }

    /// The prefix of every offset of `group` on `topic`; group names never contain 0x00.
    public static func groupPrefix(topic: UInt32, group: String) -> [UInt8] {
        var writer = BigEndianWriter(capacity: 8 + group.utf8.count)
        writer.write(topic)
        writer.write(Array(group.utf8))
        writer.write(UInt8(0))
        return writer.bytes
    }

    public static func groupOffsetKey(topic: UInt32, group: String, partition: UInt32) -> [UInt8] {
        var writer = BigEndianWriter(capacity: 12 + group.utf8.count)
        writer.write(groupPrefix(topic: topic, group: group))
        writer.write(partition)
        return writer.bytes
    }

    /// Signal key of one partition (long-polling fetches). Queue ids stay far below 2^30, so
    /// the high bit keeps topic keys apart from queue keys; partitions take the low 10 bits.
    static func partitionSignal(topic: UInt32, partition: Int) -> UInt32 {
        0x8000_0000 | ((topic & 0x1F_FFFF) << 10) | UInt32(partition & 0x3FF)
    }

    /// Signal key of a whole topic (long-polling group consumers, which read several partitions).
    static func topicSignal(topic: UInt32) -> UInt32 { 0x4000_0000 | (topic & 0x3FFF_FFFF) }
}

/// The durable description of one topic (database `topics`).
///
/// Payload: id u32, flags u8 (bit 0 = deleted, data being swept), created at ms u64,
/// partitions u32, retention s u32, max bytes u64 (0 = none), name (u32 length + UTF-8).
public struct TopicRecord: Sendable, Hashable {
    public var id: UInt32
    public var name: QueueName
    public var deleted: Bool
    public var createdAt: Timestamp
    public var attributes: TopicAttributes

    public init(id: UInt32, name: QueueName, createdAt: Timestamp, attributes: TopicAttributes) {
        self.id = id
        self.name = name
        self.deleted = false
        self.createdAt = createdAt
        self.attributes = attributes
    }

    public func encoded() -> [UInt8] {
        var writer = BigEndianWriter(capacity: 64)
        writer.write(id)
        writer.write(UInt8(deleted ? 1 : 0))
        writer.write(createdAt.milliseconds)
        writer.write(UInt32(attributes.partitions))
        writer.write(UInt32(attributes.retention))
        writer.write(UInt64(attributes.maxBytes ?? 0))
        writer.writeLengthPrefixed(Array(name.rawValue.utf8))
        return RecordCodec.encode(writer.bytes, compression: .never)
    }

    /// - Throws: ``StorageError/Code/corruptRecord`` when the record fails its checks.
    public init(decoding record: [UInt8]) throws(StorageError) {
        var reader = BigEndianReader(try RecordCodec.decode(record))
        id = try reader.readUInt32()
        deleted = try reader.readUInt8() & 1 != 0
        createdAt = Timestamp(milliseconds: try reader.readUInt64())
        var attributes = TopicAttributes()
        attributes.partitions = Int(try reader.readUInt32())
        attributes.retention = Int(try reader.readUInt32())
        let maxBytes = try reader.readUInt64()
        attributes.maxBytes = maxBytes == 0 ? nil : Int(maxBytes)
        self.attributes = attributes
        let nameBytes = try reader.readLengthPrefixed()
        do { name = try QueueName(String(decoding: nameBytes, as: UTF8.self)) } catch {
            throw StorageError(.corruptRecord, "stored topic name is invalid: \(error)")
        }
    }
}

/// The offsets and size of one partition (database `topic_partitions`).
///
/// Payload: log start u64, high watermark u64, bytes u64, batches u64.
public struct PartitionState: Sendable, Hashable {
    public var logStart: UInt64 = 0
    public var highWatermark: UInt64 = 0
    /// Stored bytes: the sum of the batch records' lengths.
    public var bytes: UInt64 = 0
    public var batches: UInt64 = 0

    public init() {}

    public func encoded() -> [UInt8] {
        var writer = BigEndianWriter(capacity: 32)
        writer.write(logStart)
        writer.write(highWatermark)
        writer.write(bytes)
        writer.write(batches)
        return RecordCodec.encode(writer.bytes, compression: .never)
    }

    public init(decoding record: [UInt8]) throws(StorageError) {
        var reader = BigEndianReader(try RecordCodec.decode(record))
        logStart = try reader.readUInt64()
        highWatermark = try reader.readUInt64()
        bytes = try reader.readUInt64()
        batches = try reader.readUInt64()
    }
}

/// One produce batch of one partition: the unit of storage and compression (database
/// `topic_batches`, keyed by its base offset).
///
/// Payload (inside the ``RecordCodec`` envelope, which snappy-compresses it as one block when
/// that saves at least one eighth): count u32, then per message: offset delta u32, timestamp
/// ms u64, key length u32 (0xFFFFFFFF = no key) and key bytes, value length u32 and value bytes.
public struct TopicBatch: Sendable, Hashable {
    public struct Entry: Sendable, Hashable {
        public var offsetDelta: UInt32
        public var timestamp: Timestamp
        public var key: [UInt8]?
        public var value: [UInt8]
    }

    public var entries: [Entry]

    public init(entries: [Entry]) { self.entries = entries }

    static let noKey = UInt32.max

    /// The newest timestamp in the batch (retention drops a batch once it passed).
    public var maxTimestamp: Timestamp { entries.map(\.timestamp).max() ?? Timestamp(milliseconds: 0) }

    public func encoded() -> [UInt8] {
        let size = entries.reduce(4) { $0 + 20 + ($1.key?.count ?? 0) + $1.value.count }
        var writer = BigEndianWriter(capacity: size)
        writer.write(UInt32(entries.count))
        for entry in entries {
            writer.write(entry.offsetDelta)
            writer.write(entry.timestamp.milliseconds)
            if let key = entry.key {
                writer.writeLengthPrefixed(key)
            } else {
                writer.write(Self.noKey)
            }
            writer.writeLengthPrefixed(entry.value)
        }
        return RecordCodec.encode(writer.bytes, compression: .whenSmaller(minimumBytes: 64))
    }

    /// - Throws: ``StorageError/Code/corruptRecord`` when the record fails its checks.
    public init(decoding record: [UInt8]) throws(StorageError) {
        var reader = BigEndianReader(try RecordCodec.decode(record))
        let count = try reader.readUInt32()
        var entries = [Entry]()
        entries.reserveCapacity(Int(min(count, 100_000)))
        for _ in 0..<count {
            let delta = try reader.readUInt32()
            let timestamp = Timestamp(milliseconds: try reader.readUInt64())
            let keyLength = try reader.readUInt32()
            let key = keyLength == Self.noKey ? nil : try reader.readBytes(Int(keyLength))
            let value = try reader.readLengthPrefixed()
            entries.append(Entry(offsetDelta: delta, timestamp: timestamp, key: key, value: value))
        }
        guard reader.remaining == 0 else { throw StorageError(.corruptRecord, "topic batch has \(reader.remaining) trailing bytes") }
        self.entries = entries
    }
}
