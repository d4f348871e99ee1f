import Foundation
import Testing
import TernTestKit

extension IntegrationTests {
    /// Five real `ternd` on loopback with gossip and a cluster key, and real signals: detection,
    /// refutation, restart with the same node id, graceful leave, and an intruder with another key.
    /// Everything is polled with generous deadlines (a loaded 2-core machine); nothing asserts a speed.
    @Suite struct GossipProcessTests {
        struct Node {
            var id: String
            var gossipPort: Int
            var binaryPort: Int
            var process: TernProcess
        }

        /// One member as `GET /cluster/members` shows it.
        struct Member: Decodable {
            var nodeId: String
            var state: String
            var incarnation: UInt64
        }
        struct Members: Decodable {
            var gossip: Bool
            var members: [Member]
        }

        static func members(_ node: Node) async -> [String: Member]? {
            guard let (status, body) = try? await HTTP().request(.GET, node.process.baseURL + "/cluster/members", timeout: .seconds(5)),
                  status == 200, let view = try? HTTP.decode(Members.self, from: body) else { return nil }
            return Dictionary(uniqueKeysWithValues: view.members.map { ($0.nodeId, $0) })
        }

        /// Polls every 100 ms until every node of `observers` sees `subject` in `state`
        /// (and `check` holds for it), or `timeout` passes.
        static func waitUntil(_ observers: [Node], see subject: String, _ state: String, timeout: Duration = .seconds(90),
                              check: @escaping (Member) -> Bool = { _ in true }) async -> Bool {
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                var all = true
                for observer in observers {
                    guard let view = await members(observer), let member = view[subject], member.state == state, check(member) else {
                        all = false
                        break
                    }
                }
                if all { return true }
                try? await Task.sleep(for: .milliseconds(100))
            }
            return false
        }

        static func startCluster(_ root: TemporaryDirectory, count: Int = 5, key: String) async throws -> [Node] {
            let gossipPorts = try (0..<count).map { _ in try TernProcess.freePort() }
            let binaryPorts = try (0..<count).map { _ in try TernProcess.freePort() }
            let seeds = gossipPorts.prefix(3).map { "127.0.0.1:\($0)" }.joined(separator: ",")
            var nodes = [Node]()
            for index in 0..<count {
                let id = "node-\(index + 1)"
                let process = try TernProcess(
                    dataDirectory: root.appending("\(id)/data"), logFile: root.appending("\(id).log"),
                    extraArguments: ["--node-id", id, "--gossip", "127.0.0.1:\(gossipPorts[index])", "--seeds", seeds,
                                     "--binary", "127.0.0.1:\(binaryPorts[index])",
                                     "--cluster-key", key, "--zone", "z\(index % 2)", "--no-sync"])
                nodes.append(Node(id: id, gossipPort: gossipPorts[index], binaryPort: binaryPorts[index], process: process))
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for node in nodes { group.addTask { try await node.process.start(timeout: .seconds(60)) } }
                try await group.waitForAll()
            }
            return nodes
        }

        static func keyFile(_ root: TemporaryDirectory, _ name: String, _ key: String) throws -> String {
            let path = root.appending(name)
            try Data(key.utf8).write(to: URL(fileURLWithPath: path))
            return path
        }

        @Test func fiveNodes_detectRefuteRestartAndLeave() async throws {
            let root = try TemporaryDirectory(prefix: "tern-gossip")
            defer { root.remove() }
            let key = try Self.keyFile(root, "cluster.key", "a-cluster-key-of-32-bytes-000001")
            let nodes = try await Self.startCluster(root, key: key)
            defer { Task { for node in nodes { await node.process.kill9() } } }
            let others = { (id: String) in nodes.filter { $0.id != id } }

            // Every node sees all five alive.
            for node in nodes {
                #expect(await Self.waitUntil(nodes, see: node.id, "alive"), "\(node.id) not alive everywhere")
            }

            // SIGSTOP past the suspicion timeout: the others declare it dead.
            let paused = nodes[2]
            await paused.process.pause()
            #expect(await Self.waitUntil(others(paused.id), see: paused.id, "dead"), "a paused node is declared dead")
            // SIGCONT: it refutes with a higher incarnation and is alive again everywhere.
            await paused.process.resume()
            #expect(await Self.waitUntil(others(paused.id), see: paused.id, "alive") { $0.incarnation >= 1 },
                    "the resumed node refutes with a higher incarnation")

