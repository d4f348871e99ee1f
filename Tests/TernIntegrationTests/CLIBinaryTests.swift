import Foundation
import Testing
import TernTestKit

extension IntegrationTests {
    /// The real `tern` over the binary protocol (`--server tern://…`), and the same commands over
    /// both transports against one server printing the same bytes.
    @Suite struct CLIBinaryTests {
        /// Starts `ternd` with its binary protocol on a free port chosen here (the test kit's
        /// default, port 0, is not reported back), and passes `tern://127.0.0.1:<port>` to `body`.
        func withBinaryServer<T>(
            _ extraArguments: [String] = [],
            _ body: (TernProcess, String, TemporaryDirectory) async throws -> T
        ) async throws -> T {
            let port = try TernProcess.freePort()
            return try await withServer(["--binary", "127.0.0.1:\(port)"] + extraArguments) { server, root in
                try await body(server, "tern://127.0.0.1:\(port)", root)
            }
        }

        /// Runs `tern` and returns its standard output as text.
        func tern(_ arguments: [String], input: String? = nil, root: TemporaryDirectory) async throws -> (status: Int32, output: String, error: String) {
            var inputFile: String?
            if let input {
                let path = root.appending("stdin-\(UUID().uuidString)")
                try input.write(toFile: path, atomically: true, encoding: .utf8)
                inputFile = path
            }
            let result = try await TernCLI.run(arguments, inputFile: inputFile, scratch: root)
            if let inputFile { try? FileManager.default.removeItem(atPath: inputFile) }
            return (result.status, String(decoding: result.standardOutput, as: UTF8.self), result.errorText)
        }

        /// SIGTERM while a binary long poll waits: the broker answers it (empty) before it stops,
        /// as it does over HTTP, instead of cutting the connection.
        @Test(.timeLimit(.minutes(2)))
        func sigterm_duringABinaryLongPoll_answersIt_andExitsCleanly() async throws {
            try await withBinaryServer { server, binary, root in
                #expect(try await tern(["queue", "create", "--server", binary, "idle"], root: root).status == 0)
                // Counted binary connections: the create's has closed, then the receive's is open
                // (a fixed 1 s sleep was too short for `tern` to start on a loaded machine: the
                // SIGTERM then came before the receive was sent, and its connection was refused).
                func openConnections() async -> Int? {
                    guard let metrics = try? await ClusterProcessTests.call(.GET, server.baseURL + "/metrics", timeout: 5) else { return nil }
                    let text = String(decoding: metrics.body, as: UTF8.self)
                    return text.split(separator: "\n").first { $0.hasPrefix("tern_binary_open_connections ") }
                        .flatMap { Double($0.split(separator: " ").last ?? "") }.map { Int($0) }
                }
                func waitFor(_ count: Int) async throws {
                    let deadline = ContinuousClock.now + .seconds(60)
                    while await openConnections() != count, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
                }
                try await waitFor(0)
                async let polled = tern(["receive", "--server", binary, "idle", "--wait", "5"], root: root)
                try await waitFor(1)
                try await Task.sleep(for: .milliseconds(500))   // the receive is waiting in the broker
                let status = await server.terminate(gracePeriod: .seconds(30))
                #expect(status == 0, "graceful exit status; log: \(server.logTail())")
                let result = try await polled
                #expect(result.status == 0, "the long poll was answered, not cut off: \(result.error)")
                #expect(result.output.isEmpty)
            }
        }

        @Test(.timeLimit(.minutes(2)))
        func queueCreateListDescribe_overBinary_printTheQueue() async throws {
            try await withBinaryServer { _, binary, root in
                let created = try await tern(["queue", "create", "--server", binary, "jobs", "--visibility-timeout", "45"], root: root)
                #expect(created.status == 0, "\(created.error)")
                #expect(created.output == "created jobs\n")
                let updated = try await tern(["queue", "create", "--server", binary, "jobs", "--retention", "3600"], root: root)
                #expect(updated.output == "updated jobs\n", "\(updated.error)")

                let list = try await tern(["queue", "list", "--server", binary], root: root)
                #expect(list.status == 0, "\(list.error)")
                let rows = list.output.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
                #expect(rows.first == ["NAME", "READY", "IN_FLIGHT", "DELAYED", "OLDEST"])
                #expect(rows.dropFirst().first == ["jobs", "0", "0", "0", "-"])

                let described = try await tern(["queue", "describe", "--server", binary, "jobs"], root: root)
                #expect(described.status == 0, "\(described.error)")
                let object = try HTTP.object(Data(described.output.utf8))
                #expect(object["name"] as? String == "jobs")
                let attributes = object["attributes"] as? [String: Any]
                #expect(int(attributes?["visibility_timeout"]) == 45)
                #expect(int(attributes?["retention"]) == 3600)
                #expect(int((object["messages"] as? [String: Any])?["total"]) == 0)
            }
        }

