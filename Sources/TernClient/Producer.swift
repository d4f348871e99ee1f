public import TernCore
import TernWire

/// Sends messages to queues and topics in batches, with retries that never store a message twice.
///
/// ```swift
/// let producer = Producer(client: client)
/// let sent = try await producer.send(OutgoingMessage(body: Array("hello".utf8)), to: "jobs")
/// print(sent.id)   // durable once send returns
/// let stored = try await producer.produce(Array("GET /".utf8), key: Array("host-1".utf8), to: "logs")
/// print(stored.partition, stored.offset)
/// ```
///
/// Messages for one queue or topic are collected while the previous batch to it is in flight,
/// or for up to ``Settings/linger``, and sent as one batch of up to ``Settings/maxBatchBytes``.
/// With ``Settings/idempotent`` (the default) the producer takes a producer id from the broker
/// and stamps each batch with its sequence numbers: after a lost connection the same batch is
/// sent again, and the broker stores it only once (duplicate → original result). One batch per
/// queue or topic is in flight at a time, so sequences arrive in order.
public actor Producer {
    public struct Settings: Sendable {
        /// How long a message may wait for more to fill its batch. Default 2 ms.
        public var linger: Duration = .milliseconds(2)
        /// The largest batch, in body bytes. Default 1 MiB.
        public var maxBatchBytes: Int = 1 << 20
        /// The most messages in a batch (the broker accepts up to 1,000... and more; keep it
        /// at or below 1,000 for predictable latency). Default 1,000.
        public var maxBatchMessages: Int = 1000
        /// Idempotent retries (on by default).
        public var idempotent = true
        /// How often a batch is sent again after a lost connection before its messages fail.
        /// Default 100 (with backoff up to 2 s, several minutes).
        public var maxRetries = 100
        public init() {}
    }

    /// Where a batch goes: sequences are kept per queue and per topic, as the broker keeps them.
    private enum Destination: Hashable {
        case queue(String)
        case topic(String)
    }

    private enum Item {
        case message(OutgoingMessage)
        case record(TopicMessage)

        var bytes: Int {
            switch self {
            case .message(let message): message.body.count
            case .record(let record): record.value.count + (record.key?.count ?? 0)
            }
        }
    }

    private enum Stored {
        case sent(SentMessage)
        case produced(TopicOffset)
    }

    private struct Pending {
        var item: Item
        var continuation: CheckedContinuation<Stored, any Error>
    }

    private struct QueueState {
        var pending: [Pending] = []
        var pendingBytes = 0
        var nextSequence: UInt64 = 0
        var inFlight = false
        var lingerScheduled = false
    }

    public let client: TernClient
    public let settings: Settings
    private var queues: [Destination: QueueState] = [:]
    private var identity: (producerID: UInt64, epoch: UInt32)?

    public init(client: TernClient, settings: Settings = Settings()) {
        self.client = client
        self.settings = settings
    }

    /// Sends `message` to `queue` in the next batch.
    /// - Returns: the message's id and sequence, once its batch is durable.
    /// - Throws: ``TernError``: the broker's error for the batch (`QueueNotFound`,
    ///   `MessageTooLarge`, … — every message of that batch fails), or `Unavailable` after
    ///   ``Settings/maxRetries`` lost connections.
    public func send(_ message: OutgoingMessage, to queue: String) async throws -> SentMessage {
        guard case .sent(let sent) = try await enqueue(.message(message), to: .queue(queue)) else {
            throw TernError(.internalError, "a queue send was answered with a topic offset")
        }
        return sent
    }

    /// Appends a record to `topic` in the next batch: with `partition` there, with a `key` to
    /// Kafka's murmur2 partition for the key, otherwise to the batch's sticky partition.
    /// - Returns: the record's partition and offset, once its batch is durable.
    /// - Throws: ``TernError``: the broker's error for the batch (`TopicNotFound`,
    ///   `MessageTooLarge` for key + value above 1 MiB, … — every record of the batch fails),
    ///   or `Unavailable` after ``Settings/maxRetries`` lost connections.
    public func produce(_ value: [UInt8], key: [UInt8]? = nil, partition: Int? = nil, to topic: String) async throws -> TopicOffset {
        guard case .produced(let offset) = try await enqueue(.record(TopicMessage(key: key, value: value, partition: partition)), to: .topic(topic)) else {
            throw TernError(.internalError, "a topic produce was answered with a queue message")
        }
        return offset
    }

    private func enqueue(_ item: Item, to destination: Destination) async throws -> Stored {
        try await withCheckedThrowingContinuation { continuation in
            var state = queues[destination, default: QueueState()]
            state.pending.append(Pending(item: item, continuation: continuation))
            state.pendingBytes += item.bytes
            queues[destination] = state
            schedule(destination)
        }
    }

    /// Sends `body` with default priority and delay.
    public func send(_ body: [UInt8], to queue: String) async throws -> SentMessage {
        try await send(OutgoingMessage(body: body), to: queue)
    }

    private func schedule(_ queue: Destination) {
        guard var state = queues[queue], !state.inFlight, !state.pending.isEmpty else { return }
        let full = state.pendingBytes >= settings.maxBatchBytes || state.pending.count >= settings.maxBatchMessages
        if full || settings.linger == .zero {
            startBatch(queue)
        } else if !state.lingerScheduled {
            state.lingerScheduled = true
            queues[queue] = state
            let linger = settings.linger
            Task {
                try? await Task.sleep(for: linger)
                self.lingerExpired(queue)
            }
        }
    }

    private func lingerExpired(_ queue: Destination) {
        queues[queue]?.lingerScheduled = false
        if queues[queue]?.inFlight == false { startBatch(queue) }
    }

    private func startBatch(_ queue: Destination) {
        guard var state = queues[queue], !state.inFlight, !state.pending.isEmpty else { return }
        var count = 0, bytes = 0
        for item in state.pending {
            if count > 0 && (count >= settings.maxBatchMessages || bytes + item.item.bytes > settings.maxBatchBytes) { break }
            count += 1
            bytes += item.item.bytes
        }
        let batch = Array(state.pending.prefix(count))
        state.pending.removeFirst(count)
        state.pendingBytes -= bytes
        state.inFlight = true
        let firstSequence = state.nextSequence
        state.nextSequence += UInt64(count)
        queues[queue] = state
        Task { await self.deliver(batch, to: queue, firstSequence: firstSequence) }
    }

    private func deliver(_ batch: [Pending], to queue: Destination, firstSequence initialSequence: UInt64) async {
        var firstSequence = initialSequence
        var attempt = 0
        var outcome: Result<[Stored], TernError>
        while true {
            do throws(TernError) {
                var stamp: WireProducerStamp?
                if settings.idempotent {
                    let identity = try await producerIdentity()
                    stamp = WireProducerStamp(producerID: identity.producerID, epoch: identity.epoch, firstSequence: firstSequence)
                }
                outcome = .success(try await call(batch, to: queue, stamp: stamp))
                break
            } catch {
                if error.code == .unknownProducer && settings.idempotent && attempt < settings.maxRetries {
                    // The producer expired: start a new one (its sequences begin at 0).
                    identity = nil
                    resetSequences()
                    firstSequence = 0
                    queues[queue]?.nextSequence = UInt64(batch.count)
                    attempt += 1
                    continue
                }
                if error.code == .unavailable && attempt < settings.maxRetries && settings.idempotent {
                    try? await client.backoff(attempt: attempt)
                    attempt += 1
                    continue
                }
                outcome = .failure(error)
                break
            }
        }
        finish(batch, queue: queue, firstSequence: firstSequence, outcome: outcome)
    }

    /// One batch as a `Send` or a `Produce` request.
    private func call(_ batch: [Pending], to destination: Destination, stamp: WireProducerStamp?) async throws(TernError) -> [Stored] {
        switch destination {
        case .queue(let queue):
            let messages = batch.compactMap { if case .message(let message) = $0.item { message } else { nil } }
            guard case .sent(let sent, _) = try await client.call(.send(queue: queue, producer: stamp, messages: messages)) else {
                throw client.unexpected()
            }
            return sent.map { .sent($0) }
        case .topic(let topic):
            let records = batch.compactMap { if case .record(let record) = $0.item { record } else { nil } }
            guard case .produced(let offsets, _) = try await client.call(.produce(topic: topic, producer: stamp, messages: records)) else {
                throw client.unexpected()
            }
            return offsets.map { .produced($0) }
        }
    }

    private func finish(_ batch: [Pending], queue: Destination, firstSequence: UInt64, outcome: Result<[Stored], TernError>) {
        switch outcome {
        case .success(let sent):
            for (item, result) in zip(batch, sent) { item.continuation.resume(returning: result) }
        case .failure(let error):
            // Nothing of the batch was stored: give its sequence numbers back.
            if queues[queue]?.nextSequence == firstSequence + UInt64(batch.count) { queues[queue]?.nextSequence = firstSequence }
            for item in batch { item.continuation.resume(throwing: error) }
        }
        queues[queue]?.inFlight = false
        schedule(queue)
    }

    private func resetSequences() {
        for key in queues.keys where queues[key]?.inFlight == false { queues[key]?.nextSequence = 0 }
    }

    private func producerIdentity() async throws(TernError) -> (producerID: UInt64, epoch: UInt32) {
        if let identity { return identity }
        guard case .producer(let id, let epoch) = try await client.call(.initProducer(transactionalID: nil)) else {
            throw client.unexpected()
        }
        identity = (id, epoch)
        return (id, epoch)
    }
}
