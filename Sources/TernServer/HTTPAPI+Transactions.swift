import Foundation
import Hummingbird
import TernBroker
import TernCore

/// `POST /producers` and `POST /transactions`: idempotent producers and atomic
/// ack + send transactions over HTTP (the same broker calls as the binary protocol's
/// `InitProducer` and `CommitTransaction`), with the same permissions: any valid token may
/// register a producer; a transaction needs produce on every queue and topic it writes and
/// consume on every queue it acknowledges and every topic whose offsets it commits.
extension HTTPAPI {
    static let transactionRoutes = ["POST /producers", "POST /transactions"]

    static func addTransactionRoutes(to router: Router<BasicRequestContext>, _ api: Handlers) {
        router.post("/producers") { request, _ in try await api.initProducer(request) }
        router.post("/transactions") { request, _ in try await api.commitTransaction(request) }
    }
}

/// `{"transactional_id": "…"}` (optional).
struct ProducerBody: Decodable {
    var transactionalID: String?

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        try container.rejectUnknownKeys(allowed: ["transactional_id"], code: .invalidParameter)
        transactionalID = try container.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "transactional_id"))
    }
}

/// `{"producer_id", "epoch", "sequence"?, "acks": [{"queue", "receipt_handle"}],
/// "messages": [{"queue", "message", "priority"?, "delay"?}], "offsets": [...]}`.
struct TransactionBody: Decodable {
    struct Ack: Decodable {
        var queue: String
        var receiptHandle: String

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: AnyKey.self)
            try container.rejectUnknownKeys(allowed: ["queue", "receipt_handle"], code: .invalidParameter)
            queue = try container.decode(String.self, forKey: AnyKey(stringValue: "queue"))
            receiptHandle = try container.decode(String.self, forKey: AnyKey(stringValue: "receipt_handle"))
        }
    }

    struct Message: Decodable {
        var queue: String
        var message: String
        var priority: Int?
        var delay: Int?
        var groupID: String?
        var deduplicationID: String?

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: AnyKey.self)
            try container.rejectUnknownKeys(allowed: ["queue", "message", "priority", "delay", "group_id", "deduplication_id"],
                                            code: .invalidParameter)
            queue = try container.decode(String.self, forKey: AnyKey(stringValue: "queue"))
            message = try container.decode(String.self, forKey: AnyKey(stringValue: "message"))
            priority = try container.decodeIfPresent(Int.self, forKey: AnyKey(stringValue: "priority"))
            delay = try container.decodeIfPresent(Int.self, forKey: AnyKey(stringValue: "delay"))
            groupID = try container.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "group_id"))
            deduplicationID = try container.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "deduplication_id"))
        }
    }

    /// `{"topic", "value", "key"?, "partition"?}`: a record produced to a topic.
    struct Record: Decodable {
        var topic: String
        var value: String
        var key: String?
        var partition: Int?

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: AnyKey.self)
            try container.rejectUnknownKeys(allowed: ["topic", "value", "key", "partition"], code: .invalidParameter)
            topic = try container.decode(String.self, forKey: AnyKey(stringValue: "topic"))
            value = try container.decode(String.self, forKey: AnyKey(stringValue: "value"))
            key = try container.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "key"))
            partition = try container.decodeIfPresent(Int.self, forKey: AnyKey(stringValue: "partition"))
        }
    }

    /// `{"topic", "group", "partition", "offset", "member_id"?, "generation"?}`.
    struct Offset: Decodable {
        var topic: String
        var group: String
        var partition: UInt32
        var offset: UInt64
        var memberID: String?
        var generation: UInt32?

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: AnyKey.self)
            try container.rejectUnknownKeys(allowed: ["topic", "group", "partition", "offset", "member_id", "generation"],
                                            code: .invalidParameter)
            topic = try container.decode(String.self, forKey: AnyKey(stringValue: "topic"))
            group = try container.decode(String.self, forKey: AnyKey(stringValue: "group"))
            partition = try container.decode(UInt32.self, forKey: AnyKey(stringValue: "partition"))
            offset = try container.decode(UInt64.self, forKey: AnyKey(stringValue: "offset"))
            memberID = try container.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "member_id"))
            generation = try container.decodeIfPresent(UInt32.self, forKey: AnyKey(stringValue: "generation"))
        }
    }

    var producerID: UInt64
    var epoch: UInt32
    var sequence: UInt64?
    var acks: [Ack]
    var messages: [Message]
    var records: [Record]
    var offsets: [Offset]

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        try container.rejectUnknownKeys(allowed: ["producer_id", "epoch", "sequence", "acks", "messages", "records", "offsets"], code: .invalidParameter)
        func key(_ name: String) -> AnyKey { AnyKey(stringValue: name) }
        do {
            producerID = try container.decode(UInt64.self, forKey: key("producer_id"))
            epoch = try container.decode(UInt32.self, forKey: key("epoch"))
            sequence = try container.decodeIfPresent(UInt64.self, forKey: key("sequence"))
            acks = try container.decodeIfPresent([Ack].self, forKey: key("acks")) ?? []
            messages = try container.decodeIfPresent([Message].self, forKey: key("messages")) ?? []
            records = try container.decodeIfPresent([Record].self, forKey: key("records")) ?? []
            offsets = try container.decodeIfPresent([Offset].self, forKey: key("offsets")) ?? []
        } catch let error as DecodingError {
            throw TernError(.invalidParameter, "bad transaction body: \(Self.describe(error))")
        } catch let error as TernError {
            throw error
        } catch {
            // Foundation reports some values (a negative number for an unsigned field) with
            // errors of its own; the JSON itself was valid (StrictJSON checked it).
            throw TernError(.invalidParameter, "bad transaction body: a field has the wrong type or value")
        }
    }

    static func describe(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, let context):
            return "missing field \((context.codingPath.map(\.stringValue) + [key.stringValue]).joined(separator: "."))"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            return "field \(context.codingPath.map(\.stringValue).joined(separator: ".")) has the wrong type or value"
        @unknown default:
            return "\(error)"
        }
    }
}

