public import TernCore

/// A message received from a queue, with the calls that settle it.
public struct QueueMessage: Sendable, Hashable {
    public let queue: String
    public let message: ReceivedMessage
    let client: TernClient
    /// The automatic extension of the consumer that handed the message out, if any.
    var extender: VisibilityExtender? = nil

    public var id: MessageID { message.id }
    public var body: [UInt8] { message.body }
    /// The body as UTF-8 text.
    public var text: String { String(decoding: message.body, as: UTF8.self) }
    public var receiptHandle: String { message.receiptHandle }
    public var receiveCount: UInt32 { message.receiveCount }

    /// Deletes the message (it was processed). Ends its automatic extension first, if any,
    /// also when the acknowledgement then fails.
    /// - Throws: ``TernError`` `ReceiptHandleStale` when the visibility timeout expired and another
    ///   consumer received it since; `Unavailable` when the connection failed or the broker did
    ///   not answer in time (the message may or may not have been deleted).
    public func ack() async throws(TernError) {
        stopAutoExtension()
        try await client.acknowledge(message.receiptHandle, on: queue)
    }

    /// Makes the message visible again at once, for another consumer. Ends its automatic
    /// extension first, if any.
    /// - Throws: ``TernError`` `ReceiptHandleStale` when the message expired and was received
    ///   again or is gone; `Unavailable` as for ``ack()``.
    public func release() async throws(TernError) {
        stopAutoExtension()
        try await client.changeVisibility(message.receiptHandle, on: queue, to: 0)
    }

    /// Keeps the message invisible for `seconds` from now (0–43,200; 0 releases it). Ends its
    /// automatic extension, if any: from now on the caller owns its visibility.
    /// - Throws: ``TernError`` `ReceiptHandleStale` when the message expired and was received
    ///   again or is gone; `InvalidParameter` for more than 43,200 s; `Unavailable` as for ``ack()``.
    public func extendVisibility(by seconds: Int) async throws(TernError) {
        stopAutoExtension()
        try await client.changeVisibility(message.receiptHandle, on: queue, to: seconds)
    }

    /// Ends the automatic extension of this message (``QueueConsumer/AutoExtension``) without
    /// settling it: it becomes visible again when its current visibility timeout expires. No
    /// effect when the message is not extended. Call it after committing a
    /// ``TransactionalProducer`` that acknowledged the message.
    public func stopAutoExtension() {
        extender?.stop(message.receiptHandle)
    }

    /// Whether the message's visibility is being extended automatically.
    public var isAutoExtended: Bool {
        extender?.isExtending(message.receiptHandle) ?? false
    }

    public static func == (lhs: QueueMessage, rhs: QueueMessage) -> Bool { lhs.queue == rhs.queue && lhs.message == rhs.message }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(queue)
        hasher.combine(message)
    }
}

/// The messages of a queue as an `AsyncSequence`: long-polls in batches and yields one message
/// at a time; reconnects after a lost connection. The sequence never ends on its own; break out
/// of the loop or cancel the task to stop.
///
/// ```swift
/// for try await message in QueueConsumer(client: client, queue: "jobs", batchSize: 10) {
///     try await handle(message.body)
///     try await message.ack()
/// }
/// ```
///
/// Messages received but not yet yielded when the loop stops stay invisible until their
/// visibility timeout expires, then return to the queue.
///
/// With ``autoExtend`` set, messages stay invisible while they are processed, however long
/// that takes (up to ``AutoExtension/maximum``): see ``AutoExtension``.
public struct QueueConsumer: AsyncSequence, Sendable {
    public typealias Element = QueueMessage

    public let client: TernClient
    public let queue: String
    /// Messages per receive, 1–1,000.
    public let batchSize: Int
    /// Seconds; nil = the queue's.
    public let visibilityTimeout: Int?
    /// Seconds each receive waits for a first message, 1–20.
    public let waitTime: Int
    /// Automatic visibility extension of the messages handed out; nil = none (the default).
    public let autoExtend: AutoExtension?

    /// - Parameters:
    ///   - batchSize: messages per receive, 1–1,000.
    ///   - visibilityTimeout: seconds, 0–43,200; nil = the queue's.
    ///   - waitTime: seconds each receive waits for a first message, 1–20.
    ///   - autoExtend: keeps messages invisible while they are processed; nil = off.
    public init(client: TernClient, queue: String, batchSize: Int = 10, visibilityTimeout: Int? = nil, waitTime: Int = 20,
                autoExtend: AutoExtension? = nil) {
        self.client = client
        self.queue = queue
        self.batchSize = batchSize
        self.visibilityTimeout = visibilityTimeout
        self.waitTime = waitTime
        self.autoExtend = autoExtend
    }

    public func makeAsyncIterator() -> Iterator { Iterator(consumer: self) }

    public struct Iterator: AsyncIteratorProtocol {
        let consumer: QueueConsumer
        var buffer: [ReceivedMessage] = []
        var failures = 0
        /// The automatic extension, from the first receive on (when ``QueueConsumer/autoExtend`` is set).
        var extensionTask: ExtensionTask?
        var extensionChecked = false

        /// The next message.
        /// - Returns: nil only when the task is cancelled (automatic extension then ends).
        /// - Throws: ``TernError`` from the broker other than `Unavailable` (which is retried).
        public mutating func next() async throws -> QueueMessage? {
            while buffer.isEmpty {
                if Task.isCancelled {
                    extensionTask?.cancel()
                    return nil
                }
                do {
                    buffer = try await receive()
                    failures = 0
                } catch where error.code == .unavailable {
                    try? await consumer.client.backoff(attempt: failures)
                    failures += 1
                }
            }
            return QueueMessage(queue: consumer.queue, message: buffer.removeFirst(), client: consumer.client,
                                extender: extensionTask?.extender)
        }

        /// Receives a batch; starts the automatic extension first when it is set and not started,
        /// and hands it the batch.
        private mutating func receive() async throws(TernError) -> [ReceivedMessage] {
            if !extensionChecked, let autoExtend = consumer.autoExtend {
                let seconds: Int
                if let visibilityTimeout = consumer.visibilityTimeout {
                    seconds = visibilityTimeout
                } else {
                    seconds = try await consumer.client.describeQueue(consumer.queue).attributes.visibilityTimeout
                }
                if seconds > 0 {
                    extensionTask = ExtensionTask(VisibilityExtender(client: consumer.client, queue: consumer.queue,
                                                                     visibilityTimeout: seconds, settings: autoExtend))
                }
                extensionChecked = true
            }
            let started = ContinuousClock.now
            let messages = try await consumer.client.receive(
                from: consumer.queue, maxMessages: consumer.batchSize, visibilityTimeout: consumer.visibilityTimeout,
                waitTime: consumer.waitTime)
            extensionTask?.extender.track(messages, receivedAt: started)
            return messages
        }
    }
}
