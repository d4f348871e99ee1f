import Testing
import TernBroker
import TernCore
import TernTestKit

/// A queue group's state adopts producers the data group issued (decision 141): the rules a
/// Kafka partition leader applies to producer ids it has not seen (KIP-360).
@Suite struct AdoptedProducerTests {
    /// A fixture's storage driven by a state machine that adopts producer ids, as every replica
    /// of a queue group applies its log.
    struct Group {
        let fixture: BrokerFixture
        let machine: StateMachine

        init() async throws {
            fixture = try await BrokerFixture()
            machine = StateMachine(storage: fixture.storage, producerIDs: .adopted)
            try await fixture.createQueue("q")
        }

        func apply(_ command: Command) async throws -> CommandResult {
            let envelope = CommandEnvelope(time: fixture.clock.now, command: command)
            let machine = self.machine
            return try await fixture.storage.write { txn in try machine.apply(envelope, in: txn) }.result
        }

        func send(_ body: String, producer: UInt64, epoch: UInt32, sequence: UInt64) async throws -> (ids: [MessageID], duplicate: Bool) {
            let stamp = ProducerStamp(producer: ProducerIdentity(producerID: producer, epoch: epoch), firstSequence: sequence)
            let result = try await apply(.sendIdempotent(try QueueName("q"), [OutgoingMessage(body: Array(body.utf8))], stamp: stamp,
                                                         idSeed: sequence &+ 1_000 &* UInt64(epoch + 1)))
            guard case .sent(let sent, let duplicate, _) = result else { throw TernError(.internalError, "\(result)") }
            return (sent.map(\.id), duplicate)
        }

        func commit(_ body: String, producer: UInt64, epoch: UInt32, sequence: UInt64?) async throws -> Bool {
            let send = TransactionCommand.Send(queue: try QueueName("q"), messages: [OutgoingMessage(body: Array(body.utf8))], idSeed: 7)
            let result = try await apply(.commitTransaction(TransactionCommand(
                producer: ProducerIdentity(producerID: producer, epoch: epoch), sequence: sequence, acknowledgements: [],
                sends: [send], produces: [], offsets: [])))
            guard case .transaction(let outcome, _, _) = result else { throw TernError(.internalError, "\(result)") }
            return outcome.duplicate
        }

        var ready: UInt64 { get throws { try fixture.counts("q").ready } }
    }

    func code(_ body: () async throws -> Void) async -> ErrorCode? {
        do { try await body(); return nil } catch { return (error as? TernError)?.code }
    }

    @Test func anUnseenProducer_startingAtSequence0_isAdopted_andItsRetriesAreDeduplicated() async throws {
        let g = try await Group()
        let first = try await g.send("a", producer: 42, epoch: 3, sequence: 0)
        #expect(!first.duplicate)
        let retry = try await g.send("a", producer: 42, epoch: 3, sequence: 0)
        #expect(retry.duplicate)
        #expect(retry.ids == first.ids)
        #expect(try await g.send("b", producer: 42, epoch: 3, sequence: 1).duplicate == false)
        #expect(try g.ready == 2)
        #expect(await code { _ = try await g.send("x", producer: 42, epoch: 3, sequence: 5) } == .outOfOrderSequence)
        #expect(try g.ready == 2)
    }

    @Test func anUnseenProducer_inTheMiddleOfItsStream_isUnknown_andStoresNothing() async throws {
        let g = try await Group()
        #expect(await code { _ = try await g.send("a", producer: 42, epoch: 0, sequence: 7) } == .unknownProducer)
        #expect(try g.ready == 0)
        // The machine that issues ids refuses even sequence 0 of an id it never issued.
        let issuing = StateMachine(storage: g.fixture.storage)
        let envelope = CommandEnvelope(time: g.fixture.clock.now, command: .sendIdempotent(
            try QueueName("q"), [OutgoingMessage(body: [1])], stamp: ProducerStamp(producer: ProducerIdentity(producerID: 99, epoch: 0), firstSequence: 0),
            idSeed: 1))
        #expect(await code { _ = try await g.fixture.storage.write { txn in try issuing.apply(envelope, in: txn) } } == .unknownProducer)
        #expect(try g.ready == 0)
    }

    @Test func aNewerEpoch_replacesTheRecord_andFencesTheOlderOne() async throws {
        let g = try await Group()
        _ = try await g.send("a", producer: 42, epoch: 0, sequence: 0)
        _ = try await g.send("b", producer: 42, epoch: 0, sequence: 1)
        // A newer epoch must start its stream again.
        #expect(await code { _ = try await g.send("c", producer: 42, epoch: 1, sequence: 2) } == .unknownProducer)
        _ = try await g.send("c", producer: 42, epoch: 1, sequence: 0)
        #expect(await code { _ = try await g.send("d", producer: 42, epoch: 0, sequence: 2) } == .producerFenced)
        #expect(await code { _ = try await g.commit("e", producer: 42, epoch: 0, sequence: 1) } == .producerFenced)
        #expect(try g.ready == 3)
    }

    @Test func transactions_seeOnlyTheirOwnSequences_soGapsAreAccepted_butOlderOnesAreNot() async throws {
        let g = try await Group()
        // The producer's transactions 1–4 went to other groups.
        #expect(try await g.commit("t5", producer: 8, epoch: 2, sequence: 5) == false)
        #expect(try await g.commit("t5", producer: 8, epoch: 2, sequence: 5) == true, "a retry is answered, not applied")
        #expect(try await g.commit("t9", producer: 8, epoch: 2, sequence: 9) == false)
        #expect(await code { _ = try await g.commit("t7", producer: 8, epoch: 2, sequence: 7) } == .invalidTransaction)
        #expect(try g.ready == 2)
        // A new epoch starts the count again.
        #expect(try await g.commit("n1", producer: 8, epoch: 3, sequence: 1) == false)
        #expect(try g.ready == 3)
    }
}
