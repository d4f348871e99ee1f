import TernCore
public import TernStorage

/// What SQS knows about a queue that the broker does not model: tags, the last-modified time,
/// and the attributes Tern stores but does not act on (`ReceiveMessageWaitTimeSeconds` is acted
/// on here; `RedriveAllowPolicy`, `Policy`, `KmsMasterKeyId`, `DeduplicationScope`, … are kept).
///
/// Stored durably in the `sqs_queues` database of the broker's LMDB environment, keyed by queue
/// name; the value is a ``RecordCodec`` record whose payload is a JSON object. Each record names
/// the creation time of the broker queue it belongs to, so metadata of a deleted queue never
/// attaches to a queue later re-created under the same name (it reads as absent and is replaced).
struct QueueMetadata: Sendable, Hashable {
    /// The broker queue's creation time, in ms since 1970.
    var createdAt: UInt64
    /// The last time an attribute changed, in ms since 1970.
    var lastModified: UInt64
    var tags: [String: String] = [:]
    /// SQS attributes stored for the client (name → value as SQS renders it).
    var attributes: [String: String] = [:]

    func encoded() -> [UInt8] {
        let object = SQSOutput.structure([
            ("created", .int(Int(createdAt))), ("modified", .int(Int(lastModified))),
            ("tags", .map(tags.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }, xml: .tag)),
            ("attributes", .map(attributes.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }, xml: .attribute)),
        ])
        return RecordCodec.encode(JSON.serialize(object))
    }

    init(createdAt: UInt64, lastModified: UInt64) {
        self.createdAt = createdAt
        self.lastModified = lastModified
    }

    /// - Throws: ``StorageError`` `corruptRecord` when the record or its JSON is malformed.
    init(decoding record: [UInt8]) throws(StorageError) {
        let payload = try RecordCodec.decode(record)
        let value: SQSValue
        do { value = try JSON.parse(payload) } catch {
            throw StorageError(.corruptRecord, "sqs_queues record is not JSON: \(error)")
        }
        guard case .number(let created)? = value["created"], let createdAt = UInt64(created),
            case .number(let modified)? = value["modified"], let lastModified = UInt64(modified)
        else { throw StorageError(.corruptRecord, "sqs_queues record lacks its times") }
        self.createdAt = createdAt
        self.lastModified = lastModified
        func strings(_ key: String) -> [String: String] {
            var out = [String: String]()
            for (name, item) in value[key]?.members ?? [:] { if case .string(let text) = item { out[name] = text } }
            return out
        }
        tags = strings("tags")
        attributes = strings("attributes")
    }
}

/// Reads and writes ``QueueMetadata`` records.
struct QueueMetadataStore: Sendable {
    /// The database this store needs; ternd opens it with the broker's.
    static let databaseName = "sqs_queues"

    let storage: Storage
    let database: Database

    init(storage: Storage) {
        self.storage = storage
        database = storage.database(Self.databaseName)
    }

    /// The metadata of the queue `name` created at `createdAt`, nil when none was stored for it.
    func load(_ name: QueueName, createdAt: Timestamp) throws -> QueueMetadata? {
        let key = Array(name.rawValue.utf8)
        let database = self.database
        guard let record = try storage.read({ txn in try txn.get(database, key) }) else { return nil }
        let metadata = try QueueMetadata(decoding: record)
        return metadata.createdAt == createdAt.milliseconds ? metadata : nil
    }

    /// Applies `change` to the queue's metadata (fresh when none or stale) in one write transaction.
    @discardableResult
    func update(_ name: QueueName, createdAt: Timestamp, now: Timestamp,
                _ change: @escaping @Sendable (inout QueueMetadata) throws(SQSError) -> Void) async throws -> QueueMetadata {
        let key = Array(name.rawValue.utf8)
        let database = self.database
        return try await storage.write { txn in
            var metadata = QueueMetadata(createdAt: createdAt.milliseconds, lastModified: createdAt.milliseconds)
            if let record = try txn.get(database, key), let stored = try? QueueMetadata(decoding: record),
                stored.createdAt == createdAt.milliseconds
            {
                metadata = stored
            }
            try change(&metadata)
            try txn.put(database, key, metadata.encoded())
            return metadata
        }
    }

    /// Forgets the metadata of `name`.
    func delete(_ name: QueueName) async throws {
        let key = Array(name.rawValue.utf8)
        let database = self.database
        _ = try await storage.write { txn in try txn.delete(database, key) }
    }
}
