public import TernCore
public import TernStorage

/// Applies queue commands to LMDB. Every method takes the time and random values it needs as
/// arguments (decided by ``Broker`` before the command is applied) and reads neither a clock
/// nor a random source, so that applying the same commands in the same order to another
/// node's environment yields the same state (the basis of replication).
///
/// Every method that changes state updates the message, its index entries and the queue's
/// counters in the caller's write transaction; a method that throws does so before writing.
public struct QueueStore: Sendable {
    let meta, names, queues, messages, bodies, ready, inflight, delayed: Database
    /// FIFO queues' groups, locks and deduplication ids (see `FifoQueues.swift`).
    let fifoMessages, fifoInflight, fifoDedup, fifoDedupExpiry: Database
    /// Front-end metadata (tags, opaque attributes) per queue id (see `QueueMetadata.swift`);
    /// nil only in a read-only environment written before it existed.
    let queueMetadata: Database?
    /// The logical space quota (decision 111).
    public let quota: StorageQuota

    public init(storage: Storage) {
        meta = storage.database("meta")
        names = storage.database("queue_names")
        queues = storage.database("queues")
        messages = storage.database("messages")
        bodies = storage.database("bodies")
        ready = storage.database("ready")
        inflight = storage.database("inflight")
        delayed = storage.database("delayed")
        fifoMessages = storage.database("fifo_messages")
        fifoInflight = storage.database("fifo_inflight")
        fifoDedup = storage.database("fifo_dedup")
        fifoDedupExpiry = storage.database("fifo_dedup_expiry")
        quota = StorageQuota(storage: storage)
        queueMetadata = storage.hasDatabase(QueueSchema.metadataDatabase) ? storage.database(QueueSchema.metadataDatabase) : nil
    }

    // MARK: Queue records

    /// The live record of `name`.
    /// - Throws: ``ErrorCode/queueNotFound`` when there is no such queue.
    public func record(named name: QueueName, in txn: Transaction) throws -> QueueRecord {
        guard let idBytes = try txn.get(names, Array(name.rawValue.utf8)) else {
            throw TernError(.queueNotFound, "queue \(name) does not exist")
        }
        var reader = BigEndianReader(idBytes)
        guard let record = try self.record(id: try reader.readUInt32(), in: txn), !record.deleted else {
            throw TernError(.queueNotFound, "queue \(name) does not exist")
        }
        return record
    }

    /// The record of queue `id` (deleted ones included), nil when there is none.
    public func record(id: UInt32, in txn: Transaction) throws -> QueueRecord? {
        try txn.get(queues, QueueSchema.queueIDKey(id)).map { try QueueRecord(decoding: $0) }
    }

    /// All records, deleted ones included, in id order.
    public func allRecords(in txn: Transaction) throws -> [QueueRecord] {
        try txn.withCursor(queues) { cursor in
            var result = [QueueRecord]()
            var entry = try cursor.first()
            while let current = entry {
                result.append(try QueueRecord(decoding: current.value))
                entry = try cursor.next()
            }
            return result
        }
    }

    /// Writes `record`, moving the storage quota's counter by the change of its accounted bytes.
    func put(_ record: QueueRecord, in txn: WriteTransaction) throws {
        let key = QueueSchema.queueIDKey(record.id)
        let old = try txn.get(queues, key).map { try QueueRecord(decoding: $0).counts }
        try quota.adjust(from: old.map(StorageQuota.accounted) ?? 0, to: StorageQuota.accounted(record.counts), in: txn)
        try txn.put(queues, key, record.encoded())
    }

    /// The send time of the first message of `queue` in sequence order (approximately the oldest).
    public func oldestSentAt(queue: UInt32, in txn: Transaction) throws -> Timestamp? {
        let prefix = QueueSchema.queuePrefix(queue)
        let start = try firstUnpurgedKey(queue: queue, in: txn)
        return try txn.withCursor(messages) { cursor in
            guard let entry = try cursor.seek(atOrAfter: start), entry.key.starts(with: prefix) else { return nil }
            return try MessageHeader(decoding: entry.value).sentAt
        }
    }

    /// The `messages` key where the messages clients can see start: the queue's first, or its
    /// purge watermark's (decision 112).
    func firstUnpurgedKey(queue: UInt32, in txn: Transaction) throws -> [UInt8] {
        let below = try record(id: queue, in: txn)?.purgedBelow ?? 0
        return below == 0 ? QueueSchema.queuePrefix(queue) : QueueSchema.messageKey(queue: queue, sequence: below)
    }

    /// Purges `name` at once (decision 112): every message there now (sequence below the next
    /// one) is gone for clients — not received, not counted, its receipt handles stale — and
    /// later ``Command/tick(limit:)``s remove its records in chunks, also after a restart.
    /// - Returns: the queue's id, how many messages were purged, and the watermark.
    /// - Throws: ``ErrorCode/queueNotFound``.
    public func purge(_ name: QueueName, in txn: WriteTransaction) throws -> (queueID: UInt32, purged: Int, below: UInt64) {
        var record = try record(named: name, in: txn)
        let purged = Int(record.counts.total)
        if record.nextSequence > record.purgedBelow {
            record.purgedBelow = record.nextSequence
            record.counts = QueueCounts()
            try put(record, in: txn)
        }
        return (record.id, purged, record.purgedBelow)
    }

