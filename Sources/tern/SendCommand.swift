import ArgumentParser
import Foundation

/// `tern send QUEUE [TEXT]`: one message from the argument, or one message per line of standard input.
struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send a message, or one message per line of standard input.",
        discussion: """
            Without TEXT, standard input is read as raw bytes and split on \\n: each line becomes one \
            message, byte for byte (a \\r\\n ending is stripped, as Kafka's console producer does); empty lines are skipped. Lines go out \
            in batches of up to 500 messages and about 1 MiB of JSON, several batches at a time, so \
            with --concurrency above 1 (the default is 4) whole batches of 500 may arrive out of order; --concurrency 1 keeps line order.
            """
    )

    @OptionGroup var options: ServerOptions

    @Argument(help: ArgumentHelp("The queue.", valueName: "queue"))
    var queue: String

    @Argument(help: "The message body; without it, messages are read from standard input, one per line.")
    var text: String?

    @Option(help: ArgumentHelp("Priority 0–9, higher is delivered first (default 0).", valueName: "n"))
    var priority: Int?

    @Option(help: ArgumentHelp("Seconds before the messages can be received (default: the queue's delay).", valueName: "seconds"))
    var delay: Int?

    @Option(help: ArgumentHelp("Batches in flight at once when reading standard input.", valueName: "n"))
    var concurrency = 4

    /// Most messages in one batch request.
    static let batchMessages = 500
    /// Most estimated JSON bytes in one batch request (a single larger message goes alone).
    static let batchBytes = 1 << 20
    /// Attempts per batch on connection errors and 5xx answers.
    static let attempts = 5

    func validate() throws {
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1.") }
    }

    func run() async throws {
        if let text {
            let result = try await options.run { client in
                try await client.send(API.SendRequest(message: text, priority: priority, delay: delay), to: queue)
            }
            print("sent 1 message (id \(result.id))")
            return
        }
        if StandardInputLines.isTerminal {
            StandardError.print("reading messages from standard input, one per line; end with Ctrl-D")
        }
        let outcome = try await options.run { client in try await sendLines(client) }
        if outcome.skipped > 0 {
            StandardError.print("skipped \(outcome.skipped) empty \(outcome.skipped == 1 ? "line" : "lines")")
        }
        print("sent \(outcome.sent) \(outcome.sent == 1 ? "message" : "messages")")
        if let failure = outcome.failure {
            StandardError.print("error: \(failure)")
            throw ExitCode.failure
        }
    }

    /// What a standard-input send did: `failure` is set when it stopped early on bad input.
    struct Outcome {
        var sent = 0
        var skipped = 0
        var failure: ClientError?
    }

    /// Reads standard input to its end and sends it in batches, at most ``concurrency`` at a time.
    ///
    /// Stops reading at the first line that is not valid UTF-8, sends the lines before it, waits
    /// for the batches in flight and returns their count with the failure. A server or connection
    /// error that survives the retries stops reading too, and is thrown once the batches in flight
    /// have finished or failed.
    private func sendLines(_ client: any BrokerTransport) async throws -> Outcome {
        var outcome = Outcome()
        var lines = StandardInputLines()
        let priority = self.priority
        let delay = self.delay

        try await withThrowingTaskGroup(of: Int.self) { group in
            var inFlight = 0
            var batch: [API.SendRequest] = []
            var batchBytes = 0
            var batchFirstLine = 0
            var batchLastLine = 0
            var firstError: (any Error)?

            // Waits for one batch; remembers the first failure instead of abandoning the others.
            func collectOne() async {
                do {
                    if let count = try await group.next() { outcome.sent += count }
                } catch {
                    if firstError == nil { firstError = error }
                }
                inFlight -= 1
            }

            func submit() async {
                guard !batch.isEmpty else { return }
                while inFlight >= concurrency { await collectOne() }
                let messages = batch
                let lines = batchFirstLine...batchLastLine
                let queue = self.queue
                group.addTask { try await Self.sendBatch(messages, lines: lines, to: queue, using: client) }
                inFlight += 1
                batch.removeAll(keepingCapacity: true)
                batchBytes = 0
            }

            while firstError == nil {
                // Input paused with a partial batch (`tail -F … | tern send`): send it now.
                if !batch.isEmpty, !lines.hasBufferedLine,
                   await !StandardInputLines.readable(within: StandardInputLines.lingerMilliseconds) {
                    await submit()
                }
                guard let line = try await lines.next() else { break }
                if line.bytes.isEmpty {
                    outcome.skipped += 1
                    continue
                }
                guard let body = String(validating: line.bytes, as: UTF8.self) else {
                    outcome.failure = .input(
                        "line \(line.number) of standard input is not valid UTF-8; the lines before it were sent, "
                            + "it and the lines after it were not")
                    break
                }
                let size = Self.estimatedJSONBytes(of: line.bytes)
                if !batch.isEmpty && (batch.count >= Self.batchMessages || batchBytes + size > Self.batchBytes) {
                    await submit()
                }
                if batch.isEmpty { batchFirstLine = line.number }
                batch.append(API.SendRequest(message: body, priority: priority, delay: delay))
                batchBytes += size
                batchLastLine = line.number
            }
            // Everything before a bad line is sent, so that the user can resume after it.
            if firstError == nil { await submit() }
            while inFlight > 0 { await collectOne() }
            if let firstError {
                if outcome.sent > 0 {
                    StandardError.print("sent \(outcome.sent) messages before the error")
                }
                throw firstError
            }
        }
        return outcome
    }

    /// Sends one batch, retrying connection errors and 5xx answers with exponential backoff
    /// (0.2 s, 0.4 s, 0.8 s, 1.6 s).
    ///
    /// A batch that failed after the server accepted it but before its answer arrived is sent
    /// again, so a connection failure can duplicate messages (at-least-once, like any retry).
    /// - Parameter lines: the standard-input line numbers in the batch, for error messages.
    /// - Returns: the number of messages the server accepted.
    /// - Throws: the last ``ClientError`` when retrying does not help; a server error names `lines`.
    private static func sendBatch(
        _ messages: [API.SendRequest], lines: ClosedRange<Int>, to queue: String, using client: any BrokerTransport
    ) async throws -> Int {
        var backoff = Duration.milliseconds(200)
        for attempt in 1...attempts {
            do {
                return try await client.send(batch: messages, to: queue)
            } catch let error as ClientError where error.isRetryable && attempt < attempts {
                try await Task.sleep(for: backoff)
                backoff *= 2
            } catch ClientError.server(let status, let code, let message) {
                let where_ = lines.count == 1 ? "line \(lines.lowerBound)" : "lines \(lines.lowerBound)–\(lines.upperBound)"
                throw ClientError.server(
                    status: status, code: code, message: message + " (in the batch of standard-input \(where_))")
            }
        }
        preconditionFailure("the last attempt returns or throws")
    }

    /// An upper bound on the JSON a body encodes to: control characters become up to six bytes
    /// (`\u001f`), quotes and backslashes two, everything else (UTF-8 included) itself; plus the
    /// object around it.
    static func estimatedJSONBytes(of body: ArraySlice<UInt8>) -> Int {
        var size = body.count + 48
        for byte in body where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
            size += byte < 0x20 ? 5 : 1
        }
        return size
    }
}
