import Crypto
public import Logging
public import NIOCore
import NIOPosix
public import NIOSSL
import Synchronization
public import TernCluster
public import TernCore
public import TernReplication
import TernWire

/// The ``RaftTransport`` between ternd nodes: one TCP connection of the binary protocol per
/// peer, Raft messages of every group to that peer batched into `RaftBatch` frames
/// (`docs/protocol.md`, "Node to node"; decisions 100–104).
///
/// A connection is opened on the first send to a peer: `ApiVersions`, then `PeerHello` (with
/// an HMAC-SHA256 proof when a cluster key is set); once the hello is accepted, everything
/// queued for the peer goes out as one frame, and everything queued while that frame is being
/// written goes out as the next one (batched per node pair). `send` never blocks and never
/// throws; what cannot be delivered is dropped and counted (``Counters``):
/// - past the per-peer bound (messages or bytes) the oldest queued messages,
/// - messages to a node the resolver does not know,
/// - a message larger than a batch may be,
/// - the queue of a connection that breaks (or whose hello is refused), and what is sent
///   while its reconnection backs off (100 ms doubling to 2 s by default),
/// - anything sent after ``shutdown()``.
/// Raft retries all of it (the leader's next append or heartbeat, the next election).
///
/// TLS between nodes is not supported yet: run the cluster on a trusted network, with a
/// cluster key (which authenticates the connection, not the bytes after the hello).
///
/// ```swift
/// let links = PeerLinks(nodeID: "n1", settings: .init(), logger: logger) { raftID in
///     gossip.binaryAddress(of: raftID)   // (host, port) or nil
/// }
/// driver.transport = links
/// …
/// await links.shutdown()
/// ```
public final class PeerLinks: RaftTransport {
    /// Settings of the outbound peer connections.
    public struct Settings: Sendable {
        /// The most messages queued for one peer; past it the oldest are dropped. Default 4,096.
        public var maxQueuedMessagesPerPeer: Int = 4_096
        /// The most bytes of encoded messages queued for one peer; past it the oldest are
        /// dropped. Default 67,108,864 (64 MiB).
        public var maxQueuedBytesPerPeer: Int = 64 << 20
        /// The most messages in one `RaftBatch` frame. Default 4,096 (the protocol allows 65,536).
        public var maxMessagesPerBatch: Int = 4_096
        /// The most payload bytes of one `RaftBatch` frame; a single message above it is
        /// dropped (`tooLarge`). Must stay within the peers' ``WireSettings/maxFrameBytes``
        /// (64 MiB by default) less the 8-byte header. Default 16,777,216 (16 MiB; Raft's
        /// appends are 1 MiB by default). A Raft snapshot message carries only the snapshot
        /// point; the state travels in `SnapshotChunk`s (``PeerSnapshotClient``, decision 117).
        public var maxBatchBytes: Int = 16 << 20
        /// The first wait before reconnecting to a peer whose connection failed, doubled after
        /// every further failure up to ``maxReconnectBackoff``. Default 100 ms.
        public var reconnectBackoff: Duration = .milliseconds(100)
        /// The longest wait between reconnection attempts. Default 2 s.
        public var maxReconnectBackoff: Duration = .seconds(2)
        /// How long connecting and the `PeerHello` answer may take together before the attempt
        /// counts as failed. Default 2 s.
        public var connectTimeout: Duration = .seconds(2)
        /// How long one `RaftBatch` write may stay unfinished (the peer does not read: its
        /// process is stopped, or the network between is cut) before the link is closed and
        /// reopened on the next send. Default 10 s.
        public var writeTimeout: Duration = .seconds(10)
        /// The cluster key (at least 16 bytes) the `PeerHello` proof is made with; nil: no proof
        /// (accepted only by peers without a key and without authentication).
        public var clusterKey: [UInt8]?
        /// The largest answer frame read from a peer, in bytes. Default 1,048,576 (answers are
        /// `ApiVersions`, `PeerHello` and error frames).
        public var maxAnswerFrameBytes: Int = 1 << 20
        /// TLS towards the peers (their binary listeners serve TLS when ternd has a certificate);
        /// nil = plain TCP. Made from ``TLSSettings/peerClientConfiguration()``: the peer's
        /// certificate must be valid for the host or IP address its gossip announces.
        public var tls: NIOSSLContext?

