import Testing
import TernBroker
import TernCore
import TernStorage
import TernTestKit

/// Queue metadata (tags, front-end attributes) is broker state: changed by a command, bounded,
/// checked against the revision it was read at, gone with its queue (decision 110).
@Suite struct QueueMetadataTests {
    @Test func metadata_isKept_andDeletedWithItsQueue() async throws {
        let fixture = try await BrokerFixture(commandLogBytes: 1 << 20)
        try await fixture.createQueue("jobs")
        let name = try QueueName("jobs")
        fixture.clock.advance(bySeconds: 5)
        let updated = try await fixture.broker.updateQueueMetadata(name, QueueMetadataPatch(
            tags: ["team": "billing"], attributes: ["Policy": "{}"], lastModified: .commandTime))
        #expect(updated.revision == 1)
        #expect(updated.lastModified == fixture.clock.now)
        try await fixture.reopen()
        let read = try fixture.broker.describeQueueWithMetadata(name)
        #expect(read.metadata == updated)
        #expect(try StateDump.lines(storage: fixture.storage).contains { $0.contains(#""type":"queue_metadata""#) && $0.contains("billing") })

        try await fixture.broker.deleteQueue(name)
        #expect(try !StateDump.lines(storage: fixture.storage).contains { $0.contains(#""type":"queue_metadata""#) },
                "deleting the queue deletes its metadata in the same command")
        try await fixture.createQueue("jobs")
        #expect(try fixture.broker.describeQueueWithMetadata(name).metadata == QueueMetadata(), "a re-created queue starts without")
    }

    /// Recently deleted names (decision 139): remembered for the time the command gives, across
    /// a restart and in the state dump; names whose time ended are dropped by the next note;
    /// a time past one day is refused.
    @Test func deletedQueueNames_areRemembered_forTheirTime_only() async throws {
        let fixture = try await BrokerFixture(commandLogBytes: 1 << 20)
        let (jobs, mail) = (try QueueName("jobs"), try QueueName("mail"))
        try await fixture.broker.noteDeletedQueue(jobs, keepMilliseconds: 60_000)
        let deletedAt = fixture.clock.now
        fixture.clock.advance(bySeconds: 30)
        try await fixture.reopen()
        #expect(try fixture.broker.deletedRecently(jobs) == deletedAt)
        #expect(try fixture.broker.deletedRecently(mail) == nil)
        #expect(try StateDump.lines(storage: fixture.storage).contains { $0.contains(#""type":"deleted_queue_name""#) && $0.contains("jobs") })
        fixture.clock.advance(bySeconds: 31)
        #expect(try fixture.broker.deletedRecently(jobs) == nil, "its 60 s are over")
        try await fixture.broker.noteDeletedQueue(mail, keepMilliseconds: 1000)
        let lines = try StateDump.lines(storage: fixture.storage).filter { $0.contains(#""type":"deleted_queue_name""#) }
        #expect(lines.count == 1 && lines[0].contains("mail"), "the note dropped the name whose time ended: \(lines)")
        await #expect { try await fixture.broker.noteDeletedQueue(mail, keepMilliseconds: DeletedQueueNames.maxKeepMilliseconds + 1) }
            throws: { ($0 as? TernError)?.code == .invalidParameter }
    }

    @Test func aStaleRevision_isAConflict_andChangesNothing() async throws {
        let fixture = try await BrokerFixture()
        try await fixture.createQueue("jobs")
        let name = try QueueName("jobs")
        let queue = try fixture.broker.describeQueueWithMetadata(name)
        try await fixture.broker.updateQueueMetadata(name, QueueMetadataPatch(tags: ["a": "1"],
                                                                               expected: .init(queueID: queue.queueID, revision: 0)))
        await #expect { try await fixture.broker.updateQueueMetadata(name, QueueMetadataPatch(tags: ["b": "2"],
                                                                                            expected: .init(queueID: queue.queueID, revision: 0)))
        } throws: { ($0 as? TernError)?.code == .conflict }
        #expect(try fixture.broker.describeQueueWithMetadata(name).metadata.tags == ["a": "1"])
        // A read-modify-write retries over a concurrent change instead of losing it.
        async let first = fixture.broker.modifyQueueMetadata(name) { _, tags, _ in tags["c"] = "3" }
        async let second = fixture.broker.modifyQueueMetadata(name) { _, tags, _ in tags["d"] = "4" }
        _ = try await (first, second)
        #expect(try fixture.broker.describeQueueWithMetadata(name).metadata.tags == ["a": "1", "c": "3", "d": "4"])
    }

    @Test func bounds_areEnforcedInApply() async throws {
        let fixture = try await BrokerFixture()
        try await fixture.createQueue("jobs")
        let name = try QueueName("jobs")
        var many = QueueMetadataPatch()
        for i in 0...QueueMetadata.maxTags { many.tags["t\(i)"] = "v" }
        await #expect { try await fixture.broker.updateQueueMetadata(name, many) } throws: { ($0 as? TernError)?.code == .invalidAttribute }
        let huge = QueueMetadataPatch(attributes: ["Policy": String(repeating: "x", count: QueueMetadata.maxAttributeValueBytes + 1)])
        await #expect { try await fixture.broker.updateQueueMetadata(name, huge) } throws: { ($0 as? TernError)?.code == .invalidAttribute }
        await #expect { try await fixture.broker.updateQueueMetadata(try QueueName("absent"), QueueMetadataPatch(tags: ["a": "b"])) }
            throws: { ($0 as? TernError)?.code == .queueNotFound }
        #expect(try fixture.broker.describeQueueWithMetadata(name).metadata == QueueMetadata())
    }

    @Test func aLegacyDatabaseWithRecords_failsTheDump_emptyItPasses() async throws {
        let directory = try TemporaryDirectory(prefix: "tern-dump")
        defer { directory.remove() }
        let storage = try Storage(directory: directory.path, databases: Broker.databaseNames + ["sqs_queues"],
                                  settings: BrokerFixture.fastSettings, logger: BrokerFixture.logger)
        defer { storage.close() }
        _ = try StateDump.lines(storage: storage)
        let legacy = storage.database("sqs_queues")
        try await storage.write { txn in try txn.put(legacy, Array("q".utf8), [1, 2, 3]) }
        #expect { try StateDump.lines(storage: storage) } throws: { ($0 as? StateDump.Error)?.code == .unknownRecord }
    }
}
