public import TernCore
public import TernStorage

/// The LMDB layout of queues: which named databases exist and how their keys and values are
/// encoded. `docs/storage.md` documents the same layout for operators and `tern-lmdb`.
///
/// | database | key (big-endian) | value |
/// |---|---|---|
/// | `meta` | ASCII name | u32/u64 counters (`next_queue_id`) |
/// | `queue_names` | queue name (UTF-8) | queue id u32 |
/// | `queues` | queue id u32 | ``QueueRecord`` |
/// | `messages` | queue id u32, partition u32, sequence u64 | ``MessageHeader`` |
/// | `bodies` | queue id u32, partition u32, sequence u64 | ``MessageBody``: body (and attributes), snappy when it pays |
/// | `ready` | queue id u32, 9 − priority u8, sequence u64 | empty |
/// | `inflight` | deadline ms u64, queue id u32, sequence u64 | empty |
/// | `delayed` | due time ms u64, queue id u32, sequence u64 | empty |
/// | `queue_metadata` | queue id u32 | ``QueueMetadata`` (tags, front-end attributes) |
public enum QueueSchema {
    public static let databaseNames = ["meta", "queue_names", "queues", "messages", "bodies", "ready", "inflight", "delayed",
                                       "producers", "producer_sequences", "transactional_ids"]
        + FifoSchema.databaseNames + [metadataDatabase, DeletedQueueNames.database]
    /// The database of ``QueueMetadata`` records.
    public static let metadataDatabase = "queue_metadata"

    /// Queues have a single partition; the key keeps the field so that queues and topic
    /// partitions share one key layout.
    public static let partition: UInt32 = 0

    public static func messageKey(queue: UInt32, sequence: UInt64) -> [UInt8] {
        var writer = BigEndianWriter(capacity: 16)
        writer.write(queue)
        writer.write(partition)
        writer.write(sequence)
        return writer.bytes
    }

    public static func queuePrefix(_ queue: UInt32) -> [UInt8] {
        var writer = BigEndianWriter(capacity: 4)
        writer.write(queue)
        return writer.bytes
    }

    /// Decodes a `messages`/`bodies` key into (queue id, partition, sequence).
    public static func decodeMessageKey(_ key: [UInt8]) throws(StorageError) -> (queue: UInt32, partition: UInt32, sequence: UInt64) {
        var reader = BigEndianReader(key)
        return (try reader.readUInt32(), try reader.readUInt32(), try reader.readUInt64())
    }

    public static func readyKey(queue: UInt32, priority: UInt8, sequence: UInt64) -> [UInt8] {
        var writer = BigEndianWriter(capacity: 13)
        writer.write(queue)
        writer.write(OutgoingMessage.maxPriority - min(priority, OutgoingMessage.maxPriority))
        writer.write(sequence)
        return writer.bytes
    }

    public static func decodeReadyKey(_ key: [UInt8]) throws(StorageError) -> (queue: UInt32, priority: UInt8, sequence: UInt64) {
        var reader = BigEndianReader(key)
        let queue = try reader.readUInt32()
        let inverted = try reader.readUInt8()
        return (queue, OutgoingMessage.maxPriority &- inverted, try reader.readUInt64())
    }

    /// Key of the `inflight` and `delayed` indexes: time first, so one cursor finds everything due.
    public static func timeKey(_ time: Timestamp, queue: UInt32, sequence: UInt64) -> [UInt8] {
        var writer = BigEndianWriter(capacity: 20)
        writer.write(time.milliseconds)
        writer.write(queue)
        writer.write(sequence)
        return writer.bytes
    }

    public static func decodeTimeKey(_ key: [UInt8]) throws(StorageError) -> (time: Timestamp, queue: UInt32, sequence: UInt64) {
        var reader = BigEndianReader(key)
        return (Timestamp(milliseconds: try reader.readUInt64()), try reader.readUInt32(), try reader.readUInt64())
    }

    public static func queueIDKey(_ queue: UInt32) -> [UInt8] { queuePrefix(queue) }
}

/// The state a queued message is in.
public enum MessageState: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case ready = 0
    case inFlight = 1
    case delayed = 2

    public var description: String {
        switch self {
        case .ready: "ready"
        case .inFlight: "in_flight"
        case .delayed: "delayed"
        }
    }
}

