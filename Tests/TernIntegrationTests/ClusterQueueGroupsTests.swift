import Foundation
import Testing
import TernClient
import TernCore
import TernTestKit

extension IntegrationTests {
    /// Queue groups (decision 140, `--queue-groups`): each queue is a replication group of its
    /// own, placed on the voters by rendezvous hashing, so their leaders spread over the nodes;
    /// `colocate_with` shares a group; any node serves any queue; a group's leader dying loses
    /// no acknowledged message; deleting a queue removes its group.
    @Suite(.serialized) struct ClusterQueueGroupsTests {
        typealias Cluster = ClusterProcessTests

        @Test func queuesHaveGroupsOfTheirOwn_spreadOverTheNodes_andKeepEveryMessageThroughALeaderKill() async throws {
            try await Cluster.withCluster("tern-queue-groups", arguments: ["--queue-groups", "--max-queue-groups", "11"]) { nodes, root in
                let names = (0..<8).map { "q\($0)" }
                for name in names {
                    let created = try await Cluster.retrying { try await Cluster.call(.PUT, nodes[0].process.baseURL + "/queues/\(name)") }
                    #expect(created.status == 201, "PUT /queues/\(name): \(created.status) \(String(decoding: created.body, as: UTF8.self))")
                }
                let paired = try await Cluster.retrying {
                    try await Cluster.call(.PUT, nodes[1].process.baseURL + "/queues/pair", json: ["colocate_with": "q0"])
                }
                #expect(paired.status == 201)
                let bad = try await Cluster.call(.PUT, nodes[2].process.baseURL + "/queues/lonely", json: ["colocate_with": "missing"])
                #expect(bad.status == 404, "colocating with a queue that does not exist is refused")
                let moved = try await Cluster.retrying {
                    try await Cluster.call(.PUT, nodes[2].process.baseURL + "/queues/pair", json: ["colocate_with": "q1"])
                }
                #expect(moved.status == 409, "colocation cannot change after creation")
                let same = try await Cluster.retrying {
                    try await Cluster.call(.PUT, nodes[2].process.baseURL + "/queues/pair", json: ["colocate_with": "q0", "visibility_timeout": 45])
                }
                #expect(same.status == 200, "restating the colocation is an update")
                #expect((same.json["attributes"] as? [String: Any])?["visibility_timeout"] as? Int == 45)

                // A queue answers through every node as soon as its create did: a replica that has
                // not heard from the new group's leader yet sends the request to the preferred
                // leader instead of answering 503 (no retries here).
                for k in 0..<4 {
                    let made = try await Cluster.retrying { try await Cluster.call(.PUT, nodes[0].process.baseURL + "/queues/fresh\(k)") }
                    #expect(made.status == 201)
                    for node in nodes.dropFirst() {
                        let sent = try await Cluster.call(.POST, node.process.baseURL + "/queues/fresh\(k)/messages", json: ["message": "x"])
                        #expect(sent.status == 201, "fresh\(k) through \(node.id): \(sent.status) \(String(decoding: sent.body, as: UTF8.self))")
                    }
                    let dropped = try await Cluster.retrying { try await Cluster.call(.DELETE, nodes[0].process.baseURL + "/queues/fresh\(k)") }
                    #expect(dropped.status == 204)
                }

                // Sends through every node in turn; who served each queue's sends.
                var sent: [String: [String]] = [:]
                var servers: [String: Set<String>] = [:]
                func send(_ name: String, _ body: String, through node: Cluster.Node) async throws {
                    let answer = try await Cluster.retrying {
                        try await Cluster.call(.POST, node.process.baseURL + "/queues/\(name)/messages", json: ["message": body])
                    }
                    #expect(answer.status == 201, "send to \(name): \(answer.status) \(String(decoding: answer.body, as: UTF8.self))")
                    guard answer.status == 201 else { return }
                    sent[name, default: []].append(body)
                    if let server = answer.servedBy { servers[name, default: []].insert(server) }
                }
                for (k, name) in (names + ["pair"]).enumerated() {
                    for m in 0..<10 { try await send(name, "\(name)-\(m)", through: nodes[(k + m) % nodes.count]) }
                }
                // One leader per group while nothing fails, and not one leader for all of them.
                #expect(servers.values.allSatisfy { $0.count == 1 }, "\(servers)")
                #expect(Set(servers.values.compactMap(\.first)).count >= 2, "queue leaders spread over the nodes: \(servers)")
                #expect(servers["pair"] == servers["q0"], "a colocated queue is led with the queue it shares a group with")

                let listed = try await Cluster.retrying { try await Cluster.call(.GET, nodes[2].process.baseURL + "/queues") }
                let queues = listed.json["queues"] as? [[String: Any]] ?? []
                #expect(queues.compactMap { $0["name"] as? String } == (names + ["pair"]).sorted())
                #expect(queues.allSatisfy { ($0["messages"] as? [String: Any])?["total"] as? Int == 10 }, "\(queues)")

                // Metrics: every replica counts a queue group's queues and reports the group's
                // Raft state; its leader says it leads.
                for entry in nodes {
                    let scraped = try await Cluster.retrying { try await Cluster.call(.GET, entry.process.baseURL + "/metrics") }
                    let text = String(decoding: scraped.body, as: UTF8.self)
                    #expect(text.contains("tern_queue_messages{queue=\"q1\",state=\"ready\"} 10.0\n"), "\(entry.id): q1's depth")
                    #expect(text.contains("tern_queue_groups 8.0\n"), "\(entry.id) holds the 8 groups (pair shares q0's)")
                    let leads = text.split(separator: "\n").contains { $0.hasPrefix("tern_queue_group_is_leader{") && Double($0.split(separator: " ").last ?? "") == 1 }
                    #expect(leads == (servers.values.contains { $0.first == entry.id }), "\(entry.id) reports the groups it leads")
                }

                // Binary: a node that does not lead q1's group answers NotLeader naming the
                // group's leader, which TernClient follows.
                let q1Leader = try #require(nodes.first { $0.id == servers["q1"]?.first })
                let other = try #require(nodes.first { $0.id != q1Leader.id })
                var pinnedSettings = TernClient.Settings()
                pinnedSettings.maxLeaderRedirects = 0
                pinnedSettings.discoverLeader = false
                let pinned = TernClient(host: "127.0.0.1", port: other.binaryPort, settings: pinnedSettings)
                do throws(TernError) {
                    _ = try await pinned.send([OutgoingMessage(body: Array("x".utf8))], to: "q1")
                    Issue.record("a node that does not lead q1's group served a binary send")
                } catch {
                    #expect(error.code == .notLeader)
                    #expect(error.message.hasSuffix(" at 127.0.0.1:\(q1Leader.binaryPort)"), "\(error.message)")
                }
                do throws(TernError) {
                    _ = try await pinned.listQueues()
                    Issue.record("binary list queues answered with queue groups on")
                } catch {
                    #expect(error.code == .notImplemented)
                }
                await pinned.close()
                let client = TernClient(host: "127.0.0.1", port: other.binaryPort)
                _ = try await client.send([OutgoingMessage(body: Array("q1-binary".utf8))], to: "q1")
                sent["q1", default: []].append("q1-binary")
                let (created, _) = try await client.createQueue("binary-made")
                #expect(created)
                await client.close()
                let made = try await Cluster.retrying { try await Cluster.call(.GET, nodes[0].process.baseURL + "/queues/binary-made") }
                #expect(made.status == 200, "a queue created over binary is placed and served by its group")

                // Producers come from the data group; a queue group adopts them (decision 141).
                // An idempotent producer over binary: its sends to q2 land once each.
                let producerClient = TernClient(host: "127.0.0.1", port: other.binaryPort)
                let idempotent = Producer(client: producerClient)
                for m in 0..<5 {
                    _ = try await idempotent.send(Array("q2-idempotent-\(m)".utf8), to: "q2")
                    sent["q2", default: []].append("q2-idempotent-\(m)")
                }
                // Consume-transform-produce in one colocated pipeline (stage-in, stage-out), over
                // binary: the ack and the send commit together in the pipeline's group.
                for queue in ["stage-in", "stage-out"] {
                    let made = try await Cluster.retrying {
                        try await Cluster.call(.PUT, nodes[0].process.baseURL + "/queues/\(queue)",
                                               json: queue == "stage-out" ? ["colocate_with": "stage-in"] : [:])
                    }
                    #expect(made.status == 201, "\(queue): \(String(decoding: made.body, as: UTF8.self))")
                }
                // Through every node: a follower of the data group must not forward the commit
                // to the data group's leader (which would name the group's leader, and so on).
                for (k, entry) in nodes.enumerated() {
                    let client = TernClient(host: "127.0.0.1", port: entry.binaryPort)
                    _ = try await client.send([OutgoingMessage(body: Array("job\(k)".utf8))], to: "stage-in")
                    let job = try #require(try await client.receive(from: "stage-in", waitTime: 5).first)
                    let transactional = TransactionalProducer(client: client, transactionalID: "stage-\(k)")
                    try await transactional.begin()
                    await transactional.acknowledge(job.receiptHandle, on: "stage-in")
                    await transactional.send(OutgoingMessage(body: Array(String(decoding: job.body, as: UTF8.self).uppercased().utf8)), to: "stage-out")
                    _ = try await transactional.commit()
                    let transformed = try await client.receive(from: "stage-out", maxMessages: 10, waitTime: 5)
                    #expect(transformed.map { String(decoding: $0.body, as: UTF8.self) } == ["JOB\(k)"])
                    #expect(try await client.receive(from: "stage-in", maxMessages: 10).isEmpty, "the acknowledgement committed with the send")
                    await client.close()
                }
                await producerClient.close()

                // The same over HTTP, through a node chosen without regard to leaders; a retry of
                // the commit is answered as a duplicate and applies nothing.
                let producer = try await Cluster.retrying { try await Cluster.call(.POST, nodes[1].process.baseURL + "/producers") }
                #expect(producer.status == 201)
                let identity: [String: Any] = ["producer_id": producer.json["producer_id"] ?? 0, "epoch": producer.json["epoch"] ?? 0]
                let pipelined = try await Cluster.retrying {
                    try await Cluster.call(.POST, nodes[2].process.baseURL + "/transactions", json: identity.merging([
                        "sequence": 1, "messages": [["queue": "stage-in", "message": "a"], ["queue": "stage-out", "message": "b"]],
                    ]) { $1 })
                }
                #expect(pipelined.status == 200, "\(String(decoding: pipelined.body, as: UTF8.self))")
                let again = try await Cluster.retrying {
                    try await Cluster.call(.POST, nodes[0].process.baseURL + "/transactions", json: identity.merging([
                        "sequence": 1, "messages": [["queue": "stage-in", "message": "a"], ["queue": "stage-out", "message": "b"]],
                    ]) { $1 })
                }
                #expect(again.json["duplicate"] as? Bool == true, "\(String(decoding: again.body, as: UTF8.self))")
                let stageIn = try await Cluster.call(.GET, nodes[1].process.baseURL + "/queues/stage-in")
                #expect((stageIn.json["messages"] as? [String: Any])?["total"] as? Int == 1)
                // Queues of two groups in one transaction are refused, applying nothing (the
                // receive check below finds no "t1" in q1).
                let spanning = try await Cluster.retrying {
                    try await Cluster.call(.POST, nodes[2].process.baseURL + "/transactions", json: identity.merging([
                        "sequence": 2, "messages": [["queue": "q1", "message": "t1"], ["queue": "q2", "message": "t2"]],
                    ]) { $1 })
                }
                #expect(spanning.status == 409)
                #expect((spanning.json["error"] as? [String: Any])?["code"] as? String == "TransactionSpansGroups",
                        "\(String(decoding: spanning.body, as: UTF8.self))")
                // A producer id the data group never issued is refused by the queue group too.
                let invented = try await Cluster.retrying {
                    try await Cluster.call(.POST, nodes[0].process.baseURL + "/transactions", json: [
                        "producer_id": 987_654, "epoch": 0, "messages": [["queue": "q1", "message": "t1"]],
                    ])
                }
                #expect((invented.json["error"] as? [String: Any])?["code"] as? String == "UnknownProducer",
                        "\(String(decoding: invented.body, as: UTF8.self))")

