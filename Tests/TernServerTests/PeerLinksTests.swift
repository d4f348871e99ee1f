import Crypto
import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import Synchronization
import Testing
import TernBroker
import TernCluster
import TernCore
import TernReplication
@testable import TernServer
import TernStorage
import TernTestKit
import TernWire

/// Raft messages between real binary listeners on 127.0.0.1 (``PeerLinks`` out,
/// ``WireServer`` in), and the pure parts: the per-peer queue and the hello checks.
@Suite struct PeerLinksTests {
    static let logger = Logger(label: "test")
    static let keyA = Array("cluster-key-A-0123456789".utf8)
    static let keyB = Array("cluster-key-B-0123456789".utf8)

    /// What a node's `onRaft` received.
    final class Inbox: Sendable {
        let received = Mutex<[(from: Raft.NodeID, envelope: RaftEnvelope)]>([])
        func take(_ from: Raft.NodeID, _ envelopes: [RaftEnvelope]) {
            received.withLock { $0 += envelopes.map { (from, $0) } }
        }
        var envelopes: [RaftEnvelope] { received.withLock { $0.map(\.envelope) } }
        var count: Int { received.withLock { $0.count } }
    }

    /// A broker with a binary listener that takes Raft traffic (or not: `inCluster: false`).
    final class Node: @unchecked Sendable {
        let nodeID: String
        let directory: TemporaryDirectory
        let storage: Storage
        let broker: Broker
        let inbox = Inbox()
        var server: WireServer!
        var task: Task<Void, any Error>?
        var port = 0
        let configure: (inout WireServer.Settings) -> Void

        var raftID: Raft.NodeID { RaftNodeID.of(nodeID) }

        init(_ nodeID: String, key: [UInt8]? = nil, inCluster: Bool = true,
             configure: @escaping (inout WireServer.Settings) -> Void = { _ in }) async throws {
            self.nodeID = nodeID
            directory = try TemporaryDirectory(prefix: "tern-peer")
            var settings = Storage.Settings()
            settings.durable = false
            settings.maxMapBytes = 64 << 20
            storage = try Storage(directory: directory.path, databases: Broker.databaseNames, settings: settings, logger: PeerLinksTests.logger)
            broker = try await Broker.open(storage: storage, clock: SystemClock(), logger: PeerLinksTests.logger)
            let inbox = self.inbox
            self.configure = { settings in
                if inCluster {
                    settings.peers.nodeID = nodeID
                    settings.peers.clusterKey = key
                    settings.peers.onRaft = { from, envelopes in inbox.take(from, envelopes) }
                }
                configure(&settings)
            }
            try await start(port: 0)
        }

        /// Starts the listener on `port` (0: a free one).
        func start(port: Int) async throws {
            var settings = WireServer.Settings()
            settings.port = port
            configure(&settings)
            let server = WireServer(broker: broker, settings: settings, logger: PeerLinksTests.logger)
            self.server = server
            task = Task { try await server.run() }
            self.port = await server.boundPort!
        }

        /// Closes the listener and its connections.
        func stop() async {
            task?.cancel()
            _ = try? await task?.value
            task = nil
        }

        func shutdown() async {
            await stop()
            storage.close()
            directory.remove()
        }
    }

    /// Links from `nodeID` that reach the nodes in `peers` by their Raft ids.
    static func links(_ nodeID: String, to peers: [Node], key: [UInt8]? = nil,
                      _ change: (inout PeerLinks.Settings) -> Void = { _ in }) -> PeerLinks {
        let ports = Mutex<[Raft.NodeID: Node]>(Dictionary(uniqueKeysWithValues: peers.map { ($0.raftID, $0) }))
        var settings = PeerLinks.Settings()
        settings.clusterKey = key
        // Generous on a loaded machine: a hello answered late must not count as a failure.
        settings.connectTimeout = .seconds(30)
        change(&settings)
        return PeerLinks(nodeID: nodeID, settings: settings, logger: logger) { id in
            ports.withLock { $0[id].map { (host: "127.0.0.1", port: $0.port) } }
        }
    }

