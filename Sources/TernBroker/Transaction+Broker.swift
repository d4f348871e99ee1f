public import TernCore
import TernStorage

/// What one transaction does: acknowledgements of queue deliveries, sends to queues, produces
/// to topics, and consumer-group offset commits, applied all together or not at all.
///
/// ```swift
/// let producer = try await broker.initProducer(transactionalID: "uppercase-1")
/// var transaction = ProducerTransaction(producer: producer, sequence: 1)
/// transaction.acknowledge(try QueueName("in"), receiptHandle: message.receiptHandle)
/// transaction.send(try QueueName("out"), [OutgoingMessage(body: Array(upper.utf8))])
/// let result = try await broker.commit(transaction)
/// ```
public struct ProducerTransaction: Sendable, Hashable {
    public struct Acknowledgement: Sendable, Hashable {
        public var queue: QueueName
        public var receiptHandle: String
        public init(queue: QueueName, receiptHandle: String) {
            self.queue = queue
            self.receiptHandle = receiptHandle
        }
    }

    public struct Send: Sendable, Hashable {
        public var queue: QueueName
        public var messages: [OutgoingMessage]
        public init(queue: QueueName, messages: [OutgoingMessage]) {
            self.queue = queue
            self.messages = messages
        }
    }

    /// Records appended to a topic, routed as ``Broker/produce(_:_:)`` routes them.
    public struct TopicSend: Sendable, Hashable {
        public var topic: QueueName
        public var messages: [TopicMessage]
        public init(topic: QueueName, messages: [TopicMessage]) {
            self.topic = topic
            self.messages = messages
        }
    }

    /// A consumer group's committed offset of one topic partition: the next offset to consume.
    ///
    /// With `memberID` and `generation` (a member of the group, as Kafka's KIP-447 transactional
    /// offset commits carry them), the commit is refused with `StaleGeneration` or `Conflict`
    /// when the group has rebalanced or the member does not own the partition. Without them it
    /// is accepted only while the group has no members (Kafka's rule for commits from
    /// consumers that assign partitions themselves).
    public struct OffsetCommit: Sendable, Hashable {
        public var topic: String
        public var group: String
        public var partition: UInt32
        public var offset: UInt64
        public var memberID: String?
        public var generation: UInt32?
        public init(topic: String, group: String, partition: UInt32, offset: UInt64, memberID: String? = nil, generation: UInt32? = nil) {
            self.topic = topic
            self.group = group
            self.partition = partition
            self.offset = offset
            self.memberID = memberID
            self.generation = generation
        }
    }

    public var producer: ProducerIdentity
    /// 1 for the first transaction of the producer's epoch, one more for each committed one;
    /// nil = whatever comes next (the commit is then not protected against a retry).
    public var sequence: UInt64?
    public var acknowledgements: [Acknowledgement] = []
    public var sends: [Send] = []
    /// Topic produces, applied after the queue sends.
    public var topicSends: [TopicSend] = []
    public var offsets: [OffsetCommit] = []

    public init(producer: ProducerIdentity, sequence: UInt64?) {
        self.producer = producer
        self.sequence = sequence
    }

    public mutating func acknowledge(_ queue: QueueName, receiptHandle: String) {
        acknowledgements.append(Acknowledgement(queue: queue, receiptHandle: receiptHandle))
    }

    public mutating func send(_ queue: QueueName, _ messages: [OutgoingMessage]) {
        sends.append(Send(queue: queue, messages: messages))
    }

    public mutating func produce(_ topic: QueueName, _ messages: [TopicMessage]) {
        topicSends.append(TopicSend(topic: topic, messages: messages))
    }

    public mutating func commitOffset(_ commit: OffsetCommit) {
        offsets.append(commit)
    }

    /// The most operations (messages + acknowledgements + offsets) one transaction may carry.
    public static let maxOperations = 100_000
}

/// The outcome of ``Broker/commit(_:)``.
public struct TransactionResult: Sendable, Hashable {
    /// One array per ``ProducerTransaction/sends`` entry, in order.
    public var sent: [[SentMessage]]
    /// One array per ``ProducerTransaction/topicSends`` entry, in order: each record's
    /// partition and offset.
    public var produced: [[TopicOffset]]
    /// Whether the transaction had already been committed (a retry): nothing was applied again.
    public var duplicate: Bool
}

