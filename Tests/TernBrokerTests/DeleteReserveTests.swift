import Testing
import TernBroker
import TernCore
import TernStorage
import TernTestKit

/// Issue 14, item 2: once the map reaches its delete reserve, every command that adds records is
/// refused before it can eat the reserve, while acknowledgements, visibility changes, purges,
/// deletes, due work and a restart keep working; freed space takes sends again.
@Suite struct DeleteReserveTests {
    static var smallMap: Storage.Settings {
        var settings = BrokerFixture.fastSettings
        settings.maxMapBytes = 8 << 20
        return settings
    }

    static func isFull(_ error: any Error) -> Bool { (error as? TernError)?.code == .storageFull }

    @Test func fullMap_refusesEveryGrowingCommand_andKeepsTheOnesThatFreeSpace() async throws {
        let f = try await BrokerFixture(settings: Self.smallMap)
        try await f.createQueue("jobs")
        try await f.createTopic("t")
        let body = String(repeating: "x", count: 8 << 10)
        var sent = 0
        fill: while true {
            do {
                try await f.send("jobs", Array(repeating: body, count: 10))
                sent += 10
            } catch {
                #expect(Self.isFull(error), "\(error)")
                break fill
            }
        }
        #expect(sent > 100)
        let received = try await f.receive("jobs", max: 5)
        #expect(received.count == 5)

        // Everything that adds records is refused, and stores nothing.
        let name = try QueueName("another")
        await #expect(throws: TernError.self) { _ = try await f.broker.createOrUpdateQueue(name, patch: .init()) }
        await #expect(throws: TernError.self) { _ = try await f.broker.initProducer(transactionalID: "tx") }
        await #expect(throws: TernError.self) { _ = try await f.broker.joinGroup(try QueueName("t"), group: try QueueName("g")) }
        await #expect(throws: TernError.self) { _ = try await f.broker.createOrUpdateTopic(try QueueName("t2"), patch: .init()) }
        await #expect(throws: TernError.self) { _ = try await f.broker.produce(try QueueName("t"), [TopicMessage(value: Array(body.utf8))]) }
        #expect(throws: TernError.self) { _ = try f.broker.describeQueue(name) }
        #expect(try f.broker.listTopics().map(\.name.rawValue) == ["t"])

        // What frees space, or only rewrites, works: visibility, acknowledgements, due work,
        // purge, delete, and a restart at the same map size.
        try await f.broker.changeVisibility(try QueueName("jobs"), receiptHandle: received[0].receiptHandle, timeout: 0)
        try await f.broker.acknowledge(try QueueName("jobs"), receiptHandle: received[1].receiptHandle)
        f.clock.advance(bySeconds: 60)
        _ = try await f.broker.runDueWork()
        try await f.reopen()
        let purged = try await f.broker.purgeQueue(try QueueName("jobs"))
        #expect(purged == sent - 1)
        try await f.broker.deleteQueue(try QueueName("jobs"))
        while try await f.broker.runDueWork().more {}

        // Freed pages take sends again.
        try await f.createQueue("again")
        try await f.send("again", Array(repeating: body, count: 10))
        #expect(try f.counts("again").ready == 10)
    }

    /// Start-up and maintenance never wedge on a full map (issue 14, item 2): when thousands of
    /// dead-letter moves are due at open on a map filled to its reserve, the broker opens anyway,
    /// due work goes on in smaller rounds, and acks and purges work meanwhile.
    @Test func openingWithHeavyDueWork_onAFullMap_neverFails() async throws {
        let f = try await BrokerFixture(settings: Self.smallMap)
        try await f.createQueue("dlq")
        try await f.createQueue("jobs") { $0.maxReceiveCount = 1; $0.deadLetterQueue = try! QueueName("dlq"); $0.visibilityTimeout = 1 }
        try await f.createQueue("filler")
        let small = String(repeating: "m", count: 200)
        var sent = 0
        do {
            while sent < 12_000 {
                try await f.send("jobs", Array(repeating: small, count: 500))
                sent += 500
            }
        } catch {
            #expect(Self.isFull(error), "\(error)")
        }
        var inFlight = 0
        while inFlight < sent {
            let got = try await f.receive("jobs", max: 1000)
            if got.isEmpty { break }
            inFlight += got.count
        }
        let body = String(repeating: "x", count: 4 << 10)
        do {
            while true { try await f.send("filler", Array(repeating: body, count: 4)) }
        } catch {
            #expect(Self.isFull(error), "\(error)")
        }
        f.clock.advance(bySeconds: 5)
        try await f.reopen()   // due at open: every in-flight message moves to the dead-letter queue
        var rounds = 0
        while rounds < 200 {
            rounds += 1
            do {
                if try await f.broker.runDueWork().more { continue }
                break
            } catch {
                #expect(Self.isFull(error), "\(error)")
                _ = try await f.broker.purgeQueue(try QueueName("filler"))   // what an operator does: free space
            }
        }
        #expect(try f.counts("dlq").ready + f.counts("jobs").ready == UInt64(inFlight), "every due message was handled, none lost")
        #expect(try f.counts("jobs").inFlight == 0)
    }
}
