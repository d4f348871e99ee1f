public import Logging
import NIOCore
import NIOPosix
import NIOSSL
import CoreMetrics
import Synchronization
public import TernCore
public import TernGossip
public import TernWire
import TernCluster

/// Forwarding of binary-protocol requests in a cluster (issue 11, "any node serves any
/// request"; decision 133): a data request that reaches a follower is sent on to the data
/// group's leader in a `Forward` frame (API key 64) and the leader's answer is returned to the
/// client under the client's own header (same API key, version and correlation id), byte for
/// byte as the leader encoded it. A client of the protocol that neither asks `Metadata` nor
/// follows `NotLeader` (another language's client, a TCP load balancer in front of the nodes)
/// is then served by any node.
///
/// How it behaves, following the HTTP forwarding (`HTTPAPI+Forwarding.swift`) and Kafka's
/// `NetworkClient`:
/// - **Peer identity.** Connections to the leader are peer connections, opened like the Raft
///   links: `ApiVersions`, then a `PeerHello` with the cluster key's proof, over TLS when the
///   nodes serve TLS. The client's bearer token travels in the `Forward`, and the leader
///   authorizes the request with it as if the client had connected there.
/// - **A bounded pool per leader.** Up to ``Settings/maxConnectionsPerLeader`` connections,
///   opened on demand (a new one when every open one has requests in flight), requests
///   pipelined on each and matched to answers by correlation id. Connections to a node that no
///   longer leads are closed once nothing is in flight on them.
/// - **Bounded memory.** At most ``Settings/maxInFlight`` requests are being forwarded at once,
///   long polls included (a receive with a wait time holds one place for up to its wait time);
///   past it the answer is `Overloaded` and nothing is sent.
/// - **Outcomes.** A forward whose connection never opened (refused, connect timeout, the hello
///   refused), or whose bytes never left this node, answers `Unavailable` "the request was not
///   applied; retry". A connection that breaks, or a leader that does not answer within
///   ``Settings/requestTimeout`` plus the request's wait time (the connection is then closed,
///   as Kafka's client does), answers `Unavailable` "may or may not have been applied; retry".
/// - **No loops.** A node that receives a `Forward` and does not lead answers `NotLeader`
///   naming the leader it knows; it never forwards again.
///
/// ```swift
/// let forwarder = WireForwarder(links: links, settings: .init(), logger: logger) { node.countForwarded() }
/// var settings = WireServer.Settings()
/// settings.forwarder = forwarder
/// ```
public final class WireForwarder: Sendable {
    /// Settings of binary forwarding.
    public struct Settings: Sendable, Hashable {
        /// The most connections to one leader. Default 4 (each pipelines up to the leader's
        /// `maxConcurrentRequestsPerConnection`, 256).
        public var maxConnectionsPerLeader: Int = 4
        /// The most requests being forwarded at once, over all leaders and client connections;
        /// past it the answer is `Overloaded`. Default 1,024.
        public var maxInFlight: Int = 1_024
        /// How long opening a connection to the leader may take before the forward fails as
        /// "not applied". Default 500 ms (as HTTP forwarding).
        public var connectTimeout: Duration = .milliseconds(500)
        /// How long the leader may take to answer, on top of the request's wait time (a long
        /// poll's); then the connection is closed and the outcome is unknown. Default 25 s
        /// (below `TernClient`'s 30 s, so that the client hears why).
        public var requestTimeout: Duration = .seconds(25)
        /// The largest frame forwarded, in bytes (the leader's `--max-request-bytes`, the same
        /// on every node); a request too large once wrapped in a `Forward` is answered
        /// `NotLeader` naming the leader instead. Default 67,108,864 (64 MiB).
        public var maxFrameBytes: Int = 64 << 20
        /// The largest answer read from a leader, in bytes. Default 536,870,912 (512 MiB, as
        /// HTTP forwarding: a receive of 1,000 messages of 256 KiB with room to spare).
        public var maxAnswerFrameBytes: Int = 512 << 20
        /// A connection with nothing in flight for this long is closed before it is used again
        /// (a new one is opened), so that the leader's idle timeout (`--binary-idle-timeout`,
        /// 600 s) never closes a connection just as a request is written to it. Default 300 s.
        public var idleTimeout: Duration = .seconds(300)

        public init() {}

        /// A copy with `change` applied.
        public func with(_ change: (inout Settings) -> Void) -> Settings {
            var copy = self
            change(&copy)
            return copy
        }

