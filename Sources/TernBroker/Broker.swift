public import Logging
import Synchronization
public import TernCore
public import TernStorage

/// The queue broker of one node: validates requests, decides the time and random values of
/// each command, applies it through ``QueueStore`` in a group-commit transaction, and wakes
/// long-polling receivers.
///
/// ```swift
/// let storage = try Storage(directory: "./data", databases: Broker.databaseNames, logger: logger)
/// let broker = try await Broker.open(storage: storage, clock: SystemClock(), logger: logger)
/// try await broker.createOrUpdateQueue(try QueueName("jobs"), patch: .init())
/// _ = try await broker.send(try QueueName("jobs"), [OutgoingMessage(body: Array("hi".utf8))])
/// let messages = try await broker.receive(try QueueName("jobs"), maxMessages: 10, waitTime: 20)
/// try await broker.acknowledge(try QueueName("jobs"), receiptHandle: messages[0].receiptHandle)
/// ```
///
/// Every public method reports failures as ``TernError`` with a stable ``ErrorCode``.
public final class Broker: Sendable {
    /// The named databases the broker needs; pass them to ``Storage/init(directory:databases:settings:logger:)``.
    public static let databaseNames = QueueSchema.databaseNames + TopicSchema.databaseNames + GroupSchema.databaseNames
        + CommandLog.databaseNames

    /// Limits of the request parameters (SQS's).
    public static let batchSizeRange = 1...1000
    public static let waitTimeRange = 0...20

    public let storage: Storage
    public let clock: any TernClock
    /// Applies every state change (``Command``) on the writer thread.
    public let machine: StateMachine
    let store: QueueStore
    let logger: Logger
    let signals = Signals()
    /// Sticky partitions and consumer-group membership (see `Broker+Topics.swift`).
    let topicState = TopicState()
    /// Observers of ``BrokerEvent``s (metrics); see `Broker+Metrics.swift`.
    let observers = BrokerObservers()
    /// When the maintenance loop will next wake up on its own; commands that create an
    /// earlier deadline wake it sooner.
    let scheduledWake = Mutex(Timestamp(milliseconds: 0))
    /// Signal key of the maintenance loop (queue ids start at 1).
    static let maintenanceKey: UInt32 = 0
    /// How often retention and deleted-queue sweeping run, in milliseconds.
    static let maintenanceIntervalMilliseconds: Int64 = 1000
    /// In a replication group: how long a leader whose state has nothing due (no visibility
    /// timeout or delay has passed) goes without a due-work round. Each round is a replicated,
    /// synced write on every replica, so an idle group writes two entries every 10 s instead of
    /// every second (decision 144); retention and sweeps wait for it at most that long.
    static let idleRoundMilliseconds: Int64 = 10_000
    static let chunkSize = 5000
    /// Applies commands: nil = this node's group-commit writer; in a cluster, the replication
    /// group's log (``CommandExecutor``).
    let executor: (any CommandExecutor)?
    /// The limit of the next due-work round (``runDueWork()``), ``chunkSize`` unless a full map
    /// refused a round.
    let dueWorkLimit = Mutex(Broker.chunkSize)

    private init(storage: Storage, clock: any TernClock, commandLogBytes: Int, executor: (any CommandExecutor)?, logger: Logger) {
        self.storage = storage
        self.clock = clock
        self.logger = logger
        self.machine = StateMachine(storage: storage, logLimitBytes: commandLogBytes)
        self.store = machine.queues
        self.executor = executor
    }

