import TernCore
import TernStorage

/// Retention beyond the queues' own (``QueueStore/expireRetention(at:limit:in:)``): topic
/// batches past their time or `max_bytes`, data of deleted topics, and FIFO deduplication ids
/// past their 5-minute window. Runs incrementally — one transaction of at most
/// ``Broker/chunkSize`` removals per round — so that it never stalls producers, and so that
/// LMDB can reuse the freed pages once no reader holds them.
extension Broker {
    /// One round of retention (the ``Command/retention(limit:)`` command) at the clock's time.
    /// Called by ``runDueWork()`` (and so by the maintenance loop).
    /// - Returns: entries removed and whether the limit stopped the round.
    func runRetention() async throws(TernError) -> (removed: Int, more: Bool) {
        let outcome = try await execute(.retention(limit: Self.chunkSize))
        guard case .retention(let removed, let more) = outcome.result else { Self.unexpected(outcome.result) }
        return (removed, more)
    }
}

/// Size limits of queues: `max_messages` and `max_bytes` with the `overflow` policy.
extension QueueStore {
    /// Makes room for `count` more messages of `bytes` body bytes in `record`'s queue.
    ///
    /// With overflow `reject` (the default) a send that would exceed a limit fails and nothing
    /// changes. With `drop_oldest` the oldest messages in send order (whatever their state; the
    /// handles of dropped in-flight messages become stale) are deleted until the new ones fit.
    /// - Throws: ``ErrorCode/queueFull`` with `reject`, or when the new messages alone exceed a
    ///   limit; nothing is written then.
    func makeRoom(in record: inout QueueRecord, count: UInt64, bytes: UInt64, in txn: WriteTransaction) throws {
        let attributes = record.attributes
        func over(_ counts: QueueCounts) -> Bool {
            if let maxMessages = attributes.maxMessages, counts.total + count > UInt64(maxMessages) { return true }
            if let maxBytes = attributes.maxBytes, counts.bytes + bytes > UInt64(maxBytes) { return true }
            return false
        }
        guard count > 0, over(record.counts) else { return }
        let alone = (attributes.maxMessages.map { count > UInt64($0) } ?? false) || (attributes.maxBytes.map { bytes > UInt64($0) } ?? false)
        if attributes.overflow == .reject || alone {
            if let maxMessages = attributes.maxMessages, record.counts.total + count > UInt64(maxMessages) {
                throw TernError(.queueFull, "queue \(record.name) holds \(record.counts.total) messages, max_messages is \(maxMessages)")
            }
            throw TernError(.queueFull, "queue \(record.name) holds \(record.counts.bytes) bytes, max_bytes is \(attributes.maxBytes ?? 0)")
        }
        let prefix = QueueSchema.queuePrefix(record.id)
        let start = record.counts
        let victims: [(UInt64, MessageHeader)] = try txn.withCursor(messages) { cursor in
            var found = [(UInt64, MessageHeader)]()
            var counts = start
            let start = record.purgedBelow == 0 ? prefix : QueueSchema.messageKey(queue: record.id, sequence: record.purgedBelow)
            var entry = try cursor.seek(atOrAfter: start)
            while let current = entry, current.key.starts(with: prefix), over(counts) {
                let header = try MessageHeader(decoding: current.value)
                found.append((try QueueSchema.decodeMessageKey(current.key).sequence, header))
                counts.remove(header.state, bytes: header.bodyBytes)
                entry = try cursor.next()
            }
            return found
        }
        for (sequence, header) in victims {
            try removeMessage(sequence: sequence, header: header, from: &record, in: txn)
        }
    }
}
