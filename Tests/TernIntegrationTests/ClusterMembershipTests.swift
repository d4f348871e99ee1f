import Foundation
import NIOHTTP1
import Testing
import TernTestKit

extension IntegrationTests {
    /// Adding and removing nodes with real `ternd` (issue 11, "replacing a dead one"; decision
    /// 126): a spare started with the cluster's seeds is added with `tern cluster add`, catches
    /// up by snapshot (the logs are compacted at 20 entries), is promoted, and replaces a dead
    /// founder removed with `tern cluster remove`; a removal that would leave the group without
    /// a live majority is refused; and after the old leader is killed the new member serves
    /// every acknowledged message.
    @Suite(.serialized) struct ClusterMembershipTests {
        typealias Cluster = ClusterProcessTests

        /// The data group's entry of `GET /cluster` on `node`, nil while it lists none.
        static func group(_ node: Cluster.Node) async -> [String: Any]? {
            guard let answer = try? await Cluster.call(.GET, node.process.baseURL + "/cluster", timeout: 5), answer.status == 200 else { return nil }
            return (answer.json["groups"] as? [[String: Any]])?.first
        }

        static func eventually(_ what: String, limit: Duration = .seconds(90), _ condition: () async throws -> Bool) async throws {
            let deadline = ContinuousClock.now + limit
            while ContinuousClock.now < deadline {
                if try await condition() { return }
                try await Task.sleep(for: .milliseconds(200))
            }
            if try await condition() { return }
            throw TernProcess.Failure("timed out waiting for \(what)")
        }

        /// Sends `count` messages `tag-0`… to `queue` through `node` (retrying `503`), expecting
        /// each to be acknowledged; returns the bodies that were.
        static func send(_ count: Int, to queue: String, through node: Cluster.Node, tag: String) async throws -> [String] {
            var sent: [String] = []
            for k in 0..<count {
                let answer = try await Cluster.retrying {
                    try await Cluster.call(.POST, node.process.baseURL + "/queues/\(queue)/messages", json: ["message": "\(tag)-\(k)"])
                }
                #expect(answer.status == 201, "send \(tag)-\(k) through \(node.id): \(answer.status)")
                if answer.status == 201 { sent.append("\(tag)-\(k)") }
            }
            return sent
        }

        /// Receives `queue` through `node`, acknowledging as it goes, until three long polls in a
        /// row come back empty; returns the bodies.
        static func drain(_ queue: String, through node: Cluster.Node) async throws -> [String] {
            var received: [String] = []
            var idle = 0
            while idle < 3 {
                let answer = try await Cluster.retrying {
                    try await Cluster.call(.GET, node.process.baseURL + "/queues/\(queue)/messages?batch_size=10&wait_time=1&auto_ack=true")
                }
                let bodies = (answer.json["messages"] as? [[String: Any]] ?? []).compactMap { $0["body"] as? String }
                received += bodies
                idle = bodies.isEmpty ? idle + 1 : 0
            }
            return received
        }

