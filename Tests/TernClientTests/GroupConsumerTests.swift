import Testing
import TernClient
import TernCore
import TernTestKit
import TernWire

/// Records the rebalance callbacks of group consumers.
actor RebalanceLog {
    struct Entry: Sendable, Hashable {
        var consumer: String
        var revoked: [Int]
        var assigned: [Int]
    }
    private(set) var entries: [Entry] = []

    func record(_ consumer: String, _ revoked: [Int], _ assigned: [Int]) {
        entries.append(Entry(consumer: consumer, revoked: revoked, assigned: assigned))
    }

    func handler(_ consumer: String) -> GroupConsumer.RebalanceHandler {
        { revoked, assigned in await self.record(consumer, revoked, assigned) }
    }
}

/// A message's identity within a topic.
struct Position: Hashable, Sendable {
    var partition: Int
    var offset: UInt64
}

/// Counts messages handed out across consumers.
actor Tally {
    private(set) var count = 0
    func add() -> Int {
        count += 1
        return count
    }
}

@Suite struct GroupConsumerTests {
    /// Iterates every consumer's `messages` in its own task, committing after each message,
    /// until `count` messages arrived in total (or 30 s passed); then cancels the iterations.
    static func consumeConcurrently(_ consumers: [GroupConsumer], count: Int) async throws -> [[FetchedMessage]] {
        let tally = Tally()
        return try await withThrowingTaskGroup(of: (Int, [FetchedMessage]).self) { group in
            for (index, consumer) in consumers.enumerated() {
                group.addTask {
                    var received = [FetchedMessage]()
                    for try await message in consumer.messages {
                        received.append(message)
                        try await consumer.commit()
                        if await tally.add() >= count { break }
                    }
                    return (index, received)
                }
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(30))
                return (-1, [])
            }
            var results = [[FetchedMessage]](repeating: [], count: consumers.count)
            var finished = 0
            for try await (index, received) in group {
                if index >= 0 {
                    results[index] = received
                    finished += 1
                }
                // The first consumer to finish reached the total (or the time ran out): stop the others.
                group.cancelAll()
                if finished == consumers.count { break }
            }
            return results
        }
    }

    @Test func twoConsumers_iteratingConcurrently_withBackgroundHeartbeats_consumeEverythingExactlyOnce() async throws {
        try await WireServerFixture.with { f in
            let admin = f.client()
            try await admin.createTopic("events", patch: TopicAttributes.Patch(partitions: 4))
            let a = try await f.client().groupConsumer(topic: "events", group: "g", sessionTimeout: 3, batchSize: 10, waitTime: 1)
            let b = try await f.client().groupConsumer(topic: "events", group: "g", sessionTimeout: 3, batchSize: 10, waitTime: 1)
            async let received = Self.consumeConcurrently([a, b], count: 400)
            // Produced while both consume, in small batches by key.
            for batch in 0..<20 {
                try await admin.produce((0..<20).map { TopicMessage(key: Array("k\($0)".utf8), value: Array("\(batch)-\($0)".utf8)) },
                                       to: "events")
            }
            let results = try await received
            let all = results.flatMap { $0 }.map { Position(partition: $0.partition, offset: $0.offset) }
            #expect(all.count == 400)
            #expect(Set(all).count == 400, "no message handed out twice")
            #expect(!results[0].isEmpty && !results[1].isEmpty)
            let described = try await admin.describeGroup(topic: "events", group: "g")
            #expect(described.members.count == 2, "both members stayed (heartbeats every second)")
            #expect(described.lag == 0)
            try await a.close()
            try await b.close()
            await admin.close()
        }
    }

    /// Polls `consumers` in turn, committing after each poll, until `count` messages arrived
    /// or 30 s passed.
    static func drain(_ consumers: [GroupConsumer], count: Int) async throws -> [[FetchedMessage]] {
        var received = [[FetchedMessage]](repeating: [], count: consumers.count)
        let deadline = ContinuousClock.now.advanced(by: .seconds(30))
        while received.reduce(0, { $0 + $1.count }) < count, ContinuousClock.now < deadline {
            for (index, consumer) in consumers.enumerated() {
                received[index] += try await consumer.poll()
                try await consumer.commit()
            }
        }
        return received
    }

    @Test func twoConsumers_shareFourPartitions_consumeEverythingOnce_andTheSurvivorResumesAtTheCommittedOffsets() async throws {
        try await WireServerFixture.with { f in
            let admin = f.client()
            try await admin.createTopic("events", patch: TopicAttributes.Patch(partitions: 4))
            let log = RebalanceLog()
            let clientA = f.client(), clientB = f.client()
            let a = try await clientA.groupConsumer(topic: "events", group: "billing", batchSize: 7, waitTime: 1, onRebalance: log.handler("a"))
            #expect(await a.partitions == [0, 1, 2, 3])
            let b = try await clientB.groupConsumer(topic: "events", group: "billing", batchSize: 7, waitTime: 1, onRebalance: log.handler("b"))

            // Phase 1: both members consume and commit everything produced, exactly once between them.
            let produced = try await admin.produce((0..<200).map { TopicMessage(value: Array("m\($0)".utf8), partition: $0 % 4) }, to: "events")
            let phase1 = try await Self.drain([a, b], count: 200)
            let seenA = phase1[0].map { Position(partition: $0.partition, offset: $0.offset) }
            let seenB = phase1[1].map { Position(partition: $0.partition, offset: $0.offset) }
            #expect(seenA.count + seenB.count == 200)
            #expect(Set(seenA).isDisjoint(with: seenB))
            #expect(Set(seenA).union(seenB) == Set(produced.map { Position(partition: $0.partition, offset: $0.offset) }))
            let partitionsA = await a.partitions, partitionsB = await b.partitions
            #expect(partitionsA.count == 2 && partitionsB.count == 2)
            #expect(Set(partitionsA).union(partitionsB) == [0, 1, 2, 3])
            #expect(Set(seenA.map(\.partition)).isSubset(of: partitionsA))
            #expect(Set(seenB.map(\.partition)).isSubset(of: partitionsB))
            let afterPhase1 = try await admin.describeGroup(topic: "events", group: "billing")
            #expect(afterPhase1.lag == 0)
            #expect(afterPhase1.partitions.map(\.committed) == [50, 50, 50, 50])
            #expect(afterPhase1.members.count == 2)
            let entries = await log.entries
            #expect(entries.first == .init(consumer: "a", revoked: [], assigned: [0, 1, 2, 3]))
            #expect(entries.contains(.init(consumer: "b", revoked: [], assigned: partitionsB)))
            #expect(entries.contains(.init(consumer: "a", revoked: partitionsB, assigned: [])))

            // Phase 2: b handles 5 messages, commits and leaves; a gets the rest from b's committed offsets.
            try await admin.produce((0..<100).map { TopicMessage(value: Array("n\($0)".utf8), partition: $0 % 4) }, to: "events")
            let handledByB = try await b.poll(max: 5)
            #expect(handledByB.count == 5)
            let committedByB = try await b.commit()
            #expect(!committedByB.isEmpty)
            try await b.close()
            try await b.close()
            let committed = try await admin.describeGroup(topic: "events", group: "billing").partitions
            for (partition, offset) in committedByB { #expect(committed[partition].committed == offset) }

            var rest = [FetchedMessage]()
            let deadline = ContinuousClock.now.advanced(by: .seconds(30))
            for try await message in a.messages {
                rest.append(message)
                if rest.count == 95 || ContinuousClock.now > deadline { break }
            }
            try await a.commit()
            #expect(rest.count == 95)
            let phase2 = Set((handledByB + rest).map { Position(partition: $0.partition, offset: $0.offset) })
            #expect(phase2.count == 100)
            #expect(phase2 == Set((0..<4).flatMap { p in (50..<75).map { Position(partition: p, offset: UInt64($0)) } }))
            for partition in partitionsB {
                let first = rest.filter { $0.partition == partition }.map(\.offset).min()
                #expect(first == committed[partition].committed, "partition \(partition) resumes at b's committed offset")
            }
            #expect(await a.partitions == [0, 1, 2, 3])
            #expect(await log.entries.last == .init(consumer: "a", revoked: [], assigned: partitionsB))
            let final = try await admin.describeGroup(topic: "events", group: "billing")
            #expect(final.lag == 0)
            #expect(final.members.count == 1)
            try await a.close()
            #expect(try await admin.describeGroup(topic: "events", group: "billing").members.isEmpty)
            for client in [admin, clientA, clientB] { await client.close() }
        }
    }

    @Test func commit_afterAnUnnoticedRebalance_relearnsTheAssignment_andCommitsOnlyOwnedPartitions() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            try await client.createTopic("events", patch: TopicAttributes.Patch(partitions: 4))
            try await client.produce((0..<8).map { TopicMessage(value: [UInt8($0)], partition: $0 % 4) }, to: "events")
            let log = RebalanceLog()
            let a = try await client.groupConsumer(topic: "events", group: "g", sessionTimeout: 60, waitTime: 0, onRebalance: log.handler("a"))
            #expect(try await a.poll().count == 8)
            // A second member joins; a hears of it only through its commit (heartbeats every 20 s).
            let (other, assignment) = try await client.joinGroup(topic: "events", group: "g", sessionTimeout: 60)
            #expect(assignment.generation == 2)
            let committed = try await a.commit()
            let kept = await a.partitions
            #expect(kept.count == 2)
            #expect(Set(committed.keys) == Set(kept))
            #expect(committed.values.allSatisfy { $0 == 2 })
            #expect(await a.generation == 2)
            #expect(await log.entries.last == .init(consumer: "a", revoked: assignment.partitions, assigned: []))
            let described = try await client.describeGroup(topic: "events", group: "g")
            for lag in described.partitions {
                #expect(lag.committed == (kept.contains(lag.partition) ? 2 : nil))
            }
            // Nothing new was handed out: a second commit sends nothing.
            #expect(try await a.commit().isEmpty)
            try await client.leaveGroup(topic: "events", group: "g", memberID: other)
            try await a.close()
            await client.close()
        }
    }

    @Test func heartbeats_keepTheMemberBeyondItsSessionTimeout() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            try await client.createTopic("events", patch: TopicAttributes.Patch(partitions: 2))
            let consumer = try await client.groupConsumer(topic: "events", group: "g", sessionTimeout: 1, waitTime: 0)
            let member = await consumer.memberID
            try await Task.sleep(for: .milliseconds(2500))
            let described = try await client.describeGroup(topic: "events", group: "g")
            #expect(described.members.map(\.id) == [member])
            #expect(await consumer.memberID == member)
            try await consumer.close()
            await client.close()
        }
    }

    @Test func aMemberThatExpired_joinsAgain_onItsNextPoll() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            try await client.createTopic("events", patch: TopicAttributes.Patch(partitions: 2))
            let log = RebalanceLog()
            let consumer = try await client.groupConsumer(topic: "events", group: "g", sessionTimeout: 5, waitTime: 0, onRebalance: log.handler("c"))
            let first = await consumer.memberID
            // The broker forgets the member (as if it missed its session timeout).
            try await client.leaveGroup(topic: "events", group: "g", memberID: first)
            #expect(try await consumer.poll().isEmpty)
            let second = await consumer.memberID
            #expect(second != first)
            #expect(await consumer.partitions == [0, 1])
            #expect(await log.entries.last == .init(consumer: "c", revoked: [0, 1], assigned: [0, 1]))
            #expect(try await client.describeGroup(topic: "events", group: "g").members.map(\.id) == [second])
            try await consumer.close()
            await client.close()
        }
    }

    @Test func groupConsumer_onAMissingTopic_failsWithTopicNotFound() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            do { _ = try await client.groupConsumer(topic: "missing", group: "g"); Issue.record("joined") } catch let error as TernError {
                #expect(error.code == .topicNotFound)
            }
            await client.close()
        }
    }
}

