import Testing
import TernBroker
import TernCore
import TernStorage
import TernTestKit

@Suite struct PriorityAndDelayTests {
    @Test func receive_deliversHigherPriorityFirst_andSendOrderWithinPriority() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        try await f.send("q", ["low-1"], priority: 0)
        try await f.send("q", ["high-1"], priority: 9)
        try await f.send("q", ["mid-1"], priority: 5)
        try await f.send("q", ["high-2"], priority: 9)
        try await f.send("q", ["low-2"], priority: 0)
        let received = try await f.receive("q", max: 10)
        #expect(received.map(\.text) == ["high-1", "high-2", "mid-1", "low-1", "low-2"])
        #expect(received.map(\.priority) == [9, 9, 5, 0, 0])
    }

    @Test func releasedMessage_keepsItsPriority() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        try await f.send("q", ["urgent"], priority: 8)
        let first = try await f.receive("q", max: 1)
        try await f.send("q", ["normal"], priority: 1)
        try await f.broker.changeVisibility(try QueueName("q"), receiptHandle: first[0].receiptHandle, timeout: 0)
        let again = try await f.receive("q", max: 2)
        #expect(again.map(\.text) == ["urgent", "normal"])
        #expect(again[0].priority == 8)
        #expect(again[0].receiveCount == 2)
    }

    @Test func delayedMessages_becomeReceivableAtTheirOwnDueTime_independentOfSendOrder() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        try await f.send("q", ["late"], delay: 60)
        try await f.send("q", ["early"], delay: 10)
        try await f.send("q", ["now"])
        #expect(try await f.receive("q", autoAck: true).map(\.text) == ["now"])
        #expect(try f.counts("q").delayed == 2)
        f.clock.advance(bySeconds: 9)
        #expect(try await f.receive("q").isEmpty)
        f.clock.advance(bySeconds: 1)
        #expect(try await f.receive("q", autoAck: true).map(\.text) == ["early"])
        f.clock.advance(bySeconds: 49)
        #expect(try await f.receive("q").isEmpty)
        f.clock.advance(bySeconds: 1)
        #expect(try await f.receive("q").map(\.text) == ["late"])
    }

    @Test func queueDelay_appliesWhenTheMessageHasNone() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q") { $0.delay = 30 }
        try await f.send("q", ["a"])
        try await f.send("q", ["b"], delay: 0)
        #expect(try await f.receive("q", autoAck: true).map(\.text) == ["b"])
        f.clock.advance(bySeconds: 30)
        #expect(try await f.receive("q").map(\.text) == ["a"])
    }

    @Test func delayAboveRetention_isRejected_andNothingIsStored() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q") { $0.retention = 120 }
        await #expect(throws: TernError.self) { try await f.send("q", ["ok", "too late"], delay: 121) }
        #expect(try f.counts("q").total == 0)
    }
}

@Suite struct ReceiveValidationTests {
    @Test(arguments: [0, -1, 1001])
    func batchSizeOutOfRange_isInvalidParameter_andChangesNothing(batchSize: Int) async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        try await f.send("q", ["a"])
        do {
            _ = try await f.broker.receive(try QueueName("q"), maxMessages: batchSize)
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .invalidParameter)
        }
        #expect(try f.counts("q").ready == 1)
        #expect(try await f.receive("q").first?.receiveCount == 1)
    }

    @Test func batchSize_limitsTheMessagesDelivered() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        try await f.send("q", (0..<25).map { "m\($0)" })
        #expect(try await f.receive("q", max: 10).count == 10)
        #expect(try await f.receive("q", max: 1000).count == 15)
    }

    @Test func bodyAtTheLimit_isAccepted_oneByteOver_isMessageTooLarge() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q") { $0.maxMessageBytes = 10 }
        try await f.send("q", ["é2345678a"]) // 10 UTF-8 bytes
        do {
            try await f.send("q", ["é23456789a"])
            Issue.record("expected MessageTooLarge")
        } catch let error as TernError {
            #expect(error.code == .messageTooLarge)
        }
        #expect(try f.counts("q").total == 1)
        #expect(try await f.receive("q").map(\.text) == ["é2345678a"])
    }
}

