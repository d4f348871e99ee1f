import Testing
import TernBroker
import TernCore
import TernStorage
import TernTestKit

/// Purge is atomic to clients (decision 112): one command records a watermark, the messages
/// below it are gone at once whatever their state, and due work removes their records later,
/// also after a restart.
@Suite struct PurgeTests {
    /// Messages of `queue` still stored (purged or not).
    static func storedMessages(_ fixture: BrokerFixture, queue: UInt32) throws -> Int {
        let messages = fixture.storage.database("messages")
        let prefix = QueueSchema.queuePrefix(queue)
        return try fixture.storage.read { txn in
            try txn.withCursor(messages) { cursor in
                var count = 0
                var entry = try cursor.seek(atOrAfter: prefix)
                while let current = entry, current.key.starts(with: prefix) {
                    count += 1
                    entry = try cursor.next()
                }
                return count
            }
        }
    }

    @Test func aPurge_removesEveryStateAtOnce_andTheRecordsLater() async throws {
        let fixture = try await BrokerFixture()
        try await fixture.createQueue("jobs") { $0.visibilityTimeout = 30 }
        let jobs = try QueueName("jobs")
        try await fixture.send("jobs", (0..<20).map { "m\($0)" }, priority: 3)
        try await fixture.send("jobs", ["urgent"], priority: 9)
        try await fixture.send("jobs", ["later"], delay: 60)
        let inFlight = try await fixture.receive("jobs", max: 2)
        let queueID = try fixture.broker.describeQueueWithMetadata(jobs).queueID

        // The purge is one command; nothing is swept yet (no due work ran).
        let envelope = CommandEnvelope(time: fixture.clock.now, command: .purgeQueue(jobs))
        let machine = fixture.broker.machine
        let outcome = try await fixture.storage.write { txn in try machine.apply(envelope, in: txn) }
        guard case .queuePurged(_, let purged, _) = outcome.result else { Issue.record("\(outcome.result)"); return }
        #expect(purged == 22)
        #expect(try Self.storedMessages(fixture, queue: queueID) == 22, "the records are still there")
        #expect(try fixture.counts("jobs") == QueueCounts())
        #expect(try fixture.broker.storageUsage().storedBytes == 0, "the quota counter drops at once")

        // Gone for clients: not received (ready, expired in-flight, passed delays), handles stale.
        try await fixture.send("jobs", ["after"])
        fixture.clock.advance(bySeconds: 61)
        let received = try await fixture.broker.receive(jobs, maxMessages: 10)
        #expect(received.map(\.text) == ["after"])
        await #expect { try await fixture.broker.acknowledge(jobs, receiptHandle: inFlight[0].receiptHandle) }
            throws: { ($0 as? TernError)?.code == .receiptHandleStale }
        await #expect { try await fixture.broker.changeVisibility(jobs, receiptHandle: inFlight[1].receiptHandle, timeout: 0) }
            throws: { ($0 as? TernError)?.code == .receiptHandleStale }
        #expect(try fixture.broker.describeQueue(jobs).oldestSentAt == received[0].sentAt)

        // Due work removes the records in chunks; the counts and the quota stay right.
        while try await fixture.broker.runDueWork().more {}
        #expect(try Self.storedMessages(fixture, queue: queueID) == 1)
        #expect(try fixture.counts("jobs").inFlight == 1)
        let quota = StorageQuota(storage: fixture.storage)
        #expect(try fixture.storage.read { txn in try quota.used(in: txn) == quota.recomputed(in: txn) })
    }

    /// A restart after the purge command (the process died before the records were swept):
    /// the purged messages stay gone, and opening the broker finishes the sweep.
    @Test func aRestartMidPurge_neverDeliversPurgedMessages() async throws {
        let fixture = try await BrokerFixture()
        try await fixture.createQueue("jobs")
        let jobs = try QueueName("jobs")
        for chunk in 0..<3 { try await fixture.send("jobs", (0..<1000).map { "m\(chunk)-\($0)" }) }
        let queueID = try fixture.broker.describeQueueWithMetadata(jobs).queueID
        let machine = fixture.broker.machine
        let envelope = CommandEnvelope(time: fixture.clock.now, command: .purgeQueue(jobs))
        _ = try await fixture.storage.write { txn in try machine.apply(envelope, in: txn) }
        // One chunk of the sweep, then "crash".
        let tick = CommandEnvelope(time: fixture.clock.now, command: .tick(limit: 500))
        _ = try await fixture.storage.write { txn in try machine.apply(tick, in: txn) }
        #expect(try Self.storedMessages(fixture, queue: queueID) == 2500)
        try await fixture.reopen()
        #expect(try Self.storedMessages(fixture, queue: queueID) == 0, "opening the broker resumed the sweep")
        #expect(try await fixture.broker.receive(jobs, maxMessages: 10).isEmpty)
        #expect(try fixture.counts("jobs") == QueueCounts())
    }

    /// A FIFO group whose in-flight message was purged is not held by it.
    @Test func aPurgedInFlightFifoMessage_doesNotLockItsGroup() async throws {
        let fixture = try await BrokerFixture()
        try await fixture.createQueue("orders.fifo") { $0.contentBasedDeduplication = true; $0.visibilityTimeout = 300 }
        let orders = try QueueName("orders.fifo")
        _ = try await fixture.broker.send(orders, [OutgoingMessage(body: Array("o1".utf8), groupID: "g")])
        #expect(try await fixture.broker.receive(orders).count == 1)
        let machine = fixture.broker.machine
        let envelope = CommandEnvelope(time: fixture.clock.now, command: .purgeQueue(orders))
        _ = try await fixture.storage.write { txn in try machine.apply(envelope, in: txn) }
        _ = try await fixture.broker.send(orders, [OutgoingMessage(body: Array("o2".utf8), groupID: "g")])
        #expect(try await fixture.broker.receive(orders).map(\.text) == ["o2"])
    }

    /// Retention, `drop_oldest` and redrive skip what a purge left.
    @Test func retentionOverflowAndRedrive_skipPurgedMessages() async throws {
        let fixture = try await BrokerFixture()
        try await fixture.createQueue("small") { $0.maxMessages = 3; $0.overflow = .dropOldest }
        try await fixture.send("small", ["a", "b", "c"])
        let machine = fixture.broker.machine
        let purge = CommandEnvelope(time: fixture.clock.now, command: .purgeQueue(try QueueName("small")))
        _ = try await fixture.storage.write { txn in try machine.apply(purge, in: txn) }
        try await fixture.send("small", ["d", "e", "f"])
        try await fixture.send("small", ["g"])
        #expect(try fixture.counts("small").total == 3, "drop_oldest dropped d, not a purged message")
        #expect(try await fixture.receive("small", max: 10).map(\.text) == ["e", "f", "g"])

        try await fixture.createQueue("dlq")
        try await fixture.createQueue("jobs") { $0.maxReceiveCount = 1; $0.deadLetterQueue = try! QueueName("dlq"); $0.visibilityTimeout = 1 }
        try await fixture.send("jobs", ["x"])
        _ = try await fixture.receive("jobs")
        fixture.clock.advance(bySeconds: 2)
        _ = try await fixture.broker.runDueWork()
        #expect(try fixture.counts("dlq").ready == 1)
        let purgeDLQ = CommandEnvelope(time: fixture.clock.now, command: .purgeQueue(try QueueName("dlq")))
        _ = try await fixture.storage.write { txn in try machine.apply(purgeDLQ, in: txn) }
        #expect(try await fixture.broker.redrive(try QueueName("dlq")) == 0)
        #expect(try fixture.counts("jobs").total == 0)
    }
}