        public init() {}

        /// Checks the settings.
        /// - Throws: ``TernError`` `InvalidParameter` naming the first setting out of range.
        public func validate() throws(TernError) {
            func fail(_ message: String) -> TernError { TernError(.invalidParameter, "peer links: \(message)") }
            guard maxQueuedMessagesPerPeer >= 1 else { throw fail("maxQueuedMessagesPerPeer must be at least 1") }
            guard maxQueuedBytesPerPeer >= 1 else { throw fail("maxQueuedBytesPerPeer must be at least 1") }
            guard (1...WireRaftBatch.maxMessages).contains(maxMessagesPerBatch) else {
                throw fail("maxMessagesPerBatch must be 1–\(WireRaftBatch.maxMessages)")
            }
            guard maxBatchBytes >= 64 && maxBatchBytes <= WireSettings().maxFrameBytes - WireFrame.headerBytes else {
                throw fail("maxBatchBytes must be 64–\(WireSettings().maxFrameBytes - WireFrame.headerBytes)")
            }
            guard reconnectBackoff > .zero && maxReconnectBackoff >= reconnectBackoff else {
                throw fail("reconnectBackoff must be positive and at most maxReconnectBackoff")
            }
            guard connectTimeout > .zero else { throw fail("connectTimeout must be positive") }
            guard writeTimeout > .zero else { throw fail("writeTimeout must be positive") }
            guard clusterKey.map({ $0.count >= 16 }) ?? true else { throw fail("a cluster key has at least 16 bytes") }
        }

        /// A copy with `change` applied.
        public func with(_ change: (inout Settings) -> Void) -> Settings {
            var copy = self
            change(&copy)
            return copy
        }
    }

    /// What the links did since they were made (monotonic counts, for metrics).
    public struct Counters: Sendable, Hashable {
        /// `RaftBatch` frames written to peers, and the messages in them.
        public var framesSent = 0, messagesSent = 0
        /// Connections whose `PeerHello` was accepted.
        public var connectionsEstablished = 0
        /// Connection attempts that failed: refused, timed out, or the hello refused.
        public var connectFailures = 0
        /// `PeerHello`s the peer refused (wrong cluster key, clock skew, not in a cluster…).
        public var hellosRefused = 0
        /// Messages dropped, by reason (see ``DropReason``).
        public var dropped: [DropReason: Int] = [:]

        public init() {}

        /// All dropped messages.
        public var droppedTotal: Int { dropped.values.reduce(0, +) }
    }

    /// Why a message was not sent.
    public enum DropReason: String, Sendable, Hashable, CaseIterable {
        /// The oldest of a peer's queue, pushed out by the per-peer bound.
        case queueFull = "queue_full"
        /// The resolver knows no address for the node.
        case unknownPeer = "unknown_peer"
        /// The encoded message is larger than ``Settings/maxBatchBytes``.
        case tooLarge = "too_large"
        /// Queued on a connection that broke or could not be opened, or sent while
        /// reconnection backs off.
        case connectionLost = "connection_lost"
        /// Sent after ``PeerLinks/shutdown()``.
        case shutdown = "shutdown"
    }

    /// Who the local node is: its `--node-id` and its Raft id.
    public let nodeID: String
    public let settings: Settings
    let resolve: @Sendable (Raft.NodeID) -> (host: String, port: Int)?
    let group: any EventLoopGroup
    let logger: Logger
    let key: SymmetricKey?
    private let state = Mutex(LinksState())

    /// - Parameters:
    ///   - nodeID: this node's `--node-id` (1–255 bytes), sent in every `PeerHello` and batch.
    ///   - settings: bounds, backoff, timeouts and the cluster key.
    ///   - group: the event loops the connections run on; nil: NIO's shared singleton.
    ///   - resolve: the binary-protocol address of a node by Raft id (gossip's view), nil when
    ///     unknown (its messages are dropped). Called at every connection attempt, outside
    ///     any lock; it must not block.
    /// - Precondition: `settings.validate()` passes and `nodeID` has 1–255 bytes.
    public init(nodeID: String, settings: Settings = Settings(), group: (any EventLoopGroup)? = nil,
                logger: Logger, resolve: @escaping @Sendable (Raft.NodeID) -> (host: String, port: Int)?) {
        do { try settings.validate() } catch { preconditionFailure("\(error)") }
        precondition((1...WirePeerHello.maxNodeIDBytes).contains(nodeID.utf8.count), "a node id has 1–255 bytes")
        self.nodeID = nodeID
        self.settings = settings
        self.group = group ?? MultiThreadedEventLoopGroup.singleton
        self.logger = logger
        self.resolve = resolve
        self.key = settings.clusterKey.map { SymmetricKey(data: $0) }
    }

