public import TernCore
public import TernStorage

/// Applies producer and transaction commands to LMDB, in the caller's write transaction.
///
/// Like ``QueueStore``, every method takes its time and random values (id seeds) as arguments
/// and reads neither a clock nor a random source, so the same commands applied in the same
/// order on another node give the same state. A method that throws before writing leaves
/// nothing behind; one that throws after writing (a transaction whose third operation fails)
/// makes the group-commit writer roll the whole LMDB transaction back and retry the others
/// (decision 10), which is what makes a Tern transaction all or nothing.
public struct ProducerStore: Sendable {
    /// Where the producer ids this state sees come from.
    public enum ProducerIDs: Sendable, Hashable {
        /// This state issues them (`InitProducer`): a write of an id or epoch it never issued is
        /// `UnknownProducer`. A broker alone, and the data group of a cluster.
        case issued
        /// Another group issues them (a queue group's producers come from the data group;
        /// decision 141). A producer's first write here makes its record, and a write at a newer
        /// epoch replaces it; an idempotent send doing either must start its stream (sequence 0),
        /// as a Kafka partition leader accepts an unknown producer (KIP-360). The caller checks
        /// beforehand that the issuing group knows the producer at that epoch.
        case adopted
    }

    let meta, producers, sequences, transactionalIDs: Database
    let queues: QueueStore
    public let ids: ProducerIDs

    public init(storage: Storage, ids: ProducerIDs = .issued) {
        self.ids = ids
        meta = storage.database("meta")
        producers = storage.database("producers")
        sequences = storage.database("producer_sequences")
        transactionalIDs = storage.database("transactional_ids")
        queues = QueueStore(storage: storage)
    }

    /// The record of producer `id`, nil when there is none (never issued, or expired).
    public func record(_ id: UInt64, in txn: Transaction) throws -> ProducerRecord? {
        try txn.get(producers, ProducerSchema.producerKey(id)).map { try ProducerRecord(decoding: $0) }
    }

    /// The producer id registered for `transactionalID`, nil when there is none.
    public func producerID(transactionalID: String, in txn: Transaction) throws -> UInt64? {
        guard let bytes = try txn.get(transactionalIDs, Array(transactionalID.utf8)) else { return nil }
        var reader = BigEndianReader(bytes)
        return try reader.readUInt64()
    }

    /// Issues a producer id and epoch.
    ///
    /// Without a transactional id: a new producer id at epoch 0. With one: the id registered for
    /// it at the next epoch (which fences every earlier holder: their writes now fail with
    /// `ProducerFenced`), or a new id at epoch 0 the first time. The new epoch starts with no
    /// committed transaction and no sequences.
    /// - Throws: ``ErrorCode/invalidParameter`` for an empty or over-long transactional id.
    public func initProducer(transactionalID: String?, at now: Timestamp, in txn: WriteTransaction) throws -> (id: UInt64, epoch: UInt32) {
        if let transactionalID {
            guard (1...ProducerSchema.maxTransactionalIDBytes).contains(transactionalID.utf8.count) else {
                throw TernError(.invalidParameter, "transactional_id must be 1–\(ProducerSchema.maxTransactionalIDBytes) UTF-8 bytes")
            }
            if let id = try producerID(transactionalID: transactionalID, in: txn), let existing = try record(id, in: txn) {
                var record = ProducerRecord(epoch: existing.epoch &+ 1, lastActivity: now, transactionalID: transactionalID)
                record.transactionSequence = 0
                try txn.put(producers, ProducerSchema.producerKey(id), record.encoded())
                return (id, record.epoch)
            }
        }
        let id = try nextProducerID(in: txn)
        try txn.put(producers, ProducerSchema.producerKey(id),
                    ProducerRecord(epoch: 0, lastActivity: now, transactionalID: transactionalID).encoded())
        if let transactionalID {
            var writer = BigEndianWriter(capacity: 8)
            writer.write(id)
            try txn.put(transactionalIDs, Array(transactionalID.utf8), writer.bytes)
        }
        return (id, 0)
    }

    private func nextProducerID(in txn: WriteTransaction) throws -> UInt64 {
        let key = Array("next_producer_id".utf8)
        var next: UInt64 = 1
        if let stored = try txn.get(meta, key) {
            var reader = BigEndianReader(stored)
            next = try reader.readUInt64()
        }
        var writer = BigEndianWriter()
        writer.write(next + 1)
        try txn.put(meta, key, writer.bytes)
        return next
    }

