import Synchronization
public import TernCore
import TernStorage

/// What the broker did, reported after each operation commits, for metrics and logs.
///
/// The broker calls observers synchronously on the task that ran the operation, after its
/// transaction committed; observers must be cheap and must not block (increment a counter).
public enum BrokerEvent: Sendable, Hashable {
    /// `count` messages of `bytes` body bytes in total were stored in `queue`.
    case sent(queue: QueueName, count: Int, bytes: Int)
    /// `count` messages were delivered from `queue` (and deleted on delivery when
    /// `autoAcknowledged`, then also reported as ``acknowledged(queue:secondsInQueue:)``).
    case received(queue: QueueName, count: Int, autoAcknowledged: Bool)
    /// Messages of `queue` were acknowledged (or removed on delivery, when auto-acknowledged) in
    /// one command: one element per message, the seconds from its send to its deletion.
    case acknowledged(queue: QueueName, secondsInQueue: [Double])
    /// `count` messages of `queue` moved to its dead-letter queue.
    case deadLettered(queue: QueueName, count: Int)
    /// `count` messages of `queue` were deleted because their retention passed.
    case expired(queue: QueueName, count: Int)
    /// `count` messages of `queue` were removed by a purge.
    case purged(queue: QueueName, count: Int)
    /// `count` messages of dead-letter queue `queue` were moved back to their source queues.
    case redriven(queue: QueueName, count: Int)
    /// `count` messages with `bytes` key and value bytes in total were appended to `partition`
    /// of `topic`.
    case produced(topic: QueueName, partition: Int, count: Int, bytes: Int)
}

/// The observers of a ``Broker`` (see ``Broker/addObserver(_:)``).
final class BrokerObservers: Sendable {
    private let observers = Mutex<[@Sendable (BrokerEvent) -> Void]>([])

    func add(_ observer: @escaping @Sendable (BrokerEvent) -> Void) {
        observers.withLock { $0.append(observer) }
    }

    func emit(_ event: BrokerEvent) {
        for observer in observers.withLock({ $0 }) { observer(event) }
    }

    func emit(_ events: [BrokerEvent]) {
        guard !events.isEmpty else { return }
        let current = observers.withLock { $0 }
        for event in events { for observer in current { observer(event) } }
    }
}

extension Broker {
    /// Registers `observer` for every later ``BrokerEvent``. Observers cannot be removed; add
    /// them once, at start-up.
    public func addObserver(_ observer: @escaping @Sendable (BrokerEvent) -> Void) {
        observers.add(observer)
    }

    /// Figures about one live queue for metrics and the console, read in one snapshot.
    public struct QueueFigures: Sendable, Hashable {
        public var name: QueueName
        public var counts: QueueCounts
        /// Send time of the oldest message in the ready state, nil when none is ready.
        public var oldestReadySentAt: Timestamp?
        /// Whether some live queue names this queue as its dead-letter queue.
        public var isDeadLetterQueue: Bool
    }

    /// Every live queue with its counts and the send time of its oldest ready message, in name
    /// order, from one read snapshot.
    /// - Throws: ``TernError`` `InternalError` when stored data cannot be read.
    public func queueFigures() throws(TernError) -> [QueueFigures] {
        let store = self.store
        return try reading { txn in
            let records = try store.allRecords(in: txn).filter { !$0.deleted }
            let deadLetterQueues = Set(records.compactMap { $0.attributes.deadLetterQueue })
            return try records.sorted { $0.name < $1.name }.map { record in
                QueueFigures(name: record.name, counts: record.counts,
                             oldestReadySentAt: try store.oldestReadySentAt(queue: record.id, in: txn),
                             isDeadLetterQueue: deadLetterQueues.contains(record.name))
            }
        }
    }

    /// Events for the dead-letter moves and expiries a command caused, with queue ids resolved to names.
    func tallyEvents(_ tally: CommandEffects) -> [BrokerEvent] {
        guard !tally.deadLettered.isEmpty || !tally.expired.isEmpty else { return [] }
        let store = self.store
        let names: [UInt32: QueueName] = (try? reading { txn in
            var names = [UInt32: QueueName]()
            for id in Set(tally.deadLettered.keys).union(tally.expired.keys) {
                if let record = try store.record(id: id, in: txn) { names[id] = record.name }
            }
            return names
        }) ?? [:]
        var events = [BrokerEvent]()
        for (id, count) in tally.deadLettered.sorted(by: { $0.key < $1.key }) {
            if let name = names[id] { events.append(.deadLettered(queue: name, count: count)) }
        }
        for (id, count) in tally.expired.sorted(by: { $0.key < $1.key }) {
            if let name = names[id] { events.append(.expired(queue: name, count: count)) }
        }
        return events
    }
}

extension QueueStore {
    /// The send time of the oldest ready message of `queue`: the minimum over the first ready
    /// entry of each priority (each priority's entries are in sequence order).
    func oldestReadySentAt(queue: UInt32, in txn: Transaction) throws -> Timestamp? {
        var oldest: Timestamp?
        try txn.withCursor(ready) { cursor in
            var priority = Int(OutgoingMessage.maxPriority)
            while priority >= 0 {
                let start = QueueSchema.readyKey(queue: queue, priority: UInt8(priority), sequence: 0)
                guard let entry = try cursor.seek(atOrAfter: start), entry.key.starts(with: QueueSchema.queuePrefix(queue)) else { return }
                let found = try QueueSchema.decodeReadyKey(entry.key)
                if let stored = try txn.get(messages, QueueSchema.messageKey(queue: queue, sequence: found.sequence)) {
                    let sentAt = try MessageHeader(decoding: stored).sentAt
                    oldest = min(oldest ?? sentAt, sentAt)
                }
                priority = Int(found.priority) - 1
            }
        }
        return oldest
    }
}

