import Foundation
import TernCore

/// A JSON object key that accepts any name, to find unknown keys.
struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// Strict readers for request bodies: unknown keys, wrong types and out-of-range values are
/// ``TernError``s naming the field, never a generic decoding failure.
enum JSONBody {
    /// Decodes `T` from `bytes`, mapping malformed JSON to `InvalidJSON`.
    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws(TernError) -> T {
        try StrictJSON.validate(bytes)
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch let error as TernError {
            throw error
        } catch let DecodingError.dataCorrupted(context) where context.codingPath.isEmpty {
            throw TernError(.invalidJSON, "the request body is not valid JSON (UTF-8, valid Unicode escapes)")
        } catch DecodingError.typeMismatch(_, let context) where context.codingPath.isEmpty {
            throw TernError(.invalidJSON, "the request body must be a JSON object")
        } catch {
            throw TernError(.invalidJSON, "the request body is not valid JSON: \(error)")
        }
    }
}

extension KeyedDecodingContainer where Key == AnyKey {
    func rejectUnknownKeys(allowed: Set<String>, code: ErrorCode) throws(TernError) {
        for key in allKeys where !allowed.contains(key.stringValue) {
            throw TernError(code, "unknown field \"\(key.stringValue)\"; allowed: \(allowed.sorted().joined(separator: ", "))")
        }
    }

    /// An integer field within `range`; nil when absent. `null` counts as absent only when `nullable`.
    func integer(_ name: String, in range: ClosedRange<Int>, code: ErrorCode = .invalidParameter, nullable: Bool = false) throws(TernError) -> Int?? {
        let key = AnyKey(stringValue: name)
        guard contains(key) else { return nil }
        if (try? decodeNil(forKey: key)) == true {
            if nullable { return .some(nil) }
            throw TernError(code, "\(name) must be an integer \(range.lowerBound)–\(range.upperBound), not null")
        }
        guard let value = try? decode(Int.self, forKey: key) else {
            throw TernError(code, "\(name) must be an integer \(range.lowerBound)–\(range.upperBound)")
        }
        guard range.contains(value) else {
            throw TernError(code, "\(name) must be \(range.lowerBound)–\(range.upperBound), got \(value)")
        }
        return .some(value)
    }

    func string(_ name: String, code: ErrorCode, nullable: Bool = false) throws(TernError) -> String?? {
        let key = AnyKey(stringValue: name)
        guard contains(key) else { return nil }
        if (try? decodeNil(forKey: key)) == true {
            if nullable { return .some(nil) }
            throw TernError(code, "\(name) must be a string, not null")
        }
        guard let value = try? decode(String.self, forKey: key) else {
            throw TernError(code, "\(name) must be a JSON string of valid Unicode")
        }
        return .some(value)
    }

    func bool(_ name: String, code: ErrorCode) throws(TernError) -> Bool? {
        let key = AnyKey(stringValue: name)
        guard contains(key) else { return nil }
        guard let value = try? decode(Bool.self, forKey: key) else { throw TernError(code, "\(name) must be true or false") }
        return value
    }
}

/// `PUT /queues/{name}` body: a partial set of attributes.
struct QueueAttributesBody: Decodable {
    var patch = QueueAttributes.Patch()
    /// `colocate_with`: the queue whose replication group this one joins when it is created in a
    /// cluster with queue groups (decision 140); everywhere else every queue shares one group
    /// already, and the field is checked and otherwise ignored.
    var colocateWith: QueueName?

    static let fields: Set<String> = [
        "visibility_timeout", "retention", "max_message_bytes", "delay", "max_receive_count",
        "dead_letter_queue", "fifo", "max_messages", "max_bytes", "content_based_deduplication", "overflow",
        "colocate_with",
    ]