        /// - Throws: ``TernError`` `InvalidParameter` naming the first setting out of range.
        public func validate() throws(TernError) {
            func fail(_ message: String) -> TernError { TernError(.invalidParameter, "binary forwarding: \(message)") }
            guard maxConnectionsPerLeader >= 1 else { throw fail("maxConnectionsPerLeader must be at least 1") }
            guard maxInFlight >= 1 else { throw fail("maxInFlight must be at least 1") }
            guard connectTimeout > .zero, requestTimeout > .zero, idleTimeout > .zero else { throw fail("timeouts must be positive") }
            guard maxFrameBytes >= 1024, maxAnswerFrameBytes >= 1024 else { throw fail("frame limits must be at least 1024 bytes") }
        }
    }

    /// What the forwarder did since start (for metrics and tests).
    public struct Counters: Sendable, Hashable {
        /// Requests taken for forwarding (within the bounds), and answered by the leader.
        public var forwarded = 0, answered = 0
        /// Refused before sending: over ``Settings/maxInFlight`` (`Overloaded`), too large to
        /// wrap (`NotLeader`).
        public var overloaded = 0, tooLarge = 0
        /// Failed as "not applied" (no connection), and as "may or may not have been applied"
        /// (connection lost, timeout).
        public var notApplied = 0, outcomeUnknown = 0
        /// Connections opened to leaders.
        public var connectionsOpened = 0

        public init() {}
    }

    let links: PeerLinks
    public let settings: Settings
    let logger: Logger
    let onForward: @Sendable () -> Void
    private let state = Mutex(State())

    private struct State {
        var pools: [String: Pool] = [:]
        var inFlight = 0
        var closed = false
        var counters = Counters()
    }

    /// The connections to one leader, opening or open.
    private struct Pool {
        var address: Gossip.Address
        var slots: [Slot] = []
    }

    /// - Parameters:
    ///   - links: the node's Raft links: their node id, cluster key (for `PeerHello`), TLS
    ///     context and event loop group are used for the forwarding connections.
    ///   - onForward: called once per request taken for forwarding (the cluster's forwarded
    ///     requests metric).
    /// - Precondition: `settings` are valid (``Settings/validate()``).
    public init(links: PeerLinks, settings: Settings = Settings(), logger: Logger, onForward: @escaping @Sendable () -> Void = {}) {
        precondition((try? settings.validate()) != nil, "invalid binary forwarding settings")
        self.links = links
        self.settings = settings
        self.logger = logger
        self.onForward = onForward
    }

    public var counters: Counters { state.withLock { $0.counters } }

    /// Requests being forwarded now.
    public var inFlight: Int { state.withLock { $0.inFlight } }

    /// Open or opening connections to `leader`.
    public func connections(to leader: String) -> Int { state.withLock { $0.pools[leader]?.slots.count ?? 0 } }

    /// Open or opening connections to every leader.
    public var connectionCount: Int { state.withLock { $0.pools.values.reduce(0) { $0 + $1.slots.count } } }

    /// The answer to the client's `frame` from `leader` (listening on `address`), under the
    /// client's header; never throws: every failure is an error frame saying whether the
    /// request may have been applied.
    /// - Parameters:
    ///   - token: the bearer token the client's connection authenticated with (nil: none).
    ///   - waitTime: how long the request may wait on the leader for data (long polls).
    public func forward(_ frame: WireFrame, token: String?, waitTime: Duration, to leader: String,
                        at address: Gossip.Address) async -> WireFrame {
        func reply(_ error: TernError) -> WireFrame {
            WireResponse.error(error).frame(apiKey: frame.apiKey, apiVersion: frame.apiVersion, correlationID: frame.correlationID)
        }
        let wrapped = WireFrame.headerBytes + frame.payload.readableBytes + WireForward.overheadBytes + (token?.utf8.count ?? 0)
        guard wrapped <= settings.maxFrameBytes else {
            state.withLock { $0.counters.tooLarge += 1 }
            return reply(WireRequestHandler.notLeader(leader: leader, address: address.description))
        }
        let slot: Slot
        do throws(TernError) {
            slot = try checkout(leader: leader, address: address)
        } catch {
            return reply(error)
        }
        defer { checkin(slot) }
        state.withLock { $0.counters.forwarded += 1 }
        onForward()
        let connection: ForwardConnection
        do {
            connection = try await slot.connection.value
        } catch {
            state.withLock { $0.counters.notApplied += 1 }
            return reply(TernError(.unavailable, "the leader \(leader) at \(address) could not be reached (\(error)); the request was not applied; retry"))
        }
        let request = WireRequest.forward(WireForward(forwarding: frame, token: token)).frame(correlationID: 0)
        let timeout = settings.requestTimeout + waitTime
        switch await connection.send(request, timeout: timeout) {
        case .answer(let answer):
            state.withLock { $0.counters.answered += 1 }
            return WireFrame(apiKey: frame.apiKey, apiVersion: frame.apiVersion, correlationID: frame.correlationID, payload: answer.payload)
        case .notSent(let error):
            state.withLock { $0.counters.notApplied += 1 }
            return reply(TernError(.unavailable, "the connection to the leader \(leader) closed before the request was sent (\(error)); the request was not applied; retry"))
        case .timedOut:
            state.withLock { $0.counters.outcomeUnknown += 1 }
            return reply(TernError(.unavailable, "the leader \(leader) did not answer within \(timeout); the request may or may not have been applied; retry"))
        case .lost(let error):
            state.withLock { $0.counters.outcomeUnknown += 1 }
            return reply(TernError(.unavailable, "forwarding to the leader \(leader) failed (\(error)); the request may or may not have been applied; retry"))
        }
    }

