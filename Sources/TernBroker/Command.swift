public import TernCore

/// One state change of the broker, as a value: everything its effect depends on — the time,
/// the random seeds, the decided routing — is in the command or in the stored state, so
/// applying the same commands in the same order to another environment gives the same state
/// (the basis of the command log, `tern-lmdb replay` and, in a cluster, of replication: the
/// entries of a Raft log are exactly these commands; Ongaro & Ousterhout 2014, §2, "replicated
/// state machines").
///
/// ``Broker`` decides the values (it reads the clock and the random source), wraps the command
/// in a ``CommandEnvelope`` with the time, and hands it to ``StateMachine/apply(_:in:)`` on
/// the writer thread; nothing else changes state.
public enum Command: Sendable, Hashable {
    // Queues
    /// Creates the queue or applies the patch to it.
    case createOrUpdateQueue(QueueName, QueueAttributes.Patch)
    /// Removes the queue's name (and its ``QueueMetadata``) at once; its messages are swept by
    /// later ``tick(limit:)``s.
    case deleteQueue(QueueName)
    /// Remembers that a queue named `name` was deleted at the command time, for
    /// `keepMilliseconds` (``DeletedQueueNames``: a front end's rule on re-using names, SQS's
    /// 60 s); drops the names whose time ended.
    case noteDeletedQueue(QueueName, keepMilliseconds: UInt64)
    /// Sets or removes tags and front-end attributes of a queue (``QueueMetadata``), optionally
    /// only if they are still as they were read (``QueueMetadataPatch/expected``).
    case updateQueueMetadata(QueueName, QueueMetadataPatch)
    /// Stores messages, all or nothing; their ids derive from `idSeed` and the command time
    /// (``ProducerBatch/messageID(seed:index:at:)``).
    case send(QueueName, [OutgoingMessage], idSeed: UInt64)
    /// An idempotent send: stored once per producer stamp, however often it is retried.
    case sendIdempotent(QueueName, [OutgoingMessage], stamp: ProducerStamp, idSeed: UInt64)
    /// Delivers up to `maxMessages` messages; the receipt nonces derive from `nonceSeed`
    /// (``ReceiptNonce/derive(seed:index:)``).
    case receive(QueueName, maxMessages: Int, visibilityTimeout: Int?, autoAcknowledge: Bool, nonceSeed: UInt64)
    /// Deletes the deliveries of the handles, each independently.
    case acknowledge(QueueName, [ReceiptHandle])
    /// Sets a delivery's visibility deadline to the command time + `timeout` seconds.
    case changeVisibility(QueueName, ReceiptHandle, timeout: Int)
    /// Changes the visibility of many deliveries of one queue, each independently (a stale,
    /// expired or out-of-range entry fails in its slot, the others apply), as SQS's
    /// `ChangeMessageVisibilityBatch` does.
    case changeVisibilityBatch(QueueName, [VisibilityChange])
    /// Removes up to `limit` messages of queue `queueID` below sequence `below` (one chunk of a
    /// purge as builds before decision 112 applied it; kept for their logs).
    case purge(queueID: UInt32, below: UInt64, limit: Int)
    /// Purges the queue at once (decision 112): its messages are gone for clients in this one
    /// command (a watermark), and ``tick(limit:)``s remove their records in chunks.
    case purgeQueue(QueueName)
    /// Moves up to `limit` ready messages of a dead-letter queue, from sequence `after` on,
    /// back to their source queues (one chunk of a redrive).
    case redrive(QueueName, after: UInt64, limit: Int)
    /// Due work at the command time: visibility timeouts that expired (back to ready or to the
    /// dead-letter queue), delays that passed, queue retention, and one chunk of a deleted
    /// queue's messages; at most `limit` of each.
    case tick(limit: Int)
    /// Retention beyond queues at the command time: topic batches past their retention or
    /// `max_bytes`, data of deleted topics, FIFO deduplication ids past their window.
    case retention(limit: Int)

