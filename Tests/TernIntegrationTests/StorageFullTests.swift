import AsyncHTTPClient
import Foundation
import Testing
import TernTestKit

extension IntegrationTests {
    /// A broker whose map is capped at 8 MiB: sends fail with 507 `StorageFull` once it is
    /// nearly full, while receive, ack, purge and delete keep working and free the space.
    @Suite struct StorageFullTests {
        static let mapBytes = 8 << 20
        static let bodyBytes = 16 << 10

        /// 16 KiB of random letters and digits (snappy finds nothing to compress).
        static func body(_ n: Int, random: inout SeededGenerator) -> String {
            let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)
            let prefix = Array("m\(n)-".utf8)
            let rest = (0..<bodyBytes - prefix.count).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }
            return String(decoding: prefix + rest, as: UTF8.self)
        }

        /// The logical quota (decision 111): `--max-storage-bytes` is applied as broker state at
        /// start; a send past it answers 507 `StorageFull` naming the quota, an ack makes room,
        /// the counter survives a restart (and `tern-lmdb verify` agrees with it), and a
        /// restart with the quota raised accepts sends again.
        @Test(.timeLimit(.minutes(2)))
        func logicalQuota_refusesSendsAt507_andIsState() async throws {
            let root = try TemporaryDirectory(prefix: "tern-quota")
            defer { root.remove() }
            let each = 1024 + 128   // accounted bytes of a 1 KiB message
            let server = try await TernProcess.launch(in: root, extraArguments: ["--max-storage-bytes", "\(each * 10)"])
            let api = QueueAPI(baseURL: server.baseURL)
            _ = try await api.createQueue("jobs")
            let body = String(repeating: "q", count: 1024)
            for _ in 0..<10 {
                let (status, answer) = try await api.send("jobs", body)
                try #require(status == 201, "\(text(answer))")
            }
            let refused = try await api.send("jobs", body)
            #expect(refused.status == 507, "\(text(refused.body))")
            #expect(HTTP.errorCode(refused.body) == "StorageFull")
            #expect(text(refused.body).contains("quota"), "\(text(refused.body))")
            let (_, received, _) = try await api.receive("jobs", batchSize: 1)
            #expect(try await api.acknowledge("jobs", received[0].receiptHandle) == 204)
            #expect(try await api.send("jobs", body).status == 201, "an ack made room")
            #expect(try await api.send("jobs", body).status == 507)

            await server.kill9()
            try await server.start()
            #expect(try await api.send("jobs", body).status == 507, "the counter survived the crash")
            await server.terminate()
            let verify = try await TernCLI.run(["verify", root.appending("data")], executable: "tern-lmdb", scratch: root)
            #expect(verify.status == 0, "\(String(decoding: verify.standardOutput, as: UTF8.self)) \(verify.errorText)")

            let raised = try TernProcess(dataDirectory: root.appending("data"), logFile: root.appending("ternd.log"),
                                         extraArguments: ["--max-storage-bytes", "\(each * 20)"])
            try await raised.start()
            #expect(try await QueueAPI(baseURL: raised.baseURL).send("jobs", body).status == 201, "a raised quota accepts sends")
            await raised.terminate()
        }

        @Test(.timeLimit(.minutes(2)))
        func sendsUntilFull_get507StorageFull_whileAckPurgeAndDeleteSucceed_andSendsResumeAfterwards() async throws {
            // The logical quota off: this exercises the map's physical check (the safety net).
            try await withServer(["--max-map-bytes", "\(Self.mapBytes)", "--max-storage-bytes", "0"]) { server, _ in
                let api = QueueAPI(baseURL: server.baseURL)
                var random = SeededGenerator(seed: 507)
                for queue in ["fill", "other"] {
                    let (status, body) = try await api.createQueue(queue)
                    try #require(status == 201, "PUT /queues/\(queue): \(status) \(text(body))")
                }
                for n in 0..<5 {
                    let (status, body) = try await api.send("other", Self.body(n, random: &random))
                    try #require(status == 201, "send to other: \(status) \(text(body))")
                }

                // Fill until refused.
                var accepted = 0
                var refusal: (status: Int, body: Data)?
                for n in 0..<2_000 {
                    let answer = try await api.send("fill", Self.body(n, random: &random))
                    if answer.status == 201 {
                        accepted += 1
                        continue
                    }
                    refusal = answer
                    break
                }
                let refused = try #require(refusal, "2,000 sends of 16 KiB into an 8 MiB map were all accepted")
                #expect(refused.status == 507, "\(text(refused.body))")
                #expect(HTTP.errorCode(refused.body) == "StorageFull", "\(text(refused.body))")
                #expect(accepted >= 100, "only \(accepted) sends fit into 8 MiB")
                let fillTotal = try await api.total("fill")
                #expect(fillTotal == accepted, "the refused send stored nothing")

                // Everything that frees space still works while full.
                let (receiveStatus, received, receiveBody) = try await api.receive("fill", batchSize: 10, visibilityTimeout: 60)
                #expect(receiveStatus == 200, "receive while full: \(receiveStatus) \(text(receiveBody))")
                #expect(received.count == 10)
                for message in received {
                    let status = try await api.acknowledge("fill", message.receiptHandle)
                    #expect(status == 204, "ack while full")
                }
                let (purgeStatus, purgeBody) = try await api.purge("fill")
                #expect(purgeStatus == 200, "purge while full: \(text(purgeBody))")
                #expect(int(try HTTP.object(purgeBody)["purged"]) == accepted - received.count)
                let deleteStatus = try await api.delete("other")
                #expect(deleteStatus == 204, "delete queue while full")
                #expect(try await api.total("fill") == 0)

                // Sends are accepted again (space freed by a purge or delete may be swept in the
                // background: allow a few seconds).
                var resumed: (status: Int, body: Data) = (0, Data())
                let deadline = ContinuousClock.now + .seconds(10)
                repeat {
                    resumed = try await api.send("fill", Self.body(100_000, random: &random))
                    if resumed.status == 201 { break }
                    try await Task.sleep(for: .milliseconds(100))
                } while ContinuousClock.now < deadline
                #expect(resumed.status == 201, "send after freeing space: \(resumed.status) \(text(resumed.body))")
                for n in 0..<20 {
                    let (status, body) = try await api.send("fill", Self.body(200_000 + n, random: &random))
                    #expect(status == 201, "send \(n) after freeing space: \(status) \(text(body))")
                }
                #expect(try await api.total("fill") == 21)
            }
        }
    }
}