    /// A snapshot of the counts.
    public var counters: Counters { state.withLock { $0.counters } }

    /// Messages queued for `peer` and not yet written (for tests and metrics).
    public func queuedMessages(to peer: Raft.NodeID) -> Int { state.withLock { $0.peers[peer]?.queue.count ?? 0 } }

    // MARK: - Sending

    /// Queues `envelopes` for their `message.to` nodes and returns at once; see the type's
    /// documentation for what is dropped.
    public func send(_ envelopes: [RaftEnvelope]) {
        guard !envelopes.isEmpty else { return }
        var byPeer: [Raft.NodeID: [WireRaftBatch.Message]] = [:]
        var tooLarge = 0
        let limit = settings.maxBatchBytes - WireRaftBatch.fixedBytes - nodeID.utf8.count - WireRaftBatch.perMessageBytes
        for envelope in envelopes {
            let bytes = Raft.Codec.encode(envelope.message)
            guard bytes.count <= limit else {
                tooLarge += 1
                continue
            }
            byPeer[envelope.message.to, default: []].append(WireRaftBatch.Message(group: envelope.group, bytes: bytes))
        }
        var actions = [Action]()
        state.withLock { state in
            state.counters.dropped[.tooLarge, default: 0] += tooLarge
            for (peer, messages) in byPeer {
                actions += state.enqueue(messages, to: peer, settings: settings, now: .now(), nodeID: nodeID)
            }
        }
        run(actions)
    }

    /// Closes every connection and drops what is queued (counted as ``DropReason/shutdown``);
    /// later sends are dropped too. Returns once the connections are closed.
    public func shutdown() async {
        let channels = state.withLock { state -> [any Channel] in
            state.isShutdown = true
            var channels = [any Channel]()
            for (id, peer) in state.peers {
                state.counters.dropped[.shutdown, default: 0] += peer.queue.count
                if let channel = peer.channel { channels.append(channel) }
                state.peers[id]?.reset()
            }
            return channels
        }
        for channel in channels {
            try? await channel.close()
        }
        // Connections still being opened close themselves when they complete (they see the flag).
        while state.withLock({ $0.connecting > 0 }) { try? await Task.sleep(for: .milliseconds(10)) }
    }

    // MARK: - Actions (run outside the lock: NIO may complete promises in line)

    enum Action {
        case connect(Raft.NodeID, generation: UInt64)
        case write(any Channel, [WireRaftBatch.Message], Raft.NodeID, generation: UInt64)
        case close(any Channel)
    }

    func run(_ actions: [Action]) {
        for action in actions {
            switch action {
            case .connect(let peer, let generation): connect(peer, generation: generation)
            case .write(let channel, let messages, let peer, let generation):
                let count = messages.count
                let frame = WireRequest.raftBatch(WireRaftBatch(from: nodeID, messages: messages)).frame(correlationID: 2)
                // A write the peer never reads (stopped, cut off) closes the link after the timeout.
                let timer = channel.eventLoop.scheduleTask(in: TimeAmount(settings.writeTimeout)) {
                    channel.close(promise: nil)
                }
                channel.writeAndFlush(frame).whenComplete { [self] result in
                    timer.cancel()
                    let sent: Int? = if case .success = result { count } else { nil }
                    run(state.withLock { $0.written(peer, generation: generation, sent: sent, settings: settings, nodeID: nodeID) })
                }
            case .close(let channel):
                channel.close(promise: nil)
            }
        }
    }