@Suite struct ReceiptHandleTests {
    @Test func everyReceive_issuesANewHandle_andTheSupersededOneIsStale() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        try await f.send("q", ["a"])
        let first = try await f.receive("q", visibilityTimeout: 10)
        f.clock.advance(bySeconds: 10)
        let second = try await f.receive("q", visibilityTimeout: 10)
        #expect(first[0].id == second[0].id)
        #expect(first[0].receiptHandle != second[0].receiptHandle)
        #expect(second[0].receiveCount == 2)
        let q = try QueueName("q")
        await #expect(throws: TernError(.receiptHandleStale, "the receipt handle is no longer valid: the message was received again, acknowledged, purged or moved")) {
            try await f.broker.acknowledge(q, receiptHandle: first[0].receiptHandle)
        }
        do {
            try await f.broker.changeVisibility(q, receiptHandle: first[0].receiptHandle, timeout: 100)
            Issue.record("expected stale")
        } catch { #expect(error.code == .receiptHandleStale) }
        #expect(try f.counts("q").inFlight == 1)
        try await f.broker.acknowledge(q, receiptHandle: second[0].receiptHandle)
        #expect(try f.counts("q").total == 0)
    }

    @Test func expiredHandle_notSuperseded_acknowledgesTheMessage() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        try await f.send("q", ["a"])
        let received = try await f.receive("q", visibilityTimeout: 5)
        f.clock.advance(bySeconds: 6)
        _ = try await f.broker.runDueWork()
        #expect(try f.counts("q").ready == 1)
        try await f.broker.acknowledge(try QueueName("q"), receiptHandle: received[0].receiptHandle)
        #expect(try f.counts("q").total == 0)
        #expect(try await f.receive("q").isEmpty)
    }

    @Test func acknowledgingTwice_isStale() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        try await f.send("q", ["a"])
        let handle = try await f.receive("q")[0].receiptHandle
        try await f.broker.acknowledge(try QueueName("q"), receiptHandle: handle)
        do {
            try await f.broker.acknowledge(try QueueName("q"), receiptHandle: handle)
            Issue.record("expected stale")
        } catch { #expect(error.code == .receiptHandleStale) }
    }

    @Test(arguments: ["", "zz", String(repeating: "0", count: 58), String(repeating: "g", count: 58)])
    func malformedHandle_isInvalidReceiptHandle(handle: String) async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        do {
            try await f.broker.acknowledge(try QueueName("q"), receiptHandle: handle)
            Issue.record("expected an error")
        } catch { #expect(error.code == .invalidReceiptHandle) }
    }

    @Test func changeVisibility_setsTheDeadlineToNowPlusN() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        try await f.send("q", ["a"])
        let handle = try await f.receive("q", visibilityTimeout: 30)[0].receiptHandle
        f.clock.advance(bySeconds: 20)
        try await f.broker.changeVisibility(try QueueName("q"), receiptHandle: handle, timeout: 5)
        f.clock.advance(bySeconds: 4)
        #expect(try await f.receive("q").isEmpty)
        f.clock.advance(bySeconds: 1)
        #expect(try await f.receive("q").map(\.text) == ["a"])
    }

    @Test func changeVisibilityZero_releasesAtOnce() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        try await f.send("q", ["a"])
        let handle = try await f.receive("q", visibilityTimeout: 300)[0].receiptHandle
        try await f.broker.changeVisibility(try QueueName("q"), receiptHandle: handle, timeout: 0)
        #expect(try f.counts("q").ready == 1)
        #expect(try await f.receive("q").map(\.receiveCount) == [2])
    }

    @Test func changeVisibility_afterExpiry_isConflict() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        try await f.send("q", ["a"])
        let handle = try await f.receive("q", visibilityTimeout: 1)[0].receiptHandle
        f.clock.advance(bySeconds: 2)
        do {
            try await f.broker.changeVisibility(try QueueName("q"), receiptHandle: handle, timeout: 30)
            Issue.record("expected conflict")
        } catch { #expect(error.code == .conflict) }
        #expect(try await f.receive("q").map(\.receiveCount) == [2])
    }

    @Test func autoAck_deletesOnDelivery() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        try await f.send("q", ["a", "b"])
        let received = try await f.receive("q", max: 10, autoAck: true)
        #expect(received.map(\.text) == ["a", "b"])
        #expect(try f.counts("q").total == 0)
        f.clock.advance(bySeconds: 3600)
        #expect(try await f.receive("q").isEmpty)
    }
}

