import Testing
import TernBroker
import TernCore
import TernTestKit

/// Idempotent produce to topics: sequences per producer and topic, duplicates answered with
/// the original offsets and stored once.
@Suite struct TopicProducerTests {
    func values(_ texts: String...) -> [TopicMessage] { texts.map { TopicMessage(key: nil, value: Array($0.utf8), partition: nil) } }

    func keyed(_ pairs: (String, String)...) -> [TopicMessage] {
        pairs.map { TopicMessage(key: Array($0.0.utf8), value: Array($0.1.utf8), partition: nil) }
    }

    func stored(_ f: BrokerFixture, _ topic: String) throws -> UInt64 {
        try f.partitions(topic).reduce(0) { $0 + $1.highWatermark - $1.logStart }
    }

    @Test func resentRequest_afterALostResponse_isStoredOnce_withTheOriginalOffsets() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t", partitions: 8)
        let producer = try await f.broker.initProducer(transactionalID: nil)
        let stamp = ProducerStamp(producer: producer, firstSequence: 0)
        // Keyless messages go to a sticky partition that moves from request to request; a
        // keyed one to its murmur2 partition.
        let batch = values("a", "b") + keyed(("user-7", "c"))
        let first = try await f.broker.produce(try QueueName("t"), batch, producer: stamp)
        #expect(!first.duplicate)
        _ = try await f.produce("t", ["other"])   // moves the sticky partition on
        let retry = try await f.broker.produce(try QueueName("t"), batch, producer: stamp)
        #expect(retry.duplicate)
        #expect(retry.offsets == first.offsets)
        #expect(try stored(f, "t") == 4, "three once, plus the unstamped one")
        let next = try await f.broker.produce(try QueueName("t"), values("d"), producer: ProducerStamp(producer: producer, firstSequence: 3))
        #expect(!next.duplicate)
        #expect(try stored(f, "t") == 5)
    }

    @Test func gapOrOldSequence_isOutOfOrderSequence_andStoresNothing() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t")
        let producer = try await f.broker.initProducer(transactionalID: nil)
        _ = try await f.broker.produce(try QueueName("t"), values("a", "b"), producer: ProducerStamp(producer: producer, firstSequence: 0))
        for sequence: UInt64 in [5, 1] {
            do {
                _ = try await f.broker.produce(try QueueName("t"), values("x"), producer: ProducerStamp(producer: producer, firstSequence: sequence))
                Issue.record("sequence \(sequence) accepted")
            } catch {
                #expect(error.code == .outOfOrderSequence)
            }
        }
        #expect(try stored(f, "t") == 2)
    }

    @Test func sequences_arePerTopic_andIndependentOfQueues() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("a")
        try await f.createTopic("b")
        try await f.createQueue("q")
        let producer = try await f.broker.initProducer(transactionalID: nil)
        _ = try await f.broker.produce(try QueueName("a"), values("1", "2"), producer: ProducerStamp(producer: producer, firstSequence: 0))
        _ = try await f.broker.produce(try QueueName("b"), values("1"), producer: ProducerStamp(producer: producer, firstSequence: 0))
        _ = try await f.broker.send(try QueueName("q"), [OutgoingMessage(body: [1])], producer: ProducerStamp(producer: producer, firstSequence: 0))
        _ = try await f.broker.produce(try QueueName("a"), values("3"), producer: ProducerStamp(producer: producer, firstSequence: 2))
        #expect(try stored(f, "a") == 3)
        #expect(try stored(f, "b") == 1)
    }

    @Test func fencedEpoch_cannotProduce_andStateSurvivesARestart() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t")
        let old = try await f.broker.initProducer(transactionalID: "p")
        let first = try await f.broker.produce(try QueueName("t"), values("a"), producer: ProducerStamp(producer: old, firstSequence: 0))
        try await f.reopen()
        let retry = try await f.broker.produce(try QueueName("t"), values("a"), producer: ProducerStamp(producer: old, firstSequence: 0))
        #expect(retry.duplicate)
        #expect(retry.offsets == first.offsets)
        let new = try await f.broker.initProducer(transactionalID: "p")
        do {
            _ = try await f.broker.produce(try QueueName("t"), values("b"), producer: ProducerStamp(producer: old, firstSequence: 1))
            Issue.record("a fenced producer produced")
        } catch {
            #expect(error.code == .producerFenced)
        }
        _ = try await f.broker.produce(try QueueName("t"), values("b"), producer: ProducerStamp(producer: new, firstSequence: 0))
        #expect(try stored(f, "t") == 2)
    }
}
