public import TernCore
public import TernStorage

/// The one way the broker's state changes: ``apply(_:in:)`` of a ``CommandEnvelope`` in a
/// write transaction.
///
/// `apply` reads no clock, no random source and no memory that is not derived from LMDB: its
/// effect and its result (ids, sequences, offsets, receipt handles, errors) are a function of
/// the command and the stored state. Command time is monotonic: a command is applied at
/// `max(envelope.time, last applied time)`, so a node whose clock lags (or a wall clock that
/// jumps back) cannot move deadlines backwards. When the command log is on, the command is
/// appended to it in the same transaction as its effects (``CommandLog``).
///
/// A command that throws changes nothing — either it throws before writing, or the
/// group-commit writer rolls the transaction back and re-applies the batch without it — and
/// is not logged.
public struct StateMachine: Sendable {
    public let queues: QueueStore
    public let topics: TopicStore
    public let producers: ProducerStore
    public let log: CommandLog
    /// Recently deleted queue names (``Command/noteDeletedQueue(_:keepMilliseconds:)``).
    public let deletedNames: DeletedQueueNames

    /// - Parameters:
    ///   - logLimitBytes: bytes of encoded commands the log keeps (the oldest are trimmed beyond
    ///     it); 0 = no log (the applied index and time are still kept).
    ///   - producerIDs: whether this state issues producer ids or adopts those another group
    ///     issued (a queue group; ``ProducerStore/ProducerIDs``).
    public init(storage: Storage, logLimitBytes: Int = 0, producerIDs: ProducerStore.ProducerIDs = .issued) {
        queues = QueueStore(storage: storage)
        topics = TopicStore(storage: storage)
        producers = ProducerStore(storage: storage, ids: producerIDs)
        log = CommandLog(storage: storage, limitBytes: logLimitBytes)
        deletedNames = DeletedQueueNames(storage: storage)
    }

    /// Applies `envelope` in `txn`.
    /// - Returns: the command's result, effects, the time it was applied at and its log index.
    /// - Throws: the ``TernError`` the command fails with (`QueueNotFound`, `ReceiptHandleStale`,
    ///   `StaleGeneration`, …; see each ``Broker`` method), or a ``StorageError``; nothing was
    ///   changed then.
    public func apply(_ envelope: CommandEnvelope, in txn: WriteTransaction) throws -> CommandOutcome {
        let now = Swift.max(envelope.time, try log.appliedTime(in: txn))
        var effects = CommandEffects()
        let result = try run(envelope.command, at: now, effects: &effects, in: txn)
        let index = try log.append(CommandEnvelope(time: now, command: envelope.command), in: txn)
        return CommandOutcome(time: now, logIndex: index, result: result, effects: effects)
    }

