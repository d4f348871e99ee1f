import NIOCore
import NIOPosix
import Synchronization
import TernClient
import TernCore
import TernServer
import TernTestKit
import TernWire
import Testing

/// Resource bounds of the binary protocol (issue 14): the in-flight bound per connection,
/// the frame limit before authentication, idle timeouts, the connection cap, and the error
/// frames promised by `docs/protocol.md`.
@Suite(.serialized) struct WireHardeningTests {
    /// A raw connection with small socket buffers, so that a client that does not read its
    /// answers blocks the server's writes after a few MiB.
    static func smallBufferConnection(port: Int) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.so_rcvbuf), value: 32 << 10)
            .channelOption(.socketOption(.so_sndbuf), value: 32 << 10)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
    }

    /// The issue's flood: stamped sends from a client that never reads its answers. An 8 MB
    /// answer it does not read blocks the connection's writes, so no request can be answered;
    /// the broker must stop reading at the connection's in-flight bound (1 MiB here: 16 frames
    /// of 64 KiB) instead of queueing every stamped send the client writes.
    @Test func clientThatNeverReads_stampedSendsStopBeingRead_insteadOfFillingMemory() async throws {
        try await WireServerFixture.with(configure: { $0.maxInFlightBytesPerConnection = 1 << 20 }) { f in
            let client = f.client()
            try await client.createQueue("big")
            let body = [UInt8](repeating: 0x61, count: 1_000_000)
            for _ in 0..<8 { _ = try await client.send([OutgoingMessage(body: body)], to: "big") }
            await client.close()

            let channel = try await Self.smallBufferConnection(port: f.port)
            let written = ByteCounter()
            let frameBytes = 64 << 10
            let frames = 512  // 32 MiB in all
            try await channel.executeThenClose { _, outbound in
                var head = WireRequest.apiVersions(clientName: "flood").frame(correlationID: 1).bytes
                WireRequest.receive(queue: "big", maxMessages: 10, visibilityTimeout: nil, waitTime: 0, autoAcknowledge: false)
                    .frame(correlationID: 2).write(to: &head)
                try await outbound.write(head)
                let writer = Task {
                    let message = OutgoingMessage(body: [UInt8](repeating: 0x62, count: frameBytes - 64))
                    for index in 0..<frames {
                        let stamp = WireProducerStamp(producerID: 1, epoch: 0, firstSequence: UInt64(index))
                        let frame = WireRequest.send(queue: "s", producer: stamp, messages: [message]).frame(correlationID: UInt32(10 + index))
                        try await outbound.write(frame.bytes)
                        written.add(frame.bytes.readableBytes)
                    }
                }
                // Wait until the writes stall (or all went through).
                var last = -1
                var stableFor = 0
                for _ in 0..<600 where stableFor < 10 {
                    try await Task.sleep(for: .milliseconds(100))
                    let now = written.value
                    stableFor = now == last ? stableFor + 1 : 0
                    last = now
                    if now >= frames * frameBytes { break }
                }
                let held = f.server.requestsInFlight
                writer.cancel()
                // The receive, and at most 1 MiB of sends (16 frames, one more let through).
                #expect(held <= 18, "the broker held \(held) requests of a connection that never reads (client wrote \(written.value >> 10) KiB)")
            }
        }
    }

    @Test func createQueueWithInvalidDeadLetterQueue_answersInvalidAttribute_andKeepsTheConnection() async throws {
        try await WireServerFixture.with { f in
            var patch = QueueAttributes.Patch()
            patch.maxReceiveCount = .some(3)
            patch.deadLetterQueue = .some(try QueueName("dlqxx"))
            // The same frame with the dead-letter queue's name made invalid (same length).
            var frame = WireRequest.createQueue(name: "q", patch: patch).frame(correlationID: 2)
            var payload = Array(frame.payload.readableBytesView)
            let at = try #require((0...(payload.count - 5)).first { Array(payload[$0..<$0 + 5]) == Array("dlqxx".utf8) })
            payload.replaceSubrange(at..<at + 5, with: Array("bad!x".utf8))
            frame.payload = ByteBuffer(bytes: payload)
            var bytes = WireRequest.apiVersions(clientName: "t").frame(correlationID: 1).bytes
            frame.write(to: &bytes)
            WireRequest.listQueues.frame(correlationID: 3).write(to: &bytes)
            let raw = try await RawConnection.open(port: f.port)
            let (frames, _) = try await raw.exchange(bytes, limit: 3)
            #expect(Set(frames.map(\.correlationID)) == [1, 2, 3], "the connection stays open after a bad attribute")
            let answer = try #require(frames.first { $0.correlationID == 2 })
            guard case .error(let error) = try WireResponse(decoding: answer) else { Issue.record("no error"); return }
            #expect(error.code == .invalidAttribute)
            #expect(try await f.client().listQueues().isEmpty, "nothing was created")
        }
    }

    @Test func halfCloseInTheMiddleOfAFrame_getsAnErrorFrame() async throws {
        try await WireServerFixture.with { f in
            var bytes = WireRequest.apiVersions(clientName: "t").frame(correlationID: 1).bytes
            let truncated = WireRequest.listQueues.frame(correlationID: 2).bytes
            bytes.writeImmutableBuffer(truncated.getSlice(at: 0, length: truncated.readableBytes - 2)!)
            let raw = try await RawConnection.open(port: f.port)
            let underlying = raw.channel.channel
            let frames = try await raw.channel.executeThenClose { inbound, outbound in
                try await outbound.write(bytes)
                try await underlying.close(mode: .output)  // half-close: FIN after the partial frame
                var frames = [WireFrame]()
                for try await frame in inbound { frames.append(frame) }
                return frames
            }
            let errors = try frames.compactMap { frame -> TernError? in
                if case .error(let error) = try WireResponse(decoding: frame) { return error }
                return nil
            }
            #expect(errors.map(\.code) == [.invalidFrame], "\(frames)")
        }
    }

    @Test func authenticationOn_largeFrameBeforeAuthenticate_isRefused_andAcceptedAfter() async throws {
        try await WireServerFixture.with(configure: {
            $0.auth = WireSecurityTests.auth
            $0.maxFrameBytesBeforeAuthentication = 64 << 10
        }) { f in
            let big = WireRequest.send(queue: "orders-in", producer: nil,
                                       messages: [OutgoingMessage(body: [UInt8](repeating: 0x61, count: 100_000))])
            var bytes = WireRequest.apiVersions(clientName: "t").frame(correlationID: 1).bytes
            big.frame(correlationID: 2).write(to: &bytes)
            let (frames, closed) = try await RawConnection.open(port: f.port).exchange(bytes)
            #expect(closed)
            let errors = try frames.compactMap { frame -> TernError? in
                if case .error(let error) = try WireResponse(decoding: frame) { return error }
                return nil
            }
            #expect(errors.map(\.code) == [.frameTooLarge])

            let client = f.client { $0.token = "operator-token-0123456789" }
            try await client.createQueue("orders-in")
            _ = try await client.send([OutgoingMessage(body: [UInt8](repeating: 0x61, count: 100_000))], to: "orders-in")
            await client.close()
        }
    }

    @Test func idleConnection_isClosed_butALongPollInFlightIsNot() async throws {
        try await WireServerFixture.with(configure: { $0.idleTimeout = .seconds(2) }) { f in
            _ = try await f.broker.createOrUpdateQueue(try QueueName("q"), patch: QueueAttributes.Patch())
            // In one write: ApiVersions, then a receive waiting 4 s (longer than the idle
            // timeout). It is answered (empty), then the connection idles and is closed.
            var bytes = WireRequest.apiVersions(clientName: "t").frame(correlationID: 1).bytes
            WireRequest.receive(queue: "q", maxMessages: 1, visibilityTimeout: nil, waitTime: 4, autoAcknowledge: false)
                .frame(correlationID: 2).write(to: &bytes)
            let started = ContinuousClock.now
            let (frames, closed) = try await RawConnection.open(port: f.port).exchange(bytes)
            #expect(closed)
            #expect(Set(frames.map(\.correlationID)) == [1, 2], "the long poll was answered before the close")
            #expect(ContinuousClock.now - started >= .seconds(4))
            #expect(ContinuousClock.now - started < .seconds(40))
        }
    }

    @Test func connectionCap_closesConnectionsPastIt_andFreesSlotsOnClose() async throws {
        let limiter = ConnectionLimiter(maxConnections: 2, reserve: 0)
        try await WireServerFixture.with(configure: { $0.connections = limiter }) { f in
            let first = f.client(), second = f.client()
            _ = try await first.listQueues()
            _ = try await second.listQueues()
            let raw = try await RawConnection.open(port: f.port)
            do {
                let (frames, closed) = try await raw.exchange(WireRequest.apiVersions(clientName: "t").frame(correlationID: 1).bytes)
                #expect(closed && frames.isEmpty, "a third connection is closed at once")
            } catch {
                // Closed before the request was written or read (a reset, a closed channel): closed too.
            }
            await first.close()
            var open = limiter.openConnections
            for _ in 0..<200 where open > 1 {
                try await Task.sleep(for: .milliseconds(20))
                open = limiter.openConnections
            }
            let third = f.client()
            #expect(try await third.listQueues().isEmpty)
            await second.close()
            await third.close()
        }
    }

    /// Decision 72 over the binary protocol: a connection on the reserve (past max_connections)
    /// may make the handshake, but its first request is answered `Overloaded` and it is closed;
    /// once a normal connection closes, a new client is served again.
    @Test func connectionCap_reserveConnection_isAnsweredOverloaded_thenClosed() async throws {
        let limiter = ConnectionLimiter(maxConnections: 1, reserve: 1)
        try await WireServerFixture.with(configure: { $0.connections = limiter }) { f in
            let first = f.client()
            _ = try await first.listQueues()
            let second = f.client()
            do throws(TernError) {
                _ = try await second.listQueues()
                Issue.record("a request on a reserve connection was served")
            } catch {
                #expect(error.code == .overloaded, "\(error)")
                #expect(error.message.contains("max_connections 1"), "\(error.message)")
            }
            #expect(await Self.eventually { limiter.openConnections == 1 }, "the reserve connection was closed")
            #expect(try f.broker.listQueues().isEmpty, "nothing changed")
            await first.close()
            #expect(await Self.eventually { limiter.openConnections == 0 })
            let third = f.client()
            #expect(try await third.listQueues().isEmpty, "served on the freed place")
            await second.close()
            await third.close()
        }
    }

    /// Polls `condition` every 20 ms for up to 10 s.
    static func eventually(_ condition: () -> Bool) async -> Bool {
        for _ in 0..<500 {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition()
    }

    @Test func budget_reservesWholeFrames_andAlwaysLetsOneThrough() {
        let budget = RequestBytesBudget(limit: 100)
        #expect(budget.tryReserve(60))
        #expect(!budget.tryReserve(60))
        budget.release(60)
        #expect(budget.tryReserve(500), "nothing reserved: one oversized request may proceed")
        #expect(!budget.tryReserve(1))
        budget.release(500)
        #expect(budget.reserved == 0)
    }
}

/// Bytes counted from one task and read from another.
final class ByteCounter: Sendable {
    private let count = Atomic<Int>(0)
    var value: Int { count.load(ordering: .relaxed) }
    func add(_ bytes: Int) { count.add(bytes, ordering: .relaxed) }
}