    /// Opens the broker on `storage` and applies, before returning, every visibility deadline
    /// and delay that passed while the broker was down (exactly as if it had been running).
    /// A full map never stops the start: when due work does not fit (`StorageFull`), the broker
    /// opens anyway, so that clients can acknowledge, purge and delete, and the maintenance
    /// loop retries it in smaller chunks.
    /// - Parameter commandLogBytes: bytes of applied commands kept in the command log
    ///   (``CommandLog``); 0 (the default) = no log.
    /// - Throws: ``TernError`` (`InternalError`) when the stored data cannot be read.
    public static func open(storage: Storage, clock: any TernClock, commandLogBytes: Int = 0, logger: Logger) async throws -> Broker {
        let broker = Broker(storage: storage, clock: clock, commandLogBytes: commandLogBytes, executor: nil, logger: logger)
        var failure: TernError?
        do {
            while try await broker.runDueWork().more {}
        } catch {
            failure = error
        }
        if let failure {
            guard failure.code == .storageFull else { throw failure }
            logger.warning("storage is full: due work left to the maintenance loop", metadata: ["tern.error": "\(failure)"])
        }
        return broker
    }

    /// A broker whose commands go through `executor` (a replication group's log, in a
    /// cluster) instead of this node's writer. Due work is not run here: only the group's
    /// leader decides time (CLUSTER.md, "only the leader runs time"), in ``runMaintenance()``.
    /// - Parameter storage: the environment `executor` applies the commands to, which this
    ///   broker reads.
    public static func replicated(storage: Storage, clock: any TernClock, executor: any CommandExecutor, logger: Logger) -> Broker {
        Broker(storage: storage, clock: clock, commandLogBytes: 0, executor: executor, logger: logger)
    }

    /// Drops what this node keeps in memory about consumer groups (session timers, positions):
    /// a replication group calls it when leadership changes, since another leader may have
    /// changed the groups meanwhile; the next request reloads them from LMDB and every member's
    /// session timer starts again then (as a new Kafka group coordinator does after failover).
    public func forgetCoordinatorState() {
        topicState.groups.withLock { $0.removeAll() }
    }

    /// Drops what this node keeps in memory about the state after the whole state was replaced
    /// underneath it (a replica installed a snapshot): consumer-group coordinator state (as
    /// ``forgetCoordinatorState()``) and sticky partitions, and wakes every long poll and the
    /// maintenance loop so that they look at the new state. Everything else the broker knows
    /// it reads from LMDB on every request (queues, counts, FIFO groups, quota).
    public func didReplaceState() {
        topicState.forgetAll()
        signals.signalAll()
    }

    /// Reports the side effects of `outcome` (metrics) and wakes the long polls of queues
    /// that gained ready messages. A replication group calls it for every command it applies
    /// on this node, whoever proposed it.
    public func didApply(_ outcome: CommandOutcome) {
        observers.emit(tallyEvents(outcome.effects))
        if !outcome.effects.queuesWithNewMessages.isEmpty { signals.signal(outcome.effects.queuesWithNewMessages) }
    }

    /// Applies `command`, decided now, on the writer thread; reports its side effects
    /// (metrics) and wakes the long polls of queues that gained ready messages.
    /// - Throws: ``TernError``: what the command fails with, `StorageFull`, `Unavailable`.
    @discardableResult
    func execute(_ command: Command) async throws(TernError) -> CommandOutcome {
        let envelope = CommandEnvelope(time: clock.now, command: command)
        if let executor {
            // The group applies the command on every replica and calls didApply there.
            return try await executor.execute(envelope, grows: command.grows)
        }
        let machine = self.machine
        let outcome = try await perform(grows: command.grows) { txn in try machine.apply(envelope, in: txn) }
        didApply(outcome)
        return outcome
    }

    /// A command's result of the kind its command promised (anything else is a bug).
    static func unexpected(_ result: CommandResult) -> Never {
        preconditionFailure("unexpected command result \(result)")
    }

    // MARK: Queues

    /// Creates `name` (attributes from `patch` over the defaults) or updates it.
    /// - Returns: whether the queue was created, and its description.
    /// - Throws: ``TernError``: `InvalidAttribute`, `Conflict` (fifo changes).
    public func createOrUpdateQueue(_ name: QueueName, patch: QueueAttributes.Patch) async throws(TernError) -> (created: Bool, queue: QueueInfo) {
        guard case .queue(let created, let record, let oldest) = try await execute(.createOrUpdateQueue(name, patch)).result else {
            Self.unexpected(.queueDeleted(id: 0))
        }
        return (created, info(record, oldestSentAt: oldest))
    }

