import NIOCore
import Testing
import TernClient
import TernCore
import TernTestKit
import TernWire

/// The topic and consumer-group APIs (keys 30–42) over a real socket.
@Suite struct WireTopicServerTests {
    @Test func topicAdmin_roundTripsOverTheSocket() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            let (created, info) = try await client.createTopic("logs", patch: TopicAttributes.Patch(partitions: 4, retention: 3600))
            #expect(created)
            #expect(info.name.rawValue == "logs")
            #expect(info.partitions.count == 4)
            #expect(info.attributes.retention == 3600)
            #expect(info.attributes.maxBytes == nil)
            // Same patch semantics as PUT: an update of retention and max bytes, partitions fixed.
            let (again, updated) = try await client.createTopic("logs", patch: TopicAttributes.Patch(maxBytes: .some(1 << 20)))
            #expect(!again)
            #expect(updated.attributes.retention == 3600)
            #expect(updated.attributes.maxBytes == 1 << 20)
            do { _ = try await client.createTopic("logs", patch: TopicAttributes.Patch(partitions: 8)); Issue.record("no error") } catch let error as TernError {
                #expect(error.code == .conflict)
            }
            do { _ = try await client.createTopic("bad", patch: TopicAttributes.Patch(retention: 5)); Issue.record("no error") } catch let error as TernError {
                #expect(error.code == .invalidAttribute)
            }
            try await client.createTopic("audit")
            #expect(try await client.listTopics().map(\.name.rawValue) == ["audit", "logs"])
            #expect(try await client.describeTopic("logs").attributes.maxBytes == 1 << 20)
            try await client.deleteTopic("audit")
            do { _ = try await client.describeTopic("audit"); Issue.record("no error") } catch let error as TernError { #expect(error.code == .topicNotFound) }
            do { _ = try await client.describeTopic("bad name!"); Issue.record("no error") } catch let error as TernError { #expect(error.code == .invalidName) }
            await client.close()
        }
    }

