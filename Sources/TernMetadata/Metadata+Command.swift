public import TernCore

extension Metadata {
    /// Where a new queue's messages live.
    public enum QueuePlacement: Sendable, Hashable {
        /// A group of its own on `replicas` (decided by the controller leader, first = preferred
        /// leader; 1–`replicationFactor` distinct registered nodes), which should grow to
        /// `replicationFactor` voters (1–9).
        case replicas([String], replicationFactor: Int)
        /// The group of queue `with` (`colocate_with`), so that transactions over both stay in
        /// one log entry.
        case colocated(with: QueueName)
    }

    /// One change to the catalogue: the payload of one metadata log entry. Decided by the
    /// controller leader (replicas, time), applied by every controller in log order.
    public enum Command: Sendable, Hashable {
        /// Registers node `id` (time `at`, ms since the epoch, the leader's clock) or, when it is
        /// registered, sets its zone (its registration time stays).
        case registerNode(id: String, zone: String?, at: Timestamp)
        /// Creates a queue. Creating an existing queue changes nothing and answers
        /// ``Outcome/queueExists(_:group:)`` (the broker's create-or-update), unless it asks to
        /// colocate the queue with a queue whose group is not its own (`conflict`).
        case createQueue(QueueName, placement: QueuePlacement)
        /// Deletes a queue; its group goes when no queue is left in it.
        case deleteQueue(QueueName)
        /// Creates a topic: one new group per partition on the given replicas (one list per
        /// partition, 1–1,024 lists), each growing to `replicationFactor` voters. Creating an
        /// existing topic with the same partition count changes nothing
        /// (``Outcome/topicExists(_:groups:)``); with another count it is a `conflict`.
        case createTopic(QueueName, partitions: [[String]], replicationFactor: Int)
        /// Deletes a topic and its partitions' groups.
        case deleteTopic(QueueName)
        /// Adds `node` to `group` as a learner (thesis §4.2.1), if the group is at `epoch`.
        case addLearner(group: GroupID, node: String, epoch: UInt64)
        /// Makes learner `node` of `group` a voter (appended last to the replicas), if the group is
        /// at `epoch`. Whether it has caught up is the controller's judgement (the data group's
        /// leader checks again before it commits the change).
        case promoteLearner(group: GroupID, node: String, epoch: UInt64)
        /// Removes voter or learner `node` from `group`, if the group is at `epoch`; never the
        /// last voter.
        case removeReplica(group: GroupID, node: String, epoch: UInt64)
    }

    /// What applying a command did.
    public enum Outcome: Sendable, Hashable {
        /// A new node was registered.
        case nodeRegistered(String)
        /// A registered node's zone changed.
        case nodeUpdated(String)
        /// The command asked for what already held (a repeated registration): nothing changed.
        case unchanged
        /// The queue was created in `group`; `newGroup` is false when colocated in an existing one.
        case queueCreated(QueueName, group: GroupID, newGroup: Bool)
        /// The queue already existed, in `group`: nothing changed.
        case queueExists(QueueName, group: GroupID)
        /// The queue was deleted from `group`; `groupDeleted` when it was the group's last queue.
        case queueDeleted(QueueName, group: GroupID, groupDeleted: Bool)
        /// The topic was created with one group per partition (by partition number).
        case topicCreated(QueueName, groups: [GroupID])
        /// The topic already existed with these groups: nothing changed.
        case topicExists(QueueName, groups: [GroupID])
        /// The topic and its groups were deleted.
        case topicDeleted(QueueName, groups: [GroupID])
        /// `group`'s replica set changed; it is now at `epoch`.
        case replicasChanged(group: GroupID, epoch: UInt64)
    }
}