        @Test(.timeLimit(.minutes(2)))
        func sendLinesFromStandardInput_thenReceiveAck_overBinary_printsExactlyThoseLines() async throws {
            try await withBinaryServer { server, binary, root in
                _ = try await tern(["queue", "create", "--server", binary, "lines"], root: root)
                // More than one batch of 500, with a tab, quotes, a backslash and non-ASCII text.
                let lines = (1...1_234).map { "line \($0)\t\"quoted\" \\ é ✓" }
                let sent = try await tern(["send", "--server", binary, "lines"], input: lines.joined(separator: "\n") + "\n", root: root)
                #expect(sent.status == 0, "\(sent.error)")
                #expect(sent.output == "sent 1234 messages\n")

                let received = try await tern(["receive", "--server", binary, "lines", "--max", "5000", "--ack"], root: root)
                #expect(received.status == 0, "\(received.error)")
                let got = received.output.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
                #expect(got.count == lines.count)
                #expect(got.sorted() == lines.sorted(), "every line exactly once, byte for byte")
                #expect(received.output.hasSuffix("\n"))

                // Acknowledged: nothing is left (checked over HTTP).
                let total = try await QueueAPI(baseURL: server.baseURL).total("lines")
                #expect(total == 0)
            }
        }

        /// CRLF input (the Android loghub sample has it): the `\r` of each line ending is not
        /// part of the message, for `tern send` and `tern topic produce` alike; a `\r` inside a
        /// line is kept.
        @Test(.timeLimit(.minutes(2)))
        func crlfInput_sendAndProduce_stripTheCarriageReturnOfEachLineEnding() async throws {
            try await withBinaryServer { _, binary, root in
                _ = try await tern(["queue", "create", "--server", binary, "crlf"], root: root)
                let sent = try await tern(["send", "--server", binary, "crlf"], input: "one\r\ntwo\rhalf\r\n\r\nthree\r", root: root)
                #expect(sent.status == 0, "\(sent.error)")
                #expect(sent.output == "sent 3 messages\n", "the empty CRLF line is skipped")
                let received = try await tern(["receive", "--server", binary, "crlf", "--max", "10", "--ack"], root: root)
                #expect(received.output.split(separator: "\n").map(String.init).sorted() == ["one", "three", "two\rhalf"])

                _ = try await tern(["topic", "create", "--server", binary, "crlf-events", "--partitions", "1"], root: root)
                let produced = try await tern(["topic", "produce", "--server", binary, "crlf-events"], input: "a\r\nb\r\n", root: root)
                #expect(produced.output == "produced 2 messages\n", "\(produced.error)")
                let consumed = try await tern(["topic", "consume", "--server", binary, "crlf-events", "--group", "g", "--wait", "1"],
                                              root: root)
                #expect(consumed.output == "a\nb\n")
            }
        }

        @Test(.timeLimit(.minutes(2)))
        func topicCreateProduceWithKey_consumeWithGroup_overBinary_printsEveryValueInOrder() async throws {
            try await withBinaryServer { _, binary, root in
                let created = try await tern(["topic", "create", "--server", binary, "events", "--partitions", "4"], root: root)
                #expect(created.output == "created events\n", "\(created.error)")
                let values = (1...700).map { "event \($0) ✓" }
                let produced = try await tern(["topic", "produce", "--server", binary, "events", "--key", "host-1"],
                                              input: values.joined(separator: "\n"), root: root)
                #expect(produced.status == 0, "\(produced.error)")
                #expect(produced.output == "produced 700 messages\n")

                let described = try await tern(["topic", "describe", "--server", binary, "events"], root: root)
                let object = try HTTP.object(Data(described.output.utf8))
                #expect(int(object["messages"]) == 700)
                #expect((object["partitions"] as? [Any])?.count == 4)

                let consumed = try await tern(["topic", "consume", "--server", binary, "events", "--group", "readers", "--wait", "1"],
                                              root: root)
                #expect(consumed.status == 0, "\(consumed.error)")
                // One key: one partition, in produce order.
                #expect(consumed.output == values.joined(separator: "\n") + "\n")
                #expect(consumed.error.contains("consumed 700 messages"))

                // The group committed: a second consumer of the same group finds nothing.
                let again = try await tern(["topic", "consume", "--server", binary, "events", "--group", "readers", "--wait", "0"],
                                           root: root)
                #expect(again.status == 0, "\(again.error)")
                #expect(again.output.isEmpty)
            }
        }

