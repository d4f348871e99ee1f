public import TernBroker
public import TernCore
import Synchronization

/// One node's logical space budget over all the replication groups it holds (decision 143): the
/// data group and every queue group. Each group's replicated quota (decision 111,
/// ``TernBroker/StorageQuota``) bounds that group alone, identically on every replica; this bounds
/// what all of them together make the node hold, as RabbitMQ's disk alarm bounds a node. It is
/// checked by the leader before it proposes a command that stores more (``admit()``), so it is
/// not replicated state: a replica holding more groups than its leader may hold a little more.
public final class NodeStorageBudget: Sendable {
    /// The node's budget in accounted bytes (`--max-storage-bytes`); nil: none.
    public let limit: UInt64?
    private let brokers = Mutex<[ObjectIdentifier: Broker]>([:])
    /// The last sum over the groups, and when it was taken.
    private let usage = Mutex<(bytes: UInt64, at: ContinuousClock.Instant)?>(nil)
    /// How long a sum is used before it is taken again: a send asks every 200 ms at most.
    public static let refresh: Duration = .milliseconds(200)

    public init(limit: UInt64?) {
        self.limit = limit
    }

    /// Counts `broker`'s stored bytes in the budget (a group this node now holds).
    public func register(_ broker: Broker) { brokers.withLock { $0[ObjectIdentifier(broker)] = broker } }

    /// Stops counting `broker` (a group this node no longer holds).
    public func unregister(_ broker: Broker) { brokers.withLock { $0[ObjectIdentifier(broker)] = nil } }

    /// The accounted bytes stored over every registered group, summed at most every ``refresh``.
    public func storedBytes() -> UInt64 {
        let now = ContinuousClock.now
        if let cached = usage.withLock({ $0 }), now - cached.at < Self.refresh { return cached.bytes }
        let total = brokers.withLock { Array($0.values) }.reduce(UInt64(0)) { $0 + ((try? $1.storageUsage().storedBytes) ?? 0) }
        usage.withLock { $0 = (total, now) }
        return total
    }

    /// Refuses a command that adds messages (a send, a produce, a transaction that sends or
    /// produces) once the node's groups together hold ``limit``. Everything else passes:
    /// consumers, offset commits, producers initializing and queue changes, as RabbitMQ's disk
    /// alarm blocks publishers only.
    /// - Throws: ``TernError`` `StorageFull` (507).
    public func admit(_ command: Command) throws(TernError) {
        switch command {
        case .send, .sendIdempotent, .produce: break
        case .commitTransaction(let transaction) where !transaction.sends.isEmpty || !transaction.produces.isEmpty: break
        default: return
        }
        guard let limit else { return }
        let used = storedBytes()
        guard used < limit else {
            throw TernError(.storageFull, "this node's storage quota is reached: its replication groups together store \(used) of \(limit) bytes; sends are refused until messages are acknowledged, purged, expired or deleted, or max_storage_bytes is raised")
        }
    }
}
