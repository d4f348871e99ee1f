/// The Raft state of many replication groups in the node's LMDB environment: per group, the
/// hard state (term, vote, commit), the snapshot point, and the log entries after it.
///
/// Every write takes the caller's ``WriteTransaction``, so the shell can put a group's
/// appends, its hard state and the state machine's writes for the entries it applies in one
/// group-commit transaction (CLUSTER.md, layer 3). Keys start with the 8-byte group id, so
/// one cursor range holds one group's log, in index order. Layout: docs/storage.md,
/// "Raft log and hard state".
///
/// ```swift
/// let storage = try Storage(directory: dir, databases: Broker.databaseNames + RaftLogStore.databaseNames, logger: logger)
/// let raftLog = RaftLogStore(storage: storage)
/// try await storage.write { txn in
///     try raftLog.append(group: 7, ready.entries, in: txn)         // replaces a conflicting suffix
///     try raftLog.saveHardState(group: 7, hardState, in: txn)
/// }
/// let state = try storage.read { txn in try raftLog.load(group: 7, in: txn) }   // after a restart
/// ```
///
/// Threading: like every write, the write methods run on the writer thread inside the body of
/// ``Storage/write(grows:_:)``; the read methods in any transaction. Returned values are
/// copies that outlive the transaction.
public struct RaftLogStore: Sendable {
    /// The databases this store needs; pass them to ``Storage/init(directory:databases:settings:logger:)``.
    public static let databaseNames = ["raft_state", "raft_log"]

    /// A replication group's id (the metadata group and every data group have one).
    public typealias GroupID = UInt64

    /// Raft's hard state (Raft figure 2): persist before sending any message.
    public struct HardState: Sendable, Hashable {
        public var term: UInt64
        /// The node voted for in ``term``; 0 for none.
        public var vote: UInt64
        public var commit: UInt64

        public init(term: UInt64, vote: UInt64, commit: UInt64) {
            self.term = term
            self.vote = vote
            self.commit = commit
        }
    }

    /// One stored log entry; `kind` and `payload` are opaque here (the replication layer's
    /// entry kind and the encoded broker command).
    public struct Entry: Sendable, Hashable {
        public var index: UInt64
        public var term: UInt64
        public var kind: UInt8
        public var payload: [UInt8]

        public init(index: UInt64, term: UInt64, kind: UInt8, payload: [UInt8]) {
            self.index = index
            self.term = term
            self.kind = kind
            self.payload = payload
        }
    }

    /// The point a snapshot replaced the log up to: its last index and term, and the
    /// configuration at that index (opaque bytes, the replication layer's encoding).
    public struct SnapshotPoint: Sendable, Hashable {
        public var index: UInt64
        public var term: UInt64
        public var configuration: [UInt8]

        public init(index: UInt64, term: UInt64, configuration: [UInt8]) {
            self.index = index
            self.term = term
            self.configuration = configuration
        }
    }

    /// Everything stored for one group.
    public struct GroupState: Sendable, Hashable {
        /// nil when the group never saved one.
        public var hardState: HardState?
        public var snapshot: SnapshotPoint?
        /// The entries after the snapshot point, consecutive, in index order.
        public var entries: [Entry]

        public init(hardState: HardState?, snapshot: SnapshotPoint?, entries: [Entry]) {
            self.hardState = hardState
            self.snapshot = snapshot
            self.entries = entries
        }
    }

    private let stateDatabase: Database
    private let logDatabase: Database

    static let hardStateTag: UInt8 = 0
    static let snapshotTag: UInt8 = 1
    static let appliedTag: UInt8 = 2

    /// A store over `storage`, which must have opened ``databaseNames`` (traps otherwise).
    public init(storage: Storage) {
        stateDatabase = storage.database("raft_state")
        logDatabase = storage.database("raft_log")
    }

    // MARK: Writing

    /// Stores `hardState` for `group`, replacing the previous one.
    /// - Throws: ``StorageError`` from LMDB (``StorageError/Code/mapFull`` when full).
    public func saveHardState(group: GroupID, _ hardState: HardState, in txn: WriteTransaction) throws {
        var w = BigEndianWriter(capacity: 24)
        w.write(hardState.term); w.write(hardState.vote); w.write(hardState.commit)
        try txn.put(stateDatabase, Self.stateKey(group, Self.hardStateTag), RecordCodec.encode(w.bytes, compression: .never))
    }

