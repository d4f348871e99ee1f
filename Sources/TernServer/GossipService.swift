import Crypto
import Foundation
public import Logging
import NIOCore
import NIOPosix
public import ServiceLifecycle
import Synchronization
public import TernGossip
public import TernWire

/// The UDP shell of ``Gossip/Instance``: a ServiceLifecycle `Service` that binds a datagram
/// socket (SwiftNIO `DatagramBootstrap`), decodes and authenticates datagrams, feeds them and
/// the instance's timers to the instance, and carries out its directives (sends, timers, member
/// changes). All protocol logic is in `TernGossip`; this type only does I/O and bookkeeping.
///
/// With a cluster key every datagram carries an HMAC-SHA256 tag over its bytes and datagrams
/// without a valid tag are dropped and counted (`tern_gossip_packets_dropped_total{reason="auth"}`);
/// without one, a warning is logged at start. At graceful shutdown the node leaves (its members
/// record "left" at once) and keeps answering for one gossip interval before it closes.
///
/// ```swift
/// let gossip = GossipService(node: node, settings: .init(bind: .init(host: "127.0.0.1", port: 7946)), logger: logger)
/// let group = ServiceGroup(services: [gossip, …], logger: logger)
/// gossip.members()   // the membership view, any time
/// ```
public final class GossipService: Service, Sendable {
    /// Settings of the gossip shell.
    public struct Settings: Sendable {
        /// Where the UDP socket binds; port 0 picks a free one.
        public var bind: Gossip.Address
        /// Gossip addresses of members to join through (`--seeds`); this node's own is ignored.
        public var seeds: [Gossip.Address] = []
        /// The cluster key (`--cluster-key FILE`): at least 16 bytes; nil = datagrams are not
        /// authenticated.
        public var clusterKey: [UInt8]?
        /// The protocol's settings.
        public var gossip = Gossip.Settings()
        /// Where the gossip metrics go; nil = nowhere.
        public var metrics: TernMetrics?

        public init(bind: Gossip.Address) { self.bind = bind }
    }

    /// One member as the HTTP API and the binary protocol show it.
    public struct MemberView: Sendable, Hashable {
        public var member: Gossip.Member
        /// When its state last changed, in milliseconds since 1970 (this node's clock).
        public var lastChangeMilliseconds: UInt64
        /// Whether this is the node serving the request.
        public var isLocal: Bool
    }

    /// Why a datagram was dropped.
    enum DropReason: String, CaseIterable {
        case auth, malformed
    }

    struct State {
        var instance: Gossip.Instance
        var resolved: [Gossip.Address: SocketAddress] = [:]
    }

    let settings: Settings
    let logger: Logger
    let node: Gossip.Node
    private let state: Mutex<State>
    private let clock = ContinuousClock()
    private let origin: ContinuousClock.Instant
    private let originWallMilliseconds: UInt64
    private let key: SymmetricKey?
    private let metrics: GossipMetrics?
    private let boundAddress = Mutex<Gossip.Address?>(nil)

    /// - Parameters:
    ///   - node: this node's metadata (its `gossip` address is what others send to).
    ///   - seed: seeds the instance's random choices; default: the system's generator.
    /// - Precondition: `settings.gossip` is valid and a cluster key is at least 16 bytes
    ///   (`ternd` checks both when it parses its configuration).
    public init(node: Gossip.Node, settings: Settings, seed: UInt64 = .random(in: 0...UInt64.max), logger: Logger) {
        precondition(settings.clusterKey.map { $0.count >= 16 } ?? true, "a cluster key has at least 16 bytes")
        self.node = node
        self.settings = settings
        self.logger = logger
        self.origin = clock.now
        self.originWallMilliseconds = UInt64(Date().timeIntervalSince1970 * 1000)
        self.key = settings.clusterKey.map { SymmetricKey(data: $0) }
        self.metrics = settings.metrics.map { GossipMetrics(metrics: $0) }
        self.state = Mutex(State(instance: Gossip.Instance(myself: node, settings: settings.gossip, seed: seed, now: .zero)))
        if let metrics = self.metrics {
            let view: @Sendable () -> [MemberView] = { [weak self] in self?.members() ?? [] }
            let health: @Sendable () -> Int = { [weak self] in self?.state.withLock { $0.instance.localHealth } ?? 0 }
            metrics.register(members: view, localHealth: health)
        }
    }