    /// Closes every connection; later forwards answer `Unavailable` (not applied).
    public func shutdown() async {
        let slots = state.withLock { state in
            state.closed = true
            defer { state.pools = [:] }
            return state.pools.values.flatMap(\.slots)
        }
        for slot in slots { await slot.close() }
    }

    /// A place for one request on a connection to `leader`: the least busy one, or a new one
    /// when every connection has requests in flight and the pool has room.
    /// - Throws: ``TernError`` `Unavailable` after shutdown, `Overloaded` past ``Settings/maxInFlight``.
    private func checkout(leader: String, address: Gossip.Address) throws(TernError) -> Slot {
        let maxInFlight = settings.maxInFlight, maxConnections = settings.maxConnectionsPerLeader, idleTimeout = settings.idleTimeout
        var stale = [Slot]()
        let slot = try state.withLock { (state: inout State) throws(TernError) -> Slot in
            guard !state.closed else { throw TernError(.unavailable, "the node is shutting down; the request was not applied; retry") }
            guard state.inFlight < maxInFlight else {
                state.counters.overloaded += 1
                throw TernError(.overloaded, "\(maxInFlight) requests are being forwarded to the leader already; the request was not applied; retry, or send to the leader \(leader) at \(address) (Metadata)")
            }
            // Connections to nodes that no longer lead go once nothing is in flight on them.
            for (name, pool) in state.pools where name != leader && pool.slots.allSatisfy({ $0.load == 0 }) {
                stale += pool.slots
                state.pools[name] = nil
            }
            var pool = state.pools[leader] ?? Pool(address: address)
            if pool.address != address {
                stale += pool.slots.filter { $0.load == 0 }
                pool = Pool(address: address)
            }
            let now = ContinuousClock.now
            let idle = pool.slots.filter { $0.load == 0 && now - $0.lastUsed > idleTimeout }
            if !idle.isEmpty {
                stale += idle
                pool.slots.removeAll { slot in idle.contains { $0 === slot } }
            }
            let slot: Slot
            if let least = pool.slots.min(by: { $0.load < $1.load }), least.load == 0 || pool.slots.count >= maxConnections {
                slot = least
            } else {
                slot = Slot(leader: leader)
                slot.connection = Task { [self] in try await self.open(slot, to: leader, at: address) }
                pool.slots.append(slot)
                state.counters.connectionsOpened += 1
            }
            slot.add(1)
            state.inFlight += 1
            state.pools[leader] = pool
            return slot
        }
        if !stale.isEmpty { Task { for slot in stale { await slot.close() } } }
        return slot
    }

    private func checkin(_ slot: Slot) {
        slot.lastUsed = ContinuousClock.now
        slot.add(-1)
        state.withLock { $0.inFlight -= 1 }
    }

    /// Takes `slot` out of its pool (its connection failed to open or closed).
    private func remove(_ slot: Slot) {
        state.withLock { state in state.pools[slot.leader]?.slots.removeAll { $0 === slot } }
    }

