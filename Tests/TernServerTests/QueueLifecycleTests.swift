import Foundation
import Hummingbird
import HummingbirdTesting
import TernCore
import Testing

/// Create, list, describe, purge, delete, redrive: each run in-process (router) and over a
/// real socket (live server, one keep-alive connection).
@Suite struct QueueLifecycleTests {
    @Test(arguments: [TestingSetup.router, .live])
    func health_isOK(setup: TestingSetup) async throws {
        let f = try await ServerFixture()
        try await f.run(setup) { api in
            let reply = try await api.request(.get, "/health")
            #expect(reply.status == 200)
            #expect(try reply.object() as? [String: String] == ["status": "ok"])
        }
    }

    @Test(arguments: [TestingSetup.router, .live])
    func sendReceiveAcknowledge_roundTrip(setup: TestingSetup) async throws {
        let f = try await ServerFixture()
        try await f.run(setup) { api in
            try await api.createQueue("orders")
            let sentReply = try await api.request(.post, "/queues/orders/messages", "{\"message\": \"héllo 🙂\", \"priority\": 5}")
            #expect(sentReply.status == 201, "\(sentReply)")
            #expect(Set(try sentReply.object().keys) == ["id", "sequence", "visible_at"])
            let sent = try sentReply.decode(SentBody.self)
            #expect(sent.visibleAt == f.clock.now.milliseconds)
            let queue = try await api.describe("orders")
            #expect(queue.messages == .init(ready: 1, inFlight: 0, delayed: 0, total: 1))
            #expect(queue.bytes == UInt64("héllo 🙂".utf8.count))

            let received = try await api.receive("orders")
            #expect(received.map { $0.id } == [sent.id])
            #expect(received.first?.body.bytes == "héllo 🙂".bytes)
            #expect(received.first?.priority == 5)
            #expect(try await api.describe("orders").messages.inFlight == 1)
            let ack = try await api.acknowledge("orders", received[0].receiptHandle)
            #expect(ack.status == 204)
            #expect(ack.bytes.isEmpty)
            #expect(try await api.describe("orders").messages.total == 0)
        }
    }

    @Test(arguments: [TestingSetup.router, .live])
    func list_showsEveryQueueInNameOrder_withStatistics(setup: TestingSetup) async throws {
        let f = try await ServerFixture()
        try await f.run(setup) { api in
            #expect(try await api.snapshot().isEmpty)
            try await api.createQueue("b")
            try await api.createQueue("a")
            try await api.createQueue("c")
            try await api.send("b", "1")
            try await api.send("b", "22", delay: 30)
            f.clock.advance(bySeconds: 4)
            let queues = try await api.snapshot()
            #expect(queues.map { $0.name } == ["a", "b", "c"])
            #expect(queues[1].messages == .init(ready: 1, inFlight: 0, delayed: 1, total: 2))
            #expect(queues[1].bytes == 3)
            #expect(queues[1].oldestMessageAge == 4)
            #expect(queues[0].oldestMessageAge == nil)
        }
    }

    @Test(arguments: [TestingSetup.router, .live])
    func put_answers201Then200(setup: TestingSetup) async throws {
        let f = try await ServerFixture()
        try await f.run(setup) { api in
            let created = try await api.request(.put, "/queues/q", "{\"visibility_timeout\": 10}")
            let updated = try await api.request(.put, "/queues/q", "{\"visibility_timeout\": 20}")
            let unchanged = try await api.request(.put, "/queues/q")
            #expect(created.status == 201, "\(created)")
            #expect(updated.status == 200, "\(updated)")
            #expect(unchanged.status == 200, "\(unchanged)")
            let queue = try await api.describe("q")
            #expect(queue.attributes.visibilityTimeout == 20)
        }
    }

    @Test(arguments: [TestingSetup.router, .live])
    func purge_removesReadyDelayedAndInFlight_andAnswersTheCount(setup: TestingSetup) async throws {
        let f = try await ServerFixture()
        try await f.run(setup) { api in
            try await api.createQueue("q")
            try await api.createQueue("other")
            try await api.send("other", "stays")
            try await api.send("q", "flight")
            let delivery = try #require(try await api.receive("q").first)
            try await api.send("q", "ready")
            try await api.send("q", "delayed", delay: 100)
            let reply = try await api.request(.post, "/queues/q/purge")
            #expect(reply.status == 200)
            #expect(try reply.object() as? [String: Int] == ["purged": 3])
            #expect(try await api.describe("q").messages.total == 0)
            #expect(try await api.describe("q").bytes == 0)
            #expect(try await api.describe("other").messages.total == 1)
            expectError(try await api.acknowledge("q", delivery.receiptHandle), .receiptHandleStale)
            expectError(try await api.changeVisibility("q", delivery.receiptHandle, 5), .receiptHandleStale)
            let empty = try await api.request(.post, "/queues/q/purge")
            #expect(try empty.object() as? [String: Int] == ["purged": 0])
            try await api.send("q", "after")
            #expect(try await api.receive("q").map { $0.body } == ["after"])
        }
    }

