import Foundation
import Logging
import TernStorage
import TernTestKit
import Testing

/// Runs `tern-lmdb arguments…` and waits for it.
func runTernLMDB(_ arguments: [String]) async throws -> (status: Int32, output: String, error: String) {
    let scratch = try TemporaryDirectory(prefix: "tern-lmdb-run")
    defer { scratch.remove() }
    let result = try await TernCLI.run(arguments, executable: "tern-lmdb", scratch: scratch)
    return (result.status, String(decoding: result.standardOutput, as: UTF8.self), result.errorText)
}

/// JSON lines of a `tern-lmdb` output.
func jsonLines(_ text: String) throws -> [[String: Any]] {
    try text.split(separator: "\n").map { try HTTP.object(Data($0.utf8)) }
}

/// Mixed traffic: priorities, delays, receives, acknowledgements, visibility changes,
/// dead-lettering and a deleted queue.
func mixedTraffic(_ api: QueueAPI, queues: Int = 3, messages: Int = 300) async throws {
    _ = try await api.createQueue("mixed-dlq")
    for q in 0..<queues {
        _ = try await api.createQueue("mixed-\(q)", attributes: ["max_receive_count": 1, "dead_letter_queue": "mixed-dlq"])
    }
    try await withThrowingTaskGroup(of: Void.self) { group in
        for q in 0..<queues {
            group.addTask {
                for batch in 0..<(messages / 50) {
                    let items: [[String: Any]] = (0..<50).map { n in
                        var item: [String: Any] = ["message": "q\(q) b\(batch) n\(n) " + String(repeating: "x", count: (n * 37) % 900),
                                                   "priority": n % 10]
                        if n % 7 == 0 { item["delay"] = 3600 }
                        return item
                    }
                    let (status, body) = try await api.http.request(.POST, api.url("mixed-\(q)", "/messages"), json: ["messages": items])
                    guard status == 201 else { throw HTTP.DecodingError(message: "batch send: \(status) \(text(body))") }
                }
                let received = try await api.receive("mixed-\(q)", batchSize: 100).messages
                for message in received.prefix(60) { _ = try await api.acknowledge("mixed-\(q)", message.receiptHandle) }
                // Released at once after one delivery: dead-lettered.
                for message in received.dropFirst(60).prefix(10) {
                    _ = try await api.http.request(.PATCH, api.url("mixed-\(q)", "/messages/\(message.receiptHandle)"),
                                                   json: ["visibility_timeout": 0])
                }
            }
        }
        try await group.waitForAll()
    }
    _ = try await api.createQueue("doomed")
    _ = try await api.send("doomed", "bye")
    _ = try await api.delete("doomed")
}

extension IntegrationTests {
    @Suite struct LMDBToolTests {
        static let serverArguments = ["--binary", "127.0.0.1:0", "--no-sync"]

        @Test func verify_passesAfterMixedTraffic_whileRunningAndAfterStop() async throws {
            try await withServer(Self.serverArguments) { server, root in
                let api = QueueAPI(baseURL: server.baseURL)
                try await mixedTraffic(api)
                let hot = try await runTernLMDB(["verify", server.dataDirectory])
                #expect(hot.status == 0, "verify on a running broker: \(hot.output) \(hot.error)")
                #expect(hot.output.hasPrefix("OK:"))

                let queues = try jsonLines(try await runTernLMDB(["queues", server.dataDirectory]).output)
                let described = try await api.describe("mixed-0")
                let counts = try #require(described["messages"] as? [String: Any])
                let mixed0 = try #require(queues.first { $0["name"] as? String == "mixed-0" })
                #expect(int(mixed0["ready"]) == int(counts["ready"]))
                #expect(int(mixed0["in_flight"]) == int(counts["in_flight"]))
                #expect(int(mixed0["delayed"]) == int(counts["delayed"]))
                #expect(int(mixed0["total"]) == 300 - 60 - 10)

                let stat = try await runTernLMDB(["stat", "--json", server.dataDirectory])
                #expect(stat.status == 0, "\(stat.error)")
                let object = try HTTP.object(Data(stat.output.utf8))
                let databases = try #require(object["databases"] as? [[String: Any]])
                #expect(databases.contains { $0["name"] as? String == "messages" && int($0["entries"]) ?? 0 > 0 })

                let dump = try jsonLines(try await runTernLMDB(["dump", server.dataDirectory, "mixed-dlq", "--limit", "5"]).output)
                #expect(dump.count == 5)
                #expect(dump.allSatisfy { ($0["body"] as? String)?.hasPrefix("q") == true && $0["state"] as? String == "ready" })

                await server.terminate()
                let cold = try await runTernLMDB(["verify", server.dataDirectory])
                #expect(cold.status == 0, "\(cold.output)")
                _ = root
            }
        }