@Suite struct DeadLetterTests {
    func fixture(maxReceiveCount: Int) async throws -> BrokerFixture {
        let f = try await BrokerFixture()
        try await f.createQueue("dlq")
        try await f.createQueue("q") {
            $0.maxReceiveCount = .some(maxReceiveCount)
            $0.deadLetterQueue = .some(try! QueueName("dlq"))
        }
        return f
    }

    @Test func message_isDeliveredAtMostMaxReceiveCountTimes_thenMovesToTheDLQAtOnce_intact() async throws {
        let f = try await fixture(maxReceiveCount: 3)
        let sent = try await f.send("q", ["poison"], priority: 4)
        for attempt in 1...3 {
            let received = try await f.receive("q", visibilityTimeout: 10)
            #expect(received.map(\.receiveCount) == [UInt32(attempt)])
            f.clock.advance(bySeconds: 10)
            _ = try await f.broker.runDueWork()
        }
        #expect(try f.counts("q").total == 0)
        #expect(try f.counts("dlq").ready == 1)
        let dead = try await f.receive("dlq")
        #expect(dead.count == 1)
        #expect(dead[0].id == sent[0].id)
        #expect(dead[0].text == "poison")
        #expect(dead[0].priority == 4)
        #expect(try await f.receive("q").isEmpty)
    }

    @Test func releaseAfterTheLastDelivery_deadLettersToo() async throws {
        let f = try await fixture(maxReceiveCount: 1)
        try await f.send("q", ["a"])
        let handle = try await f.receive("q")[0].receiptHandle
        try await f.broker.changeVisibility(try QueueName("q"), receiptHandle: handle, timeout: 0)
        #expect(try f.counts("q").total == 0)
        #expect(try f.counts("dlq").ready == 1)
    }

    @Test func redrive_movesMessagesBackToTheirSource() async throws {
        let f = try await fixture(maxReceiveCount: 1)
        let sent = try await f.send("q", ["a", "b"])
        _ = try await f.receive("q", max: 2, visibilityTimeout: 1)
        f.clock.advance(bySeconds: 1)
        _ = try await f.broker.runDueWork()
        #expect(try f.counts("dlq").ready == 2)
        let moved = try await f.broker.redrive(try QueueName("dlq"))
        #expect(moved == 2)
        #expect(try f.counts("dlq").total == 0)
        let again = try await f.receive("q", max: 10)
        #expect(Set(again.map(\.id)) == Set(sent.map(\.id)))
        #expect(again.map(\.receiveCount) == [1, 1])
    }

