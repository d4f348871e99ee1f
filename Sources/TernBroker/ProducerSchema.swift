public import TernCore
public import TernStorage

/// The LMDB layout of idempotent producers and transactions (databases appended to
/// ``QueueSchema/databaseNames``; `docs/storage.md` lists them too).
///
/// | database | key (big-endian) | value |
/// |---|---|---|
/// | `producers` | producer id u64 | ``ProducerRecord`` |
/// | `producer_sequences` | producer id u64, queue id u32; or producer id u64, `T`, topic id u32 | ``ProducerSequences`` / ``TopicProducerSequences`` |
/// | `transactional_ids` | transactional id (UTF-8) | producer id u64 |
///
/// `meta` holds `next_producer_id` (u64).
public enum ProducerSchema {
    public static let databaseNames = ["producers", "producer_sequences", "transactional_ids"]
    /// How many recent batches per producer and queue are remembered for duplicate detection
    /// (Kafka remembers 5, the most a producer may have in flight).
    public static let rememberedBatches = 5
    /// The longest transactional id, in UTF-8 bytes.
    public static let maxTransactionalIDBytes = 255

    public static func producerKey(_ id: UInt64) -> [UInt8] {
        var writer = BigEndianWriter(capacity: 8)
        writer.write(id)
        return writer.bytes
    }

    public static func sequencesKey(producer: UInt64, queue: UInt32) -> [UInt8] {
        var writer = BigEndianWriter(capacity: 12)
        writer.write(producer)
        writer.write(queue)
        return writer.bytes
    }
}

/// One stored batch as a duplicate needs it to be answered with the original result: the
/// message ids are derived from `idSeed` (see ``ProducerBatch/messageID(at:)``), the sequences are
/// consecutive from `firstQueueSequence`.
///
/// Layout (big-endian): queue id u32, first producer sequence u64, count u32, first queue
/// sequence u64, sent at ms u64, id seed u64 (40 bytes).
public struct ProducerBatch: Sendable, Hashable {
    public var queue: UInt32
    public var firstSequence: UInt64
    public var count: UInt32
    public var firstQueueSequence: UInt64
    public var sentAt: Timestamp
    public var idSeed: UInt64

    public init(queue: UInt32, firstSequence: UInt64, count: UInt32, firstQueueSequence: UInt64, sentAt: Timestamp, idSeed: UInt64) {
        self.queue = queue
        self.firstSequence = firstSequence
        self.count = count
        self.firstQueueSequence = firstQueueSequence
        self.sentAt = sentAt
        self.idSeed = idSeed
    }

    /// The id of the batch's `index`-th message: UUIDv7 layout (48 bits of `sentAt` in ms,
    /// version 7, variant 10) with the random bits drawn from `idSeed` by SplitMix64 (Steele,
    /// Lea & Flood 2014), so a duplicate is answered with the same ids without storing them.
    public func messageID(at index: Int) -> MessageID {
        Self.messageID(seed: idSeed, index: index, at: sentAt)
    }

