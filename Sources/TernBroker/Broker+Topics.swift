public import TernCore
import TernStorage

/// Topics (publish-subscribe, Kafka-like) and consumer groups: the shell around ``TopicStore``
/// (LMDB) and ``ConsumerGroup/Instance`` (membership in memory).
///
/// ```swift
/// try await broker.createOrUpdateTopic(try QueueName("logs"), patch: .init(partitions: 16))
/// let offsets = try await broker.produce(try QueueName("logs"), [TopicMessage(key: Array("k".utf8), value: Array("v".utf8))])
/// let page = try await broker.fetch(try QueueName("logs"), partition: offsets[0].partition, offset: 0)
/// let (member, assignment) = try await broker.joinGroup(try QueueName("logs"), group: try QueueName("workers"))
/// let batch = try await broker.consume(try QueueName("logs"), group: try QueueName("workers"), memberID: member)
/// ```
extension Broker {
    /// Limits of topic request parameters.
    public static let produceBatchRange = 1...1000
    public static let fetchMaxRange = 1...1000
    /// The largest key plus value of one topic message, in bytes (1 MiB).
    public static let maxTopicMessageBytes = 1 << 20

    var topicStore: TopicStore { TopicStore(storage: storage) }

    // MARK: Topics

    /// Creates `name` (attributes from `patch` over the defaults) or updates its retention and `max_bytes`.
    /// - Throws: ``TernError``: `InvalidName` (`.fifo` names), `InvalidAttribute`, `Conflict`
    ///   (a different partition count for an existing topic).
    public func createOrUpdateTopic(_ name: QueueName, patch: TopicAttributes.Patch) async throws(TernError) -> (created: Bool, topic: TopicInfo) {
        guard !name.isFIFO else { throw TernError(.invalidName, "topic names may not end in .fifo") }
        let outcome = try await execute(.createOrUpdateTopic(name, patch))
        guard case .topic(let created, let record) = outcome.result else { Self.unexpected(outcome.result) }
        let store = topicStore
        return (created, try reading { txn in try store.info(record, in: txn) })
    }

    /// All live topics in name order, with their partitions.
    public func listTopics() throws(TernError) -> [TopicInfo] {
        let store = topicStore
        return try reading { txn in
            try store.allRecords(in: txn).filter { !$0.deleted }.sorted { $0.name < $1.name }.map { try store.info($0, in: txn) }
        }
    }

    /// One topic with its partitions' log start, high watermark and bytes.
    /// - Throws: ``TernError`` `TopicNotFound`.
    public func describeTopic(_ name: QueueName) throws(TernError) -> TopicInfo {
        let store = topicStore
        return try reading { txn in try store.info(try store.record(named: name, in: txn), in: txn) }
    }

    /// Deletes `name` durably at once; its batches and group offsets are removed in the background.
    /// - Throws: ``TernError`` `TopicNotFound`.
    public func deleteTopic(_ name: QueueName) async throws(TernError) {
        let outcome = try await execute(.deleteTopic(name))
        guard case .topicDeleted(let id) = outcome.result else { Self.unexpected(outcome.result) }
        topicState.forget(topic: id)
        signals.signal([Self.maintenanceKey])
    }

    // MARK: Produce and fetch

    /// Appends `messages` to `name`, all or nothing, and answers once the commit is durable.
    ///
    /// A message with an explicit partition goes there; one with a key goes to Kafka's partition
    /// for the key (``TopicPartitioner``); keyless ones all go to this request's sticky
    /// partition, which moves round-robin from request to request. The messages of one request
    /// for one partition form one stored batch, with dense offsets in request order.
    /// - Returns: the partition and offset of each message, in request order.
    /// - Throws: ``TernError``: `TopicNotFound`, `InvalidParameter` (count, partition),
    ///   `MessageTooLarge`, `StorageFull`.
    public func produce(_ name: QueueName, _ messages: [TopicMessage]) async throws(TernError) -> [TopicOffset] {
        try await produce(name, messages, producer: nil).offsets
    }