    /// No attributes (an empty body).
    init() {}

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        try c.rejectUnknownKeys(allowed: Self.fields, code: .invalidAttribute)
        let code = ErrorCode.invalidAttribute
        patch.visibilityTimeout = try c.integer("visibility_timeout", in: QueueAttributes.visibilityTimeoutRange, code: code) ?? nil
        patch.retention = try c.integer("retention", in: QueueAttributes.retentionRange, code: code) ?? nil
        patch.maxMessageBytes = try c.integer("max_message_bytes", in: QueueAttributes.maxMessageBytesRange, code: code) ?? nil
        patch.delay = try c.integer("delay", in: 0...QueueAttributes.retentionRange.upperBound, code: code) ?? nil
        patch.maxReceiveCount = try c.integer("max_receive_count", in: QueueAttributes.maxReceiveCountRange, code: code, nullable: true)
        patch.maxMessages = try c.integer("max_messages", in: 1...Int(Int64.max), code: code, nullable: true)
        patch.maxBytes = try c.integer("max_bytes", in: 1...Int(Int64.max), code: code, nullable: true)
        patch.fifo = try c.bool("fifo", code: code)
        patch.contentBasedDeduplication = try c.bool("content_based_deduplication", code: code)
        if let overflow = try c.string("overflow", code: code) ?? nil {
            guard let value = QueueAttributes.Overflow(rawValue: overflow) else {
                throw TernError(.invalidAttribute, "overflow must be \"reject\" or \"drop_oldest\"")
            }
            patch.overflow = value
        }
        if let colocate = try c.string("colocate_with", code: code) ?? nil {
            do {
                colocateWith = try QueueName(colocate)
            } catch {
                throw TernError(.invalidAttribute, "colocate_with: \(error.message)")
            }
        }
        if let dlq = try c.string("dead_letter_queue", code: code, nullable: true) {
            do {
                patch.deadLetterQueue = .some(try dlq.map { (name: String) throws(TernError) in try QueueName(name) })
            } catch {
                throw TernError(.invalidAttribute, "dead_letter_queue: \(error.message)")
            }
        }
    }
}

/// `POST /queues/{name}/messages` body: `{"message": …}` or `{"messages": [{"message": …}, …]}`.
struct SendBody: Decodable {
    var messages: [OutgoingMessage]
    var isBatch: Bool

    static let maxBatch = 1000

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        if c.contains(AnyKey(stringValue: "messages")) {
            try c.rejectUnknownKeys(allowed: ["messages"], code: .invalidParameter)
            isBatch = true
            guard var list = try? c.nestedUnkeyedContainer(forKey: AnyKey(stringValue: "messages")) else {
                throw TernError(.invalidParameter, "messages must be an array of 1–\(Self.maxBatch) message objects")
            }
            messages = []
            while !list.isAtEnd {
                guard messages.count < Self.maxBatch else {
                    throw TernError(.invalidParameter, "messages must hold 1–\(Self.maxBatch) messages")
                }
                guard let item = try? list.nestedContainer(keyedBy: AnyKey.self) else {
                    throw TernError(.invalidParameter, "messages[\(messages.count)] must be an object with a \"message\" string")
                }
                do {
                    messages.append(try Self.message(item))
                } catch {
                    throw TernError(error.code, "messages[\(messages.count)]: \(error.message)")
                }
            }
            guard !messages.isEmpty else { throw TernError(.invalidParameter, "messages must hold 1–\(Self.maxBatch) messages") }
        } else {
            isBatch = false
            messages = [try Self.message(c)]
        }
    }

    static func message(_ c: KeyedDecodingContainer<AnyKey>) throws(TernError) -> OutgoingMessage {
        try c.rejectUnknownKeys(allowed: ["message", "priority", "delay", "group_id", "deduplication_id"], code: .invalidParameter)
        guard let body = try c.string("message", code: .invalidMessage) ?? nil else {
            throw TernError(.invalidMessage, "\"message\" (a string of 1 or more bytes) is required")
        }
        guard !body.isEmpty else { throw TernError(.invalidMessage, "message must not be empty") }
        let priority = try c.integer("priority", in: 0...Int(OutgoingMessage.maxPriority)) ?? nil
        let delay = try c.integer("delay", in: 0...QueueAttributes.retentionRange.upperBound) ?? nil
        let groupID = try c.string("group_id", code: .invalidParameter) ?? nil
        let deduplicationID = try c.string("deduplication_id", code: .invalidParameter) ?? nil
        return OutgoingMessage(body: Array(body.utf8), priority: UInt8(priority ?? 0), delay: delay, groupID: groupID,
                               deduplicationID: deduplicationID)
    }
}

/// `PATCH /queues/{name}/messages/{receipt_handle}` body.
struct VisibilityBody: Decodable {
    var visibilityTimeout: Int

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        try c.rejectUnknownKeys(allowed: ["visibility_timeout"], code: .invalidParameter)
        guard let value = try c.integer("visibility_timeout", in: QueueAttributes.visibilityTimeoutRange) ?? nil else {
            throw TernError(.invalidParameter, "visibility_timeout (seconds, 0–43200) is required")
        }
        visibilityTimeout = value
    }
}
