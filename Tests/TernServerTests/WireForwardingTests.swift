import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing
import TernCore
import TernGossip
@testable import TernServer
import TernTestKit
import TernWire

/// Binary forwarding (decision 133) between real listeners on 127.0.0.1: a ``WireForwarder``
/// (the follower's side) and a ``WireServer`` taking `Forward` frames (the leader's side), with
/// the cluster key and bearer tokens on; and scripted leaders that stall or hang up, for the
/// outcomes a client must be told about.
@Suite struct WireForwardingTests {
    typealias Node = PeerLinksTests.Node
    static let key = PeerLinksTests.keyA
    static let admin = "admin-token-0123456789"
    static let producer = "producer-token-0123456789"
    static let auth: Auth.Settings = {
        var auth = Auth.Settings()
        auth.enabled = true
        auth.tokens = [
            Auth.Token(name: "admin", secret: admin, permissions: [.admin, .produce(NamePattern("*")), .consume(NamePattern("*"))]),
            Auth.Token(name: "producer", secret: producer, permissions: [.produce(NamePattern("*"))]),
        ]
        return auth
    }()

    /// A leader with the cluster key and authentication on.
    static func leader() async throws -> Node {
        try await Node("leader", key: key) { $0.auth = auth }
    }

    static func forwarder(to leader: Node, _ change: (inout WireForwarder.Settings) -> Void = { _ in }) -> WireForwarder {
        let links = PeerLinksTests.links("follower", to: [leader], key: key)
        // Generous on a loaded machine: a connection opened late must not count as a failure.
        let settings = WireForwarder.Settings().with {
            $0.connectTimeout = .seconds(10)
            change(&$0)
        }
        return WireForwarder(links: links, settings: settings, logger: PeerLinksTests.logger)
    }

    static func address(_ port: Int) -> Gossip.Address { Gossip.Address(host: "127.0.0.1", port: UInt16(port)) }

    /// Forwards `request` as a client's frame with correlation id `id` and decodes the answer.
    static func forward(_ forwarder: WireForwarder, _ request: WireRequest, token: String?, port: Int, id: UInt32 = 77,
                        waitTime: Duration = .zero) async throws -> (frame: WireFrame, response: WireResponse) {
        let frame = request.frame(correlationID: id)
        let answer = await forwarder.forward(frame, token: token, waitTime: waitTime, to: "leader", at: address(port))
        return (answer, try WireResponse(decoding: answer))
    }

    static func errorCode(_ response: WireResponse) -> ErrorCode? {
        if case .error(let error) = response { return error.code }
        return nil
    }

    @Test func forwardedRequests_areServedByTheLeader_andAnsweredUnderTheClientsHeader() async throws {
        let leader = try await Self.leader()
        let forwarder = Self.forwarder(to: leader)
        let created = try await Self.forward(forwarder, .createQueue(name: "jobs", patch: .init()), token: Self.admin, port: leader.port, id: 41)
        #expect(created.frame.apiKey == WireAPI.createQueue.rawValue && created.frame.correlationID == 41, "the client's header")
        guard case .queue(let isNew, _) = created.response else { Issue.record("\(created.response)"); return }
        #expect(isNew)
        let sent = try await Self.forward(forwarder, .send(queue: "jobs", producer: nil, messages: [OutgoingMessage(body: Array("hi".utf8))]),
                                          token: Self.producer, port: leader.port)
        guard case .sent(let ids, _) = sent.response else { Issue.record("\(sent.response)"); return }
        #expect(ids.count == 1)
        #expect(try leader.broker.describeQueue(QueueName("jobs")).counts.total == 1, "the leader applied the send")
        let received = try await Self.forward(forwarder, .receive(queue: "jobs", maxMessages: 10, visibilityTimeout: nil, waitTime: 0,
                                                                   autoAcknowledge: false), token: Self.admin, port: leader.port)
        guard case .received(let messages) = received.response else { Issue.record("\(received.response)"); return }
        #expect(messages.map(\.body) == [Array("hi".utf8)])
        let acked = try await Self.forward(forwarder, .acknowledge(queue: "jobs", receiptHandles: messages.map(\.receiptHandle)),
                                           token: Self.admin, port: leader.port)
        #expect(acked.response == .acknowledged([nil]))
        #expect(forwarder.counters.forwarded == 4 && forwarder.counters.answered == 4)
        #expect(forwarder.connections(to: "leader") == 1, "one connection carried them one after another")
        #expect(leader.server.inboundRaft.hellosAccepted == 1, "the follower said hello once, with the cluster key")
        await forwarder.shutdown()
        await leader.shutdown()
    }