    @Test func deadLetterQueue_mustExist_andDifferFromTheSource() async throws {
        let f = try await BrokerFixture()
        do {
            try await f.createQueue("q") { $0.maxReceiveCount = .some(2); $0.deadLetterQueue = .some(try! QueueName("missing")) }
            Issue.record("expected an error")
        } catch let error as TernError { #expect(error.code == .invalidAttribute) }
        do {
            try await f.createQueue("q") { $0.maxReceiveCount = .some(2); $0.deadLetterQueue = .some(try! QueueName("q")) }
            Issue.record("expected an error")
        } catch let error as TernError { #expect(error.code == .invalidAttribute) }
        #expect(try f.broker.listQueues().isEmpty)
    }
}

@Suite struct PurgeDeleteRetentionTests {
    @Test func purge_removesReadyDelayedAndInFlight_andTheirHandlesAreStale() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        try await f.send("q", ["ready", "inflight"])
        try await f.send("q", ["delayed"], delay: 100)
        let handle = try await f.receive("q", max: 1)[0].receiptHandle
        let purged = try await f.broker.purgeQueue(try QueueName("q"))
        #expect(purged == 3)
        #expect(try f.counts("q") == QueueCounts())
        do {
            try await f.broker.acknowledge(try QueueName("q"), receiptHandle: handle)
            Issue.record("expected stale")
        } catch { #expect(error.code == .receiptHandleStale) }
        f.clock.advance(bySeconds: 200)
        #expect(try await f.receive("q").isEmpty)
    }

    @Test func deletedQueue_recreatedUnderTheSameName_startsEmpty() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        try await f.send("q", ["old-1", "old-2"])
        let handle = try await f.receive("q", max: 1)[0].receiptHandle
        try await f.broker.deleteQueue(try QueueName("q"))
        do {
            _ = try f.broker.describeQueue(try QueueName("q"))
            Issue.record("expected QueueNotFound")
        } catch { #expect(error.code == .queueNotFound) }
        try await f.createQueue("q")
        #expect(try f.counts("q").total == 0)
        #expect(try await f.receive("q").isEmpty)
        do {
            try await f.broker.acknowledge(try QueueName("q"), receiptHandle: handle)
            Issue.record("expected stale")
        } catch { #expect(error.code == .receiptHandleStale) }
        _ = try await f.broker.runDueWork()
        let messages = try f.storage.read { try $0.statistics(f.storage.database("messages")).entries }
        #expect(messages == 0)
    }

    @Test func retention_deletesMessagesCountedFromSend() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q") { $0.retention = 60 }
        try await f.send("q", ["old"])
        f.clock.advance(bySeconds: 30)
        try await f.send("q", ["new"])
        f.clock.advance(bySeconds: 30)
        _ = try await f.broker.runDueWork()
        #expect(try f.counts("q").total == 1)
        #expect(try await f.receive("q").map(\.text) == ["new"])
    }

    @Test func unknownQueue_isQueueNotFound() async throws {
        let f = try await BrokerFixture()
        do {
            try await f.send("nope", ["a"])
            Issue.record("expected QueueNotFound")
        } catch let error as TernError { #expect(error.code == .queueNotFound) }
    }
}

@Suite struct DurabilityTests {
    @Test func receiveCountsAndDeadlines_surviveARestart() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        try await f.send("q", ["a"])
        _ = try await f.receive("q", visibilityTimeout: 60)
        try await f.reopen()
        #expect(try f.counts("q").inFlight == 1)
        #expect(try await f.receive("q").isEmpty)
        f.clock.advance(bySeconds: 60)
        try await f.reopen()
        #expect(try f.counts("q").ready == 1)
        #expect(try await f.receive("q").map(\.receiveCount) == [2])
    }

    @Test func deadlinesPassedWhileDown_areAppliedAtStartup_includingDeadLettering() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("dlq")
        try await f.createQueue("q") { $0.maxReceiveCount = .some(1); $0.deadLetterQueue = .some(try! QueueName("dlq")) }
        try await f.send("q", ["a"])
        try await f.send("q", ["d"], delay: 30)
        _ = try await f.receive("q", visibilityTimeout: 10)
        f.storage.close()
        f.clock.advance(bySeconds: 3600)
        try await f.reopen()
        #expect(try f.counts("dlq").ready == 1)
        #expect(try f.counts("q").ready == 1)
        #expect(try f.counts("q").delayed == 0)
    }
}

@Suite struct LongPollingTests {
    @Test func waitingReceive_isWokenByASend() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        let broker = f.broker
        let waiter = Task { try await broker.receive(try QueueName("q"), maxMessages: 1, waitTime: 20) }
        await f.clock.waitForSleepers(count: 1)
        try await f.send("q", ["wake"])
        let received = try await waiter.value
        #expect(received.map(\.text) == ["wake"])
    }

