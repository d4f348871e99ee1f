import Crypto
public import TernCluster
public import TernCore
public import TernReplication
import Synchronization
import TernWire

extension WireServer {
    /// How the binary listener takes node-to-node traffic (`PeerHello`, `RaftBatch`,
    /// `docs/protocol.md` "Node to node").
    ///
    /// ```swift
    /// var settings = WireServer.Settings()
    /// settings.peers.nodeID = "n1"
    /// settings.peers.clusterKey = key
    /// settings.peers.onRaft = { from, envelopes in driver.receive(envelopes, from: from) }
    /// ```
    public struct PeerSettings: Sendable {
        /// This node's `--node-id`; a hello must name its Raft id (`RaftNodeID.of`) as target.
        /// nil: the node runs alone and refuses peers with `NotInCluster`.
        public var nodeID: String?
        /// The cluster key (at least 16 bytes; gossip's `--cluster-key`): when set, a peer
        /// must prove it holds it in `PeerHello` (HMAC-SHA256). nil: peers are accepted
        /// without proof, unless authentication is on (then they are refused: a cluster with
        /// bearer tokens needs a cluster key).
        public var clusterKey: [UInt8]?
        /// How far a hello's timestamp may be from this node's clock, either way. Default 60 s.
        /// Hellos seen within it are remembered so that a replayed one is refused.
        public var maxClockSkew: Duration = .seconds(60)
        /// The most hello nonces remembered (accepted hellos within ``maxClockSkew``); past it
        /// a new hello is refused with `Overloaded` until older ones expire. Default 65,536.
        public var maxRememberedHellos: Int = 65_536
        /// Called with the decoded messages of each `RaftBatch`, in arrival order per
        /// connection, on the connection's task: it must not block (queue the envelopes and
        /// return). `from` is the peer's Raft node id. nil: the node is not in a cluster;
        /// `PeerHello` and `RaftBatch` are answered `NotInCluster` and nothing else happens.
        public var onRaft: (@Sendable (_ from: Raft.NodeID, _ envelopes: [RaftEnvelope]) -> Void)?
        /// Serves a `SnapshotChunk` request of the peer `from` (its Raft node id), on the
        /// connection's task (the connection waits for the answer). nil: answered `NotInCluster`.
        public var onSnapshotChunk: (@Sendable (_ from: Raft.NodeID, _ request: SnapshotChunkRequest) async throws(TernError) -> SnapshotChunk)?

        public init() {}
    }

    /// Counts of the node-to-node traffic this listener took, since start.
    public struct InboundRaftCounters: Sendable, Hashable {
        /// `PeerHello` frames accepted, and refused (bad proof, clock skew, replay, wrong
        /// target, no key while authentication is on, not in a cluster).
        public var hellosAccepted = 0, hellosRefused = 0
        /// `RaftBatch` frames handed to `onRaft`, and refused (no hello, not in a cluster).
        public var batchesReceived = 0, batchesRefused = 0
        /// Messages handed to `onRaft`.
        public var messagesReceived = 0
        /// `SnapshotChunk` requests answered with a chunk, and their data bytes.
        public var snapshotChunksServed = 0, snapshotBytesServed = 0
        /// Messages dropped from well-formed batches: undecodable by `Raft.Codec`, and whose
        /// `from` is not the peer that said hello or whose `to` is not this node.
        public var messagesUndecodable = 0, messagesMisaddressed = 0

        public init() {}
    }
}

/// The server side of node-to-node traffic: verifies `PeerHello`s (cluster key, clock skew,
/// replay) and turns `RaftBatch`es into ``RaftEnvelope``s for ``WireServer/PeerSettings/onRaft``.
/// No I/O: ``WireConnection`` feeds it frames.
final class PeerEndpoint: Sendable {
    let settings: WireServer.PeerSettings
    /// Whether the listener has bearer-token authentication on.
    let authEnabled: Bool
    private let key: SymmetricKey?
    private let localRaftID: Raft.NodeID?
    /// Milliseconds since 1970.
    private let now: @Sendable () -> UInt64
    /// Nonces of accepted hellos and their timestamps (milliseconds since 1970).
    private let seen = Mutex<[[UInt8]: UInt64]>([:])
    private let counters = Mutex(WireServer.InboundRaftCounters())

    init(settings: WireServer.PeerSettings, authEnabled: Bool,
         now: @escaping @Sendable () -> UInt64 = { SystemClock().now.milliseconds }) {
        precondition(settings.clusterKey.map { $0.count >= 16 } ?? true, "a cluster key has at least 16 bytes")
        self.settings = settings
        self.authEnabled = authEnabled
        self.key = settings.clusterKey.map { SymmetricKey(data: $0) }
        self.localRaftID = settings.nodeID.map { RaftNodeID.of($0) }
        self.now = now
    }

    var snapshot: WireServer.InboundRaftCounters { counters.withLock { $0 } }

    /// Whether a refusal leaves the connection open: `NotInCluster` changes nothing and the
    /// peer may ask again later; a failed proof or a protocol break closes it.
    static func keepsConnection(_ error: TernError) -> Bool { error.code == .notInCluster }

    /// Checks `hello`.
    /// - Throws: ``TernError`` `NotInCluster` (no `onRaft` or no node id), `Unauthorized`
    ///   (no proof, a wrong proof, a timestamp beyond the clock skew, a replayed nonce, a key
    ///   needed because authentication is on), `InvalidParameter` (a target other than this
    ///   node), `Overloaded` (too many hellos remembered).
    func accept(_ hello: WirePeerHello) throws(TernError) {
        do {
            try verify(hello)
            counters.withLock { $0.hellosAccepted += 1 }
        } catch {
            counters.withLock { $0.hellosRefused += 1 }
            throw error
        }
    }

