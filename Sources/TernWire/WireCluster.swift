public import NIOCore
import TernCore

/// One member of the gossip membership view, as `DescribeCluster` (key 60) carries it.
public struct WireClusterMember: Sendable, Hashable {
    /// `alive`, `suspect`, `dead` or `left` (u8 0–3 on the wire).
    public enum State: UInt8, Sendable, Hashable, CaseIterable {
        case alive = 0, suspect = 1, dead = 2, left = 3
        public var name: String { ["alive", "suspect", "dead", "left"][Int(rawValue)] }
    }

    public var nodeID: String
    public var state: State
    public var incarnation: UInt64
    /// `HOST:PORT` of its gossip (UDP), HTTP and binary listeners.
    public var gossip: String
    public var http: String?
    public var binary: String?
    public var zone: String?
    /// Milliseconds since 1970 (the member's clock).
    public var startedAt: UInt64
    /// Milliseconds since 1970 when its state last changed (the answering node's clock).
    public var lastChange: UInt64
    /// Whether it is the node that answered.
    public var isLocal: Bool

    public init(nodeID: String, state: State, incarnation: UInt64, gossip: String, http: String?, binary: String?,
                zone: String?, startedAt: UInt64, lastChange: UInt64, isLocal: Bool) {
        self.nodeID = nodeID
        self.state = state
        self.incarnation = incarnation
        self.gossip = gossip
        self.http = http
        self.binary = binary
        self.zone = zone
        self.startedAt = startedAt
        self.lastChange = lastChange
        self.isLocal = isLocal
    }
}

/// The answer to `DescribeCluster`: whether the node runs gossip, its id, and its view.
public struct WireClusterView: Sendable, Hashable {
    public var gossip: Bool
    public var nodeID: String?
    public var members: [WireClusterMember]

    public init(gossip: Bool, nodeID: String?, members: [WireClusterMember]) {
        self.gossip = gossip
        self.nodeID = nodeID
        self.members = members
    }

    /// A node without gossip: alone, no members.
    public static let alone = WireClusterView(gossip: false, nodeID: nil, members: [])
}

extension ByteBuffer {
    mutating func writeClusterView(_ view: WireClusterView) {
        writeWireBool(view.gossip)
        writeWireOptional(view.nodeID) { $0.writeWireString($1) }
        writeInteger(UInt32(view.members.count))
        for member in view.members {
            writeWireString(member.nodeID)
            writeInteger(member.state.rawValue)
            writeInteger(member.incarnation)
            writeWireString(member.gossip)
            writeWireOptional(member.http) { $0.writeWireString($1) }
            writeWireOptional(member.binary) { $0.writeWireString($1) }
            writeWireOptional(member.zone) { $0.writeWireString($1) }
            writeInteger(member.startedAt)
            writeInteger(member.lastChange)
            writeWireBool(member.isLocal)
        }
    }
}

extension WireReader {
    mutating func readClusterView() throws(TernError) -> WireClusterView {
        let gossip = try readBool("gossip")
        let nodeID = try readOptional("node id") { (r: inout WireReader) throws(TernError) in try r.readString("node id") }
        let count = try readCount("member count", minimumElementBytes: 34)
        var members = [WireClusterMember]()
        members.reserveCapacity(count)
        for _ in 0..<count {
            let id = try readString("node id")
            guard let state = WireClusterMember.State(rawValue: try read(UInt8.self, "state")) else {
                throw TernError(.invalidFrame, "unknown member state")
            }
            let incarnation = try read(UInt64.self, "incarnation")
            let gossipAddress = try readString("gossip address")
            let http = try readOptional("http address") { (r: inout WireReader) throws(TernError) in try r.readString("http address") }
            let binary = try readOptional("binary address") { (r: inout WireReader) throws(TernError) in try r.readString("binary address") }
            let zone = try readOptional("zone") { (r: inout WireReader) throws(TernError) in try r.readString("zone") }
            members.append(WireClusterMember(
                nodeID: id, state: state, incarnation: incarnation, gossip: gossipAddress, http: http, binary: binary, zone: zone,
                startedAt: try read(UInt64.self, "started at"), lastChange: try read(UInt64.self, "last change"),
                isLocal: try readBool("local")))
        }
        return WireClusterView(gossip: gossip, nodeID: nodeID, members: members)
    }
}