    /// Appends `entries` (consecutive) to `group`'s log, first deleting every stored entry at
    /// or after the first one's index: the conflicting suffix a new leader replaced (Raft §5.3).
    /// - Throws: ``StorageError`` from LMDB.
    public func append(group: GroupID, _ entries: [Entry], in txn: WriteTransaction) throws {
        guard let first = entries.first else { return }
        try truncate(group: group, from: first.index, in: txn)
        var expected = first.index
        for entry in entries {
            precondition(entry.index == expected, "raft log entries must be consecutive")
            expected += 1
            var w = BigEndianWriter(capacity: 9 + entry.payload.count)
            w.write(entry.term); w.write(entry.kind); w.write(entry.payload)
            try txn.put(logDatabase, Self.logKey(group, entry.index), RecordCodec.encode(w.bytes))
        }
    }

    /// Deletes `group`'s stored entries at and after `index`.
    /// - Returns: how many entries were deleted.
    @discardableResult
    public func truncate(group: GroupID, from index: UInt64, in txn: WriteTransaction) throws -> Int {
        try deleteRange(group: group, from: index, through: .max, in: txn)
    }

    /// Records that a snapshot replaced `group`'s log through `point.index` and deletes the
    /// entries up to it (log compaction, Raft §7). Call it in the transaction that made the
    /// snapshot durable (for a state machine stored in the same environment: any transaction
    /// at or after the one that applied `point.index`).
    /// - Returns: how many entries were deleted.
    @discardableResult
    public func compact(group: GroupID, through point: SnapshotPoint, in txn: WriteTransaction) throws -> Int {
        try saveSnapshotPoint(group: group, point, in: txn)
        return try deleteRange(group: group, from: 0, through: point.index, in: txn)
    }

    /// Records an installed snapshot (received from the leader): the whole stored log of
    /// `group` is replaced by the snapshot point.
    public func installSnapshot(group: GroupID, _ point: SnapshotPoint, in txn: WriteTransaction) throws {
        try saveSnapshotPoint(group: group, point, in: txn)
        try deleteRange(group: group, from: 0, through: .max, in: txn)
    }

    /// Records that `group`'s state machine has applied every entry through `index`. Write it in
    /// the transaction that applies the entry, so that a restart neither re-applies an entry
    /// whose effects are stored nor skips one whose effects are not.
    /// - Throws: ``StorageError`` from LMDB.
    public func saveApplied(group: GroupID, _ index: UInt64, in txn: WriteTransaction) throws {
        var w = BigEndianWriter(capacity: 8)
        w.write(index)
        try txn.put(stateDatabase, Self.stateKey(group, Self.appliedTag), RecordCodec.encode(w.bytes, compression: .never))
    }

    /// The highest index `group`'s state machine applied (``saveApplied(group:_:in:)``), 0 when none.
    /// - Throws: ``StorageError/Code/corruptRecord`` when the record fails its checksum.
    public func loadApplied(group: GroupID, in txn: Transaction) throws -> UInt64 {
        guard let record = try txn.get(stateDatabase, Self.stateKey(group, Self.appliedTag)) else { return 0 }
        var r = BigEndianReader(try RecordCodec.decode(record))
        return try r.readUInt64()
    }

    /// Deletes everything stored for `group` (the replica left the group).
    public func deleteGroup(_ group: GroupID, in txn: WriteTransaction) throws {
        try deleteRange(group: group, from: 0, through: .max, in: txn)
        try txn.delete(stateDatabase, Self.stateKey(group, Self.hardStateTag))
        try txn.delete(stateDatabase, Self.stateKey(group, Self.snapshotTag))
        try txn.delete(stateDatabase, Self.stateKey(group, Self.appliedTag))
    }

    // MARK: Reading

    /// Everything stored for `group` (what a node loads at start).
    /// - Throws: ``StorageError/Code/corruptRecord`` when a record fails its checksum or
    ///   format, or the stored entries are not consecutive after the snapshot point.
    public func load(group: GroupID, in txn: Transaction) throws -> GroupState {
        let hardState = try loadHardState(group: group, in: txn)
        var snapshot: SnapshotPoint?
        if let record = try txn.get(stateDatabase, Self.stateKey(group, Self.snapshotTag)) {
            var r = BigEndianReader(try RecordCodec.decode(record))
            snapshot = SnapshotPoint(index: try r.readUInt64(), term: try r.readUInt64(), configuration: try r.readLengthPrefixed())
        }
        let entries = try self.entries(group: group, from: 0, through: .max, in: txn)
        var expected = (snapshot?.index ?? 0) + 1
        if snapshot == nil, let first = entries.first { expected = first.index }
        for entry in entries {
            guard entry.index == expected else {
                throw StorageError(.corruptRecord, "raft log of group \(group) has a gap: entry \(entry.index) where \(expected) was expected")
            }
            expected += 1
        }
        return GroupState(hardState: hardState, snapshot: snapshot, entries: entries)
    }

