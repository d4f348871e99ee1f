public import TernCore
public import TernStorage

/// Applies topic commands to LMDB. Like ``QueueStore``, every method takes the time it needs
/// as an argument (decided by ``Broker`` before the command is applied) and reads neither a
/// clock nor a random source; a method that throws does so before writing.
public struct TopicStore: Sendable {
    let meta, names, topics, partitions, batches, groupOffsets: Database
    /// nil only in a read-only environment written before groups were durable.
    let groups: Database?
    let quota: StorageQuota

    public init(storage: Storage) {
        meta = storage.database("meta")
        names = storage.database("topic_names")
        topics = storage.database("topics")
        partitions = storage.database("topic_partitions")
        batches = storage.database("topic_batches")
        groupOffsets = storage.database("group_offsets")
        groups = storage.hasDatabase("groups") ? storage.database("groups") : nil
        quota = StorageQuota(storage: storage)
    }

    /// The most bytes one fetch returns (at least one message is always returned).
    public static let maxFetchBytes = 16 << 20

    // MARK: Topic records

    /// The live record of `name`.
    /// - Throws: ``ErrorCode/topicNotFound``.
    public func record(named name: QueueName, in txn: Transaction) throws -> TopicRecord {
        guard let idBytes = try txn.get(names, Array(name.rawValue.utf8)) else {
            throw TernError(.topicNotFound, "topic \(name) does not exist")
        }
        var reader = BigEndianReader(idBytes)
        guard let record = try self.record(id: try reader.readUInt32(), in: txn), !record.deleted else {
            throw TernError(.topicNotFound, "topic \(name) does not exist")
        }
        return record
    }

    /// The record of topic `id` (deleted ones included), nil when there is none.
    public func record(id: UInt32, in txn: Transaction) throws -> TopicRecord? {
        try txn.get(topics, TopicSchema.topicKey(id)).map { try TopicRecord(decoding: $0) }
    }

    /// All records, deleted ones included, in id order.
    public func allRecords(in txn: Transaction) throws -> [TopicRecord] {
        try txn.withCursor(topics) { cursor in
            var result = [TopicRecord]()
            var entry = try cursor.first()
            while let current = entry {
                result.append(try TopicRecord(decoding: current.value))
                entry = try cursor.next()
            }
            return result
        }
    }

    /// The state of one partition (all zero when nothing was ever produced to it).
    public func partitionState(topic: UInt32, partition: Int, in txn: Transaction) throws -> PartitionState {
        try txn.get(partitions, TopicSchema.partitionKey(topic: topic, partition: UInt32(partition)))
            .map { try PartitionState(decoding: $0) } ?? PartitionState()
    }

    /// Writes `state`, moving the storage quota's counter by the change of its accounted bytes.
    func put(_ state: PartitionState, topic: UInt32, partition: Int, in txn: WriteTransaction) throws {
        try put(state, key: TopicSchema.partitionKey(topic: topic, partition: UInt32(partition)), in: txn)
    }

    private func put(_ state: PartitionState, key: [UInt8], in txn: WriteTransaction) throws {
        let old = try txn.get(partitions, key).map { try PartitionState(decoding: $0) }
        try quota.adjust(from: old.map(StorageQuota.accounted) ?? 0, to: StorageQuota.accounted(state), in: txn)
        try txn.put(partitions, key, state.encoded())
    }

    /// Every partition of `record` with its offsets and size.
    public func info(_ record: TopicRecord, in txn: Transaction) throws -> TopicInfo {
        let list = try (0..<record.attributes.partitions).map { p in
            let state = try partitionState(topic: record.id, partition: p, in: txn)
            return PartitionInfo(partition: p, logStart: state.logStart, highWatermark: state.highWatermark,
                                 bytes: state.bytes, batches: state.batches)
        }
        return TopicInfo(name: record.name, attributes: record.attributes, createdAt: record.createdAt, partitions: list)
    }

    // MARK: Create, update, delete

