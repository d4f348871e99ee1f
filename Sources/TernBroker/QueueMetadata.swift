public import TernCore
public import TernStorage

/// What a front end (the SQS endpoint) keeps about a queue that the broker does not act on:
/// tags and opaque attributes (`Policy`, `RedriveAllowPolicy`, `ReceiveMessageWaitTimeSeconds`,
/// …), and when they last changed. It is broker state like any other — changed only by
/// ``Command/updateQueueMetadata(_:_:)``, logged, replayed, replicated with its queue, dumped —
/// and lives and dies with its queue: deleting the queue deletes it, and a queue re-created
/// under the name (a new queue id) starts without (decision 110).
///
/// Stored in the `queue_metadata` database, keyed by queue id u32 (big-endian); the value is a
/// ``RecordCodec`` record (never compressed) whose payload is: revision u64, last modified
/// u64 (ms since 1970; 0 = never), then the tags and the attributes, each a u32 count of
/// (key, value) pairs in key order, keys and values u32 length + UTF-8.
public struct QueueMetadata: Sendable, Hashable {
    /// Bumped by every applied update; 0 = never updated. ``QueueMetadataPatch/expected``
    /// compares against it (optimistic concurrency, as etcd's `mod_revision` compares).
    public var revision: UInt64 = 0
    /// When the metadata (or, as the front end reports it, the queue) last changed; nil = never.
    public var lastModified: Timestamp?
    /// Tag key → value.
    public var tags: [String: String] = [:]
    /// Attribute name → value, opaque to the broker.
    public var attributes: [String: String] = [:]

    public init(revision: UInt64 = 0, lastModified: Timestamp? = nil, tags: [String: String] = [:], attributes: [String: String] = [:]) {
        self.revision = revision
        self.lastModified = lastModified
        self.tags = tags
        self.attributes = attributes
    }

    /// The most tags a queue holds (SQS's 50 is also what its endpoint allows).
    public static let maxTags = 50
    /// The most opaque attributes a queue holds.
    public static let maxAttributes = 64
    /// The longest key (tag key or attribute name), in UTF-8 bytes.
    public static let maxKeyBytes = 512
    /// The longest tag value, in UTF-8 bytes (SQS: 256 characters).
    public static let maxTagValueBytes = 1024
    /// The longest attribute value, in UTF-8 bytes (an SQS `Policy` may be 20 KiB… in
    /// practice; room for more).
    public static let maxAttributeValueBytes = 64 << 10
    /// The most bytes the stored record's payload may take.
    public static let maxRecordBytes = 256 << 10

    public func encoded() -> [UInt8] {
        var writer = BigEndianWriter(capacity: 64)
        writer.write(revision)
        writer.write(lastModified?.milliseconds ?? 0)
        for map in [tags, attributes] {
            writer.write(UInt32(map.count))
            for (key, value) in map.sorted(by: { $0.key < $1.key }) {
                writer.writeLengthPrefixed(Array(key.utf8))
                writer.writeLengthPrefixed(Array(value.utf8))
            }
        }
        return RecordCodec.encode(writer.bytes, compression: .never)
    }

    /// - Throws: ``StorageError/Code/corruptRecord`` when the record fails its checks.
    public init(decoding record: [UInt8]) throws(StorageError) {
        var reader = BigEndianReader(try RecordCodec.decode(record))
        revision = try reader.readUInt64()
        let modified = try reader.readUInt64()
        lastModified = modified == 0 ? nil : Timestamp(milliseconds: modified)
        func map() throws(StorageError) -> [String: String] {
            let count = Int(try reader.readUInt32())
            guard count <= reader.remaining / 8 else { throw StorageError(.corruptRecord, "queue metadata: \(count) entries cannot fit") }
            var out = [String: String]()
            for _ in 0..<count {
                guard let key = String(validating: try reader.readLengthPrefixed(), as: UTF8.self),
                      let value = String(validating: try reader.readLengthPrefixed(), as: UTF8.self)
                else { throw StorageError(.corruptRecord, "queue metadata: a key or value is not UTF-8") }
                guard out.updateValue(value, forKey: key) == nil else { throw StorageError(.corruptRecord, "queue metadata: key \(key) twice") }
            }
            return out
        }
        tags = try map()
        attributes = try map()
        guard reader.remaining == 0 else { throw StorageError(.corruptRecord, "queue metadata has \(reader.remaining) trailing bytes") }
    }
}

/// A change of a queue's ``QueueMetadata``: entries to set or (nil) remove, what to do with
/// the last-modified time, and an optional precondition.
public struct QueueMetadataPatch: Sendable, Hashable {
    /// How an update moves ``QueueMetadata/lastModified``.
    public enum LastModified: Sendable, Hashable {
        /// Leave it.
        case keep
        /// Set it to the command time.
        case commandTime
        /// Set it to this time (migrating records written before metadata was a command).
        case at(Timestamp)
    }

