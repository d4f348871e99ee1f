import NIOCore
import Testing
import TernClient
import TernCore
import TernTestKit
import TernWire

/// Every API over a real socket, and bad frames.
@Suite struct WireServerTests {
    @Test func queueAPIs_roundTripOverTheSocket() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            var patch = QueueAttributes.Patch()
            patch.visibilityTimeout = 60
            let (created, info) = try await client.createQueue("jobs", patch: patch)
            #expect(created)
            #expect(info.attributes.visibilityTimeout == 60)
            #expect(try await client.createQueue("jobs").created == false)
            try await client.createQueue("dlq")
            #expect(try await client.listQueues().map(\.name.rawValue) == ["dlq", "jobs"])

            let sent = try await client.send([OutgoingMessage(body: Array("a".utf8)), OutgoingMessage(body: Array("b".utf8), priority: 9)], to: "jobs")
            #expect(sent.count == 2)
            #expect(try await client.describeQueue("jobs").counts.ready == 2)

            let received = try await client.receive(from: "jobs", maxMessages: 10)
            #expect(received.map { String(decoding: $0.body, as: UTF8.self) } == ["b", "a"], "priority 9 first")
            try await client.changeVisibility(received[1].receiptHandle, on: "jobs", to: 0)
            let results = try await client.acknowledge([received[0].receiptHandle, received[0].receiptHandle], on: "jobs")
            #expect(results[0] == nil)
            #expect(results[1]?.code == .receiptHandleStale)

            let again = try await client.receive(from: "jobs", maxMessages: 10)
            #expect(again.map(\.id) == [sent[0].id])
            #expect(again[0].receiveCount == 2)
            #expect(try await client.purgeQueue("jobs") == 1)
            #expect(try await client.redrive("dlq") == 0)
            try await client.deleteQueue("jobs")
            await #expect(throws: TernError.self) { try await client.describeQueue("jobs") }
            await client.close()
        }
    }

    @Test func brokerErrors_areErrorResponses_andKeepTheConnection() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            do { _ = try await client.describeQueue("nope"); Issue.record("no error") } catch let error as TernError { #expect(error.code == .queueNotFound) }
            do { _ = try await client.describeQueue("bad name!"); Issue.record("no error") } catch let error as TernError { #expect(error.code == .invalidName) }
            try await client.createQueue("q")
            do { _ = try await client.receive(from: "q", maxMessages: 0); Issue.record("no error") } catch let error as TernError { #expect(error.code == .invalidParameter) }
            #expect(try await client.listQueues().count == 1)
            await client.close()
        }
    }

    @Test func longPollingReceive_doesNotBlockOtherRequestsOfTheConnection() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            try await client.createQueue("q")
            async let waiting = client.receive(from: "q", maxMessages: 1, waitTime: 20)
            // Requests behind the long poll on the same connection are answered meanwhile.
            try await Task.sleep(for: .milliseconds(50))
            #expect(try await client.listQueues().count == 1)
            _ = try await client.send([OutgoingMessage(body: Array("x".utf8))], to: "q")
            #expect(try await waiting.count == 1)
            await client.close()
        }
    }

    @Test func requestBeforeApiVersions_getsAnErrorFrame_andTheConnectionCloses() async throws {
        try await WireServerFixture.with { f in
            let raw = try await RawConnection.open(port: f.port)
            let (frames, closed) = try await raw.exchange(WireRequest.listQueues.bytes)
            #expect(closed)
            #expect(frames.count == 1)
            #expect(try WireResponse(decoding: frames[0]) == .error(TernError(.invalidFrame, "the first request on a connection must be ApiVersions")))
        }
    }

    @Test(arguments: [
        ("unknown API key", { @Sendable () -> ByteBuffer in
            var bytes = WireRequest.apiVersions(clientName: "t").bytes
            WireFrame(apiKey: 999, apiVersion: 0, correlationID: 2, payload: ByteBuffer()).write(to: &bytes)
            return bytes
        }, ErrorCode.unsupportedVersion),
        ("unknown version", { @Sendable () -> ByteBuffer in
            var bytes = WireRequest.apiVersions(clientName: "t").bytes
            var frame = WireRequest.listQueues.frame(correlationID: 2)
            frame.apiVersion = 9
            frame.write(to: &bytes)
            return bytes
        }, ErrorCode.unsupportedVersion),
        ("garbled payload", { @Sendable () -> ByteBuffer in
            var bytes = WireRequest.apiVersions(clientName: "t").bytes
            var payload = ByteBuffer()
            payload.writeInteger(UInt16(500))
            WireFrame(apiKey: WireAPI.describeQueue.rawValue, apiVersion: 0, correlationID: 2, payload: payload).write(to: &bytes)
            return bytes
        }, ErrorCode.invalidFrame),
        ("frame above the maximum", { @Sendable () -> ByteBuffer in
            var bytes = WireRequest.apiVersions(clientName: "t").bytes
            bytes.writeInteger(UInt32(128 << 20))
            bytes.writeBytes([0, 1, 0, 0])
            return bytes
        }, ErrorCode.frameTooLarge),
        ("size below the header", { @Sendable () -> ByteBuffer in
            var bytes = WireRequest.apiVersions(clientName: "t").bytes
            bytes.writeInteger(UInt32(3))
            bytes.writeBytes([0, 1, 0])
            return bytes
        }, ErrorCode.invalidFrame),
    ] as [(String, @Sendable () -> ByteBuffer, ErrorCode)])
    func badFrame_getsAnErrorFrame_closesTheConnection_andChangesNothing(_ name: String, _ bytes: @Sendable () -> ByteBuffer, _ code: ErrorCode) async throws {
        try await WireServerFixture.with { f in
            let raw = try await RawConnection.open(port: f.port)
            let (frames, closed) = try await raw.exchange(bytes())
            #expect(closed, "\(name)")
            #expect(frames.count == 2, "\(name): ApiVersions answer, then the error frame")
            // The two answers may come in either order (ApiVersions is answered concurrently).
            let errors = try frames.compactMap { frame -> TernError? in
                if case .error(let error) = try WireResponse(decoding: frame) { return error }
                return nil
            }
            #expect(errors.map(\.code) == [code], "\(name)")
            // The broker still serves new connections and holds no state from the bad frame.
            #expect(try await f.client().listQueues().isEmpty)
        }
    }

    @Test func pipelinedRequests_areAnsweredByCorrelationID() async throws {
        try await WireServerFixture.with { f in
            var bytes = WireRequest.apiVersions(clientName: "raw").frame(correlationID: 10).bytes
            WireRequest.createQueue(name: "p", patch: .init()).frame(correlationID: 11).write(to: &bytes)
            WireRequest.describeQueue(name: "missing").frame(correlationID: 12).write(to: &bytes)
            WireRequest.listQueues.frame(correlationID: 13).write(to: &bytes)
            let raw = try await RawConnection.open(port: f.port)
            let (frames, _) = try await raw.exchange(bytes, limit: 4)
            #expect(Set(frames.map(\.correlationID)) == [10, 11, 12, 13])
            let missing = try #require(frames.first { $0.correlationID == 12 })
            guard case .error(let error) = try WireResponse(decoding: missing) else { Issue.record("no error"); return }
            #expect(error.code == .queueNotFound)
        }
    }
}