        @Test(.timeLimit(.minutes(2)))
        func visibilityAckPurgeRedriveDelete_overBinary_printWhatTheyDid() async throws {
            try await withBinaryServer { _, binary, root in
                _ = try await tern(["queue", "create", "--server", binary, "dlq"], root: root)
                _ = try await tern(["queue", "create", "--server", binary, "work"], root: root)
                _ = try await tern(["queue", "create", "--server", binary, "source", "--max-receive-count", "1", "--dead-letter-queue", "dlq"],
                                   root: root)
                let one = try await tern(["send", "--server", binary, "work", "first", "--priority", "9"], root: root)
                #expect(one.output.hasPrefix("sent 1 message (id "), "\(one.error)")
                _ = try await tern(["send", "--server", binary, "work"], input: "second\nthird\n", root: root)

                let received = try await tern(["receive", "--server", binary, "work", "--show-handles"], root: root)
                let fields = received.output.dropLast().split(separator: "\t").map(String.init)
                #expect(fields.count == 2 && fields.last == "first", "priority 9 first: \(received.output) \(received.error)")
                let handle = fields.first ?? ""
                let released = try await tern(["visibility", "--server", binary, "work", handle, "0"], root: root)
                #expect(released.output == "visible again in 0 seconds\n", "\(released.error)")
                let acked = try await tern(["ack", "--server", binary, "work", handle], root: root)
                #expect(acked.output == "acknowledged 1 message\n", "\(acked.error)")
                let stale = try await tern(["ack", "--server", binary, "work", "not-a-handle"], root: root)
                #expect(stale.status == 1)
                #expect(stale.error.hasPrefix("error: InvalidReceiptHandle: "), "\(stale.error)")

                // Received once with max_receive_count 1 and not acknowledged: it moves to the DLQ.
                _ = try await tern(["send", "--server", binary, "source", "doomed"], root: root)
                _ = try await tern(["receive", "--server", binary, "source", "--visibility-timeout", "0"], root: root)
                _ = try await tern(["receive", "--server", binary, "source"], root: root)
                let moved = try await tern(["queue", "redrive", "--server", binary, "dlq"], root: root)
                #expect(moved.output == "moved 1 message from dlq\n", "\(moved.error)")
                let purged = try await tern(["queue", "purge", "--server", binary, "work"], root: root)
                #expect(purged.output == "purged 2 messages from work\n", "\(purged.error)")
                let deleted = try await tern(["queue", "delete", "--server", binary, "work"], root: root)
                #expect(deleted.output == "deleted work\n", "\(deleted.error)")
                let gone = try await tern(["queue", "describe", "--server", binary, "work"], root: root)
                #expect(gone.error.hasPrefix("error: QueueNotFound: "))
            }
        }

        @Test(.timeLimit(.minutes(2)))
        func describeMissingQueue_overBinary_exits1WithQueueNotFound() async throws {
            try await withBinaryServer { _, binary, root in
                let result = try await tern(["queue", "describe", "--server", binary, "missing"], root: root)
                #expect(result.status == 1)
                #expect(result.output.isEmpty)
                #expect(result.error.hasPrefix("error: QueueNotFound: "), "\(result.error)")
            }
        }

        @Test(.timeLimit(.minutes(1)))
        func noServerListening_overBinary_saysCannotConnect() async throws {
            let root = try TemporaryDirectory(prefix: "tern-it")
            defer { root.remove() }
            let port = try TernProcess.freePort()
            let result = try await tern(["queue", "list", "--server", "tern://127.0.0.1:\(port)"], root: root)
            #expect(result.status == 1)
            #expect(result.error.contains("cannot connect to ternd at tern://127.0.0.1:\(port)"), "\(result.error)")
            #expect(result.error.contains("is it running?"), "\(result.error)")
        }

