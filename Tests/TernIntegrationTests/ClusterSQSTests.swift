import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Testing
import TernTestKit

extension IntegrationTests {
    /// The SQS endpoint of a 3-node cluster (decisions 136–139): every node started with
    /// `--sqs`; a follower forwards SQS requests to the leader's SQS endpoint, answers name the
    /// node the client reached, and what the front end keeps (tags, the purge window) is in the
    /// replicated state, so a new leader serves it after the old one is killed with `kill -9`.
    @Suite(.serialized) struct ClusterSQSTests {
        typealias Cluster = ClusterProcessTests

        /// One SQS answer (AWS JSON 1.0) and the node that served it.
        struct Answer {
            var status: Int
            var json: [String: Any]
            var servedBy: String?
            var errorType: String? { (json["__type"] as? String)?.split(separator: "#").last.map(String.init) }
        }

        /// Calls `action` on the SQS endpoint at `endpoint` (`http://HOST:PORT`).
        static func sqs(_ endpoint: String, _ action: String, _ parameters: [String: Any], timeout: Int64 = 30) async throws -> Answer {
            var request = HTTPClientRequest(url: endpoint + "/")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/x-amz-json-1.0")
            request.headers.add(name: "X-Amz-Target", value: "AmazonSQS." + action)
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: parameters)))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(timeout))
            let body = try await response.body.collect(upTo: 16 << 20)
            let json = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
            return Answer(status: Int(response.status.code), json: json, servedBy: response.headers.first(name: "Tern-Served-By"))
        }

        /// Retries `action` while the answer is `ServiceUnavailable` (no leader yet), up to 60 s,
        /// as SDKs retry it.
        static func sqsRetrying(_ endpoint: String, _ action: String, _ parameters: [String: Any]) async throws -> Answer {
            let deadline = ContinuousClock.now + .seconds(60)
            while true {
                if let answer = try? await sqs(endpoint, action, parameters), answer.status != 503 { return answer }
                guard ContinuousClock.now < deadline else { throw TernProcess.Failure("SQS \(action) still unavailable after 60 s") }
                try await Task.sleep(for: .milliseconds(200))
            }
        }

        /// A Query-protocol request (form-encoded, XML answer) sent to `url` itself, as SDKs that
        /// use the queue URL as their endpoint send it.
        static func query(_ url: String, _ form: String) async throws -> (status: Int, body: String) {
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: form))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            let body = try await response.body.collect(upTo: 1 << 20)
            return (Int(response.status.code), String(buffer: body))
        }

        /// Real SDKs pointed at a follower, with authentication on: boto3's whole suite (every
        /// action, move tasks included, which the leader runs), SigV4 checks (the leader
        /// verifies what the client signed for the follower's `Host`), and the older boto3
        /// speaking the Query protocol, signed.
        @Test(.enabled(if: SQSPython.current != nil, "needs TERN_SQS_VENV (make sqs-venv)"))
        func realSDKsThroughAFollower_withSignatures() async throws {
            let root = try TemporaryDirectory(prefix: "tern-cluster-sqs-sdk")
            defer { root.remove() }
            let config = root.appending("ternd.yaml")
            try """
                auth:
                  enabled: true
                  tokens:
                    - {name: operator, token: "operator-secret-0123456789", permissions: [admin]}
                    - {name: orders-service, token: "orders-secret-0123456789", permissions: ["produce:orders-*", "consume:orders-*"]}
                """.write(toFile: config, atomically: true, encoding: .utf8)
            // With authentication on, peers must prove the cluster key.
            let key = root.appending("cluster.key")
            try "a-cluster-key-for-the-sqs-test-0123".write(toFile: key, atomically: true, encoding: .utf8)
            let ports = try (0..<3).map { _ in try TernProcess.freePort() }
            let token = [("Authorization", "Bearer operator-secret-0123456789")]
            let nodes = try await Cluster.startCluster(root, arguments: ["--config", config, "--cluster-key", key],
                                                       nodeArguments: { ["--sqs", "127.0.0.1:\(ports[$0])"] }, headers: token)
            try await Cluster.killing(nodes) {
                let leader = try await Cluster.leader(of: nodes, headers: token)
                let index = nodes.firstIndex { $0.id != leader.id }!
                let endpoint = "http://127.0.0.1:\(ports[index])"
                let signed = ["SQS_ENDPOINT": endpoint, "SQS_ACCESS_KEY": "operator", "SQS_SECRET_KEY": "operator-secret-0123456789"]
                var runs = [("test_auth.py", SQSPython.current!, ["SQS_ENDPOINT": endpoint]),
                            ("test_boto3.py", SQSPython.current!, signed)]
                if let query = SQSPython.query { runs.append(("test_query.py", query, signed)) }
                for (script, venv, environment) in runs {
                    let result = try await SQSPython.run(script, venv: venv, environment: environment, scratch: root)
                    #expect(result.status == 0, "\(script) through follower \(nodes[index].id) failed:\n\(result.output)\n--- leader log ---\n\(leader.process.logTail())")
                }
            }
        }

        @Test func aFollowerServesSQSAsTheLeader_andTagsSurviveALeaderKill() async throws {
            let root = try TemporaryDirectory(prefix: "tern-cluster-sqs")
            defer { root.remove() }
            let ports = try (0..<3).map { _ in try TernProcess.freePort() }
            let nodes = try await Cluster.startCluster(root, nodeArguments: { ["--sqs", "127.0.0.1:\(ports[$0])"] })
            func endpoint(_ node: Cluster.Node) -> String { "http://127.0.0.1:\(ports[nodes.firstIndex { $0.id == node.id }!])" }
            try await Cluster.killing(nodes) {
                let leader = try await Cluster.leader(of: nodes)
                let follower = nodes.first { $0.id != leader.id }!
                let (viaFollower, viaLeader) = (endpoint(follower), endpoint(leader))

                // CreateQueue through the follower: the leader serves it; the URL names the node asked.
                let created = try await Self.sqsRetrying(viaFollower, "CreateQueue", ["QueueName": "orders", "tags": ["team": "payments"]])
                #expect(created.status == 200, "\(created.json)")
                #expect(created.servedBy == leader.id, "the follower forwarded CreateQueue to the leader")
                let url = created.json["QueueUrl"] as? String ?? ""
                #expect(url == viaFollower + "/000000000000/orders", "the queue URL names the node the client reached")
                let onLeader = try await Self.sqs(viaLeader, "GetQueueUrl", ["QueueName": "orders"])
                #expect(onLeader.json["QueueUrl"] as? String == viaLeader + "/000000000000/orders")

                // Send, receive and delete through the follower.
                let sent = try await Self.sqs(viaFollower, "SendMessage", ["QueueUrl": url, "MessageBody": "first"])
                #expect(sent.status == 200 && sent.json["MessageId"] is String, "\(sent.json)")
                let received = try await Self.sqs(viaFollower, "ReceiveMessage", ["QueueUrl": url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 2])
                let messages = received.json["Messages"] as? [[String: Any]] ?? []
                #expect(messages.count == 1 && messages.first?["Body"] as? String == "first", "\(received.json)")
                #expect(received.servedBy == leader.id)
                let handle = messages.first?["ReceiptHandle"] as? String ?? ""
                let deleted = try await Self.sqs(viaFollower, "DeleteMessage", ["QueueUrl": url, "ReceiptHandle": handle])
                #expect(deleted.status == 200, "\(deleted.json)")
                let stale = try await Self.sqs(viaFollower, "DeleteMessage", ["QueueUrl": url, "ReceiptHandle": "not-a-handle"])
                #expect(stale.status == 400 && stale.errorType == "ReceiptHandleIsInvalid", "errors are relayed as the leader answered them")

                // Tags through the follower read the same on the leader; the queue URL itself is an
                // endpoint (the Query protocol, as older SDKs send it).
                let tagged = try await Self.sqs(viaFollower, "TagQueue", ["QueueUrl": url, "Tags": ["env": "prod"]])
                #expect(tagged.status == 200, "\(tagged.json)")
                let expected = ["team": "payments", "env": "prod"]
                for via in [viaFollower, viaLeader] {
                    let tags = try await Self.sqs(via, "ListQueueTags", ["QueueUrl": url])
                    #expect(tags.json["Tags"] as? [String: String] == expected, "\(via): \(tags.json)")
                }
                let viaURL = try await Self.query(url, "Action=ListQueueTags&Version=2012-11-05")
                #expect(viaURL.status == 200 && viaURL.body.contains("<Key>env</Key>") && viaURL.body.contains("<Value>prod</Value>"), "\(viaURL.body)")

                // A deleted name may not be re-created for 60 s (SQS), on any leader.
                #expect(try await Self.sqs(viaFollower, "CreateQueue", ["QueueName": "gone"]).status == 200)
                #expect(try await Self.sqs(viaFollower, "DeleteQueue", ["QueueUrl": viaFollower + "/000000000000/gone"]).status == 200)
                // A purge starts SQS's 60-second window; a message stays for after the kill.
                #expect(try await Self.sqs(viaFollower, "PurgeQueue", ["QueueUrl": url]).status == 200)
                let kept = try await Self.sqs(viaFollower, "SendMessage", ["QueueUrl": url, "MessageBody": "kept"])
                #expect(kept.status == 200)

                // kill -9 of the leader: a new leader serves the tags, the window and the message.
                await leader.process.kill9()
                let survivor = nodes.first { $0.id != leader.id }!
                let tags = try await Self.sqsRetrying(endpoint(survivor), "ListQueueTags", ["QueueUrl": url])
                #expect(tags.json["Tags"] as? [String: String] == expected, "tags after the kill: \(tags.json)")
                #expect(tags.servedBy != leader.id)
                let again = try await Self.sqsRetrying(endpoint(survivor), "PurgeQueue", ["QueueUrl": url])
                #expect(again.status == 403 && again.errorType == "PurgeQueueInProgress", "the purge window survives: \(again.json)")
                let recreated = try await Self.sqsRetrying(endpoint(survivor), "CreateQueue", ["QueueName": "gone"])
                #expect(recreated.status == 400 && recreated.errorType == "QueueDeletedRecently", "the delete window survives: \(recreated.json)")
                let after = try await Self.sqsRetrying(endpoint(survivor), "ReceiveMessage",
                                                       ["QueueUrl": url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 2])
                #expect((after.json["Messages"] as? [[String: Any]])?.map { $0["Body"] as? String } == ["kept"], "\(after.json)")
            }
        }
    }
}
