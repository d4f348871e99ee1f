import Testing
import TernBroker
import TernCore
import TernTestKit

@Suite struct ProducerTests {
    func stamp(_ identity: ProducerIdentity, _ sequence: UInt64) -> ProducerStamp {
        ProducerStamp(producer: identity, firstSequence: sequence)
    }

    func messages(_ bodies: String...) -> [OutgoingMessage] { bodies.map { OutgoingMessage(body: Array($0.utf8)) } }

    @Test func resentBatch_afterALostResponse_isStoredOnce_andAnsweredWithTheOriginalResult() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        let producer = try await f.broker.initProducer(transactionalID: nil)
        let first = try await f.broker.send(try QueueName("q"), messages("a", "b"), producer: stamp(producer, 0))
        #expect(!first.duplicate)
        // The response was lost; the client sends the same batch again.
        let retry = try await f.broker.send(try QueueName("q"), messages("a", "b"), producer: stamp(producer, 0))
        #expect(retry.duplicate)
        #expect(retry.sent.map(\.id) == first.sent.map(\.id))
        #expect(retry.sent.map(\.sequence) == first.sent.map(\.sequence))
        #expect(try f.counts("q").ready == 2)
        let next = try await f.broker.send(try QueueName("q"), messages("c"), producer: stamp(producer, 2))
        #expect(!next.duplicate)
        #expect(try f.counts("q").ready == 3)
    }

    @Test func sequenceGap_isOutOfOrderSequence_andStoresNothing() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        let producer = try await f.broker.initProducer(transactionalID: nil)
        _ = try await f.broker.send(try QueueName("q"), messages("a"), producer: stamp(producer, 0))
        await #expect(throws: TernError(.outOfOrderSequence, "producer \(producer.producerID) on queue q: expected sequence 1, got 5")) {
            _ = try await f.broker.send(try QueueName("q"), messages("x"), producer: stamp(producer, 5))
        }
        #expect(try f.counts("q").ready == 1)
    }

    @Test func sequences_arePerQueue() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("a")
        try await f.createQueue("b")
        let producer = try await f.broker.initProducer(transactionalID: nil)
        _ = try await f.broker.send(try QueueName("a"), messages("1", "2"), producer: stamp(producer, 0))
        _ = try await f.broker.send(try QueueName("b"), messages("1"), producer: stamp(producer, 0))
        _ = try await f.broker.send(try QueueName("a"), messages("3"), producer: stamp(producer, 2))
        #expect(try f.counts("a").ready == 3)
        #expect(try f.counts("b").ready == 1)
    }

    @Test func olderEpoch_isFenced_afterANewProducerWithTheSameTransactionalID() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        let old = try await f.broker.initProducer(transactionalID: "pipeline")
        let new = try await f.broker.initProducer(transactionalID: "pipeline")
        #expect(new.producerID == old.producerID)
        #expect(new.epoch == old.epoch + 1)
        do {
            _ = try await f.broker.send(try QueueName("q"), messages("a"), producer: stamp(old, 0))
            Issue.record("the fenced producer could send")
        } catch {
            #expect(error.code == .producerFenced)
        }
        _ = try await f.broker.send(try QueueName("q"), messages("a"), producer: stamp(new, 0))
        #expect(try f.counts("q").ready == 1)
    }

    @Test func producerState_survivesARestart() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        let producer = try await f.broker.initProducer(transactionalID: nil)
        let first = try await f.broker.send(try QueueName("q"), messages("a"), producer: stamp(producer, 0))
        try await f.reopen()
        let retry = try await f.broker.send(try QueueName("q"), messages("a"), producer: stamp(producer, 0))
        #expect(retry.duplicate)
        #expect(retry.sent.map(\.id) == first.sent.map(\.id))
        #expect(try f.counts("q").ready == 1)
    }

    @Test func idleProducer_expires_andIsThenUnknown() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        let idle = try await f.broker.initProducer(transactionalID: "t")
        f.clock.advance(bySeconds: 100)
        let busy = try await f.broker.initProducer(transactionalID: nil)
        f.clock.advance(bySeconds: 50)
        #expect(try await f.broker.expireProducers(idleSeconds: 120) == 1)
        do {
            _ = try await f.broker.send(try QueueName("q"), messages("a"), producer: stamp(idle, 0))
            Issue.record("expired producer could send")
        } catch {
            #expect(error.code == .unknownProducer)
        }
        _ = try await f.broker.send(try QueueName("q"), messages("a"), producer: stamp(busy, 0))
        // The transactional id is free again: a new producer id at epoch 0.
        let again = try await f.broker.initProducer(transactionalID: "t")
        #expect(again.producerID != idle.producerID)
        #expect(again.epoch == 0)
    }
}

