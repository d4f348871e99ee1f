import Foundation
import NIOHTTP1
import Testing
import TernTestKit

extension IntegrationTests {
    /// Issue 11, "a node whose disk data is lost entirely rejoins empty and is rebuilt from the
    /// others by snapshot": with `--raft-log-entries 20` the logs are compacted long before the
    /// node comes back, so the leader has to send it a snapshot (decisions 116, 117).
    @Suite(.serialized) struct ClusterRejoinTests {
        typealias Cluster = ClusterProcessTests

        /// This node's view of the data group from `GET /cluster`: (commit index, applied
        /// index), nil while it lists no group or does not answer.
        /// This node's data-group entry of `GET /cluster`, nil while it lists none or does not answer.
        static func group(_ node: Cluster.Node) async -> [String: Any]? {
            guard let answer = try? await Cluster.call(.GET, node.process.baseURL + "/cluster", timeout: 5), answer.status == 200 else { return nil }
            return (answer.json["groups"] as? [[String: Any]])?.first
        }

        static func progress(_ node: Cluster.Node) async -> (commit: UInt64, applied: UInt64)? {
            guard let answer = try? await Cluster.call(.GET, node.process.baseURL + "/cluster", timeout: 5), answer.status == 200,
                  let group = (answer.json["groups"] as? [[String: Any]])?.first,
                  let commit = (group["commit_index"] as? NSNumber)?.uint64Value,
                  let applied = (group["applied_index"] as? NSNumber)?.uint64Value else { return nil }
            return (commit, applied)
        }

        /// Waits (up to `limit`) until every node has applied the same index, and returns it.
        static func settled(_ nodes: [Cluster.Node], limit: Duration = .seconds(90)) async throws -> UInt64 {
            let deadline = ContinuousClock.now + limit
            var seen: [String: String] = [:]
            while ContinuousClock.now < deadline {
                var applied: [UInt64] = []
                for node in nodes {
                    let p = await progress(node)
                    seen[node.id] = p.map { "commit \($0.commit) applied \($0.applied)" } ?? "no answer"
                    if let p, p.applied == p.commit { applied.append(p.applied) }
                }
                if applied.count == nodes.count, Set(applied).count == 1 { return applied[0] }
                try await Task.sleep(for: .milliseconds(200))
            }
            throw TernProcess.Failure("the nodes did not settle on one applied index within \(limit): \(seen)")
        }

        /// `tern-lmdb dump --state` of every node, taken while all have applied the same index
        /// (checked before and after, retried when the leader's maintenance moved it).
        static func dumps(_ nodes: [Cluster.Node]) async throws -> (index: UInt64, dumps: [String: String]) {
            for _ in 0..<5 {
                let before = try await settled(nodes)
                var dumps: [String: String] = [:]
                for node in nodes {
                    let dump = try await runTernLMDB(["dump", "--state", node.process.dataDirectory])
                    guard dump.status == 0 else { throw TernProcess.Failure("dump --state of \(node.id): \(dump.error)") }
                    dumps[node.id] = dump.output
                }
                if try await settled(nodes) == before { return (before, dumps) }
            }
            throw TernProcess.Failure("the applied index kept moving while the nodes were dumped")
        }