                // A queue joins its dead-letter queue's group (decision 142), so a poison message
                // moves there in one transaction; a dead-letter queue of another group is refused.
                _ = try await Cluster.retrying { try await Cluster.call(.PUT, nodes[0].process.baseURL + "/queues/dlq") }
                let source = try await Cluster.retrying {
                    try await Cluster.call(.PUT, nodes[1].process.baseURL + "/queues/source", json: ["dead_letter_queue": "dlq", "max_receive_count": 1])
                }
                #expect(source.status == 201, "\(String(decoding: source.body, as: UTF8.self))")
                // Refusals place nothing: bad attributes are checked first, and a refusal only
                // the group can make (a FIFO queue's dead-letter queue must be FIFO) is taken back.
                let badRange = try await Cluster.call(.PUT, nodes[2].process.baseURL + "/queues/bad-range", json: ["visibility_timeout": 99_999])
                #expect(badRange.status == 400)
                let badDLQ = try await Cluster.retrying {
                    try await Cluster.call(.PUT, nodes[2].process.baseURL + "/queues/bad-dlq.fifo", json: ["dead_letter_queue": "dlq", "max_receive_count": 1])
                }
                #expect(badDLQ.status == 400, "\(String(decoding: badDLQ.body, as: UTF8.self))")
                let clashing = try await Cluster.retrying {
                    try await Cluster.call(.PUT, nodes[2].process.baseURL + "/queues/source2",
                                           json: ["dead_letter_queue": "dlq", "max_receive_count": 1, "colocate_with": "q1"])
                }
                #expect(clashing.status == 409, "\(String(decoding: clashing.body, as: UTF8.self))")
                let retargeted = try await Cluster.retrying {
                    try await Cluster.call(.PUT, nodes[2].process.baseURL + "/queues/q1", json: ["dead_letter_queue": "dlq", "max_receive_count": 3])
                }
                #expect(retargeted.status == 409, "an existing queue cannot take a dead-letter queue of another group")
                _ = try await Cluster.retrying {
                    try await Cluster.call(.POST, nodes[2].process.baseURL + "/queues/source/messages", json: ["message": "poison"])
                }
                let firstTry = try await Cluster.retrying {
                    try await Cluster.call(.GET, nodes[0].process.baseURL + "/queues/source/messages?wait_time=5&visibility_timeout=1")
                }
                #expect((firstTry.json["messages"] as? [[String: Any]])?.count == 1)
                try await Task.sleep(for: .milliseconds(1_200))
                let secondTry = try await Cluster.retrying {
                    try await Cluster.call(.GET, nodes[1].process.baseURL + "/queues/source/messages?wait_time=1")
                }
                #expect((secondTry.json["messages"] as? [[String: Any]] ?? []).isEmpty, "past max_receive_count it is not delivered again")
                let parked = try await Cluster.retrying {
                    try await Cluster.call(.GET, nodes[2].process.baseURL + "/queues/dlq/messages?wait_time=5")
                }
                #expect((parked.json["messages"] as? [[String: Any]] ?? []).compactMap { $0["body"] as? String } == ["poison"])
                // A dead-letter queue deleted and made again joins the queue that names it.
                let dropped = try await Cluster.retrying { try await Cluster.call(.DELETE, nodes[0].process.baseURL + "/queues/dlq") }
                #expect(dropped.status == 204)
                let remade = try await Cluster.retrying { try await Cluster.call(.PUT, nodes[1].process.baseURL + "/queues/dlq") }
                #expect(remade.status == 201)

