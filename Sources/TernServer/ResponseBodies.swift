import TernCore

/// JSON shapes of responses (snake_case, times in ms since the epoch, ages in seconds).
struct QueueDescription: Encodable {
    struct Attributes: Encodable {
        var visibility_timeout: Int
        var retention: Int
        var max_message_bytes: Int
        var delay: Int
        var max_receive_count: Int?
        var dead_letter_queue: String?
        var fifo: Bool
        var max_messages: Int?
        var max_bytes: Int?
        var content_based_deduplication: Bool = false
        var overflow: String = "reject"

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: AnyKey.self)
            try c.encode(visibility_timeout, forKey: AnyKey(stringValue: "visibility_timeout"))
            try c.encode(retention, forKey: AnyKey(stringValue: "retention"))
            try c.encode(max_message_bytes, forKey: AnyKey(stringValue: "max_message_bytes"))
            try c.encode(delay, forKey: AnyKey(stringValue: "delay"))
            try c.encode(max_receive_count, forKey: AnyKey(stringValue: "max_receive_count"))
            try c.encode(dead_letter_queue, forKey: AnyKey(stringValue: "dead_letter_queue"))
            try c.encode(fifo, forKey: AnyKey(stringValue: "fifo"))
            try c.encode(max_messages, forKey: AnyKey(stringValue: "max_messages"))
            try c.encode(max_bytes, forKey: AnyKey(stringValue: "max_bytes"))
            try c.encode(content_based_deduplication, forKey: AnyKey(stringValue: "content_based_deduplication"))
            try c.encode(overflow, forKey: AnyKey(stringValue: "overflow"))
        }
    }

    struct Counts: Encodable {
        var ready: UInt64
        var in_flight: UInt64
        var delayed: UInt64
        var total: UInt64
    }

    var name: String
    var attributes: Attributes
    var messages: Counts
    var bytes: UInt64
    var created_at: UInt64
    var oldest_message_age: Double?

    init(_ info: QueueInfo, now: Timestamp) {
        let a = info.attributes
        name = info.name.rawValue
        attributes = Attributes(
            visibility_timeout: a.visibilityTimeout, retention: a.retention, max_message_bytes: a.maxMessageBytes,
            delay: a.delay, max_receive_count: a.maxReceiveCount, dead_letter_queue: a.deadLetterQueue?.rawValue,
            fifo: a.fifo, max_messages: a.maxMessages, max_bytes: a.maxBytes,
            content_based_deduplication: a.contentBasedDeduplication, overflow: a.overflow.rawValue)
        messages = Counts(ready: info.counts.ready, in_flight: info.counts.inFlight, delayed: info.counts.delayed,
                          total: info.counts.total)
        bytes = info.counts.bytes
        created_at = info.createdAt.milliseconds
        oldest_message_age = info.oldestSentAt.map { max(0, $0.seconds(until: now)) }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        try c.encode(name, forKey: AnyKey(stringValue: "name"))
        try c.encode(attributes, forKey: AnyKey(stringValue: "attributes"))
        try c.encode(messages, forKey: AnyKey(stringValue: "messages"))
        try c.encode(bytes, forKey: AnyKey(stringValue: "bytes"))
        try c.encode(created_at, forKey: AnyKey(stringValue: "created_at"))
        try c.encode(oldest_message_age, forKey: AnyKey(stringValue: "oldest_message_age"))
    }
}

struct QueueList: Encodable {
    var queues: [QueueDescription]
}

struct SentDescription: Encodable {
    var id: String
    var sequence: UInt64
    var visible_at: UInt64
    /// Present (true) only for a FIFO duplicate: the fields are the original's, nothing was stored.
    var duplicate: Bool?

    init(_ sent: SentMessage) {
        id = sent.id.description
        sequence = sent.sequence
        visible_at = sent.visibleAt.milliseconds
        duplicate = sent.duplicate ? true : nil
    }
}

struct SentBatch: Encodable {
    var messages: [SentDescription]
}

struct ReceivedDescription: Encodable {
    var id: String
    var body: String
    var receipt_handle: String
    var receive_count: UInt32
    var priority: UInt8
    var sent_at: UInt64

    init(_ message: ReceivedMessage) {
        id = message.id.description
        body = String(decoding: message.body, as: UTF8.self)
        receipt_handle = message.receiptHandle
        receive_count = message.receiveCount
        priority = message.priority
        sent_at = message.sentAt.milliseconds
    }
}

struct ReceivedBatch: Encodable {
    var messages: [ReceivedDescription]
}

struct ErrorBody: Encodable {
    struct Detail: Encodable {
        var code: String
        var message: String
    }
    var error: Detail
}
