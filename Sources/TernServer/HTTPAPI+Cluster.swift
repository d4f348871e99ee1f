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
        /// The replication group's Raft id: 1 for the data group; a queue group's otherwise
        /// (queue groups on, decision 140).
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

        /// What a replica knows of a group it holds, shared by every queue and topic in it.
        struct Replication {
            var leader: String?
            var term: UInt64
            var replicas: [String]
            var learners: [String]
            var inSync: [String]?
            var lag: UInt64?
            var commitIndex, appliedIndex, snapshotIndex: UInt64
            var logEntries, snapshotsInstalled: Int
            var installingSnapshot: Bool

            /// - Parameter nameOf: the node id a Raft id stands for (nil: shown as the number).
            init<Machine>(_ group: ReplicaGroup<Machine>, nameOf: (Raft.NodeID) -> String?) {
                let status = group.status
                let name: (Raft.NodeID) -> String = { nameOf($0) ?? "\($0)" }
                leader = status.leader.map(name)
                term = status.term
                replicas = status.voters.union(status.learners).map(name).sorted()
                learners = status.learners.map(name).sorted()
                if status.role == .leader {
                    inSync = status.match.filter { $0.value >= status.commitIndex }.keys.map(name).sorted()
                    lag = status.match.values.map { status.commitIndex - min($0, status.commitIndex) }.max() ?? 0
                }
                commitIndex = status.commitIndex
                appliedIndex = status.appliedIndex
                snapshotIndex = status.snapshotIndex
                logEntries = status.entriesInMemory
                snapshotsInstalled = group.snapshotCounts.installed
                installingSnapshot = status.installingSnapshot
            }
        }
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
        let leader = status.leader.map { node.name(of: $0) ?? "\($0)" }
        let data = Group.Replication(node.data.group) { node.name(of: $0) }
        var groups: [Group] = []
        let broker = node.data.broker
        for queue in (try? broker.listQueues()) ?? [] {
            groups.append(Group(kind: "queue", name: queue.name.rawValue, partition: nil, group: ClusterNode.dataGroup, data))
        }
        for topic in (try? broker.listTopics()) ?? [] {
            for partition in topic.partitions.indices {
                groups.append(Group(kind: "topic", name: topic.name.rawValue, partition: partition, group: ClusterNode.dataGroup, data))
            }
        }
        // Queue groups (decision 140): what this node knows of each. A replica reports its own
        // view of the group, as for the data group; another node only the catalogue's replicas
        // (leader null: ask a replica).
        if let catalogue = node.catalogue {
            for queue in catalogue.queues.values.sorted(by: { $0.name.rawValue < $1.name.rawValue }) {
                guard let placed = catalogue.groups[queue.group] else { continue }
                let raftID = QueueGroupHost.raftGroup(of: placed.id)
                guard let hosted = node.queueGroups?.group(raftID) else {
                    groups.append(Group(kind: "queue", name: queue.name.rawValue, partition: nil, group: raftID, leader: nil, term: 0,
                                        replicas: placed.members.sorted(), learners: placed.learners.sorted(), in_sync: nil,
                                        commit_index: 0, applied_index: 0, lag: nil, snapshot_index: 0, log_entries: 0,
                                        snapshots_installed: 0, installing_snapshot: false))
                    continue
                }
                let replica = hosted.replica.group
                groups.append(Group(kind: "queue", name: queue.name.rawValue, partition: nil, group: raftID,
                                    Group.Replication(replica) { replica.name(of: $0) ?? node.name(of: $0) }))
            }
        }
        self.init(clustered: true, node_id: node.nodeID, controllers: node.controllers,
                  controller: Controller(leader: leader, term: status.term),
                  members: node.gossip.members().map(ClusterMemberBody.init),
                  replicas: ReplicasBody(node, voters: status.voters, learners: status.learners), groups: groups)
    }
}

extension ClusterBody.Group {
    /// A queue or topic of a group this node holds.
    init(kind: String, name: String, partition: Int?, group: UInt64, _ replication: Replication) {
        self.init(kind: kind, name: name, partition: partition, group: group, leader: replication.leader, term: replication.term,
                  replicas: replication.replicas, learners: replication.learners, in_sync: replication.inSync,
                  commit_index: replication.commitIndex, applied_index: replication.appliedIndex, lag: replication.lag,
                  snapshot_index: replication.snapshotIndex, log_entries: replication.logEntries,
                  snapshots_installed: replication.snapshotsInstalled, installing_snapshot: replication.installingSnapshot)
    }
}
