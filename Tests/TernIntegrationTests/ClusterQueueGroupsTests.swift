import Foundation
import Testing
import TernTestKit

extension IntegrationTests {
    /// Queue groups (decision 140, `--queue-groups`): each queue is a replication group of its
    /// own, placed on the voters by rendezvous hashing, so their leaders spread over the nodes;
    /// `colocate_with` shares a group; any node serves any queue; a group's leader dying loses
    /// no acknowledged message; deleting a queue removes its group.
    @Suite(.serialized) struct ClusterQueueGroupsTests {
        typealias Cluster = ClusterProcessTests

        @Test func queuesHaveGroupsOfTheirOwn_spreadOverTheNodes_andKeepEveryMessageThroughALeaderKill() async throws {
            try await Cluster.withCluster("tern-queue-groups", arguments: ["--queue-groups"]) { nodes, _ in
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
                #expect((after.json["queues"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String } == (names + ["pair"]).filter { $0 != "q3" }.sorted())
            }
        }
    }
}
