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
            // A new group's first leader is its preferred one, which campaigns at once: a replica
            // that has not heard from it yet sends the request there (it answers with Tern-Leader
            // if it does not lead, and a forwarded request is never forwarded again).
            if status.leader == nil, status.role != .leader, group.preferredLeader != nodeID,
               let found = address(group.preferredLeader) {
                return .forward(node: group.preferredLeader, address: found)
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
    /// A queue whose `deadLetterQueue` lives in a queue group is placed in that group (a
    /// dead-letter move is one transaction in one group's log; decision 142).
    /// - Returns: the queue's group.
    /// - Throws: ``TernError``: `NotInCluster` (queue groups are off); `QueueNotFound` (no
    ///   queue `colocateWith`); `InvalidAttribute` (no queue `deadLetterQueue`, or one of the
    ///   other kind); `Conflict` (a new group would exceed ``maxQueueGroups``, a colocated queue
    ///   adds none; or `deadLetterQueue` lives in another group than `colocateWith`, or in the
    ///   data group); `Unavailable` (no voter alive); what proposing throws (`NotLeader`,
    ///   `Unavailable`). Nothing is placed when it throws before proposing.
    public func placeQueue(_ name: QueueName, colocateWith requested: QueueName?,
                           deadLetterQueue: QueueName? = nil) async throws(TernError) -> Metadata.Group {
        guard queueGroups != nil, let store = data.catalogue else {
            throw TernError(.notInCluster, "queue groups are off on this node")
        }
        if let group = store.catalogue.group(ofQueue: name) { return group }
        var colocateWith = requested
        if let deadLetterQueue {
            let dlqGroup = try groupOfDeadLetterQueue(deadLetterQueue, for: name)
            if let requested, store.catalogue.group(ofQueue: requested)?.id != dlqGroup.id {
                throw TernError(.conflict, "dead_letter_queue \(deadLetterQueue) lives in another queue group than colocate_with \(requested); a queue and its dead-letter queue share a group (decision 142)")
            }
            colocateWith = colocateWith ?? deadLetterQueue
        }
        if colocateWith == nil, let source = queueNaming(deadLetterQueue: name) {
            // A dead-letter queue deleted and made again joins the queues it serves (decision 142).
            colocateWith = source
        }
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

    /// A queue of a queue group this node holds whose dead-letter queue is `name`, nil when
    /// there is none. Read on this node's replicas: with a replication factor below the number of
    /// voters the data group's leader may not hold the queue's group, and the new queue is then
    /// placed on its own (create it with `colocate_with`).
    func queueNaming(deadLetterQueue name: QueueName) -> QueueName? {
        for (_, hosted) in queueGroups?.groups() ?? [] {
            if let source = (try? hosted.replica.broker.listQueues())?.first(where: { $0.attributes.deadLetterQueue == name }) {
                return source.name
            }
        }
        return nil
    }

    /// The queue group of dead-letter queue `name`, which queue `queue` names.
    /// - Throws: ``TernError`` `InvalidAttribute` when no queue `name` exists (as a broker alone
    ///   answers); `Conflict` when it lives in the data group (made before queue groups were on):
    ///   a queue group's queue cannot move messages into another group's log.
    public func groupOfDeadLetterQueue(_ name: QueueName, for queue: QueueName) throws(TernError) -> Metadata.Group {
        if let group = queueGroup(of: name) { return group }
        guard (try? data.broker.describeQueue(name)) != nil else {
            throw TernError(.invalidAttribute, "dead_letter_queue \(name) does not exist")
        }
        throw TernError(.conflict, "dead_letter_queue \(name) lives in the data group (made before queue groups were on) and queue \(queue) in a queue group; a queue and its dead-letter queue share a group (decision 142)")
    }

    /// The group a transaction commits in: nil for the data group (no queue of it lives in a
    /// queue group), or the one queue group every queue it names lives in (colocation puts a
    /// pipeline's queues there). Topics live in the data group.
    /// - Parameters:
    ///   - queues: the queues it sends to and acknowledges on (unparseable names are left to the
    ///     handler to refuse).
    ///   - touchesTopics: whether it produces to a topic or commits an offset.
    /// - Throws: ``TernError`` `TransactionSpansGroups` (409) when it names queues of two groups
    ///   (or a queue group's queue and a topic): one transaction cannot commit atomically in two
    ///   Raft logs without a coordinator, which Tern does not have yet (decisions 128, 140, 141).
    ///   Nothing is applied.
    public func transactionGroup(queues: [String], touchesTopics: Bool) throws(TernError) -> Metadata.Group? {
        var found: Metadata.Group?
        var dataQueue: QueueName?
        for raw in queues {
            guard let name = try? QueueName(raw) else { continue }
            guard let group = queueGroup(of: name) else {
                // A queue that exists nowhere is the commit's to refuse (QueueNotFound).
                if (try? data.broker.describeQueue(name)) != nil { dataQueue = dataQueue ?? name }
                continue
            }
            if let found, found.id != group.id {
                throw TernError(.transactionSpansGroups, "queues \(catalogue?.queues(inGroup: found.id).first?.rawValue ?? "?") and \(name) live in queue groups \(QueueGroupHost.raftGroup(of: found.id)) and \(QueueGroupHost.raftGroup(of: group.id)); a transaction commits in one group (create its queues with colocate_with), as one needs a coordinator to span groups, which Tern does not have yet (decisions 128, 141)")
            }
            found = group
        }
        guard let found else { return nil }
        if let dataQueue {
            throw TernError(.transactionSpansGroups, "queue \(dataQueue) lives in the data group (made before queue groups were on) and the transaction's other queues in queue group \(QueueGroupHost.raftGroup(of: found.id)); a transaction commits in one group (decisions 128, 141)")
        }
        if touchesTopics {
            throw TernError(.transactionSpansGroups, "topics live in the data group and the transaction's queues in queue group \(QueueGroupHost.raftGroup(of: found.id)); a transaction commits in one group (decisions 128, 141)")
        }
        return found
    }

    /// Checks that the data group, which issues producer ids and epochs, knows `producer` at its
    /// epoch, before a queue group applies one of its writes (decision 141): the queue group
    /// adopts producers (``ProducerStore/ProducerIDs/adopted``), so this is what keeps an id
    /// nobody issued, an expired one and a fenced epoch out of it. Read on this node's replica of
    /// the data group; a replica that does not lead it may not have applied a fresh
    /// `InitProducer` yet, so an unknown producer is looked up again for up to 2 s.
    /// - Throws: ``TernError`` `UnknownProducer` or `ProducerFenced`.
    public func checkIssuedProducer(_ producer: ProducerIdentity) async throws(TernError) {
        let deadline = ContinuousClock.now + .seconds(2)
        while true {
            do throws(TernError) {
                return try data.broker.checkProducer(producer)
            } catch where error.code == .unknownProducer && !data.group.status.isServing && ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(10))
            }
        }
    }

    /// The `Tern-Queue-Group` field of a request the data group's leader sends on to a queue
    /// group: route it within that group (by its Raft id), whatever the receiver's catalogue says.
    public static let queueGroupHeader = "Tern-Queue-Group"
    /// On a `503` from a replica that does not lead: the node it knows leads the group.
    public static let leaderHeader = "Tern-Leader"
}