    /// The leader authorizes the forwarded request with the client's token, as if the client
    /// had connected to it: without one `Unauthorized`, with one lacking the permission
    /// `Forbidden`, and nothing is applied.
    @Test func theLeaderAuthorizesForwardedRequestsWithTheClientsToken() async throws {
        let leader = try await Self.leader()
        let forwarder = Self.forwarder(to: leader)
        _ = try await Self.forward(forwarder, .createQueue(name: "jobs", patch: .init()), token: Self.admin, port: leader.port)
        let send = WireRequest.send(queue: "jobs", producer: nil, messages: [OutgoingMessage(body: [1])])
        #expect(Self.errorCode(try await Self.forward(forwarder, send, token: nil, port: leader.port).response) == .unauthorized)
        #expect(Self.errorCode(try await Self.forward(forwarder, send, token: "not-a-token-0123456789", port: leader.port).response) == .unauthorized)
        let purge = WireRequest.purgeQueue(name: "jobs")
        #expect(Self.errorCode(try await Self.forward(forwarder, purge, token: Self.producer, port: leader.port).response) == .forbidden)
        let receive = WireRequest.receive(queue: "jobs", maxMessages: 1, visibilityTimeout: nil, waitTime: 0, autoAcknowledge: false)
        #expect(Self.errorCode(try await Self.forward(forwarder, receive, token: Self.producer, port: leader.port).response) == .forbidden)
        #expect(try leader.broker.describeQueue(QueueName("jobs")).counts.total == 0, "nothing refused was applied")
        await forwarder.shutdown()
        await leader.shutdown()
    }

