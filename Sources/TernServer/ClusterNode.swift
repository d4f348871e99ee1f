public import Logging
import Synchronization
public import TernBroker
public import TernCluster
public import TernGossip
public import TernReplication
public import TernWire
public import TernCore
public import NIOSSL

/// This node's part in a cluster, as the listeners see it: the replication group that holds
/// the queues and topics (``ReplicatedBroker``), the gossip membership that says where its
/// members listen, and the decision every request starts with — serve here, forward to the
/// leader, or answer `503 Unavailable` while the group has no leader.
///
/// Step one of the cluster (docs/cluster.md): one data group, whose voters are the
/// controllers, holds every queue and topic. Per-queue and per-partition groups placed by the
/// metadata group come next.
public final class ClusterNode: Sendable {
    /// Where a request for the data group goes.
    public enum Route: Sendable, Equatable {
        /// This node leads the group and has applied its term's first entry: serve here.
        case local
        /// Another node leads it: forward there (its node id and the address asked for).
        case forward(leader: String, address: Gossip.Address)
        /// No leader is known now, or its address is not known: `503` with `Retry-After`.
        case unavailable(String)
    }

    /// This node's id (`--node-id`).
    public let nodeID: String
    /// The controllers (`--controllers`), the voters of the data group.
    public let controllers: [String]
    public let data: ReplicatedBroker
    public let gossip: GossipService
    /// Serves snapshot files of the data group to followers that need one (nil: none served).
    public let snapshots: SnapshotServer?
    /// Requests forwarded to the leader, over HTTP and the binary protocol (a metric).
    let forwarded = Atomic<Int>(0)
    /// The client HTTP requests are forwarded to the leader with, and the scheme they use
    /// (`https` when the nodes' listeners serve TLS).
    let forwarding: ForwardingClient
    /// The queue groups this node hosts (decision 140); nil: every queue lives in the data group.
    public let queueGroups: QueueGroupHost?
    /// Copies of each new queue group (`--replication-factor`), at most the data group's live voters.
    public let replicationFactor: Int
    /// The most queue groups the cluster holds (`--max-queue-groups`): each costs every replica
    /// an LMDB environment, a Raft ticker and a maintenance task.
    public let maxQueueGroups: Int

    /// - Parameters:
    ///   - forwardingTLS: TLS towards the other nodes' HTTP listeners (when the nodes serve TLS;
    ///     ``TLSSettings/peerClientConfiguration()``); nil = plain HTTP.
    ///   - snapshots: serves this node's snapshot files to peers (`SnapshotChunk`).
    ///   - queueGroups: hosts this node's queue groups; nil: queues live in the data group.
    ///   - replicationFactor: copies of each new queue group.
    ///   - maxQueueGroups: the most queue groups the cluster holds.
    public init(nodeID: String, controllers: [String], data: ReplicatedBroker, gossip: GossipService,
                forwardingTLS: TLSConfiguration? = nil, snapshots: SnapshotServer? = nil,
                queueGroups: QueueGroupHost? = nil, replicationFactor: Int = 3, maxQueueGroups: Int = 1024) {
        self.nodeID = nodeID
        self.queueGroups = queueGroups
        self.replicationFactor = replicationFactor
        self.maxQueueGroups = maxQueueGroups
        self.snapshots = snapshots
        self.controllers = controllers
        self.data = data
        self.gossip = gossip
        self.forwarding = forwardingTLS.map(ForwardingClient.init(tls:)) ?? .plain
    }

