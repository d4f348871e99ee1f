import Testing
import TernBroker
import TernCore
import TernStorage
import TernTestKit

extension BrokerFixture {
    @discardableResult
    func createFifo(_ name: String, _ configure: (inout QueueAttributes.Patch) -> Void = { _ in }) async throws -> QueueInfo {
        try await createQueue(name) { patch in
            patch.fifo = true
            configure(&patch)
        }
    }

    /// Sends `bodies` to a FIFO queue in `group`, each with its body as deduplication id unless `dedup` is given.
    @discardableResult
    func sendFifo(_ queue: String, group: String, _ bodies: [String], dedup: String? = nil) async throws -> [SentMessage] {
        try await broker.send(try QueueName(queue), bodies.map {
            OutgoingMessage(body: Array($0.utf8), groupID: group, deduplicationID: dedup ?? $0)
        })
    }
}

@Suite struct FifoTests {
    @Test func groupOrder_isKept_underRedelivery_andTheExpiredMessageComesBackFirst() async throws {
        let f = try await BrokerFixture()
        try await f.createFifo("q.fifo") { $0.visibilityTimeout = 30 }
        try await f.sendFifo("q.fifo", group: "g", ["g1", "g2", "g3"])
        let first = try await f.receive("q.fifo", max: 1)
        #expect(first.map(\.text) == ["g1"])
        #expect(try await f.receive("q.fifo", max: 10).isEmpty, "g is locked while g1 is in flight")
        f.clock.advance(bySeconds: 30)
        let again = try await f.receive("q.fifo", max: 10)
        #expect(again.map(\.text) == ["g1", "g2", "g3"], "g1 is redelivered before the later messages of its group")
        #expect(again[0].receiveCount == 2)
    }

    @Test func inFlightGroupLock_blocksOnlyItsOwnGroup() async throws {
        let f = try await BrokerFixture()
        try await f.createFifo("q.fifo")
        try await f.sendFifo("q.fifo", group: "a", ["a1", "a2"])
        try await f.sendFifo("q.fifo", group: "b", ["b1", "b2"])
        let first = try await f.receive("q.fifo", max: 1)
        #expect(first.map(\.text) == ["a1"])
        let second = try await f.receive("q.fifo", max: 10)
        #expect(second.map(\.text) == ["b1", "b2"], "b keeps flowing while a is locked")
        try await f.broker.acknowledge(try QueueName("q.fifo"), receiptHandle: first[0].receiptHandle)
        #expect(try await f.receive("q.fifo", max: 10).map(\.text) == ["a2"])
        // Releasing b1 (visibility 0) unlocks nothing while b2 is still in flight.
        try await f.broker.changeVisibility(try QueueName("q.fifo"), receiptHandle: second[0].receiptHandle, timeout: 0)
        #expect(try await f.receive("q.fifo", max: 10).isEmpty)
        try await f.broker.changeVisibility(try QueueName("q.fifo"), receiptHandle: second[1].receiptHandle, timeout: 0)
        #expect(try await f.receive("q.fifo", max: 10).map(\.text) == ["b1", "b2"])
    }

    @Test func duplicate_returnsTheOriginalId_andStoresNothing_withinFiveMinutes() async throws {
        let f = try await BrokerFixture()
        try await f.createFifo("q.fifo")
        let original = try await f.sendFifo("q.fifo", group: "g", ["hello"], dedup: "d-1")
        f.clock.advance(bySeconds: 299)
        let again = try await f.sendFifo("q.fifo", group: "g", ["something else"], dedup: "d-1")
        #expect(again[0].duplicate)
        #expect(again[0].id == original[0].id)
        #expect(try f.counts("q.fifo").total == 1)
        // The window counts from the first acceptance, whatever happens to the message.
        _ = try await f.receive("q.fifo", autoAck: true)
        f.clock.advance(bySeconds: 1)
        let later = try await f.sendFifo("q.fifo", group: "g", ["hello"], dedup: "d-1")
        #expect(!later[0].duplicate)
        #expect(later[0].id != original[0].id)
    }

