public import TernCore
public import TernStorage

/// The logical space quota (decision 111): a counter of the bytes of stored messages, kept in
/// `meta` and updated by `apply` wherever a queue's counts or a topic partition's bytes change,
/// checked by `apply` against a limit that is itself state (set by
/// ``Command/setStorageLimit(bytes:)``). Two nodes applying the same commands therefore
/// accept and refuse the same sends, whatever their disks and page layouts; the physical
/// check of the map (``TernStorage/Storage/write(grows:_:)``) stays as the node's safety net.
///
/// What counts ("accounted bytes"):
/// - per queue message: its body bytes (``QueueCounts/bytes``) + ``messageOverheadBytes``;
/// - per topic batch: its stored record's length (``PartitionState/bytes``) + ``batchOverheadBytes``.
///
/// Message attributes, FIFO deduplication ids, producers, groups and queue metadata are not
/// counted (they are bounded per message or per client); the command log is not counted.
///
/// `meta` keys (raw big-endian u64): `stored_bytes`, the sum over every queue record and
/// partition state (absent until the first change, then computed once from the stored state);
/// `storage_limit` (absent = no logical limit). `tern-lmdb verify` recomputes the sum.
public struct StorageQuota: Sendable {
    /// Bytes a queue message is accounted beyond its body: header, keys, index entry, B-tree
    /// node headers (measured at ~200 B on disk for small messages; decision 111).
    public static let messageOverheadBytes: UInt64 = 128
    /// Bytes a topic batch is accounted beyond its stored record.
    public static let batchOverheadBytes: UInt64 = 64

    static let usedKey = Array("stored_bytes".utf8)
    static let limitKey = Array("storage_limit".utf8)

    let meta, queues, partitions: Database

    public init(storage: Storage) {
        meta = storage.database("meta")
        queues = storage.database("queues")
        partitions = storage.database("topic_partitions")
    }

    /// The accounted bytes of a queue with `counts`.
    public static func accounted(_ counts: QueueCounts) -> UInt64 {
        counts.bytes + (counts.ready + counts.inFlight + counts.delayed) * messageOverheadBytes
    }

    /// The accounted bytes of a topic partition in `state`.
    public static func accounted(_ state: PartitionState) -> UInt64 {
        state.bytes + state.batches * batchOverheadBytes
    }

    /// The accounted bytes of messages being added: `bodyBytes` over `count` messages.
    public static func accounted(messages count: UInt64, bodyBytes: UInt64) -> UInt64 {
        bodyBytes + count * messageOverheadBytes
    }

    /// The accounted bytes stored: the `stored_bytes` counter, or, before it was first written,
    /// the sum over the stored queue records and partition states.
    public func used(in txn: Transaction) throws -> UInt64 {
        if let stored = try txn.get(meta, Self.usedKey) { return try Self.decode(stored, "stored_bytes") }
        return try recomputed(in: txn)
    }

    /// The sum the counter must equal (what `tern-lmdb verify` compares it with).
    public func recomputed(in txn: Transaction) throws -> UInt64 {
        var total: UInt64 = 0
        try txn.withCursor(queues) { cursor in
            var entry = try cursor.first()
            while let current = entry {
                total += Self.accounted(try QueueRecord(decoding: current.value).counts)
                entry = try cursor.next()
            }
        }
        try txn.withCursor(partitions) { cursor in
            var entry = try cursor.first()
            while let current = entry {
                total += Self.accounted(try PartitionState(decoding: current.value))
                entry = try cursor.next()
            }
        }
        return total
    }

    /// The logical limit in accounted bytes, nil when there is none.
    public func limit(in txn: Transaction) throws -> UInt64? {
        try txn.get(meta, Self.limitKey).map { try Self.decode($0, "storage_limit") }
    }

    func setLimit(_ limit: UInt64?, in txn: WriteTransaction) throws {
        if let limit {
            var writer = BigEndianWriter(capacity: 8)
            writer.write(limit)
            try txn.put(meta, Self.limitKey, writer.bytes)
        } else {
            try txn.delete(meta, Self.limitKey)
        }
    }

    /// Refuses adding `bytes` accounted bytes when that would take the stored total past the
    /// limit. Called before anything of the command is written.
    /// - Throws: ``ErrorCode/storageFull``.
    func check(adding bytes: UInt64, in txn: Transaction) throws {
        guard bytes > 0, let limit = try limit(in: txn) else { return }
        let used = try used(in: txn)
        guard used + bytes <= limit else {
            throw TernError(.storageFull, "the storage quota is reached: \(used) of \(limit) bytes are stored and this request needs \(bytes) more; sends are refused until messages are acknowledged, purged, expired or deleted, or the quota (max_storage_bytes) is raised")
        }
    }

    /// Moves the counter from `old` to `new` accounted bytes of one record.
    func adjust(from old: UInt64, to new: UInt64, in txn: WriteTransaction) throws {
        guard old != new else { return }
        let used = try used(in: txn)
        var writer = BigEndianWriter(capacity: 8)
        writer.write(used + new - min(old, used + new))
        try txn.put(meta, Self.usedKey, writer.bytes)
    }

    static func decode(_ bytes: [UInt8], _ name: String) throws -> UInt64 {
        guard bytes.count == 8 else { throw StorageError(.corruptRecord, "meta[\(name)] holds \(bytes.count) bytes, expected 8") }
        var reader = BigEndianReader(bytes)
        return try reader.readUInt64()
    }
}
