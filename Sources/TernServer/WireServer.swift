public import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
public import ServiceLifecycle
public import TernBroker
import TernCore
public import TernWire

/// The binary-protocol server (`docs/protocol.md`) as a ServiceLifecycle `Service`.
///
/// Channel handlers only frame bytes (``WireFrameDecoder``/``WireFrameWriter``); each
/// connection runs in Swift concurrency over `NIOAsyncChannel`, where ``WireRequestHandler``
/// turns requests into broker calls.
///
/// Per connection: the first request must be `ApiVersions`; requests are pipelined and
/// answered as they complete (matched by correlation id), except idempotent sends and
/// transaction commits, which are applied one after another in arrival order so that a
/// producer's batches reach the broker in sequence order. A bad frame (too large, garbled,
/// unknown API or version, or anything before `ApiVersions`) is answered with an error frame and
/// the connection is closed; the broker's state is never touched by it.
///
/// ```swift
/// let server = WireServer(broker: broker, settings: .init(), logger: logger)
/// let group = ServiceGroup(services: [server], logger: logger)
/// try await group.run()
/// ```
public struct WireServer: Service {
    /// Settings of the binary-protocol server.
    public struct Settings: Sendable {
        public var host: String = "127.0.0.1"
        /// The TCP port; 0 picks a free one (see ``WireServer/boundPort``).
        public var port: Int = 7081
        public var wire = WireSettings()
        /// The most requests of one connection processed at the same time; further ones wait
        /// (back-pressure on the socket). Default 256.
        public var maxConcurrentRequestsPerConnection: Int = 256
        public var producers = Broker.ProducerSettings()
        /// Bearer tokens: when enabled, a connection sends `Authenticate` after `ApiVersions`
        /// and each request needs the same permission as its HTTP equivalent. Default off.
        public var auth = Auth.Settings()
        /// TLS on this listener (the same certificate and key as HTTP); nil = plain TCP.
        public var tls: TLSSettings?
        /// Where open connections are counted (`tern_binary_open_connections`); nil = nowhere.
        public var metrics: TernMetrics?
        /// The gossip membership `DescribeCluster` answers with; nil: the node runs alone.
        public var cluster: GossipService?
        /// This node's part in a cluster (``WireRequestHandler/clusterNode``); nil: alone.
        public var clusterNode: ClusterNode?
        /// Forwards data requests this node cannot serve to the leader over the binary
        /// protocol (decision 133); nil: they are answered `NotLeader` with the leader's address.
        public var forwarder: WireForwarder?
        /// The most bytes of requests of one connection read and not yet answered (concurrent
        /// and ordered ones together); past it the socket is not read until answers go out
        /// (back-pressure). One request is always let through. Default 16,777,216 (16 MiB).
        public var maxInFlightBytesPerConnection: Int = 16 << 20
        /// A connection that sends nothing for this long while none of its requests is in
        /// flight is closed; nil = never. Default 600 s (Kafka's `connections.max.idle.ms`).
        public var idleTimeout: Duration? = .seconds(600)
        /// The largest frame accepted before a connection has authenticated, when
        /// authentication is on, in bytes. Default 524,288 (512 KiB, Kafka's
        /// `sasl.server.max.receive.size`).
        public var maxFrameBytesBeforeAuthentication: Int = 512 << 10
        /// The process-wide connection cap (shared with the HTTP listener); nil = no cap.
        public var connections: ConnectionLimiter?
        /// The process-wide budget for bytes of frames being received; nil = no budget.
        public var requestBytes: RequestBytesBudget?
        /// Node-to-node traffic (`PeerHello`, `RaftBatch`): the inbound Raft handler, the
        /// cluster key. Default: not in a cluster (peers are answered `NotInCluster`).
        public var peers = PeerSettings()
        public init() {}
    }

    let broker: Broker
    let settings: Settings
    let logger: Logger
    let portBox = PortBox()
    let inFlight = RequestCounter()
    let peerEndpoint: PeerEndpoint

    /// - Precondition: `settings.peers.clusterKey`, when set, has at least 16 bytes.
    public init(broker: Broker, settings: Settings = Settings(), logger: Logger) {
        self.broker = broker
        self.settings = settings
        self.logger = logger
        self.peerEndpoint = PeerEndpoint(settings: settings.peers, authEnabled: settings.auth.enabled)
    }