    // Topics and consumer groups
    case createOrUpdateTopic(QueueName, TopicAttributes.Patch)
    case deleteTopic(QueueName)
    /// Appends records to their decided partitions; idempotent with a stamp.
    case produce(TopicProduce)
    /// A member joins (its id chosen by the coordinator); the group rebalances.
    case joinGroup(topic: QueueName, group: QueueName, memberID: String, sessionTimeout: Int)
    /// A member leaves; the group rebalances.
    case leaveGroup(topic: QueueName, group: QueueName, memberID: String)
    /// The coordinator saw these members miss their session timeout; the group rebalances.
    case expireMembers(topic: QueueName, group: QueueName, memberIDs: [String])
    /// Commits offsets of a group, fenced by the member's generation (or allowed only while
    /// the group has no members, without one).
    case commitOffsets(OffsetCommitCommand)
    /// Moves every committed offset of a group without members.
    case resetOffsets(topic: QueueName, group: QueueName, to: OffsetReset)

    // Producers and transactions
    /// Issues a producer id and epoch (fencing earlier holders of a transactional id).
    case initProducer(transactionalID: String?)
    /// Applies a whole transaction, all or nothing.
    case commitTransaction(TransactionCommand)
    /// Deletes producers idle for longer than `idleSeconds` before the command time.
    case expireProducers(idleSeconds: Int, limit: Int)

    // Node-wide settings that are state
    /// Sets the logical space quota (``StorageQuota``) in accounted bytes; nil removes it.
    case setStorageLimit(bytes: UInt64?)

    /// Whether the command adds records (refused once the map reaches its reserve, which
    /// stays for the commands that free space: acknowledgements, purges, deletes).
    public var grows: Bool {
        switch self {
        case .createOrUpdateQueue, .send, .sendIdempotent, .createOrUpdateTopic, .produce, .joinGroup, .commitOffsets,
             .resetOffsets, .initProducer, .commitTransaction:
            return true
        case .updateQueueMetadata(_, let patch):
            return patch.grows
        case .deleteQueue, .noteDeletedQueue, .receive, .acknowledge, .changeVisibility, .changeVisibilityBatch, .purge, .purgeQueue, .redrive, .tick, .retention, .deleteTopic,
             .leaveGroup, .expireMembers, .expireProducers, .setStorageLimit:
            return false
        }
    }

    /// A short stable name of the command kind (`tern-lmdb log`, metrics).
    public var kind: String {
        switch self {
        case .createOrUpdateQueue: "create_queue"
        case .deleteQueue: "delete_queue"
        case .noteDeletedQueue: "note_deleted_queue"
        case .updateQueueMetadata: "update_queue_metadata"
        case .send: "send"
        case .sendIdempotent: "send_idempotent"
        case .receive: "receive"
        case .acknowledge: "acknowledge"
        case .changeVisibility: "change_visibility"
        case .changeVisibilityBatch: "change_visibility_batch"
        case .purge: "purge"
        case .purgeQueue: "purge_queue"
        case .redrive: "redrive"
        case .tick: "tick"
        case .retention: "retention"
        case .createOrUpdateTopic: "create_topic"
        case .deleteTopic: "delete_topic"
        case .produce: "produce"
        case .joinGroup: "join_group"
        case .leaveGroup: "leave_group"
        case .expireMembers: "expire_members"
        case .commitOffsets: "commit_offsets"
        case .resetOffsets: "reset_offsets"
        case .initProducer: "init_producer"
        case .commitTransaction: "commit_transaction"
        case .expireProducers: "expire_producers"
        case .setStorageLimit: "set_storage_limit"
        }
    }