extension Metadata.Catalogue {
    /// Applies one command. Deterministic: the same catalogue and command give the same result
    /// on every controller.
    /// - Returns: what changed.
    /// - Throws: ``Metadata/Error``, and then nothing changed:
    ///   - `invalidParameter`: a bad node id or zone; a replica list that is empty, too long,
    ///     repeats a node or names an unregistered one; an unknown group; a node that is not
    ///     the learner or member the command says;
    ///   - `invalidAttribute`: a replication factor outside 1–9, a partition count outside
    ///     1–1,024, a queue colocated with itself;
    ///   - `queueNotFound` / `topicNotFound`: deleting (or colocating with) what does not exist;
    ///   - `conflict`: a membership command decided against another epoch than the group's, the
    ///     last voter removed, a group or the cluster at its member limit, an existing queue
    ///     asked to move to another group, an existing topic asked for another partition count
    ///     (and, only in a crafted snapshot, group ids or an epoch run out).
    public mutating func apply(_ command: Metadata.Command) throws(Metadata.Error) -> Metadata.Outcome {
        switch command {
        case .registerNode(let id, let zone, let at):
            return try registerNode(id: id, zone: zone, at: at)
        case .createQueue(let name, let placement):
            return try createQueue(name, placement: placement)
        case .deleteQueue(let name):
            return try deleteQueue(name)
        case .createTopic(let name, let partitions, let replicationFactor):
            return try createTopic(name, partitions: partitions, replicationFactor: replicationFactor)
        case .deleteTopic(let name):
            return try deleteTopic(name)
        case .addLearner(let id, let node, let epoch):
            var group = try group(id, at: epoch)
            guard nodes[node] != nil else { throw Metadata.Error(.invalidParameter, "node \(node) is not registered") }
            guard !group.members.contains(node) else {
                throw Metadata.Error(.invalidParameter, "node \(node) is already a member of group \(id)")
            }
            guard group.learners.count < Metadata.Limits.maxLearners else {
                throw Metadata.Error(.conflict, "group \(id) has \(group.learners.count) learners, the most")
            }
            group.learners.append(node)
            return bump(&group)
        case .promoteLearner(let id, let node, let epoch):
            var group = try group(id, at: epoch)
            guard let index = group.learners.firstIndex(of: node) else {
                throw Metadata.Error(.invalidParameter, "node \(node) is not a learner of group \(id)")
            }
            guard group.replicas.count < Metadata.Limits.maxReplicas else {
                throw Metadata.Error(.conflict, "group \(id) has \(group.replicas.count) voters, the most")
            }
            group.learners.remove(at: index)
            group.replicas.append(node)
            return bump(&group)
        case .removeReplica(let id, let node, let epoch):
            var group = try group(id, at: epoch)
            if let index = group.learners.firstIndex(of: node) {
                group.learners.remove(at: index)
            } else if let index = group.replicas.firstIndex(of: node) {
                guard group.replicas.count > 1 else {
                    throw Metadata.Error(.conflict, "node \(node) is the last voter of group \(id)")
                }
                group.replicas.remove(at: index)
            } else {
                throw Metadata.Error(.invalidParameter, "node \(node) is not a member of group \(id)")
            }
            return bump(&group)
        }
    }

    private mutating func registerNode(id: String, zone: String?, at: Timestamp) throws(Metadata.Error) -> Metadata.Outcome {
        guard Metadata.isValidNodeID(id) else {
            throw Metadata.Error(.invalidParameter, "node id must be 1–64 characters of A–Z a–z 0–9 _ . -, got \"\(id)\"")
        }
        guard Metadata.isValidZone(zone) else {
            throw Metadata.Error(.invalidParameter, "zone must be 1–64 bytes, got \(zone?.utf8.count ?? 0)")
        }
        if var node = nodes[id] {
            guard node.zone != zone else { return .unchanged }
            node.zone = zone
            nodes[id] = node
            return .nodeUpdated(id)
        }
        guard nodes.count < Metadata.Limits.maxNodes else {
            throw Metadata.Error(.conflict, "the cluster has \(nodes.count) nodes, the most")
        }
        nodes[id] = Metadata.Node(id: id, zone: zone, registeredAt: at)
        return .nodeRegistered(id)
    }

    private mutating func createQueue(_ name: QueueName, placement: Metadata.QueuePlacement) throws(Metadata.Error) -> Metadata.Outcome {
        switch placement {
        case .replicas(let replicas, let replicationFactor):
            if let existing = queues[name] { return .queueExists(name, group: existing.group) }
            try checkReplicas(replicas, replicationFactor: replicationFactor, what: "queue \(name)")
            try checkGroupIDs(1)
            let id = nextGroupID
            groups[id] = Metadata.Group(id: id, kind: .queue, owner: name, replicas: replicas,
                                        replicationFactor: replicationFactor)
            nextGroupID += 1
            queues[name] = Metadata.Queue(name: name, group: id)
            return .queueCreated(name, group: id, newGroup: true)
        case .colocated(let other):
            guard other != name else { throw Metadata.Error(.invalidAttribute, "queue \(name) cannot be colocated with itself") }
            guard let target = queues[other] else {
                throw Metadata.Error(.queueNotFound, "colocate_with names queue \(other), which does not exist")
            }
            if let existing = queues[name] {
                guard existing.group == target.group else {
                    throw Metadata.Error(.conflict, "queue \(name) is in group \(existing.group), queue \(other) in group \(target.group): colocate_with cannot change")
                }
                return .queueExists(name, group: existing.group)
            }
            queues[name] = Metadata.Queue(name: name, group: target.group)
            return .queueCreated(name, group: target.group, newGroup: false)
        }
    }