    /// The node-to-node traffic taken since start (for metrics: hellos, batches, messages
    /// handed to ``PeerSettings/onRaft`` and dropped).
    public var inboundRaft: InboundRaftCounters { peerEndpoint.snapshot }

    /// Binary requests read and not yet answered, over all connections (bounded per connection
    /// by ``Settings/maxConcurrentRequestsPerConnection`` and ``Settings/maxInFlightBytesPerConnection``).
    public var requestsInFlight: Int { inFlight.value }

    /// The port the server listens on, once ``run()`` has bound it.
    public var boundPort: Int? { get async { await portBox.value } }

    /// Listens until graceful shutdown.
    /// - Throws: when the address cannot be bound or the TLS certificate or key cannot be loaded.
    public func run() async throws {
        let wireSettings = settings.wire
        let sslContext = try settings.tls.map { try NIOSSLContext(configuration: try $0.serverConfiguration()) }
        let metrics = settings.metrics
        let connections = settings.connections
        let requestBytes = settings.requestBytes
        let idleTimeout = settings.idleTimeout
        let authEnabled = settings.auth.enabled
        let preAuthFrameBytes = settings.maxFrameBytesBeforeAuthentication
        let requestCounter = inFlight
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            // A client that half-closes still gets the answers (and the error frame for a
            // truncated last frame) before the connection closes.
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .bind(host: settings.host, port: settings.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let drain = ConnectionDrain(counter: requestCounter)
                    let limit = WireFrameLimit(bytes: authEnabled ? min(preAuthFrameBytes, wireSettings.maxFrameBytes) : wireSettings.maxFrameBytes)
                    let sync = channel.pipeline.syncOperations
                    var slot: ConnectionSlot?
                    if let connections {
                        let limit = ConnectionLimitHandler(limiter: connections, logger: logger)
                        try sync.addHandler(limit)
                        slot = limit.slot
                    }
                    if let metrics { try sync.addHandler(ConnectionCounter(metrics: metrics, binary: true)) }
                    if let idleTimeout {
                        try sync.addHandler(IdleStateHandler(readTimeout: TimeAmount(idleTimeout)))
                        try sync.addHandler(IdleConnectionCloser(drain: drain))
                    }
                    if let sslContext { try sync.addHandler(NIOSSLServerHandler(context: sslContext)) }
                    if let requestBytes {
                        try sync.addHandler(FrameBudgetHandler(budget: requestBytes, maxFrameBytes: wireSettings.maxFrameBytes))
                    }
                    try sync.addHandler(ByteToMessageHandler(WireFrameDecoder(settings: wireSettings, limit: limit)))
                    try sync.addHandler(WireFrameWriter())
                    // Few decoded frames wait in the inbound stream: the in-flight bound below
                    // stops reading the socket soon after it is reached.
                    let asyncChannel = try NIOAsyncChannel<WireFrame, WireFrame>(
                        wrappingChannelSynchronously: channel,
                        configuration: .init(backPressureStrategy: .init(lowWatermark: 1, highWatermark: 2),
                                             isOutboundHalfClosureEnabled: true))
                    return AcceptedConnection(channel: asyncChannel, drain: drain, limit: limit, slot: slot)
                }
            }
        let port = server.channel.localAddress?.port ?? settings.port
        await portBox.set(port)
        logger.info("binary protocol listening", metadata: [
            "tern.binary": "\(settings.host):\(port)", "tern.tls": "\(sslContext != nil)", "tern.auth": "\(settings.auth.enabled)",
        ])
        let handler = { () -> WireRequestHandler in
            var handler = WireRequestHandler(broker: broker, logger: logger)
            handler.cluster = settings.cluster
            handler.clusterNode = settings.clusterNode
            handler.forwarder = settings.forwarder
            return handler
        }()
        let authenticator = Authenticator(settings: settings.auth)
        let maxConcurrent = settings.maxConcurrentRequestsPerConnection
        let maxInFlightBytes = settings.maxInFlightBytesPerConnection
        let badFrames = RateLimitedWarning()
        let producerSettings = settings.producers
        let peers = peerEndpoint
        // Graceful shutdown closes the listening socket (the accept loop ends) and drains every
        // connection: requests already read are answered (a long poll within its wait time),
        // later ones get `Unavailable`, then the connection closes.
        let listener = server.channel
        await withDiscardingTaskGroup { group in
            group.addTask {
                // Ends at graceful shutdown (cancelled), without an error.
                await cancelWhenGracefulShutdown { await broker.runProducerExpiry(settings: producerSettings) }
            }
            await withGracefulShutdownHandler {
                do {
                    try await server.executeThenClose { connections in
                        for try await accepted in connections {
                            let channel = accepted.channel.channel
                            let drain = accepted.drain
                            let connection = WireConnection(
                                handler: handler, authenticator: authenticator, maxConcurrent: maxConcurrent,
                                maxInFlightBytes: maxInFlightBytes, frameLimit: accepted.limit, fullFrameBytes: wireSettings.maxFrameBytes,
                                drain: drain, peer: channel.remoteAddress?.ipAddress ?? "unknown", badFrames: badFrames,
                                peers: peers, slot: accepted.slot, logger: logger)
                            group.addTask {
                                await withGracefulShutdownHandler {
                                    await connection.serve(accepted.channel)
                                } onGracefulShutdown: {
                                    drain.begin(closing: channel)
                                }
                            }
                        }
                    }
                } catch {
                    logger.debug("binary protocol accept loop ended", metadata: ["tern.error": "\(error)"])
                }
                logger.info("binary protocol stopped accepting; answering the requests in flight")
            } onGracefulShutdown: {
                listener.close(promise: nil)
            }
        }
        logger.info("binary protocol stopped")
    }
}