    /// The queue or topic the command addresses, nil for node-wide ones.
    public var target: String? {
        switch self {
        case .createOrUpdateQueue(let name, _), .deleteQueue(let name), .send(let name, _, _), .sendIdempotent(let name, _, _, _),
             .receive(let name, _, _, _, _), .acknowledge(let name, _), .changeVisibility(let name, _, _), .redrive(let name, _, _),
             .changeVisibilityBatch(let name, _), .updateQueueMetadata(let name, _), .purgeQueue(let name),
             .noteDeletedQueue(let name, _),
             .createOrUpdateTopic(let name, _), .deleteTopic(let name), .joinGroup(let name, _, _, _), .leaveGroup(let name, _, _),
             .expireMembers(let name, _, _), .resetOffsets(let name, _, _):
            return name.rawValue
        case .produce(let produce): return produce.topic.rawValue
        case .commitOffsets(let commit): return commit.topic.rawValue
        case .purge(let id, _, _): return "queue#\(id)"
        case .tick, .retention, .initProducer, .commitTransaction, .expireProducers, .setStorageLimit: return nil
        }
    }
}

/// A command with the time it was decided at, as it is applied and logged.
public struct CommandEnvelope: Sendable, Hashable {
    /// When the command was decided (the deciding node's wall clock). ``StateMachine`` applies
    /// it at `max(time, last applied time)`, so command time never goes backwards.
    public var time: Timestamp
    public var command: Command

    public init(time: Timestamp, command: Command) {
        self.time = time
        self.command = command
    }
}

/// One entry of ``Command/changeVisibilityBatch(_:_:)``: a delivery and its new visibility
/// timeout, in seconds from the command time (0 releases the message at once; 0–43,200).
public struct VisibilityChange: Sendable, Hashable {
    public var handle: ReceiptHandle
    /// Seconds; 0 makes the message ready again at once.
    public var timeout: Int

    public init(handle: ReceiptHandle, timeout: Int) {
        self.handle = handle
        self.timeout = timeout
    }
}

/// Records for a topic with their partitions decided (keys hashed, the sticky partition of
/// keyless records chosen), optionally stamped by an idempotent producer.
public struct TopicProduce: Sendable, Hashable {
    public var topic: QueueName
    /// The topic's id when routed; a topic re-created since is refused (`TopicNotFound`).
    public var topicID: UInt32
    public var messages: [TopicMessage]
    /// The partition of each message, in request order.
    public var targets: [Int]
    /// The partition keyless messages go to, nil when there are none.
    public var sticky: Int?
    public var stamp: ProducerStamp?

    public init(topic: QueueName, topicID: UInt32, messages: [TopicMessage], targets: [Int], sticky: Int?, stamp: ProducerStamp? = nil) {
        self.topic = topic
        self.topicID = topicID
        self.messages = messages
        self.targets = targets
        self.sticky = sticky
        self.stamp = stamp
    }
}

/// The offsets of one consumer group on one topic, committed together.
public struct OffsetCommitCommand: Sendable, Hashable {
    public var topic: QueueName
    public var group: QueueName
    /// With ``generation``: the committing member (fenced by generation and ownership);
    /// without: allowed only while the group has no members.
    public var memberID: String?
    public var generation: UInt32?
    /// Partition → next offset to consume.
    public var offsets: [Int: UInt64]

    public init(topic: QueueName, group: QueueName, memberID: String?, generation: UInt32?, offsets: [Int: UInt64]) {
        self.topic = topic
        self.group = group
        self.memberID = memberID
        self.generation = generation
        self.offsets = offsets
    }
}

/// A transaction with its values decided: parsed receipt handles, one id seed per send, routed
/// topic records, grouped offset commits.
public struct TransactionCommand: Sendable, Hashable {
    public struct Send: Sendable, Hashable {
        public var queue: QueueName
        public var messages: [OutgoingMessage]
        public var idSeed: UInt64
        public init(queue: QueueName, messages: [OutgoingMessage], idSeed: UInt64) {
            self.queue = queue
            self.messages = messages
            self.idSeed = idSeed
        }
    }

    public struct Acknowledgement: Sendable, Hashable {
        public var queue: QueueName
        public var handle: ReceiptHandle
        public init(queue: QueueName, handle: ReceiptHandle) {
            self.queue = queue
            self.handle = handle
        }
    }

