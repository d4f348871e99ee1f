import Synchronization
import Testing
import TernClient
import TernCore
import TernWire

/// Automatic visibility extension of `QueueConsumer`, against the in-process broker, with a
/// 2 s visibility timeout (the broker accepts 0–43,200 s).
@Suite struct AutoExtensionTests {
    /// Collects the failures reported to `onFailure`.
    final class Failures: Sendable {
        private let errors = Mutex<[TernError]>([])
        var all: [TernError] { errors.withLock { $0 } }
        func record(_ message: QueueMessage, _ error: TernError) { errors.withLock { $0.append(error) } }
    }

    /// Sends one message `body` to `queue` (created here) and receives it with a consumer of
    /// 2 s visibility timeout (or `visibilityTimeout`) whose automatic extension reports into
    /// the returned `Failures`; runs `body` while the consumer's iterator is alive (releasing
    /// it ends the extension).
    static func withOneExtendedMessage(
        _ client: TernClient, queue: String = "q", body text: String = "slow", visibilityTimeout: Int = 2,
        interval: Duration? = nil, maximum: Duration = .seconds(43_200),
        _ body: (QueueMessage, Failures) async throws -> Void
    ) async throws {
        try await client.createQueue(queue)
        _ = try await client.send([OutgoingMessage(body: Array(text.utf8))], to: queue)
        let failures = Failures()
        let consumer = QueueConsumer(client: client, queue: queue, batchSize: 1, visibilityTimeout: visibilityTimeout, waitTime: 1,
                                     autoExtend: .init(interval: interval, maximum: maximum, onFailure: { failures.record($0, $1) }))
        var iterator = consumer.makeAsyncIterator()
        let message = try #require(try await iterator.next())
        try await body(message, failures)
        withExtendedLifetime(iterator) {}
    }

    /// Polls `queue` from another client with 1 s long polls until it receives something or
    /// `seconds` have passed.
    static func pollAsAnotherConsumer(_ f: WireServerFixture, queue: String, seconds: Int64) async throws -> [ReceivedMessage] {
        let other = f.client()
        let deadline: ContinuousClock.Instant = ContinuousClock.now.advanced(by: Duration.seconds(seconds))
        var received: [ReceivedMessage] = []
        while received.isEmpty, ContinuousClock.now < deadline {
            received = try await other.receive(from: queue, maxMessages: 10, waitTime: 1)
        }
        await other.close()
        return received
    }