    /// Opens a peer connection to `leader`: TCP (and TLS), `ApiVersions`, `PeerHello`.
    /// - Throws: when the connection cannot be opened or the hello is refused; the slot is
    ///   then out of the pool.
    private func open(_ slot: Slot, to leader: String, at address: Gossip.Address) async throws -> ForwardConnection {
        do {
            let tls = links.settings.tls
            // As the peer links: a host name is checked against the certificate's DNS names, an
            // IP address against its IP addresses.
            let serverHostname = (try? SocketAddress(ipAddress: address.host, port: 0)) == nil ? address.host : nil
            let wire = WireSettings().with(maxFrameBytes: settings.maxAnswerFrameBytes)
            let channel = try await ClientBootstrap(group: links.group)
                .connectTimeout(TimeAmount(settings.connectTimeout))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        if let tls { try sync.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverHostname)) }
                        try sync.addHandler(ByteToMessageHandler(WireFrameDecoder(settings: wire)))
                        try sync.addHandler(WireFrameWriter())
                        try sync.addHandler(ForwardResponseHandler())
                    }
                }
                .connect(host: address.host, port: Int(address.port)).get()
            channel.closeFuture.whenComplete { [self] _ in remove(slot) }
            let connection = ForwardConnection(channel: channel)
            let timeout = settings.connectTimeout + .seconds(2)
            func handshake(_ request: WireRequest) async throws(TernError) -> WireFrame {
                switch await connection.send(request.frame(correlationID: 0), timeout: timeout) {
                case .answer(let answer): return answer
                case .timedOut: throw TernError(.unavailable, "\(request.api) was not answered within \(timeout)")
                case .notSent(let error), .lost(let error): throw TernError(.unavailable, "\(request.api) failed: \(error)")
                }
            }
            do throws(TernError) {
                _ = try await handshake(.apiVersions(clientName: "ternd-forward/0.1"))
                let answer = try await handshake(.peerHello(links.makeHello(to: RaftNodeID.of(leader))))
                switch try? WireResponse(decoding: answer) {
                case .done?: break
                case .error(let error)?: throw TernError(error.code, "the leader refused this node's PeerHello: \(error.message)")
                default: throw TernError(.invalidFrame, "an unreadable PeerHello answer")
                }
                if state.withLock({ $0.closed }) { throw TernError(.unavailable, "the node is shutting down") }
            } catch {
                channel.close(promise: nil)
                throw error
            }
            logger.debug("binary forwarding connection open", metadata: ["tern.leader": "\(leader)", "tern.binary": "\(address)"])
            return connection
        } catch {
            remove(slot)
            logger.debug("binary forwarding connection failed", metadata: ["tern.leader": "\(leader)", "tern.error": "\(error)"])
            throw error
        }
    }
}

extension WireSettings {
    /// A copy whose largest accepted frame is `maxFrameBytes`.
    fileprivate func with(maxFrameBytes: Int) -> WireSettings {
        var copy = self
        copy.maxFrameBytes = maxFrameBytes
        return copy
    }
}

/// One connection to a leader, opening or open, and the requests in flight on it.
private final class Slot: Sendable {
    let leader: String
    private let count = Atomic<Int>(0)
    private let task = Mutex<Task<ForwardConnection, any Error>?>(nil)
    private let used = Mutex(ContinuousClock.now)

    /// When the last request on the connection finished (or the slot was made).
    var lastUsed: ContinuousClock.Instant {
        get { used.withLock { $0 } }
        set { used.withLock { $0 = newValue } }
    }

    init(leader: String) { self.leader = leader }

    /// The connection, once opened (set right after the slot is made, before anyone waits).
    var connection: Task<ForwardConnection, any Error> {
        get { task.withLock { $0! } }
        set { task.withLock { $0 = newValue } }
    }

    var load: Int { count.load(ordering: .relaxed) }
    func add(_ delta: Int) { count.add(delta, ordering: .relaxed) }

    func close() async {
        guard let task = task.withLock({ $0 }) else { return }
        if let connection = try? await task.value { try? await connection.channel.close() }
    }
}

/// A pipelined peer connection: requests get correlation ids of the connection, answers are
/// matched by them (the leader answers as requests complete, not in order).
final class ForwardConnection: Sendable {
    enum Outcome {
        /// The leader's answer frame.
        case answer(WireFrame)
        /// The request never left this node (the connection was closed first).
        case notSent(any Error)
        /// No answer within the timeout; the connection was closed.
        case timedOut
        /// The connection broke after the request was written.
        case lost(any Error)
    }