    /// ``produce(_:_:)``, idempotent when `stamp` is given: the stamp's first sequence counts
    /// messages per producer and topic from 0 in each epoch; a retried request (same first
    /// sequence and count as one of the producer's last 5 on this topic) stores nothing and is
    /// answered with the original offsets (keyless messages are routed to the partition the
    /// original went to). Kafka's idempotent producer, with the topic as the sequence scope
    /// because one request is applied to all its partitions in one transaction.
    /// - Returns: the offsets in request order, and whether the request was a duplicate.
    /// - Throws: ``TernError``: what ``produce(_:_:)`` throws, and `UnknownProducer`,
    ///   `ProducerFenced`, `OutOfOrderSequence` (a gap or a sequence older than the remembered
    ///   batches).
    public func produce(_ name: QueueName, _ messages: [TopicMessage], producer stamp: ProducerStamp?) async throws(TernError) -> (offsets: [TopicOffset], duplicate: Bool) {
        var routing = try route(messages, to: try topicRecord(name))
        routing.stamp = stamp
        let outcome = try await execute(.produce(routing))
        guard case .produced(let bases, let sticky, let duplicate) = outcome.result else { Self.unexpected(outcome.result) }
        let offsets = routing.offsets(sticky: sticky, bases: bases)
        if !duplicate { producedEvents(routing, offsets: offsets) }
        return (offsets, duplicate)
    }

    /// Validates `messages` for `record` and decides their partitions.
    /// - Throws: ``TernError``: `InvalidParameter` (count, partition), `MessageTooLarge`.
    func route(_ messages: [TopicMessage], to record: TopicRecord) throws(TernError) -> TopicProduce {
        guard Self.produceBatchRange.contains(messages.count) else {
            throw TernError(.invalidParameter, "messages must hold 1–\(Self.produceBatchRange.upperBound) messages")
        }
        let partitionCount = record.attributes.partitions
        var sticky: Int?
        var targets = [Int]()
        targets.reserveCapacity(messages.count)
        for (index, message) in messages.enumerated() {
            let size = message.value.count + (message.key?.count ?? 0)
            guard size <= Self.maxTopicMessageBytes else {
                throw TernError(.messageTooLarge, "messages[\(index)]: key and value are \(size) bytes, the limit is \(Self.maxTopicMessageBytes)")
            }
            if let partition = message.partition {
                guard (0..<partitionCount).contains(partition) else {
                    throw TernError(.invalidParameter, "messages[\(index)]: partition must be 0–\(partitionCount - 1), got \(partition)")
                }
                targets.append(partition)
            } else if let key = message.key {
                targets.append(TopicPartitioner.partition(forKey: key, partitions: partitionCount))
            } else {
                let chosen = sticky ?? topicState.nextStickyPartition(topic: record.id, partitions: partitionCount)
                sticky = chosen
                targets.append(chosen)
            }
        }
        return TopicProduce(topic: record.name, topicID: record.id, messages: messages, targets: targets, sticky: sticky)
    }

    /// Wakes fetchers of the partitions written and reports the produce to observers.
    func producedEvents(_ routing: TopicProduce, offsets: [TopicOffset]) {
        signals.signal(Set(offsets.map(\.partition)).sorted().map { TopicSchema.partitionSignal(topic: routing.topicID, partition: $0) }
            + [TopicSchema.topicSignal(topic: routing.topicID)])
        var counts = [Int: (count: Int, bytes: Int)]()
        for (message, partition) in zip(routing.messages, offsets.map(\.partition)) {
            counts[partition, default: (0, 0)].count += 1
            counts[partition, default: (0, 0)].bytes += message.value.count + (message.key?.count ?? 0)
        }
        observers.emit(counts.sorted { $0.key < $1.key }.map {
            .produced(topic: routing.topic, partition: $0.key, count: $0.value.count, bytes: $0.value.bytes)
        })
    }

    /// Reads up to `max` messages of one partition from `offset` on, waiting up to `waitTime`
    /// seconds for the first when `offset` is the high watermark (long polling).
    /// - Throws: ``TernError``: `TopicNotFound`, `InvalidParameter` (partition, max, wait
    ///   time), `OffsetOutOfRange` (below the log start or above the high watermark).
    public func fetch(_ name: QueueName, partition: Int, offset: UInt64, max: Int = 100, waitTime: Int = 0) async throws(TernError) -> FetchResult {
        guard Self.fetchMaxRange.contains(max) else { throw TernError(.invalidParameter, "max must be 1–1000") }
        guard Self.waitTimeRange.contains(waitTime) else { throw TernError(.invalidParameter, "wait_time must be 0–20 seconds") }
        let store = topicStore
        let record = try reading { txn in try store.record(named: name, in: txn) }
        guard (0..<record.attributes.partitions).contains(partition) else {
            throw TernError(.invalidParameter, "partition must be 0–\(record.attributes.partitions - 1), got \(partition)")
        }
        let key = TopicSchema.partitionSignal(topic: record.id, partition: partition)
        let deadline = clock.now.adding(seconds: waitTime)
        while true {
            let seen = signals.version(of: key)
            let result = try reading { txn in try store.fetch(topic: record.id, partition: partition, from: offset, max: max, in: txn) }
            if !result.messages.isEmpty || clock.now >= deadline || Task.isCancelled { return result }
            await signals.wait(for: key, seen: seen, until: deadline, clock: clock)
        }
    }