        @Test func aSpareIsAdded_replacesADeadNode_andServesEveryAcknowledgedWrite() async throws {
            try await Cluster.withCluster("tern-cluster-members", spares: 1, arguments: ["--raft-log-entries", "20"]) { nodes, root in
                let founders = Array(nodes.prefix(3)), spare = nodes[3]
                var leader = try await Cluster.leader(of: founders)
                let base = { (node: Cluster.Node) in node.process.baseURL }
                var sent: [String] = []
                let created = try await Cluster.retrying { try await Cluster.call(.PUT, base(leader) + "/queues/keep") }
                #expect(created.status == 201)
                sent += try await Self.send(40, to: "keep", through: leader, tag: "before")

                // The spare holds nothing and serves nothing until it is added.
                let spareView = try await Cluster.call(.GET, base(spare) + "/cluster")
                #expect((spareView.json["controller"] as? [String: Any])?["leader"] == nil || (spareView.json["controller"] as? [String: Any])?["leader"] is NSNull,
                        "a spare follows no leader: \(spareView.json)")
                let refused = try await Cluster.call(.POST, base(spare) + "/queues/keep/messages", json: ["message": "to-the-spare"])
                #expect(refused.status == 503, "a spare answers 503 before it is added: \(refused.status)")
                #expect(String(decoding: refused.body, as: UTF8.self).contains("not a replica"), "and says why")

                // Bad requests change nothing.
                let unknown = try await Cluster.call(.PUT, base(leader) + "/cluster/replicas/node-9")
                #expect(unknown.status == 404 && (unknown.json["error"] as? [String: Any])?["code"] as? String == "NodeNotFound")
                let notMember = try await Cluster.call(.DELETE, base(leader) + "/cluster/replicas/\(spare.id)")
                #expect(notMember.status == 404)
                let malformed = try await Cluster.call(.PUT, base(leader) + "/cluster/replicas/no%20spaces")
                #expect(malformed.status == 400)

                // Added through a follower (forwarded to the leader), with the CLI.
                let follower = founders.first { $0.id != leader.id }!
                let add = try await TernCLI.run(["cluster", "add", spare.id, "--server", base(follower)], scratch: root)
                #expect(add.status == 0, "tern cluster add: \(add.errorText)")
                #expect(String(decoding: add.standardOutput, as: UTF8.self).contains("learners \(spare.id)"), "it prints the configuration: \(String(decoding: add.standardOutput, as: UTF8.self))")
                let again = try await Cluster.call(.PUT, base(leader) + "/cluster/replicas/\(spare.id)")
                #expect(again.status == 200, "adding a member again changes nothing: \(again.status)")

                try await Self.eventually("\(spare.id) promoted to voter") {
                    guard let group = await Self.group(leader), let replicas = group["replicas"] as? [String],
                          let learners = group["learners"] as? [String] else { return false }
                    return replicas.contains(spare.id) && learners.isEmpty
                }
                let table = try await TernCLI.run(["cluster", "status", "--server", base(spare)], scratch: root)
                let shown = String(decoding: table.standardOutput, as: UTF8.self)
                #expect(shown.contains("voters \(nodes.map(\.id).sorted().joined(separator: ","))") && shown.contains("learners none"),
                        "tern cluster status shows the replicas: \(shown)")
                try await Self.eventually("the metrics to count four voters") {
                    let metrics = String(decoding: try await Cluster.call(.GET, base(leader) + "/metrics").body, as: UTF8.self)
                    return metrics.contains("tern_raft_voters 4") && metrics.contains("tern_raft_learners 0")
                }
                let rebuilt = try #require(await Self.group(spare))
                #expect((rebuilt["snapshots_installed"] as? NSNumber)?.intValue ?? 0 >= 1, "the new member was sent a snapshot: \(rebuilt)")
                sent += try await Self.send(10, to: "keep", through: spare, tag: "via-spare")

                // A founder dies for good and is removed: the spare takes its place.
                let dead = founders.first { $0.id != leader.id }!
                await dead.process.kill9()
                let remove = try await TernCLI.run(["cluster", "remove", dead.id, "--server", base(spare)], scratch: root)
                #expect(remove.status == 0, "tern cluster remove: \(remove.errorText)")
                let after = try #require(await Self.group(leader))
                #expect(Set(after["replicas"] as? [String] ?? []) == Set(nodes.map(\.id)).subtracting([dead.id]), "\(after)")
                sent += try await Self.send(10, to: "keep", through: leader, tag: "after-removal")

                // With one of the three voters down, removing a live one would leave 1 of 2 alive.
                let other = founders.first { $0.id != leader.id && $0.id != dead.id }!
                await other.process.kill9()
                try await Self.eventually("gossip on the leader to see \(other.id) gone") {
                    let members = try await Cluster.call(.GET, base(leader) + "/cluster/members", timeout: 5).json["members"] as? [[String: Any]] ?? []
                    return members.contains { $0["node_id"] as? String == other.id && $0["state"] as? String != "alive" }
                }
                let unsafe = try await Cluster.call(.DELETE, base(leader) + "/cluster/replicas/\(spare.id)")
                #expect(unsafe.status == 409, "a removal leaving no live majority is refused: \(unsafe.status) \(String(decoding: unsafe.body, as: UTF8.self))")
                #expect(Set(try #require(await Self.group(leader))["replicas"] as? [String] ?? []).contains(spare.id), "nothing changed")
                try await other.process.start(timeout: .seconds(60))

