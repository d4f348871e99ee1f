import Foundation
import Hummingbird
import TernCore
import Testing

/// BRIEF §3 "Receipt handles" over HTTP: acknowledge (`DELETE`) and change visibility
/// (`PATCH`); a rejected call changes nothing and leaves the current delivery usable.
@Suite struct ReceiptHandleTests {
    static let malformedHandles = [
        "abc",
        "0",
        String(repeating: "z", count: 58),
        String(repeating: "0", count: 58),  // version 0
        "02" + String(API.wellFormedHandle.dropFirst(2)),  // unknown version
        API.wellFormedHandle + "00",  // too long
        String(API.wellFormedHandle.dropLast(2)),  // too short
        "01" + String(repeating: "0", count: 56),  // empty nonce
        String(API.wellFormedHandle.dropLast()) + "g",
        String(API.wellFormedHandle.dropLast()) + "%20",
    ]

    @Test(arguments: malformedHandles)
    func malformedHandle_isInvalidReceiptHandle_forDeleteAndPatch_andChangesNothing(handle: String) async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            try await api.send("q", "m")
            let delivery = try #require(try await api.receive("q").first)
            let before = try await api.snapshot()
            expectError(try await api.acknowledge("q", handle), .invalidReceiptHandle, "DELETE \(handle)")
            expectError(try await api.changeVisibility("q", handle, 0), .invalidReceiptHandle, "PATCH \(handle)")
            #expect(try await api.snapshot() == before)
            #expect(try await api.describe("q").messages.inFlight == 1)
            #expect(try await api.receive("q").isEmpty)
            #expect(try await api.acknowledge("q", delivery.receiptHandle).status == 204)
        }
    }

    /// A later receive supersedes the handle: `410` for both calls, and the new delivery stays
    /// in flight, untouched.
    @Test func supersededHandle_isStale_forDeleteAndPatch_andTheMessageStaysInFlight() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            let sent = try await api.send("q", "m")
            let first = try #require(try await api.receive("q", "visibility_timeout=10").first)
            f.clock.advance(bySeconds: 10)
            _ = try await f.broker.runDueWork()
            let second = try #require(try await api.receive("q", "visibility_timeout=60").first)
            #expect(second.id == sent.id)
            #expect(second.receiveCount == 2)
            #expect(second.receiptHandle != first.receiptHandle)

            let before = try await api.snapshot()
            expectError(try await api.acknowledge("q", first.receiptHandle), .receiptHandleStale, "DELETE")
            expectError(try await api.changeVisibility("q", first.receiptHandle, 0), .receiptHandleStale, "PATCH 0")
            expectError(try await api.changeVisibility("q", first.receiptHandle, 600), .receiptHandleStale, "PATCH 600")
            #expect(try await api.snapshot() == before)
            #expect(try await api.describe("q").messages.inFlight == 1)
            #expect(try await api.receive("q").isEmpty)

            // The current delivery keeps its deadline (now + 60 s): not visible at 59 s, visible at 60 s.
            f.clock.advance(bySeconds: 59)
            _ = try await f.broker.runDueWork()
            #expect(try await api.receive("q").isEmpty)
            f.clock.advance(bySeconds: 1)
            _ = try await f.broker.runDueWork()
            let third = try await api.receive("q")
            #expect(third.map { $0.receiveCount } == [3])
        }
    }

    @Test func handleReleasedByPatch0_andReceivedAgain_isStale() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            try await api.send("q", "m")
            let first = try #require(try await api.receive("q").first)
            #expect(try await api.changeVisibility("q", first.receiptHandle, 0).status == 204)
            let second = try #require(try await api.receive("q").first)
            #expect(second.receiveCount == 2)
            expectError(try await api.acknowledge("q", first.receiptHandle), .receiptHandleStale)
            expectError(try await api.changeVisibility("q", first.receiptHandle, 30), .receiptHandleStale)
            #expect(try await api.describe("q").messages.inFlight == 1)
            #expect(try await api.acknowledge("q", second.receiptHandle).status == 204)
            #expect(try await api.describe("q").messages.total == 0)
            expectError(try await api.acknowledge("q", second.receiptHandle), .receiptHandleStale, "acknowledged twice")
        }
    }

    /// An expired handle whose message has not been received since still acknowledges.
    @Test func expiredHandle_notSuperseded_acknowledges() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            try await api.send("q", "m")
            let delivery = try #require(try await api.receive("q", "visibility_timeout=1").first)
            f.clock.advance(bySeconds: 5)
            _ = try await f.broker.runDueWork()
            #expect(try await api.describe("q").messages.ready == 1)
            #expect(try await api.acknowledge("q", delivery.receiptHandle).status == 204)
            #expect(try await api.describe("q").messages.total == 0)
            #expect(try await api.receive("q").isEmpty)
        }
    }

    /// PATCH sets the deadline to now + N (not the original deadline + N).
    @Test func changeVisibility_setsTheDeadlineToNowPlusN() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            try await api.send("q", "m")
            let delivery = try #require(try await api.receive("q", "visibility_timeout=30").first)
            f.clock.advance(bySeconds: 20)
            #expect(try await api.changeVisibility("q", delivery.receiptHandle, 100).status == 204)
            f.clock.advance(bySeconds: 99)
            _ = try await f.broker.runDueWork()
            #expect(try await api.receive("q").isEmpty)
            f.clock.advance(bySeconds: 1)
            _ = try await f.broker.runDueWork()
            #expect(try await api.receive("q").map { $0.receiveCount } == [2])
        }
    }

    @Test func changeVisibility0_releasesAtOnce() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            try await api.send("q", "m")
            let delivery = try #require(try await api.receive("q").first)
            #expect(try await api.changeVisibility("q", delivery.receiptHandle, 0).status == 204)
            #expect(try await api.describe("q").messages.ready == 1)
            #expect(try await api.receive("q").map { $0.receiveCount } == [2])
        }
    }

    static let badVisibilityBodies: [(String?, String)] = [
        (nil, ErrorCode.invalidJSON.name),
        ("", ErrorCode.invalidJSON.name),
        ("{", ErrorCode.invalidJSON.name),
        ("[]", ErrorCode.invalidJSON.name),
        ("{}", ErrorCode.invalidParameter.name),
        ("{\"visibility_timeout\": 43201}", ErrorCode.invalidParameter.name),
        ("{\"visibility_timeout\": -1}", ErrorCode.invalidParameter.name),
        ("{\"visibility_timeout\": \"5\"}", ErrorCode.invalidParameter.name),
        ("{\"visibility_timeout\": 1.5}", ErrorCode.invalidParameter.name),
        ("{\"visibility_timeout\": null}", ErrorCode.invalidParameter.name),
        ("{\"visibility_timeout\": 5, \"extra\": 1}", ErrorCode.invalidParameter.name),
        ("{\"timeout\": 5}", ErrorCode.invalidParameter.name),
    ]

    @Test(arguments: badVisibilityBodies)
    func badPatchBody_is400_andChangesNothing(body: String?, codeName: String) async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            try await api.send("q", "m")
            let delivery = try #require(try await api.receive("q", "visibility_timeout=30").first)
            let before = try await api.snapshot()
            let reply = try await api.request(.patch, "/queues/q/messages/\(delivery.receiptHandle)", body)
            expectError(reply, try #require(ErrorCode.all.first { $0.name == codeName }), body ?? "no body")
            #expect(try await api.snapshot() == before)
            // The deadline did not move: the message returns at exactly 30 s.
            f.clock.advance(bySeconds: 29)
            _ = try await f.broker.runDueWork()
            #expect(try await api.describe("q").messages.inFlight == 1)
            f.clock.advance(bySeconds: 1)
            _ = try await f.broker.runDueWork()
            #expect(try await api.describe("q").messages.ready == 1)
        }
    }

    /// A handle issued by another queue is rejected for this one, and neither queue changes.
    @Test func handleOfAnotherQueue_isRejected_andChangesNothing() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("a")
            try await api.createQueue("b")
            try await api.send("a", "in a")
            try await api.send("b", "in b")
            let delivery = try #require(try await api.receive("a").first)
            _ = try #require(try await api.receive("b").first)
            let before = try await api.snapshot()
            for reply in [try await api.acknowledge("b", delivery.receiptHandle),
                          try await api.changeVisibility("b", delivery.receiptHandle, 0)] {
                #expect(reply.status == 400 || reply.status == 410, "\(reply)")
                #expect([ErrorCode.invalidReceiptHandle.name, ErrorCode.receiptHandleStale.name].contains(reply.errorCode))
                expectErrorShape(reply)
            }
            #expect(try await api.snapshot() == before)
            #expect(try await api.acknowledge("a", delivery.receiptHandle).status == 204)
        }
    }

    /// Purge removes in-flight messages too; their handles then get `410`.
    @Test func purge_makesHandlesStale() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            try await api.send("q", "in flight")
            let delivery = try #require(try await api.receive("q").first)
            try await api.send("q", "ready")
            try await api.send("q", "delayed", delay: 60)
            let purge = try await api.request(.post, "/queues/q/purge")
            #expect(purge.status == 200, "\(purge)")
            #expect(try purge.object()["purged"] as? Int == 3)
            #expect(try await api.describe("q").messages == .init(ready: 0, inFlight: 0, delayed: 0, total: 0))
            expectError(try await api.acknowledge("q", delivery.receiptHandle), .receiptHandleStale)
            expectError(try await api.changeVisibility("q", delivery.receiptHandle, 0), .receiptHandleStale)
            f.clock.advance(bySeconds: 120)
            _ = try await f.broker.runDueWork()
            #expect(try await api.receive("q").isEmpty)
        }
    }

    /// A queue deleted and re-created under the same name does not honour old handles.
    @Test func deletedAndRecreatedQueue_makesOldHandlesStale() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            try await api.send("q", "m")
            let delivery = try #require(try await api.receive("q").first)
            #expect(try await api.request(.delete, "/queues/q").status == 204)
            expectError(try await api.acknowledge("q", delivery.receiptHandle), .queueNotFound)
            try await api.createQueue("q")
            try await api.send("q", "new")
            expectError(try await api.acknowledge("q", delivery.receiptHandle), .receiptHandleStale)
            expectError(try await api.changeVisibility("q", delivery.receiptHandle, 0), .receiptHandleStale)
            #expect(try await api.describe("q").messages.ready == 1)
        }
    }
}
