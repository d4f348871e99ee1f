public import TernCore

extension Metadata {
    /// A registered broker node.
    public struct Node: Sendable, Hashable {
        /// Its id, as `ternd --node-id` (1–64 bytes of `[A-Za-z0-9_.-]`).
        public var id: String
        /// Its failure domain (rack, availability zone), 1–64 bytes; nil: none given. Placement
        /// spreads a group's replicas over zones first.
        public var zone: String?
        /// When the controller leader first registered it (the leader's clock, ms since the epoch).
        public var registeredAt: Timestamp

        public init(id: String, zone: String? = nil, registeredAt: Timestamp) {
            self.id = id
            self.zone = zone
            self.registeredAt = registeredAt
        }
    }

    /// A queue and the replication group that holds it.
    public struct Queue: Sendable, Hashable {
        public var name: QueueName
        /// The group holding the queue's messages: its own, or (`colocate_with`) another queue's.
        public var group: GroupID

        public init(name: QueueName, group: GroupID) {
            self.name = name
            self.group = group
        }
    }

    /// A topic and its partitions' replication groups.
    public struct Topic: Sendable, Hashable {
        public var name: QueueName
        /// One group per partition, by partition number (1–1,024 of them, fixed at creation).
        public var partitions: [GroupID]
        /// The group that holds the topic's consumer-group coordination (joins, generations) and
        /// committed offsets: partition 0's group (decision 106). Recorded rather than implied so
        /// that a later version may choose otherwise without changing the format.
        public var coordinationGroup: GroupID

        public init(name: QueueName, partitions: [GroupID], coordinationGroup: GroupID) {
            self.name = name
            self.partitions = partitions
            self.coordinationGroup = coordinationGroup
        }
    }

    /// One replication group (one Raft group): a queue's (with the queues colocated in it), or
    /// one topic partition's.
    public struct Group: Sendable, Hashable {
        /// What the group holds.
        public enum Kind: Sendable, Hashable {
            /// One or more queues (``Group/owner`` and those colocated with it).
            case queue
            /// Partition `n` (from 0) of the topic ``Group/owner``.
            case topicPartition(Int)
        }

        /// Its id, ≥ 1 (0 is the metadata group).
        public var id: GroupID
        public var kind: Kind
        /// The queue whose group this is (queues colocated with it share the group), or the topic.
        /// When a queue group's owner is deleted while others remain, the group passes to the
        /// remaining queue whose name sorts first (decision 107).
        public var owner: QueueName
        /// The voters, in order: the first is the preferred leader. 1–9 node ids.
        public var replicas: [String]
        /// Non-voting members receiving the log to catch up (thesis §4.2.1), in the order added.
        public var learners: [String]
        /// Bumps on every replica-set change (learner added, promoted, replica removed); 1 at
        /// creation. Membership commands name the epoch they were decided against (compare and set).
        public var epoch: UInt64
        /// How many voters the group should have (1–9). The controller adds replicas while the
        /// group has fewer (live nodes permitting) and replaces dead ones.
        public var replicationFactor: Int

        public init(id: GroupID, kind: Kind, owner: QueueName, replicas: [String], learners: [String] = [],
                    epoch: UInt64 = 1, replicationFactor: Int) {
            self.id = id
            self.kind = kind
            self.owner = owner
            self.replicas = replicas
            self.learners = learners
            self.epoch = epoch
            self.replicationFactor = replicationFactor
        }

        /// The topic partition, nil for a queue group.
        public var partition: Int? {
            if case .topicPartition(let partition) = kind { return partition }
            return nil
        }

        /// Voters then learners.
        public var members: [String] { replicas + learners }

        /// The preferred leader (the first replica).
        public var preferredLeader: String { replicas[0] }
    }

    /// The cluster catalogue: the state of the metadata group, changed only by
    /// ``apply(_:)``. Its invariants (``validate()``): every group a queue or topic names exists
    /// and is of its kind; every group belongs to exactly one queue set or topic partition;
    /// every replica and learner is a registered node; group ids are below ``nextGroupID``.
    public struct Catalogue: Sendable, Hashable {
        /// Registered nodes by id.
        public internal(set) var nodes: [String: Node] = [:]
        /// Queues by name.
        public internal(set) var queues: [QueueName: Queue] = [:]
        /// Topics by name (a namespace apart from queues', as in the broker).
        public internal(set) var topics: [QueueName: Topic] = [:]
        /// Replication groups by id (the metadata group, 0, is not listed).
        public internal(set) var groups: [GroupID: Group] = [:]
        /// The id the next created group gets; starts at 1, never goes back.
        public internal(set) var nextGroupID: GroupID = 1

        /// An empty catalogue (a new cluster).
        public init() {}