        @Test func aNodeWhoseDataIsLostRejoinsEmptyAndIsRebuiltWithoutLosingAnAcknowledgedWrite() async throws {
            try await Cluster.withCluster("tern-cluster-rejoin", arguments: ["--raft-log-entries", "20"]) { nodes, _ in
                var leader = try await Cluster.leader(of: nodes)
                let base = { (node: Cluster.Node) in node.process.baseURL }

                var sent: [String] = []
                var records: [Int: [String]] = [0: [], 1: []]
                func write(_ count: Int, through node: Cluster.Node, tag: String) async throws {
                    for k in 0..<count {
                        let body = "\(tag)-\(k)"
                        let answer = try await Cluster.retrying { try await Cluster.call(.POST, base(node) + "/queues/keep/messages", json: ["message": body]) }
                        #expect(answer.status == 201, "send \(body): \(answer.status)")
                        if answer.status == 201 { sent.append(body) }
                        let partition = k % 2
                        let produced = try await Cluster.retrying {
                            try await Cluster.call(.POST, base(node) + "/topics/log/messages", json: ["value": body, "partition": partition])
                        }
                        #expect(produced.status == 201 || produced.status == 200, "produce \(body): \(produced.status)")
                        if (200..<300).contains(produced.status) { records[partition, default: []].append(body) }
                    }
                }
                let created = try await Cluster.retrying { try await Cluster.call(.PUT, base(leader) + "/queues/keep") }
                #expect(created.status == 201)
                let topic = try await Cluster.retrying { try await Cluster.call(.PUT, base(leader) + "/topics/log", json: ["partitions": 2]) }
                #expect(topic.status == 201)
                try await write(40, through: leader, tag: "before")

                // A follower loses everything: kill -9, its data directory deleted.
                let victim = nodes.first { $0.id != leader.id }!
                await victim.process.kill9()
                try FileManager.default.removeItem(atPath: victim.process.dataDirectory)
                let other = nodes.first { $0.id != leader.id && $0.id != victim.id }!
                try await write(20, through: other, tag: "while-gone")
                // Every node compacted its log past what the victim will ask for.
                for node in nodes where node.id != victim.id {
                    let snapshotIndex = (await Self.group(node)?["snapshot_index"] as? NSNumber)?.intValue ?? 0
                    #expect(snapshotIndex > 0, "\(node.id) compacted its log")
                }
                try await victim.process.start(timeout: .seconds(60))
                try await write(10, through: victim, tag: "after")

                // It catches up: every node applies the same index and holds the same broker state.
                let (index, dumps) = try await Self.dumps(nodes)
                #expect(index > 0)
                let reference = try #require(dumps[leader.id])
                // Bodies are dumped as length and CRC-32C: one line per message at least, and both names.
                let lines = reference.split(separator: "\n")
                #expect(lines.count >= sent.count && reference.contains("\"keep\"") && reference.contains("\"log\""),
                        "the dump holds the queue, its \(sent.count) messages and the topic: \(reference.prefix(500))")
                for node in nodes where node.id != leader.id {
                    #expect(dumps[node.id] == reference, "\(node.id)'s state differs from the leader's at index \(index)")
                }
                // It was rebuilt by a snapshot, not by replaying the log (which is gone), and
                // its log stays bounded.
                let rebuilt = try #require(await Self.group(victim))
                #expect((rebuilt["snapshots_installed"] as? NSNumber)?.intValue ?? 0 >= 1, "the rebuilt node installed a snapshot: \(rebuilt)")
                #expect((rebuilt["log_entries"] as? NSNumber)?.intValue ?? .max < 60, "its log is bounded: \(rebuilt)")
                let metrics = String(decoding: try await Cluster.call(.GET, base(victim) + "/metrics").body, as: UTF8.self)
                #expect(metrics.contains("tern_raft_snapshot_installs_total"), "the install is counted")

                // The leader goes: the rebuilt node and the remaining one must serve every write.
                await leader.process.kill9()
                let survivors = nodes.filter { $0.id != leader.id }
                leader = try await Cluster.leader(of: survivors)
                var received: [String] = []
                var idle = 0
                while idle < 3 {
                    let answer = try await Cluster.retrying {
                        try await Cluster.call(.GET, base(victim) + "/queues/keep/messages?batch_size=10&wait_time=1&auto_ack=true")
                    }
                    let bodies = (answer.json["messages"] as? [[String: Any]] ?? []).compactMap { $0["body"] as? String }
                    received += bodies
                    idle = bodies.isEmpty ? idle + 1 : 0
                }
                #expect(received.sorted() == sent.sorted(), "the queue after the leader's loss; missing \(Set(sent).subtracting(received).sorted().prefix(10))")
                for partition in 0..<2 {
                    let fetched = try await Cluster.retrying {
                        try await Cluster.call(.GET, base(victim) + "/topics/log/partitions/\(partition)/messages?offset=0&max=1000")
                    }
                    let values = (fetched.json["messages"] as? [[String: Any]] ?? []).compactMap { $0["value"] as? String }
                    #expect(values == records[partition], "partition \(partition) in order, nothing lost")
                }
            }
        }
    }
}
