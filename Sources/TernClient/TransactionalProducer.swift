public import TernCore
import TernWire

/// Exactly-once consume-transform-produce: acknowledgements of received messages, sends and
/// offset commits staged in a transaction and applied by the broker in one LMDB transaction.
///
/// ```swift
/// let producer = TransactionalProducer(client: client, transactionalID: "uppercase")
/// for try await message in QueueConsumer(client: client, queue: "in", batchSize: 100) {
///     try await producer.begin()
///     await producer.send(OutgoingMessage(body: Array(message.text.uppercased().utf8)), to: "out")
///     await producer.acknowledge(message)
///     try await producer.commit()
/// }
/// ```
///
/// Staged operations stay in this process until ``commit()``, which ships them in one
/// `CommitTransaction` request: consumers never see a message of an uncommitted transaction.
/// A commit whose answer was lost is sent again with the same transaction sequence; the broker
/// answers a repeat with the original result and applies nothing.
///
/// Fencing: the broker maps the transactional id to one producer id and bumps its epoch each time
/// a producer with that id starts. The older instance then fails with `ProducerFenced` and must
/// stop (a zombie after a pause or a network partition cannot commit).
public actor TransactionalProducer {
    public let client: TernClient
    public let transactionalID: String
    private var identity: (producerID: UInt64, epoch: UInt32)?
    private var transactionSequence: UInt64 = 0
    private var open = false
    private var staged = WireTransaction(producerID: 0, epoch: 0, transactionSequence: 0)
    /// The partition and offset of every record the last committed transaction produced, one
    /// array per ``produce(_:key:partition:to:)`` call in staging order (consecutive produces to
    /// one topic merged into one array).
    public private(set) var lastProduced: [[TopicOffset]] = []
    /// Group consumers whose offsets the open transaction commits (``commitOffsets(of:)``).
    private var consumersToMark: [(GroupConsumer, [Int: UInt64])] = []
    /// Messages acknowledged through ``acknowledge(_:)-(QueueMessage)`` in the open transaction.
    private var acknowledgedMessages: [QueueMessage] = []
    /// How often a commit is retried after a lost connection. Default 100.
    public var maxRetries = 100

    public init(client: TernClient, transactionalID: String) {
        self.client = client
        self.transactionalID = transactionalID
    }

    /// The producer id and epoch, once ``initialize()`` (or the first ``begin()``) ran.
    public var producer: (producerID: UInt64, epoch: UInt32)? { identity }

    /// Registers with the broker (`InitProducer`), fencing every earlier producer of the same
    /// transactional id. Called by the first ``begin()``; call it earlier to fence at once.
    public func initialize() async throws(TernError) {
        var attempt = 0
        while true {
            do throws(TernError) {
                guard case .producer(let id, let epoch) = try await client.call(.initProducer(transactionalID: transactionalID)) else {
                    throw client.unexpected()
                }
                identity = (id, epoch)
                transactionSequence = 0
                return
            } catch where error.code == .unavailable && attempt < maxRetries {
                try? await client.backoff(attempt: attempt)
                attempt += 1
            } catch {
                throw error
            }
        }
    }

    /// Starts a transaction.
    /// - Throws: ``TernError`` `Conflict` when one is already open; `ProducerFenced` when a newer
    ///   producer took the transactional id.
    public func begin() async throws(TernError) {
        guard !open else { throw TernError(.conflict, "a transaction is already open; commit or abort it first") }
        if identity == nil { try await initialize() }
        let identity = identity!
        staged = WireTransaction(producerID: identity.producerID, epoch: identity.epoch, transactionSequence: transactionSequence + 1)
        open = true
    }

    /// Stages `message` for `queue`.
    public func send(_ message: OutgoingMessage, to queue: String) {
        precondition(open, "send outside a transaction: call begin() first")
        if let last = staged.sends.indices.last, staged.sends[last].queue == queue {
            staged.sends[last].messages.append(message)
        } else {
            staged.sends.append(.init(queue: queue, messages: [message]))
        }
    }

    /// Stages a record for `topic`: with `partition` there, with a `key` to Kafka's murmur2
    /// partition for the key, otherwise to the broker's sticky partition for this transaction.
    /// Readers of the topic see it only once the transaction commits.
    public func produce(_ value: [UInt8], key: [UInt8]? = nil, partition: Int? = nil, to topic: String) {
        precondition(open, "produce outside a transaction: call begin() first")
        let record = TopicMessage(key: key, value: value, partition: partition)
        if let last = staged.produces.indices.last, staged.produces[last].topic == topic {
            staged.produces[last].messages.append(record)
        } else {
            staged.produces.append(.init(topic: topic, messages: [record]))
        }
    }

    /// Stages the acknowledgement of a delivery (`receiptHandle` of a message received from `queue`).
    public func acknowledge(_ receiptHandle: String, on queue: String) {
        precondition(open, "acknowledge outside a transaction: call begin() first")
        staged.acknowledgements.append(.init(queue: queue, receiptHandle: receiptHandle))
    }

    /// Stages the acknowledgement of `message`. Once the transaction commits, the message's
    /// automatic visibility extension (``QueueConsumer/AutoExtension``) ends.
    public func acknowledge(_ message: QueueMessage) {
        acknowledge(message.receiptHandle, on: message.queue)
        acknowledgedMessages.append(message)
    }

    /// Stages a consumer group's offset for a topic partition: `offset` is the next offset to
    /// read. Pass `member` (the consuming member's id and generation) when the group has
    /// members; the commit then fails with `StaleGeneration` or `Conflict` if the group
    /// rebalanced or the member lost the partition, and nothing of the transaction is applied.
    /// Without `member` the broker accepts it only while the group has no members.
    public func commitOffsets(topic: String, group: String, partition: UInt32, offset: UInt64,
                              member: (id: String, generation: UInt32)? = nil) {
        precondition(open, "commitOffsets outside a transaction: call begin() first")
        staged.offsets.append(.init(topic: topic, group: group, partition: partition, offset: offset, member: member))
    }

    /// Stages the positions `consumer` handed out since its last commit, with its member id and
    /// generation (Kafka's `sendOffsetsToTransaction(offsets, groupMetadata)`): if the group
    /// rebalanced before the commit, the whole transaction fails with `StaleGeneration` or
    /// `Conflict` and nothing of it is applied. Once the transaction commits, the consumer
    /// counts them as committed.
    ///
    /// ```swift
    /// for try await record in consumer.messages {
    ///     try await producer.begin()
    ///     await producer.produce(transform(record.value), to: "out")
    ///     await producer.commitOffsets(of: consumer)
    ///     try await producer.commit()
    /// }
    /// ```
    public func commitOffsets(of consumer: GroupConsumer) async {
        precondition(open, "commitOffsets outside a transaction: call begin() first")
        let (memberID, generation, offsets) = await consumer.uncommittedOffsets()
        for (partition, offset) in offsets.sorted(by: { $0.key < $1.key }) {
            staged.offsets.append(.init(topic: consumer.topic, group: consumer.group, partition: UInt32(partition), offset: offset,
                                        member: (id: memberID, generation: generation)))
        }
        consumersToMark.append((consumer, offsets))
    }

    /// Applies everything staged, atomically.
    /// - Returns: per send (in staging order, consecutive sends to one queue merged), the messages stored.
    /// - Throws: ``TernError``. After `ProducerFenced` this producer is finished. After any other
    ///   error nothing of the transaction was applied and it is closed (like ``abort()``).
    @discardableResult
    public func commit() async throws(TernError) -> [[SentMessage]] {
        guard open else { throw TernError(.conflict, "no open transaction") }
        defer {
            open = false
            staged = WireTransaction(producerID: 0, epoch: 0, transactionSequence: 0)
            acknowledgedMessages = []
            consumersToMark = []
        }
        let transaction = staged
        var attempt = 0
        while true {
            do throws(TernError) {
                guard case .committed(let sent, let produced, _) = try await client.call(.commitTransaction(transaction)) else {
                    throw client.unexpected()
                }
                transactionSequence = transaction.transactionSequence
                lastProduced = produced
                for message in acknowledgedMessages { message.stopAutoExtension() }
                for (consumer, offsets) in consumersToMark { await consumer.markCommitted(offsets) }
                return sent
            } catch where error.code == .unavailable && attempt < maxRetries {
                try? await client.backoff(attempt: attempt)
                attempt += 1
            } catch {
                if error.code == .unknownProducer { identity = nil }
                throw error
            }
        }
    }

    /// Discards everything staged. Acknowledged messages stay in flight and return to their
    /// queue when their visibility timeout expires.
    public func abort() async {
        open = false
        staged = WireTransaction(producerID: 0, epoch: 0, transactionSequence: 0)
        acknowledgedMessages = []
        consumersToMark = []
        if let identity {
            _ = try? await client.call(.abortTransaction(producerID: identity.producerID, epoch: identity.epoch))
        }
    }
}