    /// All live queues in name order, with their counts.
    public func listQueues() throws(TernError) -> [QueueInfo] {
        let store = self.store
        return try reading { txn in
            try store.allRecords(in: txn).filter { !$0.deleted }.sorted { $0.name < $1.name }.map { record in
                self.info(record, oldestSentAt: try store.oldestSentAt(queue: record.id, in: txn))
            }
        }
    }

    /// One queue with its counts.
    /// - Throws: ``TernError`` `QueueNotFound`.
    public func describeQueue(_ name: QueueName) throws(TernError) -> QueueInfo {
        let store = self.store
        return try reading { txn in
            let record = try store.record(named: name, in: txn)
            return self.info(record, oldestSentAt: try store.oldestSentAt(queue: record.id, in: txn))
        }
    }

    /// Deletes `name` durably at once; its messages are removed in the background in small
    /// transactions (a queue re-created under the name starts empty).
    /// - Throws: ``TernError`` `QueueNotFound`.
    public func deleteQueue(_ name: QueueName) async throws(TernError) {
        try await execute(.deleteQueue(name))
        signals.signal([Self.maintenanceKey])
    }

    /// Remembers that the queue `name` was deleted now, for `keepMilliseconds` (a front end's
    /// rule on re-using names; ``DeletedQueueNames``), durably and, in a cluster, replicated.
    /// - Throws: ``TernError`` `InvalidParameter` past ``DeletedQueueNames/maxKeepMilliseconds``.
    public func noteDeletedQueue(_ name: QueueName, keepMilliseconds: UInt64) async throws(TernError) {
        _ = try await execute(.noteDeletedQueue(name, keepMilliseconds: keepMilliseconds))
    }

    /// When the queue `name` was deleted, while ``noteDeletedQueue(_:keepMilliseconds:)``
    /// keeps it remembered; nil otherwise.
    public func deletedRecently(_ name: QueueName) throws(TernError) -> Timestamp? {
        let names = DeletedQueueNames(storage: storage), now = clock.now
        return try reading { txn in try names.entry(name, at: now, in: txn)?.deletedAt }
    }

    /// Removes every message (ready, delayed, in flight) that was in `name` when the call
    /// started, atomically (decision 112): once this returns, none of them is delivered again,
    /// even across a crash, and their receipt handles get `ReceiptHandleStale`. The records are
    /// removed afterwards by the maintenance loop in chunks (resumed after a restart).
    /// - Returns: the number of messages purged.
    /// - Throws: ``TernError`` `QueueNotFound`.
    public func purgeQueue(_ name: QueueName) async throws(TernError) -> Int {
        let outcome = try await execute(.purgeQueue(name))
        guard case .queuePurged(_, let purged, _) = outcome.result else { Self.unexpected(outcome.result) }
        observers.emit(.purged(queue: name, count: purged))
        signals.signal([Self.maintenanceKey])
        return purged
    }

    /// Moves the ready messages of dead-letter queue `name` back to their source queues.
    /// - Returns: the number of messages moved.
    /// - Throws: ``TernError`` `QueueNotFound`.
    public func redrive(_ name: QueueName) async throws(TernError) -> Int {
        var moved = 0
        var resume: UInt64 = 0
        while true {
            let outcome = try await execute(.redrive(name, after: resume, limit: Self.chunkSize))
            guard case .redriven(let count, let next) = outcome.result else { Self.unexpected(outcome.result) }
            moved += count
            guard let next else { break }
            resume = next
        }
        observers.emit(.redriven(queue: name, count: moved))
        return moved
    }

    // MARK: Messages

