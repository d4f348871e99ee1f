public import TernCore
public import TernWire

/// Topics and consumer groups over the binary protocol (API keys 30–42).
///
/// ```swift
/// try await client.createTopic("logs", patch: TopicAttributes.Patch(partitions: 4))
/// let stored = try await client.produce(Array("GET /".utf8), to: "logs", key: Array("host-1".utf8))
/// let page = try await client.fetch(topic: "logs", partition: stored.partition, offset: stored.offset, max: 10)
/// ```
///
/// Consumer groups are easiest through ``GroupConsumer`` (``groupConsumer(topic:group:sessionTimeout:batchSize:waitTime:onRebalance:)``);
/// the raw group calls (``joinGroup(topic:group:sessionTimeout:)``, ``consume(topic:group:memberID:max:wait:)``, …)
/// are here for tools and tests.
extension TernClient {
    // MARK: Topic administration

    /// Creates `name` (attributes from `patch` over the defaults: 1 partition, 7 days'
    /// retention, no byte limit) or updates an existing topic's retention and max bytes.
    /// - Returns: whether the topic was created, and its description.
    /// - Throws: ``TernError``: `InvalidName`, `InvalidAttribute` (a value out of range),
    ///   `Conflict` (a different partition count for an existing topic).
    @discardableResult
    public func createTopic(_ name: String, patch: TopicAttributes.Patch = .init()) async throws(TernError) -> (created: Bool, topic: TopicInfo) {
        guard case .topic(let created, let info) = try await call(.createTopic(name: name, patch: patch)) else { throw unexpected() }
        return (created, info)
    }

    /// One topic with, per partition, its log start, high watermark and stored bytes.
    /// - Throws: ``TernError`` `TopicNotFound`, `InvalidName`.
    public func describeTopic(_ name: String) async throws(TernError) -> TopicInfo {
        guard case .topic(_, let info) = try await call(.describeTopic(name: name)) else { throw unexpected() }
        return info
    }

    /// Every topic, in name order.
    public func listTopics() async throws(TernError) -> [TopicInfo] {
        guard case .topics(let infos) = try await call(.listTopics) else { throw unexpected() }
        return infos
    }

    /// Deletes `name` with its messages and its groups' offsets.
    /// - Throws: ``TernError`` `TopicNotFound`.
    public func deleteTopic(_ name: String) async throws(TernError) {
        _ = try await call(.deleteTopic(name: name))
    }

    // MARK: Produce and fetch

    /// Appends one message to `topic` and returns once it is durable.
    ///
    /// ```swift
    /// let stored = try await client.produce(Array("hello".utf8), to: "logs", key: Array("user-7".utf8))
    /// print(stored.partition, stored.offset)
    /// ```
    /// - Parameters:
    ///   - value: the message bytes (key plus value at most 1 MiB).
    ///   - key: messages with equal keys go to the same partition; nil = the sticky partition.
    ///   - partition: an explicit partition, overriding the key's.
    /// - Returns: the partition and offset the message was stored at.
    /// - Throws: ``TernError``: `TopicNotFound`, `InvalidParameter` (partition),
    ///   `MessageTooLarge`, `StorageFull`. Not idempotent: after `Unavailable` the message may
    ///   or may not have been stored.
    @discardableResult
    public func produce(_ value: [UInt8], to topic: String, key: [UInt8]? = nil, partition: Int? = nil) async throws(TernError) -> TopicOffset {
        let offsets = try await produce([TopicMessage(key: key, value: value, partition: partition)], to: topic)
        guard let first = offsets.first else { throw unexpected() }
        return first
    }

    /// Appends `messages` (1–1,000) to `topic`, all or nothing.
    /// - Returns: the partition and offset of each message, in order.
    /// - Throws: as ``produce(_:to:key:partition:)``; `InvalidParameter` for an empty or too large batch.
    @discardableResult
    public func produce(_ messages: [TopicMessage], to topic: String) async throws(TernError) -> [TopicOffset] {
        guard case .produced(let offsets, _) = try await call(.produce(topic: topic, producer: nil, messages: messages)) else { throw unexpected() }
        return offsets
    }

