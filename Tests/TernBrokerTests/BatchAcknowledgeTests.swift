import Testing
import TernBroker
import TernCore
import TernTestKit

/// Acknowledging a batch of receipt handles in one transaction, each answered on its own.
@Suite struct BatchAcknowledgeTests {
    @Test func eachHandleAnswersOnItsOwn_inRequestOrder() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        try await f.send("q", ["a", "b", "c"])
        let received = try await f.receive("q", max: 3)
        let superseded = try await f.receive("q", max: 10)   // nothing left: the three are in flight
        #expect(superseded.isEmpty)
        let handles = [received[0].receiptHandle, "not-a-handle", received[1].receiptHandle, received[0].receiptHandle]
        let results = try await f.broker.acknowledge(try QueueName("q"), receiptHandles: handles)
        #expect(results.map { $0?.code } == [nil, .invalidReceiptHandle, nil, .receiptHandleStale])
        #expect(try f.counts("q").total == 1, "c is still in flight")
        #expect(try f.counts("q").inFlight == 1)
    }

    @Test func missingQueue_failsTheBatch_andTooManyHandlesAreRefused() async throws {
        let f = try await BrokerFixture()
        await #expect(throws: TernError.self) { _ = try await f.broker.acknowledge(try QueueName("nope"), receiptHandles: ["x"]) }
        try await f.createQueue("q")
        do {
            _ = try await f.broker.acknowledge(try QueueName("q"), receiptHandles: Array(repeating: "x", count: 1001))
            Issue.record("1,001 handles accepted")
        } catch {
            #expect(error.code == .invalidParameter)
        }
    }
}
