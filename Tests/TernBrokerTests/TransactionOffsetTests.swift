import Testing
import TernBroker
import TernCore
import TernTestKit

/// Consumer-group offset commits inside producer transactions: the topic half of
/// consume-transform-produce (Kafka's `sendOffsetsToTransaction`, KIP-447 fencing by member
/// and generation).
@Suite struct TransactionOffsetTests {
    /// A topic `in` with 6 messages in one partition, a queue `out`, a member of group `g`
    /// that consumed them, and a transactional producer.
    struct Pipeline {
        let f: BrokerFixture
        let member: String
        let generation: UInt32
        let consumed: [FetchedMessage]
        let producer: ProducerIdentity

        init() async throws {
            f = try await BrokerFixture()
            _ = try await f.createTopic("in", partitions: 1)
            _ = try await f.produce("in", (0..<6).map { "line \($0)" })
            try await f.createQueue("out")
            let (member, assignment) = try await f.join("in", "g")
            self.member = member
            generation = assignment.generation
            consumed = try await f.consume("in", "g", member, max: 4).messages
            producer = try await f.broker.initProducer(transactionalID: "upper")
        }

        func transaction(generation: UInt32? = nil, member: String? = nil, offset: UInt64 = 4) throws -> ProducerTransaction {
            var transaction = ProducerTransaction(producer: producer, sequence: 1)
            transaction.send(try QueueName("out"), consumed.map { OutgoingMessage(body: Array($0.text.uppercased().utf8)) })
            transaction.commitOffset(.init(topic: "in", group: "g", partition: 0, offset: offset,
                                           memberID: member ?? self.member, generation: generation ?? self.generation))
            return transaction
        }

        func committed() async throws -> UInt64? { try await f.group("in", "g").partitions[0].committed }
    }

    @Test func commit_writesTheOffsetWithTheSends() async throws {
        let p = try await Pipeline()
        #expect(p.consumed.map(\.offset) == [0, 1, 2, 3])
        _ = try await p.f.broker.commit(try p.transaction())
        #expect(try await p.committed() == 4)
        #expect(try await p.f.group("in", "g").partitions[0].lag == 2)
        #expect(try await p.f.receive("out", max: 10).map(\.text) == ["LINE 0", "LINE 1", "LINE 2", "LINE 3"])
    }

    @Test func staleGeneration_appliesNothing() async throws {
        let p = try await Pipeline()
        _ = try await p.f.join("in", "g")   // the group rebalances
        let stale = try p.transaction()
        do {
            _ = try await p.f.broker.commit(stale)
            Issue.record("committed under an ended generation")
        } catch {
            #expect(error.code == .staleGeneration)
        }
        #expect(try await p.committed() == nil, "the offset did not move")
        #expect(try p.f.counts("out").total == 0, "the sends of the failed transaction are not stored")
        // The failed commit did not use up the producer's transaction sequence.
        var retry = try p.transaction(generation: p.generation + 1, offset: 4)
        retry.offsets = []
        _ = try await p.f.broker.commit(retry)
        #expect(try p.f.counts("out").ready == 4)
    }

    @Test func commitByAMemberNotInTheGroup_isMemberNotFound_andAppliesNothing() async throws {
        let p = try await Pipeline()
        let foreign = try p.transaction(member: "m-somebody-else")
        do {
            _ = try await p.f.broker.commit(foreign)
            Issue.record("committed for a member that is not in the group")
        } catch {
            #expect(error.code == .memberNotFound)
        }
        #expect(try await p.committed() == nil)
        #expect(try p.f.counts("out").total == 0)
    }

    @Test func commitWithoutAMember_isRefusedWhileTheGroupHasMembers_andAcceptedOnceItIsEmpty() async throws {
        let p = try await Pipeline()
        var transaction = ProducerTransaction(producer: p.producer, sequence: 1)
        transaction.commitOffset(.init(topic: "in", group: "g", partition: 0, offset: 4))
        do {
            _ = try await p.f.broker.commit(transaction)
            Issue.record("committed without a member while the group has one")
        } catch {
            #expect(error.code == .conflict)
        }
        #expect(try await p.committed() == nil)
        try await p.f.broker.leaveGroup(try QueueName("in"), group: try QueueName("g"), memberID: p.member)
        _ = try await p.f.broker.commit(transaction)
        #expect(try await p.committed() == 4)
    }