    let channel: any Channel

    init(channel: any Channel) { self.channel = channel }

    /// Sends `frame` (its correlation id is replaced) and waits for its answer, at most `timeout`.
    func send(_ frame: WireFrame, timeout: Duration) async -> Outcome {
        let answer = channel.eventLoop.makePromise(of: WireFrame.self)
        let written = channel.eventLoop.makePromise(of: Void.self)
        let timedOut = TimeoutFlag()
        let channel = self.channel
        let timer = channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            timedOut.set()
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        // A write that fails before reaching the handler (a closed channel) completes nothing
        // else: the answer fails with it (a second completion is ignored).
        written.futureResult.whenFailure { answer.fail($0) }
        channel.writeAndFlush(ForwardRequest(frame: frame, answer: answer), promise: written)
        do {
            return .answer(try await answer.futureResult.get())
        } catch {
            if timedOut.isSet { return .timedOut }
            let sent = (try? await written.futureResult.get()) != nil
            return sent ? .lost(error) : .notSent(error)
        }
    }
}

private final class TimeoutFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .acquiring) }
    func set() { flag.store(true, ordering: .releasing) }
}

/// A request frame for a ``ForwardConnection`` and the promise its answer completes.
struct ForwardRequest: Sendable {
    var frame: WireFrame
    var answer: EventLoopPromise<WireFrame>
}

/// Numbers each written ``ForwardRequest`` with the connection's next correlation id and
/// completes its promise with the answer of that id; an answer to nothing asked closes the
/// connection; a closed connection fails every waiting request.
final class ForwardResponseHandler: ChannelDuplexHandler {
    typealias InboundIn = WireFrame
    typealias OutboundIn = ForwardRequest
    typealias OutboundOut = WireFrame
    private var waiting: [UInt32: EventLoopPromise<WireFrame>] = [:]
    private var nextID: UInt32 = 1

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        var frame = request.frame
        frame.correlationID = nextID
        nextID = nextID == .max ? 1 : nextID + 1
        waiting[frame.correlationID] = request.answer
        context.write(wrapOutboundOut(frame), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard let promise = waiting.removeValue(forKey: frame.correlationID) else {
            context.close(promise: nil)  // an answer to nothing asked: the stream cannot be trusted
            return
        }
        promise.succeed(frame)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(TernError(.unavailable, "the connection to the leader closed"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(error)
        context.close(promise: nil)
    }

    private func failAll(_ error: any Error) {
        let all = waiting
        waiting = [:]
        for promise in all.values { promise.fail(error) }
    }
}

extension TernMetrics.Name {
    /// Binary requests being forwarded to the leader now (bounded by `maxInFlight`).
    public static let binaryForwardInFlight = "tern_binary_forward_in_flight"
    /// Open and opening forwarding connections to leaders.
    public static let binaryForwardConnections = "tern_binary_forward_connections"
    /// Forwards that failed, by `outcome`: `not_applied` (no connection, nothing sent),
    /// `unknown` (connection lost or timed out after sending), `overloaded` (over the in-flight
    /// bound, nothing sent).
    public static let binaryForwardFailures = "tern_binary_forward_failures_total"
}

extension TernMetrics {
    /// Adds the binary forwarding's metrics (``TernMetrics/Name/binaryForwardInFlight``,
    /// ``TernMetrics/Name/binaryForwardConnections``, ``TernMetrics/Name/binaryForwardFailures``).
    public func attach(binaryForwarding forwarder: WireForwarder) {
        let seen = Mutex([String: Int]())
        addCollector { metrics in
            let counters = forwarder.counters
            metrics.gauge(Name.binaryForwardInFlight).record(forwarder.inFlight)
            metrics.gauge(Name.binaryForwardConnections).record(forwarder.connectionCount)
            let totals = ["not_applied": counters.notApplied, "unknown": counters.outcomeUnknown, "overloaded": counters.overloaded]
            let deltas = seen.withLock { seen in
                totals.map { outcome, total in
                    defer { seen[outcome] = total }
                    return (outcome, total - (seen[outcome] ?? 0))
                }
            }
            for (outcome, delta) in deltas {
                let counter = CoreMetrics.Counter(label: Name.binaryForwardFailures, dimensions: [("outcome", outcome)], factory: metrics.factory)
                // Registered at the first scrape, so that the series exists at 0.
                if delta > 0 { counter.increment(by: delta) }
            }
        }
    }
}
