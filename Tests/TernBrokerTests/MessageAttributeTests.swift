import Testing
import TernBroker
import TernCore
import TernStorage
import TernTestKit

/// Message attributes are stored with the message, durably, and the record format change that
/// carries them (body records version 2, a first-receive time in the header) still reads the
/// records written before it.
@Suite struct MessageAttributeTests {
    static let attributes = [
        MessageAttribute(name: "color", dataType: "String", value: Array("blue".utf8)),
        MessageAttribute(name: "count", dataType: "Number.int", value: Array("42".utf8)),
        MessageAttribute(name: "blob", dataType: "Binary", value: [0, 1, 2, 0xFF]),
        MessageAttribute(kind: .system, name: "AWSTraceHeader", dataType: "String", value: Array("Root=1-5-abc".utf8)),
    ]

    @Test func attributes_roundTripThroughSendAndReceive_andSurviveARestart() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        let name = try QueueName("q")
        _ = try await f.broker.send(name, [OutgoingMessage(body: Array("hello".utf8), attributes: Self.attributes),
                                           OutgoingMessage(body: Array("plain".utf8))])
        try await f.reopen()
        let received = try await f.receive("q", max: 10)
        #expect(received.map(\.text) == ["hello", "plain"])
        #expect(received[0].attributes == Self.attributes)
        #expect(received[1].attributes.isEmpty)
        #expect(received[0].sequence == 1 && received[1].sequence == 2)
        #expect(received[0].firstReceivedAt == f.clock.now)
    }

    @Test func firstReceivedAt_isTheFirstDelivery_notTheLatest() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        try await f.send("q", ["a"])
        let first = try await f.receive("q", visibilityTimeout: 1)
        let firstTime = f.clock.now
        f.clock.advance(bySeconds: 5)
        let second = try await f.receive("q")
        #expect(first[0].firstReceivedAt == firstTime)
        #expect(second[0].receiveCount == 2)
        #expect(second[0].firstReceivedAt == firstTime)
    }

    @Test func deadLetteredMessage_keepsItsAttributes() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("dlq")
        try await f.createQueue("q") { $0.maxReceiveCount = 1; $0.deadLetterQueue = try? QueueName("dlq") }
        _ = try await f.broker.send(try QueueName("q"), [OutgoingMessage(body: Array("x".utf8), attributes: Self.attributes)])
        _ = try await f.receive("q", visibilityTimeout: 1)
        f.clock.advance(bySeconds: 2)
        _ = try await f.broker.runDueWork()
        let moved = try await f.receive("dlq")
        #expect(moved.map(\.text) == ["x"])
        #expect(moved[0].attributes == Self.attributes)
        #expect(moved[0].receiveCount == 1)
    }

    @Test func bodyRecord_roundTrips_andVersionOneRecordsReadAsNoAttributes() throws {
        let body = Array(repeating: UInt8(ascii: "z"), count: 600)  // long enough to compress
        let record = MessageBody.encode(body: body, attributes: Self.attributes)
        #expect(record[4] == MessageBody.attributesVersion)
        let decoded = try MessageBody.decode(record)
        #expect(decoded.body == body && decoded.attributes == Self.attributes)
        // A record written before attributes existed (version 1, payload = body).
        let old = RecordCodec.encode(Array("old body".utf8))
        #expect(old[4] == 1)
        let read = try MessageBody.decode(old)
        #expect(read.body == Array("old body".utf8) && read.attributes.isEmpty)
        // Without attributes nothing changes: the record is byte for byte the version-1 one.
        #expect(MessageBody.encode(body: Array("old body".utf8), attributes: []) == old)
    }

    @Test func bodyRecord_withMalformedAttributeBlock_isCorrupt_neverATrap() throws {
        let record = MessageBody.encode(body: Array("b".utf8), attributes: Self.attributes)
        let payload = try RecordCodec.decodeVersioned(record).payload
        var generator = SeededGenerator(seed: 12)
        for _ in 0..<2000 {
            var mutated = payload
            let position = Int.random(in: 0..<mutated.count, using: &generator)
            mutated[position] = UInt8.random(in: 0...255, using: &generator)
            if Bool.random(using: &generator) { mutated = Array(mutated.prefix(Int.random(in: 0..<mutated.count, using: &generator))) }
            // Any outcome but a trap: decoded (the mutation hit a value byte) or corruptRecord.
            do throws(StorageError) {
                _ = try MessageBody.decode(RecordCodec.encode(mutated, compression: .never, version: MessageBody.attributesVersion))
            } catch {
                #expect(error.code == .corruptRecord, "\(error)")
            }
        }
    }

    @Test func headerWrittenBeforeFirstReceiveTime_reads_andTheMessageIsDelivered() async throws {
        let f = try await BrokerFixture()
        try await f.createQueue("q")
        try await f.send("q", ["legacy"])
        // Rewrite the stored header in the layout of the previous release (no trailing first-receive time).
        let messages = f.storage.database("messages")
        let key = QueueSchema.messageKey(queue: 1, sequence: 1)
        try await f.storage.write { txn in
            let current = try txn.get(messages, key)!
            let payload = try RecordCodec.decode(current)
            try txn.put(messages, key, RecordCodec.encode(Array(payload.dropLast(8)), compression: .never))
        }
        let old = try f.storage.read { txn in try txn.get(messages, key)! }
        #expect(try MessageHeader(decoding: old).firstReceivedAt == Timestamp(milliseconds: 0))
        let received = try await f.receive("q")
        #expect(received.map(\.text) == ["legacy"])
        #expect(received[0].firstReceivedAt == f.clock.now)
    }
}