    /// Creates `name` with `patch` over the defaults, or applies `patch` to the existing topic.
    /// - Throws: ``ErrorCode/invalidAttribute`` for out-of-range values; ``ErrorCode/conflict``
    ///   when the partition count of an existing topic would change.
    public func createOrUpdate(_ name: QueueName, patch: TopicAttributes.Patch, at now: Timestamp,
                               in txn: WriteTransaction) throws -> (created: Bool, record: TopicRecord) {
        if let existing = try? record(named: name, in: txn) {
            if let partitions = patch.partitions, partitions != existing.attributes.partitions {
                throw TernError(.conflict, "the partition count of an existing topic cannot change (it has \(existing.attributes.partitions))")
            }
            let attributes = patch.applied(to: existing.attributes)
            try attributes.validate()
            var updated = existing
            updated.attributes = attributes
            if updated != existing { try txn.put(topics, TopicSchema.topicKey(updated.id), updated.encoded()) }
            return (false, updated)
        }
        let attributes = patch.applied(to: TopicAttributes())
        try attributes.validate()
        var next: UInt32 = 1
        if let stored = try txn.get(meta, TopicSchema.nextTopicIDKey) {
            var reader = BigEndianReader(stored)
            next = try reader.readUInt32()
        }
        var counter = BigEndianWriter()
        counter.write(next + 1)
        try txn.put(meta, TopicSchema.nextTopicIDKey, counter.bytes)
        let record = TopicRecord(id: next, name: name, createdAt: now, attributes: attributes)
        try txn.put(names, Array(name.rawValue.utf8), TopicSchema.topicKey(next))
        try txn.put(topics, TopicSchema.topicKey(next), record.encoded())
        return (true, record)
    }

    /// Removes `name` at once and marks its record deleted; ``sweepDeleted(limit:in:)`` then
    /// removes its batches, partition states and group offsets in small transactions.
    /// - Returns: the deleted topic's id.
    /// - Throws: ``ErrorCode/topicNotFound``.
    public func delete(_ name: QueueName, in txn: WriteTransaction) throws -> UInt32 {
        var record = try record(named: name, in: txn)
        try txn.delete(names, Array(name.rawValue.utf8))
        record.deleted = true
        try txn.put(topics, TopicSchema.topicKey(record.id), record.encoded())
        return record.id
    }

    /// Removes up to `limit` entries of one deleted topic (batches first, then partition
    /// states, group offsets and group states, then the record).
    /// - Returns: entries removed and whether a deleted topic remains to be swept.
    public func sweepDeleted(limit: Int, in txn: WriteTransaction) throws -> (removed: Int, more: Bool) {
        let deleted = try allRecords(in: txn).filter(\.deleted)
        guard let topic = deleted.first else { return (0, false) }
        let prefix = TopicSchema.topicKey(topic.id)
        var removed = 0
        for database in [batches, partitions, groupOffsets, groups].compactMap({ $0 }) where removed < limit {
            let keys: [[UInt8]] = try txn.withCursor(database) { cursor in
                var keys = [[UInt8]]()
                var entry = try cursor.seek(atOrAfter: prefix)
                while let current = entry, current.key.starts(with: prefix), removed + keys.count < limit {
                    keys.append(current.key)
                    entry = try cursor.next()
                }
                return keys
            }
            for key in keys {
                if database == partitions, let stored = try txn.get(partitions, key) {
                    try quota.adjust(from: StorageQuota.accounted(try PartitionState(decoding: stored)), to: 0, in: txn)
                }
                try txn.delete(database, key)
            }
            removed += keys.count
        }
        if removed < limit {
            try txn.delete(topics, prefix)
            return (removed, deleted.count > 1)
        }
        return (removed, true)
    }

    // MARK: Produce

    /// Appends `messages` to `partition` of topic `topic` as one batch, all stamped `now`.
    /// - Returns: the offset of the first message (the others follow densely).
    /// - Throws: ``ErrorCode/topicNotFound`` when the topic was deleted meanwhile;
    ///   ``ErrorCode/invalidParameter`` for a partition outside the topic.
    public func append(topic: UInt32, partition: Int, messages: [(key: [UInt8]?, value: [UInt8])], at now: Timestamp,
                       in txn: WriteTransaction) throws -> UInt64 {
        guard let record = try record(id: topic, in: txn), !record.deleted else {
            throw TernError(.topicNotFound, "the topic was deleted")
        }
        guard (0..<record.attributes.partitions).contains(partition) else {
            throw TernError(.invalidParameter, "partition must be 0–\(record.attributes.partitions - 1), got \(partition)")
        }
        precondition(!messages.isEmpty, "a batch holds at least one message")
        var state = try partitionState(topic: topic, partition: partition, in: txn)
        let base = state.highWatermark
        let batch = TopicBatch(entries: messages.enumerated().map { index, message in
            TopicBatch.Entry(offsetDelta: UInt32(index), timestamp: now, key: message.key, value: message.value)
        })
        let encoded = batch.encoded()
        try quota.check(adding: UInt64(encoded.count) + StorageQuota.batchOverheadBytes, in: txn)
        try txn.put(batches, TopicSchema.batchKey(topic: topic, partition: UInt32(partition), baseOffset: base), encoded)
        if state.batches == 0 { state.logStart = base }
        state.highWatermark = base + UInt64(messages.count)
        state.bytes += UInt64(encoded.count)
        state.batches += 1
        try put(state, topic: topic, partition: partition, in: txn)
        return base
    }