            // kill -9, then the same node id on the same data directory: alive again.
            let crashed = nodes[3]
            await crashed.process.kill9()
            #expect(await Self.waitUntil(others(crashed.id), see: crashed.id, "dead"))
            try await crashed.process.start(timeout: .seconds(60))
            #expect(await Self.waitUntil(nodes, see: crashed.id, "alive") { $0.incarnation >= 1 },
                    "the restarted node is alive with a higher incarnation")

            // SIGTERM: the others record "left" at once (before the process has even exited, the
            // leave was sent), never "dead"; allow one probe interval after the exit.
            let leaving = nodes[4]
            let status = await leaving.process.terminate()
            #expect(status == 0)
            #expect(await Self.waitUntil(others(leaving.id), see: leaving.id, "left", timeout: .seconds(1)),
                    "left at the others within one probe interval")

            // tern cluster members, over both transports, lists the view as a table.
            for server in [nodes[0].process.baseURL, "tern://127.0.0.1:\(nodes[0].binaryPort)"] {
                let result = try await TernCLI.run(["--server", server, "cluster", "members"], scratch: root)
                let table = String(decoding: result.standardOutput, as: UTF8.self)
                #expect(result.status == 0, "\(result.errorText)")
                #expect(table.contains("node-1 *") && table.contains("node-5") && table.contains("left"), "\(table)")
            }
        }

        @Test func packetsWithAWrongClusterKey_changeNothing() async throws {
            let root = try TemporaryDirectory(prefix: "tern-gossip-key")
            defer { root.remove() }
            let key = try Self.keyFile(root, "cluster.key", "the-right-cluster-key-0123456789")
            let nodes = try await Self.startCluster(root, count: 3, key: key)
            defer { Task { for node in nodes { await node.process.kill9() } } }
            for node in nodes { #expect(await Self.waitUntil(nodes, see: node.id, "alive")) }
            let before = await Self.members(nodes[0])

            // An intruder with another key, whose seeds are the cluster, and which even uses the
            // id of a member: nobody learns of it, nobody's view changes.
            let wrong = try Self.keyFile(root, "wrong.key", "the-wrong-cluster-key-9876543210")
            let intruderPort = try TernProcess.freePort()
            let intruder = try TernProcess(
                dataDirectory: root.appending("intruder/data"), logFile: root.appending("intruder.log"),
                extraArguments: ["--node-id", "node-2", "--gossip", "127.0.0.1:\(intruderPort)",
                                 "--seeds", nodes.map { "127.0.0.1:\($0.gossipPort)" }.joined(separator: ","),
                                 "--cluster-key", wrong, "--no-sync"])
            try await intruder.start(timeout: .seconds(60))
            defer { Task { await intruder.kill9() } }
            // Its join attempts repeat every second; wait until the cluster has dropped several.
            let deadline = ContinuousClock.now + .seconds(60)
            var dropped = 0.0
            while ContinuousClock.now < deadline {
                if let (_, body) = try? await HTTP().request(.GET, nodes[0].process.baseURL + "/metrics", timeout: .seconds(5)) {
                    let text = String(decoding: body, as: UTF8.self)
                    for line in text.split(separator: "\n") where line.hasPrefix("tern_gossip_packets_dropped_total{reason=\"auth\"}") {
                        dropped = Double(line.split(separator: " ").last ?? "") ?? 0
                    }
                }
                if dropped >= 3 { break }
                try? await Task.sleep(for: .milliseconds(200))
            }
            #expect(dropped >= 3, "datagrams with a wrong tag are counted")
            let after = await Self.members(nodes[0])
            #expect(after?.keys.sorted() == before?.keys.sorted())
            #expect(after?["node-2"]?.incarnation == before?["node-2"]?.incarnation)
            #expect(after?.values.allSatisfy { $0.state == "alive" } == true)
            // And the intruder sees only itself.
            let intruderView = try await HTTP().request(.GET, intruder.baseURL + "/cluster/members", timeout: .seconds(5))
            let view = try HTTP.decode(Members.self, from: intruderView.1)
            #expect(view.members.map(\.nodeId) == ["node-2"])
        }

        @Test func withoutGossip_theNodeRunsAlone() async throws {
            let root = try TemporaryDirectory(prefix: "tern-alone")
            defer { root.remove() }
            let server = try await TernProcess.launch(in: root, extraArguments: ["--no-sync"])
            defer { Task { await server.kill9() } }
            let (status, body) = try await HTTP().request(.GET, server.baseURL + "/cluster/members")
            #expect(status == 200)
            let view = try HTTP.decode(Members.self, from: body)
            #expect(view.gossip == false && view.members.isEmpty)
            let result = try await TernCLI.run(["--server", server.baseURL, "cluster", "members"], scratch: root)
            #expect(String(decoding: result.standardOutput, as: UTF8.self).contains("runs alone"))
        }
    }
}