    @Test func dedupWindow_survivesARestart() async throws {
        let f = try await BrokerFixture()
        try await f.createFifo("q.fifo")
        let original = try await f.sendFifo("q.fifo", group: "g", ["x"], dedup: "d")
        f.clock.advance(bySeconds: 120)
        try await f.reopen()
        let duplicate = try await f.sendFifo("q.fifo", group: "g", ["x"], dedup: "d")
        #expect(duplicate[0].duplicate)
        #expect(duplicate[0].id == original[0].id)
        f.clock.advance(bySeconds: 180)
        try await f.reopen()  // the sweep at start-up forgets it
        #expect(try await f.sendFifo("q.fifo", group: "g", ["x"], dedup: "d")[0].duplicate == false)
        #expect(try f.counts("q.fifo").total == 2)
    }

    @Test func duplicatesWithinOneBatch_storeTheFirstOnly() async throws {
        let f = try await BrokerFixture()
        try await f.createFifo("q.fifo") { $0.contentBasedDeduplication = true }
        let sent = try await f.broker.send(try QueueName("q.fifo"), ["same", "same", "other"].map {
            OutgoingMessage(body: Array($0.utf8), groupID: "g")
        })
        #expect(sent.map(\.duplicate) == [false, true, false])
        #expect(sent[1].id == sent[0].id)
        #expect(try f.counts("q.fifo").total == 2)
    }

    @Test func fifoFields_areRequiredOnFifoQueues_andRefusedElsewhere() async throws {
        let f = try await BrokerFixture()
        try await f.createFifo("q.fifo")
        try await f.createQueue("std")
        let cases: [(String, OutgoingMessage)] = [
            ("q.fifo", OutgoingMessage(body: [1], deduplicationID: "d")),  // no group
            ("q.fifo", OutgoingMessage(body: [1], groupID: "g")),  // no dedup id, no content-based dedup
            ("q.fifo", OutgoingMessage(body: [1], priority: 3, groupID: "g", deduplicationID: "d")),
            ("q.fifo", OutgoingMessage(body: [1], delay: 5, groupID: "g", deduplicationID: "d")),
            ("std", OutgoingMessage(body: [1], groupID: "g")),
        ]
        for (queue, message) in cases {
            await #expect(throws: TernError.self, "\(queue) \(message)") { try await f.broker.send(try QueueName(queue), [message]) }
        }
        #expect(try f.counts("q.fifo").total == 0)
        #expect(try f.counts("std").total == 0)
    }

    @Test func deadLettering_keepsGroupOrderForTheRemainingMessages() async throws {
        let f = try await BrokerFixture()
        try await f.createFifo("dlq.fifo")
        try await f.createFifo("q.fifo") {
            $0.maxReceiveCount = 2
            $0.deadLetterQueue = try! QueueName("dlq.fifo")
            $0.visibilityTimeout = 10
        }
        try await f.sendFifo("q.fifo", group: "g", ["g1", "g2", "g3"])
        for _ in 0..<2 {
            #expect(try await f.receive("q.fifo", max: 1).map(\.text) == ["g1"])
            f.clock.advance(bySeconds: 10)
        }
        // g1 used up its receives and moved to the DLQ; g2 is next, then g3.
        let rest = try await f.receive("q.fifo", max: 1)
        #expect(rest.map(\.text) == ["g2"])
        #expect(try await f.receive("q.fifo", max: 10).isEmpty, "g2 in flight locks g")
        try await f.broker.acknowledge(try QueueName("q.fifo"), receiptHandle: rest[0].receiptHandle)
        #expect(try await f.receive("q.fifo", max: 10).map(\.text) == ["g3"])
        let dead = try await f.receive("dlq.fifo", max: 10)
        #expect(dead.map(\.text) == ["g1"])
        // The group travels with the message: in the DLQ g1 locks its group too.
        try await f.sendFifo("dlq.fifo", group: "g", ["late"])
        #expect(try await f.receive("dlq.fifo", max: 10).isEmpty)
    }

