import Foundation
import Hummingbird
import TernCore
import TernTestKit
import Testing

/// `POST /queues/{name}/messages/acknowledge` and `POST /queues/{name}/messages/visibility`
/// (issue 13, item 3; decision 95): one result per handle in request order, a failing handle
/// fails alone, a bad request changes nothing.
@Suite struct BatchAcknowledgeTests {
    struct BatchBody: Decodable {
        struct Entry: Decodable {
            struct Detail: Decodable { var code: String; var message: String }
            var receiptHandle: String
            var error: Detail?
        }
        var results: [Entry]
        var succeeded: Int
        var failed: Int
    }

    static func handles(_ handles: [String]) -> String {
        "{\"receipt_handles\": [\(handles.map { "\"\($0)\"" }.joined(separator: ", "))]}"
    }

    static func entries(_ entries: [(String, Int)]) -> String {
        "{\"entries\": [\(entries.map { "{\"receipt_handle\": \"\($0.0)\", \"visibility_timeout\": \($0.1)}" }.joined(separator: ", "))]}"
    }

    @Test func acknowledgeBatch_deletesEveryCurrentHandle_andReportsBadOnesInTheirSlots() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            for i in 0..<5 { try await api.send("q", "m\(i)") }
            let delivered = try await api.receive("q", "batch_size=5")
            try #require(delivered.count == 5)
            // Handles 0, 2 and 4 are current; then a malformed one; then handle 2 again (stale the second time).
            let request = [delivered[0].receiptHandle, delivered[2].receiptHandle, "nonsense", delivered[4].receiptHandle,
                           delivered[2].receiptHandle]
            let reply = try await api.request(.post, "/queues/q/messages/acknowledge", Self.handles(request))
            try #require(reply.status == 200, "\(reply)")
            let body = try reply.decode(BatchBody.self)
            #expect(body.results.map(\.receiptHandle) == request)
            #expect(body.results.map { $0.error?.code } == [nil, nil, "InvalidReceiptHandle", nil, "ReceiptHandleStale"])
            #expect(body.succeeded == 3)
            #expect(body.failed == 2)
            let counts = try await api.describe("q").messages
            #expect(counts.inFlight == 2)
            #expect(counts.total == 2)
            // The untouched deliveries still acknowledge one by one.
            #expect(try await api.acknowledge("q", delivered[1].receiptHandle).status == 204)
        }
    }

    @Test func acknowledgeBatch_ofAThousandHandles_isOneRequest_andEmptiesTheQueue() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            let batch = "{\"messages\": [\((0..<1000).map { "{\"message\": \"m\($0)\"}" }.joined(separator: ","))]}"
            #expect(try await api.request(.post, "/queues/q/messages", batch).status == 201)
            let delivered = try await api.receive("q", "batch_size=1000")
            try #require(delivered.count == 1000)
            let reply = try await api.request(.post, "/queues/q/messages/acknowledge", Self.handles(delivered.map(\.receiptHandle)))
            try #require(reply.status == 200, "\(reply)")
            #expect(try reply.decode(BatchBody.self).succeeded == 1000)
            #expect(try await api.describe("q").messages.total == 0)
        }
    }

    @Test(arguments: [
        ("", ErrorCode.invalidJSON),
        ("{}", .invalidParameter),
        ("{\"receipt_handles\": []}", .invalidParameter),
        ("{\"receipt_handles\": \"abc\"}", .invalidParameter),
        ("{\"receipt_handles\": [1]}", .invalidParameter),
        ("{\"receipt_handles\": [\"a\"], \"extra\": 1}", .invalidParameter),
        ("{\"receipt_handles\": [" + Array(repeating: "\"a\"", count: 1001).joined(separator: ",") + "]}", .invalidParameter),
    ])
    func acknowledgeBatch_badBody_isRefused_andChangesNothing(body: String, code: ErrorCode) async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            try await api.send("q", "m")
            _ = try await api.receive("q")
            let before = try await api.snapshot()
            expectError(try await api.request(.post, "/queues/q/messages/acknowledge", body), code, String(body.prefix(60)))
            #expect(try await api.snapshot() == before)
        }
    }

    @Test func batches_onAnUnknownQueue_areQueueNotFound() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            expectError(try await api.request(.post, "/queues/nope/messages/acknowledge", Self.handles([API.wellFormedHandle])),
                        .queueNotFound)
            expectError(try await api.request(.post, "/queues/nope/messages/acknowledge", Self.handles(["malformed"])),
                        .queueNotFound)
            expectError(try await api.request(.post, "/queues/nope/messages/visibility", Self.entries([(API.wellFormedHandle, 5)])),
                        .queueNotFound)
        }
    }

    @Test func changeVisibilityBatch_setsEachDeadline_releasesAtZero_andReportsBadEntriesInTheirSlots() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            for i in 0..<3 { try await api.send("q", "m\(i)") }
            let delivered = try await api.receive("q", "batch_size=3&visibility_timeout=30")
            try #require(delivered.count == 3)
            let request: [(String, Int)] = [
                (delivered[0].receiptHandle, 0),       // released at once
                (delivered[1].receiptHandle, 600),     // extended to 10 minutes
                ("nonsense", 10),
                (API.wellFormedHandle, 10),            // well formed, never issued
            ]
            let reply = try await api.request(.post, "/queues/q/messages/visibility", Self.entries(request))
            try #require(reply.status == 200, "\(reply)")
            let body = try reply.decode(BatchBody.self)
            #expect(body.results.map(\.receiptHandle) == request.map(\.0))
            #expect(body.results.map { $0.error?.code } == [nil, nil, "InvalidReceiptHandle", "ReceiptHandleStale"])
            #expect(body.succeeded == 2 && body.failed == 2)

            // Message 0 is ready again at once.
            #expect(try await api.receive("q").map(\.body) == ["m0"])
            // At 30 s, message 2 (untouched) and message 0 (received again, for 30 s) come back;
            // message 1 (600 s) does not.
            f.clock.advance(bySeconds: 30)
            _ = try await f.broker.runDueWork()
            #expect(Set(try await api.receive("q", "batch_size=10&visibility_timeout=1000").map(\.body)) == ["m0", "m2"])
            f.clock.advance(bySeconds: 570)
            _ = try await f.broker.runDueWork()
            #expect(try await api.receive("q").map(\.body) == ["m1"])
        }
    }

    @Test func changeVisibilityBatch_expiredDelivery_isConflictInItsSlot_andTheOthersApply() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            try await api.send("q", "a")
            try await api.send("q", "b")
            let a = try #require(try await api.receive("q", "batch_size=1&visibility_timeout=10").first)
            let b = try #require(try await api.receive("q", "batch_size=1&visibility_timeout=100").first)
            f.clock.advance(bySeconds: 10)   // a's deadline passed (no due work ran yet)
            let reply = try await api.request(.post, "/queues/q/messages/visibility", Self.entries([(a.receiptHandle, 60), (b.receiptHandle, 60)]))
            try #require(reply.status == 200, "\(reply)")
            #expect(try reply.decode(BatchBody.self).results.map { $0.error?.code } == ["Conflict", nil])
        }
    }

    @Test(arguments: [
        ("{\"entries\": []}", ErrorCode.invalidParameter),
        ("{\"entries\": [{\"receipt_handle\": \"x\"}]}", .invalidParameter),
        ("{\"entries\": [{\"visibility_timeout\": 5}]}", .invalidParameter),
        ("{\"entries\": [{\"receipt_handle\": \"x\", \"visibility_timeout\": 43201}]}", .invalidParameter),
        ("{\"entries\": [{\"receipt_handle\": \"x\", \"visibility_timeout\": -1}]}", .invalidParameter),
        ("{\"entries\": [{\"receipt_handle\": \"x\", \"visibility_timeout\": 5, \"id\": 1}]}", .invalidParameter),
        ("{\"entries\": [\"x\"]}", .invalidParameter),
        ("{\"entries\": [1,]}", .invalidJSON),
    ])
    func changeVisibilityBatch_badBody_isRefused_andChangesNothing(body: String, code: ErrorCode) async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            try await api.send("q", "m")
            _ = try await api.receive("q")
            let before = try await api.snapshot()
            expectError(try await api.request(.post, "/queues/q/messages/visibility", body), code, body)
            #expect(try await api.snapshot() == before)
        }
    }

    /// The batch routes sit beside `/messages/{receipt_handle}`; both kinds still route, over a real socket too.
    @Test func batchRoutes_andSingleHandleRoutes_coexist_overALiveServer() async throws {
        let f = try await ServerFixture()
        try await f.run(.live) { api in
            try await api.createQueue("q")
            try await api.send("q", "a")
            try await api.send("q", "b")
            let delivered = try await api.receive("q")
            try #require(delivered.count == 2)
            #expect(try await api.acknowledge("q", delivered[0].receiptHandle).status == 204)
            let reply = try await api.request(.post, "/queues/q/messages/acknowledge", Self.handles([delivered[1].receiptHandle]))
            #expect(reply.status == 200, "\(reply)")
            #expect(try await api.describe("q").messages.total == 0)
        }
    }
}