    /// The producer's record when `epoch` is its current epoch.
    /// - Throws: ``ErrorCode/unknownProducer`` (never issued, expired, or an epoch never issued);
    ///   ``ErrorCode/producerFenced`` when a newer epoch exists.
    public func current(_ id: UInt64, epoch: UInt32, in txn: Transaction) throws -> ProducerRecord {
        guard let record = try record(id, in: txn) else {
            throw TernError(.unknownProducer, "producer \(id) is unknown: never issued, or expired after its idle time; call InitProducer again")
        }
        if epoch < record.epoch {
            throw TernError(.producerFenced, "producer \(id) epoch \(epoch) was fenced by epoch \(record.epoch) (a newer producer with the same transactional id)")
        }
        if epoch > record.epoch {
            throw TernError(.unknownProducer, "producer \(id) has no epoch \(epoch) (current: \(record.epoch))")
        }
        return record
    }

    /// The record a write of producer `id` at `epoch` goes on: ``current(_:epoch:in:)`` when ids
    /// are ``ProducerIDs/issued`` here; when they are ``ProducerIDs/adopted``, a fresh record at
    /// `epoch` for a producer this state has not seen at that epoch (none, or an older epoch).
    /// - Parameter startsStream: whether the write may begin a producer's stream here (an
    ///   idempotent send at sequence 0, or a transaction).
    /// - Throws: ``ErrorCode/unknownProducer``: an unissued id or epoch, or (adopted) an unseen one
    ///   that does not start its stream; ``ErrorCode/producerFenced`` for an older epoch.
    func writer(_ id: UInt64, epoch: UInt32, startsStream: Bool, at now: Timestamp, in txn: Transaction) throws -> ProducerRecord {
        guard ids == .adopted else { return try current(id, epoch: epoch, in: txn) }
        if let record = try record(id, in: txn), epoch <= record.epoch { return try current(id, epoch: epoch, in: txn) }
        guard startsStream else {
            throw TernError(.unknownProducer, "producer \(id) epoch \(epoch) has not written to this queue group yet (or its state here expired): its first send here must have sequence 0; call InitProducer again")
        }
        return ProducerRecord(epoch: epoch, lastActivity: now, transactionalID: nil)
    }

    // MARK: Idempotent send

    /// Stores `batch` in `name` unless it is a retry of a batch already stored.
    ///
    /// The batch's first sequence must be the next one expected from this producer on this
    /// queue (0 at the start of an epoch). A batch equal (first sequence and count) to one of the
    /// last ``ProducerSchema/rememberedBatches`` is a duplicate: nothing is stored and the
    /// original ids and sequences are returned.
    /// - Parameters:
    ///   - idSeed: the random seed the message ids are derived from (decided by the caller);
    ///     `batch` must carry the ids ``ProducerBatch/messageID(seed:index:at:)`` derives from it.
    /// - Returns: the sent messages and whether the batch was a duplicate.
    /// - Throws: ``ErrorCode/unknownProducer``, ``ErrorCode/producerFenced``,
    ///   ``ErrorCode/outOfOrderSequence`` (a gap, or a sequence older than the remembered
    ///   batches), and everything ``QueueStore/send(_:_:at:in:)`` throws.
    public func send(_ name: QueueName, _ batch: [QueueStore.PreparedMessage], stamp: (producerID: UInt64, epoch: UInt32, firstSequence: UInt64),
                     idSeed: UInt64, at now: Timestamp, in txn: WriteTransaction) throws -> (sent: [SentMessage], duplicate: Bool) {
        var producer = try writer(stamp.producerID, epoch: stamp.epoch, startsStream: stamp.firstSequence == 0, at: now, in: txn)
        let queue = try queues.record(named: name, in: txn)
        let key = ProducerSchema.sequencesKey(producer: stamp.producerID, queue: queue.id)
        var state = try txn.get(sequences, key).map { try ProducerSequences(decoding: $0) } ?? ProducerSequences(epoch: stamp.epoch)
        if state.epoch != stamp.epoch { state = ProducerSequences(epoch: stamp.epoch) }
        if let original = state.recent.first(where: { $0.firstSequence == stamp.firstSequence && Int($0.count) == batch.count }) {
            return (original.results(delays: batch.map { $0.message.delay ?? queue.attributes.delay }), true)
        }
        guard stamp.firstSequence == state.nextSequence else {
            throw TernError(.outOfOrderSequence, "producer \(stamp.producerID) on queue \(name): expected sequence \(state.nextSequence), got \(stamp.firstSequence)")
        }
        let sent = try queues.send(name, batch, at: now, in: txn)
        state.nextSequence += UInt64(batch.count)
        state.recent.append(ProducerBatch(queue: queue.id, firstSequence: stamp.firstSequence, count: UInt32(batch.count),
                                          firstQueueSequence: sent.first?.sequence ?? 0, sentAt: now, idSeed: idSeed))
        if state.recent.count > ProducerSchema.rememberedBatches { state.recent.removeFirst(state.recent.count - ProducerSchema.rememberedBatches) }
        try txn.put(sequences, key, state.encoded())
        producer.lastActivity = now
        try txn.put(producers, ProducerSchema.producerKey(stamp.producerID), producer.encoded())
        return (sent, false)
    }