    private func run(_ command: Command, at now: Timestamp, effects: inout CommandEffects, in txn: WriteTransaction) throws -> CommandResult {
        switch command {
        case .createOrUpdateQueue(let name, let patch):
            let (created, record) = try queues.createOrUpdate(name, patch: patch, at: now, in: txn)
            return .queue(created: created, record, oldestSentAt: created ? nil : try queues.oldestSentAt(queue: record.id, in: txn))

        case .deleteQueue(let name):
            return .queueDeleted(id: try queues.delete(name, in: txn))

        case .noteDeletedQueue(let name, let keep):
            try deletedNames.note(name, keep: keep, at: now, in: txn)
            return .deletedQueueNoted(try deletedNames.entry(name, at: now, in: txn)
                ?? DeletedQueueNames.Entry(deletedAt: now, until: now))

        case .updateQueueMetadata(let name, let patch):
            let (queue, metadata) = try queues.updateMetadata(name, patch, at: now, in: txn)
            return .queueMetadata(metadata, queueID: queue)

        case .send(let name, let messages, let seed):
            let prepared = Self.prepare(messages, seed: seed, at: now)
            let sent = try queues.send(name, prepared, at: now, in: txn)
            let queue = try queues.record(named: name, in: txn).id
            if sent.contains(where: { !$0.duplicate && $0.visibleAt <= now }) { effects.queuesWithNewMessages.insert(queue) }
            return .sent(sent, duplicate: false, queueID: queue)

        case .sendIdempotent(let name, let messages, let stamp, let seed):
            guard !messages.isEmpty else { throw TernError(.invalidParameter, "a send needs at least one message") }
            let prepared = Self.prepare(messages, seed: seed, at: now)
            let result = try producers.send(name, prepared, stamp: (stamp.producer.producerID, stamp.producer.epoch, stamp.firstSequence),
                                            idSeed: seed, at: now, in: txn)
            let queue = try queues.record(named: name, in: txn).id
            if !result.duplicate, result.sent.contains(where: { $0.visibleAt <= now }) { effects.queuesWithNewMessages.insert(queue) }
            return .sent(result.sent, duplicate: result.duplicate, queueID: queue)

        case .receive(let name, let maxMessages, let visibilityTimeout, let autoAcknowledge, let seed):
            let messages = try queues.receive(name, maxMessages: maxMessages, visibilityTimeout: visibilityTimeout, nonceSeed: seed,
                                              autoAcknowledge: autoAcknowledge, at: now, effects: &effects, in: txn)
            return .received(messages, queueID: try queues.record(named: name, in: txn).id)

        case .acknowledge(let name, let handles):
            return .acknowledged(try queues.acknowledge(name, handles: handles, in: txn))

        case .changeVisibility(let name, let handle, let timeout):
            try queues.changeVisibility(name, handle: handle, timeout: timeout, at: now, effects: &effects, in: txn)
            if timeout == 0 { effects.queuesWithNewMessages.insert(handle.queue) }
            return .visibilityChanged(queueID: handle.queue)

        case .changeVisibilityBatch(let name, let changes):
            let queue = try queues.record(named: name, in: txn).id
            let results = try queues.changeVisibility(name, changes: changes, at: now, effects: &effects, in: txn)
            if zip(changes, results).contains(where: { $0.timeout == 0 && $1 == nil }) { effects.queuesWithNewMessages.insert(queue) }
            return .visibilityChangedBatch(results, queueID: queue)

        case .purge(let queue, let bound, let limit):
            let (removed, finished) = try queues.sweep(queue: queue, below: bound, limit: limit, in: txn)
            return .purged(removed: removed, finished: finished)

        case .purgeQueue(let name):
            let (queue, purged, below) = try queues.purge(name, in: txn)
            return .queuePurged(queueID: queue, purged: purged, below: below)

        case .redrive(let name, let resume, let limit):
            let (moved, next) = try queues.redrive(name, after: resume, limit: limit, in: txn)
            if moved > 0 { effects.queuesWithNewMessages.formUnion(try queues.allRecords(in: txn).map(\.id)) }
            return .redriven(moved: moved, next: next)

        case .tick(let limit):
            let report = try queues.processDue(at: now, limit: limit, effects: &effects, in: txn)
            effects.queuesWithNewMessages.formUnion(report.queuesWithNewMessages)
            let expired = try queues.expireRetention(at: now, limit: limit, effects: &effects, in: txn)
            var swept = 0
            var sweepMore = false
            if let deleted = try queues.allRecords(in: txn).first(where: \.deleted) {
                let result = try queues.sweep(queue: deleted.id, below: nil, limit: limit, in: txn)
                swept = result.removed
                let anotherDeleted = try queues.allRecords(in: txn).contains(where: \.deleted)
                sweepMore = !result.finished || anotherDeleted
            }
            // What purges left (decision 112), one chunk.
            let purged = try queues.sweepPurged(limit: limit, in: txn)
            swept += purged.removed
            sweepMore = sweepMore || purged.more
            return .tick(report, expired: expired, swept: swept, sweepMore: sweepMore)

        case .retention(let limit):
            let expired = try topics.expireRetention(at: now, limit: limit, in: txn)
            let swept = try topics.sweepDeleted(limit: limit, in: txn)
            let forgotten = try queues.expireDeduplication(at: now, limit: limit, in: txn)
            return .retention(removed: expired.dropped + swept.removed + forgotten,
                              more: expired.more || swept.more || forgotten == limit)

        case .createOrUpdateTopic(let name, let patch):
            guard !name.isFIFO else { throw TernError(.invalidName, "topic names may not end in .fifo") }
            let (created, record) = try topics.createOrUpdate(name, patch: patch, at: now, in: txn)
            return .topic(created: created, record)

        case .deleteTopic(let name):
            return .topicDeleted(id: try topics.delete(name, in: txn))

        case .produce(let produce):
            try checkRouting(produce, in: txn)
            guard let stamp = produce.stamp else {
                return .produced(bases: try append(produce, at: now, in: txn), sticky: produce.sticky, duplicate: false)
            }
            let outcome = try producers.produce(topic: produce.topicID, topicName: produce.topic,
                                                stamp: (stamp.producer.producerID, stamp.producer.epoch, stamp.firstSequence),
                                                count: produce.messages.count, stickyPartition: produce.sticky, at: now, in: txn) {
                try append(produce, at: now, in: txn)
            }
            return .produced(bases: outcome.bases, sticky: outcome.stickyPartition, duplicate: outcome.duplicate)

        case .joinGroup(let topic, let group, let memberID, let sessionTimeout):
            guard ConsumerGroup.sessionTimeoutRange.contains(sessionTimeout) else {
                throw TernError(.invalidParameter, "session_timeout must be 1–300 seconds")
            }
            let (record, state) = try groupState(topic, group, in: txn)
            guard state.members[memberID] == nil else { throw TernError(.conflict, "member \(memberID) is already in the group") }
            var next = state
            _ = next.join(memberID: memberID, sessionTimeoutMilliseconds: Int64(sessionTimeout) * 1000)
            try topics.putGroupState(next, topic: record.id, group: group.rawValue, in: txn)
            return .group(next, topicID: record.id)

        case .leaveGroup(let topic, let group, let memberID):
            let (record, state) = try groupState(topic, group, in: txn)
            var next = state
            guard next.remove([memberID]) != nil else { throw Broker.unknownMember(memberID) }
            try topics.putGroupState(next, topic: record.id, group: group.rawValue, in: txn)
            return .group(next, topicID: record.id)

        case .expireMembers(let topic, let group, let memberIDs):
            let (record, state) = try groupState(topic, group, in: txn)
            var next = state
            if next.remove(memberIDs) != nil {
                try topics.putGroupState(next, topic: record.id, group: group.rawValue, in: txn)
            }
            return .group(next, topicID: record.id)

        case .commitOffsets(let commit):
            let record = try topics.record(named: commit.topic, in: txn)
            try commitOffsets(commit, record: record, at: now, in: txn)
            return .offsetsCommitted(topicID: record.id)

        case .resetOffsets(let topic, let group, let target):
            let (record, state) = try groupState(topic, group, in: txn)
            guard state.isEmpty else { throw TernError(.conflict, "offsets can only be reset while the group has no members") }
            var offsets = [Int: UInt64]()
            for partition in 0..<record.attributes.partitions {
                let partitionState = try topics.partitionState(topic: record.id, partition: partition, in: txn)
                switch target {
                case .earliest: offsets[partition] = partitionState.logStart
                case .latest: offsets[partition] = partitionState.highWatermark
                case .timestamp(let time):
                    offsets[partition] = try topics.offset(forTime: time, topic: record.id, partition: partition, in: txn)
                }
            }
            try topics.commit(topic: record.id, group: group.rawValue, offsets: offsets, at: now, in: txn)
            return .offsetsCommitted(topicID: record.id)

        case .initProducer(let transactionalID):
            let (id, epoch) = try producers.initProducer(transactionalID: transactionalID, at: now, in: txn)
            return .producer(ProducerIdentity(producerID: id, epoch: epoch))

        case .commitTransaction(let transaction):
            return try commit(transaction, at: now, effects: &effects, in: txn)

        case .expireProducers(let idleSeconds, let limit):
            return .producersExpired(try producers.expire(activeBefore: now.adding(seconds: -idleSeconds), limit: limit, in: txn))

        case .setStorageLimit(let bytes):
            try queues.quota.setLimit(bytes, in: txn)
            return .storageLimit(used: try queues.quota.used(in: txn), limit: bytes)
        }
    }