                // GET /cluster names each queue's own group and its leader.
                let view = try await Cluster.retrying { try await Cluster.call(.GET, nodes[0].process.baseURL + "/cluster") }
                let listedGroups = view.json["groups"] as? [[String: Any]] ?? []
                func groupEntry(_ name: String) -> [String: Any]? { listedGroups.first { $0["name"] as? String == name } }
                #expect(groupEntry("q1")?["leader"] as? String == servers["q1"]?.first, "\(listedGroups)")
                #expect((groupEntry("q1")?["group"] as? Int ?? 1) > 1)
                #expect(groupEntry("pair")?["group"] as? Int == groupEntry("q0")?["group"] as? Int)
                #expect(groupEntry("source")?["group"] as? Int == groupEntry("dlq")?["group"] as? Int)
                #expect(groupEntry("q2")?["group"] as? Int != groupEntry("q1")?["group"] as? Int)
                #expect(groupEntry("bad-range") == nil && groupEntry("bad-dlq.fifo") == nil, "refused queues are not in the catalogue")

                // Kill q0's leader; every queue keeps working through the others.
                let victim = try #require(servers["q0"]?.first)
                let node = try #require(nodes.first { $0.id == victim })
                await node.process.kill9()
                let survivors = nodes.filter { $0.id != victim }
                for (k, name) in (names + ["pair"]).enumerated() {
                    for m in 10..<15 { try await send(name, "\(name)-\(m)", through: survivors[(k + m) % survivors.count]) }
                }
                // Every acknowledged send is received, once.
                for (k, name) in (names + ["pair"]).enumerated() {
                    var received: [String] = []
                    let base = survivors[k % survivors.count].process.baseURL
                    while received.count < sent[name, default: []].count {
                        let answer = try await Cluster.retrying {
                            try await Cluster.call(.GET, base + "/queues/\(name)/messages?batch_size=10&wait_time=1&visibility_timeout=300")
                        }
                        let messages = answer.json["messages"] as? [[String: Any]] ?? []
                        if messages.isEmpty && answer.status == 200 { break }
                        received += messages.compactMap { $0["body"] as? String }
                    }
                    #expect(received.sorted() == sent[name, default: []].sorted(), "queue \(name)")
                }