/// The small, frequently rewritten part of a stored message (the body lives in `bodies`, so a
/// receive or visibility change rewrites ~70 bytes, not the body).
///
/// Payload layout inside the ``RecordCodec`` envelope (big-endian): id 16 B, state u8,
/// priority u8, receive count u32, sent at ms u64, state deadline ms u64 (visibility deadline
/// when in flight, due time when delayed, 0 when ready), receipt nonce 16 B, body bytes u32,
/// dead-letter source queue id u32 (0 = none), first receive ms u64 (0 = never received;
/// absent in headers written before it was added, which read as 0).
public struct MessageHeader: Sendable, Hashable {
    public var id: MessageID
    public var state: MessageState
    public var priority: UInt8
    public var receiveCount: UInt32
    public var sentAt: Timestamp
    public var stateDeadline: Timestamp
    public var nonce: ReceiptNonce
    public var bodyBytes: UInt32
    public var deadLetterSource: UInt32
    /// When the message was first delivered; 0 ms = never (or before the field existed).
    public var firstReceivedAt = Timestamp(milliseconds: 0)

    static let payloadSize = 16 + 1 + 1 + 4 + 8 + 8 + 16 + 4 + 4 + 8

    public func encoded() -> [UInt8] {
        var writer = BigEndianWriter(capacity: Self.payloadSize)
        writer.write(id.high)
        writer.write(id.low)
        writer.write(state.rawValue)
        writer.write(priority)
        writer.write(receiveCount)
        writer.write(sentAt.milliseconds)
        writer.write(stateDeadline.milliseconds)
        writer.write(nonce.high)
        writer.write(nonce.low)
        writer.write(bodyBytes)
        writer.write(deadLetterSource)
        writer.write(firstReceivedAt.milliseconds)
        return RecordCodec.encode(writer.bytes, compression: .never)
    }

    /// - Throws: ``StorageError/Code/corruptRecord`` when the record fails its checks.
    public init(decoding record: [UInt8]) throws(StorageError) {
        try self.init(payload: try RecordCodec.decode(record))
    }

    /// Decodes a header in place (``Transaction/withValue(_:_:_:)``), without copying the record first.
    public init(decoding record: UnsafeRawBufferPointer) throws(StorageError) {
        try self.init(payload: try RecordCodec.decode(record))
    }

    private init(payload: [UInt8]) throws(StorageError) {
        var reader = BigEndianReader(payload)
        id = MessageID(high: try reader.readUInt64(), low: try reader.readUInt64())
        let rawState = try reader.readUInt8()
        guard let state = MessageState(rawValue: rawState) else {
            throw StorageError(.corruptRecord, "unknown message state \(rawState)")
        }
        self.state = state
        priority = try reader.readUInt8()
        receiveCount = try reader.readUInt32()
        sentAt = Timestamp(milliseconds: try reader.readUInt64())
        stateDeadline = Timestamp(milliseconds: try reader.readUInt64())
        nonce = ReceiptNonce(high: try reader.readUInt64(), low: try reader.readUInt64())
        bodyBytes = try reader.readUInt32()
        deadLetterSource = try reader.readUInt32()
        if reader.remaining > 0 { firstReceivedAt = Timestamp(milliseconds: try reader.readUInt64()) }
        guard reader.remaining == 0 else { throw StorageError(.corruptRecord, "message header has \(reader.remaining) trailing bytes") }
    }

    public init(id: MessageID, state: MessageState, priority: UInt8, receiveCount: UInt32, sentAt: Timestamp,
                stateDeadline: Timestamp, nonce: ReceiptNonce, bodyBytes: UInt32, deadLetterSource: UInt32) {
        self.id = id
        self.state = state
        self.priority = priority
        self.receiveCount = receiveCount
        self.sentAt = sentAt
        self.stateDeadline = stateDeadline
        self.nonce = nonce
        self.bodyBytes = bodyBytes
        self.deadLetterSource = deadLetterSource
    }
}

/// The value of a `bodies` record: the message body and its attributes.
///
/// A message without attributes is stored as a version-1 ``RecordCodec`` record whose payload
/// is the body, exactly as before attributes existed. A message with attributes is stored as a
/// version-2 record whose payload is: attribute block length u32, the block (count u16, then per
/// attribute: kind u8 (0 user, 1 system), name, data type and value, each u32 length + bytes),
/// then the body. Both versions read back; the record moves byte for byte with its message (to a
/// dead-letter queue and back), so attributes stay with it.
public enum MessageBody {
    /// The ``RecordCodec`` version of a body record with attributes.
    public static let attributesVersion: UInt8 = 2

