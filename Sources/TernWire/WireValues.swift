import NIOCore
public import TernCore

/// The identity of an idempotent send: the producer, its epoch, and the sequence number of the
/// batch's first message in this producer's stream to this queue (the batch covers
/// `firstSequence ..< firstSequence + count`).
public struct WireProducerStamp: Sendable, Hashable {
    public var producerID: UInt64
    public var epoch: UInt32
    public var firstSequence: UInt64

    public init(producerID: UInt64, epoch: UInt32, firstSequence: UInt64) {
        self.producerID = producerID
        self.epoch = epoch
        self.firstSequence = firstSequence
    }
}

/// Everything one transaction does, applied by `CommitTransaction` in one LMDB transaction.
public struct WireTransaction: Sendable, Hashable {
    /// Messages for one queue.
    public struct Send: Sendable, Hashable {
        public var queue: String
        public var messages: [OutgoingMessage]
        public init(queue: String, messages: [OutgoingMessage]) {
            self.queue = queue
            self.messages = messages
        }
    }

    /// Records for one topic, routed by the broker as `Produce` routes them.
    public struct TopicProduce: Sendable, Hashable {
        public var topic: String
        public var messages: [TopicMessage]
        public init(topic: String, messages: [TopicMessage]) {
            self.topic = topic
            self.messages = messages
        }
    }

    /// A delivery to acknowledge.
    public struct Acknowledgement: Sendable, Hashable {
        public var queue: String
        public var receiptHandle: String
        public init(queue: String, receiptHandle: String) {
            self.queue = queue
            self.receiptHandle = receiptHandle
        }
    }

    /// A consumer group's committed offset of one topic partition (the next offset to
    /// consume). `member` is the committing member's id and generation; without it the broker
    /// accepts the commit only while the group has no members.
    public struct OffsetCommit: Sendable, Hashable {
        public var topic: String
        public var group: String
        public var partition: UInt32
        public var offset: UInt64
        public var member: (id: String, generation: UInt32)? {
            get { memberID.map { ($0, generation) } }
            set {
                memberID = newValue?.id
                generation = newValue?.generation ?? 0
            }
        }
        public private(set) var memberID: String?
        public private(set) var generation: UInt32 = 0
        public init(topic: String, group: String, partition: UInt32, offset: UInt64, member: (id: String, generation: UInt32)? = nil) {
            self.topic = topic
            self.group = group
            self.partition = partition
            self.offset = offset
            self.member = member
        }
    }

    public var producerID: UInt64
    public var epoch: UInt32
    /// 1 for the producer's first transaction, then one more per committed transaction. Resending
    /// the last committed sequence returns its original result and applies nothing.
    public var transactionSequence: UInt64
    public var sends: [Send]
    public var acknowledgements: [Acknowledgement]
    public var offsets: [OffsetCommit]
    /// Topic produces, applied after the queue sends.
    public var produces: [TopicProduce]

    public init(producerID: UInt64, epoch: UInt32, transactionSequence: UInt64, sends: [Send] = [],
                acknowledgements: [Acknowledgement] = [], offsets: [OffsetCommit] = [], produces: [TopicProduce] = []) {
        self.producerID = producerID
        self.epoch = epoch
        self.transactionSequence = transactionSequence
        self.sends = sends
        self.acknowledgements = acknowledgements
        self.offsets = offsets
        self.produces = produces
    }
}

// MARK: - Value codecs

extension ByteBuffer {
    mutating func writeOutgoing(_ message: OutgoingMessage) {
        writeWireBytes(message.body)
        writeInteger(message.priority)
        writeWireOptional(message.delay) { $0.writeInteger(UInt32(clamping: $1)) }
        writeWireOptional(message.groupID) { $0.writeWireString($1) }
        writeWireOptional(message.deduplicationID) { $0.writeWireString($1) }
    }

    mutating func writeSent(_ sent: SentMessage) {
        writeInteger(sent.id.high)
        writeInteger(sent.id.low)
        writeInteger(sent.sequence)
        writeInteger(sent.visibleAt.milliseconds)
    }

    mutating func writeReceived(_ message: ReceivedMessage) {
        writeInteger(message.id.high)
        writeInteger(message.id.low)
        writeWireBytes(message.body)
        writeWireString(message.receiptHandle)
        writeInteger(message.receiveCount)
        writeInteger(message.priority)
        writeInteger(message.sentAt.milliseconds)
    }