    // MARK: Consumer groups

    /// A group's consume answer: the messages and the assignment they were read under.
    public struct GroupBatch: Sendable, Hashable {
        public var messages: [FetchedMessage]
        public var assignment: ConsumerGroup.Assignment
    }

    /// A group as described by `GET /topics/{t}/groups/{g}`.
    public struct GroupInfo: Sendable, Hashable {
        public struct PartitionLag: Sendable, Hashable {
            public var partition: Int
            /// The committed offset, nil when the group never committed one.
            public var committed: UInt64?
            public var logStart: UInt64
            public var highWatermark: UInt64
            /// Messages not yet committed: high watermark − committed (or − log start).
            public var lag: UInt64
            /// The member that owns the partition, nil when none does.
            public var owner: String?
        }
        public var generation: UInt32
        public var members: [ConsumerGroup.Member]
        public var partitions: [PartitionLag]
    }

    /// Where ``resetGroupOffsets(_:group:to:)`` moves a group.
    public typealias OffsetReset = TernCore.OffsetReset

    /// Adds a member to `group`; the group rebalances.
    /// - Parameter sessionTimeout: seconds without a heartbeat after which the member is removed (1–300).
    /// - Returns: the new member's id and assignment.
    /// - Throws: ``TernError``: `TopicNotFound`, `InvalidParameter`.
    public func joinGroup(_ topic: QueueName, group: QueueName, sessionTimeout: Int = ConsumerGroup.defaultSessionTimeout) async throws(TernError) -> (memberID: String, assignment: ConsumerGroup.Assignment) {
        guard ConsumerGroup.sessionTimeoutRange.contains(sessionTimeout) else {
            throw TernError(.invalidParameter, "session_timeout must be 1–300 seconds")
        }
        let record = try topicRecord(topic)
        try await expireMembers(record, group)
        var generator = SystemRandomNumberGenerator()
        let memberID = "m-" + MessageID.generate(at: clock.now, using: &generator).description
        let time = try await applyMembership(.joinGroup(topic: topic, group: group, memberID: memberID, sessionTimeout: sessionTimeout),
                                             record, group)
        let assignment = try withGroup(record, group) { instance in instance.seen(memberID: memberID, at: time) }
        signals.signal([TopicSchema.topicSignal(topic: record.id)])
        guard let assignment else { throw Self.unknownMember(memberID) }
        return (memberID, assignment)
    }

    /// Keeps `memberID` in the group (a heartbeat refreshes its session timer on this node and
    /// writes nothing) and tells it its current assignment.
    /// - Throws: ``TernError``: `TopicNotFound`, `MemberNotFound` (it left or missed its session timeout: join again).
    public func heartbeat(_ topic: QueueName, group: QueueName, memberID: String) async throws(TernError) -> ConsumerGroup.Assignment {
        let record = try topicRecord(topic)
        try await expireMembers(record, group)
        let now = clock.now
        return try withGroup(record, group) { instance throws(TernError) in
            guard let assignment = instance.seen(memberID: memberID, at: now) else { throw Self.unknownMember(memberID) }
            return assignment
        }
    }

    /// Removes `memberID` from the group; the group rebalances.
    /// - Throws: ``TernError``: `TopicNotFound`, `MemberNotFound`.
    public func leaveGroup(_ topic: QueueName, group: QueueName, memberID: String) async throws(TernError) {
        let record = try topicRecord(topic)
        try await expireMembers(record, group)
        try await applyMembership(.leaveGroup(topic: topic, group: group, memberID: memberID), record, group)
        signals.signal([TopicSchema.topicSignal(topic: record.id)])
    }