    public static func messageID(seed: UInt64, index: Int, at time: Timestamp) -> MessageID {
        func mix(_ value: UInt64) -> UInt64 {
            var z = value &+ 0x9E37_79B9_7F4A_7C15
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let first = mix(seed &+ UInt64(index) &* 2)
        let second = mix(seed &+ UInt64(index) &* 2 &+ 1)
        let high = (time.milliseconds << 16) | 0x7000 | (first & 0x0FFF)
        let low = (second & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
        return MessageID(high: high, low: low)
    }

    /// The results of the batch's sends; `delays` are the messages' delays in seconds.
    func results(delays: [Int]) -> [SentMessage] {
        (0..<Int(count)).map { index in
            SentMessage(id: messageID(at: index), sequence: firstQueueSequence + UInt64(index),
                        visibleAt: sentAt.adding(seconds: index < delays.count ? delays[index] : 0))
        }
    }

    public func write(to writer: inout BigEndianWriter) {
        writer.write(queue)
        writer.write(firstSequence)
        writer.write(count)
        writer.write(firstQueueSequence)
        writer.write(sentAt.milliseconds)
        writer.write(idSeed)
    }

    public init(reading reader: inout BigEndianReader) throws(StorageError) {
        queue = try reader.readUInt32()
        firstSequence = try reader.readUInt64()
        count = try reader.readUInt32()
        firstQueueSequence = try reader.readUInt64()
        sentAt = Timestamp(milliseconds: try reader.readUInt64())
        idSeed = try reader.readUInt64()
    }
}

/// A producer: its current epoch, its transactional id, when it was last active, and its
/// last committed transaction (to answer a retried commit).
///
/// Payload inside the ``RecordCodec`` envelope (big-endian): epoch u32, last activity ms u64,
/// transaction sequence u64, transactional id (u32 length + UTF-8, empty = none), count u32 and
/// the ``ProducerBatch``es of the last committed transaction; then, when the transaction
/// produced to topics, count u32 and its ``TopicProducerBatch``es (absent in records written
/// before topics joined transactions: read as none).
public struct ProducerRecord: Sendable, Hashable {
    public var epoch: UInt32
    public var lastActivity: Timestamp
    /// The sequence of the last committed transaction in this epoch (0 = none yet).
    public var transactionSequence: UInt64
    public var transactionalID: String?
    public var lastTransaction: [ProducerBatch]
    /// The topic produces of the last committed transaction, in order (first sequence unused).
    public var lastTopicTransaction: [TopicProducerBatch]

    public init(epoch: UInt32, lastActivity: Timestamp, transactionalID: String?) {
        self.epoch = epoch
        self.lastActivity = lastActivity
        self.transactionSequence = 0
        self.transactionalID = transactionalID
        self.lastTransaction = []
        self.lastTopicTransaction = []
    }

    public func encoded() -> [UInt8] {
        var writer = BigEndianWriter(capacity: 64)
        writer.write(epoch)
        writer.write(lastActivity.milliseconds)
        writer.write(transactionSequence)
        writer.writeLengthPrefixed(Array((transactionalID ?? "").utf8))
        writer.write(UInt32(lastTransaction.count))
        for batch in lastTransaction { batch.write(to: &writer) }
        if !lastTopicTransaction.isEmpty {
            writer.write(UInt32(lastTopicTransaction.count))
            for batch in lastTopicTransaction { batch.write(to: &writer) }
        }
        return RecordCodec.encode(writer.bytes, compression: .never)
    }

    /// - Throws: ``StorageError/Code/corruptRecord`` when the record fails its checks.
    public init(decoding record: [UInt8]) throws(StorageError) {
        var reader = BigEndianReader(try RecordCodec.decode(record))
        lastTopicTransaction = []
        epoch = try reader.readUInt32()
        lastActivity = Timestamp(milliseconds: try reader.readUInt64())
        transactionSequence = try reader.readUInt64()
        let id = try reader.readLengthPrefixed()
        transactionalID = id.isEmpty ? nil : String(decoding: id, as: UTF8.self)
        let count = try reader.readUInt32()
        lastTransaction = []
        for _ in 0..<count { lastTransaction.append(try ProducerBatch(reading: &reader)) }
        if reader.remaining > 0 {
            let topicCount = try reader.readUInt32()
            guard Int(topicCount) <= reader.remaining / 24 else { throw StorageError(.corruptRecord, "producer record announces \(topicCount) topic batches") }
            for _ in 0..<topicCount { lastTopicTransaction.append(try TopicProducerBatch(reading: &reader)) }
        }
        guard reader.remaining == 0 else { throw StorageError(.corruptRecord, "producer record has trailing bytes") }
    }
}

/// A remembered batch of a producer's sequence state, with its record layout.
public protocol SequencedBatch: Sendable, Hashable {
    func write(to writer: inout BigEndianWriter)
    init(reading reader: inout BigEndianReader) throws(StorageError)
}

extension ProducerBatch: SequencedBatch {}
extension TopicProducerBatch: SequencedBatch {}

/// The sequence state of one producer on one queue (``ProducerSequences``) or one topic
/// (``TopicProducerSequences``): the epoch it belongs to, the next expected sequence, and the
/// last ``ProducerSchema/rememberedBatches`` batches.
///
/// Payload: epoch u32, next sequence u64, count u32, batches.
public struct SequenceState<Batch: SequencedBatch>: Sendable, Hashable {
    public var epoch: UInt32
    public var nextSequence: UInt64
    public var recent: [Batch]

    public init(epoch: UInt32) {
        self.epoch = epoch
        self.nextSequence = 0
        self.recent = []
    }

    public func encoded() -> [UInt8] {
        var writer = BigEndianWriter(capacity: 16 + recent.count * 40)
        writer.write(epoch)
        writer.write(nextSequence)
        writer.write(UInt32(recent.count))
        for batch in recent { batch.write(to: &writer) }
        return RecordCodec.encode(writer.bytes, compression: .never)
    }

    /// - Throws: ``StorageError/Code/corruptRecord`` when the record fails its checks.
    public init(decoding record: [UInt8]) throws(StorageError) {
        var reader = BigEndianReader(try RecordCodec.decode(record))
        epoch = try reader.readUInt32()
        nextSequence = try reader.readUInt64()
        let count = try reader.readUInt32()
        guard Int(count) <= ProducerSchema.rememberedBatches else { throw StorageError(.corruptRecord, "producer sequences hold \(count) batches") }
        recent = []
        for _ in 0..<count { recent.append(try Batch(reading: &reader)) }
        guard reader.remaining == 0 else { throw StorageError(.corruptRecord, "producer sequences have trailing bytes") }
    }
}

/// A producer's sequence state on one queue.
public typealias ProducerSequences = SequenceState<ProducerBatch>

/// A producer's sequence state on one topic (the topic is the unit: a produce request is applied
/// to all its partitions in one transaction).
public typealias TopicProducerSequences = SequenceState<TopicProducerBatch>

extension ProducerSchema {
    /// The key of a producer's sequence state on a topic: producer id u64, the byte `T`, topic
    /// id u32 (13 bytes, so it never equals a queue's 12-byte key).
    public static func topicSequencesKey(producer: UInt64, topic: UInt32) -> [UInt8] {
        var writer = BigEndianWriter(capacity: 13)
        writer.write(producer)
        writer.write(UInt8(ascii: "T"))
        writer.write(topic)
        return writer.bytes
    }
}

/// One idempotent produce to a topic, as a duplicate needs it to be answered with the original
/// offsets: the base offset each partition got, and the partition keyless messages went to
/// (keyed messages and explicit partitions route the same way again).
///
/// Layout (big-endian): first sequence u64, count u32, sticky partition i32 (−1 = none),
/// partition count u32, then (partition u32, base offset u64) each.
public struct TopicProducerBatch: Sendable, Hashable {
    public var firstSequence: UInt64
    public var count: UInt32
    public var stickyPartition: Int?
    public var bases: [Int: UInt64]

    public init(firstSequence: UInt64, count: UInt32, stickyPartition: Int?, bases: [Int: UInt64]) {
        self.firstSequence = firstSequence
        self.count = count
        self.stickyPartition = stickyPartition
        self.bases = bases
    }

    public func write(to writer: inout BigEndianWriter) {
        writer.write(firstSequence)
        writer.write(count)
        writer.write(UInt32(bitPattern: Int32(stickyPartition ?? -1)))
        writer.write(UInt32(bases.count))
        for (partition, base) in bases.sorted(by: { $0.key < $1.key }) {
            writer.write(UInt32(partition))
            writer.write(base)
        }
    }

    public init(reading reader: inout BigEndianReader) throws(StorageError) {
        firstSequence = try reader.readUInt64()
        count = try reader.readUInt32()
        let sticky = Int32(bitPattern: try reader.readUInt32())
        stickyPartition = sticky < 0 ? nil : Int(sticky)
        let partitions = try reader.readUInt32()
        guard Int(partitions) <= reader.remaining / 12 else { throw StorageError(.corruptRecord, "topic producer batch announces \(partitions) partitions") }
        bases = [:]
        for _ in 0..<partitions { bases[Int(try reader.readUInt32())] = try reader.readUInt64() }
    }
}