                let deleted = try await Cluster.retrying { try await Cluster.call(.DELETE, survivors[0].process.baseURL + "/queues/q3") }
                #expect(deleted.status == 204)
                let gone = try await Cluster.retrying { try await Cluster.call(.GET, survivors[1].process.baseURL + "/queues/q3") }
                #expect(gone.status == 404)
                let after = try await Cluster.retrying { try await Cluster.call(.GET, survivors[1].process.baseURL + "/queues") }
                #expect((after.json["queues"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
                        == (names + ["pair", "binary-made", "stage-in", "stage-out", "dlq", "source"]).filter { $0 != "q3" }.sorted())
                // Every replica deletes the group's directory: 11 groups (pair shares q0's,
                // stage-out stage-in's, source dlq's) less q3's.
                func groupDirectories(_ node: Cluster.Node) -> Int {
                    ((try? FileManager.default.contentsOfDirectory(atPath: root.appending("\(node.id)/data/groups"))) ?? []).count
                }
                let deadline = ContinuousClock.now + .seconds(10)
                while survivors.contains(where: { groupDirectories($0) != 10 }) && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(survivors.map(groupDirectories) == [10, 10], "the deleted queue's group is gone from disk")

                // At most 11 queue groups (--max-queue-groups 11): one more fits, the next is
                // refused and placed nowhere, a colocated queue adds no group.
                let ninth = try await Cluster.retrying { try await Cluster.call(.PUT, survivors[0].process.baseURL + "/queues/ninth") }
                #expect(ninth.status == 201)
                let tenth = try await Cluster.retrying { try await Cluster.call(.PUT, survivors[1].process.baseURL + "/queues/tenth") }
                #expect(tenth.status == 409, "\(String(decoding: tenth.body, as: UTF8.self))")
                let absent = try await Cluster.retrying { try await Cluster.call(.GET, survivors[0].process.baseURL + "/queues/tenth") }
                #expect(absent.status == 404, "a refused queue is not placed")
                let shared = try await Cluster.retrying {
                    try await Cluster.call(.PUT, survivors[1].process.baseURL + "/queues/tenth", json: ["colocate_with": "ninth"])
                }
                #expect(shared.status == 201, "a colocated queue needs no new group")
            }
        }

        /// Each group's own quota bounds that group; the node's budget (decision 143) bounds what
        /// all the groups it holds store together: three queue groups on three nodes do not
        /// store three times `--max-storage-bytes`, and an acknowledgement makes room again.
        @Test func theGroupsOfANode_shareItsStorageBudget() async throws {
            let limit = 256 * 1024
            try await Cluster.withCluster("tern-queue-budget", arguments: ["--queue-groups", "--max-storage-bytes", "\(limit)"]) { nodes, _ in
                let queues = ["a", "b", "c"]
                for name in queues {
                    let made = try await Cluster.retrying { try await Cluster.call(.PUT, nodes[0].process.baseURL + "/queues/\(name)") }
                    #expect(made.status == 201)
                }
                // An idle group writes (almost) nothing (decision 144): before, its leader
                // replicated two due-work entries every second.
                func commitIndex() async throws -> Int {
                    let view = try await Cluster.retrying { try await Cluster.call(.GET, nodes[0].process.baseURL + "/cluster") }
                    let groups = view.json["groups"] as? [[String: Any]] ?? []
                    return groups.compactMap { $0["name"] as? String == "a" ? $0["commit_index"] as? Int : nil }.first ?? -1
                }
                try await Task.sleep(for: .seconds(2))
                let before = try await commitIndex()
                try await Task.sleep(for: .seconds(4))
                let after = try await commitIndex()
                #expect(before > 0 && after - before <= 2, "idle queue group's commit index went \(before) → \(after) in 4 s")

                let body = String(repeating: "x", count: 1024)
                var accepted = 0
                var refusal: Cluster.Answer?
                for k in 0..<1_000 {
                    let answer = try await Cluster.retrying {
                        try await Cluster.call(.POST, nodes[k % 3].process.baseURL + "/queues/\(queues[k % 3])/messages", json: ["message": body])
                    }
                    if answer.status == 201 { accepted += 1 } else { refusal = answer; break }
                }
                let refused = try #require(refusal, "1,000 sends of 1 KiB fit in a budget of 256 KiB")
                #expect(refused.status == 507)
                let message = (refused.json["error"] as? [String: Any])?["message"] as? String ?? ""
                #expect(message.contains("replication groups together"), "\(message)")
                // Each message is accounted 1,024 + 128 bytes; one group alone would take ~227.
                let perMessage = 1024 + 128
                #expect(accepted * perMessage <= limit + 64 * perMessage, "accepted \(accepted) messages")
                #expect(accepted * perMessage >= limit / 2, "accepted \(accepted) messages")

                // Receiving and acknowledging frees room, and sends are accepted again (a burst
                // may overshoot the budget by what the node accepts in 200 ms, so a few rounds).
                var again: Cluster.Answer?
                for _ in 0..<20 {
                    let received = try await Cluster.retrying {
                        try await Cluster.call(.GET, nodes[1].process.baseURL + "/queues/a/messages?batch_size=10&visibility_timeout=60")
                    }
                    for message in received.json["messages"] as? [[String: Any]] ?? [] {
                        let handle = try #require(message["receipt_handle"] as? String)
                        let encoded = try #require(handle.addingPercentEncoding(withAllowedCharacters: .alphanumerics))
                        let acked = try await Cluster.retrying {
                            try await Cluster.call(.DELETE, nodes[2].process.baseURL + "/queues/a/messages/\(encoded)")
                        }
                        #expect(acked.status == 204)
                    }
                    try await Task.sleep(for: .milliseconds(300))
                    let answer = try await Cluster.retrying {
                        try await Cluster.call(.POST, nodes[0].process.baseURL + "/queues/b/messages", json: ["message": "small"])
                    }
                    again = answer
                    if answer.status == 201 { break }
                }
                #expect(again?.status == 201, "\(String(decoding: again?.body ?? Data(), as: UTF8.self))")
            }
        }
    }
}
