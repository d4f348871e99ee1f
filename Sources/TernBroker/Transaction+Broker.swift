public import TernCore

/// What one transaction does: acknowledgements of queue deliveries, sends, and (once topics
/// exist) consumer-group offset commits, applied all together or not at all.
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

    /// A consumer group's offset of one topic partition (topics: not yet served here).
    public struct OffsetCommit: Sendable, Hashable {
        public var topic: String
        public var group: String
        public var partition: UInt32
        public var offset: UInt64
        public init(topic: String, group: String, partition: UInt32, offset: UInt64) {
            self.topic = topic
            self.group = group
            self.partition = partition
            self.offset = offset
        }
    }

    public var producer: ProducerIdentity
    /// 1 for the first transaction of the producer's epoch, one more for each committed one;
    /// nil = whatever comes next (the commit is then not protected against a retry).
    public var sequence: UInt64?
    public var acknowledgements: [Acknowledgement] = []
    public var sends: [Send] = []
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

    /// The most operations (messages + acknowledgements + offsets) one transaction may carry.
    public static let maxOperations = 100_000
}

/// The outcome of ``Broker/commit(_:)``.
public struct TransactionResult: Sendable, Hashable {
    /// One array per ``ProducerTransaction/sends`` entry, in order.
    public var sent: [[SentMessage]]
    /// Whether the transaction had already been committed (a retry): nothing was applied again.
    public var duplicate: Bool
}

extension Broker {
    /// Applies `transaction` in one LMDB write transaction: every acknowledgement, every send
    /// and the producer's transaction sequence, or — when any of them fails — none of them.
    /// Consumers never see a message of a transaction that did not commit.
    /// - Throws: ``TernError``: `UnknownProducer`, `ProducerFenced`, `InvalidTransaction`,
    ///   `InvalidReceiptHandle`, `ReceiptHandleStale`, `QueueNotFound`, `MessageTooLarge`,
    ///   `InvalidMessage`, `InvalidParameter`, `QueueFull`, `StorageFull`; `Unsupported` for
    ///   offset commits (topics are not yet part of transactions).
    public func commit(_ transaction: ProducerTransaction) async throws(TernError) -> TransactionResult {
        guard transaction.offsets.isEmpty else {
            throw TernError(.unsupported, "offset commits in transactions need topics, which this broker does not serve yet")
        }
        let operations = transaction.acknowledgements.count + transaction.sends.reduce(0) { $0 + $1.messages.count }
        guard operations <= ProducerTransaction.maxOperations else {
            throw TernError(.invalidParameter, "a transaction may carry at most \(ProducerTransaction.maxOperations) messages and acknowledgements, got \(operations)")
        }
        for send in transaction.sends where send.messages.isEmpty {
            throw TernError(.invalidParameter, "a send to \(send.queue) in a transaction needs at least one message")
        }
        var acknowledgements = [(QueueName, ReceiptHandle)]()
        for ack in transaction.acknowledgements {
            acknowledgements.append((ack.queue, try ReceiptHandle(parsing: ack.receiptHandle)))
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
        let (result, queueIDs) = try await perform(grows: !sends.isEmpty) { txn in
            let result = try store.commit(producerID: producer.producerID, epoch: producer.epoch, transactionSequence: sequence,
                                          sends: sends, acknowledgements: acks, at: now, in: txn)
            let ids = try sends.map { try store.queues.record(named: $0.queue, in: txn).id }
            return (result, ids)
        }
        if !result.duplicate {
            for send in transaction.sends {
                observers.emit(.sent(queue: send.queue, count: send.messages.count, bytes: send.messages.reduce(0) { $0 + $1.body.count }))
            }
            for ack in transaction.acknowledgements {
                observers.emit(.acknowledged(queue: ack.queue, secondsInQueue: 0))
            }
            signals.signal(queueIDs)
        }
        return TransactionResult(sent: result.sent, duplicate: result.duplicate)
    }
}
