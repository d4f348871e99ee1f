public import TernCore
public import TernStorage

/// The command log: every applied ``Command``, in apply order, in the `log` database of the
/// node's environment, appended in the same LMDB transaction as the command's effects (so the
/// log and the state never disagree, whatever crashes), and trimmed to a byte budget.
///
/// | database | key (big-endian) | value |
/// |---|---|---|
/// | `log` | index u64 (from 1) | ``CommandCodec`` record |
/// | `meta` `applied` | | last applied index u64, last applied time ms u64 |
/// | `meta` `log_state` | | first kept index u64, bytes kept u64 |
///
/// The applied index and time advance with every command even when the log is off
/// (`limitBytes` 0): the time makes command time monotonic across restarts, and the index is
/// where a log that is turned on later continues. On one node the log is for inspection and
/// replay (`tern-lmdb log`, `tern-lmdb replay`); in a cluster it becomes the replication log
/// (decision 36).
public struct CommandLog: Sendable {
    public static let databaseNames = ["log"]
    static let appliedKey = Array("applied".utf8)
    static let stateKey = Array("log_state".utf8)

    let meta, entries: Database
    /// Bytes of encoded commands kept; the oldest entries are trimmed beyond it. 0 = off.
    public let limitBytes: Int

    public init(storage: Storage, limitBytes: Int = 0) {
        meta = storage.database("meta")
        entries = storage.database("log")
        self.limitBytes = max(0, limitBytes)
    }

    /// The index and time of the last applied command ((0, 0) before the first).
    public func applied(in txn: Transaction) throws -> (index: UInt64, time: Timestamp) {
        guard let bytes = try txn.get(meta, Self.appliedKey) else { return (0, Timestamp(milliseconds: 0)) }
        var reader = BigEndianReader(bytes)
        return (try reader.readUInt64(), Timestamp(milliseconds: try reader.readUInt64()))
    }

    /// The time of the last applied command (0 before the first).
    public func appliedTime(in txn: Transaction) throws -> Timestamp { try applied(in: txn).time }

    /// The first index the log still holds and the bytes it holds; (applied index + 1, 0) when empty.
    public func state(in txn: Transaction) throws -> (first: UInt64, bytes: UInt64) {
        guard let bytes = try txn.get(meta, Self.stateKey) else { return (try applied(in: txn).index + 1, 0) }
        var reader = BigEndianReader(bytes)
        return (try reader.readUInt64(), try reader.readUInt64())
    }

    /// Advances the applied index and time to `envelope` and, when the log is on, appends it
    /// and trims the oldest entries beyond ``limitBytes``.
    /// - Returns: the command's index when it was logged, nil when the log is off.
    func append(_ envelope: CommandEnvelope, in txn: WriteTransaction) throws -> UInt64? {
        let index = try applied(in: txn).index + 1
        var writer = BigEndianWriter(capacity: 16)
        writer.write(index)
        writer.write(envelope.time.milliseconds)
        try txn.put(meta, Self.appliedKey, writer.bytes)
        guard limitBytes > 0 else { return nil }
        let record = CommandCodec.encode(envelope)
        var (first, bytes) = try state(in: txn)
        if bytes == 0 { first = index }
        try txn.put(entries, Self.key(index), record)
        bytes += UInt64(record.count)
        while bytes > UInt64(limitBytes), first < index {
            if let old = try txn.get(entries, Self.key(first)) {
                bytes -= min(bytes, UInt64(old.count))
                try txn.delete(entries, Self.key(first))
            }
            first += 1
        }
        var state = BigEndianWriter(capacity: 16)
        state.write(first)
        state.write(bytes)
        try txn.put(meta, Self.stateKey, state.bytes)
        return index
    }

    /// Up to `limit` logged commands from index `from` on, in order.
    /// - Throws: ``StorageError`` `corruptRecord` for a damaged entry.
    public func entries(from index: UInt64, limit: Int, in txn: Transaction) throws -> [(index: UInt64, envelope: CommandEnvelope, bytes: Int)] {
        try txn.withCursor(entries) { cursor in
            var result = [(index: UInt64, envelope: CommandEnvelope, bytes: Int)]()
            var entry = try cursor.seek(atOrAfter: Self.key(index))
            while let current = entry, result.count < limit {
                var reader = BigEndianReader(current.key)
                result.append((try reader.readUInt64(), try CommandCodec.decode(current.value), current.value.count))
                entry = try cursor.next()
            }
            return result
        }
    }

    static func key(_ index: UInt64) -> [UInt8] {
        var writer = BigEndianWriter(capacity: 8)
        writer.write(index)
        return writer.bytes
    }
}

extension StateMachine {
    /// Applies the commands logged in `source`, from index `first` on, to this machine's
    /// environment, in order, one write transaction each (commands that fail on the target
    /// stop the replay: they succeeded on the source, so the states have diverged).
    /// - Parameter progress: called with each applied index.
    /// - Returns: how many commands were applied.
    /// - Throws: ``StorageError`` `corruptRecord` when the log has a gap or a damaged entry;
    ///   the ``TernError`` of a command that failed on the target.
    public func replay(from source: Storage, first: UInt64 = 1, storage target: Storage,
                       progress: (UInt64) -> Void = { _ in }) async throws -> Int {
        let log = CommandLog(storage: source)
        var next = first
        var count = 0
        while true {
            let batch = try source.read { txn in try log.entries(from: next, limit: 1000, in: txn) }
            guard !batch.isEmpty else { return count }
            for entry in batch {
                guard entry.index == next else {
                    throw StorageError(.corruptRecord, "the command log has a gap: index \(next) is missing (next is \(entry.index))")
                }
                _ = try await target.write(grows: false) { txn in try self.apply(entry.envelope, in: txn) }
                progress(next)
                next += 1
                count += 1
            }
        }
    }
}