    /// Reads up to `max` messages of one partition from `offset` on.
    ///
    /// ```swift
    /// var offset: UInt64 = 0
    /// let page = try await client.fetch(topic: "logs", partition: 0, offset: offset, max: 100, wait: 5)
    /// offset = page.messages.last.map { $0.offset + 1 } ?? offset
    /// ```
    /// - Parameters:
    ///   - offset: the first offset to read; nil = the partition's log start.
    ///   - max: 1–1,000.
    ///   - wait: seconds (0–20) to wait for a first message when `offset` is the high watermark.
    /// - Returns: the messages (empty when none arrived in time), the high watermark and the log start.
    /// - Throws: ``TernError``: `TopicNotFound`, `InvalidParameter` (partition, max, wait),
    ///   `OffsetOutOfRange` (below the log start or above the high watermark).
    public func fetch(topic: String, partition: Int, offset: UInt64? = nil, max: Int = 100, wait: Int = 0) async throws(TernError) -> FetchResult {
        let request = WireRequest.fetch(topic: topic, partition: try narrow(partition, "partition"), offset: offset,
                                        maxMessages: try narrow(max, "max"), waitTime: try narrow(wait, "wait"))
        guard case .fetched(let result) = try await call(request) else { throw unexpected() }
        return result
    }

    // MARK: Consumer groups (raw calls)

    /// Joins `group` of `topic` as a new member; the group rebalances.
    /// - Parameter sessionTimeout: seconds (1–300) without a heartbeat after which the member is removed.
    /// - Returns: the member id (for every later call) and its assignment.
    /// - Throws: ``TernError``: `TopicNotFound`, `InvalidName`, `InvalidParameter`.
    public func joinGroup(topic: String, group: String, sessionTimeout: Int = 10) async throws(TernError) -> (memberID: String, assignment: GroupAssignment) {
        let request = WireRequest.joinGroup(topic: topic, group: group, sessionTimeout: try narrow(sessionTimeout, "sessionTimeout"))
        guard case .joined(let memberID, let assignment) = try await call(request) else { throw unexpected() }
        return (memberID, assignment)
    }

    /// Keeps `memberID` in the group and returns its current assignment.
    /// - Throws: ``TernError``: `TopicNotFound`, `MemberNotFound` (it left or missed its session timeout: join again).
    public func heartbeat(topic: String, group: String, memberID: String) async throws(TernError) -> GroupAssignment {
        guard case .assignment(let assignment) = try await call(.heartbeat(topic: topic, group: group, memberID: memberID)) else {
            throw unexpected()
        }
        return assignment
    }

    /// Removes `memberID` from the group; the group rebalances.
    /// - Throws: ``TernError``: `TopicNotFound`, `MemberNotFound`.
    public func leaveGroup(topic: String, group: String, memberID: String) async throws(TernError) {
        _ = try await call(.leaveGroup(topic: topic, group: group, memberID: memberID))
    }

    /// Reads up to `max` (1–1,000) messages from the member's partitions, continuing where the
    /// group is, waiting up to `wait` seconds (0–20) for the first. Counts as a heartbeat.
    /// - Returns: the messages and the assignment they were read under.
    /// - Throws: ``TernError``: `TopicNotFound`, `MemberNotFound`, `InvalidParameter`.
    public func consume(topic: String, group: String, memberID: String, max: Int = 100, wait: Int = 0) async throws(TernError) -> (messages: [FetchedMessage], assignment: GroupAssignment) {
        let request = WireRequest.groupConsume(topic: topic, group: group, memberID: memberID, maxMessages: try narrow(max, "max"),
                                               waitTime: try narrow(wait, "wait"))
        guard case .consumed(let messages, let assignment) = try await call(request) else { throw unexpected() }
        return (messages, assignment)
    }

