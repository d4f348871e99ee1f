import Foundation
import TernTestKit
import Testing

extension IntegrationTests {
    /// `ternd --command-log-bytes`, `tern-lmdb log` and `tern-lmdb replay` on the real daemon:
    /// a data directory rebuilt from its log alone has the same state, byte for byte.
    @Suite struct CommandLogToolTests {
        @Test func replayOfTheLog_rebuildsTheSameState_andLogListsTheCommands() async throws {
            try await withServer(LMDBToolTests.serverArguments + ["--command-log-bytes", "1073741824"]) { server, root in
                let api = QueueAPI(baseURL: server.baseURL)
                try await mixedTraffic(api, queues: 2, messages: 150)
                let topic = server.baseURL + "/topics/clicks"
                _ = try await api.http.request(.PUT, topic, json: ["partitions": 3])
                let records: [[String: Any]] = (0..<30).map { ["key": "user-\($0 % 4)", "value": "click \($0)"] }
                _ = try await api.http.request(.POST, topic + "/messages", json: ["messages": records])
                let joined = try await api.http.request(.POST, topic + "/groups/g/members", json: [:])
                #expect(joined.status == 200, "\(text(joined.body))")
                await server.terminate()

                let listed = try await runTernLMDB(["log", server.dataDirectory, "--json", "--limit", "100000"])
                #expect(listed.status == 0, "\(listed.error)")
                let entries = try jsonLines(listed.output)
                let kinds = Set(entries.compactMap { $0["kind"] as? String })
                for kind in ["create_queue", "send", "receive", "create_topic", "produce", "join_group", "tick"] {
                    #expect(kinds.contains(kind), "no \(kind) in \(kinds.sorted())")
                }
                #expect(entries.map { int($0["index"])! } == Array(1...entries.count), "indexes are dense from 1")

                let target = root.appending("replayed")
                let replayed = try await runTernLMDB(["replay", server.dataDirectory, target])
                #expect(replayed.status == 0, "\(replayed.error)")
                let original = try await runTernLMDB(["dump", "--state", server.dataDirectory])
                let rebuilt = try await runTernLMDB(["dump", "--state", target])
                #expect(original.status == 0 && rebuilt.status == 0)
                #expect(original.output.count > 1000)
                #expect(original.output == rebuilt.output, "the replayed directory has the same state")

                // Replaying into a directory that is not empty is refused, and changes nothing there.
                let again = try await runTernLMDB(["replay", server.dataDirectory, target])
                #expect(again.status == 1)
                #expect(again.error.contains("not empty"))
                #expect(try await runTernLMDB(["dump", "--state", target]).output == rebuilt.output)
            }
        }

        @Test func withoutTheFlag_nothingIsLogged_andReplaySaysWhy() async throws {
            try await withServer(LMDBToolTests.serverArguments) { server, root in
                let api = QueueAPI(baseURL: server.baseURL)
                try await mixedTraffic(api, queues: 1, messages: 20)
                await server.terminate()
                let listed = try await runTernLMDB(["log", server.dataDirectory])
                #expect(listed.status == 0)
                #expect(listed.output.isEmpty)
                #expect(listed.error.contains("--command-log-bytes"))
                let replayed = try await runTernLMDB(["replay", server.dataDirectory, root.appending("nothing")])
                #expect(replayed.status == 1)
                #expect(replayed.error.contains("logged no commands"))
            }
        }
    }
}
