public import TernCore
import TernWire

/// A member of a topic consumer group: heartbeats in the background, hands out the messages of
/// its partitions, reports rebalances, and commits what it handed out.
///
/// ```swift
/// let consumer = try await client.groupConsumer(topic: "logs", group: "indexer", sessionTimeout: 10) { revoked, assigned in
///     print("lost \(revoked), got \(assigned)")
/// }
/// for try await message in consumer.messages {         // or: try await consumer.poll()
///     try await index(message.partition, message.offset, message.value)
///     try await consumer.commit()                         // or every n messages / seconds
/// }
/// try await consumer.close()
/// ```
///
/// Delivery is at least once: a message is handed out again only when its partition moves to
/// another member (or this one rejoins) before ``commit()`` covered it, since a partition's new
/// owner resumes at the group's committed offset. The broker assigns partitions stickily and
/// evenly (see `ConsumerGroup.assign` in `TernBroker`).
///
/// Heartbeats run in a task every third of the session timeout. A heartbeat answered with
/// `MemberNotFound` (the member missed its session timeout, e.g. the process was paused) joins
/// again as a new member: every position is dropped and the handler sees all old partitions
/// revoked and the new ones assigned. Other heartbeat failures (`Unavailable`) are retried at
/// the next tick.
///
/// One task should consume (iterate ``messages`` or call ``poll(max:)``); ``commit()`` and
/// ``close()`` may come from any task.
public actor GroupConsumer {
    /// Called with the partitions lost and gained, each ascending, when the assignment changes.
    /// Messages of revoked partitions that were fetched but not yet handed out are dropped (the
    /// new owner reads them from the committed offset); their positions can no longer be committed.
    public typealias RebalanceHandler = @Sendable (_ revoked: [Int], _ assigned: [Int]) async -> Void

    public nonisolated let client: TernClient
    public nonisolated let topic: String
    public nonisolated let group: String
    /// Seconds without a heartbeat after which the broker removes the member.
    public nonisolated let sessionTimeout: Int
    /// Messages per consume request, 1–1,000.
    public nonisolated let batchSize: Int
    /// Seconds each consume request waits for a first message, 0–20.
    public nonisolated let waitTime: Int
    private let onRebalance: RebalanceHandler?

    /// The member id the broker gave this consumer (changes when it has to join again).
    public private(set) var memberID: String
    /// The generation of the group this consumer last heard of.
    public private(set) var generation: UInt32
    /// The partitions this consumer owns, ascending.
    public private(set) var partitions: [Int]
    /// Per partition, the offset after the last message handed out.
    private var positions: [Int: UInt64] = [:]
    /// Per partition, the offset last committed by this consumer.
    private var committed: [Int: UInt64] = [:]
    /// Messages fetched and not yet handed out.
    private var buffer: [FetchedMessage] = []
    private var heartbeats: Task<Void, Never>?
    private var rejoining = false
    private var closed = false

    init(client: TernClient, topic: String, group: String, sessionTimeout: Int, batchSize: Int, waitTime: Int,
         onRebalance: RebalanceHandler?, memberID: String, assignment: GroupAssignment) {
        self.client = client
        self.topic = topic
        self.group = group
        self.sessionTimeout = sessionTimeout
        self.batchSize = batchSize
        self.waitTime = waitTime
        self.onRebalance = onRebalance
        self.memberID = memberID
        self.generation = assignment.generation
        self.partitions = assignment.partitions
    }

    deinit {
        heartbeats?.cancel()
    }

    /// Reports the initial assignment and starts the heartbeat task.
    func start() async {
        let interval: Duration = .milliseconds(Int64(sessionTimeout) * 1000 / 3)
        heartbeats = Task { [weak self] in
            while !Task.isCancelled {
                do { try await Task.sleep(for: interval) } catch { return }
                guard let self else { return }
                await self.heartbeat()
            }
        }
        if let onRebalance { await onRebalance([], partitions) }
    }

    // MARK: Consuming

    /// The messages of this consumer's partitions as an `AsyncSequence`, one at a time, in
    /// offset order per partition. It long-polls with ``batchSize`` and ``waitTime``, retries
    /// after `Unavailable`, and ends when the consumer is closed or the task is cancelled.
    public nonisolated var messages: Messages { Messages(consumer: self) }

    /// Up to `max` messages of this consumer's partitions, waiting up to ``waitTime`` seconds
    /// for the first; each counts as consumed for ``commit()``.
    /// - Parameter max: 1–1,000; nil = ``batchSize``.
    /// - Returns: the messages, empty when none arrived in time or the consumer is closed.
    /// - Throws: ``TernError``: `Unavailable`, `TopicNotFound`; `MemberNotFound` is handled by
    ///   joining again (the call then returns no messages).
    public func poll(max: Int? = nil) async throws(TernError) -> [FetchedMessage] {
        if buffer.isEmpty, !closed { try await fill() }
        return take(Swift.max(1, max ?? batchSize))
    }

    /// The next message, nil once closed or cancelled.
    func next() async throws(TernError) -> FetchedMessage? {
        while buffer.isEmpty {
            if closed || Task.isCancelled { return nil }
            try await fill()
        }
        return take(1).first
    }

    /// ``next()`` as a result (typed throws in the iterator crash this compiler).
    func nextResult() async -> Result<FetchedMessage?, TernError> {
        do { return .success(try await next()) } catch { return .failure(error) }
    }

    /// Fetches one batch into the buffer.
    private func fill() async throws(TernError) {
        let member = memberID
        let batch: (messages: [FetchedMessage], assignment: GroupAssignment)
        do {
            batch = try await client.consume(topic: topic, group: group, memberID: member, max: batchSize, wait: waitTime)
        } catch {
            guard error.code == .memberNotFound else { throw error }
            await rejoin(replacing: member)
            return
        }
        // Joined again meanwhile: the broker hands these out again from the committed offsets.
        guard member == memberID, !closed else { return }
        await apply(batch.assignment)
        let owned = Set(partitions)
        buffer += batch.messages.filter { owned.contains($0.partition) }
    }

    /// Hands out up to `count` buffered messages and records their positions.
    private func take(_ count: Int) -> [FetchedMessage] {
        let taken = Array(buffer.prefix(count))
        buffer.removeFirst(taken.count)
        for message in taken { positions[message.partition] = Swift.max(positions[message.partition] ?? 0, message.offset + 1) }
        return taken
    }

    // MARK: Committing

    /// The positions a transaction should commit for this consumer: every partition it owns
    /// with messages handed out since its last commit, with its member id and generation (see
    /// ``TransactionalProducer/commitOffsets(of:)``). They count as committed here once
    /// ``markCommitted(_:)`` is called after the transaction commits.
    public func uncommittedOffsets() -> (memberID: String, generation: UInt32, offsets: [Int: UInt64]) {
        let owned = Set(partitions)
        return (memberID, generation, positions.filter { owned.contains($0.key) && committed[$0.key] != $0.value })
    }

    /// Records that `offsets` were committed elsewhere (by a transaction).
    public func markCommitted(_ offsets: [Int: UInt64]) {
        for (partition, offset) in offsets { committed[partition] = offset }
    }

    /// Commits the position of every message handed out (by ``messages`` or ``poll(max:)``) in
    /// the partitions this consumer owns, with the current generation.
    ///
    /// On `StaleGeneration` (or `Conflict`: the group rebalanced since this consumer last heard)
    /// it learns the new assignment with a heartbeat, drops the positions of partitions it lost,
    /// and commits the rest in the new generation (up to 3 attempts).
    /// - Returns: the offsets committed (partition → next offset to consume); empty when nothing
    ///   was handed out since the last commit.
    /// - Throws: ``TernError``: `Unavailable` (the commit may or may not have landed; committing
    ///   again is harmless); `MemberNotFound` (the member had expired: the consumer joined again
    ///   and dropped its positions — the uncommitted messages will be handed out again);
    ///   `StaleGeneration` when the group kept rebalancing.
    @discardableResult
    public func commit() async throws(TernError) -> [Int: UInt64] {
        var attempt = 0
        while true {
            let owned = Set(partitions)
            let offsets = positions.filter { owned.contains($0.key) && committed[$0.key] != $0.value }
            guard !offsets.isEmpty else { return [:] }
            let (member, generation) = (memberID, self.generation)
            do {
                try await client.commitOffsets(offsets, topic: topic, group: group, memberID: member, generation: generation)
                for (partition, offset) in offsets { committed[partition] = offset }
                return offsets
            } catch {
                attempt += 1
                guard error.code == .staleGeneration || error.code == .conflict, attempt < 3 else {
                    if error.code == .memberNotFound { await rejoin(replacing: member) }
                    throw error
                }
            }
            do {
                let assignment = try await client.heartbeat(topic: topic, group: group, memberID: member)
                if member == memberID { await apply(assignment) }
            } catch {
                if error.code == .memberNotFound { await rejoin(replacing: member) }
                throw error
            }
        }
    }

    /// Leaves the group (its partitions move to the other members at once) and stops the
    /// heartbeats. Call ``commit()`` first: positions not committed are handed out again to
    /// the next owner. Closing twice does nothing.
    /// - Throws: ``TernError`` `Unavailable` (the broker removes the member after its session
    ///   timeout instead).
    public func close() async throws(TernError) {
        guard !closed else { return }
        closed = true
        heartbeats?.cancel()
        heartbeats = nil
        buffer = []
        do {
            try await client.leaveGroup(topic: topic, group: group, memberID: memberID)
        } catch {
            guard error.code == .memberNotFound else { throw error }
        }
    }

    // MARK: Membership

    /// One heartbeat; called by the heartbeat task.
    func heartbeat() async {
        guard !closed, !rejoining else { return }
        let member = memberID
        do {
            let assignment = try await client.heartbeat(topic: topic, group: group, memberID: member)
            guard member == memberID, !closed else { return }
            await apply(assignment)
        } catch {
            if error.code == .memberNotFound { await rejoin(replacing: member) }
            // Anything else (a lost connection): the next tick tries again.
        }
    }

    /// Takes over `assignment` when it is newer than what this consumer knows, and reports a change.
    private func apply(_ assignment: GroupAssignment) async {
        guard assignment.generation >= generation else { return }
        generation = assignment.generation
        let before = Set(partitions)
        let after = Set(assignment.partitions)
        partitions = assignment.partitions.sorted()
        guard before != after else { return }
        let revoked = before.subtracting(after).sorted()
        let assigned = after.subtracting(before).sorted()
        for partition in revoked {
            positions.removeValue(forKey: partition)
            committed.removeValue(forKey: partition)
        }
        // A partition gained resumes at the group's committed offset, which may be another
        // member's: forget what this consumer committed there before.
        for partition in assigned { committed.removeValue(forKey: partition) }
        buffer.removeAll { !after.contains($0.partition) }
        if let onRebalance { await onRebalance(revoked, assigned) }
    }

    /// Joins again after the broker forgot `member` (unless another call already did).
    private func rejoin(replacing member: String) async {
        guard member == memberID, !closed, !rejoining else { return }
        rejoining = true
        defer { rejoining = false }
        let joined: (memberID: String, assignment: GroupAssignment)
        do {
            joined = try await client.joinGroup(topic: topic, group: group, sessionTimeout: sessionTimeout)
        } catch {
            return // the next heartbeat or consume tries again
        }
        guard !closed else {
            try? await client.leaveGroup(topic: topic, group: group, memberID: joined.memberID)
            return
        }
        let revoked = partitions
        memberID = joined.memberID
        generation = joined.assignment.generation
        partitions = joined.assignment.partitions.sorted()
        positions = [:]
        committed = [:]
        buffer = []
        if let onRebalance { await onRebalance(revoked, partitions) }
    }

    // MARK: AsyncSequence

    /// The messages of a ``GroupConsumer``; see ``GroupConsumer/messages``.
    public struct Messages: AsyncSequence, Sendable {
        public typealias Element = FetchedMessage
        let consumer: GroupConsumer

        public func makeAsyncIterator() -> Iterator { Iterator(consumer: consumer) }

        public struct Iterator: AsyncIteratorProtocol {
            let consumer: GroupConsumer
            var failures = 0

            /// The next message.
            /// - Returns: nil once the consumer is closed or the task is cancelled.
            /// - Throws: ``TernError`` from the broker other than `Unavailable` (which is retried
            ///   with the client's backoff).
            public mutating func next() async throws -> FetchedMessage? {
                while true {
                    switch await consumer.nextResult() {
                    case .success(let message):
                        failures = 0
                        return message
                    case .failure(let error):
                        guard error.code == .unavailable else { throw error }
                        try? await consumer.client.backoff(attempt: failures)
                        failures += 1
                    }
                }
            }
        }
    }
}