    /// Stores `messages` in `name`, all or nothing, and answers once the commit is durable.
    /// - Returns: one ``SentMessage`` per message, in order.
    /// - Throws: ``TernError``: `QueueNotFound`, `MessageTooLarge`, `InvalidMessage`,
    ///   `InvalidParameter` (priority, delay), `QueueFull`, `StorageFull`.
    public func send(_ name: QueueName, _ messages: [OutgoingMessage]) async throws(TernError) -> [SentMessage] {
        var generator = BatchRandom()
        let outcome = try await execute(.send(name, messages, idSeed: generator.next()))
        guard case .sent(let sent, _, _) = outcome.result else { Self.unexpected(outcome.result) }
        observers.emit(.sent(queue: name, count: sent.count, bytes: messages.reduce(0) { $0 + $1.body.count }))
        if let due = sent.lazy.map(\.visibleAt).filter({ $0 > outcome.time }).min() { wakeMaintenance(ifEarlierThan: due) }
        return sent
    }

    /// Receives up to `maxMessages` messages, waiting up to `waitTime` seconds for the first
    /// one (long polling: a send wakes the waiter; the disk is not polled).
    /// - Parameters:
    ///   - maxMessages: 1–1,000.
    ///   - visibilityTimeout: seconds (0–43,200); nil = the queue's.
    ///   - waitTime: seconds, 0–20.
    ///   - autoAcknowledge: delete the messages as they are delivered (at-most-once).
    /// - Throws: ``TernError``: `QueueNotFound`, `InvalidParameter`.
    public func receive(_ name: QueueName, maxMessages: Int = 1, visibilityTimeout: Int? = nil, waitTime: Int = 0,
                        autoAcknowledge: Bool = false) async throws(TernError) -> [ReceivedMessage] {
        guard Self.batchSizeRange.contains(maxMessages) else {
            throw TernError(.invalidParameter, "batch_size must be 1–1000")
        }
        guard Self.waitTimeRange.contains(waitTime) else { throw TernError(.invalidParameter, "wait_time must be 0–20 seconds") }
        if let visibilityTimeout, !QueueAttributes.visibilityTimeoutRange.contains(visibilityTimeout) {
            throw TernError(.invalidParameter, "visibility_timeout must be 0–43200 seconds")
        }
        let store = self.store
        let record = try reading { txn in try store.record(named: name, in: txn) }
        let queue = record.id
        let timeout = visibilityTimeout ?? record.attributes.visibilityTimeout
        let deadline = clock.now.adding(seconds: waitTime)
        // Where this node decides time (alone, or leading its group), a receive that can find
        // nothing is not written: idle consumers' polls cost no commit and, in a cluster, no
        // replicated entry (SQS's empty receives, too, change nothing). Acknowledged sends are
        // applied here before their answer, so this read sees them.
        while true {
            let seen = signals.version(of: queue)
            if executor?.decidesTime ?? true {  // asked each time: leadership may move during a long poll
                let machine = self.machine, wallNow = clock.now
                let (possible, now) = try reading { txn -> (Bool, Timestamp) in
                    _ = try store.record(named: name, in: txn)  // QueueNotFound once it is deleted
                    // The time the receive would be applied at: command time never goes back.
                    let now = max(wallNow, try machine.log.appliedTime(in: txn))
                    return (try store.mayDeliver(queue: queue, at: now, in: txn), now)
                }
                if !possible {
                    if now >= deadline || Task.isCancelled { return [] }
                    await signals.wait(for: queue, seen: seen, until: deadline, clock: clock)
                    continue
                }
            }
            var generator = BatchRandom()
            let outcome = try await execute(.receive(name, maxMessages: maxMessages, visibilityTimeout: visibilityTimeout,
                                                     autoAcknowledge: autoAcknowledge, nonceSeed: generator.next()))
            guard case .received(var messages, let queueID) = outcome.result else { Self.unexpected(outcome.result) }
            let now = outcome.time
            if !messages.isEmpty && !autoAcknowledge {
                let delivered = messages
                messages = try reading { txn in try store.bodies(of: delivered, queue: queueID, in: txn) }
            }
            if !messages.isEmpty {
                observers.emit(.received(queue: name, count: messages.count, autoAcknowledged: autoAcknowledge))
                if autoAcknowledge {
                    observers.emit(.acknowledged(queue: name, secondsInQueue: messages.map { max(0, $0.sentAt.seconds(until: now)) }))
                }
                if !autoAcknowledge { wakeMaintenance(ifEarlierThan: now.adding(seconds: timeout)) }
                return messages
            }
            if now >= deadline || Task.isCancelled { return [] }
            await signals.wait(for: queue, seen: seen, until: deadline, clock: clock)
        }
    }