    /// Runs `body` on this node's instance of the group, loading the group's stored state the
    /// first time (every member's session timer then starts now).
    func withGroup<T>(_ record: TopicRecord, _ group: QueueName, _ body: (inout ConsumerGroup.Instance) throws(TernError) -> T) throws(TernError) -> T {
        let key = TopicState.GroupKey(topic: record.id, group: group.rawValue)
        if !topicState.hasGroup(key) {
            let store = topicStore
            let stored = try reading { txn in try store.groupState(topic: record.id, group: group.rawValue, in: txn) }
            topicState.insert(key, ConsumerGroup.Instance(state: stored ?? ConsumerGroup.State(partitionCount: record.attributes.partitions),
                                                          at: clock.now))
        }
        return try topicState.withGroup(key, partitions: record.attributes.partitions, body)
    }

    /// Applies a join, leave or expiry and hands the stored state to this node's instance.
    /// - Returns: the time the command was applied at.
    @discardableResult
    func applyMembership(_ command: Command, _ record: TopicRecord, _ group: QueueName) async throws(TernError) -> Timestamp {
        let outcome = try await execute(command)
        guard case .group(let state, _) = outcome.result else { Self.unexpected(outcome.result) }
        try withGroup(record, group) { instance in _ = instance.adopt(state, at: outcome.time) }
        return outcome.time
    }

    /// Removes the members whose session timeout passed on this node's timers, by a command
    /// (as Kafka's group coordinator turns a missed session into a rebalance).
    func expireMembers(_ record: TopicRecord, _ group: QueueName) async throws(TernError) {
        let now = clock.now
        let expired = try withGroup(record, group) { instance in instance.expiredMembers(at: now) }
        guard !expired.isEmpty else { return }
        try await applyMembership(.expireMembers(topic: record.name, group: group, memberIDs: expired), record, group)
        signals.signal([TopicSchema.topicSignal(topic: record.id)])
    }

    /// Reads up to `max` messages from the member's partitions, continuing from the group's
    /// position (the committed offset — or the log start when none — after a rebalance), and
    /// waits up to `waitTime` seconds for the first. Counts as a heartbeat.
    /// - Throws: ``TernError``: `TopicNotFound`, `MemberNotFound`, `InvalidParameter`.
    public func consume(_ topic: QueueName, group: QueueName, memberID: String, max: Int = 100, waitTime: Int = 0) async throws(TernError) -> GroupBatch {
        guard Self.fetchMaxRange.contains(max) else { throw TernError(.invalidParameter, "max must be 1–1000") }
        guard Self.waitTimeRange.contains(waitTime) else { throw TernError(.invalidParameter, "wait_time must be 0–20 seconds") }
        let record = try topicRecord(topic)
        let key = TopicState.GroupKey(topic: record.id, group: group.rawValue)
        let store = topicStore
        let signal = TopicSchema.topicSignal(topic: record.id)
        let deadline = clock.now.adding(seconds: waitTime)
        while true {
            let seen = signals.version(of: signal)
            try await expireMembers(record, group)
            let now = clock.now
            let (assignment, positions) = try withGroup(record, group) { instance throws(TernError) in
                guard let assignment = instance.seen(memberID: memberID, at: now) else { throw Self.unknownMember(memberID) }
                return (assignment, instance.positions)
            }
            let start = topicState.nextRotation()
            let owned = assignment.partitions.isEmpty ? [] : (0..<assignment.partitions.count).map {
                assignment.partitions[($0 + start) % assignment.partitions.count]
            }
            // A partition without a position (just assigned) resumes at its committed offset,
            // read on the writer thread: a commit validated there before the rebalance has
            // then landed, and one validated after it was refused (see commitOffsets).
            var committed = [Int: UInt64]()
            if owned.contains(where: { positions[$0] == nil }) {
                let groupName = group.rawValue
                committed = try await perform { txn in try store.committedOffsets(topic: record.id, group: groupName, in: txn) }
            }
            let (messages, resumed): ([FetchedMessage], [Int: UInt64]) = try reading { txn in
                var result = [FetchedMessage]()
                var resumed = [Int: UInt64]()
                for partition in owned where result.count < max || positions[partition] == nil {
                    let state = try store.partitionState(topic: record.id, partition: partition, in: txn)
                    let position = Swift.min(Swift.max(positions[partition] ?? committed[partition] ?? state.logStart, state.logStart),
                                             state.highWatermark)
                    if positions[partition] == nil { resumed[partition] = position }
                    guard position < state.highWatermark, result.count < max else { continue }
                    result += try store.read(topic: record.id, partition: partition, from: position, max: max - result.count, in: txn)
                }
                return (result, resumed)
            }
            if !resumed.isEmpty {
                // Remembered, so that the next fetch does not read the committed offsets on the writer again.
                try withGroup(record, group) { instance in
                    for (partition, offset) in resumed {
                        instance.onResumed(memberID: memberID, generation: assignment.generation, partition: partition, at: offset)
                    }
                }
            }
            if !messages.isEmpty {
                var next = [Int: UInt64]()
                for message in messages { next[message.partition] = message.offset + 1 }
                try withGroup(record, group) { instance in
                    for (partition, offset) in next {
                        instance.onDelivered(memberID: memberID, generation: assignment.generation, partition: partition, nextOffset: offset)
                    }
                }
                return GroupBatch(messages: messages, assignment: assignment)
            }
            if now >= deadline || Task.isCancelled { return GroupBatch(messages: [], assignment: assignment) }
            let wakeAt = Swift.min(deadline, topicState.groups.withLock { $0[key]?.nextDeadline } ?? deadline)
            await signals.wait(for: signal, seen: seen, until: Swift.max(wakeAt, now.adding(milliseconds: 1)), clock: clock)
        }
    }