    /// Applies an idempotent produce of `count` messages to topic `topic`: when the stamp is
    /// the next sequence, runs `append` (which writes the batches and returns each partition's
    /// base offset) and remembers the batch; when it equals one of the last
    /// ``ProducerSchema/rememberedBatches`` batches, writes nothing and returns the original.
    /// Sequences count messages per producer and topic from 0 in each epoch.
    /// - Returns: the base offset per partition, the partition keyless messages went to, and
    ///   whether it was a duplicate.
    /// - Throws: ``ErrorCode/unknownProducer``, ``ErrorCode/producerFenced``,
    ///   ``ErrorCode/outOfOrderSequence``, and what `append` throws.
    public func produce(topic: UInt32, topicName: QueueName, stamp: (producerID: UInt64, epoch: UInt32, firstSequence: UInt64),
                        count: Int, stickyPartition: Int?, at now: Timestamp, in txn: WriteTransaction,
                        append: () throws -> [Int: UInt64]) throws -> (bases: [Int: UInt64], stickyPartition: Int?, duplicate: Bool) {
        var producer = try current(stamp.producerID, epoch: stamp.epoch, in: txn)
        let key = ProducerSchema.topicSequencesKey(producer: stamp.producerID, topic: topic)
        var state = try txn.get(sequences, key).map { try TopicProducerSequences(decoding: $0) } ?? TopicProducerSequences(epoch: stamp.epoch)
        if state.epoch != stamp.epoch { state = TopicProducerSequences(epoch: stamp.epoch) }
        if let original = state.recent.first(where: { $0.firstSequence == stamp.firstSequence && Int($0.count) == count }) {
            return (original.bases, original.stickyPartition, true)
        }
        guard stamp.firstSequence == state.nextSequence else {
            throw TernError(.outOfOrderSequence, "producer \(stamp.producerID) on topic \(topicName): expected sequence \(state.nextSequence), got \(stamp.firstSequence)")
        }
        let bases = try append()
        state.nextSequence += UInt64(count)
        state.recent.append(TopicProducerBatch(firstSequence: stamp.firstSequence, count: UInt32(count), stickyPartition: stickyPartition, bases: bases))
        if state.recent.count > ProducerSchema.rememberedBatches { state.recent.removeFirst(state.recent.count - ProducerSchema.rememberedBatches) }
        try txn.put(sequences, key, state.encoded())
        producer.lastActivity = now
        try txn.put(producers, ProducerSchema.producerKey(stamp.producerID), producer.encoded())
        return (bases, stickyPartition, false)
    }

    // MARK: Transactions

    /// One queue's messages in a transaction, with the seed their ids derive from.
    public struct TransactionSend: Sendable {
        public var queue: QueueName
        public var messages: [QueueStore.PreparedMessage]
        public var idSeed: UInt64
        public init(queue: QueueName, messages: [QueueStore.PreparedMessage], idSeed: UInt64) {
            self.queue = queue
            self.messages = messages
            self.idSeed = idSeed
        }
    }

