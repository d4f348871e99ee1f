import Testing
import TernBroker
import TernCore
import TernStorage
import TernTestKit

/// A receive that does not acknowledge commits its state change in the writer and reads the
/// bodies afterwards, in a read transaction (``QueueStore/bodies(of:queue:in:)``). What a
/// consumer relies on: it gets every body it was delivered, and never a message whose delivery
/// was superseded between the commit and that read.
@Suite struct DeferredBodyTests {
    private func receive(_ fixture: BrokerFixture, at milliseconds: UInt64, visibility: Int, seed: UInt64) async throws
        -> (messages: [ReceivedMessage], queue: UInt32)
    {
        let machine = fixture.broker.machine
        let envelope = CommandEnvelope(time: Timestamp(milliseconds: milliseconds), command: .receive(
            try QueueName("q"), maxMessages: 10, visibilityTimeout: visibility, autoAcknowledge: false, nonceSeed: seed))
        let outcome = try await fixture.storage.write { txn in try machine.apply(envelope, in: txn) }
        guard case .received(let messages, let queue) = outcome.result else { throw TernError(.internalError, "not a receive") }
        return (messages, queue)
    }

    @Test func bodiesReadAfterTheCommit_areTheOnesSent_withTheirAttributes() async throws {
        let fixture = try await BrokerFixture()
        try await fixture.createQueue("q")
        let attributes = [MessageAttribute(name: "kind", dataType: "String", value: Array("order".utf8))]
        _ = try await fixture.broker.send(try QueueName("q"), [OutgoingMessage(body: Array("first".utf8), attributes: attributes),
                                                                OutgoingMessage(body: Array("second".utf8))])
        let now = fixture.clock.now.milliseconds
        let (delivered, queue) = try await receive(fixture, at: now, visibility: 30, seed: 1)
        #expect(delivered.count == 2)
        #expect(delivered.allSatisfy { $0.body.isEmpty }, "the writer no longer reads bodies of a receive that keeps them")
        let complete = try fixture.storage.read { txn in try fixture.broker.machine.queues.bodies(of: delivered, queue: queue, in: txn) }
        #expect(complete.map(\.text) == ["first", "second"])
        #expect(complete[0].attributes == attributes)
        #expect(complete.map(\.receiptHandle) == delivered.map(\.receiptHandle))
    }

    @Test func aDeliverySupersededBeforeTheRead_isLeftOut() async throws {
        let fixture = try await BrokerFixture()
        try await fixture.createQueue("q")
        try await fixture.send("q", ["only"])
        let now = fixture.clock.now.milliseconds
        // Visibility timeout 0: the message is visible again at once, and a second receive
        // (another consumer) takes it before the first one read its body.
        let (first, queue) = try await receive(fixture, at: now, visibility: 0, seed: 1)
        let (second, _) = try await receive(fixture, at: now + 1, visibility: 30, seed: 2)
        #expect(first.count == 1 && second.count == 1)
        let read = { (messages: [ReceivedMessage]) in
            try fixture.storage.read { txn in try fixture.broker.machine.queues.bodies(of: messages, queue: queue, in: txn) }
        }
        #expect(try read(first).isEmpty, "the first delivery's handle is stale: it must not be handed out")
        #expect(try read(second).map(\.text) == ["only"])
        // Acknowledged before the read: gone too.
        try await fixture.broker.acknowledge(try QueueName("q"), receiptHandle: second[0].receiptHandle)
        #expect(try read(second).isEmpty)
    }

    @Test func aDeliveryWhoseVisibilityMerelyExpired_isStillHandedOut_andItsHandleAcknowledges() async throws {
        let fixture = try await BrokerFixture()
        try await fixture.createQueue("q")
        try await fixture.send("q", ["back"])
        let now = fixture.clock.now.milliseconds
        let (first, queue) = try await receive(fixture, at: now, visibility: 0, seed: 1)
        // Due work returns it to ready before the bodies are read; nobody received it since.
        let machine = fixture.broker.machine
        let tick = CommandEnvelope(time: Timestamp(milliseconds: now + 1), command: .tick(limit: 100))
        _ = try await fixture.storage.write { txn in try machine.apply(tick, in: txn) }
        #expect(try fixture.counts("q").ready == 1)
        let complete = try fixture.storage.read { txn in try machine.queues.bodies(of: first, queue: queue, in: txn) }
        #expect(complete.map(\.text) == ["back"])
        try await fixture.broker.acknowledge(try QueueName("q"), receiptHandle: complete[0].receiptHandle)
        #expect(try fixture.counts("q").total == 0)
    }

    @Test func broker_receive_deliversBodies_andAutoAcknowledgeStillWorks() async throws {
        let fixture = try await BrokerFixture()
        try await fixture.createQueue("q")
        try await fixture.send("q", ["a", "b", "c"])
        #expect(try await fixture.receive("q", max: 2).map(\.text) == ["a", "b"])
        #expect(try await fixture.receive("q", max: 2, autoAck: true).map(\.text) == ["c"])
    }
}