    /// Removes one chunk of what purges left (messages below their queue's watermark) for the
    /// first live queue that has any. - Returns: messages removed and whether more remain.
    func sweepPurged(limit: Int, in txn: WriteTransaction) throws -> (removed: Int, more: Bool) {
        var removed = 0
        for record in try allRecords(in: txn) where !record.deleted && record.purgedBelow > 0 && removed < limit {
            let prefix = QueueSchema.queuePrefix(record.id)
            let first = try txn.withCursor(messages) { cursor in try cursor.seek(atOrAfter: prefix) }
            guard let first, first.key.starts(with: prefix), try QueueSchema.decodeMessageKey(first.key).sequence < record.purgedBelow else {
                continue
            }
            let result = try sweep(queue: record.id, below: record.purgedBelow, limit: limit - removed, in: txn)
            removed += result.removed
            if !result.finished { return (removed, true) }
        }
        return (removed, removed >= limit)
    }

    // MARK: Create, update, delete

    /// Creates `name` with `patch` over the defaults, or applies `patch` to the existing queue.
    /// - Returns: whether the queue was created, and its record.
    /// - Throws: ``ErrorCode/invalidAttribute`` for out-of-range values or a missing/invalid
    ///   dead-letter queue; ``ErrorCode/conflict`` when `fifo` would change;
    ///   nothing else (FIFO queues are supported since issue 3).
    public func createOrUpdate(_ name: QueueName, patch: QueueAttributes.Patch, at now: Timestamp,
                               in txn: WriteTransaction) throws -> (created: Bool, record: QueueRecord) {
        let nameKey = Array(name.rawValue.utf8)
        if let existing = try? record(named: name, in: txn) {
            if let fifo = patch.fifo, fifo != existing.attributes.fifo {
                throw TernError(.conflict, "the fifo attribute of an existing queue cannot change")
            }
            let attributes = patch.applied(to: existing.attributes)
            try attributes.validate(for: name)
            try validateDeadLetterQueue(attributes, of: name, in: txn)
            var updated = existing
            updated.attributes = attributes
            if updated != existing { try put(updated, in: txn) }
            return (false, updated)
        }
        let attributes = try QueueAttributes.forNewQueue(name, patch)
        try validateDeadLetterQueue(attributes, of: name, in: txn)
        let id = try nextQueueID(in: txn)
        let record = QueueRecord(id: id, name: name, createdAt: now, attributes: attributes)
        try txn.put(names, nameKey, QueueSchema.queueIDKey(id))
        try put(record, in: txn)
        return (true, record)
    }

    private func validateDeadLetterQueue(_ attributes: QueueAttributes, of name: QueueName, in txn: Transaction) throws {
        guard let dlqName = attributes.deadLetterQueue else { return }
        let dlq: QueueRecord
        do { dlq = try record(named: dlqName, in: txn) } catch {
            throw TernError(.invalidAttribute, "dead_letter_queue \(dlqName) does not exist")
        }
        if dlq.attributes.fifo != attributes.fifo {
            throw TernError(.invalidAttribute, "a FIFO queue needs a FIFO dead-letter queue and a standard queue a standard one")
        }
    }

    private func nextQueueID(in txn: WriteTransaction) throws -> UInt32 {
        let key = Array("next_queue_id".utf8)
        var next: UInt32 = 1
        if let stored = try txn.get(meta, key) {
            var reader = BigEndianReader(stored)
            next = try reader.readUInt32()
        }
        var writer = BigEndianWriter()
        writer.write(next + 1)
        try txn.put(meta, key, writer.bytes)
        return next
    }

    /// Removes `name` and its front-end metadata at once (a queue created under the same name
    /// later starts empty, with a new id) and marks its record deleted;
    /// ``sweep(queue:below:limit:in:)`` then removes its messages in small transactions.
    /// - Returns: the deleted queue's id.
    /// - Throws: ``ErrorCode/queueNotFound``.
    public func delete(_ name: QueueName, in txn: WriteTransaction) throws -> UInt32 {
        var record = try record(named: name, in: txn)
        try txn.delete(names, Array(name.rawValue.utf8))
        if let queueMetadata { try txn.delete(queueMetadata, QueueSchema.queueIDKey(record.id)) }
        record.deleted = true
        try put(record, in: txn)
        return record.id
    }

    /// Removes up to `limit` messages of queue `id` whose sequence is below `bound` (all when
    /// nil), with their bodies and index entries. When a deleted queue has no messages left its
    /// record is removed too.
    /// - Returns: how many messages were removed and whether none below `bound` remain.
    public func sweep(queue id: UInt32, below bound: UInt64?, limit: Int, in txn: WriteTransaction) throws -> (removed: Int, finished: Bool) {
        guard var record = try record(id: id, in: txn) else { return (0, true) }
        let prefix = QueueSchema.queuePrefix(id)
        let victims: [(UInt64, MessageHeader)] = try txn.withCursor(messages) { cursor in
            var found = [(UInt64, MessageHeader)]()
            var entry = try cursor.seek(atOrAfter: prefix)
            while let current = entry, current.key.starts(with: prefix), found.count < limit {
                let sequence = try QueueSchema.decodeMessageKey(current.key).sequence
                if let bound, sequence >= bound { break }
                found.append((sequence, try MessageHeader(decoding: current.value)))
                entry = try cursor.next()
            }
            return found
        }
        for (sequence, header) in victims {
            try removeMessage(sequence: sequence, header: header, from: &record, in: txn)
        }
        let finished = victims.count < limit
        if finished && record.deleted {
            let stored = try self.record(id: id, in: txn).map { StorageQuota.accounted($0.counts) } ?? 0
            try quota.adjust(from: stored, to: StorageQuota.accounted(record.counts), in: txn)
            try txn.delete(queues, QueueSchema.queueIDKey(id))
        } else if !victims.isEmpty {
            try put(record, in: txn)
        }
        return (victims.count, finished)
    }

    // MARK: Send