    /// Applies a whole transaction: every acknowledgement, then every send, then the producer's
    /// new transaction sequence; any failure throws and (through the group-commit writer's
    /// rollback) leaves nothing of it.
    ///
    /// Retrying the last committed `transactionSequence` is answered with the original result
    /// and applies nothing; any other sequence than the last or the next is `InvalidTransaction`;
    /// nil means the next one. With ``ProducerIDs/adopted`` ids a group sees only the
    /// transactions that touch it: any sequence above the last is accepted, and the first one of
    /// an epoch starts the count.
    /// - Parameter produce: appends the transaction's topic produces (after the sends) and
    ///   describes each; not called for a duplicate, which is answered with the remembered ones.
    /// - Returns: one array of sent messages per send, the topic produces, and whether this
    ///   was a duplicate commit.
    /// - Throws: ``ErrorCode/unknownProducer``, ``ErrorCode/producerFenced``,
    ///   ``ErrorCode/invalidTransaction``, and what acknowledging, sending and `produce` throw
    ///   (`QueueNotFound`, `ReceiptHandleStale`, `MessageTooLarge`, …).
    public func commit(producerID: UInt64, epoch: UInt32, transactionSequence requested: UInt64?, sends: [TransactionSend],
                       acknowledgements: [(QueueName, ReceiptHandle)], at now: Timestamp, in txn: WriteTransaction,
                       produce: () throws -> [TopicProducerBatch] = { [] }) throws -> (sent: [[SentMessage]], produced: [TopicProducerBatch], duplicate: Bool) {
        let seen = try record(producerID, in: txn)
        var producer = try writer(producerID, epoch: epoch, startsStream: true, at: now, in: txn)
        if ids == .adopted, seen?.epoch != epoch, let requested, requested > 0 {
            // First transaction of this epoch here: its sequence is where this group's count starts.
            producer.transactionSequence = requested - 1
        }
        let transactionSequence = requested ?? producer.transactionSequence + 1
        if transactionSequence == producer.transactionSequence && transactionSequence > 0 {
            var results = [[SentMessage]]()
            for (index, batch) in producer.lastTransaction.enumerated() {
                let delays = index < sends.count ? sends[index].messages.map { $0.message.delay ?? 0 } : []
                results.append(batch.results(delays: delays))
            }
            return (results, producer.lastTopicTransaction, true)
        }
        // Adopted: the producer's other transactions went to other groups, so this group sees
        // its sequence rise with gaps; only a sequence older than the last is refused.
        guard transactionSequence == producer.transactionSequence + 1
                || (ids == .adopted && transactionSequence > producer.transactionSequence) else {
            throw TernError(.invalidTransaction, "producer \(producerID): expected transaction sequence \(producer.transactionSequence + 1), got \(transactionSequence)")
        }
        for (queue, handle) in acknowledgements {
            try queues.acknowledge(queue, handle: handle, in: txn)
        }
        var results = [[SentMessage]]()
        var batches = [ProducerBatch]()
        for send in sends {
            let queueID = try queues.record(named: send.queue, in: txn).id
            let sent = try queues.send(send.queue, send.messages, at: now, in: txn)
            results.append(sent)
            batches.append(ProducerBatch(queue: queueID, firstSequence: 0, count: UInt32(sent.count),
                                         firstQueueSequence: sent.first?.sequence ?? 0, sentAt: now, idSeed: send.idSeed))
        }
        let produced = try produce()
        producer.transactionSequence = transactionSequence
        producer.lastTransaction = batches
        producer.lastTopicTransaction = produced
        producer.lastActivity = now
        try txn.put(producers, ProducerSchema.producerKey(producerID), producer.encoded())
        return (results, produced, false)
    }

    // MARK: Expiry

    /// Deletes up to `limit` producers last active before `cutoff`, with their sequences and
    /// transactional id. A later request of such a producer gets `UnknownProducer`.
    /// - Returns: how many producers were deleted.
    public func expire(activeBefore cutoff: Timestamp, limit: Int, in txn: WriteTransaction) throws -> Int {
        let victims: [(UInt64, ProducerRecord)] = try txn.withCursor(producers) { cursor in
            var found = [(UInt64, ProducerRecord)]()
            var entry = try cursor.first()
            while let current = entry, found.count < limit {
                let record = try ProducerRecord(decoding: current.value)
                if record.lastActivity < cutoff {
                    var reader = BigEndianReader(current.key)
                    found.append((try reader.readUInt64(), record))
                }
                entry = try cursor.next()
            }
            return found
        }
        for (id, record) in victims {
            try txn.delete(producers, ProducerSchema.producerKey(id))
            if let transactionalID = record.transactionalID {
                try txn.delete(transactionalIDs, Array(transactionalID.utf8))
            }
            let prefix = ProducerSchema.producerKey(id)
            let keys: [[UInt8]] = try txn.withCursor(sequences) { cursor in
                var keys = [[UInt8]]()
                var entry = try cursor.seek(atOrAfter: prefix)
                while let current = entry, current.key.starts(with: prefix) {
                    keys.append(current.key)
                    entry = try cursor.next()
                }
                return keys
            }
            for key in keys { try txn.delete(sequences, key) }
        }
        return victims.count
    }
}