    private func connect(_ peer: Raft.NodeID, generation: UInt64) {
        guard let address = resolve(peer) else {
            run(state.withLock { $0.failed(peer, generation: generation, reason: .unknownPeer, settings: settings) })
            return
        }
        let hello = makeHello(to: peer)
        let maxAnswerBytes = settings.maxAnswerFrameBytes
        let tls = settings.tls
        // A host name is checked against the certificate's DNS names; an IP address (what
        // gossip usually announces) against its IP addresses.
        let serverHostname = (try? SocketAddress(ipAddress: address.host, port: 0)) == nil ? address.host : nil
        let timeout = TimeAmount(settings.connectTimeout)
        let onAnswer: @Sendable (TernError?) -> Void = { [self] error in
            run(state.withLock { $0.helloAnswered(peer, generation: generation, error: error, settings: settings, nodeID: nodeID) })
            if let error {
                logger.warning("peer refused PeerHello", metadata: [
                    "tern.peer_node": "\(peer)", "tern.peer": "\(address.host):\(address.port)", "tern.error": "\(error)",
                ])
            }
        }
        let future = ClientBootstrap(group: group)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    var wire = WireSettings()
                    wire.maxFrameBytes = maxAnswerBytes
                    let sync = channel.pipeline.syncOperations
                    if let tls { try sync.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverHostname)) }
                    try sync.addHandler(ByteToMessageHandler(WireFrameDecoder(settings: wire)))
                    try sync.addHandler(WireFrameWriter())
                    try sync.addHandler(PeerAnswerHandler(onHelloAnswer: onAnswer))
                }
            }
            .connect(host: address.host, port: address.port)
        future.whenComplete { [self] result in
            switch result {
            case .success(let channel):
                channel.closeFuture.whenComplete { [self] _ in
                    run(state.withLock { $0.closed(peer, generation: generation, settings: settings) })
                }
                let proceed = state.withLock { $0.connected(peer, generation: generation, channel: channel) }
                guard proceed else {
                    channel.close(promise: nil)
                    return
                }
                channel.write(WireRequest.apiVersions(clientName: "ternd-peer/0.1").frame(correlationID: 0), promise: nil)
                channel.writeAndFlush(WireRequest.peerHello(hello).frame(correlationID: 1), promise: nil)
                // The hello's answer must arrive within the connect timeout too.
                channel.eventLoop.scheduleTask(in: timeout) { [self] in
                    if state.withLock({ $0.isAwaitingHello(peer, generation: generation) }) {
                        logger.debug("peer did not answer PeerHello in time", metadata: ["tern.peer_node": "\(peer)"])
                        channel.close(promise: nil)
                    }
                }
            case .failure(let error):
                logger.debug("connecting to peer failed", metadata: [
                    "tern.peer_node": "\(peer)", "tern.peer": "\(address.host):\(address.port)", "tern.error": "\(error)",
                ])
                run(state.withLock { $0.failed(peer, generation: generation, reason: .connectionLost, settings: settings) })
            }
        }
    }

    /// A hello to `peer` made now, with a fresh nonce and (with a key) its proof.
    func makeHello(to peer: Raft.NodeID) -> WirePeerHello {
        var generator = SystemRandomNumberGenerator()
        let nonce = (0..<WirePeerHello.nonceBytes).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        var hello = WirePeerHello(nodeID: nodeID, target: peer, timestamp: SystemClock().now.milliseconds, nonce: nonce)
        if let key {
            hello.proof = Array(HMAC<SHA256>.authenticationCode(for: hello.authenticatedBytes, using: key))
        }
        return hello
    }
}

/// Reads what a peer answers on an outbound link: the `PeerHello` answer (reported), error
/// frames for refused batches (logged by the caller's close); `ApiVersions` is ignored.
final class PeerAnswerHandler: ChannelInboundHandler {
    typealias InboundIn = WireFrame
    let onHelloAnswer: @Sendable (TernError?) -> Void