    /// A message ready to be stored: its id and time decided by the broker.
    public struct PreparedMessage: Sendable {
        public var id: MessageID
        public var message: OutgoingMessage
        public init(id: MessageID, message: OutgoingMessage) {
            self.id = id
            self.message = message
        }
    }

    /// Stores `batch` in `name`, all or nothing.
    /// - Throws: ``ErrorCode/queueNotFound``; ``ErrorCode/messageTooLarge`` when a body exceeds
    ///   `max_message_bytes`; ``ErrorCode/invalidMessage`` for an empty body;
    ///   ``ErrorCode/invalidParameter`` for a priority above 9 or a delay outside 0…retention;
    ///   ``ErrorCode/queueFull`` when `max_messages`/`max_bytes` would be exceeded.
    public func send(_ name: QueueName, _ batch: [PreparedMessage], at now: Timestamp, in txn: WriteTransaction) throws -> [SentMessage] {
        var record = try record(named: name, in: txn)
        let attributes = record.attributes
        var facts = [FifoSchema.MessageFacts?]()
        facts.reserveCapacity(batch.count)
        for (index, prepared) in batch.enumerated() {
            let message = prepared.message
            if message.body.isEmpty { throw TernError(.invalidMessage, "message \(index): body must not be empty") }
            if message.body.count > attributes.maxMessageBytes {
                throw TernError(.messageTooLarge, "message \(index): body is \(message.body.count) bytes, the queue's max_message_bytes is \(attributes.maxMessageBytes)")
            }
            if message.priority > OutgoingMessage.maxPriority {
                throw TernError(.invalidParameter, "message \(index): priority must be 0–9")
            }
            if let delay = message.delay, !(0...attributes.retention).contains(delay) {
                throw TernError(.invalidParameter, "message \(index): delay must be 0–\(attributes.retention) seconds (the queue's retention)")
            }
            facts.append(try fifoFacts(message, index: index, attributes: attributes))
        }
        // FIFO deduplication: a duplicate (of a stored id or of an earlier message of this
        // batch) stores nothing and answers with the original.
        var duplicates = [Int: SentMessage]()
        var firstInBatch = [[UInt8]: Int]()
        for (index, fact) in facts.enumerated() {
            guard let fact else { continue }
            if let entry = try duplicate(queue: record.id, id: fact.deduplicationID, at: now, in: txn) {
                duplicates[index] = SentMessage(id: entry.id, sequence: entry.sequence, visibleAt: entry.acceptedAt, duplicate: true)
            } else if firstInBatch[fact.deduplicationID] == nil {
                firstInBatch[fact.deduplicationID] = index
            }
        }
        var addedBytes: UInt64 = 0
        var addedCount: UInt64 = 0
        for (index, prepared) in batch.enumerated() where duplicates[index] == nil {
            if let fact = facts[index], firstInBatch[fact.deduplicationID] != index { continue }
            addedBytes += UInt64(prepared.message.body.count)
            addedCount += 1
        }
        try quota.check(adding: StorageQuota.accounted(messages: addedCount, bodyBytes: addedBytes), in: txn)
        try makeRoom(in: &record, count: addedCount, bytes: addedBytes, in: txn)
        var results = [SentMessage]()
        results.reserveCapacity(batch.count)
        var storedInBatch = [[UInt8]: SentMessage]()
        for (position, prepared) in batch.enumerated() {
            if let original = duplicates[position] {
                results.append(original)
                continue
            }
            if let fact = facts[position], let original = storedInBatch[fact.deduplicationID] {
                results.append(SentMessage(id: original.id, sequence: original.sequence, visibleAt: original.visibleAt, duplicate: true))
                continue
            }
            let message = prepared.message
            let sequence = record.nextSequence
            record.nextSequence += 1
            let delay = message.delay ?? attributes.delay
            let due = now.adding(seconds: delay)
            let state: MessageState = delay > 0 ? .delayed : .ready
            let header = MessageHeader(
                id: prepared.id, state: state, priority: message.priority, receiveCount: 0, sentAt: now,
                stateDeadline: state == .delayed ? due : Timestamp(milliseconds: 0), nonce: .none,
                bodyBytes: UInt32(message.body.count), deadLetterSource: 0)
            let key = QueueSchema.messageKey(queue: record.id, sequence: sequence)
            try txn.put(messages, key, header.encoded())
            try txn.put(bodies, key, MessageBody.encode(body: message.body, attributes: message.attributes))
            try index(header, queue: record.id, sequence: sequence, in: txn)
            record.counts.add(header.state, bytes: header.bodyBytes)
            let sent = SentMessage(id: prepared.id, sequence: sequence, visibleAt: due)
            if let fact = facts[position] {
                try storeFifo(fact, queue: record.id, sequence: sequence, id: prepared.id, at: now, in: txn)
                storedInBatch[fact.deduplicationID] = sent
            }
            results.append(sent)
        }
        if results.contains(where: { !$0.duplicate }) { try put(record, in: txn) }
        return results
    }

    // MARK: Receive