actor PortBox {
    private var port: Int?
    private var waiters: [CheckedContinuation<Int, Never>] = []

    func set(_ value: Int) {
        port = value
        for waiter in waiters { waiter.resume(returning: value) }
        waiters = []
    }

    var value: Int {
        get async {
            if let port { return port }
            return await withCheckedContinuation { waiters.append($0) }
        }
    }
}

/// A connection as the accept loop receives it: the async channel, its drain state and its
/// frame-size limit (lowered until `Authenticate` when authentication is on).
struct AcceptedConnection: Sendable {
    let channel: NIOAsyncChannel<WireFrame, WireFrame>
    let drain: ConnectionDrain
    let limit: WireFrameLimit
    /// The connection's place in the connection cap; nil without a cap.
    let slot: ConnectionSlot?
}

/// One client connection: reads frames, dispatches requests, writes responses.
struct WireConnection: Sendable {
    let handler: WireRequestHandler
    let authenticator: Authenticator
    let maxConcurrent: Int
    /// Bytes of requests read and not yet answered, at most (one request always passes).
    var maxInFlightBytes: Int = 16 << 20
    /// The decoder's limit, raised to ``fullFrameBytes`` once the connection has authenticated.
    var frameLimit: WireFrameLimit?
    var fullFrameBytes: Int = WireSettings().maxFrameBytes
    var drain = ConnectionDrain()
    var peer = "unknown"
    var badFrames = RateLimitedWarning()
    /// Where `PeerHello` and `RaftBatch` go; nil: they are answered `NotInCluster`.
    var peers: PeerEndpoint?
    /// Released when the connection proves to be a peer node (decision 102).
    var slot: ConnectionSlot?
    let logger: Logger