    static func heartbeat(from: String, to: String, group: UInt64, sequence: UInt64) -> RaftEnvelope {
        RaftEnvelope(group: group, message: Raft.Message(from: RaftNodeID.of(from), to: RaftNodeID.of(to), term: 3,
                                                          kind: .heartbeat(commit: 7, readSequence: sequence)))
    }

    /// Polls `condition` every 20 ms for up to `seconds` (generous: the machine may be loaded).
    static func eventually(_ seconds: Double = 60, _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition()
    }

    // MARK: - Over sockets

    @Test func batchesOfSeveralGroups_travelBothWays_withAClusterKey() async throws {
        let a = try await Node("a", key: Self.keyA), b = try await Node("b", key: Self.keyA)
        let linksA = Self.links("a", to: [b], key: Self.keyA), linksB = Self.links("b", to: [a], key: Self.keyA)
        let entry = Raft.Entry(index: 5, term: 3, payload: Array(repeating: 0x5A, count: 10_000))
        var toB = [RaftEnvelope]()
        for group in [UInt64(0), 17, 42] {
            for sequence in 0..<50 as Range<UInt64> { toB.append(Self.heartbeat(from: "a", to: "b", group: group, sequence: sequence)) }
            toB.append(RaftEnvelope(group: group, message: Raft.Message(from: a.raftID, to: b.raftID, term: 3,
                                                                        kind: .append(prevIndex: 4, prevTerm: 3, entries: [entry], commit: 4))))
        }
        // In several calls, so that some are queued while a frame is being written.
        for chunk in stride(from: 0, to: toB.count, by: 10) { linksA.send(Array(toB[chunk..<min(chunk + 10, toB.count)])) }
        let toA = (0..<20 as Range<UInt64>).map { Self.heartbeat(from: "b", to: "a", group: $0 % 2 == 0 ? 0 : 9, sequence: $0) }
        linksB.send(toA)

        #expect(await Self.eventually { b.inbox.count == toB.count && a.inbox.count == toA.count },
                "b got \(b.inbox.count)/\(toB.count), a got \(a.inbox.count)/\(toA.count)")
        for group in [UInt64(0), 17, 42] {
            #expect(b.inbox.envelopes.filter { $0.group == group } == toB.filter { $0.group == group }, "group \(group), in order")
        }
        #expect(a.inbox.envelopes == toA)
        #expect(b.inbox.received.withLock { $0.allSatisfy { $0.from == a.raftID } })
        let counters = linksA.counters
        #expect(counters.messagesSent == toB.count && counters.droppedTotal == 0, "\(counters)")
        #expect(counters.framesSent >= 1 && counters.framesSent <= toB.count)
        #expect(counters.connectionsEstablished == 1)
        #expect(b.server.inboundRaft.hellosAccepted == 1 && b.server.inboundRaft.messagesReceived == toB.count)
        await linksA.shutdown(); await linksB.shutdown()
        await a.shutdown(); await b.shutdown()
    }

    @Test func restartedPeer_isReachedAgain_afterReconnecting() async throws {
        let b = try await Node("b")
        let links = Self.links("a", to: [b]) { $0.reconnectBackoff = .milliseconds(50); $0.maxReconnectBackoff = .milliseconds(400) }
        links.send([Self.heartbeat(from: "a", to: "b", group: 1, sequence: 0)])
        #expect(await Self.eventually { b.inbox.count == 1 })
        let port = b.port
        await b.stop()
        // Sends while b is down are dropped (counted), and never block or throw.
        var sequence: UInt64 = 1
        #expect(await Self.eventually {
            links.send([Self.heartbeat(from: "a", to: "b", group: 1, sequence: sequence)])
            sequence += 1
            return links.counters.dropped[.connectionLost, default: 0] > 0
        })
        try await b.start(port: port)
        let before = b.inbox.count
        #expect(await Self.eventually {
            links.send([Self.heartbeat(from: "a", to: "b", group: 1, sequence: sequence)])
            sequence += 1
            return b.inbox.count > before
        }, "b is reached on its old port after it restarted")
        #expect(links.counters.connectionsEstablished >= 2)
        await links.shutdown()
        await b.shutdown()
    }

    @Test func wrongClusterKey_isRefused_andNothingIsDelivered() async throws {
        let b = try await Node("b", key: Self.keyB)
        let wrong = Self.links("a", to: [b], key: Self.keyA), none = Self.links("c", to: [b], key: nil)
        wrong.send([Self.heartbeat(from: "a", to: "b", group: 1, sequence: 0)])
        none.send([Self.heartbeat(from: "c", to: "b", group: 1, sequence: 0)])
        #expect(await Self.eventually {
            wrong.counters.hellosRefused >= 1 && none.counters.hellosRefused >= 1
                && wrong.counters.dropped[.connectionLost, default: 0] == 1
        })
        #expect(b.server.inboundRaft.hellosRefused >= 2 && b.server.inboundRaft.hellosAccepted == 0)
        #expect(b.inbox.count == 0)
        #expect(wrong.counters.messagesSent == 0 && wrong.counters.dropped[.connectionLost, default: 0] == 1)
        await wrong.shutdown(); await none.shutdown()
        await b.shutdown()
    }

    @Test func nodeWithoutOnRaft_answersNotInCluster_andKeepsServingTheConnection() async throws {
        let alone = try await Node("x", inCluster: false)
        let hello = WirePeerHello(nodeID: "a", target: RaftNodeID.of("x"), timestamp: SystemClock().now.milliseconds,
                                  nonce: Array(repeating: 1, count: 16))
        let batch = WireRaftBatch(from: "a", messages: [.init(group: 1, bytes: Raft.Codec.encode(
            Self.heartbeat(from: "a", to: "x", group: 1, sequence: 0).message))])
        let frames = try await RawPeer.exchange(port: alone.port, [
            .apiVersions(clientName: "t"), .peerHello(hello), .raftBatch(batch), .listQueues,
        ], answers: 4)
        #expect(frames.count == 4, "every frame answered; the connection stays open")
        let answers = frames.map { try? WireResponse(decoding: $0) }
        #expect(answers[1] == .error(TernError(.notInCluster, "this node does not run in a cluster: it takes no PeerHello")))
        guard case .error(let refused)? = answers[2] else { Issue.record("batch not refused"); return }
        #expect(refused.code == .notInCluster && refused.code.number == 159)
        #expect(answers[3] == .queues([]))
        // And PeerLinks counts the refusal instead of failing.
        let links = Self.links("a", to: [alone])
        links.send([Self.heartbeat(from: "a", to: "x", group: 1, sequence: 0)])
        #expect(await Self.eventually { links.counters.hellosRefused == 1 })
        await links.shutdown()
        await alone.shutdown()
    }

    @Test func undecodableAndMisaddressedMessages_areDroppedAndCounted_theRestDelivered() async throws {
        let b = try await Node("b")
        let hello = WirePeerHello(nodeID: "a", target: b.raftID, timestamp: SystemClock().now.milliseconds,
                                  nonce: Array(repeating: 2, count: 16))
        let good = Raft.Codec.encode(Self.heartbeat(from: "a", to: "b", group: 4, sequence: 1).message)
        let spoofed = Raft.Codec.encode(Self.heartbeat(from: "z", to: "b", group: 4, sequence: 2).message)
        let batch = WireRaftBatch(from: "a", messages: [
            .init(group: 4, bytes: [0xFF, 0x00, 0x01]), .init(group: 4, bytes: spoofed), .init(group: 4, bytes: good),
        ])
        let frames = try await RawPeer.exchange(port: b.port, [
            .apiVersions(clientName: "t"), .peerHello(hello), .raftBatch(batch), .raftBatch(batch), .listQueues,
        ], answers: 3)
        #expect(frames.count == 3, "ApiVersions, PeerHello and ListQueues answered; the batches are one-way")
        #expect(frames.map(\.apiKey) == [WireAPI.apiVersions.rawValue, WireAPI.peerHello.rawValue, WireAPI.listQueues.rawValue])
        #expect(frames.map(\.correlationID) == [1, 2, 5])
        #expect(await Self.eventually { b.inbox.count == 2 })
        #expect(b.inbox.envelopes == [Self.heartbeat(from: "a", to: "b", group: 4, sequence: 1),
                                      Self.heartbeat(from: "a", to: "b", group: 4, sequence: 1)])
        let counts = b.server.inboundRaft
        #expect(counts.messagesUndecodable == 2 && counts.messagesMisaddressed == 2 && counts.batchesReceived == 2)
        await b.shutdown()
    }

    /// `SnapshotChunk` over sockets: a follower's ``PeerSnapshotClient`` (with the cluster key)
    /// reads a whole file chunk by chunk from the peer's `onSnapshotChunk`, reusing one connection;
    /// an error of the handler reaches the client as the error.
    @Test func snapshotChunks_travelOverAnAuthenticatedPeerConnection() async throws {
        let file = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let asked = Mutex<[(Raft.NodeID, SnapshotChunkRequest)]>([])
        let a = try await Node("a", key: Self.keyA) { settings in
            settings.peers.onSnapshotChunk = { from, request throws(TernError) in
                asked.withLock { $0.append((from, request)) }
                guard request.group == 1 else { throw TernError(.invalidParameter, "no group \(request.group)") }
                let start = Int(request.offset), end = min(file.count, start + Int(request.maxBytes))
                return SnapshotChunk(snapshotID: 77, info: SnapshotFile.Info(group: 1, applied: 9, bytes: UInt64(file.count), checksum: 5),
                                     offset: request.offset, data: Array(file[start..<end]))
            }
        }
        let links = Self.links("b", to: [a], key: Self.keyA)
        let client = PeerSnapshotClient(links: links)
        var received = [UInt8]()
        var id: UInt64 = 0
        while received.count < file.count {
            let chunk = try await client.chunk(SnapshotChunkRequest(group: 1, snapshotID: id, minApplied: 9, offset: UInt64(received.count),
                                                                    maxBytes: 3000), from: a.raftID)
            #expect(chunk.info == SnapshotFile.Info(group: 1, applied: 9, bytes: 10_000, checksum: 5))
            id = chunk.snapshotID
            received += chunk.data
        }
        #expect(received == file)
        #expect(asked.withLock { $0.count == 4 && $0.allSatisfy { $0.0 == RaftNodeID.of("b") } }, "four chunks, from b")
        #expect(a.server.inboundRaft.hellosAccepted == 1, "one connection for the whole transfer")
        await #expect(throws: TernError(.invalidParameter, "no group 2")) {
            _ = try await client.chunk(SnapshotChunkRequest(group: 2, snapshotID: 0, minApplied: 0, offset: 0, maxBytes: 10), from: a.raftID)
        }
        client.shutdown()
        await links.shutdown()
        await a.shutdown()
    }

    @Test func snapshotChunkBeforeHello_isRefused_andClosesTheConnection() async throws {
        let b = try await Node("b") { settings in
            settings.peers.onSnapshotChunk = { _, _ throws(TernError) in throw TernError(.internalError, "must not be called") }
        }
        let request = WireSnapshotChunkRequest(group: 1, snapshotID: 0, minApplied: 0, offset: 0, maxBytes: 100)
        let frames = try await RawPeer.exchange(port: b.port, [.apiVersions(clientName: "t"), .snapshotChunk(request), .listQueues],
                                               answers: 3)
        #expect(frames.count == 2, "the connection closes after the refusal")
        guard case .error(let error)? = try? WireResponse(decoding: frames[1]) else { Issue.record("not refused"); return }
        #expect(error.code == .invalidFrame)
        await b.shutdown()
    }

    @Test func batchBeforeHello_isRefused_andClosesTheConnection() async throws {
        let b = try await Node("b")
        let batch = WireRaftBatch(from: "a", messages: [.init(group: 1, bytes: [1])])
        let frames = try await RawPeer.exchange(port: b.port, [.apiVersions(clientName: "t"), .raftBatch(batch), .listQueues],
                                               answers: 3)
        #expect(frames.count == 2, "the connection closes after the refusal")
        guard case .error(let error)? = try? WireResponse(decoding: frames[1]) else { Issue.record("not refused"); return }
        #expect(error.code == .invalidFrame)
        #expect(b.inbox.count == 0)
        await b.shutdown()
    }

    /// Decision 102: a peer gives back its place in the client connection cap once its hello
    /// is accepted, so clients filling the cap cannot starve Raft traffic.
    @Test func acceptedPeer_leavesTheClientConnectionCap() async throws {
        let limiter = ConnectionLimiter(maxConnections: 1, reserve: 1)
        let b = try await Node("b") { $0.connections = limiter }
        // A client holds the one normal place; the peer comes in on the reserve.
        let client = try await RawPeer.open(port: b.port)
        #expect(await Self.eventually { limiter.openConnections == 1 })
        let links = Self.links("a", to: [b])
        links.send([Self.heartbeat(from: "a", to: "b", group: 1, sequence: 0)])
        #expect(await Self.eventually { b.inbox.count == 1 })
        #expect(await Self.eventually { limiter.openConnections == 1 }, "the peer no longer counts")
        // A second client still finds the reserve free.
        let second = try await RawPeer.open(port: b.port)
        #expect(await Self.eventually { limiter.openConnections == 2 })
        try? await client.channel.channel.close()
        try? await second.channel.channel.close()
        await links.shutdown()
        await b.shutdown()
    }

    @Test func withAuthenticationOn_aPeerWithTheKey_sendsBatchesAboveThePreAuthenticationLimit() async throws {
        let b = try await Node("b", key: Self.keyA) { $0.auth.enabled = true }
        let links = Self.links("a", to: [b], key: Self.keyA)
        let entry = Raft.Entry(index: 1, term: 1, payload: Array(repeating: 7, count: 2 << 20))
        let append = RaftEnvelope(group: 3, message: Raft.Message(from: RaftNodeID.of("a"), to: b.raftID, term: 1,
                                                                  kind: .append(prevIndex: 0, prevTerm: 0, entries: [entry], commit: 0)))
        links.send([append])
        #expect(await Self.eventually { b.inbox.count == 1 }, "a 2 MiB batch after the hello (the limit before it is 512 KiB)")
        #expect(b.inbox.envelopes == [append])
        // Without a key, a node with authentication on refuses the peer.
        let unkeyed = Self.links("c", to: [b])
        unkeyed.send([Self.heartbeat(from: "c", to: "b", group: 1, sequence: 0)])
        #expect(await Self.eventually { unkeyed.counters.hellosRefused == 1 })
        await links.shutdown(); await unkeyed.shutdown()
        await b.shutdown()
    }

    /// A peer that takes the hello and then stops reading (a `SIGSTOP`ped process, a cut
    /// network): the unfinished write closes the link after the write timeout, and the next
    /// send opens a new one.
    @Test func peerThatStopsReading_isCutOff_afterTheWriteTimeout_andReconnected() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelOption(.socketOption(.so_rcvbuf), value: 4096)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WireFrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(WireFrameWriter())
                    try channel.pipeline.syncOperations.addHandler(StallingPeer())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let port = server.localAddress!.port!
        let links = PeerLinks(nodeID: "a", settings: .init().with { $0.writeTimeout = .milliseconds(300) }, logger: Self.logger) { _ in
            (host: "127.0.0.1", port: port)
        }
        let entry = Raft.Entry(index: 1, term: 1, payload: Array(repeating: 1, count: 1 << 20))
        let appends = (0..<40).map { _ in
            RaftEnvelope(group: 1, message: Raft.Message(from: RaftNodeID.of("a"), to: 9, term: 1,
                                                         kind: .append(prevIndex: 0, prevTerm: 0, entries: [entry], commit: 0)))
        }
        links.send(appends)
        #expect(await Self.eventually { links.counters.dropped[.connectionLost, default: 0] > 0 }, "\(links.counters)")
        #expect(links.counters.messagesSent < appends.count)
        links.send([RaftEnvelope(group: 1, message: Raft.Message(from: RaftNodeID.of("a"), to: 9, term: 1,
                                                                 kind: .heartbeat(commit: 0, readSequence: 0)))])
        #expect(await Self.eventually { links.counters.connectionsEstablished == 2 }, "reconnected on the next send")
        await links.shutdown()
        try await server.close()
    }

    // MARK: - Pure: the per-peer queue

    static func message(_ i: Int, bytes: Int = 10) -> WireRaftBatch.Message {
        WireRaftBatch.Message(group: UInt64(i), bytes: Array(repeating: UInt8(truncatingIfNeeded: i), count: bytes))
    }

    @Test func perPeerBound_dropsTheOldest_andCountsThem() {
        var state = LinksState()
        let settings = PeerLinks.Settings().with { $0.maxQueuedMessagesPerPeer = 10 }
        let first = state.enqueue([Self.message(0)], to: 7, settings: settings, now: .now(), nodeID: "a")
        guard case .connect(7, _)? = first.first else { Issue.record("no connect: \(first)"); return }
        for i in 1..<25 { #expect(state.enqueue([Self.message(i)], to: 7, settings: settings, now: .now(), nodeID: "a").isEmpty) }
        #expect(Array(state.peers[7]!.queue).map(\.group) == Array(15..<25).map(UInt64.init), "the newest ten stay")
        #expect(state.counters.dropped[.queueFull] == 15)
        // The byte bound as well: three 400-byte messages in a 1,000-byte bound keep two.
        let bytes = PeerLinks.Settings().with { $0.maxQueuedBytesPerPeer = 1_000 }
        _ = state.enqueue((0..<3).map { Self.message(100 + $0, bytes: 400) }, to: 8, settings: bytes, now: .now(), nodeID: "a")
        #expect(Array(state.peers[8]!.queue).map(\.group) == [101, 102])
        #expect(state.peers[8]!.queuedBytes == 800)
        #expect(state.counters.dropped[.queueFull] == 16)
    }

    @Test func failedConnection_dropsItsQueue_andBacksOffDoubling() {
        var state = LinksState()
        let settings = PeerLinks.Settings()
        guard case .connect(_, let generation)? = state.enqueue([Self.message(0), Self.message(1)], to: 7, settings: settings,
                                                                  now: .now(), nodeID: "a").first else {
            Issue.record("no connect"); return
        }
        _ = state.failed(7, generation: generation, reason: .connectionLost, settings: settings)
        #expect(state.counters.dropped[.connectionLost] == 2 && state.peers[7]!.queue.isEmpty)
        #expect(state.enqueue([Self.message(2)], to: 7, settings: settings, now: .now(), nodeID: "a").isEmpty, "backing off")
        #expect(state.counters.dropped[.connectionLost] == 3)
        let later = state.enqueue([Self.message(3)], to: 7, settings: settings, now: .now() + .seconds(3), nodeID: "a")
        guard case .connect? = later.first else { Issue.record("no reconnect after the backoff"); return }
        #expect((1...7).map { LinksState.backoff(failures: $0, settings: settings) }
                == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .milliseconds(1600), .seconds(2), .seconds(2)])
        #expect(state.connecting == 1)
    }

    @Test func nextBatch_takesWhatFits_oldestFirst() {
        var peer = LinksState.Peer()
        peer.phase = .ready
        peer.channel = EmbeddedChannel()
        for i in 0..<10 { peer.queue.append(Self.message(i, bytes: 100)); peer.queuedBytes += 100 }
        let settings = PeerLinks.Settings().with { $0.maxBatchBytes = 64 + 3 * 112; $0.maxMessagesPerBatch = 100 }
        guard case .write(_, let batch, _, _)? = LinksState.nextBatch(&peer, 7, settings: settings, nodeID: "a") else {
            Issue.record("no batch"); return
        }
        #expect(batch.map(\.group) == [0, 1, 2])
        #expect(WireRaftBatch(from: "a", messages: batch).payloadBytes <= settings.maxBatchBytes)
        #expect(LinksState.nextBatch(&peer, 7, settings: settings, nodeID: "a").map { _ in true } == nil, "one write at a time")
        peer.writing = false
        let count = PeerLinks.Settings().with { $0.maxMessagesPerBatch = 4 }
        guard case .write(_, let next, _, _)? = LinksState.nextBatch(&peer, 7, settings: count, nodeID: "a") else {
            Issue.record("no batch"); return
        }
        #expect(next.map(\.group) == [3, 4, 5, 6])
        #expect(peer.queue.count == 3 && peer.queuedBytes == 300)
    }

    // MARK: - Pure: the hello checks

    static func signed(_ hello: WirePeerHello, key: [UInt8]) -> WirePeerHello {
        var hello = hello
        hello.proof = Array(HMAC<SHA256>.authenticationCode(for: hello.authenticatedBytes, using: SymmetricKey(data: key)))
        return hello
    }

    static func endpoint(key: [UInt8]?, auth: Bool = false, now: UInt64, maxRemembered: Int = 65_536) -> PeerEndpoint {
        var settings = WireServer.PeerSettings()
        settings.nodeID = "b"
        settings.clusterKey = key
        settings.maxRememberedHellos = maxRemembered
        settings.onRaft = { _, _ in }
        return PeerEndpoint(settings: settings, authEnabled: auth, now: { now })
    }

    static func refusal(_ endpoint: PeerEndpoint, _ hello: WirePeerHello) -> ErrorCode? {
        do { try endpoint.accept(hello); return nil } catch { return error.code }
    }

    @Test func hello_isCheckedForProof_target_clockSkew_andReplay() {
        let now: UInt64 = 1_800_000_000_000
        let endpoint = Self.endpoint(key: Self.keyA, now: now)
        func hello(_ nonce: UInt8, at timestamp: UInt64 = now, to target: Raft.NodeID = RaftNodeID.of("b")) -> WirePeerHello {
            WirePeerHello(nodeID: "a", target: target, timestamp: timestamp, nonce: Array(repeating: nonce, count: 16))
        }
        #expect(Self.refusal(endpoint, Self.signed(hello(1), key: Self.keyA)) == nil)
        #expect(Self.refusal(endpoint, Self.signed(hello(1), key: Self.keyA)) == .unauthorized, "a replay")
        #expect(Self.refusal(endpoint, hello(2)) == .unauthorized, "no proof")
        #expect(Self.refusal(endpoint, Self.signed(hello(3), key: Self.keyB)) == .unauthorized, "another key")
        var tampered = Self.signed(hello(4), key: Self.keyA)
        tampered.timestamp += 1
        #expect(Self.refusal(endpoint, tampered) == .unauthorized, "a field changed after signing")
        #expect(Self.refusal(endpoint, Self.signed(hello(5, at: now - 61_000), key: Self.keyA)) == .unauthorized, "61 s old")
        #expect(Self.refusal(endpoint, Self.signed(hello(6, at: now + 61_000), key: Self.keyA)) == .unauthorized, "61 s ahead")
        #expect(Self.refusal(endpoint, Self.signed(hello(7, at: now - 59_000), key: Self.keyA)) == nil, "59 s old")
        #expect(Self.refusal(endpoint, Self.signed(hello(8, to: RaftNodeID.of("c")), key: Self.keyA)) == .invalidParameter)
        #expect(endpoint.snapshot.hellosAccepted == 2 && endpoint.snapshot.hellosRefused == 7)
    }

    @Test func hello_withoutAKey_isAcceptedUnlessAuthenticationIsOn_andRefusedOutsideACluster() {
        let now: UInt64 = 1_800_000_000_000
        let hello = WirePeerHello(nodeID: "a", target: RaftNodeID.of("b"), timestamp: 0, nonce: Array(repeating: 1, count: 16))
        #expect(Self.refusal(Self.endpoint(key: nil, now: now), hello) == nil, "trusted network: no key, no auth")
        #expect(Self.refusal(Self.endpoint(key: nil, auth: true, now: now), hello) == .unauthorized, "auth on needs a key")
        let alone = PeerEndpoint(settings: WireServer.PeerSettings(), authEnabled: false)
        #expect(Self.refusal(alone, hello) == .notInCluster)
    }

    @Test func rememberedHellos_areBounded_andExpire() {
        let now: UInt64 = 1_800_000_000_000
        let endpoint = Self.endpoint(key: Self.keyA, now: now, maxRemembered: 2)
        func hello(_ nonce: UInt8, at timestamp: UInt64) -> WirePeerHello {
            Self.signed(WirePeerHello(nodeID: "a", target: RaftNodeID.of("b"), timestamp: timestamp,
                                      nonce: Array(repeating: nonce, count: 16)), key: Self.keyA)
        }
        #expect(Self.refusal(endpoint, hello(1, at: now)) == nil)
        #expect(Self.refusal(endpoint, hello(2, at: now)) == nil)
        #expect(Self.refusal(endpoint, hello(3, at: now)) == .overloaded, "full of live nonces")
        let later = Self.endpoint(key: Self.keyA, now: now, maxRemembered: 2)
        #expect(Self.refusal(later, hello(1, at: now - 59_000)) == nil)
        #expect(Self.refusal(later, hello(2, at: now)) == nil)
        // Full again; nonce 1 is still within the skew, so room comes only when it ages out —
        // which it does not at this fixed clock.
        #expect(Self.refusal(later, hello(3, at: now)) == .overloaded)
    }
}