    @Test func produce_thenFetch_returnsTheMessagesWithOffsetsKeysAndWatermarks() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            try await client.createTopic("logs", patch: TopicAttributes.Patch(partitions: 4))
            let before: UInt64 = 1_700_000_000_000 // ms: produced after 2023
            let offsets = try await client.produce([
                TopicMessage(key: Array("a".utf8), value: Array("one".utf8), partition: 2),
                TopicMessage(value: Array("two".utf8), partition: 2),
                TopicMessage(key: Array("c".utf8), value: [0, 255], partition: 1),
            ], to: "logs")
            #expect(offsets == [TopicOffset(partition: 2, offset: 0), TopicOffset(partition: 2, offset: 1),
                                TopicOffset(partition: 1, offset: 0)])
            let third = try await client.produce(Array("three".utf8), to: "logs", partition: 2)
            #expect(third == TopicOffset(partition: 2, offset: 2))

            let page = try await client.fetch(topic: "logs", partition: 2, offset: 1, max: 10)
            #expect(page.highWatermark == 3)
            #expect(page.logStart == 0)
            #expect(page.messages.map(\.offset) == [1, 2])
            #expect(page.messages.map { String(decoding: $0.value, as: UTF8.self) } == ["two", "three"])
            #expect(page.messages.allSatisfy { $0.key == nil && $0.partition == 2 && $0.timestamp.milliseconds >= before })
            let fromStart = try await client.fetch(topic: "logs", partition: 2)
            #expect(fromStart.messages.first?.key == Array("a".utf8))
            #expect(fromStart.messages.count == 3)
            let binary = try await client.fetch(topic: "logs", partition: 1, offset: 0, max: 1)
            #expect(binary.messages.map(\.value) == [[0, 255]])
            #expect(try await client.describeTopic("logs").partitions.map(\.highWatermark) == [0, 1, 3, 0])

            // A long poll at the high watermark is answered by the next produce.
            async let waiting = client.fetch(topic: "logs", partition: 3, offset: 0, max: 5, wait: 10)
            try await Task.sleep(for: .milliseconds(50))
            try await client.produce(Array("late".utf8), to: "logs", partition: 3)
            #expect(try await waiting.messages.map(\.value) == [Array("late".utf8)])

            // Errors are error responses with the broker's codes; the connection stays open.
            do { _ = try await client.fetch(topic: "logs", partition: 2, offset: 99); Issue.record("no error") } catch let error as TernError {
                #expect(error.code == .offsetOutOfRange)
            }
            do { _ = try await client.fetch(topic: "logs", partition: 9); Issue.record("no error") } catch let error as TernError { #expect(error.code == .invalidParameter) }
            do { _ = try await client.fetch(topic: "nope", partition: 0); Issue.record("no error") } catch let error as TernError { #expect(error.code == .topicNotFound) }
            do { _ = try await client.produce([], to: "logs"); Issue.record("no error") } catch let error as TernError { #expect(error.code == .invalidParameter) }
            do { _ = try await client.fetch(topic: "logs", partition: -1); Issue.record("no error") } catch let error as TernError { #expect(error.code == .invalidParameter) }
            #expect(try await client.listTopics().count == 1)
            await client.close()
        }
    }

    @Test func group_joinConsumeCommit_thenDescribeShowsTheLag() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            try await client.createTopic("logs", patch: TopicAttributes.Patch(partitions: 2))
            for index in 0..<6 { try await client.produce(Array("m\(index)".utf8), to: "logs", partition: index % 2) }

            let (member, assignment) = try await client.joinGroup(topic: "logs", group: "indexer", sessionTimeout: 30)
            #expect(assignment.partitions == [0, 1])
            #expect(assignment.generation == 1)
            let heartbeat = try await client.heartbeat(topic: "logs", group: "indexer", memberID: member)
            #expect(heartbeat == GroupAssignment(generation: 1, partitions: [0, 1], rebalance: false))

            let batch = try await client.consume(topic: "logs", group: "indexer", memberID: member, max: 4)
            #expect(batch.messages.count == 4)
            #expect(batch.assignment.generation == 1)
            var next = [Int: UInt64]()
            for message in batch.messages { next[message.partition] = message.offset + 1 }
            try await client.commitOffsets(next, topic: "logs", group: "indexer", memberID: member, generation: 1)

            let described = try await client.describeGroup(topic: "logs", group: "indexer")
            #expect(described.generation == 1)
            #expect(described.members.map(\.id) == [member])
            #expect(described.members.first?.sessionTimeout == 30)
            #expect(described.members.first?.partitions == [0, 1])
            #expect(described.partitions.map(\.highWatermark) == [3, 3])
            #expect(described.partitions.map(\.committed) == [next[0], next[1]])
            #expect(described.partitions.map(\.owner) == [member, member])
            #expect(described.lag == 2)
            #expect(described.partitions.map(\.lag) == [3 - (next[0] ?? 0), 3 - (next[1] ?? 0)])

            // A stale generation, an offset beyond the high watermark, an unknown member.
            do { try await client.commitOffsets([0: 1], topic: "logs", group: "indexer", memberID: member, generation: 7); Issue.record("no error") } catch let error as TernError {
                #expect(error.code == .staleGeneration)
            }
            do { try await client.commitOffsets([0: 99], topic: "logs", group: "indexer", memberID: member, generation: 1); Issue.record("no error") } catch let error as TernError {
                #expect(error.code == .invalidParameter)
            }
            do { try await client.commitOffsets([:], topic: "logs", group: "indexer", memberID: member, generation: 1); Issue.record("no error") } catch let error as TernError {
                #expect(error.code == .invalidParameter)
            }
            do { _ = try await client.heartbeat(topic: "logs", group: "indexer", memberID: "m-nobody"); Issue.record("no error") } catch let error as TernError {
                #expect(error.code == .memberNotFound)
            }
            do { _ = try await client.joinGroup(topic: "logs", group: "bad group!"); Issue.record("no error") } catch let error as TernError { #expect(error.code == .invalidName) }

            // Reset needs an empty group; then the next member starts at the reset offsets.
            do { try await client.resetOffsets(topic: "logs", group: "indexer", to: .earliest); Issue.record("no error") } catch let error as TernError {
                #expect(error.code == .conflict)
            }
            try await client.leaveGroup(topic: "logs", group: "indexer", memberID: member)
            try await client.resetOffsets(topic: "logs", group: "indexer", to: .latest)
            let reset = try await client.describeGroup(topic: "logs", group: "indexer")
            #expect(reset.members.isEmpty)
            #expect(reset.partitions.map(\.committed) == [3, 3])
            #expect(reset.lag == 0)
            try await client.resetOffsets(topic: "logs", group: "indexer", to: .earliest)
            let (second, _) = try await client.joinGroup(topic: "logs", group: "indexer")
            let all = try await client.consume(topic: "logs", group: "indexer", memberID: second, max: 100)
            #expect(all.messages.count == 6)
            await client.close()
        }
    }
}
