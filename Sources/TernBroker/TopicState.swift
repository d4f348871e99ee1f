import Synchronization
import TernCore

/// The in-memory state of topics that a ``Broker`` keeps beside LMDB: the sticky partition of
/// keyless produces and the coordinator's instances of consumer groups (session timers and
/// fetch positions; membership and committed offsets are in LMDB).
final class TopicState: Sendable {
    struct GroupKey: Hashable, Sendable {
        var topic: UInt32
        var group: String
    }

    private let sticky = Mutex([UInt32: Int]())
    let groups = Mutex([GroupKey: ConsumerGroup.Instance]())
    private let rotation = Atomic<UInt64>(0)

    /// The partition for the keyless messages of the next produce request to `topic`: one
    /// partition per request, moving round-robin from request to request (Kafka's sticky
    /// partitioner, with a batch being one request).
    func nextStickyPartition(topic: UInt32, partitions: Int) -> Int {
        sticky.withLock { state in
            let current = state[topic, default: Int(topic) % partitions] % partitions
            state[topic] = (current + 1) % partitions
            return current
        }
    }

    /// A rotating start index, so that group consumes serve all of a member's partitions fairly.
    func nextRotation() -> Int { Int(truncatingIfNeeded: rotation.add(1, ordering: .relaxed).oldValue & 0xFFFF) }

    /// Runs `body` on the group's instance (created on first use).
    func withGroup<T>(_ key: GroupKey, partitions: Int, _ body: (inout ConsumerGroup.Instance) throws(TernError) -> T) throws(TernError) -> T {
        try groups.withLock { (groups: inout [GroupKey: ConsumerGroup.Instance]) throws(TernError) -> T in
            var instance = groups[key] ?? ConsumerGroup.Instance(partitionCount: partitions)
            defer { groups[key] = instance }
            return try body(&instance)
        }
    }

    /// Whether this node holds an instance of the group.
    func hasGroup(_ key: GroupKey) -> Bool { groups.withLock { $0[key] != nil } }

    /// Holds `instance` for the group unless one is held already.
    func insert(_ key: GroupKey, _ instance: ConsumerGroup.Instance) {
        groups.withLock { groups in if groups[key] == nil { groups[key] = instance } }
    }

    /// Forgets everything (the state underneath was replaced).
    func forgetAll() {
        sticky.withLock { $0.removeAll() }
        groups.withLock { $0.removeAll() }
    }

    /// Forgets the groups and sticky partition of a deleted topic.
    func forget(topic: UInt32) {
        sticky.withLock { _ = $0.removeValue(forKey: topic) }
        groups.withLock { groups in groups = groups.filter { $0.key.topic != topic } }
    }
}