    /// Acknowledges (deletes) the message delivered with `receiptHandle`.
    /// - Throws: ``TernError``: `QueueNotFound`, `InvalidReceiptHandle` (malformed),
    ///   `ReceiptHandleStale` (superseded by a later receive, or the message is gone).
    public func acknowledge(_ name: QueueName, receiptHandle: String) async throws(TernError) {
        let handle = try ReceiptHandle(parsing: receiptHandle)
        let outcome = try await execute(.acknowledge(name, [handle]))
        guard case .acknowledged(let results) = outcome.result, let result = results.first else { Self.unexpected(outcome.result) }
        switch result {
        case .success(let sentAt):
            observers.emit(.acknowledged(queue: name, secondsInQueue: [max(0, sentAt.seconds(until: outcome.time))]))
        case .failure(let error):
            throw error
        }
    }

    /// Acknowledges a batch of deliveries of `name` in one write transaction, each handle
    /// independently (a malformed or stale one fails in its slot, the others apply; a handle
    /// named twice is stale the second time).
    /// - Returns: one entry per handle, in order: nil when deleted, else the error
    ///   (`InvalidReceiptHandle`, `ReceiptHandleStale`).
    /// - Throws: ``TernError`` `QueueNotFound`, `InvalidParameter` (more than 1,000 handles),
    ///   or a storage failure (nothing applied).
    public func acknowledge(_ name: QueueName, receiptHandles: [String]) async throws(TernError) -> [TernError?] {
        guard receiptHandles.count <= Self.batchSizeRange.upperBound else {
            throw TernError(.invalidParameter, "at most \(Self.batchSizeRange.upperBound) receipt handles per request")
        }
        var results = [TernError?](repeating: nil, count: receiptHandles.count)
        var parsed = [(index: Int, handle: ReceiptHandle)]()
        for (index, text) in receiptHandles.enumerated() {
            do throws(TernError) {
                parsed.append((index, try ReceiptHandle(parsing: text)))
            } catch {
                results[index] = error
            }
        }
        let store = self.store
        guard !parsed.isEmpty else {
            _ = try reading { txn in try store.record(named: name, in: txn) }   // QueueNotFound wins
            return results
        }
        let outcome = try await execute(.acknowledge(name, parsed.map(\.handle)))
        guard case .acknowledged(let outcomes) = outcome.result else { Self.unexpected(outcome.result) }
        let now = outcome.time
        var secondsInQueue = [Double]()
        secondsInQueue.reserveCapacity(outcomes.count)
        for (slot, outcome) in zip(parsed, outcomes) {
            switch outcome {
            case .success(let sentAt): secondsInQueue.append(max(0, sentAt.seconds(until: now)))
            case .failure(let error): results[slot.index] = error
            }
        }
        if !secondsInQueue.isEmpty { observers.emit(.acknowledged(queue: name, secondsInQueue: secondsInQueue)) }
        return results
    }

    /// Sets the visibility deadline of the delivery `receiptHandle` to now + `timeout` seconds
    /// (0 releases the message at once).
    /// - Throws: ``TernError``: `QueueNotFound`, `InvalidReceiptHandle`, `ReceiptHandleStale`,
    ///   `InvalidParameter` (timeout outside 0–43,200), `Conflict` (visibility already expired).
    public func changeVisibility(_ name: QueueName, receiptHandle: String, timeout: Int) async throws(TernError) {
        let handle = try ReceiptHandle(parsing: receiptHandle)
        let outcome = try await execute(.changeVisibility(name, handle, timeout: timeout))
        if timeout > 0 { wakeMaintenance(ifEarlierThan: outcome.time.adding(seconds: timeout)) }
    }