    func serve(_ connection: NIOAsyncChannel<WireFrame, WireFrame>) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                try await serve(inbound: inbound, outbound: outbound)
            }
        } catch {
            logger.debug("binary connection ended", metadata: ["tern.error": "\(error)"])
        }
    }

    /// Whether a request that failed to decode leaves the byte stream usable: a well-framed
    /// request with a bad name or attribute is answered and the connection stays open, as for
    /// every other name error; a garbled frame, an unknown API or version closes it.
    static func closesConnection(_ error: TernError) -> Bool {
        [ErrorCode.invalidFrame, .unsupportedVersion, .frameTooLarge].contains(error.code)
    }

    /// Reads the connection's frames and answers them until the client closes, a bad frame, or
    /// a drain.
    ///
    /// Memory per connection (issue 13, decision 120): the requests are child tasks of a
    /// *discarding* task group, so a finished request's task and its task-local allocations
    /// are freed when it completes (a plain `TaskGroup` keeps every finished child until
    /// `next()` or the end of the group: ~7 KiB per answered request, for the connection's
    /// lifetime). The ordered lane (idempotent sends, transaction commits) gets its task on
    /// the first ordered request, not on every connection. Every answer written from this loop
    /// goes through ``write(_:to:outbound:)`` / ``reply(_:to:outbound:)``, separate async
    /// functions, so that their temporaries live in a short-lived frame of their own instead of
    /// this loop's frame, which lives as long as the connection.
    func serve(inbound: NIOAsyncChannelInboundStream<WireFrame>, outbound: NIOAsyncChannelOutboundWriter<WireFrame>) async throws {
        // One element (the request's size in bytes) per answered request.
        let (answered, answeredContinuation) = AsyncStream.makeStream(of: Int.self)
        var answers = answered.makeAsyncIterator()
        await withDiscardingTaskGroup { group in
            // The lane of requests applied one after another; opened on the first one.
            var orderedContinuation: AsyncStream<(WireFrame, WireRequest, String?)>.Continuation?
            var negotiated = false
            var secret: String?
            // The node id of the peer whose PeerHello was accepted on this connection.
            var peerNodeID: String?
            // Requests read and not yet answered, and their bytes: both bounded, so that a
            // client that never reads its answers (or a slow broker) stops the reading of its
            // socket instead of filling memory.
            var inFlight = 0
            var inFlightBytes = 0
            // A reserve connection (past max_connections) that has not become a peer.
            var isReserve: Bool { slot?.admission == .reserve && !(slot?.isReleased ?? true) }
            do {
                for try await frame in inbound {
                    if drain.isDraining {
                        await reply(TernError(.unavailable, "the broker is shutting down"), to: frame, outbound: outbound)
                        continue
                    }
                    let request: WireRequest
                    do throws(TernError) {
                        request = try WireRequest(decoding: frame)
                    } catch {
                        await reply(error, to: frame, outbound: outbound)
                        if !negotiated || Self.closesConnection(error) {
                            badFrames.log("closing binary connection after a bad frame", peer: peer,
                                          metadata: ["tern.error": "\(error)"], logger: logger)
                            break
                        }
                        continue
                    }
                    if !negotiated {
                        guard case .apiVersions = request else {
                            await reply(TernError(.invalidFrame, "the first request on a connection must be ApiVersions"), to: frame, outbound: outbound)
                            badFrames.log("closing binary connection: the first request was not ApiVersions", peer: peer,
                                          metadata: ["tern.api_key": "\(frame.apiKey)"], logger: logger)
                            break
                        }
                        negotiated = true
                    }
                    if case .snapshotChunk(let chunkRequest) = request {
                        // In line too: the follower asks one chunk at a time on its connection.
                        let answer: WireResponse = if let peers { await peers.snapshotChunk(chunkRequest, peer: peerNodeID) }
                            else { .error(TernError(.notInCluster, "this node does not run in a cluster")) }
                        try? await outbound.write(answer.frame(apiKey: frame.apiKey, apiVersion: frame.apiVersion,
                                                               correlationID: frame.correlationID))
                        if case .error(let error) = answer, error.code == .invalidFrame { break }
                        continue
                    }
                    if case .forward = request {
                        // A follower's forward (decision 133): only on a peer connection; then
                        // served concurrently and bounded like a client's requests (below).
                        guard peers != nil else {
                            await reply(TernError(.notInCluster, "this node does not run in a cluster"), to: frame, outbound: outbound)
                            continue
                        }
                        guard peerNodeID != nil else {
                            await reply(TernError(.invalidFrame, "Forward before an accepted PeerHello"), to: frame, outbound: outbound)
                            badFrames.log("closing binary connection: Forward without PeerHello", peer: peer, metadata: [:], logger: logger)
                            break
                        }
                    } else if request.api.isNodeToNode {
                        // In line and in arrival order (Raft does not need it, but a peer's
                        // messages then reach the driver as they were sent); never answered
                        // on success except PeerHello.
                        if let error = handlePeer(request, peerNodeID: &peerNodeID) {
                            await reply(error, to: frame, outbound: outbound)
                            if !PeerEndpoint.keepsConnection(error) {
                                badFrames.log("closing peer connection", peer: peer, metadata: ["tern.error": "\(error)"], logger: logger)
                                break
                            }
                        } else if case .peerHello = request {
                            await write(.done, to: frame, outbound: outbound)
                        }
                        continue
                    }
                    if isReserve, !Self.isHandshake(request) {
                        // Past max_connections (decision 122): the handshake and PeerHello pass
                        // (a peer node leaves the cap, decision 102); anything else is refused.
                        await reply(Self.overloaded(slot), to: frame, outbound: outbound)
                        badFrames.log("closing binary connection: too many open connections", peer: peer, metadata: [:], logger: logger)
                        break
                    }
                    if case .authenticate(let token) = request {
                        // In line, before any later request of the connection is looked at.
                        if authenticator.settings.enabled {
                            guard authenticator.token(forSecret: token) != nil else {
                                await reply(TernError(.unauthorized, "the bearer token is not valid"), to: frame, outbound: outbound)
                                badFrames.log("closing binary connection after an invalid token", peer: peer, metadata: [:], logger: logger)
                                break
                            }
                            secret = token
                            frameLimit?.set(fullFrameBytes)
                        }
                        await write(.done, to: frame, outbound: outbound)
                        continue
                    }
                    do throws(TernError) {
                        try authorize(request, secret: secret)
                    } catch {
                        // Refused before the broker sees it: nothing changes; the connection stays.
                        await reply(error, to: frame, outbound: outbound)
                        continue
                    }
                    let bytes = frame.payload.readableBytes
                    while inFlight >= maxConcurrent || (inFlight > 0 && inFlightBytes + bytes > maxInFlightBytes) {
                        guard let done = await answers.next() else { break }
                        inFlight -= 1
                        inFlightBytes -= done
                    }
                    inFlight += 1
                    inFlightBytes += bytes
                    drain.started()
                    if Self.isOrdered(request) {
                        if orderedContinuation == nil {
                            let (ordered, continuation) = AsyncStream.makeStream(of: (WireFrame, WireRequest, String?).self)
                            orderedContinuation = continuation
                            group.addTask {
                                for await (frame, request, token) in ordered {
                                    await self.answer(frame, request, token: token, outbound: outbound)
                                    answeredContinuation.yield(frame.payload.readableBytes)
                                }
                            }
                        }
                        orderedContinuation?.yield((frame, request, secret))
                        continue
                    }
                    let token = secret
                    group.addTask {
                        await self.answer(frame, request, token: token, outbound: outbound)
                        answeredContinuation.yield(bytes)
                    }
                }
            } catch let error as TernError {
                await reply(error, to: WireFrame(apiKey: WireFrame.unknownAPIKey, apiVersion: 0, correlationID: 0, payload: ByteBuffer()),
                            outbound: outbound)
                badFrames.log("closing binary connection after a bad frame", peer: peer, metadata: ["tern.error": "\(error)"], logger: logger)
            } catch {
                logger.debug("binary connection failed", metadata: ["tern.error": "\(error)"])
            }
            orderedContinuation?.finish()
        }
        answeredContinuation.finish()
    }

    /// The `ApiVersions` handshake, which a reserve connection may still make.
    static func isHandshake(_ request: WireRequest) -> Bool {
        if case .apiVersions = request { return true }
        return false
    }

    /// `Overloaded`, the answer to requests of a connection past `max_connections`.
    static func overloaded(_ slot: ConnectionSlot?) -> TernError {
        let limit = slot.map { " (max_connections \($0.limiter.maxConnections))" } ?? ""
        return TernError(.overloaded, "too many open connections\(limit): this connection is closed; retry later")
    }

    /// Writes `response` as the answer to `frame` (same API key, version and correlation id);
    /// a connection that closed meanwhile is ignored.
    @inline(never)
    func write(_ response: WireResponse, to frame: WireFrame, outbound: NIOAsyncChannelOutboundWriter<WireFrame>) async {
        try? await outbound.write(response.frame(apiKey: frame.apiKey, apiVersion: frame.apiVersion, correlationID: frame.correlationID))
    }

    /// Writes the error frame of `error` as the answer to `frame`.
    @inline(never)
    func reply(_ error: TernError, to frame: WireFrame, outbound: NIOAsyncChannelOutboundWriter<WireFrame>) async {
        await write(.error(error), to: frame, outbound: outbound)
    }

    /// Handles a node-to-node request: a `PeerHello` (once per connection; accepted, it lifts
    /// the pre-authentication frame limit and gives back the connection's place in the
    /// client connection cap) or a `RaftBatch`.
    /// - Returns: nil when taken, else the error to answer with.
    func handlePeer(_ request: WireRequest, peerNodeID: inout String?) -> TernError? {
        guard let peers else { return TernError(.notInCluster, "this node does not run in a cluster") }
        do throws(TernError) {
            switch request {
            case .peerHello(let hello):
                guard peerNodeID == nil else { throw TernError(.invalidFrame, "a second PeerHello on one connection") }
                try peers.accept(hello)
                peerNodeID = hello.nodeID
                frameLimit?.set(fullFrameBytes)
                slot?.release()
                logger.debug("peer connected", metadata: ["tern.peer": "\(peer)", "tern.peer_node": "\(hello.nodeID)"])
            case .raftBatch(let batch):
                try peers.deliver(batch, peer: peerNodeID)
            default:
                preconditionFailure("\(request.api) is not node-to-node")
            }
            return nil
        } catch {
            return error
        }
    }

    /// Checks the request's permissions against the connection's token.
    /// - Throws: ``TernError`` `Unauthorized` without a token (authentication on), `Forbidden`
    ///   when the token lacks a permission the request needs.
    func authorize(_ request: WireRequest, secret: String?) throws(TernError) {
        guard authenticator.settings.enabled else { return }
        let requirements = WireAuthorization.requirements(request)
        guard !requirements.isEmpty else { return }
        guard secret != nil else {
            throw TernError(.unauthorized, "authentication is on: send Authenticate with a bearer token after ApiVersions")
        }
        for requirement in requirements { try authenticator.authorize(token: secret, requirement) }
    }

    /// Requests whose effect depends on arrival order: idempotent sends (sequence numbers) and
    /// transaction commits (transaction sequence numbers).
    static func isOrdered(_ request: WireRequest) -> Bool {
        switch request {
        case .send(_, let producer, _): producer != nil
        case .produce(_, let producer, _): producer != nil
        case .commitTransaction: true
        default: false
        }
    }

    /// Answers one request: a peer's `Forward` is served (never forwarded again); a client's
    /// data request is served here or, on a follower with forwarding on, forwarded to the
    /// leader with `token`, the connection's bearer token.
    func answer(_ frame: WireFrame, _ request: WireRequest, token: String?, outbound: NIOAsyncChannelOutboundWriter<WireFrame>) async {
        let reply: WireFrame
        if case .forward(let forward) = request {
            reply = await handler.answer(forwarded: forward, in: frame) { (request, token) throws(TernError) in
                try self.authorize(request, secret: token)
            }
        } else {
            reply = await handler.answer(frame, request, token: token)
        }
        try? await outbound.write(reply)
        drain.finished()
    }
}

