import ArgumentParser
import Foundation
import TernClient
import TernCore

/// The exactly-once test program (hidden): reads `--input`, writes each body uppercased to
/// `--output`, acknowledging the input in the same transaction. Runs until killed, or until the
/// input has been empty for `--exit-when-idle` seconds.
struct Pipeline: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Consume-transform-produce with a TransactionalProducer (tests).",
                                                    shouldDisplay: false)

    @Option var server = "tern://127.0.0.1:7081"
    @Option var input = "input"
    @Option var output = "output"
    @Option var transactionalID = "uppercase"
    @Option(help: "Messages per transaction.") var batch = 50
    @Option(help: "Visibility timeout of received messages, seconds.") var visibilityTimeout = 5
    @Option(help: "Exit after this many seconds without input (default: never).") var exitWhenIdle: Double?

    func run() async throws {
        guard let (host, port) = TernClient.address(from: server) else { throw ValidationError("bad --server \(server)") }
        let client = TernClient(host: host, port: port)
        let producer = TransactionalProducer(client: client, transactionalID: transactionalID)
        var idleSince = ContinuousClock.now
        while true {
            var messages: [ReceivedMessage] = []
            do {
                messages = try await client.receive(from: input, maxMessages: batch, visibilityTimeout: visibilityTimeout, waitTime: 1)
            } catch {
                guard error.code == .unavailable else { throw error }
                try await Task.sleep(for: .milliseconds(100))
                continue
            }
            if messages.isEmpty {
                let idle: Duration = ContinuousClock.now - idleSince
                if let exitWhenIdle, idle > Duration.seconds(exitWhenIdle) { return }
                continue
            }
            idleSince = ContinuousClock.now
            do throws(TernError) {
                try await producer.begin()
                for message in messages {
                    await producer.send(OutgoingMessage(body: Array(String(decoding: message.body, as: UTF8.self).uppercased().utf8)), to: output)
                    await producer.acknowledge(message.receiptHandle, on: input)
                }
                try await producer.commit()
            } catch {
                // Nothing of the transaction was applied; the messages come back after their timeout.
                await producer.abort()
                if error.code == .producerFenced { throw error }
                FileHandle.standardError.write(Data("transaction failed: \(error)\n".utf8))
            }
        }
    }
}