    /// The state the update was computed from; the update is refused with `Conflict` unless
    /// the queue still has this id and its metadata this revision (the caller re-reads and
    /// retries: a read-modify-write such as SQS's `AddPermission` never loses a concurrent one).
    public struct Expectation: Sendable, Hashable {
        public var queueID: UInt32
        public var revision: UInt64
        public init(queueID: UInt32, revision: UInt64) {
            self.queueID = queueID
            self.revision = revision
        }
    }

    /// Tag key → new value, nil = remove the tag.
    public var tags: [String: String?] = [:]
    /// Attribute name → new value, nil = remove the attribute.
    public var attributes: [String: String?] = [:]
    public var lastModified: LastModified = .keep
    public var expected: Expectation?

    public init(tags: [String: String?] = [:], attributes: [String: String?] = [:], lastModified: LastModified = .keep,
                expected: Expectation? = nil) {
        self.tags = tags
        self.attributes = attributes
        self.lastModified = lastModified
        self.expected = expected
    }

    /// Whether the patch can add data (it sets an entry); a patch that only removes or
    /// touches is not refused when storage is full.
    public var grows: Bool {
        tags.values.contains { $0 != nil } || attributes.values.contains { $0 != nil }
    }

    /// `metadata` with the patch applied at `now`.
    /// - Throws: ``ErrorCode/invalidAttribute`` when a bound of ``QueueMetadata`` would be exceeded.
    func applied(to metadata: QueueMetadata, at now: Timestamp) throws(TernError) -> QueueMetadata {
        var next = metadata
        next.revision += 1
        for (key, value) in tags { next.tags[key] = value }
        for (key, value) in attributes { next.attributes[key] = value }
        switch lastModified {
        case .keep: break
        case .commandTime: next.lastModified = now
        case .at(let time): next.lastModified = time
        }
        guard next.tags.count <= QueueMetadata.maxTags else {
            throw TernError(.invalidAttribute, "a queue has at most \(QueueMetadata.maxTags) tags")
        }
        guard next.attributes.count <= QueueMetadata.maxAttributes else {
            throw TernError(.invalidAttribute, "a queue has at most \(QueueMetadata.maxAttributes) front-end attributes")
        }
        for (key, value) in next.tags where key.utf8.isEmpty || key.utf8.count > QueueMetadata.maxKeyBytes
            || value.utf8.count > QueueMetadata.maxTagValueBytes {
            throw TernError(.invalidAttribute, "tag keys are 1–\(QueueMetadata.maxKeyBytes) bytes and values at most \(QueueMetadata.maxTagValueBytes)")
        }
        for (key, value) in next.attributes where key.utf8.isEmpty || key.utf8.count > QueueMetadata.maxKeyBytes
            || value.utf8.count > QueueMetadata.maxAttributeValueBytes {
            throw TernError(.invalidAttribute, "attribute names are 1–\(QueueMetadata.maxKeyBytes) bytes and values at most \(QueueMetadata.maxAttributeValueBytes)")
        }
        return next
    }
}

extension QueueStore {
    /// The metadata of queue `id` (empty when it never had any).
    public func metadata(queue id: UInt32, in txn: Transaction) throws -> QueueMetadata {
        guard let queueMetadata else { return QueueMetadata() }
        return try txn.get(queueMetadata, QueueSchema.queueIDKey(id)).map { try QueueMetadata(decoding: $0) } ?? QueueMetadata()
    }

    /// Applies `patch` to the metadata of the live queue `name` at `now`.
    /// - Returns: the queue's id and its metadata after the update.
    /// - Throws: ``ErrorCode/queueNotFound``; ``ErrorCode/conflict`` when ``QueueMetadataPatch/expected``
    ///   does not hold; ``ErrorCode/invalidAttribute`` past a bound. Nothing is written then.
    public func updateMetadata(_ name: QueueName, _ patch: QueueMetadataPatch, at now: Timestamp,
                               in txn: WriteTransaction) throws -> (queueID: UInt32, metadata: QueueMetadata) {
        let record = try record(named: name, in: txn)
        let current = try metadata(queue: record.id, in: txn)
        if let expected = patch.expected, expected.queueID != record.id || expected.revision != current.revision {
            throw TernError(.conflict, "the metadata of queue \(name) changed since it was read (revision \(current.revision))")
        }
        let next = try patch.applied(to: current, at: now)
        let encoded = next.encoded()
        guard encoded.count <= QueueMetadata.maxRecordBytes else {
            throw TernError(.invalidAttribute, "the metadata of queue \(name) would take \(encoded.count) bytes, at most \(QueueMetadata.maxRecordBytes)")
        }
        guard let queueMetadata else { throw StorageError(.closed, "database \(QueueSchema.metadataDatabase) was not opened") }
        try txn.put(queueMetadata, QueueSchema.queueIDKey(record.id), encoded)
        return (record.id, next)
    }
}