    /// Requests are pipelined on a bounded pool and matched to answers by correlation id (the
    /// leader answers as they complete: long polls after quick sends); past the in-flight bound
    /// the answer is `Overloaded` and nothing is sent.
    @Test func forwardsArePipelinedOnABoundedPool_andPastTheBoundAnswerOverloaded() async throws {
        let leader = try await Self.leader()
        let forwarder = Self.forwarder(to: leader) {
            $0.maxConnectionsPerLeader = 2
            $0.maxInFlight = 6
        }
        _ = try await Self.forward(forwarder, .createQueue(name: "polls", patch: .init()), token: Self.admin, port: leader.port)
        // Four long polls hold four places until messages come.
        let polls = Task {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for k in 0..<4 {
                    group.addTask {
                        let answer = try await Self.forward(
                            forwarder, .receive(queue: "polls", maxMessages: 1, visibilityTimeout: nil, waitTime: 20, autoAcknowledge: false),
                            token: Self.admin, port: leader.port, id: UInt32(100 + k), waitTime: .seconds(20))
                        #expect(answer.frame.correlationID == UInt32(100 + k))
                        guard case .received(let messages) = answer.response else { return -1 }
                        return messages.count
                    }
                }
                return try await group.reduce(0) { $0 + $1 }
            }
        }
        #expect(await PeerLinksTests.eventually { forwarder.inFlight == 4 })
        // Quick requests pass the waiting polls on the same connections.
        let sends = try await withThrowingTaskGroup(of: Bool.self) { group in
            for k in 0..<2 {
                group.addTask {
                    let answer = try await Self.forward(forwarder, .describeQueue(name: "polls"), token: Self.admin, port: leader.port,
                                                        id: UInt32(200 + k))
                    return answer.frame.correlationID == UInt32(200 + k) && Self.errorCode(answer.response) == nil
                }
            }
            return try await group.reduce(true) { $0 && $1 }
        }
        #expect(sends, "answered while the long polls wait")
        #expect(forwarder.connections(to: "leader") <= 2, "the pool is bounded")
        // Six in flight at most: hold two more, then the seventh is refused.
        let held = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<2 {
                    group.addTask {
                        _ = try await Self.forward(
                            forwarder, .receive(queue: "polls", maxMessages: 1, visibilityTimeout: nil, waitTime: 20, autoAcknowledge: false),
                            token: Self.admin, port: leader.port, waitTime: .seconds(20))
                    }
                }
                try await group.waitForAll()
            }
        }
        #expect(await PeerLinksTests.eventually { forwarder.inFlight == 6 })
        let refused = try await Self.forward(forwarder, .listQueues, token: Self.admin, port: leader.port)
        #expect(Self.errorCode(refused.response) == .overloaded)
        #expect(forwarder.counters.overloaded == 1)
        // Six messages release every poll.
        _ = try await leader.broker.send(QueueName("polls"), (0..<6).map { OutgoingMessage(body: [UInt8($0)]) })
        #expect(try await polls.value == 4, "each long poll got its message")
        try await held.value
        #expect(forwarder.inFlight == 0)
        #expect(Self.errorCode(try await Self.forward(forwarder, .listQueues, token: Self.admin, port: leader.port).response) == nil,
                "below the bound again")
        await forwarder.shutdown()
        await leader.shutdown()
    }

    /// A connection idle past `idleTimeout` is replaced before it is used again (the leader's
    /// own idle timeout then never closes one under a request being written).
    @Test func anIdleConnection_isReplacedBeforeItIsUsedAgain() async throws {
        let leader = try await Self.leader()
        let forwarder = Self.forwarder(to: leader) { $0.idleTimeout = .milliseconds(200) }
        #expect(Self.errorCode(try await Self.forward(forwarder, .listQueues, token: Self.admin, port: leader.port).response) == nil)
        #expect(Self.errorCode(try await Self.forward(forwarder, .listQueues, token: Self.admin, port: leader.port).response) == nil)
        #expect(forwarder.counters.connectionsOpened == 1, "reused while fresh")
        try await Task.sleep(for: .milliseconds(400))
        #expect(Self.errorCode(try await Self.forward(forwarder, .listQueues, token: Self.admin, port: leader.port).response) == nil)
        #expect(forwarder.counters.connectionsOpened == 2 && forwarder.connections(to: "leader") == 1, "\(forwarder.counters)")
        await forwarder.shutdown()
        await leader.shutdown()
    }

    /// A leader that cannot be reached: nothing was sent, so the client hears "not applied".
    @Test func aLeaderThatCannotBeReached_answersUnavailable_notApplied() async throws {
        let port = try TernProcess.freePort()
        let links = PeerLinks(nodeID: "follower", settings: .init(), logger: PeerLinksTests.logger) { _ in nil }
        let forwarder = WireForwarder(links: links, logger: PeerLinksTests.logger)
        let answer = try await Self.forward(forwarder, .listQueues, token: nil, port: port)
        guard case .error(let error) = answer.response else { Issue.record("\(answer.response)"); return }
        #expect(error.code == .unavailable && error.message.contains("was not applied"), "\(error.message)")
        #expect(forwarder.counters.notApplied == 1 && forwarder.inFlight == 0)
        #expect(forwarder.connections(to: "leader") == 0, "the failed connection left the pool")
        await forwarder.shutdown()
    }

    /// A follower whose `PeerHello` the leader refuses (another cluster key): nothing was sent,
    /// so "not applied" — and the refusal is the follower's, never reported as the client's
    /// `Unauthorized`.
    @Test func aRefusedPeerHello_answersUnavailable_notApplied() async throws {
        let leader = try await Self.leader()
        let links = PeerLinksTests.links("follower", to: [leader], key: PeerLinksTests.keyB)
        let forwarder = WireForwarder(links: links, settings: .init().with { $0.connectTimeout = .seconds(10) }, logger: PeerLinksTests.logger)
        let answer = try await Self.forward(forwarder, .listQueues, token: Self.admin, port: leader.port)
        guard case .error(let error) = answer.response else { Issue.record("\(answer.response)"); return }
        #expect(error.code == .unavailable && error.message.contains("PeerHello") && error.message.contains("was not applied"), "\(error.message)")
        #expect(forwarder.connections(to: "leader") == 0)
        #expect(leader.server.inboundRaft.hellosRefused == 1)
        await forwarder.shutdown()
        await leader.shutdown()
    }

    /// A leader that hangs up after taking the request, or never answers within the timeout:
    /// the request may or may not have been applied, and the client is told so.
    @Test func aLeaderThatHangsUpOrStalls_answersUnavailable_outcomeUnknown() async throws {
        for behaviour in [ScriptedLeader.Behaviour.hangUp, .stall] {
            let server = try await ScriptedLeader.start(behaviour)
            let port = server.localAddress!.port!
            let links = PeerLinks(nodeID: "follower", settings: .init(), logger: PeerLinksTests.logger) { _ in nil }
            let forwarder = WireForwarder(links: links, settings: .init().with {
                $0.connectTimeout = .seconds(10)
                $0.requestTimeout = .milliseconds(300)
            }, logger: PeerLinksTests.logger)
            let answer = try await Self.forward(forwarder, .purgeQueue(name: "jobs"), token: nil, port: port)
            guard case .error(let error) = answer.response else { Issue.record("\(behaviour): \(answer.response)"); continue }
            #expect(error.code == .unavailable && error.message.contains("may or may not have been applied"), "\(behaviour): \(error.message)")
            if behaviour == .stall { #expect(error.message.contains("did not answer within"), "\(error.message)") }
            #expect(forwarder.counters.outcomeUnknown == 1 && forwarder.inFlight == 0)
            #expect(await PeerLinksTests.eventually { forwarder.connections(to: "leader") == 0 }, "the broken connection left the pool")
            await forwarder.shutdown()
            try await server.close()
        }
    }

    /// `Forward` is node to node: before an accepted `PeerHello` it is refused and the
    /// connection closes; it cannot carry the handshake or another node-to-node frame.
    @Test func forwardBeforePeerHello_isRefused_andForwardCarriesOnlyDataRequests() async throws {
        let leader = try await Node("leader")
        let inner = WireRequest.createQueue(name: "sneaky", patch: .init()).frame(correlationID: 0)
        let frames = try await RawPeer.exchange(port: leader.port, [
            .apiVersions(clientName: "t"), .forward(WireForward(forwarding: inner, token: nil)), .listQueues,
        ], answers: 3)
        #expect(frames.count == 2, "the connection closed after the refusal")
        #expect((try? WireResponse(decoding: frames[1])).flatMap(Self.errorCode) == .invalidFrame)
        #expect(try leader.broker.listQueues().isEmpty)
        let hello = WirePeerHello(nodeID: "follower", target: leader.raftID, timestamp: SystemClock().now.milliseconds,
                                  nonce: Array(repeating: 9, count: 16))
        let describe = WireRequest.describeCluster.frame(correlationID: 0)
        let afterHello = try await RawPeer.exchange(port: leader.port, [
            .apiVersions(clientName: "t"), .peerHello(hello), .forward(WireForward(forwarding: describe, token: nil)),
            .forward(WireForward(forwarding: inner, token: nil)),
        ], answers: 4)
        #expect(afterHello.count == 4)
        #expect((try? WireResponse(decoding: afterHello[2])).flatMap(Self.errorCode) == .invalidFrame, "DescribeCluster is answered locally, not forwarded")
        #expect(afterHello[3].apiKey == WireAPI.forward.rawValue)
        var payload = afterHello[3].payload
        #expect(payload.readInteger(as: UInt16.self) == 0, "the carried CreateQueue was served: \(afterHello[3])")
        #expect(try leader.broker.listQueues().map(\.name.rawValue) == ["sneaky"])
        await leader.shutdown()
    }
}