    /// Delivers up to `maxMessages` ready messages of `name`, highest priority first and in send
    /// order within a priority, making each invisible until `now + visibilityTimeout`.
    ///
    /// Due work is applied first (see ``processDue(at:limit:effects:in:)``), so a message whose
    /// visibility timeout or delay has passed is receivable even before the broker's timer ran.
    /// A message past its retention is deleted instead of delivered; one already delivered
    /// `max_receive_count` times moves to the dead-letter queue.
    /// - Parameters:
    ///   - visibilityTimeout: seconds; nil = the queue's attribute.
    ///   - nonceSeed: decided by the caller; the i-th delivered message gets the receipt nonce
    ///     ``ReceiptNonce/derive(seed:index:)`` gives for `i`.
    ///   - autoAcknowledge: delete on delivery (at-most-once).
    ///   - effects: where dead-letter moves and retention expiries are counted.
    /// - Throws: ``ErrorCode/queueNotFound``.
    public func receive(_ name: QueueName, maxMessages: Int, visibilityTimeout: Int?, nonceSeed: UInt64,
                        autoAcknowledge: Bool, at now: Timestamp, effects: inout CommandEffects,
                        in txn: WriteTransaction) throws -> [ReceivedMessage] {
        let due = try processDue(at: now, limit: 1000, effects: &effects, in: txn)
        effects.queuesWithNewMessages.formUnion(due.queuesWithNewMessages)
        let queueRecord = try record(named: name, in: txn)
        var cache = RecordCache(store: self, txn: txn)
        cache.insert(queueRecord)
        let id = queueRecord.id
        let timeout = visibilityTimeout ?? queueRecord.attributes.visibilityTimeout
        let deadline = now.adding(seconds: timeout)
        let prefix = QueueSchema.queuePrefix(id)
        var delivered = [ReceivedMessage]()
        var resumeAt = prefix
        // FIFO: skip groups with a message in flight (unless it was delivered by this very
        // receive: SQS hands out several messages of one group together, in order).
        let fifo = queueRecord.attributes.fifo
        var scanned = 0
        var groupsDelivered = Set<[UInt8]>()
        while delivered.count < maxMessages && scanned < FifoSchema.maxScannedPerReceive {
            let wanted = maxMessages - delivered.count
            let candidates: [[UInt8]] = try txn.withCursor(ready) { cursor in
                var keys = [[UInt8]]()
                var entry = try cursor.seek(atOrAfter: resumeAt)
                while let current = entry, current.key.starts(with: prefix), keys.count < wanted {
                    let ready = try QueueSchema.decodeReadyKey(current.key)
                    if queueRecord.isPurged(ready.sequence) {
                        // Purged messages come first within a priority: jump past them.
                        entry = try cursor.seek(atOrAfter: QueueSchema.readyKey(queue: id, priority: ready.priority, sequence: queueRecord.purgedBelow))
                        continue
                    }
                    keys.append(current.key)
                    entry = try cursor.next()
                }
                return keys
            }
            if candidates.isEmpty { break }
            resumeAt = candidates.last! + [0]
            for readyKey in candidates {
                let sequence = try QueueSchema.decodeReadyKey(readyKey).sequence
                let key = QueueSchema.messageKey(queue: id, sequence: sequence)
                var facts: FifoSchema.MessageFacts?
                if fifo {
                    scanned += 1
                    facts = try fifoFacts(queue: id, sequence: sequence, in: txn)
                    if let group = facts?.group, !groupsDelivered.contains(group),
                        try isLocked(queue: id, group: group, from: queueRecord.purgedBelow, in: txn) {
                        continue
                    }
                }
                guard var header = try txn.withValue(messages, key, { (stored) throws(StorageError) in try MessageHeader(decoding: stored) }) else {
                    throw StorageError(.corruptRecord, "ready index entry for missing message \(id)/\(sequence)")
                }
                var record = try cache.get(id)!
                let attributes = record.attributes
                if header.sentAt.adding(seconds: attributes.retention) <= now {
                    try removeMessage(sequence: sequence, header: header, from: &record, in: txn)
                    effects.expired[id, default: 0] += 1
                    cache.update(record)
                    continue
                }
                if let maxReceiveCount = attributes.maxReceiveCount, header.receiveCount >= maxReceiveCount,
                    try moveToDeadLetterQueue(sequence: sequence, header: header, from: &record, cache: &cache,
                                              effects: &effects, in: txn)
                {
                    cache.update(record)
                    continue
                }
                // An auto-acknowledged message's body is read here, before it is deleted; the others'
                // are read after the commit, outside the writer (``bodies(of:queue:in:)``).
                var storedBody: (body: [UInt8], attributes: [MessageAttribute]) = ([], [])
                if autoAcknowledge {
                    // Straight from the map page: checked and copied (or decompressed) once.
                    guard let stored = try txn.withValue(bodies, key, { (stored) throws(StorageError) in try MessageBody.decode(stored) }) else {
                        throw StorageError(.corruptRecord, "message \(id)/\(sequence) has no body")
                    }
                    storedBody = stored
                }
                header.receiveCount += 1
                if header.firstReceivedAt.milliseconds == 0 { header.firstReceivedAt = now }
                try txn.delete(ready, readyKey)
                record.counts.remove(.ready, bytes: header.bodyBytes)
                let handleNonce: ReceiptNonce
                if let group = facts?.group { groupsDelivered.insert(group) }
                if autoAcknowledge {
                    try txn.delete(messages, key)
                    try txn.delete(bodies, key)
                    if fifo { try removeFifo(queue: id, sequence: sequence, wasInFlight: false, in: txn) }
                    handleNonce = .none
                } else {
                    header.state = .inFlight
                    header.stateDeadline = deadline
                    header.nonce = ReceiptNonce.derive(seed: nonceSeed, index: delivered.count)
                    handleNonce = header.nonce
                    try txn.put(messages, key, header.encoded())
                    try index(header, queue: id, sequence: sequence, in: txn)
                    if let group = facts?.group { try lockGroup(queue: id, group: group, sequence: sequence, in: txn) }
                    record.counts.add(.inFlight, bytes: header.bodyBytes)
                }
                cache.update(record)
                delivered.append(ReceivedMessage(
                    id: header.id, body: storedBody.body,
                    receiptHandle: autoAcknowledge ? "" : ReceiptHandle(queue: id, sequence: sequence, nonce: handleNonce).description,
                    receiveCount: header.receiveCount, priority: header.priority, sentAt: header.sentAt,
                    attributes: storedBody.attributes, sequence: sequence, firstReceivedAt: header.firstReceivedAt))
            }
        }
        try cache.flush(in: txn)
        return delivered
    }

