import Foundation
import Hummingbird
import TernCore
import Testing

/// BRIEF §3 receive parameters: a rejected receive changes nothing: the message is still
/// ready, and the next good receive delivers it with receive count 1.
@Suite struct ReceiveValidationTests {
    static func expectRejectedReceive(_ query: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            let sent = try await api.send("q", "m")
            let before = try await api.snapshot()
            let reply = try await api.request(.get, "/queues/q/messages?\(query)")
            expectError(reply, .invalidParameter, query, sourceLocation: sourceLocation)
            #expect(try await api.snapshot() == before, sourceLocation: sourceLocation)
            #expect(try await api.describe("q").messages.ready == 1, sourceLocation: sourceLocation)
            let received = try await api.receive("q")
            #expect(received.map { $0.id } == [sent.id], sourceLocation: sourceLocation)
            #expect(received.map { $0.receiveCount } == [1], sourceLocation: sourceLocation)
        }
    }

    @Test(arguments: ["0", "1001", "abc", "1.5", "-1", "", "1e2", " 5", "%205", "0x10", "99999999999999999999"])
    func invalidBatchSize_isInvalidParameter_andChangesNothing(value: String) async throws {
        try await Self.expectRejectedReceive("batch_size=\(value)")
    }

    @Test(arguments: ["-1", "43201", "x", "1.5", ""])
    func invalidVisibilityTimeout_isInvalidParameter_andChangesNothing(value: String) async throws {
        try await Self.expectRejectedReceive("visibility_timeout=\(value)")
    }

    @Test(arguments: ["21", "-1", "20.5", "twenty", ""])
    func invalidWaitTime_isInvalidParameter_andChangesNothing(value: String) async throws {
        try await Self.expectRejectedReceive("wait_time=\(value)")
    }

    @Test(arguments: ["maybe", "TRUE", "1", "yes", ""])
    func invalidAutoAck_isInvalidParameter_andChangesNothing(value: String) async throws {
        try await Self.expectRejectedReceive("auto_ack=\(value)")
    }

    @Test(arguments: ["foo=1", "batchSize=2", "max=5", "batch_size=2&limit=3", "visibility=5"])
    func unknownQueryParameter_isInvalidParameter_andChangesNothing(query: String) async throws {
        try await Self.expectRejectedReceive(query)
    }

    /// A bad parameter is rejected even when another one would have auto-acknowledged.
    @Test func badParameterNextToAutoAck_deletesNothing() async throws {
        try await Self.expectRejectedReceive("auto_ack=true&batch_size=0")
    }

    @Test func batchSize_defaultsTo1_andAllows1000() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            let items = (0..<1001).map { "{\"message\": \"m\($0)\"}" }
            for chunk in [Array(items[0..<1000]), Array(items[1000...])] {
                let reply = try await api.request(.post, "/queues/q/messages", "{\"messages\": [\(chunk.joined(separator: ","))]}")
                #expect(reply.status == 201, "\(reply)")
            }
            #expect(try await api.receive("q", "").map { $0.body } == ["m0"])
            let many = try await api.receive("q", "batch_size=1000")
            #expect(many.count == 1000)
            #expect(many.first?.body == "m1" && many.last?.body == "m1000")
            #expect(Set(many.map { $0.receiptHandle }).count == 1000)
        }
    }

    @Test func visibilityTimeoutParameter_overridesTheQueues() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q", "{\"visibility_timeout\": 300}")
            try await api.send("q", "m")
            let first = try await api.receive("q", "visibility_timeout=5")
            #expect(first.count == 1)
            f.clock.advance(bySeconds: 4)
            _ = try await f.broker.runDueWork()
            #expect(try await api.receive("q").isEmpty)
            f.clock.advance(bySeconds: 1)
            _ = try await f.broker.runDueWork()
            let again = try await api.receive("q")
            #expect(again.map { $0.receiveCount } == [2])
            #expect(again.first?.receiptHandle != first.first?.receiptHandle)
        }
    }

    @Test func receivedMessage_hasEveryDocumentedField() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            let sent = try await api.send("q", "m", priority: 7)
            let reply = try await api.request(.get, "/queues/q/messages")
            #expect(reply.status == 200)
            #expect(reply.contentType == "application/json")
            let top = try reply.object()
            #expect(Set(top.keys) == ["messages"])
            let message = try #require((top["messages"] as? [[String: Any]])?.first)
            #expect(Set(message.keys) == ["id", "body", "receipt_handle", "receive_count", "priority", "sent_at"])
            let received = try reply.decode(ReceivedBatchBody.self).messages[0]
            #expect(received.id == sent.id)
            #expect(received.priority == 7)
            #expect(received.receiveCount == 1)
            #expect(received.sentAt == f.clock.now.milliseconds)
            #expect(received.receiptHandle.count == 58)
            let isHex = received.receiptHandle.allSatisfy { $0.isHexDigit }
            #expect(isHex)
        }
    }

    /// Auto-acknowledged deliveries carry an empty receipt handle: there is nothing to ack.
    @Test func autoAck_deletesOnReceive_andIssuesNoHandle() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            try await api.send("q", "once")
            try await api.send("q", "twice")
            let received = try await api.receive("q", "auto_ack=true&batch_size=10")
            #expect(received.map { $0.body } == ["once", "twice"])
            #expect(received.map { $0.receiptHandle } == ["", ""])
            #expect(received.map { $0.receiveCount } == [1, 1])
            #expect(try await api.describe("q").messages.total == 0)
            f.clock.advance(bySeconds: 3600)
            _ = try await f.broker.runDueWork()
            #expect(try await api.receive("q").isEmpty)
        }
    }

    @Test func autoAckFalse_keepsTheMessageInFlight() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            try await api.send("q", "m")
            #expect(try await api.receive("q", "auto_ack=false").count == 1)
            #expect(try await api.describe("q").messages.inFlight == 1)
        }
    }
}