    /// `group`'s hard state, or nil when none was saved.
    public func loadHardState(group: GroupID, in txn: Transaction) throws -> HardState? {
        guard let record = try txn.get(stateDatabase, Self.stateKey(group, Self.hardStateTag)) else { return nil }
        var r = BigEndianReader(try RecordCodec.decode(record))
        return HardState(term: try r.readUInt64(), vote: try r.readUInt64(), commit: try r.readUInt64())
    }

    /// `group`'s stored entries with index in `from...through`, in order, stopping after
    /// `maxBytes` of payload (at least one entry is returned when any is in range).
    public func entries(group: GroupID, from: UInt64, through: UInt64, maxBytes: Int = .max,
                        in txn: Transaction) throws -> [Entry] {
        guard from <= through else { return [] }
        return try txn.withCursor(logDatabase) { cursor in
            var entries: [Entry] = []
            var bytes = 0
            var item = try cursor.seek(atOrAfter: Self.logKey(group, from))
            while let (key, value) = item, key.count == 16, Self.group(of: key) == group {
                let index = Self.index(of: key)
                guard index <= through else { break }
                var r = BigEndianReader(try RecordCodec.decode(value))
                let term = try r.readUInt64(), kind = try r.readUInt8()
                let payload = try r.readBytes(r.remaining)
                bytes += payload.count
                if !entries.isEmpty && bytes > maxBytes { break }
                entries.append(Entry(index: index, term: term, kind: kind, payload: payload))
                item = try cursor.next()
            }
            return entries
        }
    }

    /// The index of `group`'s last stored entry, or nil when its log is empty.
    public func lastIndex(group: GroupID, in txn: Transaction) throws -> UInt64? {
        try txn.withCursor(logDatabase) { cursor in
            // The first key of the next group, then one step back.
            var item: Cursor.Entry?
            if group == .max {
                item = try cursor.last()
            } else if try cursor.seek(atOrAfter: Self.logKey(group + 1, 0)) != nil {
                item = try cursor.previous()
            } else {
                item = try cursor.last()
            }
            guard let (key, _) = item, key.count == 16, Self.group(of: key) == group else { return nil }
            return Self.index(of: key)
        }
    }

    /// The ids of every group with a stored hard state, ascending.
    public func groups(in txn: Transaction) throws -> [GroupID] {
        try txn.withCursor(stateDatabase) { cursor in
            var groups: [GroupID] = []
            var item = try cursor.first()
            while let (key, _) = item {
                if key.count == 9, key[8] == Self.hardStateTag { groups.append(Self.group(of: key)) }
                item = try cursor.next()
            }
            return groups
        }
    }

    // MARK: Keys

    static func stateKey(_ group: GroupID, _ tag: UInt8) -> [UInt8] {
        var w = BigEndianWriter(capacity: 9)
        w.write(group); w.write(tag)
        return w.bytes
    }

    static func logKey(_ group: GroupID, _ index: UInt64) -> [UInt8] {
        var w = BigEndianWriter(capacity: 16)
        w.write(group); w.write(index)
        return w.bytes
    }

    static func group(of key: [UInt8]) -> GroupID {
        var v: UInt64 = 0
        for k in 0..<8 { v = v << 8 | UInt64(key[k]) }
        return v
    }

    static func index(of key: [UInt8]) -> UInt64 {
        var v: UInt64 = 0
        for k in 8..<16 { v = v << 8 | UInt64(key[k]) }
        return v
    }

    private func saveSnapshotPoint(group: GroupID, _ point: SnapshotPoint, in txn: WriteTransaction) throws {
        var w = BigEndianWriter(capacity: 20 + point.configuration.count)
        w.write(point.index); w.write(point.term); w.writeLengthPrefixed(point.configuration)
        try txn.put(stateDatabase, Self.stateKey(group, Self.snapshotTag), RecordCodec.encode(w.bytes, compression: .never))
    }

    @discardableResult
    private func deleteRange(group: GroupID, from: UInt64, through: UInt64, in txn: WriteTransaction) throws -> Int {
        try txn.withCursor(logDatabase) { cursor in
            var deleted = 0
            var item = try cursor.seek(atOrAfter: Self.logKey(group, from))
            while let (key, _) = item, key.count == 16, Self.group(of: key) == group, Self.index(of: key) <= through {
                try cursor.deleteCurrent()
                deleted += 1
                item = try cursor.current()
            }
            return deleted
        }
    }
}