    /// `delivered` (the result of a ``receive(_:maxMessages:visibilityTimeout:nonceSeed:autoAcknowledge:at:effects:in:)``
    /// that did not acknowledge, committed) with each message's body and attributes read from
    /// `txn`, a read transaction begun after that commit. Reading them here keeps the checksum,
    /// decompression and copy of every body out of the single writer (and off followers, which
    /// apply the receive but answer no one).
    ///
    /// A message whose delivery is no longer the current one — acknowledged, moved or received
    /// again between the commit and `txn` (possible only with a visibility timeout that already
    /// passed, e.g. 0) — is left out: its receipt handle would be stale and another consumer
    /// has it. One whose visibility merely expired (it is ready again, not received since) is
    /// delivered, as before: its handle still acknowledges it.
    /// - Throws: ``StorageError`` (`corruptRecord` when a current delivery's body is missing or
    ///   fails its checksum).
    public func bodies(of delivered: [ReceivedMessage], queue id: UInt32, in txn: Transaction) throws -> [ReceivedMessage] {
        var complete = [ReceivedMessage]()
        complete.reserveCapacity(delivered.count)
        for var message in delivered {
            let key = QueueSchema.messageKey(queue: id, sequence: message.sequence)
            let current = try txn.withValue(messages, key) { (stored) throws(StorageError) in
                // Every delivery counts one more receive: the same count is the same delivery.
                try MessageHeader(decoding: stored).receiveCount == message.receiveCount
            }
            guard current == true else { continue }
            guard let stored = try txn.withValue(bodies, key, { (stored) throws(StorageError) in try MessageBody.decode(stored) }) else {
                throw StorageError(.corruptRecord, "message \(id)/\(message.sequence) has no body")
            }
            message.body = stored.body
            message.attributes = stored.attributes
            complete.append(message)
        }
        return complete
    }

    // MARK: Acknowledge and change visibility

    /// Deletes the message delivered with `handle`.
    ///
    /// Succeeds for a handle whose visibility timeout expired as long as no later receive
    /// superseded it.
    /// - Throws: ``ErrorCode/queueNotFound``; ``ErrorCode/receiptHandleStale`` when a later
    ///   receive superseded the handle or the message is gone (acknowledged, purged, expired,
    ///   dead-lettered, or the queue was re-created).
    public func acknowledge(_ name: QueueName, handle: ReceiptHandle, in txn: WriteTransaction) throws {
        let (found, header) = try current(name, handle: handle, in: txn)
        var record = found
        try removeMessage(sequence: handle.sequence, header: header, from: &record, in: txn)
        try put(record, in: txn)
    }

    /// Deletes the messages delivered with `handles`, in order, each independently: a stale
    /// handle is reported in its slot and the others still apply (a handle named twice is
    /// stale the second time). The queue record is written once.
    /// - Returns: per handle, the message's send time when it was deleted, or the error.
    /// - Throws: ``ErrorCode/queueNotFound``; storage errors (nothing is then applied).
    public func acknowledge(_ name: QueueName, handles: [ReceiptHandle], in txn: WriteTransaction) throws -> [Result<Timestamp, TernError>] {
        var record = try record(named: name, in: txn)
        var results = [Result<Timestamp, TernError>]()
        results.reserveCapacity(handles.count)
        for handle in handles {
            guard let header = try current(record, handle: handle, in: txn) else {
                results.append(.failure(Self.staleHandle))
                continue
            }
            try removeMessage(sequence: handle.sequence, header: header, from: &record, in: txn)
            results.append(.success(header.sentAt))
        }
        try put(record, in: txn)
        return results
    }

    /// Makes the message delivered with `handle` visible again `timeout` seconds after `now`
    /// (0 = at once). A release at 0 counts as the end of a delivery: a message that has used up
    /// `max_receive_count` moves to the dead-letter queue.
    /// - Throws: ``ErrorCode/queueNotFound``; ``ErrorCode/receiptHandleStale`` as for
    ///   ``acknowledge(_:handle:in:)``; ``ErrorCode/conflict`` (`MessageNotInFlight`) when the
    ///   message's visibility timeout already expired; ``ErrorCode/invalidParameter`` for a
    ///   timeout outside 0–43,200.
    public func changeVisibility(_ name: QueueName, handle: ReceiptHandle, timeout: Int, at now: Timestamp,
                                 effects: inout CommandEffects, in txn: WriteTransaction) throws {
        guard QueueAttributes.visibilityTimeoutRange.contains(timeout) else {
            throw TernError(.invalidParameter, "visibility_timeout must be 0–43200 seconds")
        }
        var (record, header) = try current(name, handle: handle, in: txn)
        guard header.state == .inFlight, header.stateDeadline > now else {
            throw TernError(.conflict, "the message is not in flight: its visibility timeout has expired")
        }
        let key = QueueSchema.messageKey(queue: record.id, sequence: handle.sequence)
        try txn.delete(inflight, QueueSchema.timeKey(header.stateDeadline, queue: record.id, sequence: handle.sequence))
        if timeout == 0 {
            if record.attributes.fifo { try unlockGroup(queue: record.id, sequence: handle.sequence, in: txn) }
            var cache = RecordCache(store: self, txn: txn)
            cache.insert(record)
            if let maxReceiveCount = record.attributes.maxReceiveCount, header.receiveCount >= maxReceiveCount {
                record.counts.remove(.inFlight, bytes: header.bodyBytes)
                record.counts.add(.ready, bytes: header.bodyBytes)
                header.state = .ready
                if try moveToDeadLetterQueue(sequence: handle.sequence, header: header, from: &record, cache: &cache,
                                             effects: &effects, in: txn) {
                    cache.update(record)
                    try cache.flush(in: txn)
                    return
                }
                record.counts.remove(.ready, bytes: header.bodyBytes)
                record.counts.add(.inFlight, bytes: header.bodyBytes)
                header.state = .inFlight
            }
            record.counts.remove(.inFlight, bytes: header.bodyBytes)
            record.counts.add(.ready, bytes: header.bodyBytes)
            header.state = .ready
            header.stateDeadline = Timestamp(milliseconds: 0)
        } else {
            header.stateDeadline = now.adding(seconds: timeout)
        }
        try txn.put(messages, key, header.encoded())
        try index(header, queue: record.id, sequence: handle.sequence, in: txn)
        try put(record, in: txn)
    }

