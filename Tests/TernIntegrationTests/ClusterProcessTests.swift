import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Testing
import TernClient
import TernCore
import TernTestKit

extension IntegrationTests {
    /// Real `ternd` processes replicating through Raft (issue 11): requests to any node,
    /// faults injected with real signals, every operation recorded and checked
    /// (``QueueHistory``). Faults per run: `TERN_CLUSTER_FAULTS` (default 20).
    @Suite(.serialized) struct ClusterProcessTests {
        struct Node {
            var id: String
            var process: TernProcess
            var binaryPort: Int
        }

        /// One answer of a node, with the headers that say who served it.
        struct Answer {
            var status: Int
            var body: Data
            var servedBy: String?
            var term: UInt64?
            /// `Tern-Queue-Group`: the queue group that served it (nil: the data group).
            var group: UInt64? = nil
            var json: [String: Any] { (try? HTTP.object(body)) ?? [:] }
        }

        static func call(_ method: HTTPMethod, _ url: String, json: [String: Any]? = nil, headers: [(String, String)] = [],
                         timeout: Int64 = 30) async throws -> Answer {
            var request = HTTPClientRequest(url: url)
            request.method = method
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            if let json {
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json)))
            }
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(timeout))
            let body = try await response.body.collect(upTo: 64 << 20)
            return Answer(status: Int(response.status.code), body: Data(body.readableBytesView),
                          servedBy: response.headers.first(name: "Tern-Served-By"),
                          term: response.headers.first(name: "Tern-Term").flatMap { UInt64($0) },
                          group: response.headers.first(name: "Tern-Queue-Group").flatMap { UInt64($0) })
        }

        /// Starts `count` nodes, every one a controller, and waits until a write succeeds. With
        /// `namespaces`, node `i` runs in namespace `i`: gossip, binary and forwarding on its
        /// cluster address, HTTP on every address (the test uses the client one). `spares` more
        /// nodes (`node-(count+1)`…, last in the result) start with the same seeds and
        /// controllers without being one: they hold nothing until added (decision 126).
        /// `nodeArguments` gives node `i` arguments of its own (listeners on ports of its own);
        /// `headers` go with the probes for a leader (a token when authentication is on).
        static func startCluster(_ root: TemporaryDirectory, count: Int = 3, spares: Int = 0, namespaces: NetworkNamespaces? = nil,
                                 arguments: [String] = [], nodeArguments: (Int) throws -> [String] = { _ in [] },
                                 headers: [(String, String)] = []) async throws -> [Node] {
            let total = count + spares
            let ids = (1...total).map { "node-\($0)" }
            let controllers = ids.prefix(count).joined(separator: ",")
            let hosts = (0..<total).map { namespaces?.clusterAddress($0) ?? "127.0.0.1" }
            let gossipPorts = try (0..<total).map { _ in namespaces == nil ? try TernProcess.freePort() : 7946 }
            let binaryPorts = try (0..<total).map { _ in namespaces == nil ? try TernProcess.freePort() : 7081 }
            let seeds = (0..<count).map { "\(hosts[$0]):\(gossipPorts[$0])" }.joined(separator: ",")
            var nodes = [Node]()
            for index in 0..<total {
                let process = try TernProcess(
                    dataDirectory: root.appending("\(ids[index])/data"), logFile: root.appending("\(ids[index]).log"),
                    port: namespaces == nil ? nil : 7080,
                    extraArguments: ["--node-id", ids[index], "--gossip", "\(hosts[index]):\(gossipPorts[index])", "--seeds", seeds,
                                     "--binary", "\(hosts[index]):\(binaryPorts[index])", "--controllers", controllers] + arguments
                                     + nodeArguments(index),
                    httpHost: namespaces == nil ? "127.0.0.1" : "0.0.0.0",
                    clientHost: namespaces?.clientAddress(index) ?? "127.0.0.1",
                    launcher: namespaces?.launcher(index) ?? [])
                nodes.append(Node(id: ids[index], process: process, binaryPort: binaryPorts[index]))
            }
            for node in nodes { try await node.process.start() }
            _ = try await leader(of: Array(nodes.prefix(count)), headers: headers)
            return nodes
        }

        /// The node that leads now, as the nodes report in `GET /cluster`, once that node
        /// itself says it leads (polls up to 60 s). `headers` go with each probe (a token when
        /// authentication is on).
        static func leader(of nodes: [Node], excluding excluded: Set<String> = [], headers: [(String, String)] = []) async throws -> Node {
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                for node in nodes where !excluded.contains(node.id) {
                    guard let answer = try? await call(.GET, node.process.baseURL + "/cluster", headers: headers, timeout: 2), answer.status == 200,
                          let controller = answer.json["controller"] as? [String: Any], let leader = controller["leader"] as? String,
                          !excluded.contains(leader), let candidate = nodes.first(where: { $0.id == leader }) else { continue }
                    // Ask it to serve a write-free data route: it answers only once it serves.
                    if let probe = try? await call(.GET, candidate.process.baseURL + "/queues", headers: headers, timeout: 2), probe.status == 200,
                       probe.servedBy == leader {
                        return candidate
                    }
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            throw TernProcess.Failure("no leader within 60 s; logs:\n" + nodes.map { "\($0.id): \($0.process.logTail(bytes: 3000))" }.joined(separator: "\n"))
        }

        /// Runs `body`, then kills every node, also when `body` throws (a `defer` cannot await,
        /// and a detached kill may never run before the test process exits).
        static func killing<T>(_ nodes: [Node], _ body: () async throws -> T) async throws -> T {
            do {
                let result = try await body()
                for node in nodes { await node.process.kill9() }
                return result
            } catch {
                for node in nodes { await node.process.kill9() }
                throw error
            }
        }

        /// Retries `body` on 503 (no leader now) until it answers something else, up to 60 s.
        static func retrying(_ body: () async throws -> Answer) async throws -> Answer {
            let deadline = ContinuousClock.now + .seconds(60)
            while true {
                if let answer = try? await body(), answer.status != 503 { return answer }
                guard ContinuousClock.now < deadline else { throw TernProcess.Failure("still unavailable after 60 s") }
                try await Task.sleep(for: .milliseconds(200))
            }
        }

        @Test func everyRouteAnswersTheSameOnAFollowerAsOnTheLeader() async throws {
            let root = try TemporaryDirectory(prefix: "tern-cluster-routes")
            defer { root.remove() }
            let nodes = try await Self.startCluster(root)
            try await Self.killing(nodes) {
                let leader = try await Self.leader(of: nodes)
                let follower = nodes.first { $0.id != leader.id }!
                let base = follower.process.baseURL

                let created = try await Self.retrying { try await Self.call(.PUT, base + "/queues/orders", json: ["visibility_timeout": 30]) }
                #expect(created.status == 201, "created through a follower")
                #expect(created.servedBy == leader.id, "the leader served it")
                let sent = try await Self.call(.POST, base + "/queues/orders/messages", json: ["message": "hello"])
                #expect(sent.status == 201)
                let onLeader = try await Self.call(.GET, leader.process.baseURL + "/queues/orders")
                let onFollower = try await Self.call(.GET, base + "/queues/orders")
                #expect(onFollower.status == 200)
                #expect((onFollower.json["messages"] as? NSDictionary) == (onLeader.json["messages"] as? NSDictionary))
                let received = try await Self.call(.GET, base + "/queues/orders/messages?batch_size=10&wait_time=1")
                let messages = received.json["messages"] as? [[String: Any]] ?? []
                #expect(messages.count == 1)
                #expect(messages.first?["body"] as? String == "hello")
                let handle = messages.first?["receipt_handle"] as? String ?? ""
                let escaped = handle.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? handle
                let acked = try await Self.call(.DELETE, base + "/queues/orders/messages/\(escaped)")
                #expect(acked.status == 204, "an ack through a follower: \(String(decoding: acked.body, as: UTF8.self))")
                let missing = try await Self.call(.GET, base + "/queues/nope")
                #expect(missing.status == 404, "errors are relayed as the leader answered them")
                #expect(HTTP.errorCode(missing.body) == "QueueNotFound")
                let topic = try await Self.call(.PUT, base + "/topics/events", json: ["partitions": 2])
                #expect(topic.status == 201)
                // A follower lists what it has applied: poll until it caught up with the topic.
                var groups: [[String: Any]] = []
                for _ in 0..<100 {
                    groups = try await Self.call(.GET, base + "/cluster").json["groups"] as? [[String: Any]] ?? []
                    if groups.filter({ $0["kind"] as? String == "topic" }).count == 2 { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(groups.contains { $0["kind"] as? String == "queue" && $0["name"] as? String == "orders" && $0["leader"] as? String == leader.id })
                #expect(groups.filter { $0["kind"] as? String == "topic" }.count == 2, "one entry per topic partition")
                let metrics = String(decoding: try await Self.call(.GET, leader.process.baseURL + "/metrics").body, as: UTF8.self)
                #expect(metrics.contains("tern_raft_is_leader 1"), "the leader reports itself")
                #expect(metrics.contains("tern_raft_replication_latency_seconds"), "writes were timed")
                let followerMetrics = String(decoding: try await Self.call(.GET, base + "/metrics").body, as: UTF8.self)
                #expect(followerMetrics.contains("tern_cluster_forwarded_requests_total"), "the follower counted its forwards")
            }
        }

        /// A leader stopped with `SIGTERM` hands its leadership over before it exits: the
        /// moment its process is gone, the others already follow a new leader (after a crash
        /// they would wait out an election timeout of 1.5–2.5 s first), and nothing written
        /// before is lost.
        @Test func aLeaderStoppedWithSIGTERM_handsItsLeadershipOverBeforeItExits() async throws {
            let root = try TemporaryDirectory(prefix: "tern-cluster-handoff")
            defer { root.remove() }
            let nodes = try await Self.startCluster(root)
            try await Self.killing(nodes) {
                let leader = try await Self.leader(of: nodes)
                #expect(try await Self.call(.PUT, leader.process.baseURL + "/queues/handoff").status == 201)
                #expect(try await Self.call(.POST, leader.process.baseURL + "/queues/handoff/messages", json: ["message": "kept"]).status == 201)
                let status = await leader.process.terminate()
                #expect(status == 0, "a clean exit")
                var leaders = Set<String>()
                for node in nodes where node.id != leader.id {
                    let controller = try await Self.call(.GET, node.process.baseURL + "/cluster").json["controller"] as? [String: Any]
                    if let id = controller?["leader"] as? String { leaders.insert(id) }
                }
                #expect(leaders.count == 1 && !leaders.contains(leader.id), "the others follow a new leader as soon as the old one exited: \(leaders)")
                #expect(leader.process.logTail(bytes: 20_000).contains("handed the data group's leadership over before stopping"))
                let successor = try await Self.leader(of: nodes, excluding: [leader.id])
                let received = try await Self.call(.GET, successor.process.baseURL + "/queues/handoff/messages?batch_size=10&wait_time=1")
                #expect((received.json["messages"] as? [[String: Any]])?.first?["body"] as? String == "kept")
            }
        }

        /// A follower that forwards to a leader which just died (before anyone noticed) answers
        /// `503` saying the request was not applied — the connection was refused, nothing was
        /// sent — and, once a new leader serves, the retried request succeeds exactly once.
        @Test func aForwardToALeaderThatJustDied_saysTheRequestWasNotApplied() async throws {
            let root = try TemporaryDirectory(prefix: "tern-cluster-refused")
            defer { root.remove() }
            let nodes = try await Self.startCluster(root)
            try await Self.killing(nodes) {
                let leader = try await Self.leader(of: nodes)
                let follower = nodes.first { $0.id != leader.id }!
                // Created on the leader itself: the follower has no pooled connection to it.
                #expect(try await Self.call(.PUT, leader.process.baseURL + "/queues/refused").status == 201)
                await leader.process.kill9()
                let refused = try await Self.call(.POST, follower.process.baseURL + "/queues/refused/messages", json: ["message": "once"])
                #expect(refused.status == 503)
                let message = String(decoding: refused.body, as: UTF8.self)
                #expect(message.contains("could not be reached") && message.contains("was not applied"), "\(message)")
                let sent = try await Self.retrying {
                    try await Self.call(.POST, follower.process.baseURL + "/queues/refused/messages", json: ["message": "once"])
                }
                #expect(sent.status == 201)
                let received = try await Self.call(.GET, follower.process.baseURL + "/queues/refused/messages?batch_size=10&wait_time=1")
                #expect((received.json["messages"] as? [[String: Any]])?.count == 1, "the refused forward applied nothing")
            }
        }

        /// `Metadata` on connect sends a client straight to the leader and teaches it the other
        /// nodes; a client given only the leader's address goes on to the new leader by itself
        /// after that leader is killed.
        @Test func binaryClientsGoStraightToTheLeader_andOnToTheNextWhenItDies() async throws {
            let root = try TemporaryDirectory(prefix: "tern-cluster-metadata")
            defer { root.remove() }
            let nodes = try await Self.startCluster(root)
            try await Self.killing(nodes) {
                let leader = try await Self.leader(of: nodes)
                let follower = nodes.first { $0.id != leader.id }!

                let viaFollower = TernClient(host: "127.0.0.1", port: follower.binaryPort)
                let metadata = try await viaFollower.metadata()
                #expect(viaFollower.currentAddress.port == leader.binaryPort, "the first connection moved to the leader")
                #expect(metadata.clustered && metadata.nodeID == leader.id)
                #expect(metadata.groups.map(\.leader) == [leader.id])
                #expect(metadata.groups.first?.leaderBinary == "127.0.0.1:\(leader.binaryPort)")
                #expect(Set(metadata.nodes.map(\.nodeID)) == Set(nodes.map(\.id)))
                await viaFollower.close()

                let client = TernClient(host: "127.0.0.1", port: leader.binaryPort)
                _ = try await client.createQueue("failover")
                #expect(Set(client.knownNodes.map(\.port)) == Set(nodes.map(\.binaryPort)), "learned every node from Metadata")
                await leader.process.kill9()
                // Until a new leader serves, calls fail (Unavailable: nothing was applied, or
                // the outcome is unknown); the client finds the new leader by itself.
                var sent = false
                let deadline = ContinuousClock.now + .seconds(60)
                while !sent && ContinuousClock.now < deadline {
                    do {
                        _ = try await client.send([OutgoingMessage(body: Array("after".utf8))], to: "failover")
                        sent = true
                    } catch {
                        try await Task.sleep(for: .milliseconds(200))
                    }
                }
                #expect(sent, "no send succeeded within 60 s of the leader's death")
                let successor = try await Self.leader(of: nodes, excluding: [leader.id])
                #expect(client.currentAddress.port == successor.binaryPort, "calls go to the new leader")
                let received = try await client.receive(from: "failover", maxMessages: 10, waitTime: 1)
                #expect(received.contains { String(decoding: $0.body, as: UTF8.self) == "after" })
                await client.close()
            }
        }

        /// Producers and consumers on every node while the leader is killed (`kill -9`) or
        /// paused past the election timeout (`SIGSTOP`/`SIGCONT`) again and again; then every
        /// acknowledged send must be delivered, and nothing the checker knows of may break.
        @Test func noAcknowledgedWriteIsLostThroughLeaderFaults() async throws {
            try await Self.leaderFaults(prefix: "tern-cluster-faults") { nodes, _ in try? await Self.leader(of: nodes) }
        }

        /// The same with queue groups (decision 140): the queues each have a group of their own,
        /// the topic stays in the data group, and the faults go round the data group's leader and
        /// the two queue groups' leaders. Terms are checked per group.
        @Test func noAcknowledgedWriteIsLostThroughLeaderFaults_withQueueGroups() async throws {
            try await Self.leaderFaults(prefix: "tern-cluster-group-faults", arguments: ["--queue-groups"]) { nodes, fault in
                // Rotates so that each target is both killed and paused (every third fault pauses).
                switch (fault + fault / 3) % 3 {
                case 0: try? await Self.leader(of: nodes)
                case 1: await Self.queueLeader(of: nodes, queue: "jobs")
                default: await Self.queueLeader(of: nodes, queue: "orders.fifo")
                }
            }
        }

        /// The node that leads `queue`'s queue group, as `GET /cluster` on a live node says.
        static func queueLeader(of nodes: [Node], queue: String) async -> Node? {
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                for node in nodes {
                    guard let view = try? await call(.GET, node.process.baseURL + "/cluster", timeout: 2),
                          let groups = view.json["groups"] as? [[String: Any]],
                          let leader = groups.first(where: { $0["name"] as? String == queue })?["leader"] as? String,
                          let found = nodes.first(where: { $0.id == leader }) else { continue }
                    return found
                }
                try? await Task.sleep(for: .milliseconds(100))
            }
            return nil
        }

        /// Producers and consumers on every node while the node `target` names for each fault is
        /// killed (`kill -9`, then restarted) or paused past the election timeout
        /// (`SIGSTOP`/`SIGCONT`), 20 times (`TERN_CLUSTER_FAULTS`); then every acknowledged send
        /// must be delivered, and nothing the checker knows of may break.
        static func leaderFaults(prefix: String, arguments: [String] = [],
                                 target: @escaping ([Node], Int) async -> Node?) async throws {
            let root = try TemporaryDirectory(prefix: prefix)
            defer { root.remove() }
            let nodes = try await Self.startCluster(root, arguments: arguments)
            try await Self.killing(nodes) {
                let faults = ProcessInfo.processInfo.environment["TERN_CLUSTER_FAULTS"].flatMap(Int.init) ?? 20
                let history = QueueHistory()
                try await Self.createWorkloadQueues(nodes)

                let running = ManagedFlag()
                let workers = Self.workload(nodes, history: history, running: running)

                for fault in 0..<faults {
                    guard let leader = await target(nodes, fault) else { break }
                    if fault % 3 == 2 {
                        history.fault("SIGSTOP \(leader.id) for 4 s")
                        await leader.process.pause()
                        try await Task.sleep(for: .seconds(4))
                        await leader.process.resume()
                    } else {
                        history.fault("kill -9 \(leader.id)")
                        await leader.process.kill9()
                        _ = try? await Self.leader(of: nodes, excluding: [leader.id])
                        try await leader.process.start(timeout: .seconds(60))
                    }
                    try await Task.sleep(for: .milliseconds(500))
                }
                running.value = false
                await workers.value

                await Self.drain(nodes, history: history)

                try await Self.checkHistory(nodes, history)
                #expect(history.faults.count >= min(faults, 20), "faults injected: \(history.faults)")
                #expect(history.acknowledgedSendCount > 0)
                #expect(history.termsServed >= 2, "leadership moved during the run")
            }
        }

        /// The queue, FIFO queue and topic that ``workload(_:history:running:)`` uses.
        static func createWorkloadQueues(_ nodes: [Node]) async throws {
            let base = nodes[0].process.baseURL
            let created = try await retrying { try await call(.PUT, base + "/queues/jobs", json: ["visibility_timeout": 5]) }
            #expect(created.status == 201)
            let fifo = try await retrying { try await call(.PUT, base + "/queues/orders.fifo", json: ["fifo": true, "visibility_timeout": 5]) }
            #expect(fifo.status == 201)
            let topic = try await retrying { try await call(.PUT, base + "/topics/events", json: ["partitions": 2]) }
            #expect(topic.status == 201)
        }

        /// Every check of the queues' history and of the topic against what the cluster holds.
        static func checkHistory(_ nodes: [Node], _ history: QueueHistory) async throws {
            let violations = history.check()
            #expect(violations.isEmpty, "\(violations.prefix(20)) after faults \(history.faults)")
            let topicViolations = try await checkTopic(nodes, history: history)
            #expect(topicViolations.isEmpty, "\(topicViolations.prefix(20)) after faults \(history.faults)")
            #expect(history.producedCount > 0, "records were produced to the topic")
        }

        /// Three producers and two consumers, each going round the nodes, until `running` clears.
        static func workload(_ nodes: [Node], history: QueueHistory, running: ManagedFlag) -> Task<Void, Never> {
            Task {
                await withTaskGroup(of: Void.self) { group in
                    for producer in 0..<3 {
                        group.addTask {
                            var k = 0
                            while running.value {
                                let node = nodes[(producer + k) % nodes.count]
                                let body = "p\(producer)-\(k)"
                                k += 1
                                do {
                                    let answer = try await Self.call(.POST, node.process.baseURL + "/queues/jobs/messages", json: ["message": body], timeout: 15)
                                    if answer.status == 201 {
                                        history.sendAcknowledged(body)
                                        if let by = answer.servedBy, let term = answer.term { history.served(by: by, term: term, group: answer.group) }
                                    } else {
                                        history.sendIndeterminate(body)  // 503: forwarding may have reached the leader
                                        try? await Task.sleep(for: .milliseconds(100))
                                    }
                                } catch {
                                    history.sendIndeterminate(body)
                                    try? await Task.sleep(for: .milliseconds(100))
                                }
                            }
                        }
                    }
                    for consumer in 0..<2 {
                        group.addTask {
                            var k = 0
                            while running.value {
                                k += 1
                                await Self.consumeOnce(nodes[(consumer + k) % nodes.count], history: history)
                            }
                        }
                    }
                    // FIFO: one sender per message group, in order, retrying a send whose answer
                    // it did not get (same deduplication id) before the next, as SQS advises; one consumer.
                    for sender in 0..<2 {
                        group.addTask {
                            var k = 0, attempt = 0
                            while running.value {
                                attempt += 1
                                let node = nodes[(sender + attempt) % nodes.count]
                                let body = "f\(sender)-\(k)"
                                let message: [String: Any] = ["message": body, "group_id": "g\(sender)", "deduplication_id": body]
                                if let answer = try? await Self.call(.POST, node.process.baseURL + "/queues/orders.fifo/messages", json: message, timeout: 15),
                                   answer.status == 201 || answer.status == 200 {
                                    history.sendAcknowledged(body)
                                    k += 1
                                } else {
                                    history.sendIndeterminate(body)
                                    try? await Task.sleep(for: .milliseconds(100))
                                }
                            }
                        }
                    }
                    group.addTask {
                        var k = 0
                        while running.value {
                            k += 1
                            await Self.consumeOnce(nodes[k % nodes.count], history: history, queue: "orders.fifo")
                        }
                    }
                    // A topic: keyed produces, and one consumer-group member that commits what it read.
                    group.addTask {
                        var k = 0
                        while running.value {
                            let node = nodes[k % nodes.count]
                            let value = "t-\(k)"
                            k += 1
                            if let answer = try? await Self.call(.POST, node.process.baseURL + "/topics/events/messages",
                                                                 json: ["messages": [["key": "k\(k % 4)", "value": value]]], timeout: 15),
                               answer.status == 201, let offsets = answer.json["offsets"] as? [[String: Any]],
                               let partition = offsets.first?["partition"] as? Int, let offset = offsets.first?["offset"] as? Int {
                                history.produced(value, partition: partition, offset: offset)
                            } else {
                                try? await Task.sleep(for: .milliseconds(100))
                            }
                        }
                    }
                    group.addTask { await Self.groupMember(nodes, history: history, running: running) }
                }
            }
        }

        /// Receives until every acknowledged send was delivered, or nothing new comes for 20 s.
        static func drain(_ nodes: [Node], history: QueueHistory) async {
            var idleSince = ContinuousClock.now
            var lastCount = 0
            while ContinuousClock.now - idleSince < .seconds(20) {
                let node = nodes[Int.random(in: 0..<nodes.count)]
                await Self.consumeOnce(node, history: history)
                await Self.consumeOnce(node, history: history, queue: "orders.fifo")
                let count = history.deliveredBodies.count
                if count != lastCount { lastCount = count; idleSince = .now }
                if history.check().allSatisfy({ if case .lostSend = $0 { return false } else { return true } }) { return }
            }
        }

        /// Each node in a network namespace of its own; the leader (and once a follower) is cut
        /// off from the other nodes for longer than the election timeout while clients still
        /// reach it, then healed. The cut-off leader must stop acknowledging (check-quorum), a
        /// new one take over, and the history stay clean.
        @Test(.enabled(if: NetworkNamespaces.isAvailable, "needs root and iproute2 for network namespaces"))
        func noAcknowledgedWriteIsLostThroughNetworkPartitions() async throws {
            let namespaces = try NetworkNamespaces(count: 3)
            defer { namespaces.remove() }
            let root = try TemporaryDirectory(prefix: "tern-cluster-partitions")
            defer { root.remove() }
            let nodes = try await Self.startCluster(root, namespaces: namespaces)
            try await Self.killing(nodes) {
                let history = QueueHistory()
                try await Self.createWorkloadQueues(nodes)
                let running = ManagedFlag()
                let workers = Self.workload(nodes, history: history, running: running)
                var isolatedWrites: [Int] = []
                for cycle in 0..<4 {
                    let leader = try await Self.leader(of: nodes)
                    let victim = cycle == 3 ? nodes.first { $0.id != leader.id }! : leader
                    let index = nodes.firstIndex { $0.id == victim.id }!
                    history.fault("cut \(victim.id) off (\(victim.id == leader.id ? "leader" : "follower")) for 6 s")
                    try namespaces.cut(index)
                    try await Task.sleep(for: .seconds(4))
                    // Past the election timeout the cut-off node must not acknowledge a write.
                    if let answer = try? await Self.call(.POST, victim.process.baseURL + "/queues/jobs/messages", json: ["message": "isolated-\(cycle)"], timeout: 15) {
                        isolatedWrites.append(answer.status)
                        if answer.status == 201 { history.sendAcknowledged("isolated-\(cycle)") } else { history.sendIndeterminate("isolated-\(cycle)") }
                    }
                    _ = try await Self.leader(of: nodes, excluding: [victim.id])
                    try await Task.sleep(for: .seconds(2))
                    try namespaces.heal(index)
                    try await Task.sleep(for: .seconds(2))
                }
                running.value = false
                await workers.value
                await Self.drain(nodes, history: history)

                try await Self.checkHistory(nodes, history)
                #expect(!isolatedWrites.contains(201), "a node cut off from the majority acknowledged a write: \(isolatedWrites)")
                #expect(history.termsServed >= 2, "leadership moved during the run")
                #expect(history.acknowledgedSendCount > 0)
            }
        }

        /// A consumer-group member of `events`/`indexers`: joins, consumes, commits the next
        /// offsets of what it read (recording each commit answered `204`), joins again when the
        /// group forgot it (a new leader restarts session timers; a rebalance fences it).
        static func groupMember(_ nodes: [Node], history: QueueHistory, running: ManagedFlag) async {
            var member: (id: String, generation: Int)?
            var k = 0
            while running.value {
                k += 1
                let base = nodes[k % nodes.count].process.baseURL + "/topics/events/groups/indexers"
                guard let current = member else {
                    if let joined = try? await call(.POST, base + "/members", json: ["session_timeout": 30], timeout: 15), joined.status == 201 || joined.status == 200,
                       let id = joined.json["member_id"] as? String, let generation = joined.json["generation"] as? Int {
                        member = (id, generation)
                    } else {
                        try? await Task.sleep(for: .milliseconds(200))
                    }
                    continue
                }
                guard let batch = try? await call(.GET, base + "/messages?member_id=\(current.id)&max=50&wait_time=1", timeout: 15) else { continue }
                if batch.status == 404 || batch.status == 409 { member = nil; continue }
                guard batch.status == 200 else { try? await Task.sleep(for: .milliseconds(100)); continue }
                let generation = batch.json["generation"] as? Int ?? current.generation
                member = (current.id, generation)
                var next: [String: Int] = [:]
                for record in batch.json["messages"] as? [[String: Any]] ?? [] {
                    guard let partition = record["partition"] as? Int, let offset = record["offset"] as? Int else { continue }
                    next["\(partition)"] = max(next["\(partition)"] ?? 0, offset + 1)
                }
                guard !next.isEmpty else { continue }
                let commit = try? await call(.POST, base + "/offsets", json: ["member_id": current.id, "generation": generation, "offsets": next], timeout: 15)
                if commit?.status == 204 {
                    for (partition, offset) in next { history.committed(partition: Int(partition)!, offset: offset) }
                } else if commit?.status == 404 || commit?.status == 409 {
                    member = nil
                }
            }
        }

        /// Reads every partition of `events` from its start and the group's committed offsets,
        /// through the leader, and checks them against the history.
        static func checkTopic(_ nodes: [Node], history: QueueHistory) async throws -> [QueueHistory.Violation] {
            let leader = try await leader(of: nodes).process.baseURL
            var log: [Int: [Int: String]] = [:]
            for partition in 0..<2 {
                var offset = 0
                while true {
                    let page = try await retrying { try await call(.GET, leader + "/topics/events/partitions/\(partition)/messages?offset=\(offset)&max=1000") }
                    let records = page.json["messages"] as? [[String: Any]] ?? []
                    for record in records {
                        if let o = record["offset"] as? Int, let value = record["value"] as? String { log[partition, default: [:]][o] = value }
                    }
                    guard let last = records.last?["offset"] as? Int else { break }
                    offset = last + 1
                }
            }
            let group = try await retrying { try await call(.GET, leader + "/topics/events/groups/indexers") }
            var stored: [Int: Int?] = [:]
            for partition in group.json["partitions"] as? [[String: Any]] ?? [] {
                if let p = partition["partition"] as? Int { stored[p] = partition["committed"] as? Int }
            }
            return history.checkTopic(log: log, stored: stored)
        }

        /// One receive (batch of 10, wait 1 s) and the acks of what it delivered, recorded.
        static func consumeOnce(_ node: Node, history: QueueHistory, queue: String = "jobs") async {
            let invoked = history.now()
            guard let answer = try? await call(.GET, node.process.baseURL + "/queues/\(queue)/messages?batch_size=10&wait_time=1", timeout: 15),
                  answer.status == 200 else {
                try? await Task.sleep(for: .milliseconds(100))
                return
            }
            let completed = history.now()
            let messages = answer.json["messages"] as? [[String: Any]] ?? []
            for (ordinal, message) in messages.enumerated() {
                guard let body = message["body"] as? String, let id = message["id"] as? String,
                      let count = message["receive_count"] as? Int, let handle = message["receipt_handle"] as? String else { continue }
                // FIFO bodies are "f<sender>-<k>": group g<sender>, k-th message of its sender.
                var fifo: (group: String, sequence: Int)?
                if queue.hasSuffix(".fifo"), let dash = body.firstIndex(of: "-"), let k = Int(body[body.index(after: dash)...]) {
                    fifo = ("g" + body[body.index(after: body.startIndex)..<dash], k)
                }
                history.delivered(body, messageID: id, receiveCount: count, invoked: invoked, completed: completed, fifo: fifo, ordinal: ordinal)
                let escaped = handle.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? handle
                if let ack = try? await call(.DELETE, node.process.baseURL + "/queues/\(queue)/messages/\(escaped)", timeout: 15), ack.status == 204 {
                    history.acknowledged(id, completed: history.now())
                }
            }
        }
    }
}

/// A flag shared between the test and its workers.
final class ManagedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = true
    var value: Bool {
        get { lock.withLock { flag } }
        set { lock.withLock { flag = newValue } }
    }
}