/// The answer to `Metadata` (API key 59): who leads each replication group now and where the
/// cluster's nodes listen, as the answering node knows it (Kafka's `Metadata`). A client sends
/// straight to a group's leader, and falls back to the other nodes when its node cannot be
/// reached. A node alone answers ``alone``.
public struct WireMetadata: Sendable, Hashable {
    /// One replication group and its leader.
    public struct Group: Sendable, Hashable {
        /// What a group holds. Step one of the cluster has one group holding every queue and topic.
        public enum Scope: UInt8, Sendable, Hashable, CaseIterable {
            /// Every queue and topic (the one data group of cluster step one).
            case everything = 0
        }

        /// The group's id (1 for the data group of step one).
        public var id: UInt64
        public var scope: Scope
        /// The leader's node id; nil while no leader is known (an election is under way).
        public var leader: String?
        /// The leader's binary listener, `HOST:PORT`, when gossip knows it.
        public var leaderBinary: String?
        /// The leader's Raft term, as the answering node saw it.
        public var term: UInt64

        public init(id: UInt64, scope: Scope, leader: String?, leaderBinary: String?, term: UInt64) {
            self.id = id
            self.scope = scope
            self.leader = leader
            self.leaderBinary = leaderBinary
            self.term = term
        }
    }

    /// A node of the cluster and its binary listener.
    public struct Node: Sendable, Hashable {
        public var nodeID: String
        /// `HOST:PORT` of its binary listener, when gossip knows it.
        public var binary: String?
        /// Whether gossip sees it alive (or suspect) now.
        public var reachable: Bool

        public init(nodeID: String, binary: String?, reachable: Bool) {
            self.nodeID = nodeID
            self.binary = binary
            self.reachable = reachable
        }
    }

    /// Whether the answering node runs in a cluster.
    public var clustered: Bool
    /// The answering node's id.
    public var nodeID: String?
    /// The voters of the groups (`--controllers`), then any other member gossip knows.
    public var nodes: [Node]
    public var groups: [Group]

    public init(clustered: Bool, nodeID: String?, nodes: [Node], groups: [Group]) {
        self.clustered = clustered
        self.nodeID = nodeID
        self.nodes = nodes
        self.groups = groups
    }

    /// A node outside a cluster: it serves everything itself.
    public static let alone = WireMetadata(clustered: false, nodeID: nil, nodes: [], groups: [])
}

extension ByteBuffer {
    mutating func writeMetadata(_ metadata: WireMetadata) {
        writeWireBool(metadata.clustered)
        writeWireOptional(metadata.nodeID) { $0.writeWireString($1) }
        writeInteger(UInt32(metadata.nodes.count))
        for node in metadata.nodes {
            writeWireString(node.nodeID)
            writeWireOptional(node.binary) { $0.writeWireString($1) }
            writeWireBool(node.reachable)
        }
        writeInteger(UInt32(metadata.groups.count))
        for group in metadata.groups {
            writeInteger(group.id)
            writeInteger(group.scope.rawValue)
            writeWireOptional(group.leader) { $0.writeWireString($1) }
            writeWireOptional(group.leaderBinary) { $0.writeWireString($1) }
            writeInteger(group.term)
        }
    }
}

extension WireReader {
    mutating func readMetadata() throws(TernError) -> WireMetadata {
        let clustered = try readBool("clustered")
        let nodeID = try readOptional("node id") { (r: inout WireReader) throws(TernError) in try r.readString("node id") }
        let nodeCount = try readCount("node count", minimumElementBytes: 4)
        var nodes = [WireMetadata.Node]()
        nodes.reserveCapacity(nodeCount)
        for _ in 0..<nodeCount {
            let id = try readString("node id")
            let binary = try readOptional("binary address") { (r: inout WireReader) throws(TernError) in try r.readString("binary address") }
            nodes.append(WireMetadata.Node(nodeID: id, binary: binary, reachable: try readBool("reachable")))
        }
        let groupCount = try readCount("group count", minimumElementBytes: 19)
        var groups = [WireMetadata.Group]()
        groups.reserveCapacity(groupCount)
        for _ in 0..<groupCount {
            let id = try read(UInt64.self, "group id")
            guard let scope = WireMetadata.Group.Scope(rawValue: try read(UInt8.self, "scope")) else {
                throw TernError(.invalidFrame, "unknown group scope")
            }
            let leader = try readOptional("leader") { (r: inout WireReader) throws(TernError) in try r.readString("leader") }
            let binary = try readOptional("leader address") { (r: inout WireReader) throws(TernError) in try r.readString("leader address") }
            groups.append(WireMetadata.Group(id: id, scope: scope, leader: leader, leaderBinary: binary, term: try read(UInt64.self, "term")))
        }
        return WireMetadata(clustered: clustered, nodeID: nodeID, nodes: nodes, groups: groups)
    }
}