    private func verify(_ hello: WirePeerHello) throws(TernError) {
        guard settings.onRaft != nil, let localRaftID else {
            throw TernError(.notInCluster, "this node does not run in a cluster: it takes no PeerHello")
        }
        guard let key else {
            if authEnabled {
                throw TernError(.unauthorized, "authentication is on: peers need a cluster key (--cluster-key) to connect")
            }
            guard hello.target == localRaftID else { throw wrongTarget(hello) }
            return
        }
        guard let proof = hello.proof,
              HMAC<SHA256>.isValidAuthenticationCode(proof, authenticating: hello.authenticatedBytes, using: key) else {
            throw TernError(.unauthorized, "the PeerHello proof does not match the cluster key")
        }
        guard hello.target == localRaftID else { throw wrongTarget(hello) }
        let current = now()
        let skew = UInt64(max(0, settings.maxClockSkew / .milliseconds(1)))
        let distance = current > hello.timestamp ? current - hello.timestamp : hello.timestamp - current
        guard distance <= skew else {
            throw TernError(.unauthorized, "the PeerHello timestamp is \(distance) ms from this node's clock (at most \(skew) ms): check the clocks (NTP)")
        }
        let limit = settings.maxRememberedHellos
        try seen.withLock { (seen: inout [[UInt8]: UInt64]) throws(TernError) in
            if seen[hello.nonce] != nil { throw TernError(.unauthorized, "a replayed PeerHello (its nonce was seen)") }
            if seen.count >= limit {
                seen = seen.filter { current <= $0.value || current - $0.value <= skew }
            }
            guard seen.count < limit else {
                throw TernError(.overloaded, "too many peer connections opened within \(skew) ms")
            }
            seen[hello.nonce] = hello.timestamp
        }
    }

    private func wrongTarget(_ hello: WirePeerHello) -> TernError {
        TernError(.invalidParameter, "PeerHello names node \(hello.target), this is \(settings.nodeID ?? "?") (\(localRaftID ?? 0)): a stale address?")
    }

    /// Decodes `batch` of the connection whose accepted hello said `peer` and hands its
    /// messages to `onRaft`; undecodable or misaddressed messages are dropped and counted.
    /// - Returns: the messages handed over.
    /// - Throws: ``TernError`` `NotInCluster` (no `onRaft`), `InvalidFrame` (no accepted
    ///   hello on the connection, or a batch from another node than the hello's).
    @discardableResult
    func deliver(_ batch: WireRaftBatch, peer: String?) throws(TernError) -> Int {
        guard let onRaft = settings.onRaft, let localRaftID else {
            counters.withLock { $0.batchesRefused += 1 }
            throw TernError(.notInCluster, "this node does not run in a cluster: it takes no RaftBatch")
        }
        guard let peer else {
            counters.withLock { $0.batchesRefused += 1 }
            throw TernError(.invalidFrame, "RaftBatch before an accepted PeerHello")
        }
        guard batch.from == peer else {
            counters.withLock { $0.batchesRefused += 1 }
            throw TernError(.invalidFrame, "RaftBatch from \(batch.from) on the connection of \(peer)")
        }
        let from = RaftNodeID.of(peer)
        var envelopes = [RaftEnvelope]()
        envelopes.reserveCapacity(batch.messages.count)
        var undecodable = 0, misaddressed = 0
        for message in batch.messages {
            guard let decoded = try? Raft.Codec.decodeMessage(message.bytes) else {
                undecodable += 1
                continue
            }
            guard decoded.from == from, decoded.to == localRaftID else {
                misaddressed += 1
                continue
            }
            envelopes.append(RaftEnvelope(group: message.group, message: decoded))
        }
        let delivered = envelopes.count
        counters.withLock {
            $0.batchesReceived += 1
            $0.messagesReceived += delivered
            $0.messagesUndecodable += undecodable
            $0.messagesMisaddressed += misaddressed
        }
        if !envelopes.isEmpty { onRaft(from, envelopes) }
        return delivered
    }

    /// Answers a `SnapshotChunk` request of the connection whose accepted hello said `peer`.
    /// - Returns: the answer: the chunk, or the error (`NotInCluster` without a handler,
    ///   `InvalidFrame` before an accepted hello, what the handler threw).
    func snapshotChunk(_ request: WireSnapshotChunkRequest, peer: String?) async -> WireResponse {
        guard let serve = settings.onSnapshotChunk, settings.onRaft != nil else {
            return .error(TernError(.notInCluster, "this node does not run in a cluster: it serves no snapshots"))
        }
        guard let peer else { return .error(TernError(.invalidFrame, "SnapshotChunk before an accepted PeerHello")) }
        do throws(TernError) {
            let chunk = try await serve(RaftNodeID.of(peer), SnapshotChunkRequest(
                group: request.group, snapshotID: request.snapshotID, minApplied: request.minApplied, offset: request.offset,
                maxBytes: request.maxBytes))
            counters.withLock {
                $0.snapshotChunksServed += 1
                $0.snapshotBytesServed += chunk.data.count
            }
            return .snapshotChunk(WireSnapshotChunk(
                snapshotID: chunk.snapshotID, group: chunk.info.group, applied: chunk.info.applied, totalBytes: chunk.info.bytes,
                checksum: chunk.info.checksum, offset: chunk.offset, data: chunk.data))
        } catch {
            return .error(error)
        }
    }
}