    @Test func offsetBeyondTheHighWatermark_isInvalid_andAppliesNothing() async throws {
        let p = try await Pipeline()
        let beyond = try p.transaction(offset: 7)
        do {
            _ = try await p.f.broker.commit(beyond)
            Issue.record("committed beyond the high watermark")
        } catch {
            #expect(error.code == .invalidParameter)
        }
        #expect(try await p.committed() == nil)
        #expect(try p.f.counts("out").total == 0)
    }

    @Test func malformedOffsetCommits_areInvalid() async throws {
        let p = try await Pipeline()
        var twice = try p.transaction()
        twice.commitOffset(.init(topic: "in", group: "g", partition: 0, offset: 2, memberID: p.member, generation: p.generation))
        var half = ProducerTransaction(producer: p.producer, sequence: 1)
        half.commitOffset(.init(topic: "in", group: "g", partition: 0, offset: 2, memberID: p.member, generation: nil))
        var unknownTopic = ProducerTransaction(producer: p.producer, sequence: 1)
        unknownTopic.commitOffset(.init(topic: "nope", group: "g", partition: 0, offset: 0))
        for (transaction, code) in [(twice, ErrorCode.invalidParameter), (half, .invalidParameter), (unknownTopic, .topicNotFound)] {
            do {
                _ = try await p.f.broker.commit(transaction)
                Issue.record("committed \(transaction.offsets)")
            } catch {
                #expect(error.code == code)
            }
        }
        #expect(try await p.committed() == nil)
        #expect(try p.f.counts("out").total == 0)
    }

    /// Kafka's consume-transform-produce between topics: the output records and the input
    /// offsets commit together; a retry is answered with the original offsets.
    @Test func topicToTopic_recordsAndOffsetsCommitTogether_andARetryAnswersTheSameOffsets() async throws {
        let p = try await Pipeline()
        _ = try await p.f.createTopic("out", partitions: 4)
        var transaction = try p.transaction()
        transaction.sends = []
        transaction.produce(try QueueName("out"), p.consumed.map {
            TopicMessage(key: Array("k\($0.offset)".utf8), value: Array($0.text.uppercased().utf8))
        } + [TopicMessage(value: Array("summary".utf8))])
        let first = try await p.f.broker.commit(transaction)
        #expect(first.produced.count == 1)
        #expect(first.produced[0].count == 5)
        #expect(try await p.committed() == 4)
        let stored = try p.f.partitions("out").reduce(0) { $0 + $1.highWatermark }
        #expect(stored == 5)
        for (offset, message) in zip(first.produced[0], p.consumed) {
            let fetched = try await p.f.fetch("out", partition: offset.partition, offset: offset.offset, max: 1)
            #expect(fetched.messages.first?.text == message.text.uppercased())
        }
        let retry = try await p.f.broker.commit(transaction)
        #expect(retry.duplicate)
        #expect(retry.produced == first.produced)
        #expect(try p.f.partitions("out").reduce(0) { $0 + $1.highWatermark } == 5, "stored once")
    }

    @Test func topicProduce_inAFailedTransaction_isNeverVisible() async throws {
        let p = try await Pipeline()
        _ = try await p.f.createTopic("out")
        var transaction = try p.transaction(offset: 99)   // beyond the high watermark: the commit fails
        transaction.produce(try QueueName("out"), [TopicMessage(value: Array("x".utf8))])
        do {
            _ = try await p.f.broker.commit(transaction)
            Issue.record("committed")
        } catch {
            #expect(error.code == .invalidParameter)
        }
        #expect(try p.f.partitions("out")[0].highWatermark == 0)
        #expect(try p.f.counts("out").total == 0, "the queue send of the transaction is not stored either")
    }
}