    /// The stored record of `body` with `attributes`, snappy-compressed when it pays.
    public static func encode(body: [UInt8], attributes: [MessageAttribute]) -> [UInt8] {
        guard !attributes.isEmpty else { return RecordCodec.encode(body) }
        var block = BigEndianWriter(capacity: 64)
        block.write(UInt16(attributes.count))
        for attribute in attributes {
            block.write(attribute.kind.rawValue)
            block.writeLengthPrefixed(Array(attribute.name.utf8))
            block.writeLengthPrefixed(Array(attribute.dataType.utf8))
            block.writeLengthPrefixed(attribute.value)
        }
        var writer = BigEndianWriter(capacity: 4 + block.bytes.count + body.count)
        writer.writeLengthPrefixed(block.bytes)
        writer.write(body)
        return RecordCodec.encode(writer.bytes, version: attributesVersion)
    }

    /// The body and attributes of a stored record (version 1: no attributes).
    /// - Throws: ``StorageError/Code/corruptRecord`` when the record fails its checks or its
    ///   attribute block is malformed.
    public static func decode(_ record: [UInt8]) throws(StorageError) -> (body: [UInt8], attributes: [MessageAttribute]) {
        let (version, payload) = try RecordCodec.decodeVersioned(record)
        return try decode(version: version, payload: payload)
    }

    /// ``decode(_:)`` of a record in place (``Transaction/withValue(_:_:_:)``): a body without
    /// attributes is copied once, straight from the map page.
    public static func decode(_ record: UnsafeRawBufferPointer) throws(StorageError) -> (body: [UInt8], attributes: [MessageAttribute]) {
        let (version, payload) = try RecordCodec.decodeVersioned(record)
        return try decode(version: version, payload: payload)
    }

    private static func decode(version: UInt8, payload: [UInt8]) throws(StorageError) -> (body: [UInt8], attributes: [MessageAttribute]) {
        guard version == attributesVersion else { return (payload, []) }
        var reader = BigEndianReader(payload)
        var block = BigEndianReader(try reader.readLengthPrefixed())
        let count = Int(try block.readUInt16())
        var attributes = [MessageAttribute]()
        attributes.reserveCapacity(count)
        for _ in 0..<count {
            let rawKind = try block.readUInt8()
            guard let kind = MessageAttribute.Kind(rawValue: rawKind) else {
                throw StorageError(.corruptRecord, "unknown message attribute kind \(rawKind)")
            }
            let name = String(decoding: try block.readLengthPrefixed(), as: UTF8.self)
            let dataType = String(decoding: try block.readLengthPrefixed(), as: UTF8.self)
            attributes.append(MessageAttribute(kind: kind, name: name, dataType: dataType, value: try block.readLengthPrefixed()))
        }
        guard block.remaining == 0 else { throw StorageError(.corruptRecord, "attribute block has \(block.remaining) trailing bytes") }
        return (try reader.readBytes(reader.remaining), attributes)
    }
}

/// The durable description and counters of one queue (database `queues`, keyed by queue id).
///
/// Payload: id u32, flags u8 (bit 0 = deleted, data being swept), created at ms u64, next
/// sequence u64, ready u64, in flight u64, delayed u64, bytes u64, name (u32 length + UTF-8),
/// then the attributes (see ``encodeAttributes``), then a flags byte (bit 0 = content-based
/// deduplication, bit 1 = overflow `drop_oldest`; absent in records written before FIFO queues),
/// then the purge watermark u64 (absent in records written before decision 112: 0).
public struct QueueRecord: Sendable, Hashable {
    public var id: UInt32
    public var name: QueueName
    public var deleted: Bool
    public var createdAt: Timestamp
    public var nextSequence: UInt64
    public var counts: QueueCounts
    public var attributes: QueueAttributes
    /// Messages with a lower sequence were purged (decision 112): gone for clients at once,
    /// not in ``counts``, removed by later ``Command/tick(limit:)``s; 0 = no purge.
    public var purgedBelow: UInt64 = 0

    /// Whether the message with `sequence` was purged (its records may still exist until swept).
    public func isPurged(_ sequence: UInt64) -> Bool { sequence < purgedBelow }

    public init(id: UInt32, name: QueueName, createdAt: Timestamp, attributes: QueueAttributes) {
        self.id = id
        self.name = name
        self.deleted = false
        self.createdAt = createdAt
        self.nextSequence = 1
        self.counts = QueueCounts()
        self.attributes = attributes
    }

