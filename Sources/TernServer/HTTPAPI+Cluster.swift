import Hummingbird
import TernBroker
import TernCluster
import TernCore
import TernGossip
import TernReplication

extension HTTPAPI.Operations {
    /// The cluster routes, as `METHOD /path`.
    static let clusterRoutes = ["GET /cluster/members", "GET /cluster", "PUT /cluster/replicas/{node_id}",
                                "DELETE /cluster/replicas/{node_id}"]

    /// `GET /cluster/members`: the gossip membership view of this node (`docs/openapi.yaml`).
    func installClusterRoutes(on router: Router<BasicRequestContext>) {
        let cluster = self.cluster
        let clusterNode = self.clusterNode
        router.get("/cluster") { _, _ -> Response in
            guard let clusterNode else {
                return try json(.ok, ClusterBody(clustered: false, node_id: nil, controllers: [], controller: nil, members: [], groups: []))
            }
            return try json(.ok, ClusterBody(clusterNode))
        }
        // Membership of the data group (decision 126). Reaches here on its leader: the
        // forwarding middleware sends it there from any other node.
        router.put("/cluster/replicas/:node") { _, context -> Response in
            let (node, name) = try Self.membershipTarget(clusterNode, context)
            let configuration = try await node.addMember(name)  // a member already: unchanged, 200
            return try json(.ok, ReplicasBody(node, voters: configuration.voters, learners: configuration.learners))
        }
        router.delete("/cluster/replicas/:node") { _, context -> Response in
            let (node, name) = try Self.membershipTarget(clusterNode, context)
            let configuration = try await node.removeMember(name)
            return try json(.ok, ReplicasBody(node, voters: configuration.voters, learners: configuration.learners))
        }
        router.get("/cluster/members") { _, _ -> Response in
            guard let cluster else { return try json(.ok, ClusterMembersBody(gossip: false, node_id: nil, members: [])) }
            return try json(.ok, ClusterMembersBody(gossip: true, node_id: cluster.node.id.rawValue,
                                                     members: cluster.members().map(ClusterMemberBody.init)))
        }
    }
}

extension HTTPAPI.Operations {
    /// The cluster node and the node id a membership route names.
    /// - Throws: ``TernError`` `NotInCluster` on a node that runs alone, `InvalidParameter` for a
    ///   malformed node id.
    static func membershipTarget(_ node: ClusterNode?, _ context: BasicRequestContext) throws(TernError) -> (ClusterNode, String) {
        guard let node else {
            throw TernError(.notInCluster, "this node runs alone (started without --controllers): it has no replicas to change")
        }
        let name = context.parameters.get("node") ?? ""
        guard Gossip.NodeID.isValid(name) else {
            throw TernError(.invalidParameter, "node ids are 1–64 of A–Z a–z 0–9 _ . -, got \"\(name)\"")
        }
        return (node, name)
    }
}

/// The answer of `PUT` and `DELETE /cluster/replicas/{node_id}`: the data group's committed
/// configuration after the change.
struct ReplicasBody: Encodable {
    var group: UInt64
    /// Voting replicas, by node id.
    var voters: [String]
    /// Non-voting replicas catching up (promoted to voters once caught up).
    var learners: [String]

    init(_ node: ClusterNode, voters: Set<Raft.NodeID>, learners: Set<Raft.NodeID>) {
        group = ClusterNode.dataGroup
        self.voters = voters.map { node.name(of: $0) ?? "\($0)" }.sorted()
        self.learners = learners.map { node.name(of: $0) ?? "\($0)" }.sorted()
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

/// The body of `GET /cluster`: this node's view of the cluster (`docs/openapi.yaml`).
///
/// Replication figures that only the leader knows (`in_sync`, `lag`, each replica's match
/// index) are null on other nodes; `leader` and `term` are known everywhere a leader is.
struct ClusterBody: Encodable {
    struct Controller: Encodable {
        var leader: String?
        var term: UInt64
    }
    struct Group: Encodable {
        var kind: String
        var name: String
        var partition: Int?
        /// The replication group's id (step one: every queue and topic is in group 1).
        var group: UInt64
        var leader: String?
        var term: UInt64
        var replicas: [String]
        /// The replicas that do not vote yet (catching up).
        var learners: [String]
        var in_sync: [String]?
        var commit_index: UInt64
        var applied_index: UInt64
        /// Entries the furthest replica is behind the commit index (leader only).
        var lag: UInt64?
        /// The index this node's log is compacted (or a snapshot installed) through; 0: none.
        var snapshot_index: UInt64
        /// Entries this node's log holds past the snapshot point (in memory and in LMDB).
        var log_entries: Int
        /// Snapshots this node installed for the group since it started.
        var snapshots_installed: Int
        /// Whether this node is installing a snapshot of the group now.
        var installing_snapshot: Bool
    }
    var clustered: Bool
    var node_id: String?
    var controllers: [String]
    var controller: Controller?
    var members: [ClusterMemberBody]
    /// The data group's voters and learners (nil on a node running alone).
    var replicas: ReplicasBody?
    var groups: [Group]

    init(clustered: Bool, node_id: String?, controllers: [String], controller: Controller?, members: [ClusterMemberBody],
         replicas: ReplicasBody? = nil, groups: [Group]) {
        self.replicas = replicas
        self.clustered = clustered
        self.node_id = node_id
        self.controllers = controllers
        self.controller = controller
        self.members = members
        self.groups = groups
    }

    init(_ node: ClusterNode) {
        let status = node.data.group.status
        let name: (Raft.NodeID) -> String = { node.name(of: $0) ?? "\($0)" }
        let leader = status.leader.map(name)
        let replicas = status.voters.union(status.learners).map(name).sorted()
        let learners = status.learners.map(name).sorted()
        var inSync: [String]?
        var lag: UInt64?
        if status.role == .leader {
            inSync = status.match.filter { $0.value >= status.commitIndex }.keys.map(name).sorted()
            lag = status.match.values.map { status.commitIndex - min($0, status.commitIndex) }.max() ?? 0
        }
        let installed = node.data.group.snapshotCounts.installed
        func group(_ kind: String, _ name: String, _ partition: Int?) -> Group {
            Group(kind: kind, name: name, partition: partition, group: ClusterNode.dataGroup, leader: leader, term: status.term,
                  replicas: replicas, learners: learners, in_sync: inSync, commit_index: status.commitIndex, applied_index: status.appliedIndex, lag: lag,
                  snapshot_index: status.snapshotIndex, log_entries: status.entriesInMemory, snapshots_installed: installed,
                  installing_snapshot: status.installingSnapshot)
        }
        var groups: [Group] = []
        let broker = node.data.broker
        for queue in (try? broker.listQueues()) ?? [] { groups.append(group("queue", queue.name.rawValue, nil)) }
        for topic in (try? broker.listTopics()) ?? [] {
            for partition in topic.partitions.indices { groups.append(group("topic", topic.name.rawValue, partition)) }
        }
        self.init(clustered: true, node_id: node.nodeID, controllers: node.controllers,
                  controller: Controller(leader: leader, term: status.term),
                  members: node.gossip.members().map(ClusterMemberBody.init),
                  replicas: ReplicasBody(node, voters: status.voters, learners: status.learners), groups: groups)
    }
}
