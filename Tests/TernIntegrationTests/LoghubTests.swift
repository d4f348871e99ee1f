import AsyncHTTPClient
import Foundation
import Synchronization
import Testing
import TernTestKit

extension IntegrationTests {
    /// Real log files end to end: every line of the 16 loghub samples goes in through
    /// `tern send` (one message per line, from standard input) and comes out of the broker byte
    /// for byte, through concurrent consumers.
    @Suite struct LoghubTests {
        /// The files, each split on `\n` as bytes, a `\r` before the `\n` removed (`tern send`
        /// strips CRLF line endings, as Kafka's console producer does); empty lines dropped
        /// (`tern send` skips them).
        static func loadLogs() throws -> [(queue: String, path: String, lines: [Data])] {
            guard let directory = loghubDirectory else {
                throw TernProcess.Failure(
                    "loghub data is missing: expected the *_2k.log files in <repository>/../shared/data/loghub or in $TERN_LOGHUB_DIR")
            }
            let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".log") }.sorted()
            return try names.map { name in
                let path = directory + "/" + name
                let data = try Data(contentsOf: URL(fileURLWithPath: path))
                let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)
                    .map { $0.last == UInt8(ascii: "\r") ? Data($0.dropLast()) : Data($0) }.filter { !$0.isEmpty }
                return (String(name.dropLast(".log".count)), path, lines)
            }
        }

        static func multiset(_ items: some Sequence<Data>) -> [Data: Int] {
            items.reduce(into: [:]) { $0[$1, default: 0] += 1 }
        }

        @Test(.timeLimit(.minutes(3)), .enabled(if: loghubTestsEnabled, Comment(rawValue: loghubMissingMessage)))
        func everyLogLine_sentWithCLI_isReceivedExactlyOnceByteForByte_byConcurrentConsumers() async throws {
            let logs = try Self.loadLogs()
            try #require(logs.count == 16, "expected the 16 loghub files, found \(logs.map(\.queue))")
            let totalLines = logs.reduce(0) { $0 + $1.lines.count }
            #expect(totalLines == 32_000, "16 files of 2,000 non-empty lines each")

            try await withServer { server, root in try await HTTP.withClient { client in
                let api = QueueAPI(baseURL: server.baseURL, client: client)
                for log in logs {
                    let (status, body) = try await api.createQueue(log.queue, attributes: ["visibility_timeout": 120])
                    try #require(status == 201, "PUT /queues/\(log.queue): \(status) \(text(body))")
                }

                // Send: four `tern send` processes at a time, each piping one whole file.
                try await withThrowingTaskGroup(of: (String, TernCLI.Result).self) { group in
                    var pending = logs.makeIterator()
                    func startNext() {
                        guard let log = pending.next() else { return }
                        group.addTask {
                            (log.queue, try await TernCLI.run(["send", "--server", server.baseURL, log.queue],
                                                             inputFile: log.path, scratch: root))
                        }
                    }
                    for _ in 0..<4 { startNext() }
                    while let (queue, result) = try await group.next() {
                        #expect(result.status == 0, "tern send \(queue) exited with \(result.status): \(result.errorText)")
                        startNext()
                    }
                }
                for log in logs {
                    let total = try await api.total(log.queue)
                    #expect(total == log.lines.count, "\(log.queue) holds \(String(describing: total)) messages after the send")
                }

                // Drain: consumers pass over all queues until a whole pass finds nothing.
                let received = try await Self.drain(queues: logs.map(\.queue), consumers: 4, api: api)

                for log in logs {
                    let got = received[log.queue] ?? []
                    #expect(got.count == log.lines.count, "\(log.queue): received \(got.count) of \(log.lines.count) lines")
                    let expected = Self.multiset(log.lines), actual = Self.multiset(got)
                    if actual != expected {
                        let missing = expected.filter { actual[$0.key, default: 0] < $0.value }
                        let extra = actual.filter { expected[$0.key, default: 0] < $0.value }
                        Issue.record("""
                            \(log.queue): \(missing.count) distinct lines missing or short, \(extra.count) unexpected or duplicated; \
                            first missing: \(missing.keys.first.map { String(reflecting: String(decoding: $0, as: UTF8.self)) } ?? "none"), \
                            first unexpected: \(extra.keys.first.map { String(reflecting: String(decoding: $0, as: UTF8.self)) } ?? "none")
                            """)
                    }
                    let total = try await api.total(log.queue)
                    #expect(total == 0, "\(log.queue) still holds \(String(describing: total)) messages")
                }
            } }
        }

        /// Runs `consumers` tasks that receive batches of 100 and acknowledge every message (up
        /// to 16 acks in flight per consumer), each until a full pass over `queues` received
        /// nothing. Returns the bodies received per queue, as UTF-8 bytes.
        static func drain(queues: [String], consumers: Int, api: QueueAPI) async throws -> [String: [Data]] {
            try await withThrowingTaskGroup(of: [String: [Data]].self) { group in
                for consumer in 0..<consumers {
                    group.addTask {
                        var bodies = [String: [Data]]()
                        var emptyInARow = 0
                        var index = consumer
                        while emptyInARow < queues.count {
                            let queue = queues[index % queues.count]
                            index += 1
                            let (status, messages, body) = try await api.receive(queue, batchSize: 100, visibilityTimeout: 120)
                            guard status == 200 else { throw HTTP.DecodingError(message: "receive from \(queue): \(status) \(text(body))") }
                            if messages.isEmpty {
                                emptyInARow += 1
                                continue
                            }
                            emptyInARow = 0
                            bodies[queue, default: []] += messages.map { Data($0.body.utf8) }
                            let statuses = try await withThrowingTaskGroup(of: Int.self) { acks in
                                var results = [Int]()
                                for (n, message) in messages.enumerated() {
                                    if n >= 16, let status = try await acks.next() { results.append(status) }
                                    acks.addTask { try await api.acknowledge(queue, message.receiptHandle) }
                                }
                                for try await status in acks { results.append(status) }
                                return results
                            }
                            let failed = statuses.filter { $0 != 204 }
                            #expect(failed.isEmpty, "acks on \(queue) answered \(failed)")
                        }
                        return bodies
                    }
                }
                var all = [String: [Data]]()
                for try await part in group {
                    for (queue, bodies) in part { all[queue, default: []] += bodies }
                }
                return all
            }
        }
    }
}
