public import TernCore
public import TernStorage

/// The canonical dump of a data directory's broker state: one ``CanonicalJSON`` object per
/// line, in a fixed order, so that two environments holding the same logical state print the
/// same bytes whatever their LMDB page layout (compacted or not, written in other transaction
/// groupings, on another node). `tern-lmdb dump --state DIR` prints it; the replay-equality
/// test compares two of them byte for byte.
///
/// What is in it, section by section (each section in LMDB key order, which is a function of
/// the keys alone): `meta` counters, `queue`s, `queue_name`s, `message`s (header, body length
/// and CRC-32C, FIFO group and deduplication id), the `ready`, `in_flight` and `delayed`
/// index entries, `fifo_lock`s, `fifo_dedup` entries and their `fifo_dedup_expiry` entries,
/// `topic`s, `topic_name`s, `topic_partition`s, `topic_batch`es each followed by its
/// `topic_record`s, `group_offset`s, `producer`s, `producer_sequences` and
/// `topic_producer_sequences`, `transactional_id`s. Every line has a `type` member naming
/// its kind; `docs/storage.md` ("Canonical state dump") lists the members.
///
/// What is not: the command log (database `log`, and the `applied` and `log_*` keys of
/// `meta`: how the state was reached, not the state) and everything node-local (page counts,
/// file sizes, free pages, reader slots, transaction ids: none of it lives in a database).
///
/// Nothing is skipped silently: a database this dump does not know, an unknown `meta` key, a
/// key of an unexpected shape, a record that fails its checks, or a record type that gained a
/// field this dump does not render is an error, so that state added later without dump
/// support is noticed by the replay test rather than compared as equal.
///
/// ```swift
/// let lines = try StateDump.lines(storage: storage)          // small states
/// try StateDump.write(storage: storage) { line in print(line) } // streaming
/// ```
public enum StateDump {
    /// The databases the dump renders, in the order of their sections.
    public static let dumpedDatabases = [
        "meta", "queues", "queue_names", "queue_metadata", "deleted_queue_names", "messages", "bodies", "fifo_messages", "ready", "inflight", "delayed",
        "fifo_inflight", "fifo_dedup", "fifo_dedup_expiry",
        "topics", "topic_names", "topic_partitions", "topic_batches", "group_offsets", "groups",
        "producers", "producer_sequences", "transactional_ids", "catalogue",
    ]

    /// Databases deliberately left out, with the reason (they are not broker state).
    public static let excludedDatabases: [String: String] = [
        "log": "the command log: how the state was reached, not the state",
        "raft_state": "a replication group's Raft hard state and applied index: how this replica reached the state",
        "raft_log": "a replication group's Raft log: how the state was reached, not the state",
    ]

    /// Databases of earlier layouts that start-up migrates and empties: the dump accepts them
    /// only empty (a record left means the directory was not opened by a `ternd` that migrates
    /// it), with the reason.
    public static let legacyDatabases: [String: String] = [
        "sqs_queues": "SQS front-end metadata before it became broker state (decision 110); ternd moves it into queue_metadata at start",
    ]

    /// The `meta` counters the dump renders, with their width in bytes.
    public static let metaCounters: [String: Int] = [
        "next_queue_id": 4, "next_topic_id": 4, "next_producer_id": 8, "stored_bytes": 8, "storage_limit": 8,
    ]

    /// Whether `key` of `meta` belongs to the command log (`applied`, `log_*`) and is
    /// left out of the dump.
    public static func isExcludedMetaKey(_ key: [UInt8]) -> Bool {
        key == CommandLog.appliedKey || key.starts(with: Array("log_".utf8))
    }

    /// Writes the dump, one line (without its newline) per call of `emit`, from one read
    /// snapshot.
    ///
    /// Runs on the calling thread inside one read transaction, which stays open until the
    /// last line is emitted: on a live broker a slow `emit` pins old pages (the file grows).
    /// - Parameters:
    ///   - storage: an environment opened with the databases it holds (read-only is fine;
    ///     a dumped database missing from a read-only environment counts as empty).
    ///   - emit: receives each line; what it throws ends the dump and is rethrown.
    /// - Throws: ``StateDump/Error`` with ``StateDump/Error/Code/unknownDatabase`` (a database
    ///   in the environment that is neither dumped nor excluded),
    ///   ``StateDump/Error/Code/databaseNotOpened``, ``StateDump/Error/Code/unknownRecord``
    ///   (unknown `meta` key, key of an unknown shape, a record type with fields the dump
    ///   does not know) or ``StateDump/Error/Code/corruptRecord`` (naming database and key);
    ///   ``StorageError`` when LMDB fails.
    public static func write(storage: Storage, to emit: (String) throws -> Void) throws {
        for name in try storage.namedDatabases() where excludedDatabases[name] == nil {
            if let reason = legacyDatabases[name] {
                guard storage.hasDatabase(name) else {
                    throw Error(.databaseNotOpened, "database \(name) exists but was not opened (open StateDump.legacyDatabases too)")
                }
                let entries = try storage.read { txn in try txn.statistics(storage.database(name)).entries }
                guard entries == 0 else {
                    throw Error(.unknownRecord, "database \(name) holds \(entries) records of an earlier layout (\(reason)): start ternd on the directory once to migrate them")
                }
                continue
            }
            guard dumpedDatabases.contains(name) else {
                throw Error(.unknownDatabase, "database \(name) is not covered by the state dump (add it to StateDump or to its excluded databases)")
            }
            guard storage.hasDatabase(name) else {
                throw Error(.databaseNotOpened, "database \(name) exists but was not opened")
            }
        }
        try withoutActuallyEscaping(emit) { emit in
            try storage.read { txn in
                var dumper = Dumper(storage: storage, txn: txn, emit: emit)
                try dumper.run()
            }
        }
    }

