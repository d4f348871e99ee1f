public import TernCore

/// A message received from a queue, with the calls that settle it.
public struct QueueMessage: Sendable, Hashable {
    public let queue: String
    public let message: ReceivedMessage
    let client: TernClient

    public var id: MessageID { message.id }
    public var body: [UInt8] { message.body }
    /// The body as UTF-8 text.
    public var text: String { String(decoding: message.body, as: UTF8.self) }
    public var receiptHandle: String { message.receiptHandle }
    public var receiveCount: UInt32 { message.receiveCount }

    /// Deletes the message (it was processed).
    /// - Throws: ``TernError`` `ReceiptHandleStale` when the visibility timeout expired and another
    ///   consumer received it since.
    public func ack() async throws(TernError) {
        try await client.acknowledge(message.receiptHandle, on: queue)
    }

    /// Makes the message visible again at once, for another consumer.
    public func release() async throws(TernError) {
        try await client.changeVisibility(message.receiptHandle, on: queue, to: 0)
    }

    /// Keeps the message invisible for `seconds` from now.
    public func extendVisibility(by seconds: Int) async throws(TernError) {
        try await client.changeVisibility(message.receiptHandle, on: queue, to: seconds)
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

    public init(client: TernClient, queue: String, batchSize: Int = 10, visibilityTimeout: Int? = nil, waitTime: Int = 20) {
        self.client = client
        self.queue = queue
        self.batchSize = batchSize
        self.visibilityTimeout = visibilityTimeout
        self.waitTime = waitTime
    }

    public func makeAsyncIterator() -> Iterator { Iterator(consumer: self) }

    public struct Iterator: AsyncIteratorProtocol {
        let consumer: QueueConsumer
        var buffer: [ReceivedMessage] = []
        var failures = 0

        /// The next message.
        /// - Returns: nil only when the task is cancelled.
        /// - Throws: ``TernError`` from the broker other than `Unavailable` (which is retried).
        public mutating func next() async throws -> QueueMessage? {
            while buffer.isEmpty {
                if Task.isCancelled { return nil }
                do {
                    buffer = try await consumer.client.receive(
                        from: consumer.queue, maxMessages: consumer.batchSize, visibilityTimeout: consumer.visibilityTimeout,
                        waitTime: consumer.waitTime)
                    failures = 0
                } catch where error.code == .unavailable {
                    try? await consumer.client.backoff(attempt: failures)
                    failures += 1
                }
            }
            return QueueMessage(queue: consumer.queue, message: buffer.removeFirst(), client: consumer.client)
        }
    }
}
