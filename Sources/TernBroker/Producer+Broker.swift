public import TernCore

/// A producer id and epoch issued by ``Broker/initProducer(transactionalID:)``.
public struct ProducerIdentity: Sendable, Hashable {
    public var producerID: UInt64
    public var epoch: UInt32
    public init(producerID: UInt64, epoch: UInt32) {
        self.producerID = producerID
        self.epoch = epoch
    }
}

/// The identity of an idempotent send: the producer, its epoch and the sequence of the batch's
/// first message in this producer's stream to the queue.
public struct ProducerStamp: Sendable, Hashable {
    public var producer: ProducerIdentity
    public var firstSequence: UInt64
    public init(producer: ProducerIdentity, firstSequence: UInt64) {
        self.producer = producer
        self.firstSequence = firstSequence
    }
}

extension Broker {
    /// Settings of idempotent producers.
    public struct ProducerSettings: Sendable {
        /// How long a producer may stay idle (no send, no commit) before its state is deleted,
        /// in seconds. Default 604,800 (7 days, Kafka's `transactional.id.expiration.ms`).
        public var idleExpiration: Int = 604_800
        /// How often the expiry runs, in seconds. Default 60.
        public var expiryInterval: Int = 60
        public init() {}
    }

    var producerStore: ProducerStore { ProducerStore(storage: storage) }

    /// Issues a producer id and epoch (see ``ProducerStore/initProducer(transactionalID:at:in:)``):
    /// with a transactional id, the next epoch of that id's producer, which fences earlier holders.
    /// - Throws: ``TernError`` `InvalidParameter` for a bad transactional id.
    public func initProducer(transactionalID: String?) async throws(TernError) -> ProducerIdentity {
        let outcome = try await execute(.initProducer(transactionalID: transactionalID))
        guard case .producer(let identity) = outcome.result else { Self.unexpected(outcome.result) }
        return identity
    }

    /// Checks that `producer` may write: it exists and `epoch` is its current epoch.
    /// - Throws: ``TernError`` `UnknownProducer` or `ProducerFenced`.
    public func checkProducer(_ producer: ProducerIdentity) throws(TernError) {
        let store = producerStore
        _ = try reading { txn in try store.current(producer.producerID, epoch: producer.epoch, in: txn) }
    }

    /// Stores `messages` in `name` once, however often the same stamped batch is retried.
    /// - Returns: the sent messages (the original ones for a duplicate) and whether it was a duplicate.
    /// - Throws: ``TernError``: `UnknownProducer`, `ProducerFenced`, `OutOfOrderSequence`, and
    ///   what ``send(_:_:)`` throws.
    public func send(_ name: QueueName, _ messages: [OutgoingMessage], producer stamp: ProducerStamp) async throws(TernError) -> (sent: [SentMessage], duplicate: Bool) {
        guard !messages.isEmpty else { throw TernError(.invalidParameter, "a send needs at least one message") }
        var generator = BatchRandom()
        let outcome = try await execute(.sendIdempotent(name, messages, stamp: stamp, idSeed: generator.next()))
        guard case .sent(let sent, let duplicate, _) = outcome.result else { Self.unexpected(outcome.result) }
        if !duplicate {
            observers.emit(.sent(queue: name, count: sent.count, bytes: messages.reduce(0) { $0 + $1.body.count }))
            if let due = sent.lazy.map(\.visibleAt).filter({ $0 > outcome.time }).min() { wakeMaintenance(ifEarlierThan: due) }
        }
        return (sent, duplicate)
    }

    /// Deletes producers idle for longer than `idleSeconds` at the command time.
    /// - Returns: how many were deleted.
    public func expireProducers(idleSeconds: Int) async throws(TernError) -> Int {
        var total = 0
        while true {
            let outcome = try await execute(.expireProducers(idleSeconds: idleSeconds, limit: Self.chunkSize))
            guard case .producersExpired(let removed) = outcome.result else { Self.unexpected(outcome.result) }
            total += removed
            if removed < Self.chunkSize { return total }
        }
    }

    /// Runs ``expireProducers(idleSeconds:)`` every ``ProducerSettings/expiryInterval`` until cancelled.
    public func runProducerExpiry(settings: ProducerSettings) async {
        while !Task.isCancelled {
            do {
                // In a cluster only the leader decides time-driven commands.
                if executor?.decidesTime ?? true { _ = try await expireProducers(idleSeconds: settings.idleExpiration) }
            } catch {
                logger.error("producer expiry failed", metadata: ["tern.error": "\(error)"])
            }
            try? await clock.sleep(until: clock.now.adding(seconds: settings.expiryInterval))
        }
    }
}