    @Test func purgeAndAck_releaseGroupLocks() async throws {
        let f = try await BrokerFixture()
        try await f.createFifo("q.fifo")
        try await f.sendFifo("q.fifo", group: "g", ["a"])
        _ = try await f.receive("q.fifo", max: 1)
        _ = try await f.broker.purgeQueue(try QueueName("q.fifo"))
        try await f.sendFifo("q.fifo", group: "g", ["b"])
        #expect(try await f.receive("q.fifo", max: 1).map(\.text) == ["b"])
    }
}

@Suite struct QueueOverflowTests {
    @Test func dropOldest_makesRoom_byDeletingTheOldestMessages() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q") {
            $0.maxMessages = 3
            $0.overflow = .dropOldest
        }
        try await f.send("q", ["1", "2", "3"])
        try await f.send("q", ["4", "5"])
        #expect(try f.counts("q").total == 3)
        #expect(try await f.receive("q", max: 10).map(\.text) == ["3", "4", "5"])
    }

    @Test func dropOldest_byBytes_andABatchThatCannotFitIsStillRejected() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q") {
            $0.maxBytes = 10
            $0.overflow = .dropOldest
        }
        try await f.send("q", ["aaaa", "bbbb"])
        try await f.send("q", ["cccc"])
        #expect(try f.counts("q").bytes == 8)
        await #expect(throws: TernError(.queueFull, "queue q holds 8 bytes, max_bytes is 10")) {
            try await f.send("q", ["01234567890"])
        }
        #expect(try await f.receive("q", max: 10).map(\.text) == ["bbbb", "cccc"])
    }

    @Test func reject_isTheDefault_andStoresNothing() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q") { $0.maxMessages = 2 }
        try await f.send("q", ["1"])
        await #expect(throws: TernError.self) { try await f.send("q", ["2", "3"]) }
        #expect(try f.counts("q").total == 1)
    }

    @Test func overflowAndContentBasedDedup_surviveARestart() async throws {
        let f = try await BrokerFixture()
        try await f.createFifo("q.fifo") {
            $0.contentBasedDeduplication = true
            $0.overflow = .dropOldest
            $0.maxMessages = 5
        }
        try await f.reopen()
        let attributes = try f.broker.describeQueue(try QueueName("q.fifo")).attributes
        #expect(attributes.contentBasedDeduplication)
        #expect(attributes.overflow == .dropOldest)
    }
}

@Suite struct ContentHashTests {
    /// FIPS 180-2 appendix B test vectors, through content-based deduplication ids.
    @Test func contentBasedDeduplicationIds_areSHA256OfTheBody() async throws {
        let f = try await BrokerFixture()
        try await f.createFifo("q.fifo") { $0.contentBasedDeduplication = true }
        let a = try await f.broker.send(try QueueName("q.fifo"), [OutgoingMessage(body: Array("abc".utf8), groupID: "g")])
        // The same body with the explicit SHA-256 id is a duplicate of the content-based one.
        let explicit = try await f.broker.send(try QueueName("q.fifo"), [OutgoingMessage(
            body: Array("xyz".utf8), groupID: "g",
            deduplicationID: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")])
        #expect(explicit[0].duplicate)
        #expect(explicit[0].id == a[0].id)
        let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        let b = try await f.broker.send(try QueueName("q.fifo"), [OutgoingMessage(body: long, groupID: "g")])
        let check = try await f.broker.send(try QueueName("q.fifo"), [OutgoingMessage(
            body: [1], groupID: "g", deduplicationID: "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")])
        #expect(check[0].id == b[0].id)
    }
}