    @Test(arguments: [TestingSetup.router, .live])
    func delete_answers204_then404_andARecreatedQueueStartsEmpty(setup: TestingSetup) async throws {
        let f = try await ServerFixture()
        try await f.run(setup) { api in
            try await api.createQueue("q", "{\"visibility_timeout\": 99}")
            try await api.send("q", "old 1")
            try await api.send("q", "old 2", delay: 50)
            _ = try await api.receive("q")
            let deleted = try await api.request(.delete, "/queues/q")
            #expect(deleted.status == 204)
            #expect(deleted.bytes.isEmpty)
            expectError(try await api.request(.get, "/queues/q"), .queueNotFound)
            expectError(try await api.request(.delete, "/queues/q"), .queueNotFound)
            #expect(try await api.snapshot().isEmpty)

            let recreated = try await api.createQueue("q")
            #expect(recreated.messages.total == 0)
            #expect(recreated.attributes.visibilityTimeout == 30)
            f.clock.advance(bySeconds: 200)
            _ = try await f.broker.runDueWork()
            #expect(try await api.receive("q").isEmpty)
            #expect(try await api.describe("q").messages.total == 0)
        }
    }

    /// The message is delivered `max_receive_count` times; its last release moves it to the
    /// DLQ with id and body intact; redrive moves it back.
    @Test(arguments: [TestingSetup.router, .live])
    func redrive_movesDeadLetteredMessagesBack(setup: TestingSetup) async throws {
        let f = try await ServerFixture()
        try await f.run(setup) { api in
            try await api.createQueue("dlq")
            try await api.createQueue("src", "{\"max_receive_count\": 2, \"dead_letter_queue\": \"dlq\", \"visibility_timeout\": 10}")
            let sent = try await api.send("src", "poison ☠️", priority: 3)
            let first = try #require(try await api.receive("src").first)
            #expect(try await api.changeVisibility("src", first.receiptHandle, 0).status == 204)
            _ = try #require(try await api.receive("src").first)
            f.clock.advance(bySeconds: 10)
            _ = try await f.broker.runDueWork()
            #expect(try await api.describe("src").messages.total == 0)
            #expect(try await api.describe("dlq").messages.ready == 1)
            expectError(try await api.acknowledge("src", first.receiptHandle), .receiptHandleStale)

            let reply = try await api.request(.post, "/queues/dlq/redrive")
            #expect(reply.status == 200, "\(reply)")
            #expect(try reply.object() as? [String: Int] == ["moved": 1])
            #expect(try await api.describe("dlq").messages.total == 0)
            let back = try await api.receive("src")
            #expect(back.map { $0.id } == [sent.id])
            #expect(back.first?.body.bytes == "poison ☠️".bytes)
            #expect(back.first?.priority == 3)
            #expect(back.first?.receiveCount == 1)

            let again = try await api.request(.post, "/queues/dlq/redrive")
            #expect(try again.object() as? [String: Int] == ["moved": 0])
            let notADLQ = try await api.request(.post, "/queues/src/redrive")
            #expect(try notADLQ.object() as? [String: Int] == ["moved": 0])
        }
    }

    /// With `max_receive_count` 1, releasing the only delivery (visibility 0) dead-letters it at once.
    @Test func releaseOfTheLastDelivery_deadLettersAtOnce() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("dlq")
            try await api.createQueue("src", "{\"max_receive_count\": 1, \"dead_letter_queue\": \"dlq\"}")
            let sent = try await api.send("src", "m")
            let delivery = try #require(try await api.receive("src").first)
            #expect(try await api.changeVisibility("src", delivery.receiptHandle, 0).status == 204)
            #expect(try await api.describe("src").messages.total == 0)
            let dead = try await api.receive("dlq")
            #expect(dead.map { $0.id } == [sent.id])
            #expect(dead.map { $0.body } == ["m"])
        }
    }
}

/// BRIEF §3: `404 QueueNotFound` from every route that names a queue (PUT creates instead).
@Suite struct QueueNotFoundTests {
    static let requests: [(String, String, String?)] = [
        ("GET", "/queues/ghost", nil),
        ("DELETE", "/queues/ghost", nil),
        ("POST", "/queues/ghost/purge", nil),
        ("POST", "/queues/ghost/redrive", nil),
        ("POST", "/queues/ghost/messages", "{\"message\": \"m\"}"),
        ("POST", "/queues/ghost/messages", "{\"messages\": [{\"message\": \"m\"}]}"),
        ("GET", "/queues/ghost/messages", nil),
        ("GET", "/queues/ghost/messages?batch_size=10&wait_time=20", nil),
        ("DELETE", "/queues/ghost/messages/\(API.wellFormedHandle)", nil),
        ("PATCH", "/queues/ghost/messages/\(API.wellFormedHandle)", "{\"visibility_timeout\": 0}"),
    ]

    @Test(arguments: requests)
    func unknownQueue_isQueueNotFound_andCreatesNothing(method: String, path: String, body: String?) async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("real")
            try await api.send("real", "m")
            let before = try await api.snapshot()
            expectError(try await api.request(HTTPRequest.Method(method)!, path, body), .queueNotFound, "\(method) \(path)")
            #expect(try await api.snapshot() == before)
        }
    }

    /// A queue deleted a moment ago is unknown to every route too.
    @Test func deletedQueue_isQueueNotFound_everywhere() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("ghost")
            #expect(try await api.request(.delete, "/queues/ghost").status == 204)
            for (method, path, body) in Self.requests {
                expectError(try await api.request(HTTPRequest.Method(method)!, path, body), .queueNotFound, "\(method) \(path)")
            }
            #expect(try await api.snapshot().isEmpty)
        }
    }
}
