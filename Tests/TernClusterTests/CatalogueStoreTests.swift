import Foundation
import Logging
import Testing
import TernBroker
import TernCluster
import TernCore
import TernMetadata
import TernStorage
import TernTestKit

/// The catalogue in the data group's log (decision 140): its entries are told apart from broker
/// commands without fail, applied into the `catalogue` database, and read back after a restart.
@Suite struct CatalogueStoreTests {
    static let logger = Logger(label: "test")

    /// A broker command's byte 4 is its envelope version (bytes 0–3 are a checksum that takes
    /// every value), so no broker command, whatever its checksum, reads as a catalogue entry.
    /// (A first-byte tag, the first design, misread about one command in 256 and halted the
    /// replica that applied it.)
    @Test func noBrokerCommand_isTakenForACatalogueEntry() throws {
        var random = SeededGenerator(seed: 140)
        var firstBytes = Set<UInt8>()
        for k in 0..<4_000 {
            let body = (0..<Int.random(in: 0...64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            let command = Command.send(try QueueName("q\(k % 7)"), [OutgoingMessage(body: body)], idSeed: random.next())
            let record = CommandCodec.encode(CommandEnvelope(time: Timestamp(milliseconds: UInt64(k)), command: command))
            firstBytes.insert(record[0])
            #expect(!CatalogueStore.isEntry(record))
        }
        #expect(firstBytes.contains(CatalogueStore.entryTag), "the sample covers a record whose first byte is the tag")
        #expect(CatalogueStore.isEntry(CatalogueStore.entry(.deleteQueue(try QueueName("q")))))
    }

    /// Replicas are compared by their state dumps: the catalogue is in them.
    @Test func theCatalogue_isInTheStateDump() {
        #expect(StateDump.dumpedDatabases.contains(CatalogueStore.databaseName))
    }

    @Test func appliedCommands_persist_andARefusalChangesNothing() async throws {
        let directory = try TemporaryDirectory(prefix: "tern-catalogue")
        defer { directory.remove() }
        func open() throws -> Storage {
            try Storage(directory: directory.path, databases: [CatalogueStore.databaseName], logger: Self.logger)
        }
        var storage = try open()
        var store = try CatalogueStore(storage: storage)
        func apply(_ command: Metadata.Command) async throws -> Metadata.Outcome {
            let entry = CatalogueStore.entry(command)
            let target = store
            return try await storage.write { txn in try target.apply(entry, in: txn) }
        }
        let now = Timestamp(milliseconds: 1)
        _ = try await apply(.registerNode(id: "n1", zone: nil, at: now))
        _ = try await apply(.registerNode(id: "n2", zone: nil, at: now))
        let orders = try QueueName("orders")
        let placed = try await apply(.createQueue(orders, placement: .replicas(["n2", "n1"], replicationFactor: 2)))
        #expect(placed == .queueCreated(orders, group: 1, newGroup: true))
        let before = store.revision
        await #expect(throws: TernError.self) { _ = try await apply(.createQueue(try QueueName("dlq"), placement: .colocated(with: try QueueName("missing")))) }
        #expect(store.revision == before, "a refused command changes nothing")
        storage.close()

        storage = try open()
        store = try CatalogueStore(storage: storage)
        #expect(store.catalogue.group(ofQueue: orders)?.replicas == ["n2", "n1"])
        #expect(store.catalogue.queues.count == 1)
        storage.close()
    }
}