    /// Hands the data group's leadership to the most caught-up other voter that gossip sees
    /// alive, and waits until another node leads, at most `timeout`: a leader that stops
    /// (`SIGTERM`, a rolling restart) then costs the cluster one round trip instead of an
    /// election timeout (Raft thesis, Ongaro 2014, §3.10; Kafka's controlled shutdown).
    /// - Returns: the node that leads now, nil when this node did not lead, no other voter
    ///   is alive, or no other node led within `timeout` (the others then elect one as after
    ///   a crash).
    public func handOffLeadership(timeout: Duration) async -> String? {
        let status = data.group.status
        guard status.role == .leader else { return nil }
        let alive = Set(gossip.members().filter { $0.member.state == .alive }.map { $0.member.node.id.rawValue })
        let candidates = status.voters.filter { $0 != status.node }
            .compactMap { id in name(of: id).map { (id: id, name: $0, match: status.match[id] ?? 0) } }
            .filter { alive.contains($0.name) }
            .sorted { ($0.match, $1.name) > ($1.match, $0.name) }
        guard let target = candidates.first else { return nil }
        do throws(TernError) {
            try data.group.transferLeadership(to: target.id)
        } catch {
            return nil
        }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let now = data.group.status
            if let leader = now.leader, leader != now.node { return name(of: leader) ?? "\(leader)" }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    /// Stops the forwarding client's connections (at shutdown; the plain client is shared and stays).
    public func shutdown() async {
        if forwarding.isOwned { try? await forwarding.client.shutdown() }
    }

    /// The string id (`--node-id`) of the member whose Raft id is `id`: a founding voter, a node
    /// added since, or any node gossip reports (learned then, so that it stays known after gossip
    /// forgets a dead node).
    public func name(of id: Raft.NodeID) -> String? {
        if let known = data.group.name(of: id) { return known }
        guard let found = gossip.members().first(where: { RaftNodeID.of($0.member.node.id.rawValue) == id }) else { return nil }
        let name = found.member.node.id.rawValue
        data.group.learn(name: name)
        return name
    }

    /// Adds `name` to the data group as a learner (it receives the log, or a snapshot, and does
    /// not vote); the leader promotes it to voter once its log reaches the commit index
    /// (Raft thesis, Ongaro 2014, §4.2.1; decision 126). Returns once the learner is in the
    /// committed configuration, not once it is promoted (`GET /cluster` shows that).
    /// A node that is already a member is left as it is (its configuration is returned).
    /// - Throws: ``TernError``: `InvalidParameter` (not a node id); `NodeNotFound` (gossip does
    ///   not see the node alive with a binary address: start it first, with the cluster's
    ///   seeds); `Conflict` (its Raft id is another member's); `NotLeader`;
    ///   `Unavailable` (another change is in flight, or the outcome is unknown: look at
    ///   `GET /cluster` and retry).
    public func addMember(_ name: String) async throws(TernError) -> Raft.Configuration {
        guard Gossip.NodeID.isValid(name) else {
            throw TernError(.invalidParameter, "node ids are 1–64 of A–Z a–z 0–9 _ . -, got \"\(name)\"")
        }
        let id = RaftNodeID.of(name)
        let status = data.group.status
        if status.voters.contains(id) || status.learners.contains(id) {
            let holder = data.group.name(of: id) ?? "\(id)"
            guard holder == name else {
                throw TernError(.conflict, "node \(name) hashes to the Raft id of member \(holder); rename it")
            }
            return Raft.Configuration(voters: status.voters, learners: status.learners)  // already one: no change
        }
        guard let found = member(name), found.state == .alive, found.node.binary != nil else {
            throw TernError(.nodeNotFound, "gossip does not see node \(name) alive with a binary address; start it with --gossip and --seeds of this cluster first")
        }
        data.group.learn(name: name)
        return try await data.group.changeMembership(.addLearner(id))
    }

    /// Removes `name` (a voter or a learner) from the data group. A leader that removes itself
    /// steps down once the change commits, and the others elect a leader (thesis §4.2.2).
    ///
    /// Refused when the voters left would not have a majority alive (etcd's strict
    /// reconfiguration check): removing a live voter while another is down could leave a group
    /// that cannot commit.
    /// - Throws: ``TernError``: `NodeNotFound` (not a member); `Conflict` (the last voter, or too
    ///   few voters alive afterwards); `NotLeader`; `Unavailable` (another change is in flight,
    ///   or the outcome is unknown).
    public func removeMember(_ name: String) async throws(TernError) -> Raft.Configuration {
        let id = RaftNodeID.of(name)
        let status = data.group.status
        guard status.voters.contains(id) || status.learners.contains(id), (data.group.name(of: id) ?? name) == name else {
            throw TernError(.nodeNotFound, "node \(name) is not a member of the data group")
        }
        if status.voters.contains(id) {
            let remaining = status.voters.subtracting([id])
            guard !remaining.isEmpty else { throw TernError(.conflict, "node \(name) is the data group's last voter") }
            // Alive: gossip says so and the voter answered this leader within an election
            // timeout (Raft notices a death sooner than gossip's suspicion does).
            let alive = remaining.filter { voter in
                voter == status.node || status.recentlyHeard.contains(voter)
                    && self.name(of: voter).flatMap { member($0) }.map { $0.state == .alive } ?? false
            }
            guard alive.count > remaining.count / 2 else {
                throw TernError(.conflict, "removing \(name) would leave \(alive.count) of \(remaining.count) voters alive, less than a majority; bring a voter back or add a node first")
            }
        }
        return try await data.group.changeMembership(.remove(id))
    }

    public func member(_ id: String) -> Gossip.Member? {
        gossip.members().first { $0.member.node.id.rawValue == id }?.member
    }

    /// The data group's leader now: its node id, when one is known.
    public var leader: String? {
        data.group.status.leader.map { name(of: $0) ?? "\($0)" }
    }

    /// Where a request goes now; `http` picks the leader's HTTP address, else its binary one.
    public func route(http: Bool) -> Route {
        let status = data.group.status
        if status.isServing { return .local }
        guard let leaderID = status.leader, leaderID != status.node, let leader = name(of: leaderID) else {
            if !status.voters.contains(status.node) && !status.learners.contains(status.node) {
                return .unavailable("this node (\(nodeID)) is not a replica of the data group (a spare, or removed) and knows no leader: send to a replica, or add this node with `tern cluster add \(nodeID)` (a removed one after emptying its data directory)")
            }
            return .unavailable(status.role == .leader
                ? "this node was just elected leader of the data group and is catching up; retry"
                : "the data group has no leader now (an election is under way); retry")
        }
        guard let member = member(leader), let address = http ? member.node.http : member.node.binary else {
            return .unavailable("the data group's leader \(leader) is not known to gossip yet; retry")
        }
        return .forward(leader: leader, address: address)
    }

    /// What `Metadata` (binary API key 59) answers: the data group's leader and its binary
    /// address, and every node with its binary address — the controllers first, in their
    /// configured order, then other members gossip knows.
    public func metadata() -> WireMetadata {
        let status = data.group.status
        let members = gossip.members()
        func node(_ id: String) -> WireMetadata.Node {
            let found = members.first { $0.member.node.id.rawValue == id }
            let reachable = id == nodeID || found.map { $0.member.state == .alive || $0.member.state == .suspect } ?? false
            return WireMetadata.Node(nodeID: id, binary: found?.member.node.binary?.description, reachable: reachable)
        }
        var nodes = controllers.map(node)
        for member in members where !controllers.contains(member.member.node.id.rawValue) {
            nodes.append(node(member.member.node.id.rawValue))
        }
        let leader = status.leader.map { name(of: $0) ?? "\($0)" }
        let group = WireMetadata.Group(id: ClusterNode.dataGroup, scope: .everything, leader: leader,
                                       leaderBinary: leader.flatMap { node($0).binary }, term: status.term)
        return WireMetadata(clustered: true, nodeID: nodeID, nodes: nodes, groups: [group])
    }

    /// The node a Raft id names, and its binary address (the transport's resolver).
    public func binaryAddress(of node: Raft.NodeID) -> (host: String, port: Int)? {
        guard let name = name(of: node), let address = member(name)?.node.binary else { return nil }
        return (address.host, Int(address.port))
    }

    /// Hands a Raft message received from a peer to its group.
    public func receive(_ envelopes: [RaftEnvelope]) {
        for envelope in envelopes {
            if envelope.group == ClusterNode.dataGroup {
                data.group.step(envelope.message)
            } else {
                // A group not (yet) started here drops its messages; the sender retries.
                queueGroups?.group(envelope.group)?.replica.group.step(envelope.message)
            }
        }
    }

    /// Serves a peer's `SnapshotChunk` request.
    /// - Throws: ``TernError`` `NotInCluster` when this node serves no snapshots, else what
    ///   ``SnapshotServer/chunk(_:)`` throws.
    public func snapshotChunk(_ request: SnapshotChunkRequest) async throws(TernError) -> SnapshotChunk {
        if request.group != ClusterNode.dataGroup {
            guard let hosted = queueGroups?.group(request.group) else {
                throw TernError(.notInCluster, "this node does not host group \(request.group)")
            }
            return try await hosted.snapshots.chunk(request)
        }
        guard let snapshots else { throw TernError(.notInCluster, "this node serves no snapshots") }
        return try await snapshots.chunk(request)
    }

    /// The id of the one data group of step one.
    public static let dataGroup: UInt64 = 1

    /// Counts a forwarded request.
    public func countForwarded() { forwarded.add(1, ordering: .relaxed) }

    /// Requests this node forwarded to a leader since it started.
    public var forwardedRequests: Int { forwarded.load(ordering: .relaxed) }
}