    /// Waits (at most `seconds`) until `message` is no longer extended.
    static func waitUntilNotExtended(_ message: QueueMessage, seconds: Int64) async throws {
        let deadline: ContinuousClock.Instant = ContinuousClock.now.advanced(by: Duration.seconds(seconds))
        while message.isAutoExtended, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    @Test func withAutoExtension_aMessageProcessedLongerThanItsVisibilityTimeout_staysInvisible_andTheAckSucceeds() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            try await Self.withOneExtendedMessage(client) { message, failures in
                #expect(message.isAutoExtended)

                // "Processing" for three visibility timeouts while another consumer polls the queue.
                let stolen = try await Self.pollAsAnotherConsumer(f, queue: "q", seconds: 6)
                #expect(stolen.isEmpty, "another consumer received the message being processed")

                try await message.ack()
                #expect(!message.isAutoExtended)
                #expect(try await client.describeQueue("q").counts.total == 0)
                #expect(failures.all.isEmpty)
            }
            await client.close()
        }
    }

    @Test func messageAcknowledgedInACommittedTransaction_isNoLongerExtended() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            try await client.createQueue("out")
            try await Self.withOneExtendedMessage(client, queue: "in", body: "x") { message, failures in
                let producer = TransactionalProducer(client: client, transactionalID: "t")
                try await producer.begin()
                await producer.acknowledge(message)
                await producer.send(OutgoingMessage(body: Array("X".utf8)), to: "out")
                #expect(message.isAutoExtended, "still extended while the transaction is open")
                _ = try await producer.commit()
                #expect(!message.isAutoExtended)
                #expect(try await client.describeQueue("in").counts.total == 0)
                #expect(failures.all.isEmpty, "no extension of the deleted message was attempted")
            }
            await client.close()
        }
    }

    @Test func withoutAutoExtension_aMessageProcessedLongerThanItsVisibilityTimeout_goesToAnotherConsumer() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            try await client.createQueue("q")
            _ = try await client.send([OutgoingMessage(body: Array("slow".utf8))], to: "q")
            var iterator = QueueConsumer(client: client, queue: "q", batchSize: 1, visibilityTimeout: 2, waitTime: 1).makeAsyncIterator()
            let message = try #require(try await iterator.next())
            #expect(!message.isAutoExtended)

            let stolen = try await Self.pollAsAnotherConsumer(f, queue: "q", seconds: 10)
            #expect(stolen.map(\.id) == [message.id])
            do {
                try await message.ack()
                Issue.record("acknowledged with a superseded receipt handle")
            } catch let error as TernError {
                #expect(error.code == .receiptHandleStale)
            }
            await client.close()
        }
    }

    @Test func autoExtension_endsAtItsMaximum_andTheMessageReturnsToTheQueue() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            try await Self.withOneExtendedMessage(client, maximum: .seconds(3)) { message, failures in
                let stolen = try await Self.pollAsAnotherConsumer(f, queue: "q", seconds: 15)
                #expect(stolen.map(\.id) == [message.id])
                #expect(!message.isAutoExtended)
                #expect(failures.all.isEmpty)
            }
            await client.close()
        }
    }

    @Test func failedExtension_isReported_andEndsTheExtensionOfThatMessage() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            try await Self.withOneExtendedMessage(client, body: "gone") { message, failures in
                // Deleted behind the consumer's back: the next extension finds a stale handle.
                try await client.acknowledge(message.receiptHandle, on: "q")
                try await Self.waitUntilNotExtended(message, seconds: 10)
                #expect(!message.isAutoExtended)
                #expect(failures.all.map(\.code) == [.receiptHandleStale])
            }
            await client.close()
        }
    }

    @Test func releasingTheIterator_endsTheExtension_andReleaseEndsItForOneMessage() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            try await client.createQueue("q")
            _ = try await client.send(["a", "b"].map { OutgoingMessage(body: Array($0.utf8)) }, to: "q")
            let consumer = QueueConsumer(client: client, queue: "q", batchSize: 2, visibilityTimeout: 30, waitTime: 1, autoExtend: .init())
            var first: QueueMessage?
            do {
                var iterator = consumer.makeAsyncIterator()
                let a = try #require(try await iterator.next())
                // The second message of the batch, not yet handed out, is extended too.
                let b = try #require(try await iterator.next())
                #expect(a.isAutoExtended && b.isAutoExtended)
                try await b.release()
                #expect(!b.isAutoExtended)
                #expect(a.isAutoExtended)
                first = a
                withExtendedLifetime(iterator) {}
            }
            let a = try #require(first)
            #expect(!a.isAutoExtended, "the iterator is gone: nothing extends the message any more")
            #expect(try await client.describeQueue("q").counts.ready == 1)
            await client.close()
        }
    }

    @Test func autoExtension_withTheQueuesVisibilityTimeout_readsItFromTheQueue() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            var patch = QueueAttributes.Patch()
            patch.visibilityTimeout = 2
            try await client.createQueue("q", patch: patch)
            _ = try await client.send([OutgoingMessage(body: Array("slow".utf8))], to: "q")
            var iterator = QueueConsumer(client: client, queue: "q", batchSize: 1, waitTime: 1, autoExtend: .init()).makeAsyncIterator()
            let message = try #require(try await iterator.next())
            let stolen = try await Self.pollAsAnotherConsumer(f, queue: "q", seconds: 5)
            #expect(stolen.isEmpty)
            try await message.ack()
            await client.close()
        }
    }

    @Test func extensionThatTimesOut_isRetried_whileTheMessageIsStillInvisible() async throws {
        try await WireServerFixture.with { f in
            let proxy = try await StallingProxy(upstreamPort: f.port)
            var settings = TernClient.Settings()
            // Generous figures so that a loaded machine does not time out a healthy call: the
            // first extension (at 2 s) is swallowed and times out at 3.5 s; its retry, a second
            // later over a new connection, lands well before the 8 s visibility timeout.
            settings.requestTimeout = .milliseconds(1500)
            let client = TernClient(host: "127.0.0.1", port: proxy.port, settings: settings)
            try await Self.withOneExtendedMessage(client, visibilityTimeout: 8, interval: .seconds(2)) { message, failures in
                // The broker stops answering until the first extension has been swallowed (and so
                // timed out with Unavailable); the retry goes over a new connection.
                proxy.flags.stalling = true
                let deadline: ContinuousClock.Instant = ContinuousClock.now.advanced(by: Duration.seconds(10))
                while proxy.flags.swallowed == 0, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                proxy.flags.stalling = false
                #expect(proxy.flags.swallowed >= 1)

                let stolen = try await Self.pollAsAnotherConsumer(f, queue: "q", seconds: 12)
                #expect(stolen.isEmpty, "another consumer received the message being processed")
                #expect(failures.all.isEmpty)
                try await message.ack()
            }
            await client.close()
            await proxy.shutdown()
        }
    }
}