// MARK: Peek

/// A message looked at without being received (nothing changes: no receive count, no
/// visibility timeout, no receipt handle).
public struct PeekedMessage: Sendable, Hashable {
    public var id: MessageID
    public var body: [UInt8]
    public var priority: UInt8
    public var receiveCount: UInt32
    public var sentAt: Timestamp
}

extension Broker {
    /// The next `maxMessages` ready messages of `name` in delivery order (highest priority
    /// first, then send order), without receiving them. For operators (the console).
    /// - Parameter maxMessages: 1–100.
    /// - Throws: ``TernError`` `QueueNotFound`, `InvalidParameter`.
    public func peek(_ name: QueueName, maxMessages: Int) throws(TernError) -> [PeekedMessage] {
        guard (1...100).contains(maxMessages) else { throw TernError(.invalidParameter, "max must be 1–100") }
        let store = self.store
        return try reading { txn in
            let record = try store.record(named: name, in: txn)
            let prefix = QueueSchema.queuePrefix(record.id)
            let sequences: [UInt64] = try txn.withCursor(store.ready) { cursor in
                var found = [UInt64]()
                var entry = try cursor.seek(atOrAfter: prefix)
                while let current = entry, current.key.starts(with: prefix), found.count < maxMessages {
                    found.append(try QueueSchema.decodeReadyKey(current.key).sequence)
                    entry = try cursor.next()
                }
                return found
            }
            return try sequences.compactMap { sequence in
                let key = QueueSchema.messageKey(queue: record.id, sequence: sequence)
                guard let stored = try txn.get(store.messages, key), let body = try txn.get(store.bodies, key) else { return nil }
                let header = try MessageHeader(decoding: stored)
                return PeekedMessage(id: header.id, body: try MessageBody.decode(body).body, priority: header.priority,
                                     receiveCount: header.receiveCount, sentAt: header.sentAt)
            }
        }
    }
}

// MARK: Topics and consumer groups

extension Broker {
    /// Figures about one live topic partition and the groups that committed offsets on it.
    public struct TopicPartitionFigures: Sendable, Hashable {
        public var topic: QueueName
        public var partition: Int
        public var logStart: UInt64
        /// The offset the next produced message gets (messages ever produced to the partition).
        public var highWatermark: UInt64
        /// Bytes stored (after retention).
        public var bytes: UInt64
    }

    /// One consumer group's position on one partition.
    public struct GroupPartitionFigures: Sendable, Hashable {
        public var topic: QueueName
        public var group: String
        public var partition: Int
        /// The committed offset; nil when the group never committed on this partition.
        public var committed: UInt64?
        /// High watermark − max(committed, log start).
        public var lag: UInt64
    }

    /// Every live topic's partitions and every consumer group with committed offsets, from
    /// one read snapshot (stored data only; membership is not consulted).
    /// - Throws: ``TernError`` `InternalError` when stored data cannot be read.
    public func topicFigures() throws(TernError) -> (partitions: [TopicPartitionFigures], groups: [GroupPartitionFigures]) {
        let store = topicStore
        return try reading { txn in
            var partitions = [TopicPartitionFigures]()
            var groups = [GroupPartitionFigures]()
            let records = try store.allRecords(in: txn).filter { !$0.deleted }.sorted { $0.name < $1.name }
            // Group names per topic id, from the keys of `group_offsets` (topic u32, name, 0x00, partition u32).
            var groupNames = [UInt32: Set<String>]()
            try txn.withCursor(store.groupOffsets) { cursor in
                var entry = try cursor.first()
                while let current = entry {
                    if current.key.count > 8 {
                        var reader = BigEndianReader(Array(current.key.prefix(4)))
                        let topic = try reader.readUInt32()
                        let name = current.key[4..<(current.key.count - 5)]
                        groupNames[topic, default: []].insert(String(decoding: name, as: UTF8.self))
                    }
                    entry = try cursor.next()
                }
            }
            for record in records {
                var states = [Int: PartitionState]()
                for p in 0..<record.attributes.partitions {
                    let state = try store.partitionState(topic: record.id, partition: p, in: txn)
                    states[p] = state
                    partitions.append(TopicPartitionFigures(topic: record.name, partition: p, logStart: state.logStart,
                                                            highWatermark: state.highWatermark, bytes: state.bytes))
                }
                for group in (groupNames[record.id] ?? []).sorted() {
                    let committed = try store.committedOffsets(topic: record.id, group: group, in: txn)
                    for p in 0..<record.attributes.partitions {
                        let state = states[p]!
                        let from = Swift.max(committed[p] ?? state.logStart, state.logStart)
                        groups.append(GroupPartitionFigures(topic: record.name, group: group, partition: p, committed: committed[p],
                                                            lag: state.highWatermark > from ? state.highWatermark - from : 0))
                    }
                }
            }
            return (partitions, groups)
        }
    }
}