        @Test func verify_namesTheRecord_whenOneByteOfAStoredRecordIsFlipped() async throws {
            try await withServer(Self.serverArguments) { server, _ in
                try await mixedTraffic(QueueAPI(baseURL: server.baseURL), queues: 1, messages: 100)
                await server.terminate()
                // Through LMDB: overwrite one message header with one byte flipped.
                let storage = try Storage(directory: server.dataDirectory, databases: ["messages"], logger: Logger(label: "test"))
                let messages = storage.database("messages")
                let (key, value) = try #require(try storage.read { txn in try txn.withCursor(messages) { try $0.first() } })
                var flipped = value
                flipped[value.count / 2] ^= 0x01
                let corrupted = flipped
                try await storage.write { txn in try txn.put(messages, key, corrupted) }
                storage.close()
                var reader = BigEndianReader(key)
                let queue = try reader.readUInt32(), partition = try reader.readUInt32(), sequence = try reader.readUInt64()

                let result = try await runTernLMDB(["verify", server.dataDirectory])
                #expect(result.status == 1)
                #expect(result.output.contains("PROBLEM messages[queue \(queue) partition \(partition) sequence \(sequence)]: storage error (corruptRecord): checksum mismatch"),
                        "\(result.output)")
                #expect(result.output.contains("FAILED"))
            }
        }

        @Test func verify_namesTheMessage_whenItsIndexEntryIsDeleted() async throws {
            try await withServer(Self.serverArguments) { server, _ in
                let api = QueueAPI(baseURL: server.baseURL)
                _ = try await api.createQueue("indexed")
                for n in 0..<20 { _ = try await api.send("indexed", "m\(n)") }
                await server.terminate()
                let storage = try Storage(directory: server.dataDirectory, databases: ["ready"], logger: Logger(label: "test"))
                let ready = storage.database("ready")
                let (key, _) = try #require(try storage.read { txn in try txn.withCursor(ready) { try $0.first() } })
                try await storage.write { txn in _ = try txn.delete(ready, key) }
                storage.close()
                var reader = BigEndianReader(key)
                let queue = try reader.readUInt32()
                _ = try reader.readUInt8()
                let sequence = try reader.readUInt64()

                let result = try await runTernLMDB(["verify", server.dataDirectory])
                #expect(result.status == 1)
                #expect(result.output.contains("PROBLEM messages[queue \(queue) partition 0 sequence \(sequence)]: ready message missing from index ready"),
                        "\(result.output)")
            }
        }

        @Test func hotBackup_takenUnderLoad_opensAndVerifies() async throws {
            try await withServer(Self.serverArguments) { server, root in
                let api = QueueAPI(baseURL: server.baseURL)
                _ = try await api.createQueue("load")
                let destination = root.appending("backup")
                let compactDestination = root.appending("backup-compact")
                let sent = try await withThrowingTaskGroup(of: Int.self) { group in
                    group.addTask {
                        var sent = 0
                        for batch in 0..<40 {
                            let items = (0..<50).map { ["message": "b\(batch) n\($0) " + String(repeating: "y", count: 200)] }
                            let (status, _) = try await api.http.request(.POST, api.url("load", "/messages"), json: ["messages": items])
                            if status == 201 { sent += 50 }
                        }
                        return sent
                    }
                    group.addTask {
                        // Wait until the load has started, then copy while it runs.
                        while (try await api.total("load") ?? 0) < 200 { try await Task.sleep(for: .milliseconds(5)) }
                        let plain = try await runTernLMDB(["backup", server.dataDirectory, destination])
                        let compact = try await runTernLMDB(["backup", server.dataDirectory, compactDestination, "--compact"])
                        guard plain.status == 0, compact.status == 0 else {
                            throw HTTP.DecodingError(message: "backup failed: \(plain.error) \(compact.error)")
                        }
                        return 0
                    }
                    return try await group.reduce(0, +)
                }
                #expect(sent == 2000)
                for copy in [destination, compactDestination] {
                    let verified = try await runTernLMDB(["verify", copy])
                    #expect(verified.status == 0, "\(copy): \(verified.output)")
                    let queues = try jsonLines(try await runTernLMDB(["queues", copy]).output)
                    let load = try #require(queues.first { $0["name"] as? String == "load" })
                    let total = try #require(int(load["total"]))
                    #expect(total >= 200 && total <= 2000 && total % 50 == 0, "a consistent snapshot holds whole batches: \(total)")
                }
                // The copy is a working data directory: a broker starts on it.
                let restored = try TernProcess(dataDirectory: destination, logFile: root.appending("restored.log"),
                                               extraArguments: Self.serverArguments)
                try await restored.start()
                #expect(try await QueueAPI(baseURL: restored.baseURL).total("load") ?? 0 >= 200)
                await restored.terminate()
            }
        }

        @Test func readers_listsTheRunningBrokersSlots_andClearsStaleOnes() async throws {
            try await withServer(Self.serverArguments) { server, _ in
                _ = try await QueueAPI(baseURL: server.baseURL).createQueue("r")
                let result = try await runTernLMDB(["readers", server.dataDirectory, "--clear-stale"])
                #expect(result.status == 0, "\(result.error)")
                let lines = try jsonLines(result.output)
                #expect(int(lines.first?["cleared_stale_readers"]) == 0)
            }
        }
    }
}
