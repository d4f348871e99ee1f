public import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
public import TernCluster
public import TernCore
public import TernReplication
import TernWire

/// The ``SnapshotSource`` between ternd nodes: `SnapshotChunk` requests (API key 63) on a
/// connection of their own to the peer's binary listener, opened like the Raft links
/// (`ApiVersions`, then a `PeerHello` with the cluster key's proof) and kept for the next
/// chunks of the transfer; one request at a time per peer. A failed request closes the
/// connection (the next one reconnects), and the caller starts the transfer again.
///
/// ```swift
/// let source = PeerSnapshotClient(links: links)
/// let installer = SnapshotInstaller(source: source, directory: dataDir + "/snapshots")
/// ```
public final class PeerSnapshotClient: SnapshotSource {
    let links: PeerLinks
    /// How long one request (connecting included) may take. Default 30 s (a peer making a
    /// large snapshot file answers the first request once the file is written).
    let requestTimeout: Duration
    private let connections = Mutex<[Raft.NodeID: any Channel]>([:])
    private let correlation = Atomic<UInt32>(10)

    public init(links: PeerLinks, requestTimeout: Duration = .seconds(30)) {
        self.links = links
        self.requestTimeout = requestTimeout
    }

    public func chunk(_ request: SnapshotChunkRequest, from peer: Raft.NodeID) async throws -> SnapshotChunk {
        let channel = try await connection(to: peer)
        let wire = WireSnapshotChunkRequest(group: request.group, snapshotID: request.snapshotID, minApplied: request.minApplied,
                                            offset: request.offset, maxBytes: request.maxBytes)
        let frame: WireFrame
        do {
            frame = try await send(.snapshotChunk(wire), on: channel)
        } catch {
            drop(peer, channel)
            throw error
        }
        switch try WireResponse(decoding: frame) {
        case .snapshotChunk(let chunk):
            return SnapshotChunk(snapshotID: chunk.snapshotID,
                                 info: SnapshotFile.Info(group: chunk.group, applied: chunk.applied, bytes: chunk.totalBytes,
                                                         checksum: chunk.checksum),
                                 offset: chunk.offset, data: chunk.data)
        case .error(let error):
            throw error
        default:
            drop(peer, channel)
            throw TernError(.invalidFrame, "the peer answered SnapshotChunk with another response")
        }
    }

    /// Closes every connection.
    public func shutdown() {
        let all = connections.withLock { c in defer { c.removeAll() }; return Array(c.values) }
        for channel in all { channel.close(promise: nil) }
    }

    private func drop(_ peer: Raft.NodeID, _ channel: any Channel) {
        connections.withLock { c in if c[peer] === channel { c[peer] = nil } }
        channel.close(promise: nil)
    }

    private func send(_ request: WireRequest, on channel: any Channel) async throws -> WireFrame {
        let promise = channel.eventLoop.makePromise(of: WireFrame.self)
        let id = correlation.add(1, ordering: .relaxed).newValue
        // A late answer is never matched to the next request: the connection goes, and closing
        // it fails every waiting request (the promise is completed once, by the handler).
        let timeout = channel.eventLoop.scheduleTask(in: TimeAmount(requestTimeout)) { channel.close(promise: nil) }
        channel.writeAndFlush(PeerRequest(frame: request.frame(correlationID: id), promise: promise), promise: nil)
        defer { timeout.cancel() }
        return try await promise.futureResult.get()
    }

    private func connection(to peer: Raft.NodeID) async throws -> any Channel {
        if let channel = connections.withLock({ $0[peer] }), channel.isActive { return channel }
        guard let address = links.resolve(peer) else {
            throw TernError(.unavailable, "the address of node \(peer) is not known")
        }
        let tls = links.settings.tls
        // As the peer links: a host name is checked against the certificate's DNS names, an IP
        // address against its IP addresses.
        let serverHostname = (try? SocketAddress(ipAddress: address.host, port: 0)) == nil ? address.host : nil
        let channel = try await ClientBootstrap(group: links.group)
            .connectTimeout(TimeAmount(links.settings.connectTimeout))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    var wire = WireSettings()
                    wire.maxFrameBytes = WireSnapshotChunkRequest.maxChunkBytes + (1 << 20)
                    let sync = channel.pipeline.syncOperations
                    if let tls { try sync.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverHostname)) }
                    try sync.addHandler(ByteToMessageHandler(WireFrameDecoder(settings: wire)))
                    try sync.addHandler(WireFrameWriter())
                    try sync.addHandler(PeerRequestHandler())
                }
            }
            .connect(host: address.host, port: address.port).get()
        do {
            _ = try await send(.apiVersions(clientName: "ternd-peer/0.1"), on: channel)
            let answer = try WireResponse(decoding: try await send(.peerHello(links.makeHello(to: peer)), on: channel))
            if case .error(let error) = answer { throw error }
            guard case .done = answer else { throw TernError(.invalidFrame, "an unreadable PeerHello answer") }
        } catch {
            channel.close(promise: nil)
            throw error
        }
        let previous = connections.withLock { c in defer { c[peer] = channel }; return c[peer] }
        previous?.close(promise: nil)
        return channel
    }
}

/// A request frame and the promise its answer completes.
struct PeerRequest: Sendable {
    var frame: WireFrame
    var promise: EventLoopPromise<WireFrame>
}

/// Matches answers to requests in order (the peer answers a connection's requests in order):
/// each written ``PeerRequest``'s promise is completed by the next frame read.
final class PeerRequestHandler: ChannelDuplexHandler {
    typealias InboundIn = WireFrame
    typealias OutboundIn = PeerRequest
    typealias OutboundOut = WireFrame
    private var waiting = CircularBuffer<EventLoopPromise<WireFrame>>()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        waiting.append(request.promise)
        context.write(wrapOutboundOut(request.frame), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard let promise = waiting.popFirst() else {
            context.close(promise: nil)  // an answer to nothing asked
            return
        }
        promise.succeed(frame)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(TernError(.unavailable, "the connection to the peer closed"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(error)
        context.close(promise: nil)
    }

    private func failAll(_ error: any Error) {
        while let promise = waiting.popFirst() { promise.fail(error) }
    }
}
