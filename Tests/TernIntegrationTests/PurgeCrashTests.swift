import Foundation
import Testing
import TernTestKit

extension IntegrationTests {
    /// Purge is atomic to clients across `kill -9` (decision 112): a purge interrupted by a
    /// crash leaves all or none of the queue, and once it has answered, no message sent before
    /// it is ever delivered again, though its records are still being swept when `ternd` dies.
    @Suite struct PurgeCrashTests {
        static let messages = 25_000

        static func fill(_ api: QueueAPI, round: Int) async throws {
            for batch in 0..<(messages / 500) {
                let list = (0..<500).map { ["message": "r\(round)-b\(batch)-m\($0)"] }
                let (status, body) = try await api.http.request(.POST, api.url("p", "/messages"), json: ["messages": list], timeout: .seconds(60))
                try #require(status == 201 || status == 200, "batch send: \(status) \(text(body))")
            }
        }

        /// Receives until the queue answers nothing; returns the bodies delivered.
        static func drain(_ api: QueueAPI) async throws -> [String] {
            var bodies = [String]()
            while true {
                let (status, received, body) = try await api.receive("p", batchSize: 1000, visibilityTimeout: 600)
                try #require(status == 200, "\(text(body))")
                if received.isEmpty { return bodies }
                bodies += received.map(\.body)
            }
        }

        @Test(.timeLimit(.minutes(5)))
        func purgeInterruptedByKill9_isAllOrNothing_andAnAnsweredPurgeStaysDone() async throws {
            let root = try TemporaryDirectory(prefix: "tern-purge")
            defer { root.remove() }
            let server = try await TernProcess.launch(in: root)
            let api = QueueAPI(baseURL: server.baseURL)
            _ = try await api.createQueue("p", attributes: ["visibility_timeout": 1])

            // Round 1: kill -9 while the purge request is in flight.
            try await Self.fill(api, round: 1)
            let inFlight = try await api.receive("p", batchSize: 100).messages
            #expect(inFlight.count == 100)
            let purge = Task { try? await api.purge("p") }
            // Kill as soon as the purge shows: a chunked purge shows a partial queue, an atomic
            // one an empty queue whose records are still being swept.
            let deadline = ContinuousClock.now + .seconds(60)
            var seen = Self.messages
            while seen == Self.messages && ContinuousClock.now < deadline {
                seen = try await api.total("p") ?? seen
            }
            await server.kill9()
            print("purge crash test: killed when the queue showed \(seen) of \(Self.messages) messages")
            let answered = await purge.value?.status == 200
            try await server.start()
            let total = try #require(try await api.total("p"))
            #expect(total == 0 || total == Self.messages, "a purge cut by kill -9 left \(total) of \(Self.messages) messages")
            if answered { #expect(total == 0, "the purge answered, yet \(total) messages came back") }
            if total != 0 { _ = try await api.purge("p") }
            try await Task.sleep(for: .seconds(2))  // the in-flight ones' visibility timeout passes
            #expect(try await Self.drain(api).isEmpty, "a purged message was delivered")
            for message in inFlight.prefix(3) {
                #expect(try await api.acknowledge("p", message.receiptHandle) == 410, "a purged message's handle is stale")
            }

            // Round 2: the purge answers, then kill -9 at once (its records are being swept).
            try await Self.fill(api, round: 2)
            _ = try await api.receive("p", batchSize: 100)
            let (status, body) = try await api.purge("p")
            #expect(status == 200, "\(text(body))")
            #expect(int(try HTTP.object(body)["purged"]) == Self.messages)
            await server.kill9()
            try await server.start()
            #expect(try await api.total("p") == 0)
            try await Task.sleep(for: .seconds(2))
            #expect(try await Self.drain(api).isEmpty, "a message purged before the crash was delivered after it")
            let (sentStatus, _) = try await api.send("p", "after")
            #expect(sentStatus == 201)
            #expect(try await Self.drain(api) == ["after"])
            await server.terminate()
            let verify = try await TernCLI.run(["verify", root.appending("data")], executable: "tern-lmdb", scratch: root)
            #expect(verify.status == 0, "\(String(decoding: verify.standardOutput, as: UTF8.self)) \(verify.errorText)")
        }
    }
}
