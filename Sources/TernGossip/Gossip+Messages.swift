extension Gossip {
    /// One datagram: who sent it and one or more messages (a compound packet: a probe or an ack
    /// with the updates piggybacked on it, SWIM §4.1). Encoded by ``Codec`` in at most
    /// ``Settings/maxPacketBytes`` bytes.
    public struct Packet: Hashable, Sendable {
        /// The sending node.
        public var sender: NodeID
        /// 1–255 messages, carried out in order by the receiver.
        public var messages: [Message]

        public init(sender: NodeID, messages: [Message]) {
            self.sender = sender
            self.messages = messages
        }
    }

    /// A membership update, disseminated by piggybacking (SWIM §4.1) and carried in state syncs.
    public enum Update: Hashable, Sendable {
        /// The member is alive at `incarnation`, with this metadata.
        case alive(Node, incarnation: UInt64)
        /// `source` suspects the member at `incarnation` (SWIM §4.2).
        case suspect(NodeID, incarnation: UInt64, source: NodeID)
        /// `source` declared the member dead at `incarnation`.
        case dead(NodeID, incarnation: UInt64, source: NodeID)
        /// The member left the cluster on its own at `incarnation`.
        case left(NodeID, incarnation: UInt64)

        /// The member the update is about.
        public var member: NodeID {
            switch self {
            case .alive(let node, _): node.id
            case .suspect(let id, _, _), .dead(let id, _, _), .left(let id, _): id
            }
        }

        public var incarnation: UInt64 {
            switch self {
            case .alive(_, let i), .suspect(_, let i, _), .dead(_, let i, _), .left(_, let i): i
            }
        }
    }

    /// One member's full state in a push-pull sync.
    public struct MemberRecord: Hashable, Sendable {
        public var node: Node
        public var state: MemberState
        public var incarnation: UInt64

        public init(node: Node, state: MemberState, incarnation: UInt64) {
            self.node = node
            self.state = state
            self.incarnation = incarnation
        }
    }

    /// The messages of the protocol.
    public enum Message: Hashable, Sendable {
        /// A direct probe (SWIM §3.1) of `target`, answered by an ack with the same sequence.
        case ping(sequence: UInt32, target: NodeID)
        /// Asks the receiver to probe `target` at `address` and relay its ack (SWIM §3.1); with
        /// `wantsNack` the receiver answers a nack when the target stays silent (Lifeguard §IV.A).
        case indirectPing(sequence: UInt32, target: NodeID, address: Address, wantsNack: Bool)
        /// Answers a ping or relays an indirect one.
        case ack(sequence: UInt32)
        /// An indirect prober got no ack from the target in time.
        case nack(sequence: UInt32)
        /// A membership update.
        case update(Update)
        /// One chunk of a full state sync (memberlist's push-pull, carried in datagrams). With
        /// `replyWanted` the receiver answers with its own state; `join` marks the first sync of a
        /// joining node.
        case sync(replyWanted: Bool, join: Bool, members: [MemberRecord])
    }
}