struct ProducerDescription: Encodable {
    var producerID: UInt64
    var epoch: UInt32
    enum CodingKeys: String, CodingKey { case producerID = "producer_id", epoch }
}

struct TransactionDescription: Encodable {
    struct Sent: Encodable {
        var queue: String
        var id: String
        var sequence: UInt64
    }
    struct Produced: Encodable {
        var topic: String
        var partition: Int
        var offset: UInt64
    }
    var messages: [Sent]
    var records: [Produced]
    var duplicate: Bool
}

extension Handlers {
    /// Checks the per-name permissions of a transaction (authentication on); the middleware
    /// has already checked that the token is valid.
    /// - Throws: ``TernError`` `Forbidden` naming the first missing permission.
    func authorize(_ request: Request, _ transaction: TransactionBody) throws(TernError) {
        guard let authenticator else { return }
        var secret: String?
        if let header = request.headers[.authorization] {
            let parts = header.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" { secret = String(parts[1]).trimmingCharacters(in: .whitespaces) }
        }
        let requirements: [Auth.Requirement] = transaction.messages.map { .produce($0.queue) }
            + transaction.acks.map { .consume($0.queue) } + transaction.records.map { .produce($0.topic) }
            + transaction.offsets.map { .consume($0.topic) }
        for requirement in requirements { try authenticator.authorize(token: secret, requirement) }
    }

    func initProducer(_ request: Request) async throws -> Response {
        let bytes = try await body(request)
        let parsed = bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 })
            ? nil : try JSONBody.decode(ProducerBody.self, from: bytes)
        let identity = try await broker.initProducer(transactionalID: parsed?.transactionalID)
        return try json(.created, ProducerDescription(producerID: identity.producerID, epoch: identity.epoch))
    }

    func commitTransaction(_ request: Request) async throws -> Response {
        let parsed = try JSONBody.decode(TransactionBody.self, from: try await body(request))
        try authorize(request, parsed)
        var transaction = ProducerTransaction(producer: ProducerIdentity(producerID: parsed.producerID, epoch: parsed.epoch),
                                              sequence: parsed.sequence)
        for ack in parsed.acks { transaction.acknowledge(try QueueName(ack.queue), receiptHandle: ack.receiptHandle) }
        var order = [String]()
        for message in parsed.messages {
            guard (0...Int(OutgoingMessage.maxPriority)).contains(message.priority ?? 0) else {
                throw TernError(.invalidParameter, "priority must be 0–9")
            }
            if let delay = message.delay, delay < 0 { throw TernError(.invalidParameter, "delay must be at least 0 seconds") }
            let outgoing = OutgoingMessage(body: Array(message.message.utf8), priority: UInt8(message.priority ?? 0), delay: message.delay,
                                           groupID: message.groupID, deduplicationID: message.deduplicationID)
            let name = try QueueName(message.queue)
            if let last = transaction.sends.indices.last, transaction.sends[last].queue == name {
                transaction.sends[last].messages.append(outgoing)
            } else {
                transaction.send(name, [outgoing])
            }
            order.append(message.queue)
        }
        for record in parsed.records {
            let name = try QueueName(record.topic)
            let message = TopicMessage(key: record.key.map { Array($0.utf8) }, value: Array(record.value.utf8), partition: record.partition)
            if let last = transaction.topicSends.indices.last, transaction.topicSends[last].topic == name {
                transaction.topicSends[last].messages.append(message)
            } else {
                transaction.produce(name, [message])
            }
        }
        transaction.offsets = parsed.offsets.map {
            ProducerTransaction.OffsetCommit(topic: $0.topic, group: $0.group, partition: $0.partition, offset: $0.offset,
                                             memberID: $0.memberID, generation: $0.generation)
        }
        let result = try await broker.commit(transaction)
        let flat = zip(transaction.sends, result.sent).flatMap { send, sent in
            sent.map { TransactionDescription.Sent(queue: send.queue.rawValue, id: $0.id.description, sequence: $0.sequence) }
        }
        let records = zip(transaction.topicSends, result.produced).flatMap { send, offsets in
            offsets.map { TransactionDescription.Produced(topic: send.topic.rawValue, partition: $0.partition, offset: $0.offset) }
        }
        return try json(.ok, TransactionDescription(messages: flat, records: records, duplicate: result.duplicate))
    }
}