    @Test func waitingReceive_returnsEmptyAtWaitTime() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        let broker = f.broker
        let waiter = Task { try await broker.receive(try QueueName("q"), maxMessages: 1, waitTime: 5) }
        await f.clock.waitForSleepers(count: 1)
        f.clock.advance(bySeconds: 5)
        #expect(try await waiter.value.isEmpty)
    }
}

@Suite struct QueueSchemaKeyOrderTests {
    @Test func messageKeys_sortLikeTheirNumbers() {
        var generator = SystemRandomNumberGenerator()
        let tuples = (0..<2000).map { _ in (UInt32.random(in: 0...5, using: &generator), UInt64.random(in: 0...UInt64.max, using: &generator)) }
        let byBytes = tuples.sorted { QueueSchema.messageKey(queue: $0.0, sequence: $0.1).lexicographicallyPrecedes(QueueSchema.messageKey(queue: $1.0, sequence: $1.1)) }
        let byNumbers = tuples.sorted { ($0.0, $0.1) < ($1.0, $1.1) }
        #expect(byBytes.map { "\($0.0)/\($0.1)" } == byNumbers.map { "\($0.0)/\($0.1)" })
    }

    @Test func readyKeys_sortHigherPriorityFirst_thenBySequence() throws {
        let keys = [(UInt8(0), UInt64(1)), (9, 5), (9, 2), (5, 3)].map { QueueSchema.readyKey(queue: 1, priority: $0.0, sequence: $0.1) }
        let decoded = try keys.sorted { $0.lexicographicallyPrecedes($1) }.map { try QueueSchema.decodeReadyKey($0) }
        #expect(decoded.map(\.priority) == [9, 9, 5, 0])
        #expect(decoded.map(\.sequence) == [2, 5, 3, 1])
    }

    @Test func timeKeys_sortByTimeFirst() throws {
        let a = QueueSchema.timeKey(Timestamp(milliseconds: 1000), queue: 9, sequence: 9)
        let b = QueueSchema.timeKey(Timestamp(milliseconds: 1001), queue: 1, sequence: 1)
        #expect(a.lexicographicallyPrecedes(b))
        #expect(try QueueSchema.decodeTimeKey(b).time == Timestamp(milliseconds: 1001))
    }
}

@Suite struct NameAndAttributeTests {
    @Test(arguments: ["", String(repeating: "a", count: 81), "has space", "dot.name", "ünï", "a/b", ".fifo"])
    func invalidNames_areRejected(name: String) {
        #expect(throws: TernError.self) { try QueueName(name) }
    }

    @Test(arguments: ["a", String(repeating: "a", count: 80), "A-b_9", String(repeating: "a", count: 75) + ".fifo"])
    func validNames_areAccepted(name: String) throws {
        #expect(try QueueName(name).rawValue == name)
    }

    @Test func names_areCaseSensitive() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("Jobs")
        try await f.createQueue("jobs")
        try await f.send("Jobs", ["x"])
        #expect(try f.counts("jobs").total == 0)
        #expect(try f.counts("Jobs").total == 1)
    }

    @Test func updatingAQueue_keepsUnspecifiedAttributes() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q") { $0.visibilityTimeout = 99; $0.delay = 5 }
        let (created, info) = try await f.broker.createOrUpdateQueue(try QueueName("q"), patch: {
            var p = QueueAttributes.Patch(); p.delay = 7; return p
        }())
        #expect(!created)
        #expect(info.attributes.visibilityTimeout == 99)
        #expect(info.attributes.delay == 7)
    }
}
