/// The settings of one queue, with SQS's defaults and ranges. All durations are in whole seconds.
public struct QueueAttributes: Hashable, Sendable {
    /// How long a received message stays invisible before it is delivered again, in seconds.
    /// Default 30, range 0–43,200 (12 hours).
    public var visibilityTimeout: Int = 30
    /// How long a message is kept after it was sent, in seconds, counted from the send
    /// (downtime included). Default 604,800 (7 days), range 60–1,209,600 (14 days).
    public var retention: Int = 604_800
    /// The largest accepted body, in UTF-8 bytes. Default 1,048,576 (1 MiB), range 1–16,777,216.
    public var maxMessageBytes: Int = 1_048_576
    /// The default delay of a new message, in seconds. Default 0, range 0–retention.
    public var delay: Int = 0
    /// Deliveries after which an unacknowledged message moves to ``deadLetterQueue``; nil (the
    /// default) turns dead-lettering off. Range 1–1,000; set together with ``deadLetterQueue``.
    public var maxReceiveCount: Int? = nil
    /// The queue that receives messages delivered ``maxReceiveCount`` times. It must exist and
    /// differ from this queue.
    public var deadLetterQueue: QueueName? = nil
    /// Whether this is a FIFO queue (name must end in `.fifo`).
    public var fifo: Bool = false
    /// The most messages the queue holds (ready, delayed and in flight); nil = unlimited.
    public var maxMessages: Int? = nil
    /// The most body bytes the queue holds; nil = unlimited.
    public var maxBytes: Int? = nil
    /// FIFO queues: a message without a `deduplication_id` is deduplicated by the SHA-256 of
    /// its body (SQS's `ContentBasedDeduplication`). Default false.
    public var contentBasedDeduplication: Bool = false
    /// What a send does when it would exceed ``maxMessages`` or ``maxBytes``. Default `.reject`.
    public var overflow: Overflow = .reject

    /// What happens to a send that would exceed a queue's `max_messages`/`max_bytes`.
    public enum Overflow: String, Hashable, Sendable, CaseIterable {
        /// The send fails with `409 QueueFull` and stores nothing.
        case reject
        /// The oldest messages (in send order, whatever their state) are deleted to make room.
        case dropOldest = "drop_oldest"
    }

    public init() {}

    public static let visibilityTimeoutRange = 0...43_200
    public static let retentionRange = 60...1_209_600
    public static let maxMessageBytesRange = 1...16_777_216
    public static let maxReceiveCountRange = 1...1_000

    /// The attributes a new queue `name` gets from `patch`: the defaults with `patch` over
    /// them, and `fifo` from the name (`.fifo`) when `patch` does not set it; checked.
    /// - Throws: ``TernError`` with ``ErrorCode/invalidAttribute``, as ``validate(for:)``.
    public static func forNewQueue(_ name: QueueName, _ patch: Patch) throws(TernError) -> QueueAttributes {
        var attributes = patch.applied(to: QueueAttributes())
        if patch.fifo == nil && name.isFIFO { attributes.fifo = true }
        try attributes.validate(for: name)
        return attributes
    }

    /// Checks every range and the cross-field rules (`delay` ≤ `retention`, `maxReceiveCount`
    /// and `deadLetterQueue` set together, name and `fifo` agree, DLQ differs from `name`).
    /// - Throws: ``TernError`` with ``ErrorCode/invalidAttribute`` naming the first bad attribute.
    public func validate(for name: QueueName) throws(TernError) {
        func check(_ ok: Bool, _ message: @autoclosure () -> String) throws(TernError) {
            if !ok { throw TernError(.invalidAttribute, message()) }
        }
        try check(Self.visibilityTimeoutRange.contains(visibilityTimeout), "visibility_timeout must be 0–43200 seconds")
        try check(Self.retentionRange.contains(retention), "retention must be 60–1209600 seconds")
        try check(Self.maxMessageBytesRange.contains(maxMessageBytes), "max_message_bytes must be 1–16777216 bytes")
        try check((0...retention).contains(delay), "delay must be 0 to retention (\(retention)) seconds")
        try check((maxReceiveCount == nil) == (deadLetterQueue == nil),
                  "max_receive_count and dead_letter_queue must be set together")
        if let maxReceiveCount {
            try check(Self.maxReceiveCountRange.contains(maxReceiveCount), "max_receive_count must be 1–1000")
        }
        if let deadLetterQueue {
            try check(deadLetterQueue != name, "dead_letter_queue must differ from the queue itself")
        }
        try check(fifo == name.isFIFO, "a FIFO queue's name must end in .fifo and only a FIFO queue's name may")
        if let maxMessages { try check(maxMessages >= 1, "max_messages must be at least 1") }
        if let maxBytes { try check(maxBytes >= 1, "max_bytes must be at least 1") }
        try check(!contentBasedDeduplication || fifo, "content_based_deduplication is only for FIFO queues")
    }
}

/// How many messages a queue holds in each state, and their body bytes.
public struct QueueCounts: Hashable, Sendable {
    /// Messages that can be received now.
    public var ready: UInt64 = 0
    /// Messages received and not yet acknowledged whose visibility timeout has not expired.
    public var inFlight: UInt64 = 0
    /// Messages whose delay has not yet passed.
    public var delayed: UInt64 = 0
    /// Uncompressed body bytes of all messages in the queue.
    public var bytes: UInt64 = 0

    public init() {}

    /// All messages in the queue, whatever their state.
    public var total: UInt64 { ready + inFlight + delayed }
}
