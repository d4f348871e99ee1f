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