/// A raw binary-protocol connection that writes requests and reads frames, for the frames
/// PeerLinks never sends wrongly.
struct RawPeer {
    let channel: NIOAsyncChannel<WireFrame, WireFrame>

    static func open(port: Int) async throws -> RawPeer {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WireFrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(WireFrameWriter())
                    return try NIOAsyncChannel<WireFrame, WireFrame>(wrappingChannelSynchronously: channel)
                }
            }
        return RawPeer(channel: channel)
    }

    /// Writes `requests` (correlation ids 1, 2, …), then reads frames until the server closes
    /// the connection or `answers` frames came; returns them by correlation id (answers may
    /// come in any order: requests are pipelined).
    static func exchange(port: Int, _ requests: [WireRequest], answers: Int) async throws -> [WireFrame] {
        let peer = try await open(port: port)
        return try await peer.channel.executeThenClose { inbound, outbound in
            for (index, request) in requests.enumerated() {
                try await outbound.write(request.frame(correlationID: UInt32(index + 1)))
            }
            var frames = [WireFrame]()
            for try await frame in inbound {
                frames.append(frame)
                if frames.count == answers { break }
            }
            return frames.sorted { $0.correlationID < $1.correlationID }
        }
    }
}

/// Answers `PeerHello` and then never reads again.
final class StallingPeer: ChannelInboundHandler {
    typealias InboundIn = WireFrame
    typealias OutboundOut = WireFrame

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard frame.apiKey == WireAPI.peerHello.rawValue else { return }
        context.writeAndFlush(wrapOutboundOut(WireResponse.done.frame(apiKey: frame.apiKey, correlationID: frame.correlationID)),
                              promise: nil)
        context.channel.setOption(.autoRead, value: false).whenComplete { _ in }
    }
}
