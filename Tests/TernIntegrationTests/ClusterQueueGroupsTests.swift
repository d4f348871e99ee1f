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
            try await Cluster.withCluster("tern-queue-groups", arguments: ["--queue-groups", "--max-queue-groups", "9"]) { nodes, root in
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

                // Producers and transactions live in the data group: one naming q1 spans two
                // groups and is refused, applying nothing (the receive check below finds no "t1").
                let producer = try await Cluster.retrying { try await Cluster.call(.POST, nodes[1].process.baseURL + "/producers") }
                #expect(producer.status == 201)
                let spanning = try await Cluster.retrying {
                    try await Cluster.call(.POST, nodes[2].process.baseURL + "/transactions", json: [
                        "producer_id": producer.json["producer_id"] ?? 0, "epoch": producer.json["epoch"] ?? 0,
                        "messages": [["queue": "q1", "message": "t1"]],
                    ])
                }
                #expect(spanning.status == 409)
                #expect((spanning.json["error"] as? [String: Any])?["code"] as? String == "TransactionSpansGroups",
                        "\(String(decoding: spanning.body, as: UTF8.self))")

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
                        == (names + ["pair", "binary-made"]).filter { $0 != "q3" }.sorted())
                // Every replica deletes the group's directory: 9 groups (pair shares q0's) less q3's.
                func groupDirectories(_ node: Cluster.Node) -> Int {
                    ((try? FileManager.default.contentsOfDirectory(atPath: root.appending("\(node.id)/data/groups"))) ?? []).count
                }
                let deadline = ContinuousClock.now + .seconds(10)
                while survivors.contains(where: { groupDirectories($0) != 8 }) && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(survivors.map(groupDirectories) == [8, 8], "the deleted queue's group is gone from disk")

                // At most 9 queue groups (--max-queue-groups 9): one more fits, the next is
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
    }
}