    /// Applies ``changeVisibility(_:handle:timeout:at:effects:in:)`` to each entry, in order,
    /// each independently: an entry that is refused (`ReceiptHandleStale`, `Conflict`,
    /// `InvalidParameter`) is reported in its slot and changes nothing; the others apply.
    /// - Returns: per entry, nil when changed, else the error.
    /// - Throws: ``ErrorCode/queueNotFound``; storage errors (the caller's transaction is then
    ///   rolled back, nothing applied).
    public func changeVisibility(_ name: QueueName, changes: [VisibilityChange], at now: Timestamp,
                                 effects: inout CommandEffects, in txn: WriteTransaction) throws -> [TernError?] {
        _ = try record(named: name, in: txn)
        var results = [TernError?]()
        results.reserveCapacity(changes.count)
        for change in changes {
            do {
                // Every TernError of the single change is thrown before it writes anything.
                try changeVisibility(name, handle: change.handle, timeout: change.timeout, at: now, effects: &effects, in: txn)
                results.append(nil)
            } catch let error as TernError {
                results.append(error)
            }
        }
        return results
    }

    private func current(_ name: QueueName, handle: ReceiptHandle, in txn: Transaction) throws -> (QueueRecord, MessageHeader) {
        let record = try record(named: name, in: txn)
        guard let header = try current(record, handle: handle, in: txn) else { throw Self.staleHandle }
        return (record, header)
    }

    /// The header of the message `handle` was issued for, nil when the handle is stale.
    private func current(_ record: QueueRecord, handle: ReceiptHandle, in txn: Transaction) throws -> MessageHeader? {
        guard handle.queue == record.id, !record.isPurged(handle.sequence),
            let header = try txn.withValue(messages, QueueSchema.messageKey(queue: record.id, sequence: handle.sequence), {
                (stored) throws(StorageError) in try MessageHeader(decoding: stored)
            })
        else { return nil }
        return header.nonce == handle.nonce ? header : nil
    }

    static let staleHandle = TernError(.receiptHandleStale, "the receipt handle is no longer valid: the message was received again, acknowledged, purged or moved")

    // MARK: Due work

    /// What ``processDue(at:limit:effects:in:)`` did.
    public struct DueReport: Sendable {
        /// Queues that gained ready messages (long-polling receivers should be woken).
        public var queuesWithNewMessages: Set<UInt32> = []
        /// Messages that changed state.
        public var processed = 0
        /// Messages moved to a dead-letter queue.
        public var deadLettered = 0
        /// Whether the limit stopped the work (call again).
        public var more = false
    }

    /// Applies every visibility deadline and delay that is due at `now` (up to `limit` of
    /// each): expired in-flight messages return to ready, or move to the dead-letter queue when
    /// they have been delivered `max_receive_count` times; delayed messages become ready.
    public func processDue(at now: Timestamp, limit: Int, effects: inout CommandEffects, in txn: WriteTransaction) throws -> DueReport {
        var report = DueReport()
        var cache = RecordCache(store: self, txn: txn)
        for (database, state) in [(inflight, MessageState.inFlight), (delayed, MessageState.delayed)] {
            let due: [(Timestamp, UInt32, UInt64)] = try txn.withCursor(database) { cursor in
                var found = [(Timestamp, UInt32, UInt64)]()
                var entry = try cursor.first()
                while let current = entry, found.count < limit {
                    let key = try QueueSchema.decodeTimeKey(current.key)
                    if key.time > now { break }
                    found.append(key)
                    entry = try cursor.next()
                }
                return found
            }
            if due.count == limit { report.more = true }
            for (time, queue, sequence) in due {
                let key = QueueSchema.messageKey(queue: queue, sequence: sequence)
                guard var record = try cache.get(queue), let stored = try txn.get(messages, key) else {
                    try txn.delete(database, QueueSchema.timeKey(time, queue: queue, sequence: sequence))
                    continue
                }
                var header = try MessageHeader(decoding: stored)
                guard header.state == state, header.stateDeadline == time else {
                    try txn.delete(database, QueueSchema.timeKey(time, queue: queue, sequence: sequence))
                    continue
                }
                if record.isPurged(sequence) {
                    // Purged: due work removes it instead of making it ready (not counted).
                    try removeMessage(sequence: sequence, header: header, from: &record, in: txn)
                    cache.update(record)
                    continue
                }
                report.processed += 1
                try txn.delete(database, QueueSchema.timeKey(time, queue: queue, sequence: sequence))
                if state == .inFlight, record.attributes.fifo { try unlockGroup(queue: queue, sequence: sequence, in: txn) }
                record.counts.remove(state, bytes: header.bodyBytes)
                record.counts.add(.ready, bytes: header.bodyBytes)
                header.state = .ready
                header.stateDeadline = Timestamp(milliseconds: 0)
                if state == .inFlight, !record.deleted, let maxReceiveCount = record.attributes.maxReceiveCount,
                    header.receiveCount >= maxReceiveCount,
                    try moveToDeadLetterQueue(sequence: sequence, header: header, from: &record, cache: &cache,
                                              effects: &effects, in: txn)
                {
                    report.deadLettered += 1
                    cache.update(record)
                    continue
                }
                try txn.put(messages, key, header.encoded())
                try index(header, queue: queue, sequence: sequence, in: txn)
                cache.update(record)
                report.queuesWithNewMessages.insert(queue)
            }
        }
        try cache.flush(in: txn)
        return report
    }