@Suite struct TransactionTests {
    @Test func commit_appliesAcksAndSendsTogether() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("in")
        try await f.createQueue("out")
        try await f.send("in", ["x", "y"])
        let received = try await f.receive("in", max: 2)
        let producer = try await f.broker.initProducer(transactionalID: "t")
        var transaction = ProducerTransaction(producer: producer, sequence: 1)
        for message in received {
            transaction.acknowledge(try QueueName("in"), receiptHandle: message.receiptHandle)
        }
        transaction.send(try QueueName("out"), received.map { OutgoingMessage(body: Array($0.text.uppercased().utf8)) })
        let result = try await f.broker.commit(transaction)
        #expect(result.sent.first?.count == 2)
        #expect(try f.counts("in").total == 0)
        #expect(try await f.receive("out", max: 10).map(\.text) == ["X", "Y"])
    }

    @Test func commit_withOneStaleHandle_appliesNothing() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("in")
        try await f.createQueue("out")
        try await f.send("in", ["x", "y"])
        let received = try await f.receive("in", max: 2, visibilityTimeout: 0)
        _ = try await f.receive("in", max: 1)   // supersedes the handle of "x"
        let producer = try await f.broker.initProducer(transactionalID: "t")
        var transaction = ProducerTransaction(producer: producer, sequence: 1)
        transaction.acknowledge(try QueueName("in"), receiptHandle: received[1].receiptHandle)
        transaction.acknowledge(try QueueName("in"), receiptHandle: received[0].receiptHandle)
        transaction.send(try QueueName("out"), [OutgoingMessage(body: Array("X".utf8))])
        do {
            _ = try await f.broker.commit(transaction)
            Issue.record("committed with a stale handle")
        } catch {
            #expect(error.code == .receiptHandleStale)
        }
        #expect(try f.counts("out").total == 0, "no send of the failed transaction is visible")
        #expect(try f.counts("in").total == 2, "no ack of the failed transaction was applied")
        // The failed commit did not use up its sequence.
        var retry = ProducerTransaction(producer: producer, sequence: 1)
        retry.send(try QueueName("out"), [OutgoingMessage(body: Array("X".utf8))])
        _ = try await f.broker.commit(retry)
        #expect(try f.counts("out").ready == 1)
    }

    @Test func retriedCommit_isAppliedOnce() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("out")
        let producer = try await f.broker.initProducer(transactionalID: "t")
        var transaction = ProducerTransaction(producer: producer, sequence: 1)
        transaction.send(try QueueName("out"), [OutgoingMessage(body: Array("a".utf8))])
        let first = try await f.broker.commit(transaction)
        let retry = try await f.broker.commit(transaction)
        #expect(retry.duplicate)
        #expect(retry.sent.map { $0.map(\.id) } == first.sent.map { $0.map(\.id) })
        #expect(try f.counts("out").ready == 1)
        var skipped = ProducerTransaction(producer: producer, sequence: 5)
        skipped.send(try QueueName("out"), [OutgoingMessage(body: Array("b".utf8))])
        do { _ = try await f.broker.commit(skipped); Issue.record("committed") } catch { #expect(error.code == .invalidTransaction) }
    }

    @Test func fencedProducer_cannotCommit() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("out")
        let old = try await f.broker.initProducer(transactionalID: "t")
        _ = try await f.broker.initProducer(transactionalID: "t")
        var transaction = ProducerTransaction(producer: old, sequence: 1)
        transaction.send(try QueueName("out"), [OutgoingMessage(body: Array("a".utf8))])
        do { _ = try await f.broker.commit(transaction); Issue.record("committed") } catch { #expect(error.code == .producerFenced) }
        #expect(try f.counts("out").total == 0)
    }
}