    /// The address the socket is bound to, once ``run()`` has bound it.
    public var localAddress: Gossip.Address? { boundAddress.withLock { $0 } }

    /// The membership view, this node included, by node id.
    public func members() -> [MemberView] {
        let members = state.withLock { $0.instance.members }
        return members.map { member in
            let isLocal = member.id == node.id
            let since = isLocal ? Duration.zero : member.lastChange
            let milliseconds = originWallMilliseconds + UInt64(max(0, since.components.seconds)) * 1000
                + UInt64(max(0, since.components.attoseconds / 1_000_000_000_000_000))
            return MemberView(member: member, lastChangeMilliseconds: milliseconds, isLocal: isLocal)
        }
    }

    private var now: Duration { clock.now - origin }

    // MARK: Running

    /// Binds the socket, joins through the seeds and runs until graceful shutdown, then leaves.
    /// - Throws: when the address cannot be bound.
    public func run() async throws {
        let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: settings.bind.host, port: Int(settings.bind.port)) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>(wrappingChannelSynchronously: channel)
                }
            }
        let port = channel.channel.localAddress?.port ?? Int(settings.bind.port)
        boundAddress.withLock { $0 = Gossip.Address(host: settings.bind.host, port: UInt16(port)) }
        if key == nil {
            logger.warning("gossip is not authenticated: any host that reaches the gossip port can join or disturb the cluster; set --cluster-key", metadata: [
                "tern.gossip": "\(settings.bind.host):\(port)",
            ])
        }
        logger.info("gossip listening", metadata: [
            "tern.gossip": "\(settings.bind.host):\(port)", "tern.node_id": "\(node.id)",
            "tern.seeds": "\(settings.seeds.map(\.description))", "tern.cluster_key": "\(key != nil)",
        ])
        let (timers, timerInput) = AsyncStream.makeStream(of: (Gossip.Timer, Duration).self)
        try await channel.executeThenClose { inbound, outbound in
            let output = Output(outbound: outbound, timers: timerInput)
            await withDiscardingTaskGroup { group in
                group.addTask {
                    do {
                        for try await envelope in inbound { await self.receive(envelope, output) }
                    } catch {
                        self.logger.debug("gossip socket closed", metadata: ["tern.error": "\(error)"])
                    }
                    timerInput.finish()
                }
                group.addTask {
                    // Graceful shutdown: leave, answer for one more gossip interval, then close.
                    // (Cancellation, without a graceful shutdown, closes at once.)
                    do { try await gracefulShutdown() } catch {}
                    if !Task.isCancelled {
                        let leave = self.state.withLock { $0.instance.onLeave(now: self.now) }
                        await self.carry(leave, output)
                        self.logger.info("gossip: left the cluster", metadata: ["tern.node_id": "\(self.node.id)"])
                        try? await Task.sleep(for: max(self.settings.gossip.gossipInterval, .milliseconds(100)))
                    }
                    timerInput.finish()
                    channel.channel.close(promise: nil)
                }
                let join = state.withLock { $0.instance.onJoin(seeds: settings.seeds, now: now) }
                await carry(join, output)
                // Each timer sleeps in a task of its own; moot ones are ignored by the instance.
                for await (timer, delay) in timers {
                    group.addTask {
                        try? await Task.sleep(for: delay)
                        guard !Task.isCancelled else { return }
                        let directives = self.state.withLock { $0.instance.onTimer(timer, now: self.now) }
                        await self.carry(directives, output)
                    }
                }
                group.cancelAll()
            }
        }
    }

    /// Where directives go: the socket and the timer stream.
    struct Output: Sendable {
        let outbound: NIOAsyncChannelOutboundWriter<AddressedEnvelope<ByteBuffer>>
        let timers: AsyncStream<(Gossip.Timer, Duration)>.Continuation
    }

    private func receive(_ envelope: AddressedEnvelope<ByteBuffer>, _ output: Output) async {
        let bytes = Array(envelope.data.readableBytesView)
        metrics?.received(bytes: bytes.count)
        let tagged = Gossip.Codec.isTagged(bytes)
        if let key {
            guard tagged, bytes.count > Gossip.Codec.tagBytes else { return drop(.auth, from: envelope.remoteAddress) }
            let body = bytes.prefix(bytes.count - Gossip.Codec.tagBytes)
            let tag = bytes.suffix(Gossip.Codec.tagBytes)
            guard HMAC<SHA256>.isValidAuthenticationCode(Array(tag), authenticating: Array(body), using: key) else {
                return drop(.auth, from: envelope.remoteAddress)
            }
        } else if tagged {
            return drop(.auth, from: envelope.remoteAddress)
        }
        let packet: Gossip.Packet
        do {
            packet = try Gossip.Codec.decode(bytes)
        } catch {
            return drop(.malformed, from: envelope.remoteAddress, error: error)
        }
        guard let from = Self.gossipAddress(envelope.remoteAddress) else { return drop(.malformed, from: envelope.remoteAddress) }
        let directives = state.withLock { $0.instance.onMessage(packet, from: from, now: now) }
        await carry(directives, output)
    }

    private func drop(_ reason: DropReason, from address: SocketAddress, error: (any Error)? = nil) {
        metrics?.dropped(reason)
        logger.debug("gossip datagram dropped", metadata: [
            "tern.reason": "\(reason.rawValue)", "tern.peer": "\(address)", "tern.error": "\(error.map { "\($0)" } ?? "")",
        ])
    }

    private func carry(_ directives: [Gossip.Directive], _ output: Output) async {
        for directive in directives {
            switch directive {
            case .send(let packet, let address):
                guard let remote = resolve(address) else { continue }
                var bytes = Gossip.Codec.encode(packet, tagged: key != nil)
                if let key { bytes += Array(HMAC<SHA256>.authenticationCode(for: bytes, using: key)) }
                metrics?.sent(packet, bytes: bytes.count)
                try? await output.outbound.write(AddressedEnvelope(remoteAddress: remote, data: ByteBuffer(bytes: bytes)))
            case .schedule(let timer, let delay):
                output.timers.yield((timer, delay))
            case .memberChanged(let change):
                metrics?.changed(change)
                let level: Logger.Level = change.member.state == .alive && change.previousState == nil ? .info : .notice
                logger.log(level: level, "gossip member \(change.member.state)", metadata: [
                    "tern.member": "\(change.member.id)", "tern.state": "\(change.member.state)",
                    "tern.previous_state": "\(change.previousState.map { "\($0)" } ?? "unknown")",
                    "tern.incarnation": "\(change.member.incarnation)", "tern.gossip": "\(change.member.node.gossip)",
                ])
            case .probeAcknowledged(_, let roundTrip):
                metrics?.probeAcknowledged(roundTrip)
            }
        }
        metrics?.update(statistics: state.withLock { $0.instance.statistics })
    }

    /// The socket address of `address`, resolved once (IP literals directly, names through the
    /// system's resolver) and remembered.
    private func resolve(_ address: Gossip.Address) -> SocketAddress? {
        if let cached = state.withLock({ $0.resolved[address] }) { return cached }
        let resolved: SocketAddress?
        if let ip = try? SocketAddress(ipAddress: address.host, port: Int(address.port)) {
            resolved = ip
        } else {
            resolved = try? SocketAddress.makeAddressResolvingHost(address.host, port: Int(address.port))
        }
        guard let resolved else {
            logger.debug("gossip address does not resolve", metadata: ["tern.gossip": "\(address)"])
            return nil
        }
        state.withLock { state in
            if state.resolved.count > 4 * settings.gossip.maxMembers { state.resolved.removeAll() }
            state.resolved[address] = resolved
        }
        return resolved
    }

    static func gossipAddress(_ address: SocketAddress) -> Gossip.Address? {
        guard let ip = address.ipAddress, let port = address.port, let port16 = UInt16(exactly: port) else { return nil }
        return Gossip.Address(host: ip, port: port16)
    }
}

extension GossipService {
    /// The view as `DescribeCluster` carries it.
    public func wireView() -> WireClusterView {
        WireClusterView(gossip: true, nodeID: node.id.rawValue, members: members().map { view in
            let node = view.member.node
            return WireClusterMember(
                nodeID: node.id.rawValue, state: WireClusterMember.State(rawValue: view.member.state.rawValue) ?? .dead,
                incarnation: view.member.incarnation, gossip: node.gossip.description, http: node.http?.description,
                binary: node.binary?.description, zone: node.zone, startedAt: node.startedAt,
                lastChange: view.lastChangeMilliseconds, isLocal: view.isLocal)
        })
    }
}