                // The last founder that led goes: the spare and the restarted founder serve everything.
                await leader.process.kill9()
                leader = try await Cluster.leader(of: [spare, other])
                let received = try await Self.drain("keep", through: spare)
                #expect(received.sorted() == sent.sorted(), "missing \(Set(sent).subtracting(received).sorted().prefix(10))")
            }
        }

        /// `--replace-after 3`: a founder `kill -9`ed stays dead; the leader adds the spare as a
        /// learner, promotes it once caught up and removes the dead founder, with no command
        /// (decision 127); then another founder can die and the group still serves everything.
        @Test func aReplicaDeadPastReplaceAfterIsReplacedByASpare() async throws {
            try await Cluster.withCluster("tern-cluster-replace", spares: 1, arguments: ["--replace-after", "3"]) { nodes, _ in
                let founders = Array(nodes.prefix(3)), spare = nodes[3]
                let leader = try await Cluster.leader(of: founders)
                let base = { (node: Cluster.Node) in node.process.baseURL }
                var sent: [String] = []
                _ = try await Cluster.retrying { try await Cluster.call(.PUT, base(leader) + "/queues/auto") }
                sent += try await Self.send(30, to: "auto", through: leader, tag: "before")
                // Nothing moves while every founder lives, though a spare is there.
                try await Task.sleep(for: .seconds(5))
                #expect(Set(try #require(await Self.group(leader))["replicas"] as? [String] ?? []) == Set(founders.map(\.id)))

                let dead = founders.first { $0.id != leader.id }!
                await dead.process.kill9()
                sent += try await Self.send(10, to: "auto", through: leader, tag: "while-dead")
                try await Self.eventually("the spare to replace \(dead.id)") {
                    guard let group = await Self.group(leader), let replicas = group["replicas"] as? [String],
                          let learners = group["learners"] as? [String] else { return false }
                    return Set(replicas) == Set(nodes.map(\.id)).subtracting([dead.id]) && learners.isEmpty
                }
                let log = leader.process.logTail(bytes: 200_000)
                #expect(log.contains("changing the data group's membership"), "the leader logs its changes")

                // The group is three live voters again: it survives the loss of another founder.
                let other = founders.first { $0.id != leader.id && $0.id != dead.id }!
                await other.process.kill9()
                sent += try await Self.send(10, to: "auto", through: leader, tag: "after")
                let received = try await Self.drain("auto", through: spare)
                #expect(received.sorted() == sent.sorted(), "missing \(Set(sent).subtracting(received).sorted().prefix(10))")
            }
        }

        /// The leader is `kill -9`ed right after it added a learner: the new leader finishes the
        /// join (promotes the learner once caught up), and no acknowledged write is lost.
        @Test func aLeaderKilledWhileANodeJoins_theNextLeaderFinishesTheJoin() async throws {
            try await Cluster.withCluster("tern-cluster-join-fault", spares: 1, arguments: ["--raft-log-entries", "20"]) { nodes, _ in
                let founders = Array(nodes.prefix(3)), spare = nodes[3]
                let leader = try await Cluster.leader(of: founders)
                let base = { (node: Cluster.Node) in node.process.baseURL }
                var sent: [String] = []
                _ = try await Cluster.retrying { try await Cluster.call(.PUT, base(leader) + "/queues/join") }
                sent += try await Self.send(60, to: "join", through: leader, tag: "before")
                let added = try await Cluster.retrying { try await Cluster.call(.PUT, base(leader) + "/cluster/replicas/\(spare.id)") }
                #expect(added.status == 200, "\(added.status) \(String(decoding: added.body, as: UTF8.self))")
                await leader.process.kill9()
                let survivors = founders.filter { $0.id != leader.id }
                let next = try await Cluster.leader(of: survivors)
                sent += try await Self.send(20, to: "join", through: next, tag: "after")
                try await Self.eventually("the next leader to promote \(spare.id)") {
                    guard let group = await Self.group(next), let replicas = group["replicas"] as? [String],
                          let learners = group["learners"] as? [String] else { return false }
                    return replicas.contains(spare.id) && learners.isEmpty
                }
                // The old leader returns (four voters: three make a majority); everything is read
                // through the new member.
                try await leader.process.start(timeout: .seconds(60))
                let received = try await Self.drain("join", through: spare)
                #expect(received.sorted() == sent.sorted(), "missing \(Set(sent).subtracting(received).sorted().prefix(10))")
            }
        }
    }
}
