import Foundation
import TernTestKit
import Testing

extension IntegrationTests {
    /// `tern-lmdb dump --state DIR` on data directories written by the real `ternd`.
    @Suite struct StateDumpToolTests {
        @Test func dumpState_ofADataDirectory_equalsTheDumpOfItsCompactedBackup_andMatchesWhatTheAPIReports() async throws {
            try await withServer(LMDBToolTests.serverArguments) { server, root in
                let api = QueueAPI(baseURL: server.baseURL)
                try await mixedTraffic(api, queues: 2, messages: 200)
                let topic = server.baseURL + "/topics/clicks"
                let created = try await api.http.request(.PUT, topic, json: ["partitions": 2])
                #expect(created.status == 201, "\(text(created.body))")
                let records: [[String: Any]] = (0..<40).map { ["key": "user-\($0 % 5)", "value": "click \($0)"] }
                let produced = try await api.http.request(.POST, topic + "/messages", json: ["messages": records])
                #expect(produced.status == 200 || produced.status == 201, "\(text(produced.body))")

                let hot = try await runTernLMDB(["dump", "--state", server.dataDirectory])
                #expect(hot.status == 0, "dump --state on a running broker: \(hot.error)")
                let described = try await api.describe("mixed-0")
                let counts = try #require(described["messages"] as? [String: Any])
                await server.terminate()

                let first = try await runTernLMDB(["dump", "--state", server.dataDirectory])
                #expect(first.status == 0, "\(first.error)")
                let lines = try jsonLines(first.output)
                let queue = try #require(lines.first { $0["type"] as? String == "queue" && $0["name"] as? String == "mixed-0" })
                let queueID = try #require(int(queue["queue"]))
                let messages = lines.filter { $0["type"] as? String == "message" && int($0["queue"]) == queueID }
                #expect(messages.filter { $0["state"] as? String == "ready" }.count == int(counts["ready"]))
                #expect(messages.filter { $0["state"] as? String == "delayed" }.count == int(counts["delayed"]))
                #expect(messages.count == int(counts["ready"])! + int(counts["in_flight"])! + int(counts["delayed"])!)
                #expect(messages.allSatisfy { ($0["body"] as? [String: Any]).map { int($0["bytes"]) != nil } ?? false })
                #expect(lines.filter { $0["type"] as? String == "topic_record" }.count == 40)
                #expect(lines.contains { $0["type"] as? String == "meta" && $0["key"] as? String == "next_queue_id" })

                // A compacted hot copy has another page layout and the same state: the same bytes.
                let backup = root.appending("backup")
                let copied = try await runTernLMDB(["backup", server.dataDirectory, backup, "--compact"])
                #expect(copied.status == 0, "\(copied.error)")
                let ofBackup = try await runTernLMDB(["dump", "--state", backup])
                #expect(ofBackup.status == 0, "\(ofBackup.error)")
                #expect(ofBackup.output == first.output, "the compacted copy dumps differently")
                let again = try await runTernLMDB(["dump", "--state", server.dataDirectory])
                #expect(again.output == first.output)

                // `dump NAME` keeps working; --state with a name, or neither, is a usage error.
                let one = try await runTernLMDB(["dump", server.dataDirectory, "mixed-0", "--limit", "3"])
                let oneLines = try jsonLines(one.output)
                #expect(one.status == 0 && oneLines.count == 3)
                let both = try await runTernLMDB(["dump", "--state", server.dataDirectory, "mixed-0"])
                #expect(both.status != 0 && both.error.contains("--state"), "\(both.error)")
                let neither = try await runTernLMDB(["dump", server.dataDirectory])
                #expect(neither.status != 0, "\(neither.output)")
            }
        }
    }
}