    mutating func writePatch(_ patch: QueueAttributes.Patch) {
        func plain(_ value: Int?) {
            writeWireOptional(value) { $0.writeInteger(UInt32(clamping: $1)) }
        }
        func triState<T>(_ value: T??, _ body: (inout ByteBuffer, T) -> Void) {
            switch value {
            case .none: writeInteger(UInt8(0))
            case .some(.some(let inner)):
                writeInteger(UInt8(1))
                body(&self, inner)
            case .some(.none): writeInteger(UInt8(2))
            }
        }
        plain(patch.visibilityTimeout)
        plain(patch.retention)
        plain(patch.maxMessageBytes)
        plain(patch.delay)
        triState(patch.maxReceiveCount) { $0.writeInteger(UInt32(clamping: $1)) }
        triState(patch.deadLetterQueue) { $0.writeWireString($1.rawValue) }
        writeWireOptional(patch.fifo) { $0.writeWireBool($1) }
        triState(patch.maxMessages) { $0.writeInteger(UInt64(clamping: $1)) }
        triState(patch.maxBytes) { $0.writeInteger(UInt64(clamping: $1)) }
        writeWireOptional(patch.contentBasedDeduplication) { $0.writeWireBool($1) }
        writeWireOptional(patch.overflow) { $0.writeInteger($1.wireValue) }
    }

    mutating func writeQueueInfo(_ info: QueueInfo) {
        writeWireString(info.name.rawValue)
        let a = info.attributes
        writeInteger(UInt32(clamping: a.visibilityTimeout))
        writeInteger(UInt32(clamping: a.retention))
        writeInteger(UInt32(clamping: a.maxMessageBytes))
        writeInteger(UInt32(clamping: a.delay))
        writeWireOptional(a.maxReceiveCount) { $0.writeInteger(UInt32(clamping: $1)) }
        writeWireOptional(a.deadLetterQueue) { $0.writeWireString($1.rawValue) }
        writeWireBool(a.fifo)
        writeWireOptional(a.maxMessages) { $0.writeInteger(UInt64(clamping: $1)) }
        writeWireOptional(a.maxBytes) { $0.writeInteger(UInt64(clamping: $1)) }
        writeWireBool(a.contentBasedDeduplication)
        writeInteger(a.overflow.wireValue)
        writeInteger(info.counts.ready)
        writeInteger(info.counts.inFlight)
        writeInteger(info.counts.delayed)
        writeInteger(info.counts.bytes)
        writeInteger(info.createdAt.milliseconds)
        writeWireOptional(info.oldestSentAt) { $0.writeInteger($1.milliseconds) }
    }
}

extension WireReader {
    /// Reads a name and validates it; an invalid name throws `code` (``ErrorCode/invalidFrame``
    /// by default; request fields that the broker would reject use a code that keeps the
    /// connection open).
    mutating func readQueueName(_ field: StaticString = "queue name", code: ErrorCode = .invalidFrame) throws(TernError) -> QueueName {
        let raw = try readString(field)
        do { return try QueueName(raw) } catch {
            throw TernError(code, "\(field) \"\(raw)\" is not a valid name")
        }
    }

    mutating func readOutgoing() throws(TernError) -> OutgoingMessage {
        let body = try readBytes("message body")
        let priority: UInt8 = try read(UInt8.self, "priority")
        let delay = try readOptional("delay") { (r: inout WireReader) throws(TernError) in Int(try r.read(UInt32.self, "delay")) }
        let groupID = try readOptional("group id") { (r: inout WireReader) throws(TernError) in try r.readString("group id") }
        let deduplicationID = try readOptional("deduplication id") { (r: inout WireReader) throws(TernError) in try r.readString("deduplication id") }
        return OutgoingMessage(body: body, priority: priority, delay: delay, groupID: groupID, deduplicationID: deduplicationID)
    }

    mutating func readSent() throws(TernError) -> SentMessage {
        let id = MessageID(high: try read(UInt64.self, "message id"), low: try read(UInt64.self, "message id"))
        let sequence: UInt64 = try read(UInt64.self, "sequence")
        let visibleAt = Timestamp(milliseconds: try read(UInt64.self, "visible at"))
        return SentMessage(id: id, sequence: sequence, visibleAt: visibleAt)
    }

    mutating func readReceived() throws(TernError) -> ReceivedMessage {
        let id = MessageID(high: try read(UInt64.self, "message id"), low: try read(UInt64.self, "message id"))
        let body = try readBytes("message body")
        let handle = try readString("receipt handle")
        let receiveCount: UInt32 = try read(UInt32.self, "receive count")
        let priority: UInt8 = try read(UInt8.self, "priority")
        let sentAt = Timestamp(milliseconds: try read(UInt64.self, "sent at"))
        return ReceivedMessage(id: id, body: body, receiptHandle: handle, receiveCount: receiveCount, priority: priority, sentAt: sentAt)
    }

