import TernBroker
import TernCore

/// JSON shapes of topic and consumer-group responses (snake_case, times in ms since the epoch).
struct TopicDescription: Encodable {
    struct Attributes: Encodable {
        var partitions: Int
        var retention: Int
        var max_bytes: Int?

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: AnyKey.self)
            try c.encode(partitions, forKey: AnyKey(stringValue: "partitions"))
            try c.encode(retention, forKey: AnyKey(stringValue: "retention"))
            try c.encode(max_bytes, forKey: AnyKey(stringValue: "max_bytes"))  // null when off
        }
    }

    struct Partition: Encodable {
        var partition: Int
        var log_start: UInt64
        var high_watermark: UInt64
        var bytes: UInt64
        var batches: UInt64
    }

    var name: String
    var attributes: Attributes
    var created_at: UInt64
    /// Messages stored (high watermark − log start, summed).
    var messages: UInt64
    var bytes: UInt64
    var partitions: [Partition]

    init(_ info: TopicInfo) {
        name = info.name.rawValue
        attributes = Attributes(partitions: info.attributes.partitions, retention: info.attributes.retention,
                                max_bytes: info.attributes.maxBytes)
        created_at = info.createdAt.milliseconds
        partitions = info.partitions.map {
            Partition(partition: $0.partition, log_start: $0.logStart, high_watermark: $0.highWatermark, bytes: $0.bytes, batches: $0.batches)
        }
        messages = info.partitions.reduce(0) { $0 + ($1.highWatermark - $1.logStart) }
        bytes = info.partitions.reduce(0) { $0 + $1.bytes }
    }
}

struct TopicList: Encodable {
    var topics: [TopicDescription]
}

struct ProducedOffsets: Encodable {
    struct Offset: Encodable {
        var partition: Int
        var offset: UInt64
    }
    var offsets: [Offset]
}

struct FetchedDescription: Encodable {
    var partition: Int
    var offset: UInt64
    var key: String?
    var value: String
    var timestamp: UInt64

    init(_ message: FetchedMessage) {
        partition = message.partition
        offset = message.offset
        key = message.key.map { String(decoding: $0, as: UTF8.self) }
        value = String(decoding: message.value, as: UTF8.self)
        timestamp = message.timestamp.milliseconds
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        try c.encode(partition, forKey: AnyKey(stringValue: "partition"))
        try c.encode(offset, forKey: AnyKey(stringValue: "offset"))
        try c.encode(key, forKey: AnyKey(stringValue: "key"))  // null without a key
        try c.encode(value, forKey: AnyKey(stringValue: "value"))
        try c.encode(timestamp, forKey: AnyKey(stringValue: "timestamp"))
    }
}

struct FetchAnswer: Encodable {
    var messages: [FetchedDescription]
    var high_watermark: UInt64
    var log_start: UInt64
}

struct AssignmentAnswer: Encodable {
    var member_id: String?
    var generation: UInt32
    var partitions: [Int]
    var rebalance: Bool?

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        if let member_id { try c.encode(member_id, forKey: AnyKey(stringValue: "member_id")) }
        try c.encode(generation, forKey: AnyKey(stringValue: "generation"))
        try c.encode(partitions, forKey: AnyKey(stringValue: "partitions"))
        if let rebalance { try c.encode(rebalance, forKey: AnyKey(stringValue: "rebalance")) }
    }
}

struct GroupBatchAnswer: Encodable {
    var messages: [FetchedDescription]
    var generation: UInt32
    var partitions: [Int]
    var rebalance: Bool
}

struct GroupDescription: Encodable {
    struct Member: Encodable {
        var member_id: String
        var partitions: [Int]
        var session_timeout: Int
        var last_seen: UInt64
    }
    struct Partition: Encodable {
        var partition: Int
        var committed: UInt64?
        var log_start: UInt64
        var high_watermark: UInt64
        var lag: UInt64
        var owner: String?

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: AnyKey.self)
            try c.encode(partition, forKey: AnyKey(stringValue: "partition"))
            try c.encode(committed, forKey: AnyKey(stringValue: "committed"))
            try c.encode(log_start, forKey: AnyKey(stringValue: "log_start"))
            try c.encode(high_watermark, forKey: AnyKey(stringValue: "high_watermark"))
            try c.encode(lag, forKey: AnyKey(stringValue: "lag"))
            try c.encode(owner, forKey: AnyKey(stringValue: "owner"))
        }
    }
    var topic: String
    var group: String
    var generation: UInt32
    var members: [Member]
    var partitions: [Partition]
    var lag: UInt64

    init(topic: String, group: String, _ info: Broker.GroupInfo) {
        self.topic = topic
        self.group = group
        generation = info.generation
        members = info.members.map {
            Member(member_id: $0.id, partitions: $0.partitions, session_timeout: Int($0.sessionTimeoutMilliseconds / 1000),
                   last_seen: $0.lastSeen.milliseconds)
        }
        partitions = info.partitions.map {
            Partition(partition: $0.partition, committed: $0.committed, log_start: $0.logStart, high_watermark: $0.highWatermark,
                      lag: $0.lag, owner: $0.owner)
        }
        lag = info.partitions.reduce(0) { $0 + $1.lag }
    }
}