    init(onHelloAnswer: @escaping @Sendable (TernError?) -> Void) { self.onHelloAnswer = onHelloAnswer }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let response = try? WireResponse(decoding: frame)
        switch frame.apiKey {
        case WireAPI.apiVersions.rawValue:
            if case .error = response { context.close(promise: nil) }
        case WireAPI.peerHello.rawValue:
            switch response {
            case .done?: onHelloAnswer(nil)
            case .error(let error)?:
                onHelloAnswer(error)
                context.close(promise: nil)
            default:
                onHelloAnswer(TernError(.invalidFrame, "an unreadable PeerHello answer"))
                context.close(promise: nil)
            }
        default:
            // A refused batch, or a frame that answers nothing we sent: the link is not sound.
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Everything ``PeerLinks`` tracks, behind one lock. Each transition returns the actions to run
/// once the lock is released.
struct LinksState {
    struct Peer {
        enum Phase { case idle, connecting, awaitingHello, ready, backingOff(until: NIODeadline) }
        var phase = Phase.idle
        var channel: (any Channel)?
        /// Encoded messages waiting, oldest first, and their bytes.
        var queue = CircularBuffer<WireRaftBatch.Message>()
        var queuedBytes = 0
        var writing = false
        /// Failed attempts in a row (the backoff's exponent).
        var failures = 0
        /// Which connection attempt callbacks belong to; a newer one ignores older ones.
        var generation: UInt64 = 0

        mutating func dropQueue() -> Int {
            let count = queue.count
            queue.removeAll(keepingCapacity: false)
            queuedBytes = 0
            return count
        }

        mutating func reset() {
            _ = dropQueue()
            channel = nil
            phase = .idle
            writing = false
            generation &+= 1
        }
    }

    var peers: [Raft.NodeID: Peer] = [:]
    var counters = PeerLinks.Counters()
    var isShutdown = false
    /// Connection attempts under way.
    var connecting = 0

    mutating func drop(_ count: Int, _ reason: PeerLinks.DropReason) {
        guard count > 0 else { return }
        counters.dropped[reason, default: 0] += count
    }

    /// Queues `messages` for `id`, pushing out the oldest past the bounds; opens the
    /// connection when there is none, or starts a batch when the link is ready and idle.
    mutating func enqueue(_ messages: [WireRaftBatch.Message], to id: Raft.NodeID, settings: PeerLinks.Settings,
                          now: NIODeadline, nodeID: String) -> [PeerLinks.Action] {
        if isShutdown {
            drop(messages.count, .shutdown)
            return []
        }
        // Taken out of the dictionary while changed, so that its queue is not copied.
        var peer = peers.removeValue(forKey: id) ?? Peer()
        defer { peers[id] = peer }
        if case .backingOff(let until) = peer.phase {
            guard now >= until else {
                drop(messages.count, .connectionLost)
                return []
            }
            peer.phase = .idle
        }
        for message in messages {
            peer.queue.append(message)
            peer.queuedBytes += message.bytes.count
        }
        var pushedOut = 0
        while peer.queue.count > settings.maxQueuedMessagesPerPeer || peer.queuedBytes > settings.maxQueuedBytesPerPeer {
            let oldest = peer.queue.removeFirst()
            peer.queuedBytes -= oldest.bytes.count
            pushedOut += 1
        }
        drop(pushedOut, .queueFull)
        switch peer.phase {
        case .idle:
            peer.phase = .connecting
            peer.generation &+= 1
            connecting += 1
            return [.connect(id, generation: peer.generation)]
        case .ready:
            return Self.nextBatch(&peer, id, settings: settings, nodeID: nodeID).map { [$0] } ?? []
        case .connecting, .awaitingHello, .backingOff:
            return []
        }
    }

    /// The next batch of a ready, idle link: as many queued messages, oldest first, as fit in
    /// one frame.
    static func nextBatch(_ peer: inout Peer, _ id: Raft.NodeID, settings: PeerLinks.Settings, nodeID: String) -> PeerLinks.Action? {
        guard case .ready = peer.phase, !peer.writing, !peer.queue.isEmpty, let channel = peer.channel else { return nil }
        var messages = [WireRaftBatch.Message]()
        var bytes = WireRaftBatch.fixedBytes + nodeID.utf8.count
        while let first = peer.queue.first, messages.count < settings.maxMessagesPerBatch,
              messages.isEmpty || bytes + WireRaftBatch.perMessageBytes + first.bytes.count <= settings.maxBatchBytes {
            messages.append(peer.queue.removeFirst())
            bytes += WireRaftBatch.perMessageBytes + first.bytes.count
            peer.queuedBytes -= first.bytes.count
        }
        peer.writing = true
        return .write(channel, messages, id, generation: peer.generation)
    }

    /// A batch of attempt `generation` was written (or failed to be): the next one may go.
    mutating func written(_ id: Raft.NodeID, generation: UInt64, sent: Int?, settings: PeerLinks.Settings, nodeID: String) -> [PeerLinks.Action] {
        if let sent {
            counters.framesSent += 1
            counters.messagesSent += sent
        }
        guard var peer = peers.removeValue(forKey: id) else { return [] }
        defer { peers[id] = peer }
        guard peer.generation == generation else { return [] }
        peer.writing = false
        guard sent != nil else {
            // The connection is failing: close it (``closed`` drops the queue) rather than
            // write into it again.
            return peer.channel.map { [.close($0)] } ?? []
        }
        return Self.nextBatch(&peer, id, settings: settings, nodeID: nodeID).map { [$0] } ?? []
    }

    /// The TCP connection of attempt `generation` is open.
    /// - Returns: whether to go on with it (false: shut down or superseded; close it).
    mutating func connected(_ id: Raft.NodeID, generation: UInt64, channel: any Channel) -> Bool {
        connecting -= 1
        guard !isShutdown, peers[id]?.generation == generation else { return false }
        peers[id]?.phase = .awaitingHello
        peers[id]?.channel = channel
        return true
    }

    func isAwaitingHello(_ id: Raft.NodeID, generation: UInt64) -> Bool {
        guard let peer = peers[id], peer.generation == generation, case .awaitingHello = peer.phase else { return false }
        return true
    }

    /// Attempt `generation` failed before a connection was open (`connectionLost`) or had no
    /// address (`unknownPeer`): its queue is dropped; a connection failure backs off.
    mutating func failed(_ id: Raft.NodeID, generation: UInt64, reason: PeerLinks.DropReason, settings: PeerLinks.Settings) -> [PeerLinks.Action] {
        connecting -= 1
        guard !isShutdown, var peer = peers.removeValue(forKey: id) else { return [] }
        defer { peers[id] = peer }
        guard peer.generation == generation else { return [] }
        drop(peer.dropQueue(), reason)
        peer.channel = nil
        peer.writing = false
        if reason == .unknownPeer {
            peer.phase = .idle
        } else {
            counters.connectFailures += 1
            peer.failures += 1
            peer.phase = .backingOff(until: .now() + TimeAmount(Self.backoff(failures: peer.failures, settings: settings)))
        }
        return []
    }

    /// The wait after `failures` failed attempts in a row: the first backoff, doubled per
    /// further failure, capped.
    static func backoff(failures: Int, settings: PeerLinks.Settings) -> Duration {
        let doubled = settings.reconnectBackoff * (1 << min(max(failures - 1, 0), 20))
        return min(doubled, settings.maxReconnectBackoff)
    }

    /// The peer answered the hello of attempt `generation`: the link is ready (and sends what
    /// is queued), or refused (the answer handler closes the channel; ``closed`` backs off).
    mutating func helloAnswered(_ id: Raft.NodeID, generation: UInt64, error: TernError?, settings: PeerLinks.Settings,
                                nodeID: String) -> [PeerLinks.Action] {
        guard var peer = peers.removeValue(forKey: id) else { return [] }
        defer { peers[id] = peer }
        guard peer.generation == generation, case .awaitingHello = peer.phase else { return [] }
        if error != nil {
            counters.hellosRefused += 1
            return []
        }
        peer.phase = .ready
        peer.failures = 0
        counters.connectionsEstablished += 1
        return Self.nextBatch(&peer, id, settings: settings, nodeID: nodeID).map { [$0] } ?? []
    }

    /// The channel of attempt `generation` closed: its queue is dropped. A link that was ready
    /// reconnects on the next send; one that never got its hello accepted backs off.
    mutating func closed(_ id: Raft.NodeID, generation: UInt64, settings: PeerLinks.Settings) -> [PeerLinks.Action] {
        guard var peer = peers.removeValue(forKey: id) else { return [] }
        defer { peers[id] = peer }
        guard peer.generation == generation else { return [] }
        drop(peer.dropQueue(), .connectionLost)
        let wasReady: Bool
        if case .ready = peer.phase { wasReady = true } else { wasReady = false }
        peer.channel = nil
        peer.writing = false
        peer.generation &+= 1
        if wasReady {
            peer.phase = .idle
        } else {
            counters.connectFailures += 1
            peer.failures += 1
            peer.phase = .backingOff(until: .now() + TimeAmount(Self.backoff(failures: peer.failures, settings: settings)))
        }
        return []
    }
}