    /// Commits `offsets` (partition → next offset to consume) for `group`, durably.
    /// - Throws: ``TernError``: `TopicNotFound`; `StaleGeneration` (409) when `generation` is
    ///   not the group's; `Conflict` (409) when the member does not own a partition;
    ///   `MemberNotFound`; `InvalidParameter` (400) for an offset beyond the high watermark.
    ///   Nothing is committed on any error.
    public func commitOffsets(_ topic: QueueName, group: QueueName, memberID: String, generation: UInt32,
                              offsets: [Int: UInt64]) async throws(TernError) {
        let record = try topicRecord(topic)
        try await expireMembers(record, group)
        // Checked on the writer thread against the stored group, in the transaction that writes
        // the offsets, so that no commit of an ended generation lands after the new owner read
        // its position (decision 24).
        try await execute(.commitOffsets(OffsetCommitCommand(topic: topic, group: group, memberID: memberID, generation: generation,
                                                             offsets: offsets)))
    }

    /// Moves every partition's committed offset of `group` to `target`. Only for a group without members.
    /// - Throws: ``TernError``: `TopicNotFound`; `Conflict` while the group has members.
    public func resetGroupOffsets(_ topic: QueueName, group: QueueName, to target: OffsetReset) async throws(TernError) {
        let record = try topicRecord(topic)
        try await expireMembers(record, group)
        try await execute(.resetOffsets(topic: topic, group: group, to: target))
        try withGroup(record, group) { instance in instance.onOffsetsReset() }
    }

    /// The group's generation, members and, per partition, committed offset and lag.
    /// - Throws: ``TernError`` `TopicNotFound`.
    public func describeGroup(_ topic: QueueName, group: QueueName) async throws(TernError) -> GroupInfo {
        let record = try topicRecord(topic)
        try await expireMembers(record, group)
        let instance = try withGroup(record, group) { instance in instance }
        var owners = [Int: String]()
        for member in instance.members.values { for p in member.partitions { owners[p] = member.id } }
        let store = topicStore
        let partitions: [GroupInfo.PartitionLag] = try reading { txn in
            let committed = try store.committedOffsets(topic: record.id, group: group.rawValue, in: txn)
            return try (0..<record.attributes.partitions).map { p in
                let state = try store.partitionState(topic: record.id, partition: p, in: txn)
                let from = Swift.max(committed[p] ?? state.logStart, state.logStart)
                return GroupInfo.PartitionLag(partition: p, committed: committed[p], logStart: state.logStart,
                                              highWatermark: state.highWatermark,
                                              lag: state.highWatermark > from ? state.highWatermark - from : 0, owner: owners[p])
            }
        }
        return GroupInfo(generation: instance.generation, members: instance.members.values.sorted { $0.id < $1.id }, partitions: partitions)
    }

    // MARK: Helpers

    func topicRecord(_ name: QueueName) throws(TernError) -> TopicRecord {
        let store = topicStore
        return try reading { txn in try store.record(named: name, in: txn) }
    }

    static func unknownMember(_ memberID: String) -> TernError {
        TernError(.memberNotFound, "member \(memberID) is not in the group (it left or missed its session timeout); join again")
    }
}