        /// The group of queue `name`, nil when there is no such queue.
        public func group(ofQueue name: QueueName) -> Group? {
            queues[name].flatMap { groups[$0.group] }
        }

        /// The group of `partition` of topic `name`, nil when there is no such topic or partition.
        public func group(ofTopic name: QueueName, partition: Int) -> Group? {
            guard let topic = topics[name], topic.partitions.indices.contains(partition) else { return nil }
            return groups[topic.partitions[partition]]
        }

        /// The queue that queue `name` is colocated with (its group's owner), nil when `name` owns
        /// its group or does not exist. This is the `colocate_with` attribute a queue reports.
        public func colocateWith(_ name: QueueName) -> QueueName? {
            guard let group = group(ofQueue: name), group.owner != name else { return nil }
            return group.owner
        }

        /// The queues held by group `id`, by name; empty for a topic's group or an unknown id.
        public func queues(inGroup id: GroupID) -> [QueueName] {
            queues.values.filter { $0.group == id }.map(\.name).sorted()
        }

        /// The groups that node `id` is a voter or learner of, by group id.
        public func groups(onNode id: String) -> [Group] {
            groups.values.filter { $0.replicas.contains(id) || $0.learners.contains(id) }.sorted { $0.id < $1.id }
        }

        /// Checks the invariants listed on ``Catalogue``.
        /// - Throws: ``Metadata/Error`` with `invalidFrame`, naming the first broken invariant
        ///   (the decoder calls this: a catalogue that breaks one is corrupt).
        public func validate() throws(Metadata.Error) {
            func fail(_ message: String) -> Metadata.Error { Metadata.Error(.invalidFrame, "catalogue: " + message) }
            guard nextGroupID >= 1 else { throw fail("next group id is 0") }
            guard nodes.count <= Limits.maxNodes else { throw fail("\(nodes.count) nodes") }
            for (id, node) in nodes {
                guard id == node.id, Metadata.isValidNodeID(id) else { throw fail("bad node id \(id)") }
                guard Metadata.isValidZone(node.zone) else { throw fail("bad zone of node \(id)") }
            }
            var claimed = Set<GroupID>()
            for (id, group) in groups {
                guard id == group.id, id >= 1, id < nextGroupID else { throw fail("bad group id \(id)") }
                guard (1...Limits.maxReplicas).contains(group.replicationFactor) else {
                    throw fail("group \(id) has replication factor \(group.replicationFactor)")
                }
                guard (1...Limits.maxReplicas).contains(group.replicas.count), group.learners.count <= Limits.maxLearners
                else { throw fail("group \(id) has \(group.replicas.count) replicas, \(group.learners.count) learners") }
                guard Set(group.members).count == group.members.count else { throw fail("group \(id) repeats a member") }
                guard group.members.allSatisfy({ nodes[$0] != nil }) else { throw fail("group \(id) names an unregistered node") }
                guard group.epoch >= 1 else { throw fail("group \(id) has epoch 0") }
                switch group.kind {
                case .queue:
                    guard let owner = queues[group.owner], owner.group == id else {
                        throw fail("queue group \(id) is owned by \(group.owner), which is not in it")
                    }
                case .topicPartition(let partition):
                    guard let topic = topics[group.owner], topic.partitions.indices.contains(partition),
                          topic.partitions[partition] == id
                    else { throw fail("group \(id) is not partition \(partition) of topic \(group.owner)") }
                }
            }
            for (name, queue) in queues {
                guard name == queue.name else { throw fail("queue key \(name) holds \(queue.name)") }
                guard let group = groups[queue.group], group.kind == .queue else {
                    throw fail("queue \(name) names group \(queue.group), which holds no queues")
                }
                claimed.insert(queue.group)
            }
            for (name, topic) in topics {
                guard name == topic.name else { throw fail("topic key \(name) holds \(topic.name)") }
                guard (1...Limits.maxPartitions).contains(topic.partitions.count) else {
                    throw fail("topic \(name) has \(topic.partitions.count) partitions")
                }
                guard topic.coordinationGroup == topic.partitions[0] else {
                    throw fail("topic \(name) coordinates in group \(topic.coordinationGroup), not partition 0's")
                }
                for (partition, id) in topic.partitions.enumerated() {
                    guard let group = groups[id], group.kind == .topicPartition(partition), group.owner == name else {
                        throw fail("topic \(name) partition \(partition) names group \(id), which is not its")
                    }
                    guard claimed.insert(id).inserted else { throw fail("group \(id) is claimed twice") }
                }
            }
            guard claimed.count == groups.count else { throw fail("\(groups.count - claimed.count) groups belong to nothing") }
        }
    }
}