/// A scripted leader: answers `ApiVersions` and `PeerHello`, then on the first `Forward`
/// hangs up (``Behaviour/hangUp``) or never answers (``Behaviour/stall``).
final class ScriptedLeader: ChannelInboundHandler {
    typealias InboundIn = WireFrame
    typealias OutboundOut = WireFrame
    enum Behaviour: Sendable { case hangUp, stall }
    let behaviour: Behaviour

    init(_ behaviour: Behaviour) { self.behaviour = behaviour }

    static func start(_ behaviour: Behaviour) async throws -> any Channel {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WireFrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(WireFrameWriter())
                    try channel.pipeline.syncOperations.addHandler(ScriptedLeader(behaviour))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch WireAPI(rawValue: frame.apiKey) {
        case .apiVersions?:
            let answer = WireResponse.apiVersions(broker: "scripted", apis: WireAPIVersions.all)
            context.writeAndFlush(wrapOutboundOut(answer.frame(apiKey: frame.apiKey, correlationID: frame.correlationID)), promise: nil)
        case .peerHello?:
            context.writeAndFlush(wrapOutboundOut(WireResponse.done.frame(apiKey: frame.apiKey, correlationID: frame.correlationID)), promise: nil)
        default:
            if behaviour == .hangUp { context.close(promise: nil) }
        }
    }
}