/// The requests of one connection in flight, and whether it is draining for a graceful
/// shutdown (new requests are refused; once the last one is answered the connection closes).
final class ConnectionDrain: Sendable {
    private let inFlight = Atomic<Int>(0)
    private let draining = Atomic<Bool>(false)
    /// The server-wide count, kept alongside; nil = none.
    private let counter: RequestCounter?

    init(counter: RequestCounter? = nil) { self.counter = counter }

    var isDraining: Bool { draining.load(ordering: .acquiring) }
    /// Whether any request of the connection is being answered.
    var isBusy: Bool { inFlight.load(ordering: .acquiring) > 0 }
    func started() {
        inFlight.add(1, ordering: .acquiringAndReleasing)
        counter?.add(1)
    }
    func finished() {
        inFlight.subtract(1, ordering: .acquiringAndReleasing)
        counter?.add(-1)
    }

    /// Refuses new requests, waits for those in flight to be answered, then closes `channel`.
    func begin(closing channel: any Channel) {
        draining.store(true, ordering: .releasing)
        // The graceful-shutdown handler cannot wait; this short-lived task ends with the close.
        Task {
            while inFlight.load(ordering: .acquiring) > 0 { try? await Task.sleep(for: .milliseconds(5)) }
            try? await channel.close()
        }
    }
}

extension WireServer.Settings {
    /// Settings listening on `address` (host, port), the rest at their defaults.
    public init(address: (String, Int)) {
        self.init()
        host = address.0
        port = address.1
    }
}

/// Closes a binary connection on `IdleStateHandler`'s read-idle event when none of its
/// requests is in flight (a long poll waiting for messages is not idle).
final class IdleConnectionCloser: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    let drain: ConnectionDrain

    init(drain: ConnectionDrain) { self.drain = drain }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? IdleStateHandler.IdleStateEvent, event == .read {
            if !drain.isBusy { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// A count shared by tasks (the server's requests in flight).
final class RequestCounter: Sendable {
    private let count = Atomic<Int>(0)
    var value: Int { count.load(ordering: .relaxed) }
    func add(_ delta: Int) { count.add(delta, ordering: .relaxed) }
}
