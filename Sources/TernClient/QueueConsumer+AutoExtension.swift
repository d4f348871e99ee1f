import Logging
import Synchronization
public import TernCore

extension QueueConsumer {
    /// Automatic visibility extension: while a message received by a ``QueueConsumer`` is being
    /// processed (neither acknowledged nor released), the consumer keeps it invisible to other
    /// consumers by calling `ChangeVisibility` before its visibility timeout expires: the
    /// "visibility heartbeat" of SQS clients.
    ///
    /// ```swift
    /// let consumer = QueueConsumer(client: client, queue: "videos", visibilityTimeout: 30,
    ///                              autoExtend: .init(maximum: .seconds(3_600)))
    /// for try await message in consumer {
    ///     try await transcode(message.body)    // may take much longer than 30 s
    ///     try await message.ack()              // ends the extension
    /// }
    /// ```
    ///
    /// Every ``interval`` the consumer sets the message's visibility timeout to the consumer's
    /// visibility timeout (``QueueConsumer/visibilityTimeout``, or the queue's, read once when
    /// the iteration starts) again, counted from that moment, until ``maximum`` after the receive;
    /// the last extension only reaches that maximum, after which the message becomes visible
    /// again when it expires. Extension of a message ends when it is acknowledged (``QueueMessage/ack()``),
    /// released (``QueueMessage/release()``), extended by hand (``QueueMessage/extendVisibility(by:)``:
    /// the caller then owns its visibility) or ``QueueMessage/stopAutoExtension()`` is called, and
    /// for every message when the iteration ends (the loop is left and the iterator released, or
    /// `next()` sees its task cancelled). Messages received in a batch and not yet handed out
    /// are extended too, so that none expires in the buffer.
    ///
    /// A failed extension ends the extension of that message and is reported to ``onFailure``
    /// and logged (warning) through the client's logger; it never throws into the loop. The usual
    /// failure is ``TernError`` `ReceiptHandleStale`: the message expired before the extension
    /// (the process was paused longer than the visibility timeout), was received by another
    /// consumer, or was deleted. `Unavailable` (a lost connection) is retried every second while
    /// the message is still invisible, then reported.
    ///
    /// A message acknowledged through ``TransactionalProducer/acknowledge(_:)-(QueueMessage)``
    /// stops being extended when the transaction commits (acknowledged by receipt handle alone:
    /// call ``QueueMessage/stopAutoExtension()`` after `commit()`).
    /// Ignored when the visibility timeout is 0 seconds.
    public struct AutoExtension: Sendable {
        /// Time between two extensions of a message; nil = a third of the visibility timeout.
        /// Keep it well below the visibility timeout: an extension must reach the broker before
        /// the previous one expires.
        public var interval: Duration?
        /// How long after its receive a message is kept invisible at most. Default 12 h (the
        /// limit of SQS's visibility timeout and of Tern's `visibility_timeout`, 43,200 s).
        public var maximum: Duration
        /// Called, from the consumer's extension task, with the message whose extension failed
        /// and the error; extension of that message has ended. Keep it short.
        public var onFailure: (@Sendable (QueueMessage, TernError) -> Void)?

        public init(interval: Duration? = nil, maximum: Duration = .seconds(43_200),
                    onFailure: (@Sendable (QueueMessage, TernError) -> Void)? = nil) {
            self.interval = interval
            self.maximum = maximum
            self.onFailure = onFailure
        }
    }
}

/// Keeps the messages of one ``QueueConsumer`` iteration invisible while they are processed:
/// one task (``run()``) holds a deadline per message and sleeps until the earliest; when it is
/// due it sends the extensions that are due, concurrently, as child tasks of that one task.
///
/// The task is unstructured because it must run while the caller processes a message, between
/// two `next()` calls, and an `AsyncIterator` cannot own child tasks that outlive `next()`. It is
/// one per iteration, never one per message, and ends when ``cancel()`` is called: by `next()`
/// when its task is cancelled, and by ``ExtensionTask``'s `deinit` when the iterator is released.
final class VisibilityExtender: Sendable {
    private struct Entry {
        var message: ReceivedMessage
        /// When the next extension is due.
        var due: ContinuousClock.Instant
        /// Until when the broker keeps the message invisible (as far as this side knows).
        var visibleUntil: ContinuousClock.Instant
        /// The receive time plus ``AutoExtension/maximum``.
        var limit: ContinuousClock.Instant
    }

    private struct State {
        /// By receipt handle.
        var entries: [String: Entry] = [:]
        /// The task, while it waits for a first message.
        var idle: CheckedContinuation<Void, Never>?
        var cancelled = false
    }

    private enum Step {
        case extend([Entry])
        case sleep(until: ContinuousClock.Instant)
        case park
        case finish
    }

    let client: TernClient
    let queue: String
    /// Seconds, at least 1.
    let visibilityTimeout: Int
    let interval: Duration
    let maximum: Duration
    let onFailure: (@Sendable (QueueMessage, TernError) -> Void)?
    /// The pause before retrying an extension that failed with `Unavailable`.
    private let retryPause: Duration
    private let state = Mutex(State())