    // MARK: Fetch

    /// Up to `max` messages of one partition from `offset` on (fewer when they would exceed
    /// ``maxFetchBytes``, but at least one when any exists).
    /// - Throws: ``ErrorCode/offsetOutOfRange`` when `offset` is below the log start or above
    ///   the high watermark (the message names the valid range).
    public func fetch(topic: UInt32, partition: Int, from offset: UInt64, max: Int, in txn: Transaction) throws -> FetchResult {
        let state = try partitionState(topic: topic, partition: partition, in: txn)
        guard offset >= state.logStart, offset <= state.highWatermark else {
            throw TernError(.offsetOutOfRange,
                            "offset \(offset) is outside partition \(partition)'s range \(state.logStart)–\(state.highWatermark) (log start–high watermark)")
        }
        var messages = [FetchedMessage]()
        if offset < state.highWatermark {
            messages = try read(topic: topic, partition: partition, from: offset, max: max, in: txn)
        }
        return FetchResult(messages: messages, highWatermark: state.highWatermark, logStart: state.logStart)
    }

    /// Reads messages from the batch holding `offset` (the one with the greatest base offset
    /// ≤ `offset`) onwards.
    func read(topic: UInt32, partition: Int, from offset: UInt64, max: Int, in txn: Transaction) throws -> [FetchedMessage] {
        let prefix = TopicSchema.partitionKey(topic: topic, partition: UInt32(partition))
        let target = TopicSchema.batchKey(topic: topic, partition: UInt32(partition), baseOffset: offset)
        return try txn.withCursor(batches) { cursor in
            var entry = try cursor.seek(atOrAfter: target)
            if entry == nil || entry!.key != target {
                // Step back to the batch that starts before `offset` (when it is in this partition).
                let previous = entry == nil ? try cursor.last() : try cursor.previous()
                if let previous, previous.key.starts(with: prefix) { entry = previous }
            }
            var result = [FetchedMessage]()
            var bytes = 0
            while let current = entry, current.key.starts(with: prefix), result.count < max, bytes < Self.maxFetchBytes {
                let base = try TopicSchema.decodeBatchKey(current.key).baseOffset
                for message in try TopicBatch(decoding: current.value).entries {
                    let messageOffset = base + UInt64(message.offsetDelta)
                    guard messageOffset >= offset else { continue }
                    guard result.count < max, result.isEmpty || bytes + message.value.count <= Self.maxFetchBytes else { break }
                    bytes += message.value.count + (message.key?.count ?? 0)
                    result.append(FetchedMessage(partition: partition, offset: messageOffset, key: message.key,
                                                 value: message.value, timestamp: message.timestamp))
                }
                entry = try cursor.next()
            }
            return result
        }
    }

    /// The first offset of `partition` whose message was produced at or after `time`; the high
    /// watermark when there is none.
    public func offset(forTime time: Timestamp, topic: UInt32, partition: Int, in txn: Transaction) throws -> UInt64 {
        let state = try partitionState(topic: topic, partition: partition, in: txn)
        let prefix = TopicSchema.partitionKey(topic: topic, partition: UInt32(partition))
        return try txn.withCursor(batches) { cursor in
            var entry = try cursor.seek(atOrAfter: prefix)
            while let current = entry, current.key.starts(with: prefix) {
                let base = try TopicSchema.decodeBatchKey(current.key).baseOffset
                for message in try TopicBatch(decoding: current.value).entries where message.timestamp >= time {
                    return base + UInt64(message.offsetDelta)
                }
                entry = try cursor.next()
            }
            return state.highWatermark
        }
    }

    // MARK: Retention

