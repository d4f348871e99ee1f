import Hummingbird
import TernGossip

extension HTTPAPI.Operations {
    /// The cluster routes, as `METHOD /path`.
    static let clusterRoutes = ["GET /cluster/members"]

    /// `GET /cluster/members`: the gossip membership view of this node (`docs/openapi.yaml`).
    func installClusterRoutes(on router: Router<BasicRequestContext>) {
        let cluster = self.cluster
        router.get("/cluster/members") { _, _ -> Response in
            guard let cluster else { return try json(.ok, ClusterMembersBody(gossip: false, node_id: nil, members: [])) }
            return try json(.ok, ClusterMembersBody(gossip: true, node_id: cluster.node.id.rawValue,
                                                     members: cluster.members().map(ClusterMemberBody.init)))
        }
    }
}

/// The body of `GET /cluster/members`.
struct ClusterMembersBody: Encodable {
    /// Whether this node runs gossip (false: it runs alone; `members` is empty).
    var gossip: Bool
    var node_id: String?
    var members: [ClusterMemberBody]
}

struct ClusterMemberBody: Encodable {
    struct Addresses: Encodable {
        var gossip: String
        var http: String?
        var binary: String?
    }
    var node_id: String
    var state: String
    var incarnation: UInt64
    var addresses: Addresses
    var zone: String?
    /// Milliseconds since 1970.
    var started_at: UInt64
    /// Milliseconds since 1970, this node's clock.
    var last_change: UInt64
    /// Whether this is the node that answered.
    var local: Bool

    init(_ view: GossipService.MemberView) {
        let node = view.member.node
        node_id = node.id.rawValue
        state = view.member.state.description
        incarnation = view.member.incarnation
        addresses = Addresses(gossip: node.gossip.description, http: node.http?.description, binary: node.binary?.description)
        zone = node.zone
        started_at = node.startedAt
        last_change = view.lastChangeMilliseconds
        local = view.isLocal
    }
}
