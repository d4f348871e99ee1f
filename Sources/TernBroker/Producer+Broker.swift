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
        let now = clock.now
        let store = producerStore
        let (id, epoch) = try await perform { txn in try store.initProducer(transactionalID: transactionalID, at: now, in: txn) }
        return ProducerIdentity(producerID: id, epoch: epoch)
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
        let now = clock.now
        var generator = SystemRandomNumberGenerator()
        let seed = generator.next() as UInt64
        let prepared = messages.enumerated().map { index, message in
            QueueStore.PreparedMessage(id: ProducerBatch.messageID(seed: seed, index: index, at: now), message: message)
        }
        let store = producerStore
        let stampValues = (stamp.producer.producerID, stamp.producer.epoch, stamp.firstSequence)
        let (queue, result) = try await perform(grows: true) { txn in
            let result = try store.send(name, prepared, stamp: stampValues, idSeed: seed, at: now, in: txn)
            return (try store.queues.record(named: name, in: txn).id, result)
        }
        if !result.duplicate {
            observers.emit(.sent(queue: name, count: result.sent.count, bytes: messages.reduce(0) { $0 + $1.body.count }))
            if result.sent.contains(where: { $0.visibleAt <= now }) { signals.signal([queue]) }
        }
        return result
    }

    /// Deletes producers idle for longer than `idleSeconds` at the clock's time.
    /// - Returns: how many were deleted.
    public func expireProducers(idleSeconds: Int) async throws(TernError) -> Int {
        let cutoff = clock.now.adding(seconds: -idleSeconds)
        let store = producerStore
        var total = 0
        while true {
            let removed = try await perform { txn in try store.expire(activeBefore: cutoff, limit: Self.chunkSize, in: txn) }
            total += removed
            if removed < Self.chunkSize { return total }
        }
    }

    /// Runs ``expireProducers(idleSeconds:)`` every ``ProducerSettings/expiryInterval`` until cancelled.
    public func runProducerExpiry(settings: ProducerSettings) async {
        while !Task.isCancelled {
            do {
                _ = try await expireProducers(idleSeconds: settings.idleExpiration)
            } catch {
                logger.error("producer expiry failed", metadata: ["tern.error": "\(error)"])
            }
            try? await clock.sleep(until: clock.now.adding(seconds: settings.expiryInterval))
        }
    }
}