extension Broker {
    /// Applies `transaction` in one LMDB write transaction: every acknowledgement, every queue
    /// send, every topic produce, every offset commit and the producer's transaction sequence,
    /// or — when any of them fails — none of them. Consumers never see a message or record of a
    /// transaction that did not commit; a retried commit is answered with the original ids and
    /// offsets.
    /// - Throws: ``TernError``: `UnknownProducer`, `ProducerFenced`, `InvalidTransaction`,
    ///   `InvalidReceiptHandle`, `ReceiptHandleStale`, `QueueNotFound`, `MessageTooLarge`,
    ///   `InvalidMessage`, `InvalidParameter`, `QueueFull`, `StorageFull`; for offset commits
    ///   `TopicNotFound`, `InvalidName`, `StaleGeneration` and `Conflict` (see
    ///   ``ProducerTransaction/OffsetCommit``), `InvalidParameter` for a partition outside the
    ///   topic, an offset beyond the high watermark, a partition named twice, or a member id
    ///   without a generation.
    public func commit(_ transaction: ProducerTransaction) async throws(TernError) -> TransactionResult {
        let operations = transaction.acknowledgements.count + transaction.offsets.count
            + transaction.sends.reduce(0) { $0 + $1.messages.count } + transaction.topicSends.reduce(0) { $0 + $1.messages.count }
        guard operations <= ProducerTransaction.maxOperations else {
            throw TernError(.invalidParameter, "a transaction may carry at most \(ProducerTransaction.maxOperations) messages, acknowledgements and offsets, got \(operations)")
        }
        for send in transaction.sends where send.messages.isEmpty {
            throw TernError(.invalidParameter, "a send to \(send.queue) in a transaction needs at least one message")
        }
        var acknowledgements = [TransactionCommand.Acknowledgement]()
        for ack in transaction.acknowledgements {
            acknowledgements.append(.init(queue: ack.queue, handle: try ReceiptHandle(parsing: ack.receiptHandle)))
        }
        let offsetCommits = try GroupOffsetCommit.grouping(transaction.offsets)
        var produces = [TopicProduce]()
        for send in transaction.topicSends {
            produces.append(try route(send.messages, to: try topicRecord(send.topic)))
        }
        var generator = BatchRandom()
        let sends = transaction.sends.map { TransactionCommand.Send(queue: $0.queue, messages: $0.messages, idSeed: generator.next()) }
        let command = TransactionCommand(producer: transaction.producer, sequence: transaction.sequence, acknowledgements: acknowledgements,
                                         sends: sends, produces: produces, offsets: offsetCommits)
        let outcome = try await execute(.commitTransaction(command))
        guard case .transaction(let result, _, let sentAts) = outcome.result else { Self.unexpected(outcome.result) }
        if !result.duplicate {
            for send in transaction.sends {
                observers.emit(.sent(queue: send.queue, count: send.messages.count, bytes: send.messages.reduce(0) { $0 + $1.body.count }))
            }
            for (ack, sentAt) in zip(transaction.acknowledgements, sentAts) {
                observers.emit(.acknowledged(queue: ack.queue, secondsInQueue: [Swift.max(0, sentAt?.seconds(until: outcome.time) ?? 0)]))
            }
            for (produce, offsets) in zip(produces, result.produced) {
                producedEvents(produce, offsets: offsets)
            }
        }
        return result
    }
}

/// Groups a transaction's offset commits by (topic, group): each becomes one
/// ``OffsetCommitCommand``, checked and written on the writer thread inside the transaction
/// (so that, as for ``Broker/commitOffsets(_:group:memberID:generation:offsets:)``, no commit of
/// an ended generation lands; decision 24).
enum GroupOffsetCommit {
    /// Groups `commits` by topic and group.
    /// - Throws: ``TernError``: `InvalidName` for a bad topic or group name; `InvalidParameter`
    ///   for a partition named twice for one group, a member id without a generation (or the
    ///   reverse), or different members for one group.
    static func grouping(_ commits: [ProducerTransaction.OffsetCommit]) throws(TernError) -> [OffsetCommitCommand] {
        var result = [OffsetCommitCommand]()
        var index = [String: Int]()
        for commit in commits {
            guard (commit.memberID == nil) == (commit.generation == nil) else {
                throw TernError(.invalidParameter, "an offset commit names both a member_id and its generation, or neither")
            }
            let topic = try QueueName(commit.topic)
            let group = try QueueName(commit.group)
            let key = topic.rawValue + "\u{0}" + group.rawValue
            if let at = index[key] {
                guard result[at].memberID == commit.memberID, result[at].generation == commit.generation else {
                    throw TernError(.invalidParameter, "offset commits for group \(group) of topic \(topic) name different members or generations")
                }
                guard result[at].offsets.updateValue(commit.offset, forKey: Int(commit.partition)) == nil else {
                    throw TernError(.invalidParameter, "partition \(commit.partition) of topic \(topic) is committed twice for group \(group)")
                }
            } else {
                index[key] = result.count
                result.append(OffsetCommitCommand(topic: topic, group: group, memberID: commit.memberID, generation: commit.generation,
                                                  offsets: [Int(commit.partition): commit.offset]))
            }
        }
        return result
    }
}
