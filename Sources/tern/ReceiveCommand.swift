import ArgumentParser
import Foundation

/// `tern receive QUEUE`: receive messages and print one body per line.
struct Receive: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Receive messages and print their bodies, one per line.",
        discussion: """
            Receives up to --max messages in calls of at most 1000, stopping early when a call comes \
            back empty (after waiting up to --wait seconds). Bodies are written byte for byte, each \
            followed by \\n. With --ack every printed message is acknowledged (after it was written); \
            without it, messages become visible again after their visibility timeout.
            """
    )

    @OptionGroup var options: ServerOptions

    @Argument(help: ArgumentHelp("The queue.", valueName: "queue"))
    var queue: String

    @Option(help: ArgumentHelp("Most messages to receive (default 1; unlimited with --forever).", valueName: "n"))
    var max: Int?

    @Option(help: ArgumentHelp("Seconds each call waits for messages (long polling; default 0, 20 with --forever).", valueName: "seconds"))
    var wait: Int?

    @Option(help: ArgumentHelp("Seconds received messages stay invisible (default: the queue's).", valueName: "seconds"))
    var visibilityTimeout: Int?

    @Flag(help: "Acknowledge (delete) each message after printing it.")
    var ack = false

    @Flag(help: "Let the server delete messages as it delivers them (at-most-once).")
    var autoAck = false

    @Flag(help: "Keep receiving when a call comes back empty, until --max messages or interrupted.")
    var forever = false

    @Flag(help: "Print each message as RECEIPT_HANDLE<TAB>BODY.")
    var showHandles = false

    /// The largest `batch_size` the server accepts.
    static let maxBatchSize = 1000
    /// Acknowledgements in flight at once.
    static let ackConcurrency = 64

    func validate() throws {
        if let max, max < 1 { throw ValidationError("--max must be at least 1.") }
        if ack && autoAck { throw ValidationError("--ack and --auto-ack exclude each other.") }
    }

    func run() async throws {
        let limit: Int? = max ?? (forever ? nil : 1)
        let wait = self.wait ?? (forever ? 20 : nil)
        var output = StandardOutput()

        do {
            try await options.run { client in
                try await withThrowingTaskGroup(of: Void.self) { acks in
                    var received = 0
                    var acksPending = false
                    while limit.map({ received < $0 }) ?? true {
                        let messages = try await client.receive(
                            from: queue, maxMessages: Swift.min((limit ?? Int.max) - received, Self.maxBatchSize),
                            visibilityTimeout: visibilityTimeout, waitTime: wait, autoAcknowledge: autoAck)
                        if messages.isEmpty {
                            guard forever else { break }
                            // Without long polling, do not spin on an empty queue.
                            if (wait ?? 0) == 0 { try await Task.sleep(for: .seconds(1)) }
                            continue
                        }
                        for message in messages {
                            if showHandles {
                                try output.append(message.receiptHandle)
                                output.append(byte: 0x09)
                            }
                            try output.append(message.body)
                            output.append(byte: 0x0A)
                        }
                        // Written before acknowledged: a crash in between redelivers, never loses.
                        try output.flush()
                        received += messages.count
                        if ack {
                            // Acknowledge this batch while the next one is received; one batch at a time.
                            if acksPending { try await acks.next() }
                            let handles = messages.map(\.receiptHandle)
                            acks.addTask { try await client.acknowledge(handles, on: queue) }
                            acksPending = true
                        }
                    }
                    try await acks.waitForAll()
                }
            }
        } catch is StandardOutput.Closed {
            // The reader went away (`| head`): stop like a process killed by SIGPIPE would.
            throw ExitCode(141)
        }
    }
}