/// Kafka's exactly-once loop over topics: records consumed by a group member, transformed,
/// produced and the member's offsets committed in one transaction.
@Suite struct GroupConsumerTransactionTests {
    @Test func consumedOffsets_andProducedRecords_commitTogether() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            _ = try await client.createTopic("in", patch: TopicAttributes.Patch(partitions: 2))
            _ = try await client.createTopic("out", patch: TopicAttributes.Patch(partitions: 2))
            _ = try await client.produce((0..<10).map { TopicMessage(value: Array("m\($0)".utf8), partition: $0 % 2) }, to: "in")
            let consumer = try await client.groupConsumer(topic: "in", group: "upper", waitTime: 1)
            let producer = TransactionalProducer(client: client, transactionalID: "in-to-out")
            var consumed = 0
            while consumed < 10 {
                let records = try await consumer.poll()
                guard !records.isEmpty else { continue }
                try await producer.begin()
                for record in records {
                    await producer.produce(Array(String(decoding: record.value, as: UTF8.self).uppercased().utf8), to: "out")
                }
                await producer.commitOffsets(of: consumer)
                _ = try await producer.commit()
                consumed += records.count
            }
            let group = try await client.describeGroup(topic: "in", group: "upper")
            #expect(group.lag == 0, "every consumed offset was committed by the transactions")
            #expect(try await client.describeTopic("out").partitions.reduce(0) { $0 + $1.highWatermark } == 10)
            #expect(await consumer.uncommittedOffsets().offsets.isEmpty, "the consumer counts them as committed")
            try await consumer.close()
            await client.close()
        }
    }

    @Test func afterARebalance_theTransactionFails_andNothingOfItIsVisible() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            _ = try await client.createTopic("in", patch: TopicAttributes.Patch(partitions: 2))
            _ = try await client.createTopic("out")
            _ = try await client.produce((0..<4).map { TopicMessage(value: [UInt8($0)], partition: $0 % 2) }, to: "in")
            let consumer = try await client.groupConsumer(topic: "in", group: "g", waitTime: 1)
            var records = [FetchedMessage]()
            while records.isEmpty { records = try await consumer.poll() }
            let producer = TransactionalProducer(client: client, transactionalID: "zombie")
            try await producer.begin()
            await producer.produce([1], to: "out")
            await producer.commitOffsets(of: consumer)
            // Another member joins: the group rebalances before the commit.
            _ = try await client.joinGroup(topic: "in", group: "g", sessionTimeout: 30)
            do {
                _ = try await producer.commit()
                Issue.record("a transaction of an ended generation committed")
            } catch let error as TernError {
                #expect(error.code == .staleGeneration || error.code == .conflict, "\(error)")
            }
            #expect(try await client.describeTopic("out").partitions[0].highWatermark == 0)
            #expect(try await client.describeGroup(topic: "in", group: "g").partitions.allSatisfy { $0.committed == nil })
            await client.close()
        }
    }
}