    /// The whole dump as lines (without newlines); see ``write(storage:to:)``. Holds it all in
    /// memory: prefer ``write(storage:to:)`` for large states.
    public static func lines(storage: Storage) throws -> [String] {
        var lines = [String]()
        try write(storage: storage) { lines.append($0) }
        return lines
    }

    /// Fails when `value`'s stored properties (by reflection) are not exactly `rendered`, in
    /// any order: a field added to a record type without dump support must not be skipped
    /// silently.
    /// - Throws: ``StateDump/Error/Code/unknownRecord`` naming the fields.
    static func checkFields(of value: Any, rendered: [String]) throws {
        let labels = Mirror(reflecting: value).children.compactMap(\.label)
        guard labels.sorted() == rendered.sorted() else {
            let type = String(reflecting: Swift.type(of: value))
            throw Error(.unknownRecord, "\(type) has fields \(labels), the state dump renders \(rendered): render the new field in StateDump")
        }
    }

    /// Why a dump failed.
    public struct Error: Swift.Error, Sendable, CustomStringConvertible {
        /// What went wrong; extensible.
        public struct Code: Hashable, Sendable, CustomStringConvertible {
            private enum Value: Hashable, Sendable { case unknownDatabase, databaseNotOpened, unknownRecord, corruptRecord }
            private let value: Value
            /// The environment holds a database the dump neither renders nor excludes.
            public static let unknownDatabase = Code(value: .unknownDatabase)
            /// A dumped database exists in the environment but the ``Storage`` did not open it.
            public static let databaseNotOpened = Code(value: .databaseNotOpened)
            /// A `meta` key, a key shape or a record field the dump does not know.
            public static let unknownRecord = Code(value: .unknownRecord)
            /// A record or key failed its checks (checksum, layout, length).
            public static let corruptRecord = Code(value: .corruptRecord)
            public var description: String { "\(value)" }
        }

        public var code: Code
        /// Names the database and key where it applies.
        public var message: String
        /// The underlying failure (a ``StorageError`` for corrupt records).
        public var cause: (any Swift.Error & Sendable)?

        public init(_ code: Code, _ message: String, cause: (any Swift.Error & Sendable)? = nil) {
            self.code = code
            self.message = message
            self.cause = cause
        }

        public var description: String {
            "state dump error (\(code)): \(message)" + (cause.map { ": \($0)" } ?? "")
        }
    }
}

/// One dump in progress: the read transaction, the line sink, and which record types have had
/// their fields checked.
private struct Dumper {
    typealias JSON = CanonicalJSON
    let storage: Storage
    let txn: ReadTransaction
    let emit: (String) throws -> Void
    var checkedTypes = Set<String>()

    init(storage: Storage, txn: ReadTransaction, emit: @escaping (String) throws -> Void) {
        self.storage = storage
        self.txn = txn
        self.emit = emit
    }

    mutating func run() throws {
        try meta()
        try queues()
        try names("queue_names", type: "queue_name", idMember: "queue")
        try queueMetadata()
        try deletedQueueNames()
        try messages()
        try ready()
        try timeIndex("inflight", type: "in_flight", timeMember: "deadline")
        try timeIndex("delayed", type: "delayed", timeMember: "due")
        try fifoLocks()
        try fifoDedup()
        try fifoDedupExpiry()
        try topics()
        try names("topic_names", type: "topic_name", idMember: "topic")
        try partitions()
        try batches()
        try groupOffsets()
        try groupStates()
        try producers()
        try producerSequences()
        try transactionalIDs()
        try catalogue()
    }

    // MARK: Plumbing

    func line(_ type: String, _ members: [String: JSON]) throws {
        var object = members
        object["type"] = .string(type)
        try emit(JSON.object(object).rendered)
    }

    /// Calls `body` with every entry of `name` in key order; nothing when the database is
    /// absent (a read-only environment that never had it).
    func forEach(_ name: String, _ body: (Cursor.Entry) throws -> Void) throws {
        guard storage.hasDatabase(name) else { return }
        try txn.withCursor(storage.database(name)) { cursor in
            var entry = try cursor.first()
            while let current = entry {
                try body(current)
                entry = try cursor.next()
            }
        }
    }

    /// Runs `body`, turning a ``StorageError`` into a ``StateDump/Error`` naming where it happened.
    func decoding<T>(_ database: String, _ key: [UInt8], _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as StorageError {
            throw StateDump.Error(.corruptRecord, "\(database)[\(JSON.hex(key))]", cause: error)
        }
    }