        /// The same server over `http://` and `tern://`: describe JSON and list tables are
        /// byte-identical. The only field that legitimately differs is the oldest message's age
        /// (`oldest_message_age`, and the OLDEST column of `queue list`), measured when each
        /// command ran; it is compared only for empty queues (null / `-`) and removed for a queue
        /// holding messages.
        @Test(.timeLimit(.minutes(2)))
        func describeAndList_overHTTPAndBinary_printTheSameBytes() async throws {
            try await withBinaryServer { server, binary, root in
                let http = server.baseURL
                _ = try await tern(["queue", "create", "--server", http, "empty", "--visibility-timeout", "60", "--max-messages", "100"],
                                   root: root)
                _ = try await tern(["queue", "create", "--server", binary, "dead"], root: root)
                _ = try await tern(["queue", "create", "--server", binary, "work", "--max-receive-count", "3", "--dead-letter-queue", "dead"],
                                   root: root)
                _ = try await tern(["send", "--server", binary, "work"], input: "a\nbb\nccc\n", root: root)
                _ = try await tern(["topic", "create", "--server", http, "clicks", "--partitions", "3", "--max-bytes", "1000000"], root: root)
                _ = try await tern(["topic", "produce", "--server", binary, "clicks", "--key", "k"], input: "x\ny\n", root: root)

                for command in [["queue", "describe", "empty"], ["queue", "describe", "dead"], ["topic", "describe", "clicks"],
                                ["topic", "list"]] {
                    let overHTTP = try await tern(command + ["--server", http], root: root)
                    let overBinary = try await tern(command + ["--server", binary], root: root)
                    #expect(overHTTP.status == 0 && overBinary.status == 0, "\(command): \(overHTTP.error) \(overBinary.error)")
                    #expect(!overHTTP.output.isEmpty)
                    #expect(overHTTP.output == overBinary.output, "\(command):\nhttp:\n\(overHTTP.output)\nbinary:\n\(overBinary.output)")
                }

                let workHTTP = try await tern(["queue", "describe", "work", "--server", http], root: root)
                let workBinary = try await tern(["queue", "describe", "work", "--server", binary], root: root)
                #expect(workHTTP.output.contains("\"oldest_message_age\" : "))
                #expect(Self.removingOldestAge(workHTTP.output) == Self.removingOldestAge(workBinary.output),
                        "http:\n\(workHTTP.output)\nbinary:\n\(workBinary.output)")

                let listHTTP = try await tern(["queue", "list", "--server", http], root: root)
                let listBinary = try await tern(["queue", "list", "--server", binary], root: root)
                #expect(listHTTP.output.split(separator: "\n").count == 4)
                #expect(Self.removingLastColumn(listHTTP.output) == Self.removingLastColumn(listBinary.output),
                        "http:\n\(listHTTP.output)\nbinary:\n\(listBinary.output)")
            }
        }

        /// The line `"oldest_message_age" : …` of a pretty-printed description removed.
        static func removingOldestAge(_ text: String) -> String {
            text.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.contains("\"oldest_message_age\"") }
                .joined(separator: "\n")
        }

        /// Each line of a table without its last column (OLDEST) and the spaces before it.
        static func removingLastColumn(_ text: String) -> [String] {
            text.split(separator: "\n").map { line in
                var fields = line.split(separator: " ", omittingEmptySubsequences: false)
                while fields.last?.isEmpty == true { fields.removeLast() }
                if !fields.isEmpty { fields.removeLast() }
                return fields.joined(separator: " ")
            }
        }

        /// With authentication on: `--token` works over both transports, a
        /// missing token fails with `Unauthorized` over both, and the token is never printed.
        @Test(.timeLimit(.minutes(2)))
        func token_isSentOverBothTransports_andNeverPrinted() async throws {
            let secret = "cli-secret-token-0123456789"
            let config = try TemporaryDirectory(prefix: "tern-cli-auth")
            defer { config.remove() }
            let path = config.appending("ternd.yaml")
            try """
                auth:
                  enabled: true
                  tokens: [{name: ops, token: "\(secret)", permissions: [admin]}]
                """.write(toFile: path, atomically: true, encoding: .utf8)
            try await withBinaryServer(["--config", path]) { server, binary, root in
                for address in [server.baseURL, binary] {
                    let refused = try await tern(["queue", "list", "--server", address], root: root)
                    #expect(refused.status == 1)
                    #expect(refused.error.hasPrefix("error: Unauthorized: "), "\(address): \(refused.error)")

                    let wrong = try await tern(["queue", "create", "--server", address, "--token", "not-the-token", "q"], root: root)
                    #expect(wrong.status == 1)
                    #expect(wrong.error.hasPrefix("error: Unauthorized: "), "\(address): \(wrong.error)")
                    #expect(!wrong.error.contains("not-the-token"))

                    let created = try await tern(["queue", "create", "--server", address, "--token", secret, "q"], root: root)
                    #expect(created.status == 0, "\(address): \(created.error)")
                    let listed = try await tern(["queue", "list", "--server", address, "--token", secret], root: root)
                    #expect(listed.output.contains("q "), "\(address): \(listed.error)")
                    #expect(!(created.output + created.error + listed.output + listed.error).contains(secret))
                }
                let help = try await tern(["queue", "list", "--help"], root: root)
                #expect(help.output.contains("--token"))
                #expect(!help.output.contains(secret))
            }
        }
    }
}
