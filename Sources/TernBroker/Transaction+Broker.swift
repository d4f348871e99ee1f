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
        var acknowledgements = [(QueueName, ReceiptHandle)]()
        for ack in transaction.acknowledgements {
            acknowledgements.append((ack.queue, try ReceiptHandle(parsing: ack.receiptHandle)))
        }
        let offsetCommits = try GroupOffsetCommit.grouping(transaction.offsets)
        let topicRecords = topicStore
        var routings = [ProduceRouting]()
        for send in transaction.topicSends {
            let record = try reading { txn in try topicRecords.record(named: send.topic, in: txn) }
            routings.append(try route(send.messages, to: record))
        }
        let now = clock.now
        var generator = SystemRandomNumberGenerator()
        let sends = transaction.sends.map { send in
            let seed = generator.next() as UInt64
            let prepared = send.messages.enumerated().map { index, message in
                QueueStore.PreparedMessage(id: ProducerBatch.messageID(seed: seed, index: index, at: now), message: message)
            }
            return ProducerStore.TransactionSend(queue: send.queue, messages: prepared, idSeed: seed)
        }
        let store = producerStore
        let producer = transaction.producer
        let sequence = transaction.sequence
        let acks = acknowledgements
        let topics = topicStore
        let groups = topicState
        let chosenRoutings = routings
        let (result, queueIDs, sentAts) = try await perform(grows: !sends.isEmpty || !chosenRoutings.isEmpty) { txn in
            // When each acknowledged message was sent, for the time-in-queue histogram.
            let sentAts = try acks.map { _, handle in
                try txn.get(store.queues.messages, QueueSchema.messageKey(queue: handle.queue, sequence: handle.sequence))
                    .map { try MessageHeader(decoding: $0).sentAt }
            }
            let result = try store.commit(producerID: producer.producerID, epoch: producer.epoch, transactionSequence: sequence,
                                          sends: sends, acknowledgements: acks, at: now, in: txn) {
                try chosenRoutings.map { routing in
                    TopicProducerBatch(firstSequence: 0, count: UInt32(routing.messages.count), stickyPartition: routing.sticky,
                                       bases: try routing.append(sticky: routing.sticky, store: topics, at: now, in: txn))
                }
            }
            if !result.duplicate {
                for commit in offsetCommits { try commit.apply(at: now, topics: topics, groups: groups, in: txn) }
            }
            let ids = try sends.map { try store.queues.record(named: $0.queue, in: txn).id }
            return (result, ids, sentAts)
        }
        if !result.duplicate {
            for send in transaction.sends {
                observers.emit(.sent(queue: send.queue, count: send.messages.count, bytes: send.messages.reduce(0) { $0 + $1.body.count }))
            }
            for (ack, sentAt) in zip(transaction.acknowledgements, sentAts) {
                observers.emit(.acknowledged(queue: ack.queue, secondsInQueue: Swift.max(0, sentAt?.seconds(until: now) ?? 0)))
            }
            signals.signal(queueIDs)
            for (routing, batch) in zip(routings, result.produced) {
                producedEvents(routing, sticky: batch.stickyPartition, bases: batch.bases)
            }
        }
        let produced = zip(routings, result.produced).map { routing, batch in
            routing.offsets(sticky: batch.stickyPartition, bases: batch.bases)
        }
        return TransactionResult(sent: result.sent, produced: produced, duplicate: result.duplicate)
    }
}

/// The offset commits of one transaction for one (topic, group), checked and written on the
/// writer thread inside the transaction (so that, as for ``Broker/commitOffsets(_:group:memberID:generation:offsets:)``,
/// no commit of an ended generation lands; decision 24).
struct GroupOffsetCommit: Sendable {
    var topic: QueueName
    var group: QueueName
    var memberID: String?
    var generation: UInt32?
    var offsets: [Int: UInt64]

    /// Groups `commits` by topic and group.
    /// - Throws: ``TernError``: `InvalidName` for a bad topic or group name; `InvalidParameter`
    ///   for a partition named twice for one group, a member id without a generation (or the
    ///   reverse), or different members for one group.
    static func grouping(_ commits: [ProducerTransaction.OffsetCommit]) throws(TernError) -> [GroupOffsetCommit] {
        var result = [GroupOffsetCommit]()
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
                result.append(GroupOffsetCommit(topic: topic, group: group, memberID: commit.memberID, generation: commit.generation,
                                                offsets: [Int(commit.partition): commit.offset]))
            }
        }
        return result
    }

    /// Checks the member's generation and ownership (or that the group has no members) and
    /// writes the offsets.
    func apply(at now: Timestamp, topics: TopicStore, groups: TopicState, in txn: WriteTransaction) throws {
        let record = try topics.record(named: topic, in: txn)
        let key = TopicState.GroupKey(topic: record.id, group: group.rawValue)
        try groups.withGroup(key, partitions: record.attributes.partitions) { instance throws(TernError) in
            _ = instance.onTick(at: now)
            if let memberID, let generation {
                try instance.validateCommit(memberID: memberID, generation: generation, partitions: offsets.keys)
            } else if !instance.isEmpty {
                throw TernError(.conflict, "group \(group) of topic \(topic) has members: a transactional offset commit must carry the committing member's member_id and generation")
            }
        }
        try topics.commit(topic: record.id, group: group.rawValue, offsets: offsets, at: now, in: txn)
    }
}
