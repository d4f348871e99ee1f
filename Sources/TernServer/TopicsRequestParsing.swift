import Foundation
import TernBroker
import TernCore

/// `PUT /topics/{name}` body: `{"partitions": 16, "retention": 604800, "max_bytes": null}`.
struct TopicAttributesBody: Decodable {
    var patch = TopicAttributes.Patch()

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        try c.rejectUnknownKeys(allowed: ["partitions", "retention", "max_bytes"], code: .invalidAttribute)
        let code = ErrorCode.invalidAttribute
        patch.partitions = try c.integer("partitions", in: TopicAttributes.partitionsRange, code: code) ?? nil
        patch.retention = try c.integer("retention", in: TopicAttributes.retentionRange, code: code) ?? nil
        patch.maxBytes = try c.integer("max_bytes", in: 1...Int(Int64.max), code: code, nullable: true)
    }
}

/// `POST /topics/{name}/messages` body: `{"messages": [{"key": "k", "value": "…", "partition": null}]}`
/// (a single `{"key", "value", "partition"}` object is accepted too).
struct ProduceBody: Decodable {
    var messages: [TopicMessage]

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        guard c.contains(AnyKey(stringValue: "messages")) else {
            messages = [try Self.message(c)]
            return
        }
        try c.rejectUnknownKeys(allowed: ["messages"], code: .invalidParameter)
        let limit = Broker.produceBatchRange.upperBound
        guard var list = try? c.nestedUnkeyedContainer(forKey: AnyKey(stringValue: "messages")) else {
            throw TernError(.invalidParameter, "messages must be an array of 1–\(limit) message objects")
        }
        messages = []
        while !list.isAtEnd {
            guard messages.count < limit else { throw TernError(.invalidParameter, "messages must hold 1–\(limit) messages") }
            guard let item = try? list.nestedContainer(keyedBy: AnyKey.self) else {
                throw TernError(.invalidParameter, "messages[\(messages.count)] must be an object with a \"value\" string")
            }
            do {
                messages.append(try Self.message(item))
            } catch {
                throw TernError(error.code, "messages[\(messages.count)]: \(error.message)")
            }
        }
        guard !messages.isEmpty else { throw TernError(.invalidParameter, "messages must hold 1–\(limit) messages") }
    }

    static func message(_ c: KeyedDecodingContainer<AnyKey>) throws(TernError) -> TopicMessage {
        try c.rejectUnknownKeys(allowed: ["key", "value", "partition"], code: .invalidParameter)
        guard let value = try c.string("value", code: .invalidMessage) ?? nil else {
            throw TernError(.invalidMessage, "\"value\" (a string) is required")
        }
        let key = try c.string("key", code: .invalidParameter, nullable: true) ?? nil
        let partition = try c.integer("partition", in: 0...(TopicAttributes.partitionsRange.upperBound - 1), nullable: true) ?? nil
        return TopicMessage(key: key.map { Array($0.utf8) }, value: Array(value.utf8), partition: partition)
    }
}

/// `POST /topics/{t}/groups/{g}/members` body: `{"session_timeout": 10}` (optional).
struct JoinBody: Decodable {
    var sessionTimeout: Int

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        try c.rejectUnknownKeys(allowed: ["session_timeout"], code: .invalidParameter)
        sessionTimeout = (try c.integer("session_timeout", in: ConsumerGroup.sessionTimeoutRange) ?? nil) ?? ConsumerGroup.defaultSessionTimeout
    }
}

/// `POST /topics/{t}/groups/{g}/offsets` body: `{"member_id", "generation", "offsets": {"0": 16}}`.
struct CommitBody: Decodable {
    var memberID: String
    var generation: UInt32
    var offsets: [Int: UInt64]

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        try c.rejectUnknownKeys(allowed: ["member_id", "generation", "offsets"], code: .invalidParameter)
        guard let member = try c.string("member_id", code: .invalidParameter) ?? nil else {
            throw TernError(.invalidParameter, "member_id (a string) is required")
        }
        guard let generation = try c.integer("generation", in: 0...Int(UInt32.max)) ?? nil else {
            throw TernError(.invalidParameter, "generation (an integer) is required")
        }
        guard let map = try? c.nestedContainer(keyedBy: AnyKey.self, forKey: AnyKey(stringValue: "offsets")) else {
            throw TernError(.invalidParameter, "offsets must be an object of partition → offset, e.g. {\"0\": 16}")
        }
        var offsets = [Int: UInt64]()
        for key in map.allKeys {
            guard let partition = Int(key.stringValue), (0..<TopicAttributes.partitionsRange.upperBound).contains(partition) else {
                throw TernError(.invalidParameter, "offsets: \"\(key.stringValue)\" is not a partition number")
            }
            guard let offset = try map.integer(key.stringValue, in: 0...Int(Int64.max)) ?? nil else {
                throw TernError(.invalidParameter, "offsets[\"\(key.stringValue)\"] must be a non-negative integer")
            }
            offsets[partition] = UInt64(offset)
        }
        guard !offsets.isEmpty else { throw TernError(.invalidParameter, "offsets must name at least one partition") }
        memberID = member
        self.generation = UInt32(generation)
        self.offsets = offsets
    }
}

/// `POST /topics/{t}/groups/{g}/offsets/reset` body: `{"to": "earliest" | "latest" | {"timestamp": ms}}`.
struct ResetBody: Decodable {
    var target: Broker.OffsetReset

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        try c.rejectUnknownKeys(allowed: ["to"], code: .invalidParameter)
        let key = AnyKey(stringValue: "to")
        let problem = TernError(.invalidParameter, "to must be \"earliest\", \"latest\" or {\"timestamp\": ms}")
        if let word = try? c.decode(String.self, forKey: key) {
            switch word {
            case "earliest": target = .earliest
            case "latest": target = .latest
            default: throw problem
            }
        } else if let object = try? c.nestedContainer(keyedBy: AnyKey.self, forKey: key) {
            try object.rejectUnknownKeys(allowed: ["timestamp"], code: .invalidParameter)
            guard let ms = try object.integer("timestamp", in: 0...Int(Int64.max)) ?? nil else { throw problem }
            target = .timestamp(Timestamp(milliseconds: UInt64(ms)))
        } else {
            throw problem
        }
    }
}
