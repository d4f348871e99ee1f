import Testing
import TernBroker
import TernCore
import TernStorage
import TernTestKit

/// The logical space quota (decision 111): a counter of accounted bytes in LMDB, updated and
/// checked by `apply` against a limit that is state, so replicas refuse the same sends.
@Suite struct StorageQuotaTests {
    static func body(_ size: Int) -> [UInt8] { Array(repeating: UInt8(ascii: "x"), count: size) }

    static func counterMatches(_ fixture: BrokerFixture) throws -> Bool {
        try fixture.storage.read { txn in
            try fixture.broker.machine.queues.quota.used(in: txn) == fixture.broker.machine.queues.quota.recomputed(in: txn)
        }
    }

    @Test func sendsPastTheLimit_areRefused_untilSpaceIsFreed() async throws {
        let fixture = try await BrokerFixture(commandLogBytes: 1 << 20)
        try await fixture.createQueue("jobs")
        let jobs = try QueueName("jobs")
        let each = StorageQuota.accounted(messages: 1, bodyBytes: 500)
        try await fixture.broker.setStorageLimit(each * 3)
        for _ in 0..<3 { _ = try await fixture.broker.send(jobs, [OutgoingMessage(body: Self.body(500))]) }
        #expect(try fixture.broker.storageUsage() == .init(storedBytes: each * 3, limitBytes: each * 3))
        await #expect { _ = try await fixture.broker.send(jobs, [OutgoingMessage(body: Self.body(1))]) }
            throws: { ($0 as? TernError)?.code == .storageFull }
        #expect(try fixture.counts("jobs").ready == 3, "the refused send stored nothing")

        // Receives, visibility changes and acks always work; an ack frees room for the next send.
        let received = try await fixture.receive("jobs", max: 1)
        try await fixture.broker.acknowledge(jobs, receiptHandle: received[0].receiptHandle)
        _ = try await fixture.broker.send(jobs, [OutgoingMessage(body: Self.body(500))])
        #expect(try Self.counterMatches(fixture))

        // Topics count too.
        _ = try await fixture.broker.createOrUpdateTopic(try QueueName("logs"), patch: .init(partitions: 1))
        await #expect { _ = try await fixture.broker.produce(try QueueName("logs"), [TopicMessage(value: Self.body(10))]) }
            throws: { ($0 as? TernError)?.code == .storageFull }
        try await fixture.broker.setStorageLimit(nil)
        _ = try await fixture.broker.produce(try QueueName("logs"), [TopicMessage(value: Self.body(10))])
        #expect(try Self.counterMatches(fixture))

        // The counter survives a restart, and a purge and a delete bring it back to the topic's share.
        try await fixture.reopen()
        #expect(try Self.counterMatches(fixture))
        _ = try await fixture.broker.purgeQueue(jobs)
        try await fixture.broker.deleteTopic(try QueueName("logs"))
        while try await fixture.broker.runDueWork().more {}
        #expect(try fixture.broker.storageUsage().storedBytes == 0)
        #expect(try Self.counterMatches(fixture))
    }

    /// The decision is the state's, not the disk's: a replica with a map 16 times smaller
    /// (its physical check far from full either way) replays the same log to the same state,
    /// refused sends included, and the counters agree with a recomputation on both.
    @Test func replicas_withOtherMaps_refuseTheSameSends() async throws {
        let source = try await BrokerFixture(commandLogBytes: 1 << 30)
        try await source.createQueue("jobs")
        let jobs = try QueueName("jobs")
        try await source.broker.setStorageLimit(50_000)
        var refused = 0
        var random = SeededGenerator(seed: 5)
        for _ in 0..<400 {
            var failure: TernError?
            do {
                _ = try await source.broker.send(jobs, [OutgoingMessage(body: Self.body(Int(random.next() % 900) + 1))])
            } catch {
                failure = error
            }
            if let failure {
                #expect(failure.code == .storageFull)
                refused += 1
                let received = try await source.receive("jobs", max: 3)
                _ = try await source.broker.acknowledge(jobs, receiptHandles: received.map(\.receiptHandle))
            }
        }
        #expect(refused > 10)
        let target = try TemporaryDirectory(prefix: "tern-quota")
        defer { target.remove() }
        var small = BrokerFixture.fastSettings
        small.maxMapBytes = 16 << 20
        let replica = try Storage(directory: target.path, databases: Broker.databaseNames, settings: small, logger: BrokerFixture.logger)
        defer { replica.close() }
        _ = try await Replay.apply(from: source.storage, to: replica, logLimitBytes: 1 << 30)
        #expect(try StateDump.lines(storage: source.storage) == StateDump.lines(storage: replica))
        #expect(try StateDump.lines(storage: replica).contains(#"{"key":"stored_bytes","type":"meta","value":"# + "\(try source.broker.storageUsage().storedBytes)}"))
        let quota = StorageQuota(storage: replica)
        #expect(try replica.read { txn in try quota.used(in: txn) == quota.recomputed(in: txn) })
    }

    /// Moving messages between queues (dead-letter moves, redrive) adds nothing and is never
    /// refused, even at the limit.
    @Test func deadLetterMovesAndRedrive_workAtTheLimit() async throws {
        let fixture = try await BrokerFixture()
        try await fixture.createQueue("dlq")
        try await fixture.createQueue("jobs") { $0.maxReceiveCount = 1; $0.deadLetterQueue = try! QueueName("dlq"); $0.visibilityTimeout = 5 }
        try await fixture.send("jobs", ["a", "b"])
        try await fixture.broker.setStorageLimit(try fixture.broker.storageUsage().storedBytes)
        _ = try await fixture.receive("jobs")
        fixture.clock.advance(bySeconds: 6)
        _ = try await fixture.broker.runDueWork()
        #expect(try fixture.counts("dlq").ready == 2)
        #expect(try await fixture.broker.redrive(try QueueName("dlq")) == 2)
        #expect(try fixture.counts("jobs").ready == 2)
        #expect(try Self.counterMatches(fixture))
    }
}