    /// Commits `offsets` (partition → the next offset to consume) for `group`, durably.
    /// - Throws: ``TernError``: `StaleGeneration` when `generation` is not the group's (learn the
    ///   new assignment with a heartbeat); `Conflict` when the member does not own a partition;
    ///   `MemberNotFound`; `InvalidParameter` (no offsets, or one beyond the high watermark).
    ///   Nothing is committed on any error.
    public func commitOffsets(_ offsets: [Int: UInt64], topic: String, group: String, memberID: String, generation: UInt32) async throws(TernError) {
        _ = try await call(.commitOffsets(topic: topic, group: group, memberID: memberID, generation: generation, offsets: offsets))
    }

    /// Moves every partition's committed offset of `group` to `target`.
    /// - Throws: ``TernError``: `TopicNotFound`; `Conflict` while the group has members.
    public func resetOffsets(topic: String, group: String, to target: OffsetReset) async throws(TernError) {
        _ = try await call(.resetOffsets(topic: topic, group: group, to: target))
    }

    /// The group's generation, members and, per partition, committed offset, log start, high
    /// watermark, lag and owner.
    /// - Throws: ``TernError`` `TopicNotFound`.
    public func describeGroup(topic: String, group: String) async throws(TernError) -> WireGroupInfo {
        guard case .group(let info) = try await call(.describeGroup(topic: topic, group: group)) else { throw unexpected() }
        return info
    }

    /// Joins `group` of `topic` and returns a ``GroupConsumer`` that heartbeats in the background.
    ///
    /// ```swift
    /// let consumer = try await client.groupConsumer(topic: "logs", group: "indexer") { revoked, assigned in
    ///     print("lost \(revoked), got \(assigned)")
    /// }
    /// for try await message in consumer.messages {
    ///     index(message.value)
    ///     try await consumer.commit()
    /// }
    /// ```
    /// - Parameters:
    ///   - sessionTimeout: seconds (1–300); heartbeats go out every third of it.
    ///   - batchSize: messages per consume request, 1–1,000.
    ///   - waitTime: seconds (0–20) each consume request waits for a first message.
    ///   - onRebalance: called with the partitions lost and gained whenever the assignment
    ///     changes, first with `([], initial assignment)`.
    /// - Throws: ``TernError`` from the join: `TopicNotFound`, `InvalidName`, `InvalidParameter`, `Unavailable`.
    public func groupConsumer(topic: String, group: String, sessionTimeout: Int = 10, batchSize: Int = 100, waitTime: Int = 5,
                              onRebalance: GroupConsumer.RebalanceHandler? = nil) async throws(TernError) -> GroupConsumer {
        guard (1...1000).contains(batchSize) else { throw TernError(.invalidParameter, "batchSize must be 1–1000, got \(batchSize)") }
        guard (0...20).contains(waitTime) else { throw TernError(.invalidParameter, "waitTime must be 0–20 seconds, got \(waitTime)") }
        let (memberID, assignment) = try await joinGroup(topic: topic, group: group, sessionTimeout: sessionTimeout)
        let consumer = GroupConsumer(client: self, topic: topic, group: group, sessionTimeout: sessionTimeout, batchSize: batchSize,
                                     waitTime: waitTime, onRebalance: onRebalance, memberID: memberID, assignment: assignment)
        await consumer.start()
        return consumer
    }

    /// `value` as the wire integer type `T`.
    /// - Throws: ``TernError`` `InvalidParameter` when it does not fit.
    func narrow<T: FixedWidthInteger>(_ value: Int, _ name: String) throws(TernError) -> T {
        guard let narrowed = T(exactly: value) else {
            throw TernError(.invalidParameter, "\(name) \(value) is out of range (0–\(T.max))")
        }
        return narrowed
    }
}
