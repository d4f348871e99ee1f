public import TernCore
public import TernStorage

/// Names of recently deleted queues, for a front end's rule on re-using a name (SQS: no queue
/// of the name may be created for 60 s after `DeleteQueue`; decision 139). Broker state, so
/// replicated: written only by ``Command/noteDeletedQueue(_:keepMilliseconds:)``, which also
/// drops every entry past its time, and bounded by ``maxEntries``.
///
/// Database `deleted_queue_names`: key the name (UTF-8), value `deleted at ms u64 | kept until
/// ms u64`.
public struct DeletedQueueNames: Sendable {
    public static let database = "deleted_queue_names"
    /// The most names kept; past it the ones whose time ends first are dropped.
    public static let maxEntries = 10_000
    /// The longest a name may be kept, in ms (one day).
    public static let maxKeepMilliseconds: UInt64 = 86_400_000

    let names: Database?

    public init(storage: Storage) {
        names = storage.hasDatabase(Self.database) ? storage.database(Self.database) : nil
    }

    /// One entry: when the queue was deleted and until when the name is remembered, in ms.
    public struct Entry: Sendable, Hashable {
        public var deletedAt: Timestamp
        public var until: Timestamp
    }

    static func encode(_ entry: Entry) -> [UInt8] {
        var out = [UInt8]()
        for value in [entry.deletedAt.milliseconds, entry.until.milliseconds] {
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8((value >> UInt64(shift)) & 0xFF)) }
        }
        return out
    }

    /// - Throws: ``StorageError`` `corruptRecord` unless `bytes` are two u64.
    public static func decode(_ bytes: [UInt8]) throws(StorageError) -> Entry {
        guard bytes.count == 16 else { throw StorageError(.corruptRecord, "a deleted_queue_names value has \(bytes.count) bytes, expected 16") }
        let deletedAt = bytes[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let until = bytes[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return Entry(deletedAt: Timestamp(milliseconds: deletedAt), until: Timestamp(milliseconds: until))
    }

    /// Every entry, in name order.
    public func entries(in txn: Transaction) throws -> [(name: String, entry: Entry)] {
        guard let names else { return [] }
        return try txn.withCursor(names) { cursor in
            var found = [(name: String, entry: Entry)]()
            var current = try cursor.first()
            while let (key, value) = current {
                found.append((String(decoding: key, as: UTF8.self), try Self.decode(value)))
                current = try cursor.next()
            }
            return found
        }
    }

    /// The entry of `name` when it is remembered at `now`; nil otherwise.
    public func entry(_ name: QueueName, at now: Timestamp, in txn: Transaction) throws -> Entry? {
        guard let names, let bytes = try txn.get(names, Array(name.rawValue.utf8)) else { return nil }
        let entry = try Self.decode(bytes)
        return now < entry.until ? entry : nil
    }

    /// Remembers `name` as deleted at `now` for `keep` ms, and drops every entry whose time
    /// ended at `now` (then, past ``maxEntries``, those ending first).
    /// - Throws: ``ErrorCode/invalidParameter`` when `keep` exceeds ``maxKeepMilliseconds``.
    func note(_ name: QueueName, keep: UInt64, at now: Timestamp, in txn: WriteTransaction) throws {
        guard keep <= Self.maxKeepMilliseconds else {
            throw TernError(.invalidParameter, "a deleted queue name is kept at most \(Self.maxKeepMilliseconds) ms, got \(keep)")
        }
        guard let names else { throw StorageError(.closed, "database \(Self.database) was not opened") }
        var live = [(key: [UInt8], until: UInt64)]()
        for (other, entry) in try entries(in: txn) {
            if entry.until <= now { _ = try txn.delete(names, Array(other.utf8)) } else if other != name.rawValue {
                live.append((Array(other.utf8), entry.until.milliseconds))
            }
        }
        if live.count >= Self.maxEntries {
            let ordered = live.sorted { $0.until != $1.until ? $0.until < $1.until : $0.key.lexicographicallyPrecedes($1.key) }
            for dropped in ordered.prefix(live.count - Self.maxEntries + 1) {
                _ = try txn.delete(names, dropped.key)
            }
        }
        try txn.put(names, Array(name.rawValue.utf8), Self.encode(Entry(deletedAt: now, until: Timestamp(milliseconds: now.milliseconds + keep))))
    }
}