    /// Changes the visibility of a batch of deliveries of `name` in one command (one write
    /// transaction), each entry independently, as SQS's `ChangeMessageVisibilityBatch` does:
    /// a malformed, stale or expired handle or an out-of-range timeout fails in its slot, the
    /// others apply. `timeout` is in seconds from now, 0–43,200 (0 releases the message).
    /// - Returns: one entry per change, in order: nil when changed, else the error
    ///   (`InvalidReceiptHandle`, `ReceiptHandleStale`, `Conflict`, `InvalidParameter`).
    /// - Throws: ``TernError`` `QueueNotFound`, `InvalidParameter` (more than 1,000 entries),
    ///   or a storage failure (nothing applied).
    public func changeVisibility(_ name: QueueName, changes: [(receiptHandle: String, timeout: Int)]) async throws(TernError) -> [TernError?] {
        guard changes.count <= Self.batchSizeRange.upperBound else {
            throw TernError(.invalidParameter, "at most \(Self.batchSizeRange.upperBound) receipt handles per request")
        }
        var results = [TernError?](repeating: nil, count: changes.count)
        var parsed = [(index: Int, change: VisibilityChange)]()
        for (index, change) in changes.enumerated() {
            do throws(TernError) {
                parsed.append((index, VisibilityChange(handle: try ReceiptHandle(parsing: change.receiptHandle), timeout: change.timeout)))
            } catch {
                results[index] = error
            }
        }
        let store = self.store
        guard !parsed.isEmpty else {
            _ = try reading { txn in try store.record(named: name, in: txn) }   // QueueNotFound wins
            return results
        }
        let outcome = try await execute(.changeVisibilityBatch(name, parsed.map(\.change)))
        guard case .visibilityChangedBatch(let outcomes, _) = outcome.result else { Self.unexpected(outcome.result) }
        var earliest: Int?
        for (slot, error) in zip(parsed, outcomes) {
            if let error {
                results[slot.index] = error
            } else if slot.change.timeout > 0 {
                earliest = min(earliest ?? slot.change.timeout, slot.change.timeout)
            }
        }
        if let earliest { wakeMaintenance(ifEarlierThan: outcome.time.adding(seconds: earliest)) }
        return results
    }

    // MARK: Maintenance

    /// What one round of due work did.
    public struct DueWork: Sendable {
        /// Messages whose visibility deadline or delay was applied.
        public var processed: Int
        /// Messages moved to a dead-letter queue.
        public var deadLettered: Int
        /// Messages deleted because their retention passed.
        public var expired: Int
        /// Messages of deleted queues removed.
        public var swept: Int
        /// Whether a limit stopped the round (run again).
        public var more: Bool
    }

    /// Applies, in one transaction, what is due at the clock's current time: expired
    /// visibility timeouts (back to ready, or to the dead-letter queue), passed delays,
    /// passed retention; and removes one chunk of a deleted queue's messages.
    public func runDueWork() async throws(TernError) -> DueWork {
        // Halved after a full map refused a round (a smaller transaction fits the reserve),
        // doubled back after each round that fits.
        let limit = dueWorkLimit.withLock { $0 }
        let outcome: CommandOutcome
        do {
            outcome = try await execute(.tick(limit: limit))
            dueWorkLimit.withLock { $0 = min(Self.chunkSize, $0 * 2) }
        } catch {
            if error.code == .storageFull { dueWorkLimit.withLock { $0 = max(1, $0 / 2) } }
            throw error
        }
        guard case .tick(let report, let expired, let swept, let sweepMore) = outcome.result else { Self.unexpected(outcome.result) }
        let retention = try await runRetention()  // topics and FIFO dedup ids: Retention.swift
        return DueWork(processed: report.processed, deadLettered: report.deadLettered, expired: expired, swept: swept,
                       more: report.more || expired == limit || sweepMore || retention.more)
    }

