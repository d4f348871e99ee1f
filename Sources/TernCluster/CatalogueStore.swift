public import TernCore
public import TernMetadata
public import TernStorage
import Synchronization

/// The cluster catalogue (``Metadata/Catalogue``: nodes, queues, and each queue group's replica
/// set) as part of the data group's replicated state (decision 140).
///
/// Catalogue commands travel in the data group's Raft log beside the broker's commands, as
/// entries of the bytes `TCAT`, then ``entryTag``, then ``Metadata/Codec`` bytes; every replica
/// applies them in log order and keeps the whole catalogue as one record (``databaseName``,
/// key `c`) written in the same LMDB transaction as the entry's index, so a snapshot of the data
/// group carries the catalogue too. The in-memory copy that routing reads is replaced after
/// each applied command, never edited in place.
public final class CatalogueStore: Sendable {
    /// The LMDB database holding the catalogue record.
    public static let databaseName = "catalogue"
    /// Byte 4 of a catalogue entry. Byte 4 of a broker command record is its envelope's format
    /// version (1 or 2, ``RecordCodec``; bytes 0–3 are its checksum), so the two never collide.
    public static let entryTag: UInt8 = 0xCA
    static let entryHeader: [UInt8] = Array("TCAT".utf8) + [entryTag]
    static let key: [UInt8] = Array("c".utf8)

    private let storage: Storage
    private let database: Database
    private let current: Mutex<Metadata.Catalogue>
    private let changes = Atomic<UInt64>(0)

    /// Loads the catalogue `storage` holds (empty when none was written).
    /// - Parameter storage: opened with ``databaseName`` among its databases.
    /// - Throws: ``StorageError`` when the stored record does not decode (corruption).
    public init(storage: Storage) throws {
        self.storage = storage
        self.database = storage.database(Self.databaseName)
        self.current = Mutex(try Self.load(storage: storage, database: storage.database(Self.databaseName)))
    }

    /// The catalogue as applied on this node (it lags the controller leader's by the entries in flight).
    public var catalogue: Metadata.Catalogue { current.withLock { $0 } }

    /// How many times the catalogue changed since this node started (applied commands and
    /// reloads): a cheap test for "anything new" by a loop that acts on changes.
    public var revision: UInt64 { changes.load(ordering: .acquiring) }

    /// The data group entry that carries `command`.
    public static func entry(_ command: Metadata.Command) -> [UInt8] {
        entryHeader + Metadata.Codec.encode(command)
    }

    /// Whether a data group entry is a catalogue command.
    public static func isEntry(_ payload: [UInt8]) -> Bool { payload.count > entryHeader.count && payload[4] == entryTag }

    /// Applies the catalogue entry `payload` in `txn`.
    /// - Throws: ``TernError`` when the catalogue refuses the command (deterministic: it is
    ///   refused alike on every replica and changes nothing, decision 109); ``StorageError``
    ///   when the entry does not decode (a newer format or corruption: the replica halts) or
    ///   LMDB fails.
    public func apply(_ payload: [UInt8], in txn: WriteTransaction) throws -> Metadata.Outcome {
        let command: Metadata.Command
        do throws(Metadata.Error) {
            command = try Metadata.Codec.decodeCommand(Array(payload.dropFirst(Self.entryHeader.count)))
        } catch {
            throw StorageError(.corruptRecord, "catalogue entry: \(error.message)")
        }
        var next = current.withLock { $0 }
        let outcome: Metadata.Outcome
        do throws(Metadata.Error) {
            outcome = try next.apply(command)
        } catch {
            throw error.ternError
        }
        try txn.put(database, Self.key, Metadata.Codec.encode(next))
        current.withLock { $0 = next }
        changes.add(1, ordering: .releasing)
        return outcome
    }

    /// Reads the catalogue again from storage (after a snapshot replaced the databases).
    /// - Throws: ``StorageError`` when the stored record does not decode.
    public func reload() throws {
        let loaded = try Self.load(storage: storage, database: database)
        current.withLock { $0 = loaded }
        changes.add(1, ordering: .releasing)
    }

    private static func load(storage: Storage, database: Database) throws -> Metadata.Catalogue {
        try storage.read { txn in
            guard let bytes = try txn.get(database, key) else { return Metadata.Catalogue() }
            do throws(Metadata.Error) {
                return try Metadata.Codec.decodeCatalogue(bytes)
            } catch {
                throw StorageError(.corruptRecord, "catalogue record: \(error.message)")
            }
        }
    }
}
