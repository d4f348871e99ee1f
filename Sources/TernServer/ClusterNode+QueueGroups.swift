import Foundation
public import TernBroker
import TernCluster
public import TernCore
public import TernGossip
public import TernMetadata
import TernReplication

/// Queue groups (decision 140): with `--queue-groups`, each queue created in the cluster gets a
/// replication group of its own (or its `colocate_with` queue's), placed on the data group's
/// voters by rendezvous hashing; the data group's log carries the catalogue that says where.
extension ClusterNode {
    /// Where a request for one queue group goes.
    public enum GroupRoute: Sendable {
        /// This node leads the group and serves: use this broker.
        case local(Broker, term: UInt64)
        /// Send it to this node (the group's leader, or the replica most likely to lead it).
        case forward(node: String, address: Gossip.Address)
        /// Nowhere now: `503` with `Retry-After`.
        case unavailable(String)
    }

    /// The catalogue as applied on this node; nil when queue groups are off.
    public var catalogue: Metadata.Catalogue? {
        guard queueGroups != nil else { return nil }
        return data.catalogue?.catalogue
    }

    /// The queue group holding queue `name`; nil when the queue lives in the data group (queue
    /// groups off, a queue made before they were on, or no such queue).
    public func queueGroup(of name: QueueName) -> Metadata.Group? { catalogue?.group(ofQueue: name) }

    /// Where a request for `group` goes now. A replica of it serves when it leads, otherwise
    /// names the leader it knows (a replica that has not started the group yet starts it, and
    /// until then is unavailable: two such replicas would otherwise name each other); a node
    /// that is not a replica sends to the first replica that gossip sees alive, in placement
    /// order (the preferred leader first).
    public func route(group: Metadata.Group, http: Bool) -> GroupRoute {
        let raftID = QueueGroupHost.raftGroup(of: group.id)
        func address(_ node: String) -> Gossip.Address? {
            guard let found = member(node), found.state == .alive || found.state == .suspect else { return nil }
            return http ? found.node.http : found.node.binary
        }
        var hosted = queueGroups?.group(raftID)
        if hosted == nil, group.members.contains(nodeID) {
            // Placed here by a catalogue entry the host has not acted on yet: start it now.
            queueGroups?.reconcileIfChanged()
            hosted = queueGroups?.group(raftID)
            guard hosted != nil else {
                return .unavailable("queue group \(raftID) is starting on this node (\(nodeID)); retry")
            }
        }
        if let hosted {
            let status = hosted.replica.group.status
            if status.isServing { return .local(hosted.replica.broker, term: status.term) }
            if let leaderID = status.leader, leaderID != status.node {
                let leader = hosted.replica.group.name(of: leaderID) ?? name(of: leaderID) ?? "\(leaderID)"
                if let found = address(leader) { return .forward(node: leader, address: found) }
            }
            return .unavailable(status.role == .leader
                ? "this node was just elected leader of queue group \(raftID) and is catching up; retry"
                : "queue group \(raftID) has no leader now (an election is under way); retry")
        }
        for replica in group.replicas where replica != nodeID {
            if let found = address(replica) { return .forward(node: replica, address: found) }
        }
        return .unavailable("no replica of queue group \(raftID) (\(group.replicas.joined(separator: ", "))) is reachable now; retry")
    }

    /// Places queue `name` in the catalogue (the data group's leader only): in `colocateWith`'s
    /// group, or in a new group on ``replicationFactor`` of the data group's voters that gossip
    /// sees alive, chosen by rendezvous hashing (decision 105). Registers the voters in the
    /// catalogue first where they are not yet. A queue already placed keeps its group.
    /// - Returns: the queue's group.
    /// - Throws: ``TernError``: `NotInCluster` (queue groups are off); `QueueNotFound` (no
    ///   queue `colocateWith`); `Conflict` (a new group would exceed ``maxQueueGroups``; a
    ///   colocated queue adds none); `InvalidAttribute`; `Unavailable` (no voter alive); what
    ///   proposing throws (`NotLeader`, `Unavailable`).
    public func placeQueue(_ name: QueueName, colocateWith: QueueName?) async throws(TernError) -> Metadata.Group {
        guard queueGroups != nil, let store = data.catalogue else {
            throw TernError(.notInCluster, "queue groups are off on this node")
        }
        if let group = store.catalogue.group(ofQueue: name) { return group }
        if colocateWith == nil {
            let groups = store.catalogue.groups.values.count { $0.kind == .queue }
            guard groups < maxQueueGroups else {
                throw TernError(.conflict, "the cluster holds \(groups) queue groups, the most --max-queue-groups allows; create queue \(name) with colocate_with to share a group, or raise the limit on every node")
            }
        }
        let now = data.broker.clock.now
        let status = data.group.status
        let voters = status.voters.compactMap { self.name(of: $0) }.sorted()
        for voter in voters where store.catalogue.nodes[voter] == nil {
            _ = try await data.propose(.registerNode(id: voter, zone: member(voter)?.node.zone, at: now))
        }
        let view = voters.map { voter -> Metadata.Controller.Member in
            let alive = voter == nodeID || status.recentlyHeard.contains(RaftNodeID.of(voter)) && member(voter)?.state == .alive
            return Metadata.Controller.Member(id: voter, zone: member(voter)?.node.zone, status: alive ? .alive : .dead, since: now)
        }
        let controller = Metadata.Controller(settings: Metadata.Controller.Settings().with {
            $0.replicationFactor = min(max(replicationFactor, 1), Metadata.Limits.maxReplicas)
        })
        let command: Metadata.Command
        do throws(Metadata.Error) {
            command = try controller.placeQueue(name, colocateWith: colocateWith, catalogue: store.catalogue, members: view)
        } catch {
            throw error.ternError
        }
        let outcome = try await data.propose(command)
        let id: Metadata.GroupID
        switch outcome {
        case .queueCreated(_, let group, _), .queueExists(_, let group): id = group
        default: throw TernError(.internalError, "placing queue \(name) answered \(outcome)")
        }
        guard let group = store.catalogue.groups[id] else {
            throw TernError(.internalError, "queue \(name) was placed in group \(id), which the catalogue does not list")
        }
        return group
    }

    /// Removes queue `name` from the catalogue (the data group's leader only); its group goes
    /// with its last queue, and every replica then deletes the group's directory.
    /// - Throws: ``TernError``: `QueueNotFound`; what proposing throws.
    public func unplaceQueue(_ name: QueueName) async throws(TernError) {
        _ = try await data.propose(.deleteQueue(name))
    }

    /// Refuses a transaction that names a queue of a queue group: producers and transactions
    /// live in the data group, and a transaction across groups needs a coordinator (decision 128).
    /// - Throws: ``TernError`` `TransactionSpansGroups` naming the first such queue.
    public func checkInDataGroup(queues: [String]) throws(TernError) {
        for raw in queues {
            guard let name = try? QueueName(raw), let group = queueGroup(of: name) else { continue }
            throw TernError(.transactionSpansGroups, "queue \(name) lives in queue group \(QueueGroupHost.raftGroup(of: group.id)), and producers and their transactions live in the data group; a transaction across groups needs a coordinator, which Tern does not have yet (decisions 128, 140)")
        }
    }

    /// The `Tern-Queue-Group` field of a request the data group's leader sends on to a queue
    /// group: route it within that group (by its Raft id), whatever the receiver's catalogue says.
    public static let queueGroupHeader = "Tern-Queue-Group"
    /// On a `503` from a replica that does not lead: the node it knows leads the group.
    public static let leaderHeader = "Tern-Leader"
}