    // MARK: Helpers

    /// The messages of a send with their ids derived from `seed` and the command time.
    static func prepare(_ messages: [OutgoingMessage], seed: UInt64, at now: Timestamp) -> [QueueStore.PreparedMessage] {
        messages.enumerated().map { index, message in
            QueueStore.PreparedMessage(id: ProducerBatch.messageID(seed: seed, index: index, at: now), message: message)
        }
    }

    /// The live topic `topic` and the stored state of `group` on it (empty when no member ever joined).
    private func groupState(_ topic: QueueName, _ group: QueueName, in txn: Transaction) throws -> (TopicRecord, ConsumerGroup.State) {
        let record = try topics.record(named: topic, in: txn)
        let state = try topics.groupState(topic: record.id, group: group.rawValue, in: txn)
            ?? ConsumerGroup.State(partitionCount: record.attributes.partitions)
        return (record, state)
    }

    /// Refuses a produce routed for a topic that was deleted (and perhaps re-created) since.
    private func checkRouting(_ produce: TopicProduce, in txn: Transaction) throws {
        let record = try topics.record(named: produce.topic, in: txn)
        guard record.id == produce.topicID else { throw TernError(.topicNotFound, "topic \(produce.topic) was deleted") }
        guard produce.targets.count == produce.messages.count,
              produce.targets.allSatisfy({ (0..<record.attributes.partitions).contains($0) }) else {
            throw TernError(.invalidParameter, "the produce's partitions do not fit topic \(produce.topic)")
        }
    }