/// FIFO queues over the binary protocol: group ids, deduplication ids and the queue's FIFO
/// attributes travel as over HTTP.
@Suite struct WireFifoTests {
    @Test func fifoQueue_keepsGroupOrder_andDeduplicates_overTheSocket() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            var patch = QueueAttributes.Patch()
            patch.fifo = true
            patch.contentBasedDeduplication = true
            patch.overflow = .dropOldest
            patch.maxMessages = .some(100)
            let (_, info) = try await client.createQueue("orders.fifo", patch: patch)
            #expect(info.attributes.fifo && info.attributes.contentBasedDeduplication)
            #expect(info.attributes.overflow == .dropOldest)
            let first = try await client.send([
                OutgoingMessage(body: Array("a1".utf8), groupID: "a"), OutgoingMessage(body: Array("b1".utf8), groupID: "b"),
                OutgoingMessage(body: Array("a2".utf8), groupID: "a"),
            ], to: "orders.fifo")
            // The same body in the same group within 5 minutes is a duplicate (content-based).
            let again = try await client.send([OutgoingMessage(body: Array("a1".utf8), groupID: "a")], to: "orders.fifo")
            #expect(again.map(\.id) == [first[0].id])
            #expect(try await client.describeQueue("orders.fifo").counts.ready == 3)
            // a2 waits while a1 is in flight; b1 flows.
            let first1 = try await client.receive(from: "orders.fifo", maxMessages: 1)
            #expect(first1.map { String(decoding: $0.body, as: UTF8.self) } == ["a1"])
            let next = try await client.receive(from: "orders.fifo", maxMessages: 10)
            #expect(next.map { String(decoding: $0.body, as: UTF8.self) } == ["b1"])
            do {
                _ = try await client.send([OutgoingMessage(body: Array("x".utf8))], to: "orders.fifo")
                Issue.record("a FIFO send without a group id was accepted")
            } catch let error as TernError {
                #expect(error.code == .invalidParameter || error.code == .invalidMessage, "\(error)")
            }
            await client.close()
        }
    }
}