    /// Drops, oldest first, up to `limit` batches that passed their topic's retention at `now`
    /// or that push a partition over its `max_bytes`, across all live topics.
    /// - Returns: batches dropped, the partitions whose log start moved, and whether the limit stopped the work.
    public func expireRetention(at now: Timestamp, limit: Int, in txn: WriteTransaction) throws -> (dropped: Int, more: Bool) {
        var dropped = 0
        for record in try allRecords(in: txn) where !record.deleted {
            let cutoff = now.adding(seconds: -record.attributes.retention)
            for partition in 0..<record.attributes.partitions {
                guard dropped < limit else { return (dropped, true) }
                let key = TopicSchema.partitionKey(topic: record.id, partition: UInt32(partition))
                guard let stored = try txn.get(partitions, key) else { continue }
                var state = try PartitionState(decoding: stored)
                guard state.batches > 0 else { continue }
                let victims: [(key: [UInt8], bytes: Int, end: UInt64)] = try txn.withCursor(batches) { cursor in
                    var found = [(key: [UInt8], bytes: Int, end: UInt64)]()
                    var bytes = state.bytes
                    var entry = try cursor.seek(atOrAfter: key)
                    while let current = entry, current.key.starts(with: key), dropped + found.count < limit {
                        let overSize = record.attributes.maxBytes.map { bytes > UInt64($0) } ?? false
                        let batch = try TopicBatch(decoding: current.value)
                        guard overSize || batch.maxTimestamp <= cutoff else { break }
                        let base = try TopicSchema.decodeBatchKey(current.key).baseOffset
                        found.append((current.key, current.value.count, base + UInt64(batch.entries.count)))
                        bytes -= UInt64(current.value.count)
                        entry = try cursor.next()
                    }
                    return found
                }
                guard !victims.isEmpty else { continue }
                for victim in victims {
                    try txn.delete(batches, victim.key)
                    state.bytes -= UInt64(victim.bytes)
                    state.batches -= 1
                    state.logStart = victim.end
                }
                try put(state, key: key, in: txn)
                dropped += victims.count
            }
        }
        return (dropped, dropped >= limit)
    }

    // MARK: Group offsets

    /// The committed offsets of `group` on `topic`, by partition.
    public func committedOffsets(topic: UInt32, group: String, in txn: Transaction) throws -> [Int: UInt64] {
        let prefix = TopicSchema.groupPrefix(topic: topic, group: group)
        return try txn.withCursor(groupOffsets) { cursor in
            var result = [Int: UInt64]()
            var entry = try cursor.seek(atOrAfter: prefix)
            while let current = entry, current.key.starts(with: prefix), current.key.count == prefix.count + 4 {
                var keyReader = BigEndianReader(current.key, offset: prefix.count)
                var valueReader = BigEndianReader(try RecordCodec.decode(current.value))
                result[Int(try keyReader.readUInt32())] = try valueReader.readUInt64()
                entry = try cursor.next()
            }
            return result
        }
    }

    /// Stores committed offsets of `group`.
    /// - Throws: ``ErrorCode/topicNotFound``; ``ErrorCode/invalidParameter`` for a partition
    ///   outside the topic or an offset above the partition's high watermark.
    public func commit(topic: UInt32, group: String, offsets: [Int: UInt64], at now: Timestamp, in txn: WriteTransaction) throws {
        guard let record = try record(id: topic, in: txn), !record.deleted else {
            throw TernError(.topicNotFound, "the topic was deleted")
        }
        for (partition, offset) in offsets.sorted(by: { $0.key < $1.key }) {
            guard (0..<record.attributes.partitions).contains(partition) else {
                throw TernError(.invalidParameter, "partition \(partition) is outside the topic (0–\(record.attributes.partitions - 1))")
            }
            let state = try partitionState(topic: topic, partition: partition, in: txn)
            guard offset <= state.highWatermark else {
                throw TernError(.invalidParameter, "offset \(offset) for partition \(partition) is beyond its high watermark \(state.highWatermark)")
            }
        }
        for (partition, offset) in offsets {
            var writer = BigEndianWriter(capacity: 16)
            writer.write(offset)
            writer.write(now.milliseconds)
            try txn.put(groupOffsets, TopicSchema.groupOffsetKey(topic: topic, group: group, partition: UInt32(partition)),
                        RecordCodec.encode(writer.bytes, compression: .never))
        }
    }
}
