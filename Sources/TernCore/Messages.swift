/// A message to send to a queue.
public struct OutgoingMessage: Sendable, Hashable {
    /// The body, exactly as it will be delivered (UTF-8 bytes of the JSON string).
    public var body: [UInt8]
    /// 0–9, higher first; default 0.
    public var priority: UInt8
    /// Seconds before the message becomes receivable; nil = the queue's `delay`.
    public var delay: Int?
    /// FIFO queues: the message group (1–128 bytes; required there, refused elsewhere).
    public var groupID: String?
    /// FIFO queues: the deduplication id (1–128 bytes); nil = content-based when the queue has it.
    public var deduplicationID: String?
    /// Typed attributes stored with the message and delivered with it; empty by default.
    public var attributes: [MessageAttribute]

    public init(body: [UInt8], priority: UInt8 = 0, delay: Int? = nil, groupID: String? = nil, deduplicationID: String? = nil,
                attributes: [MessageAttribute] = []) {
        self.body = body
        self.priority = priority
        self.delay = delay
        self.groupID = groupID
        self.deduplicationID = deduplicationID
        self.attributes = attributes
    }

    /// The highest priority.
    public static let maxPriority: UInt8 = 9
}

/// The result of one accepted send.
public struct SentMessage: Sendable, Hashable {
    public var id: MessageID
    /// The per-queue sequence number the message was stored under.
    public var sequence: UInt64
    /// When the message becomes receivable (the send time when it has no delay).
    public var visibleAt: Timestamp
    /// FIFO queues: the message was a duplicate within the deduplication window; `id`,
    /// `sequence` and `visibleAt` are the original's and nothing was stored.
    public var duplicate: Bool

    public init(id: MessageID, sequence: UInt64, visibleAt: Timestamp, duplicate: Bool = false) {
        self.id = id
        self.sequence = sequence
        self.visibleAt = visibleAt
        self.duplicate = duplicate
    }
}

/// A message handed to a consumer by a receive.
public struct ReceivedMessage: Sendable, Hashable {
    public var id: MessageID
    public var body: [UInt8]
    /// The handle that acknowledges or changes the visibility of this delivery (and only this one).
    public var receiptHandle: String
    /// How many times the message has been delivered, this delivery included.
    public var receiveCount: UInt32
    public var priority: UInt8
    public var sentAt: Timestamp
    /// The attributes it was sent with (see ``OutgoingMessage/attributes``).
    public var attributes: [MessageAttribute]
    /// The per-queue sequence number it is stored under (increasing in send order within a
    /// queue; a message moved to another queue gets that queue's next number); 0 when unknown.
    public var sequence: UInt64
    /// When it was first delivered (this delivery when ``receiveCount`` is 1); nil when the
    /// stored record predates the field.
    public var firstReceivedAt: Timestamp?

    public init(id: MessageID, body: [UInt8], receiptHandle: String, receiveCount: UInt32, priority: UInt8, sentAt: Timestamp,
                attributes: [MessageAttribute] = [], sequence: UInt64 = 0, firstReceivedAt: Timestamp? = nil) {
        self.id = id
        self.body = body
        self.receiptHandle = receiptHandle
        self.receiveCount = receiveCount
        self.priority = priority
        self.sentAt = sentAt
        self.attributes = attributes
        self.sequence = sequence
        self.firstReceivedAt = firstReceivedAt
    }
}

/// A queue as described by list and describe calls.
public struct QueueInfo: Sendable, Hashable {
    public var name: QueueName
    public var attributes: QueueAttributes
    public var counts: QueueCounts
    public var createdAt: Timestamp
    /// Send time of the oldest message in the queue (any state), nil when empty.
    public var oldestSentAt: Timestamp?

    public init(name: QueueName, attributes: QueueAttributes, counts: QueueCounts, createdAt: Timestamp, oldestSentAt: Timestamp?) {
        self.name = name
        self.attributes = attributes
        self.counts = counts
        self.createdAt = createdAt
        self.oldestSentAt = oldestSentAt
    }
}

extension QueueAttributes {
    /// A partial change of attributes: nil leaves a value as it is; `.some(nil)` for the optional
    /// attributes turns them off.
    public struct Patch: Sendable, Hashable {
        public var visibilityTimeout: Int?
        public var retention: Int?
        public var maxMessageBytes: Int?
        public var delay: Int?
        public var maxReceiveCount: Int??
        public var deadLetterQueue: QueueName??
        public var fifo: Bool?
        public var maxMessages: Int??
        public var maxBytes: Int??
        public var contentBasedDeduplication: Bool?
        public var overflow: QueueAttributes.Overflow?

        public init() {}

        /// `base` with this patch applied.
        public func applied(to base: QueueAttributes) -> QueueAttributes {
            var result = base
            if let visibilityTimeout { result.visibilityTimeout = visibilityTimeout }
            if let retention { result.retention = retention }
            if let maxMessageBytes { result.maxMessageBytes = maxMessageBytes }
            if let delay { result.delay = delay }
            if let maxReceiveCount { result.maxReceiveCount = maxReceiveCount }
            if let deadLetterQueue { result.deadLetterQueue = deadLetterQueue }
            if let fifo { result.fifo = fifo }
            if let maxMessages { result.maxMessages = maxMessages }
            if let maxBytes { result.maxBytes = maxBytes }
            if let contentBasedDeduplication { result.contentBasedDeduplication = contentBasedDeduplication }
            if let overflow { result.overflow = overflow }
            return result
        }
    }
}