    /// The earliest visibility deadline or due time in the store, nil when nothing is pending.
    /// Whether a receive of queue `id` at `now` could deliver anything: the queue has a ready
    /// message, or some delayed or in-flight message anywhere is due (its visibility timeout or
    /// delay ends by `now`, making it ready). False means a receive would change nothing and
    /// find nothing, so it need not be written (nor, in a cluster, replicated).
    public func mayDeliver(queue id: UInt32, at now: Timestamp, in txn: Transaction) throws -> Bool {
        let prefix = QueueSchema.queuePrefix(id)
        let ready = try txn.withCursor(self.ready) { cursor in try cursor.seek(atOrAfter: prefix).map { $0.key.starts(with: prefix) } ?? false }
        if ready { return true }
        guard let due = try nextDueTime(in: txn) else { return false }
        return due <= now
    }

    public func nextDueTime(in txn: Transaction) throws -> Timestamp? {
        var earliest: Timestamp?
        for database in [inflight, delayed] {
            if let first = try txn.withCursor(database, { try $0.first() }) {
                let time = try QueueSchema.decodeTimeKey(first.key).time
                earliest = min(earliest ?? time, time)
            }
        }
        return earliest
    }

    /// Deletes up to `limit` messages whose retention passed at `now`, scanning each queue from
    /// its oldest message. - Returns: the number deleted.
    public func expireRetention(at now: Timestamp, limit: Int, effects: inout CommandEffects, in txn: WriteTransaction) throws -> Int {
        var removed = 0
        for var record in try allRecords(in: txn) where !record.deleted && removed < limit {
            let prefix = QueueSchema.queuePrefix(record.id)
            let cutoff = now.adding(seconds: -record.attributes.retention)
            let start = record.purgedBelow == 0 ? prefix : QueueSchema.messageKey(queue: record.id, sequence: record.purgedBelow)
            let victims: [(UInt64, MessageHeader)] = try txn.withCursor(messages) { cursor in
                var found = [(UInt64, MessageHeader)]()
                var entry = try cursor.seek(atOrAfter: start)
                while let current = entry, current.key.starts(with: prefix), removed + found.count < limit {
                    let header = try MessageHeader(decoding: current.value)
                    if header.sentAt > cutoff { break }
                    found.append((try QueueSchema.decodeMessageKey(current.key).sequence, header))
                    entry = try cursor.next()
                }
                return found
            }
            guard !victims.isEmpty else { continue }
            for (sequence, header) in victims {
                try removeMessage(sequence: sequence, header: header, from: &record, in: txn)
            }
            effects.expired[record.id, default: 0] += victims.count
            removed += victims.count
            try put(record, in: txn)
        }
        return removed
    }

    // MARK: Dead-letter queues

    /// Moves up to `limit` ready messages of the dead-letter queue `name` back to the queues
    /// they were dead-lettered from, with id, body, priority and send time intact and the
    /// receive count reset. Messages whose source queue no longer exists stay.
    /// - Returns: how many moved and whether the scan reached the end.
    /// - Throws: ``ErrorCode/queueNotFound``.
    public func redrive(_ name: QueueName, after resume: UInt64, limit: Int, in txn: WriteTransaction) throws -> (moved: Int, next: UInt64?) {
        let dlq = try record(named: name, in: txn)
        var cache = RecordCache(store: self, txn: txn)
        cache.insert(dlq)
        let start = QueueSchema.messageKey(queue: dlq.id, sequence: Swift.max(resume, dlq.purgedBelow))
        let prefix = QueueSchema.queuePrefix(dlq.id)
        let candidates: [(UInt64, MessageHeader)] = try txn.withCursor(messages) { cursor in
            var found = [(UInt64, MessageHeader)]()
            var entry = try cursor.seek(atOrAfter: start)
            while let current = entry, current.key.starts(with: prefix), found.count < limit {
                found.append((try QueueSchema.decodeMessageKey(current.key).sequence, try MessageHeader(decoding: current.value)))
                entry = try cursor.next()
            }
            return found
        }
        var moved = 0
        for (sequence, header) in candidates where header.state == .ready && header.deadLetterSource != 0 {
            guard var source = try cache.get(header.deadLetterSource), !source.deleted else { continue }
            var dlqRecord = try cache.get(dlq.id)!
            try transfer(sequence: sequence, header: header, from: &dlqRecord, to: &source, deadLetterSource: 0, in: txn)
            cache.update(dlqRecord)
            cache.update(source)
            moved += 1
        }
        try cache.flush(in: txn)
        let next = candidates.count < limit ? nil : candidates.last.map { $0.0 + 1 }
        return (moved, next)
    }