    public func encoded() -> [UInt8] {
        var writer = BigEndianWriter(capacity: 96)
        writer.write(id)
        writer.write(UInt8(deleted ? 1 : 0))
        writer.write(createdAt.milliseconds)
        writer.write(nextSequence)
        writer.write(counts.ready)
        writer.write(counts.inFlight)
        writer.write(counts.delayed)
        writer.write(counts.bytes)
        writer.writeLengthPrefixed(Array(name.rawValue.utf8))
        let a = attributes
        writer.write(UInt32(a.visibilityTimeout))
        writer.write(UInt32(a.retention))
        writer.write(UInt32(a.maxMessageBytes))
        writer.write(UInt32(a.delay))
        writer.write(UInt32(a.maxReceiveCount ?? 0))
        writer.writeLengthPrefixed(Array((a.deadLetterQueue?.rawValue ?? "").utf8))
        writer.write(UInt8(a.fifo ? 1 : 0))
        writer.write(UInt64(a.maxMessages ?? 0))
        writer.write(UInt64(a.maxBytes ?? 0))
        // Added with FIFO queues and overflow policies; records written before lack the byte.
        writer.write(UInt8((a.contentBasedDeduplication ? 1 : 0) | (a.overflow == .dropOldest ? 2 : 0)))
        // Added with purge watermarks (decision 112); records written before lack it.
        if purgedBelow != 0 { writer.write(purgedBelow) }
        return RecordCodec.encode(writer.bytes, compression: .never)
    }

    /// - Throws: ``StorageError/Code/corruptRecord`` when the record fails its checks.
    public init(decoding record: [UInt8]) throws(StorageError) {
        var reader = BigEndianReader(try RecordCodec.decode(record))
        id = try reader.readUInt32()
        deleted = try reader.readUInt8() & 1 != 0
        createdAt = Timestamp(milliseconds: try reader.readUInt64())
        nextSequence = try reader.readUInt64()
        counts = QueueCounts()
        counts.ready = try reader.readUInt64()
        counts.inFlight = try reader.readUInt64()
        counts.delayed = try reader.readUInt64()
        counts.bytes = try reader.readUInt64()
        let nameBytes = try reader.readLengthPrefixed()
        do { name = try QueueName(String(decoding: nameBytes, as: UTF8.self)) } catch {
            throw StorageError(.corruptRecord, "stored queue name is invalid: \(error)")
        }
        var a = QueueAttributes()
        a.visibilityTimeout = Int(try reader.readUInt32())
        a.retention = Int(try reader.readUInt32())
        a.maxMessageBytes = Int(try reader.readUInt32())
        a.delay = Int(try reader.readUInt32())
        let maxReceiveCount = try reader.readUInt32()
        a.maxReceiveCount = maxReceiveCount == 0 ? nil : Int(maxReceiveCount)
        let dlq = try reader.readLengthPrefixed()
        if dlq.isEmpty {
            a.deadLetterQueue = nil
        } else {
            do { a.deadLetterQueue = try QueueName(String(decoding: dlq, as: UTF8.self)) } catch {
                throw StorageError(.corruptRecord, "stored dead-letter queue name is invalid: \(error)")
            }
        }
        a.fifo = try reader.readUInt8() != 0
        let maxMessages = try reader.readUInt64()
        a.maxMessages = maxMessages == 0 ? nil : Int(maxMessages)
        let maxBytes = try reader.readUInt64()
        a.maxBytes = maxBytes == 0 ? nil : Int(maxBytes)
        if reader.remaining > 0 {
            let flags = try reader.readUInt8()
            a.contentBasedDeduplication = flags & 1 != 0
            a.overflow = flags & 2 != 0 ? .dropOldest : .reject
        }
        if reader.remaining >= 8 { purgedBelow = try reader.readUInt64() }
        attributes = a
    }
}

/// The random part of a receipt handle: 128 bits decided by the broker before a receive is
/// applied, stored in the message header, and compared on ack. All-zero means "never received".
public struct ReceiptNonce: Hashable, Sendable {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    public static let none = ReceiptNonce(high: 0, low: 0)

    /// The nonce of the `index`-th message delivered by a receive whose seed is `seed`:
    /// SplitMix64 (Steele, Lea & Flood 2014) over `seed`, two values per message, so that one
    /// 64-bit seed in the receive command determines every handle it issues.
    public static func derive(seed: UInt64, index: Int) -> ReceiptNonce {
        var generator = BatchRandom(seed: seed &+ UInt64(truncatingIfNeeded: index) &* 0xD1B5_4A32_D192_ED03)
        return random(using: &generator)
    }

    public static func random(using generator: inout some RandomNumberGenerator) -> ReceiptNonce {
        var nonce = ReceiptNonce(high: generator.next(), low: generator.next())
        if nonce == .none { nonce.low = 1 }
        return nonce
    }
}