    public var producer: ProducerIdentity
    /// The transaction sequence; nil = the next one.
    public var sequence: UInt64?
    public var acknowledgements: [Acknowledgement]
    public var sends: [Send]
    /// Topic records (unstamped), appended after the sends.
    public var produces: [TopicProduce]
    public var offsets: [OffsetCommitCommand]

    public init(producer: ProducerIdentity, sequence: UInt64?, acknowledgements: [Acknowledgement], sends: [Send],
                produces: [TopicProduce], offsets: [OffsetCommitCommand]) {
        self.producer = producer
        self.sequence = sequence
        self.acknowledgements = acknowledgements
        self.sends = sends
        self.produces = produces
        self.offsets = offsets
    }
}

/// What applying a command did: the answer for the client and the side effects the shell
/// reports (metrics) and acts on (waking long polls).
public struct CommandOutcome: Sendable {
    /// The time the command was applied at (see ``CommandEnvelope/time``).
    public var time: Timestamp
    /// The index the command was logged under, nil when the command log is off.
    public var logIndex: UInt64?
    public var result: CommandResult
    public var effects: CommandEffects
}

/// Side effects of a command beyond its result, counted while it was applied (dead-letter
/// moves and retention expiries happen inside receives, visibility changes and due work).
public struct CommandEffects: Sendable, Hashable {
    /// Per queue id, messages moved to the queue's dead-letter queue.
    public var deadLettered: [UInt32: Int] = [:]
    /// Per queue id, messages deleted because their retention passed.
    public var expired: [UInt32: Int] = [:]
    /// Queues that gained ready messages (their long-polling receivers should wake).
    public var queuesWithNewMessages: Set<UInt32> = []

    public init() {}
}

/// The answer of one command.
public enum CommandResult: Sendable {
    case queue(created: Bool, QueueRecord, oldestSentAt: Timestamp?)
    case queueDeleted(id: UInt32)
    /// A ``Command/noteDeletedQueue(_:keepMilliseconds:)`` applied: the entry it wrote.
    case deletedQueueNoted(DeletedQueueNames.Entry)
    /// The queue's metadata after an update.
    case queueMetadata(QueueMetadata, queueID: UInt32)
    case sent([SentMessage], duplicate: Bool, queueID: UInt32)
    case received([ReceivedMessage], queueID: UInt32)
    /// Per handle, the message's send time when it was deleted, or the error.
    case acknowledged([Result<Timestamp, TernError>])
    case visibilityChanged(queueID: UInt32)
    /// Per entry of a ``Command/changeVisibilityBatch(_:_:)``, nil when changed, else the error.
    case visibilityChangedBatch([TernError?], queueID: UInt32)
    case purged(removed: Int, finished: Bool)
    /// How many messages a ``Command/purgeQueue(_:)`` purged, and its watermark.
    case queuePurged(queueID: UInt32, purged: Int, below: UInt64)
    case redriven(moved: Int, next: UInt64?)
    case tick(QueueStore.DueReport, expired: Int, swept: Int, sweepMore: Bool)
    case retention(removed: Int, more: Bool)
    case topic(created: Bool, TopicRecord)
    case topicDeleted(id: UInt32)
    /// The base offset of each partition's batch, the sticky partition used, and whether the
    /// produce was a retry answered with the original offsets.
    case produced(bases: [Int: UInt64], sticky: Int?, duplicate: Bool)
    /// The group's stored state after a join, leave or expiry (unchanged when nothing changed).
    case group(ConsumerGroup.State, topicID: UInt32)
    case offsetsCommitted(topicID: UInt32)
    case producer(ProducerIdentity)
    case transaction(TransactionResult, queueIDs: [UInt32], sentAts: [Timestamp?])
    case producersExpired(Int)
    /// The accounted bytes stored and the limit after ``Command/setStorageLimit(bytes:)``.
    case storageLimit(used: UInt64, limit: UInt64?)
}
