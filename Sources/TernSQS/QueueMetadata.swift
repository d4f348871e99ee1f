public import Logging
public import TernBroker
import TernCore
public import TernStorage

/// A record of the `sqs_queues` database, where the SQS endpoint kept its queue metadata (tags,
/// the last-modified time, SQS-only attributes) before that became broker state
/// (``TernBroker/QueueMetadata``, changed by a command; decision 110). Only read, to migrate.
///
/// Keyed by queue name; the value is a ``RecordCodec`` record whose payload is a JSON object
/// `{"created": ms, "modified": ms, "tags": {…}, "attributes": {…}}`. A record whose `created`
/// differs from the creation time of the live queue of that name belonged to a queue deleted
/// since, and is dropped.
struct LegacyQueueMetadata: Sendable, Hashable {
    /// The broker queue's creation time, in ms since 1970.
    var createdAt: UInt64
    /// The last time an attribute changed, in ms since 1970.
    var lastModified: UInt64
    var tags: [String: String] = [:]
    var attributes: [String: String] = [:]

    /// The format as the SQS endpoint wrote it (kept for tests of the migration).
    func encoded() -> [UInt8] {
        let object = SQSOutput.structure([
            ("created", .int(Int(createdAt))), ("modified", .int(Int(lastModified))),
            ("tags", .map(tags.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }, xml: .tag)),
            ("attributes", .map(attributes.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }, xml: .attribute)),
        ])
        return RecordCodec.encode(JSON.serialize(object))
    }

    init(createdAt: UInt64, lastModified: UInt64, tags: [String: String] = [:], attributes: [String: String] = [:]) {
        self.createdAt = createdAt
        self.lastModified = lastModified
        self.tags = tags
        self.attributes = attributes
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

extension SQS {
    /// The database where the SQS endpoint kept queue metadata before decision 110; `ternd`
    /// opens it only to migrate and empty it (``migrateLegacyMetadata(storage:broker:logger:)``).
    public static let legacyDatabaseName = "sqs_queues"

    /// Moves every record of the legacy `sqs_queues` database into broker state: for each whose
    /// queue still exists (same creation time), one ``TernBroker/Command/updateQueueMetadata(_:_:)``
    /// with its tags, attributes and last-modified time (so the migration is in the command log,
    /// and replays); then the record is deleted. Records of deleted queues, and corrupt ones
    /// (logged), are deleted too. Idempotent: a crash midway repeats the rest at the next start.
    /// - Parameter storage: opened with ``legacyDatabaseName`` (nothing happens when it was not).
    /// - Returns: how many records were migrated into broker state.
    /// - Throws: ``TernCore/TernError`` or ``TernStorage/StorageError`` when a write fails.
    @discardableResult
    public static func migrateLegacyMetadata(storage: Storage, broker: Broker, logger: Logger) async throws -> Int {
        guard storage.hasDatabase(legacyDatabaseName) else { return 0 }
        let database = storage.database(legacyDatabaseName)
        let records: [Cursor.Entry] = try storage.read { txn in
            try txn.withCursor(database) { cursor in
                var found = [Cursor.Entry]()
                var entry = try cursor.first()
                while let current = entry {
                    found.append(current)
                    entry = try cursor.next()
                }
                return found
            }
        }
        var migrated = 0
        for (key, value) in records {
            let text = String(decoding: key, as: UTF8.self)
            do {
                let legacy = try LegacyQueueMetadata(decoding: value)
                if let name = try? QueueName(text), let queue = try? broker.describeQueueWithMetadata(name),
                    queue.info.createdAt.milliseconds == legacy.createdAt {
                    var patch = QueueMetadataPatch(lastModified: legacy.lastModified == legacy.createdAt
                                                   ? .keep : .at(Timestamp(milliseconds: legacy.lastModified)))
                    patch.tags = legacy.tags.mapValues { .some($0) }
                    patch.attributes = legacy.attributes.mapValues { .some($0) }
                    try await broker.updateQueueMetadata(name, patch)
                    migrated += 1
                }
            } catch let error as StorageError {
                logger.warning("dropping a corrupt sqs_queues record", metadata: ["tern.queue": "\(text)", "tern.error": "\(error)"])
            }
            _ = try await storage.write { txn in try txn.delete(database, key) }
        }
        if !records.isEmpty {
            logger.info("migrated SQS queue metadata into broker state", metadata: [
                "tern.records": "\(records.count)", "tern.migrated": "\(migrated)",
            ])
        }
        return migrated
    }
}