    /// Runs due work whenever something becomes due (and at least every second, for
    /// retention), until the task is cancelled. ``TernServer`` runs this as a service.
    public func runMaintenance() async {
        let store = self.store
        var lastRound: Timestamp?
        var more = false  // the last round left work (sweep chunks, expiries): the next one runs at once
        while !Task.isCancelled {
            // While working, any new deadline signals the loop (its version check then skips the wait).
            scheduledWake.withLock { $0 = Timestamp(milliseconds: .max) }
            let seen = signals.version(of: Self.maintenanceKey)
            if let executor, !executor.decidesTime {
                // A follower: the leader runs due work; look again in a while.
                let wakeAt = clock.now.adding(milliseconds: Self.maintenanceIntervalMilliseconds)
                await signals.wait(for: Self.maintenanceKey, seen: seen, until: wakeAt, clock: clock)
                lastRound = nil  // a leader again later runs a round at once
                continue
            }
            let started = clock.now
            if executor != nil, !more, let lastRound, started < lastRound.adding(milliseconds: Self.idleRoundMilliseconds),
               let next = try? storage.read({ txn in try store.nextDueTime(in: txn) ?? Timestamp(milliseconds: .max) }), next > started {
                // Nothing due in this group yet: no round to replicate (decision 144).
                let wakeAt = min(next, started.adding(milliseconds: Self.maintenanceIntervalMilliseconds))
                scheduledWake.withLock { $0 = wakeAt }
                await signals.wait(for: Self.maintenanceKey, seen: seen, until: wakeAt, clock: clock)
                continue
            }
            lastRound = started
            more = false
            do {
                more = try await runDueWork().more
                if more { continue }
            } catch {
                logger.error("maintenance failed", metadata: ["tern.error": "\(error)"])
            }
            let now = clock.now
            var wakeAt = now.adding(milliseconds: Self.maintenanceIntervalMilliseconds)
            if let next = try? storage.read({ txn in try store.nextDueTime(in: txn) }), next < wakeAt { wakeAt = next }
            scheduledWake.withLock { $0 = wakeAt }
            if wakeAt > now {
                await signals.wait(for: Self.maintenanceKey, seen: seen, until: wakeAt, clock: clock)
            }
        }
    }

    // MARK: Helpers

    /// Wakes the maintenance loop when `deadline` comes before its next scheduled run.
    func wakeMaintenance(ifEarlierThan deadline: Timestamp) {
        if deadline < scheduledWake.withLock({ $0 }) { signals.signal([Self.maintenanceKey]) }
    }

    func info(_ record: QueueRecord, oldestSentAt: Timestamp?) -> QueueInfo {
        QueueInfo(name: record.name, attributes: record.attributes, counts: record.counts, createdAt: record.createdAt,
                  oldestSentAt: oldestSentAt)
    }

    /// Runs `body` in the group-commit writer and maps failures to ``TernError``.
    @discardableResult
    func perform<T: Sendable>(grows: Bool = false, _ body: @escaping @Sendable (WriteTransaction) throws -> T) async throws(TernError) -> T {
        do {
            return try await storage.write(grows: grows, body)
        } catch {
            throw Self.map(error, logger: logger)
        }
    }

    func reading<T>(_ body: (ReadTransaction) throws -> T) throws(TernError) -> T {
        do {
            return try storage.read(body)
        } catch {
            throw Self.map(error, logger: logger)
        }
    }

    static func map(_ error: any Error, logger: Logger) -> TernError {
        if let error = error as? TernError { return error }
        if let error = error as? StorageError {
            switch error.code {
            case .mapFull:
                return TernError(.storageFull, "storage is full: sends are refused until messages are acknowledged, purged or deleted")
            case .closed:
                return TernError(.unavailable, "the broker is shutting down")
            default:
                logger.error("storage failure", metadata: ["tern.error": "\(error)"])
                return TernError(.internalError, error.description)
            }
        }
        logger.error("unexpected failure", metadata: ["tern.error": "\(error)"])
        return TernError(.internalError, "\(error)")
    }
}