    /// Moves a ready-counted message to its queue's dead-letter queue when that queue exists.
    /// - Returns: false (nothing changed) when the dead-letter queue does not exist.
    private func moveToDeadLetterQueue(sequence: UInt64, header: MessageHeader, from record: inout QueueRecord,
                                       cache: inout RecordCache, effects: inout CommandEffects,
                                       in txn: WriteTransaction) throws -> Bool {
        guard let dlqName = record.attributes.deadLetterQueue,
            let dlqRecord = try? self.record(named: dlqName, in: txn), dlqRecord.id != record.id
        else { return false }
        var dlq = try cache.get(dlqRecord.id) ?? dlqRecord
        try transfer(sequence: sequence, header: header, from: &record, to: &dlq, deadLetterSource: record.id, in: txn)
        cache.update(dlq)
        effects.deadLettered[record.id, default: 0] += 1
        return true
    }

    /// Moves a message (counted as ready in `source`) to the end of `target`, as ready, with
    /// receive count 0 and the body record copied byte for byte.
    private func transfer(sequence: UInt64, header: MessageHeader, from source: inout QueueRecord, to target: inout QueueRecord,
                          deadLetterSource: UInt32, in txn: WriteTransaction) throws {
        let oldKey = QueueSchema.messageKey(queue: source.id, sequence: sequence)
        guard let body = try txn.get(bodies, oldKey) else {
            throw StorageError(.corruptRecord, "message \(source.id)/\(sequence) has no body")
        }
        var oldHeader = header
        oldHeader.state = .ready
        let facts = try fifoFacts(queue: source.id, sequence: sequence, in: txn)
        try removeMessage(sequence: sequence, header: oldHeader, from: &source, in: txn)
        let newSequence = target.nextSequence
        target.nextSequence += 1
        var moved = header
        moved.state = .ready
        moved.stateDeadline = Timestamp(milliseconds: 0)
        moved.receiveCount = 0
        moved.firstReceivedAt = Timestamp(milliseconds: 0)
        moved.nonce = .none
        moved.deadLetterSource = deadLetterSource
        let newKey = QueueSchema.messageKey(queue: target.id, sequence: newSequence)
        try txn.put(messages, newKey, moved.encoded())
        try txn.put(bodies, newKey, body)
        if let facts, target.attributes.fifo { try txn.put(fifoMessages, newKey, facts.encoded()) }
        try index(moved, queue: target.id, sequence: newSequence, in: txn)
        target.counts.add(.ready, bytes: moved.bodyBytes)
    }

    // MARK: Index helpers

    /// Adds the index entry of `header`'s state.
    func index(_ header: MessageHeader, queue: UInt32, sequence: UInt64, in txn: WriteTransaction) throws {
        switch header.state {
        case .ready:
            try txn.put(ready, QueueSchema.readyKey(queue: queue, priority: header.priority, sequence: sequence), [])
        case .inFlight:
            try txn.put(inflight, QueueSchema.timeKey(header.stateDeadline, queue: queue, sequence: sequence), [])
        case .delayed:
            try txn.put(delayed, QueueSchema.timeKey(header.stateDeadline, queue: queue, sequence: sequence), [])
        }
    }

    /// Deletes a message, its body and the index entry of its state; adjusts `record`'s counts
    /// (the caller writes `record`).
    func removeMessage(sequence: UInt64, header: MessageHeader, from record: inout QueueRecord, in txn: WriteTransaction) throws {
        let key = QueueSchema.messageKey(queue: record.id, sequence: sequence)
        if record.attributes.fifo {
            try removeFifo(queue: record.id, sequence: sequence, wasInFlight: header.state == .inFlight, in: txn)
        }
        switch header.state {
        case .ready:
            try txn.delete(ready, QueueSchema.readyKey(queue: record.id, priority: header.priority, sequence: sequence))
        case .inFlight:
            try txn.delete(inflight, QueueSchema.timeKey(header.stateDeadline, queue: record.id, sequence: sequence))
        case .delayed:
            try txn.delete(delayed, QueueSchema.timeKey(header.stateDeadline, queue: record.id, sequence: sequence))
        }
        try txn.delete(messages, key)
        try txn.delete(bodies, key)
        // A purged message left the counts when it was purged (decision 112).
        if !record.isPurged(sequence) { record.counts.remove(header.state, bytes: header.bodyBytes) }
    }
}

/// Queue records read and changed during one command, written back once at its end.
struct RecordCache {
    let store: QueueStore
    let txn: Transaction
    private var records: [UInt32: QueueRecord] = [:]
    private var dirty: Set<UInt32> = []

    init(store: QueueStore, txn: Transaction) {
        self.store = store
        self.txn = txn
    }

    mutating func insert(_ record: QueueRecord) { records[record.id] = record }

    mutating func get(_ id: UInt32) throws -> QueueRecord? {
        if let record = records[id] { return record }
        let record = try store.record(id: id, in: txn)
        records[id] = record
        return record
    }

    mutating func update(_ record: QueueRecord) {
        records[record.id] = record
        dirty.insert(record.id)
    }

    func flush(in txn: WriteTransaction) throws {
        for id in dirty.sorted() { try store.put(records[id]!, in: txn) }
    }
}

extension QueueCounts {
    mutating func add(_ state: MessageState, bytes: UInt32) {
        switch state {
        case .ready: ready += 1
        case .inFlight: inFlight += 1
        case .delayed: delayed += 1
        }
        self.bytes += UInt64(bytes)
    }

    mutating func remove(_ state: MessageState, bytes: UInt32) {
        switch state {
        case .ready: ready -= 1
        case .inFlight: inFlight -= 1
        case .delayed: delayed -= 1
        }
        self.bytes -= UInt64(bytes)
    }
}