    /// Appends one batch per partition. - Returns: the base offset each partition's batch got.
    private func append(_ produce: TopicProduce, at now: Timestamp, in txn: WriteTransaction) throws -> [Int: UInt64] {
        var groups = [Int: [(key: [UInt8]?, value: [UInt8])]]()
        for (message, partition) in zip(produce.messages, produce.partitions(sticky: produce.sticky)) {
            groups[partition, default: []].append((message.key, message.value))
        }
        var bases = [Int: UInt64]()
        for (partition, entries) in groups.sorted(by: { $0.key < $1.key }) {
            bases[partition] = try topics.append(topic: produce.topicID, partition: partition, messages: entries, at: now, in: txn)
        }
        return bases
    }

    /// Checks the member's generation and ownership (or that the group has no members) and
    /// writes the offsets (decision 24: the check and the write share the transaction).
    private func commitOffsets(_ commit: OffsetCommitCommand, record: TopicRecord, at now: Timestamp, in txn: WriteTransaction) throws {
        let state = try topics.groupState(topic: record.id, group: commit.group.rawValue, in: txn)
            ?? ConsumerGroup.State(partitionCount: record.attributes.partitions)
        if let memberID = commit.memberID, let generation = commit.generation {
            try state.validateCommit(memberID: memberID, generation: generation, partitions: commit.offsets.keys)
        } else if !state.isEmpty {
            throw TernError(.conflict, "group \(commit.group) of topic \(commit.topic) has members: a transactional offset commit must carry the committing member's member_id and generation")
        }
        try topics.commit(topic: record.id, group: commit.group.rawValue, offsets: commit.offsets, at: now, in: txn)
    }

    private func commit(_ transaction: TransactionCommand, at now: Timestamp, effects: inout CommandEffects,
                        in txn: WriteTransaction) throws -> CommandResult {
        // When each acknowledged message was sent, for the time-in-queue histogram.
        let sentAts = try transaction.acknowledgements.map { ack in
            try txn.get(queues.messages, QueueSchema.messageKey(queue: ack.handle.queue, sequence: ack.handle.sequence))
                .map { try MessageHeader(decoding: $0).sentAt }
        }
        let sends = transaction.sends.map { send in
            ProducerStore.TransactionSend(queue: send.queue, messages: Self.prepare(send.messages, seed: send.idSeed, at: now),
                                          idSeed: send.idSeed)
        }
        let result = try producers.commit(producerID: transaction.producer.producerID, epoch: transaction.producer.epoch,
                                          transactionSequence: transaction.sequence, sends: sends,
                                          acknowledgements: transaction.acknowledgements.map { ($0.queue, $0.handle) },
                                          at: now, in: txn) {
            try transaction.produces.map { produce in
                try checkRouting(produce, in: txn)
                return TopicProducerBatch(firstSequence: 0, count: UInt32(produce.messages.count), stickyPartition: produce.sticky,
                                          bases: try append(produce, at: now, in: txn))
            }
        }
        if !result.duplicate {
            for commit in transaction.offsets {
                try commitOffsets(commit, record: try topics.record(named: commit.topic, in: txn), at: now, in: txn)
            }
        }
        let queueIDs = try transaction.sends.map { try queues.record(named: $0.queue, in: txn).id }
        if !result.duplicate { effects.queuesWithNewMessages.formUnion(queueIDs) }
        let produced = zip(transaction.produces, result.produced).map { produce, batch in
            produce.offsets(sticky: batch.stickyPartition, bases: batch.bases)
        }
        return .transaction(TransactionResult(sent: result.sent, produced: produced, duplicate: result.duplicate),
                            queueIDs: queueIDs, sentAts: sentAts)
    }
}

extension TopicProduce {
    /// The partition of each message when keyless ones went to `sticky` (a retried request
    /// is answered with the partition its original used).
    public func partitions(sticky original: Int?) -> [Int] {
        zip(messages, targets).map { message, target in
            message.partition == nil && message.key == nil ? (original ?? target) : target
        }
    }

    /// Each message's partition and offset, in request order.
    public func offsets(sticky: Int?, bases: [Int: UInt64]) -> [TopicOffset] {
        var next = bases
        return partitions(sticky: sticky).map { partition in
            defer { next[partition, default: 0] += 1 }
            return TopicOffset(partition: partition, offset: next[partition, default: 0])
        }
    }
}