    func unknownKey(_ database: String, _ key: [UInt8]) -> StateDump.Error {
        StateDump.Error(.unknownRecord, "\(database)[\(JSON.hex(key))]: key of an unknown shape (\(key.count) bytes)")
    }

    /// Checks each record type's fields once per dump (``StateDump/checkFields(of:rendered:)``).
    mutating func checkFields(_ value: Any, _ rendered: [String]) throws {
        let type = String(reflecting: Swift.type(of: value))
        guard !checkedTypes.contains(type) else { return }
        try StateDump.checkFields(of: value, rendered: rendered)
        checkedTypes.insert(type)
    }

    /// Reads a key of fixed-width integers, or fails with ``unknownKey(_:_:)`` when the key's
    /// length is not `width`.
    func keyReader(_ database: String, _ key: [UInt8], width: Int) throws -> BigEndianReader {
        guard key.count == width else { throw unknownKey(database, key) }
        return BigEndianReader(key)
    }

    func requireEmpty(_ database: String, _ entry: Cursor.Entry) throws {
        guard entry.value.isEmpty else {
            throw StateDump.Error(.corruptRecord, "\(database)[\(JSON.hex(entry.key))]: index value should be empty, holds \(entry.value.count) bytes")
        }
    }

    static func crc(_ bytes: [UInt8]) -> JSON {
        let value = CRC32C.checksum(bytes)
        return .string(JSON.hex([UInt8(truncatingIfNeeded: value >> 24), UInt8(truncatingIfNeeded: value >> 16),
                                 UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)]))
    }

    static func time(_ timestamp: Timestamp) -> JSON { .unsigned(timestamp.milliseconds) }

    static func id(_ id: MessageID) -> JSON { .string(id.description) }

    static func optionalInt(_ value: Int?) -> JSON { value.map { .signed(Int64($0)) } ?? .null }

    // MARK: meta

    func meta() throws {
        try forEach("meta") { entry in
            if StateDump.isExcludedMetaKey(entry.key) { return }
            guard let name = String(validating: entry.key, as: UTF8.self), let width = StateDump.metaCounters[name] else {
                throw StateDump.Error(.unknownRecord, "meta[\(JSON.hex(entry.key))] (\(String(decoding: entry.key, as: UTF8.self))) is not a counter the state dump knows (add it to StateDump.metaCounters or exclude it)")
            }
            guard entry.value.count == width else {
                throw StateDump.Error(.corruptRecord, "meta[\(name)] holds \(entry.value.count) bytes, expected \(width)")
            }
            let value = entry.value.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            try line("meta", ["key": .string(name), "value": .unsigned(value)])
        }
    }

    // MARK: Queues

    mutating func queues() throws {
        var records = [QueueRecord]()
        try forEach("queues") { entry in
            var reader = try keyReader("queues", entry.key, width: 4)
            let id = try reader.readUInt32()
            let record = try decoding("queues", entry.key) { try QueueRecord(decoding: entry.value) }
            guard record.id == id else {
                throw StateDump.Error(.corruptRecord, "queues[\(id)] holds the record of queue \(record.id)")
            }
            records.append(record)
        }
        for record in records {
            try checkFields(record, ["id", "name", "deleted", "createdAt", "nextSequence", "counts", "attributes", "purgedBelow"])
            try checkFields(record.counts, ["ready", "inFlight", "delayed", "bytes"])
            let a = record.attributes
            try checkFields(a, ["visibilityTimeout", "retention", "maxMessageBytes", "delay", "maxReceiveCount", "deadLetterQueue",
                                "fifo", "maxMessages", "maxBytes", "contentBasedDeduplication", "overflow"])
            let c = record.counts
            try line("queue", [
                "queue": .unsigned(UInt64(record.id)), "name": .string(record.name.rawValue), "deleted": .bool(record.deleted),
                "created_at": Self.time(record.createdAt), "next_sequence": .unsigned(record.nextSequence),
                "purged_below": .unsigned(record.purgedBelow),
                "counts": .object(["ready": .unsigned(c.ready), "in_flight": .unsigned(c.inFlight), "delayed": .unsigned(c.delayed),
                                   "bytes": .unsigned(c.bytes)]),
                "attributes": .object([
                    "visibility_timeout": .signed(Int64(a.visibilityTimeout)), "retention": .signed(Int64(a.retention)),
                    "max_message_bytes": .signed(Int64(a.maxMessageBytes)), "delay": .signed(Int64(a.delay)),
                    "max_receive_count": Self.optionalInt(a.maxReceiveCount),
                    "dead_letter_queue": a.deadLetterQueue.map { .string($0.rawValue) } ?? .null,
                    "fifo": .bool(a.fifo), "max_messages": Self.optionalInt(a.maxMessages), "max_bytes": Self.optionalInt(a.maxBytes),
                    "content_based_deduplication": .bool(a.contentBasedDeduplication), "overflow": .string(a.overflow.rawValue),
                ]),
            ])
        }
    }

    /// `queue_metadata`: one line per queue with tags or front-end attributes.
    mutating func queueMetadata() throws {
        var records = [(UInt32, QueueMetadata)]()
        try forEach(QueueSchema.metadataDatabase) { entry in
            var reader = try keyReader(QueueSchema.metadataDatabase, entry.key, width: 4)
            records.append((try reader.readUInt32(), try decoding(QueueSchema.metadataDatabase, entry.key) { try QueueMetadata(decoding: entry.value) }))
        }
        for (queue, metadata) in records {
            try checkFields(metadata, ["revision", "lastModified", "tags", "attributes"])
            func object(_ map: [String: String]) -> JSON { .object(map.mapValues { .string($0) }) }
            try line("queue_metadata", [
                "queue": .unsigned(UInt64(queue)), "revision": .unsigned(metadata.revision),
                "last_modified": metadata.lastModified.map(Self.time) ?? .null,
                "tags": object(metadata.tags), "attributes": object(metadata.attributes),
            ])
        }
    }

    /// `deleted_queue_names`: one line per remembered name (``DeletedQueueNames``).
    mutating func deletedQueueNames() throws {
        var found = [(String, DeletedQueueNames.Entry)]()
        try forEach(DeletedQueueNames.database) { entry in
            found.append((String(decoding: entry.key, as: UTF8.self),
                          try decoding(DeletedQueueNames.database, entry.key) { try DeletedQueueNames.decode(entry.value) }))
        }
        for (name, entry) in found {
            try checkFields(entry, ["deletedAt", "until"])
            try line("deleted_queue_name", ["name": .string(name), "deleted_at": Self.time(entry.deletedAt), "until": Self.time(entry.until)])
        }
    }

    /// A names database (`queue_names`, `topic_names`): name → id u32, raw.
    func names(_ database: String, type: String, idMember: String) throws {
        try forEach(database) { entry in
            guard entry.value.count == 4 else {
                throw StateDump.Error(.corruptRecord, "\(database)[\(JSON.hex(entry.key))] holds \(entry.value.count) bytes, expected a u32 id")
            }
            var reader = BigEndianReader(entry.value)
            var members: [String: JSON] = [idMember: .unsigned(UInt64(try reader.readUInt32()))]
            JSON.bytesMember("name", entry.key, into: &members)
            try line(type, members)
        }
    }

    /// `messages`, with `bodies` and `fifo_messages` (same keys) merged into each message's line;
    /// a body or FIFO record without its message gets a line of its own (`orphan_body`,
    /// `orphan_fifo_message`), so an inconsistency shows instead of vanishing.
    mutating func messages() throws {
        guard storage.hasDatabase("messages") else {
            try orphans("bodies")
            try orphans("fifo_messages")
            return
        }
        var headers = [(key: [UInt8], header: MessageHeader)]()
        // Walks the three databases together in key order, a window at a time, so that
        // memory stays bounded by the window rather than by the queue.
        var after: [UInt8]? = nil
        while true {
            headers.removeAll(keepingCapacity: true)
            let window = 4096
            try txn.withCursor(storage.database("messages")) { cursor in
                var entry = try after.map { key in
                    let found = try cursor.seek(atOrAfter: key)
                    return found?.key == key ? try cursor.next() : found
                } ?? cursor.first()
                while let current = entry, headers.count < window {
                    guard current.key.count == 16 else { throw unknownKey("messages", current.key) }
                    let header = try decoding("messages", current.key) { try MessageHeader(decoding: current.value) }
                    headers.append((current.key, header))
                    entry = try cursor.next()
                }
            }
            guard let last = headers.last?.key else { break }
            let (bodies, orphanBodies) = try related("bodies", from: after, through: last)
            let (fifo, orphanFacts) = try related("fifo_messages", from: after, through: last)
            // Orphans of the window, merged by key (a body before a FIFO record of the same key).
            var orphans = (orphanBodies.map { ("bodies", $0) } + orphanFacts.map { ("fifo_messages", $0) })[...]
            if !orphanFacts.isEmpty && !orphanBodies.isEmpty {
                orphans = orphans.sorted { $0.1.key.lexicographicallyPrecedes($1.1.key) || ($0.1.key == $1.1.key && $0.0 < $1.0) }[...]
            }
            for (key, header) in headers {
                while let (database, entry) = orphans.first, entry.key.lexicographicallyPrecedes(key) {
                    try orphan(database, entry)
                    orphans = orphans.dropFirst()
                }
                try checkFields(header, ["id", "state", "priority", "receiveCount", "sentAt", "stateDeadline", "nonce", "bodyBytes",
                                         "deadLetterSource", "firstReceivedAt"])
                let (queue, partition, sequence) = try decoding("messages", key) { try QueueSchema.decodeMessageKey(key) }
                var members: [String: JSON] = [
                    "queue": .unsigned(UInt64(queue)), "partition": .unsigned(UInt64(partition)), "sequence": .unsigned(sequence),
                    "id": Self.id(header.id), "state": .string(header.state.description), "priority": .unsigned(UInt64(header.priority)),
                    "receive_count": .unsigned(UInt64(header.receiveCount)), "sent_at": Self.time(header.sentAt),
                    "state_deadline": Self.time(header.stateDeadline),
                    "receipt_nonce": .string(JSON.hex(Self.bytes(header.nonce.high) + Self.bytes(header.nonce.low))),
                    "body_bytes": .unsigned(UInt64(header.bodyBytes)), "dead_letter_source": .unsigned(UInt64(header.deadLetterSource)),
                    "first_received_at": Self.time(header.firstReceivedAt),
                    "body": .null, "fifo": .null,
                ]
                if let stored = bodies[key] {
                    let (body, attributes) = try decoding("bodies", key) { try MessageBody.decode(stored) }
                    var rendered: [String: JSON] = ["bytes": .unsigned(UInt64(body.count)), "crc32c": Self.crc(body)]
                    if !attributes.isEmpty {
                        rendered["attributes"] = .array(attributes.map { attribute in
                            var fields: [String: JSON] = ["kind": .unsigned(UInt64(attribute.kind.rawValue)),
                                                          "value_bytes": .unsigned(UInt64(attribute.value.count)), "value_crc32c": Self.crc(attribute.value)]
                            JSON.bytesMember("name", Array(attribute.name.utf8), into: &fields)
                            JSON.bytesMember("data_type", Array(attribute.dataType.utf8), into: &fields)
                            return .object(fields)
                        })
                    }
                    members["body"] = .object(rendered)
                }
                if let stored = fifo[key] {
                    members["fifo"] = try fifoFacts(key, stored)
                }
                try line("message", members)
            }
            for (database, entry) in orphans { try orphan(database, entry) }
            after = last
        }
        try orphans("bodies", after: after)
        try orphans("fifo_messages", after: after)
    }

    /// The entries of `database` with keys in (`from`, `through`]: by key those with a message
    /// header of the same key, and in key order those without (orphans).
    private func related(_ database: String, from: [UInt8]?, through last: [UInt8]) throws
        -> (found: [[UInt8]: [UInt8]], orphans: [Cursor.Entry]) {
        guard storage.hasDatabase(database) else { return ([:], []) }
        var found = [[UInt8]: [UInt8]]()
        var orphans = [Cursor.Entry]()
        let messages = storage.database("messages")
        try txn.withCursor(storage.database(database)) { cursor in
            var entry = try from.map { key in
                let at = try cursor.seek(atOrAfter: key)
                return at?.key == key ? try cursor.next() : at
            } ?? cursor.first()
            while let current = entry, !last.lexicographicallyPrecedes(current.key) {
                if try txn.get(messages, current.key) != nil {
                    found[current.key] = current.value
                } else {
                    orphans.append(current)
                }
                entry = try cursor.next()
            }
        }
        return (found, orphans)
    }

    /// Emits every entry of `database` after `after` as an orphan (entries past the last message).
    private func orphans(_ database: String, after: [UInt8]? = nil) throws {
        guard storage.hasDatabase(database) else { return }
        try txn.withCursor(storage.database(database)) { cursor in
            var entry = try after.map { key in
                let at = try cursor.seek(atOrAfter: key)
                return at?.key == key ? try cursor.next() : at
            } ?? cursor.first()
            while let current = entry {
                try orphan(database, current)
                entry = try cursor.next()
            }
        }
    }

    private func orphan(_ database: String, _ entry: Cursor.Entry) throws {
        guard entry.key.count == 16 else { throw unknownKey(database, entry.key) }
        let (queue, partition, sequence) = try decoding(database, entry.key) { try QueueSchema.decodeMessageKey(entry.key) }
        var members: [String: JSON] = ["queue": .unsigned(UInt64(queue)), "partition": .unsigned(UInt64(partition)),
                                       "sequence": .unsigned(sequence)]
        if database == "bodies" {
            let body = try decoding(database, entry.key) { try MessageBody.decode(entry.value).body }
            members["bytes"] = .unsigned(UInt64(body.count))
            members["crc32c"] = Self.crc(body)
            try line("orphan_body", members)
        } else {
            members["fifo"] = try fifoFacts(entry.key, entry.value)
            try line("orphan_fifo_message", members)
        }
    }

    private func fifoFacts(_ key: [UInt8], _ stored: [UInt8]) throws -> JSON {
        let facts = try decoding("fifo_messages", key) { try FifoSchema.MessageFacts(decoding: stored) }
        var members = [String: JSON]()
        JSON.bytesMember("group", facts.group, into: &members)
        JSON.bytesMember("deduplication_id", facts.deduplicationID, into: &members)
        return .object(members)
    }

    static func bytes(_ value: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64($0))) }
    }

    func ready() throws {
        try forEach("ready") { entry in
            guard entry.key.count == 13 else { throw unknownKey("ready", entry.key) }
            try requireEmpty("ready", entry)
            let (queue, priority, sequence) = try decoding("ready", entry.key) { try QueueSchema.decodeReadyKey(entry.key) }
            try line("ready", ["queue": .unsigned(UInt64(queue)), "priority": .unsigned(UInt64(priority)), "sequence": .unsigned(sequence)])
        }
    }

    func timeIndex(_ database: String, type: String, timeMember: String) throws {
        try forEach(database) { entry in
            guard entry.key.count == 20 else { throw unknownKey(database, entry.key) }
            try requireEmpty(database, entry)
            let (time, queue, sequence) = try decoding(database, entry.key) { try QueueSchema.decodeTimeKey(entry.key) }
            try line(type, [timeMember: Self.time(time), "queue": .unsigned(UInt64(queue)), "sequence": .unsigned(sequence)])
        }
    }

    // MARK: FIFO

    func fifoLocks() throws {
        try forEach("fifo_inflight") { entry in
            try requireEmpty("fifo_inflight", entry)
            var reader = BigEndianReader(entry.key)
            let (queue, group, sequence): (UInt32, [UInt8], UInt64)
            do {
                queue = try reader.readUInt32()
                group = try reader.readBytes(Int(try reader.readUInt16()))
                sequence = try reader.readUInt64()
            } catch { throw unknownKey("fifo_inflight", entry.key) }
            guard reader.remaining == 0 else { throw unknownKey("fifo_inflight", entry.key) }
            var members: [String: JSON] = ["queue": .unsigned(UInt64(queue)), "sequence": .unsigned(sequence)]
            JSON.bytesMember("group", group, into: &members)
            try line("fifo_lock", members)
        }
    }

    mutating func fifoDedup() throws {
        var entries = [([UInt8], FifoSchema.DedupEntry)]()
        try forEach("fifo_dedup") { entry in
            guard entry.key.count > 4 else { throw unknownKey("fifo_dedup", entry.key) }
            entries.append((entry.key, try decoding("fifo_dedup", entry.key) { try FifoSchema.DedupEntry(decoding: entry.value) }))
        }
        for (key, dedup) in entries {
            try checkFields(dedup, ["acceptedAt", "id", "sequence"])
            var reader = BigEndianReader(key)
            var members: [String: JSON] = ["queue": .unsigned(UInt64(try reader.readUInt32())), "accepted_at": Self.time(dedup.acceptedAt),
                                           "id": Self.id(dedup.id), "sequence": .unsigned(dedup.sequence)]
            JSON.bytesMember("deduplication_id", Array(key[4...]), into: &members)
            try line("fifo_dedup", members)
        }
    }

    func fifoDedupExpiry() throws {
        try forEach("fifo_dedup_expiry") { entry in
            guard entry.key.count > 12 else { throw unknownKey("fifo_dedup_expiry", entry.key) }
            try requireEmpty("fifo_dedup_expiry", entry)
            var reader = BigEndianReader(entry.key)
            var members: [String: JSON] = ["expires_at": .unsigned(try reader.readUInt64()), "queue": .unsigned(UInt64(try reader.readUInt32()))]
            JSON.bytesMember("deduplication_id", Array(entry.key[12...]), into: &members)
            try line("fifo_dedup_expiry", members)
        }
    }

    // MARK: Topics

    mutating func topics() throws {
        var records = [TopicRecord]()
        try forEach("topics") { entry in
            var reader = try keyReader("topics", entry.key, width: 4)
            let id = try reader.readUInt32()
            let record = try decoding("topics", entry.key) { try TopicRecord(decoding: entry.value) }
            guard record.id == id else { throw StateDump.Error(.corruptRecord, "topics[\(id)] holds the record of topic \(record.id)") }
            records.append(record)
        }
        for record in records {
            try checkFields(record, ["id", "name", "deleted", "createdAt", "attributes"])
            try checkFields(record.attributes, ["partitions", "retention", "maxBytes"])
            let a = record.attributes
            try line("topic", [
                "topic": .unsigned(UInt64(record.id)), "name": .string(record.name.rawValue), "deleted": .bool(record.deleted),
                "created_at": Self.time(record.createdAt),
                "attributes": .object(["partitions": .signed(Int64(a.partitions)), "retention": .signed(Int64(a.retention)),
                                       "max_bytes": Self.optionalInt(a.maxBytes)]),
            ])
        }
    }

    mutating func partitions() throws {
        var states = [(UInt32, UInt32, PartitionState)]()
        try forEach("topic_partitions") { entry in
            var reader = try keyReader("topic_partitions", entry.key, width: 8)
            let topic = try reader.readUInt32(), partition = try reader.readUInt32()
            states.append((topic, partition, try decoding("topic_partitions", entry.key) { try PartitionState(decoding: entry.value) }))
        }
        for (topic, partition, state) in states {
            try checkFields(state, ["logStart", "highWatermark", "bytes", "batches"])
            try line("topic_partition", [
                "topic": .unsigned(UInt64(topic)), "partition": .unsigned(UInt64(partition)), "log_start": .unsigned(state.logStart),
                "high_watermark": .unsigned(state.highWatermark), "bytes": .unsigned(state.bytes), "batches": .unsigned(state.batches),
            ])
        }
    }

    /// One `topic_batch` line per stored batch (its base offset, record count and stored
    /// length, which `topic_partition.bytes` sums), then one `topic_record` line per record.
    mutating func batches() throws {
        guard storage.hasDatabase("topic_batches") else { return }
        var pending = [(key: [UInt8], stored: Int, batch: TopicBatch)]()
        var after: [UInt8]? = nil
        // Windows of batches, so that a long log is not held in memory at once.
        repeat {
            pending.removeAll(keepingCapacity: true)
            try txn.withCursor(storage.database("topic_batches")) { cursor in
                var entry = try after.map { key in
                    let at = try cursor.seek(atOrAfter: key)
                    return at?.key == key ? try cursor.next() : at
                } ?? cursor.first()
                while let current = entry, pending.count < 256 {
                    guard current.key.count == 16 else { throw unknownKey("topic_batches", current.key) }
                    let batch = try decoding("topic_batches", current.key) { try TopicBatch(decoding: current.value) }
                    pending.append((current.key, current.value.count, batch))
                    entry = try cursor.next()
                }
            }
            for (key, stored, batch) in pending {
                let (topic, partition, base) = try decoding("topic_batches", key) { try TopicSchema.decodeBatchKey(key) }
                try checkFields(batch, ["entries"])
                try line("topic_batch", ["topic": .unsigned(UInt64(topic)), "partition": .unsigned(UInt64(partition)),
                                         "base_offset": .unsigned(base), "records": .unsigned(UInt64(batch.entries.count)),
                                         "stored_bytes": .unsigned(UInt64(stored))])
                for entry in batch.entries {
                    try checkFields(entry, ["offsetDelta", "timestamp", "key", "value"])
                    var members: [String: JSON] = [
                        "topic": .unsigned(UInt64(topic)), "partition": .unsigned(UInt64(partition)),
                        "offset": .unsigned(base + UInt64(entry.offsetDelta)), "timestamp": Self.time(entry.timestamp),
                        "value_bytes": .unsigned(UInt64(entry.value.count)), "value_crc32c": Self.crc(entry.value), "key": .null,
                    ]
                    if let key = entry.key {
                        members["key"] = nil
                        JSON.bytesMember("key", key, into: &members)
                    }
                    try line("topic_record", members)
                }
            }
            after = pending.last?.key
        } while !pending.isEmpty
    }

    func groupOffsets() throws {
        try forEach("group_offsets") { entry in
            let key = entry.key
            guard key.count >= 9, key[key.count - 5] == 0 else { throw unknownKey("group_offsets", key) }
            var reader = BigEndianReader(key)
            let topic = try reader.readUInt32()
            var tail = BigEndianReader(key, offset: key.count - 4)
            let partition = try tail.readUInt32()
            let (offset, committedAt): (UInt64, UInt64) = try decoding("group_offsets", key) {
                var value = BigEndianReader(try RecordCodec.decode(entry.value))
                let result = (try value.readUInt64(), try value.readUInt64())
                guard value.remaining == 0 else { throw StorageError(.corruptRecord, "group offset has \(value.remaining) trailing bytes") }
                return result
            }
            var members: [String: JSON] = ["topic": .unsigned(UInt64(topic)), "partition": .unsigned(UInt64(partition)),
                                           "offset": .unsigned(offset), "committed_at": .unsigned(committedAt)]
            JSON.bytesMember("group", Array(key[4..<(key.count - 5)]), into: &members)
            try line("group_offset", members)
        }
    }

    /// The durable consumer-group states (database `groups`): generation, members with their
    /// session timeouts and partitions, and since when each partition has its owner.
    func groupStates() throws {
        try forEach("groups") { entry in
            let key = entry.key
            guard key.count >= 6, key[key.count - 1] == 0 else { throw unknownKey("groups", key) }
            var reader = BigEndianReader(key)
            let topic = try reader.readUInt32()
            let state = try decoding("groups", key) { try GroupSchema.decode(entry.value) }
            let members: [JSON] = state.members.values.sorted { $0.id < $1.id }.map { member in
                var fields: [String: JSON] = ["session_timeout_ms": .unsigned(UInt64(member.sessionTimeoutMilliseconds)),
                                              "partitions": .array(member.partitions.map { .unsigned(UInt64($0)) })]
                JSON.bytesMember("id", Array(member.id.utf8), into: &fields)
                return .object(fields)
            }
            let owned: [JSON] = state.ownedSince.sorted { $0.key < $1.key }.map {
                .array([.unsigned(UInt64($0.key)), .unsigned(UInt64($0.value))])
            }
            var fields: [String: JSON] = ["topic": .unsigned(UInt64(topic)), "partitions": .unsigned(UInt64(state.partitionCount)),
                                          "generation": .unsigned(UInt64(state.generation)), "members": .array(members),
                                          "owned_since": .array(owned)]
            JSON.bytesMember("group", Array(key[4..<(key.count - 1)]), into: &fields)
            try line("group_state", fields)
        }
    }

    // MARK: Producers

    mutating func producers() throws {
        var records = [(UInt64, ProducerRecord)]()
        try forEach("producers") { entry in
            var reader = try keyReader("producers", entry.key, width: 8)
            records.append((try reader.readUInt64(), try decoding("producers", entry.key) { try ProducerRecord(decoding: entry.value) }))
        }
        for (id, record) in records {
            try checkFields(record, ["epoch", "lastActivity", "transactionSequence", "transactionalID", "lastTransaction", "lastTopicTransaction"])
            try line("producer", [
                "producer": .unsigned(id), "epoch": .unsigned(UInt64(record.epoch)), "last_activity": Self.time(record.lastActivity),
                "transaction_sequence": .unsigned(record.transactionSequence),
                "transactional_id": record.transactionalID.map { .string($0) } ?? .null,
                "last_transaction": .array(try record.lastTransaction.map { try queueBatch($0) }),
                "last_topic_transaction": .array(try record.lastTopicTransaction.map { try topicBatch($0) }),
            ])
        }
    }

    mutating func queueBatch(_ batch: ProducerBatch) throws -> JSON {
        try checkFields(batch, ["queue", "firstSequence", "count", "firstQueueSequence", "sentAt", "idSeed"])
        return .object(["queue": .unsigned(UInt64(batch.queue)), "first_sequence": .unsigned(batch.firstSequence),
                        "count": .unsigned(UInt64(batch.count)), "first_queue_sequence": .unsigned(batch.firstQueueSequence),
                        "sent_at": Self.time(batch.sentAt), "id_seed": .unsigned(batch.idSeed)])
    }

    mutating func topicBatch(_ batch: TopicProducerBatch) throws -> JSON {
        try checkFields(batch, ["firstSequence", "count", "stickyPartition", "bases"])
        return .object([
            "first_sequence": .unsigned(batch.firstSequence), "count": .unsigned(UInt64(batch.count)),
            "sticky_partition": Self.optionalInt(batch.stickyPartition),
            "bases": .array(batch.bases.sorted { $0.key < $1.key }.map {
                .object(["partition": .signed(Int64($0.key)), "base_offset": .unsigned($0.value)])
            }),
        ])
    }

    mutating func producerSequences() throws {
        var queueStates = [(key: [UInt8], state: ProducerSequences)]()
        var topicStates = [(key: [UInt8], state: TopicProducerSequences)]()
        // One pass in key order; queue (12-byte) and topic (13-byte, `T`) keys interleave per producer.
        var order = [(topic: Bool, index: Int)]()
        try forEach("producer_sequences") { entry in
            if entry.key.count == 12 {
                order.append((false, queueStates.count))
                queueStates.append((entry.key, try decoding("producer_sequences", entry.key) { try ProducerSequences(decoding: entry.value) }))
            } else if entry.key.count == 13, entry.key[8] == UInt8(ascii: "T") {
                order.append((true, topicStates.count))
                topicStates.append((entry.key, try decoding("producer_sequences", entry.key) { try TopicProducerSequences(decoding: entry.value) }))
            } else {
                throw unknownKey("producer_sequences", entry.key)
            }
        }
        for (isTopic, index) in order {
            if isTopic {
                let (key, state) = topicStates[index]
                try checkFields(state, ["epoch", "nextSequence", "recent"])
                var reader = BigEndianReader(key)
                let producer = try reader.readUInt64()
                _ = try reader.readUInt8()
                try line("topic_producer_sequences", [
                    "producer": .unsigned(producer), "topic": .unsigned(UInt64(try reader.readUInt32())),
                    "epoch": .unsigned(UInt64(state.epoch)), "next_sequence": .unsigned(state.nextSequence),
                    "recent": .array(try state.recent.map { try topicBatch($0) }),
                ])
            } else {
                let (key, state) = queueStates[index]
                try checkFields(state, ["epoch", "nextSequence", "recent"])
                var reader = BigEndianReader(key)
                try line("producer_sequences", [
                    "producer": .unsigned(try reader.readUInt64()), "queue": .unsigned(UInt64(try reader.readUInt32())),
                    "epoch": .unsigned(UInt64(state.epoch)), "next_sequence": .unsigned(state.nextSequence),
                    "recent": .array(try state.recent.map { try queueBatch($0) }),
                ])
            }
        }
    }

    /// The cluster catalogue a data group carries (decision 140), as its stored bytes: the
    /// catalogue's own codec (`TernMetadata`, which the broker does not depend on) writes it
    /// deterministically, so replicas that agree dump the same bytes.
    func catalogue() throws {
        try forEach("catalogue") { entry in
            var members: [String: JSON] = [:]
            JSON.bytesMember("key", entry.key, into: &members)
            members["record"] = .string(JSON.hex(entry.value))
            try line("catalogue", members)
        }
    }

    func transactionalIDs() throws {
        try forEach("transactional_ids") { entry in
            guard entry.value.count == 8 else {
                throw StateDump.Error(.corruptRecord, "transactional_ids[\(JSON.hex(entry.key))] holds \(entry.value.count) bytes, expected a u64 producer id")
            }
            var reader = BigEndianReader(entry.value)
            var members: [String: JSON] = ["producer": .unsigned(try reader.readUInt64())]
            JSON.bytesMember("transactional_id", entry.key, into: &members)
            try line("transactional_id", members)
        }
    }
}