    private mutating func deleteQueue(_ name: QueueName) throws(Metadata.Error) -> Metadata.Outcome {
        guard let queue = queues.removeValue(forKey: name) else {
            throw Metadata.Error(.queueNotFound, "queue \(name) does not exist")
        }
        let remaining = queues(inGroup: queue.group)
        guard let heir = remaining.first else {
            groups[queue.group] = nil
            return .queueDeleted(name, group: queue.group, groupDeleted: true)
        }
        if groups[queue.group]?.owner == name { groups[queue.group]?.owner = heir }
        return .queueDeleted(name, group: queue.group, groupDeleted: false)
    }

    private mutating func createTopic(_ name: QueueName, partitions: [[String]], replicationFactor: Int) throws(Metadata.Error) -> Metadata.Outcome {
        if let existing = topics[name] {
            guard existing.partitions.count == partitions.count else {
                throw Metadata.Error(.conflict, "topic \(name) has \(existing.partitions.count) partitions, not \(partitions.count): partitions are fixed at creation")
            }
            return .topicExists(name, groups: existing.partitions)
        }
        guard (1...Metadata.Limits.maxPartitions).contains(partitions.count) else {
            throw Metadata.Error(.invalidAttribute, "partitions must be 1–\(Metadata.Limits.maxPartitions), got \(partitions.count)")
        }
        for (partition, replicas) in partitions.enumerated() {
            try checkReplicas(replicas, replicationFactor: replicationFactor, what: "topic \(name) partition \(partition)")
        }
        try checkGroupIDs(partitions.count)
        var ids: [Metadata.GroupID] = []
        for (partition, replicas) in partitions.enumerated() {
            let id = nextGroupID + Metadata.GroupID(partition)
            groups[id] = Metadata.Group(id: id, kind: .topicPartition(partition), owner: name, replicas: replicas,
                                        replicationFactor: replicationFactor)
            ids.append(id)
        }
        nextGroupID += Metadata.GroupID(partitions.count)
        topics[name] = Metadata.Topic(name: name, partitions: ids, coordinationGroup: ids[0])
        return .topicCreated(name, groups: ids)
    }

    private mutating func deleteTopic(_ name: QueueName) throws(Metadata.Error) -> Metadata.Outcome {
        guard let topic = topics.removeValue(forKey: name) else {
            throw Metadata.Error(.topicNotFound, "topic \(name) does not exist")
        }
        for id in topic.partitions { groups[id] = nil }
        return .topicDeleted(name, groups: topic.partitions)
    }

    private func checkReplicas(_ replicas: [String], replicationFactor: Int, what: String) throws(Metadata.Error) {
        guard (1...Metadata.Limits.maxReplicas).contains(replicationFactor) else {
            throw Metadata.Error(.invalidAttribute, "replication_factor must be 1–\(Metadata.Limits.maxReplicas), got \(replicationFactor)")
        }
        guard !replicas.isEmpty, replicas.count <= replicationFactor else {
            throw Metadata.Error(.invalidParameter, "\(what) needs 1–\(replicationFactor) replicas, got \(replicas.count)")
        }
        guard Set(replicas).count == replicas.count else {
            throw Metadata.Error(.invalidParameter, "\(what) names a replica twice: \(replicas)")
        }
        for node in replicas where nodes[node] == nil {
            throw Metadata.Error(.invalidParameter, "\(what): node \(node) is not registered")
        }
    }

    /// Group ids run out only in a crafted snapshot, but apply must not trap on one.
    private func checkGroupIDs(_ count: Int) throws(Metadata.Error) {
        guard !nextGroupID.addingReportingOverflow(Metadata.GroupID(count)).overflow else {
            throw Metadata.Error(.conflict, "group ids are exhausted")
        }
    }

    private func group(_ id: Metadata.GroupID, at epoch: UInt64) throws(Metadata.Error) -> Metadata.Group {
        guard let group = groups[id] else { throw Metadata.Error(.invalidParameter, "group \(id) does not exist") }
        guard group.epoch == epoch else {
            throw Metadata.Error(.conflict, "group \(id) is at epoch \(group.epoch), the change was decided at \(epoch)")
        }
        guard group.epoch < .max else { throw Metadata.Error(.conflict, "group \(id) has exhausted its epochs") }
        return group
    }

    private mutating func bump(_ group: inout Metadata.Group) -> Metadata.Outcome {
        group.epoch += 1
        groups[group.id] = group
        return .replicasChanged(group: group.id, epoch: group.epoch)
    }
}
