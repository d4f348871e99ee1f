public import TernReplication

/// One Raft message of one replication group, as it travels between two nodes.
public struct RaftEnvelope: Sendable, Hashable {
    /// The replication group the message belongs to (0 is the metadata group).
    public var group: UInt64
    public var message: Raft.Message

    public init(group: UInt64, message: Raft.Message) {
        self.group = group
        self.message = message
    }
}

/// Carries Raft messages between nodes (CLUSTER.md, "the RPC"): messages of many groups to the
/// same node travel together, as one frame of the binary protocol.
///
/// Delivery is best effort: a message may be lost, delayed or duplicated (a connection that
/// breaks drops what it had queued). Raft tolerates all three — the leader retries appends
/// on its next heartbeat, candidates on their next election timeout — so a transport never
/// blocks its caller: past its per-peer bound it drops the oldest messages.
public protocol RaftTransport: Sendable {
    /// Queues `envelopes` for their `message.to` nodes and returns at once.
    func send(_ envelopes: [RaftEnvelope])
}

/// How a node's string id (`--node-id n1`) becomes the 64-bit id Raft uses: FNV-1a (64-bit)
/// of its UTF-8 bytes, with 0 (Raft's "none") mapped to 1. Stable across releases and
/// machines; the cluster refuses to start members whose ids collide.
public enum RaftNodeID {
    public static func of(_ nodeID: String) -> Raft.NodeID {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in nodeID.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash == 0 ? 1 : hash
    }
}