    init(client: TernClient, queue: String, visibilityTimeout: Int, settings: QueueConsumer.AutoExtension) {
        self.client = client
        self.queue = queue
        self.visibilityTimeout = max(1, visibilityTimeout)
        let third: Duration = Duration.seconds(Int64(max(1, visibilityTimeout))) / 3
        let interval: Duration = settings.interval ?? third
        self.interval = max(interval, Duration.milliseconds(10))
        self.maximum = settings.maximum
        self.onFailure = settings.onFailure
        self.retryPause = min(self.interval, Duration.seconds(1))
    }

    /// Starts extending `messages`, received (the receive call started) at `receivedAt`.
    func track(_ messages: [ReceivedMessage], receivedAt: ContinuousClock.Instant) {
        guard !messages.isEmpty else { return }
        let due: ContinuousClock.Instant = receivedAt.advanced(by: interval)
        let visibleUntil: ContinuousClock.Instant = receivedAt.advanced(by: Duration.seconds(Int64(visibilityTimeout)))
        let limit: ContinuousClock.Instant = receivedAt.advanced(by: maximum)
        let idle = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.cancelled else { return nil }
            for message in messages {
                state.entries[message.receiptHandle] = Entry(message: message, due: due, visibleUntil: visibleUntil, limit: limit)
            }
            defer { state.idle = nil }
            return state.idle
        }
        idle?.resume()
    }

    /// Stops extending the message with `receiptHandle` (no effect when it is not extended).
    func stop(_ receiptHandle: String) {
        state.withLock { _ = $0.entries.removeValue(forKey: receiptHandle) }
    }

    /// Stops extending every message and ends ``run()``.
    func cancel() {
        let idle = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.cancelled = true
            state.entries = [:]
            defer { state.idle = nil }
            return state.idle
        }
        idle?.resume()
    }

    /// Whether `receiptHandle` is being extended (for tests).
    func isExtending(_ receiptHandle: String) -> Bool {
        state.withLock { $0.entries[receiptHandle] != nil }
    }

    /// The extension loop; returns after ``cancel()`` or when its task is cancelled.
    func run() async {
        await withTaskCancellationHandler {
            while true {
                switch nextStep(now: ContinuousClock.now) {
                case .finish:
                    return
                case .park:
                    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                        let resumeNow = state.withLock { state -> Bool in
                            if state.cancelled || !state.entries.isEmpty { return true }
                            state.idle = continuation
                            return false
                        }
                        if resumeNow { continuation.resume() }
                    }
                case .sleep(let deadline):
                    do { try await Task.sleep(until: deadline, clock: .continuous) } catch { return }
                case .extend(let entries):
                    await withTaskGroup(of: Void.self) { group in
                        for entry in entries {
                            group.addTask { await self.extend(entry) }
                        }
                    }
                }
            }
        } onCancel: {
            self.cancel()
        }
    }

    private func nextStep(now: ContinuousClock.Instant) -> Step {
        state.withLock { state in
            if state.cancelled { return .finish }
            guard let earliest = state.entries.values.map(\.due).min() else { return .park }
            if earliest > now { return .sleep(until: earliest) }
            return .extend(state.entries.values.filter { $0.due <= now })
        }
    }

    /// Sends one extension and schedules the next, ends the extension at the maximum, or
    /// handles a failure.
    private func extend(_ entry: Entry) async {
        let handle = entry.message.receiptHandle
        let started = ContinuousClock.now
        let remaining: Duration = entry.limit - started
        let seconds = min(visibilityTimeout, Int(remaining.components.seconds))
        guard seconds >= 1 else {
            stop(handle)  // the maximum is reached: the message becomes visible when it expires
            return
        }
        let failure: TernError?
        do {
            try await client.changeVisibility(handle, on: queue, to: seconds)
            failure = nil
        } catch {
            failure = error
        }
        let now = ContinuousClock.now
        let report: TernError? = state.withLock { state -> TernError? in
            // Acknowledged, released or stopped meanwhile: nothing to schedule or report.
            guard var current = state.entries[handle] else { return nil }
            if let failure {
                let retryAt: ContinuousClock.Instant = now.advanced(by: retryPause)
                if failure.code == .unavailable, retryAt < current.visibleUntil {
                    current.due = retryAt
                    state.entries[handle] = current
                    return nil
                }
                state.entries[handle] = nil
                return failure
            }
            current.visibleUntil = started.advanced(by: Duration.seconds(Int64(seconds)))
            if seconds < visibilityTimeout {
                state.entries[handle] = nil  // this extension reached the maximum
            } else {
                current.due = started.advanced(by: interval)
                state.entries[handle] = current
            }
            return nil
        }
        guard let report else { return }
        client.logger.warning("automatic visibility extension failed", metadata: [
            "tern.queue": "\(queue)", "tern.message": "\(entry.message.id)", "tern.error": "\(report)",
        ])
        onFailure?(QueueMessage(queue: queue, message: entry.message, client: client), report)
    }
}

/// Runs a ``VisibilityExtender`` for one iteration of a ``QueueConsumer`` and ends it when the
/// iterator that owns this object is released.
final class ExtensionTask: Sendable {
    let extender: VisibilityExtender
    private let task: Task<Void, Never>

    init(_ extender: VisibilityExtender) {
        self.extender = extender
        // Captures the extender only, never `self`: releasing the iterator runs `deinit`.
        task = Task { await extender.run() }
    }

    func cancel() {
        extender.cancel()
        task.cancel()
    }

    deinit {
        cancel()
    }
}