    mutating func readPatch() throws(TernError) -> QueueAttributes.Patch {
        var patch = QueueAttributes.Patch()
        func plain(_ field: StaticString) throws(TernError) -> Int? {
            try readOptional(field) { (r: inout WireReader) throws(TernError) in Int(try r.read(UInt32.self, field)) }
        }
        func triState<T>(_ field: StaticString, _ body: (inout WireReader) throws(TernError) -> T) throws(TernError) -> T?? {
            let marker: UInt8 = try read(UInt8.self, field)
            switch marker {
            case 0: return .none
            case 1: return .some(try body(&self))
            case 2: return .some(.none)
            default: throw TernError(.invalidFrame, "\(field) marker must be 0, 1 or 2, got \(marker)")
            }
        }
        patch.visibilityTimeout = try plain("visibility_timeout")
        patch.retention = try plain("retention")
        patch.maxMessageBytes = try plain("max_message_bytes")
        patch.delay = try plain("delay")
        patch.maxReceiveCount = try triState("max_receive_count") { (r: inout WireReader) throws(TernError) in Int(try r.read(UInt32.self, "max_receive_count")) }
        patch.deadLetterQueue = try triState("dead_letter_queue") { (r: inout WireReader) throws(TernError) in try r.readQueueName("dead_letter_queue", code: .invalidAttribute) }
        patch.fifo = try readOptional("fifo") { (r: inout WireReader) throws(TernError) in try r.readBool("fifo") }
        patch.maxMessages = try triState("max_messages") { (r: inout WireReader) throws(TernError) in Int(clamping: try r.read(UInt64.self, "max_messages")) }
        patch.maxBytes = try triState("max_bytes") { (r: inout WireReader) throws(TernError) in Int(clamping: try r.read(UInt64.self, "max_bytes")) }
        patch.contentBasedDeduplication = try readOptional("content_based_deduplication") { (r: inout WireReader) throws(TernError) in
            try r.readBool("content_based_deduplication")
        }
        patch.overflow = try readOptional("overflow") { (r: inout WireReader) throws(TernError) in try r.readOverflow() }
        return patch
    }

    mutating func readQueueInfo() throws(TernError) -> QueueInfo {
        let name = try readQueueName()
        var a = QueueAttributes()
        a.visibilityTimeout = Int(try read(UInt32.self, "visibility_timeout"))
        a.retention = Int(try read(UInt32.self, "retention"))
        a.maxMessageBytes = Int(try read(UInt32.self, "max_message_bytes"))
        a.delay = Int(try read(UInt32.self, "delay"))
        a.maxReceiveCount = try readOptional("max_receive_count") { (r: inout WireReader) throws(TernError) in Int(try r.read(UInt32.self, "max_receive_count")) }
        a.deadLetterQueue = try readOptional("dead_letter_queue") { (r: inout WireReader) throws(TernError) in try r.readQueueName("dead_letter_queue") }
        a.fifo = try readBool("fifo")
        a.maxMessages = try readOptional("max_messages") { (r: inout WireReader) throws(TernError) in Int(clamping: try r.read(UInt64.self, "max_messages")) }
        a.maxBytes = try readOptional("max_bytes") { (r: inout WireReader) throws(TernError) in Int(clamping: try r.read(UInt64.self, "max_bytes")) }
        a.contentBasedDeduplication = try readBool("content_based_deduplication")
        a.overflow = try readOverflow()
        var counts = QueueCounts()
        counts.ready = try read(UInt64.self, "ready")
        counts.inFlight = try read(UInt64.self, "in_flight")
        counts.delayed = try read(UInt64.self, "delayed")
        counts.bytes = try read(UInt64.self, "bytes")
        let createdAt = Timestamp(milliseconds: try read(UInt64.self, "created at"))
        let oldest = try readOptional("oldest sent at") { (r: inout WireReader) throws(TernError) in Timestamp(milliseconds: try r.read(UInt64.self, "oldest sent at")) }
        return QueueInfo(name: name, attributes: a, counts: counts, createdAt: createdAt, oldestSentAt: oldest)
    }
}

extension QueueAttributes.Overflow {
    /// u8 on the wire: 0 reject, 1 drop oldest.
    var wireValue: UInt8 {
        switch self {
        case .reject: 0
        case .dropOldest: 1
        }
    }
}

extension WireReader {
    mutating func readOverflow() throws(TernError) -> QueueAttributes.Overflow {
        let value: UInt8 = try read(UInt8.self, "overflow")
        switch value {
        case 0: return .reject
        case 1: return .dropOldest
        default: throw TernError(.invalidFrame, "overflow must be 0 (reject) or 1 (drop oldest), got \(value)")
        }
    }
}
