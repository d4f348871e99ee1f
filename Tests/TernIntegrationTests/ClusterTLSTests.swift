import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import Testing
import TernClient
import TernCore
import TernTestKit

extension IntegrationTests {
    /// A cluster whose nodes serve TLS: replication and forwarding between them use TLS too,
    /// checking each other's certificates against `--tls-ca`; a node that does not trust the
    /// others' certificate cannot reach them.
    @Suite(.serialized) struct ClusterTLSTests {
        typealias Node = ClusterProcessTests.Node

        /// Starts three nodes serving TLS with `certificate`; node `i` trusts `trustRoots[i]`.
        static func startCluster(_ root: TemporaryDirectory, certificate: SelfSignedCertificate, trustRoots: [String],
                                 arguments: [String] = []) async throws -> [Node] {
            let ids = ["node-1", "node-2", "node-3"]
            let gossipPorts = try ids.map { _ in try TernProcess.freePort() }
            let binaryPorts = try ids.map { _ in try TernProcess.freePort() }
            let seeds = gossipPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",")
            var nodes = [Node]()
            for index in ids.indices {
                let process = try TernProcess(
                    dataDirectory: root.appending("\(ids[index])/data"), logFile: root.appending("\(ids[index]).log"),
                    extraArguments: ["--node-id", ids[index], "--gossip", "127.0.0.1:\(gossipPorts[index])", "--seeds", seeds,
                                     "--binary", "127.0.0.1:\(binaryPorts[index])", "--controllers", ids.joined(separator: ","),
                                     "--tls-certificate", certificate.certificatePath, "--tls-key", certificate.keyPath,
                                     "--tls-ca", trustRoots[index]] + arguments,
                    tlsTrustRoots: certificate.certificatePath)
                nodes.append(Node(id: ids[index], process: process, binaryPort: binaryPorts[index]))
            }
            for node in nodes { try await node.process.start() }
            return nodes
        }

        static func call(_ client: HTTPClient, _ method: HTTPMethod, _ url: String, json: [String: Any]? = nil) async throws
            -> (status: Int, json: [String: Any], servedBy: String?)
        {
            var request = HTTPClientRequest(url: url)
            request.method = method
            if let json {
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json)))
            }
            let response = try await client.execute(request, timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 16 << 20)
            return (Int(response.status.code), (try? HTTP.object(Data(body.readableBytesView))) ?? [:],
                    response.headers.first(name: "Tern-Served-By"))
        }

        /// The node `/cluster` names as leader once it serves, polled up to 60 s.
        static func leader(_ client: HTTPClient, of nodes: [Node]) async throws -> Node {
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                for node in nodes {
                    guard let answer = try? await call(client, .GET, node.process.baseURL + "/cluster"),
                          let controller = answer.json["controller"] as? [String: Any], let id = controller["leader"] as? String,
                          let leader = nodes.first(where: { $0.id == id }),
                          let probe = try? await call(client, .GET, leader.process.baseURL + "/queues"), probe.status == 200,
                          probe.servedBy == id else { continue }
                    return leader
                }
                try await Task.sleep(for: .milliseconds(200))
            }
            throw TernProcess.Failure("no leader within 60 s")
        }

        static func counter(_ client: HTTPClient, _ node: Node, _ name: String) async throws -> Double {
            var request = HTTPClientRequest(url: node.process.baseURL + "/metrics")
            request.method = .GET
            let response = try await client.execute(request, timeout: .seconds(10))
            let text = String(buffer: try await response.body.collect(upTo: 16 << 20))
            return text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last!) } ?? 0
        }

        /// Makes a certificate for 127.0.0.1, starts three nodes serving TLS with it (node `i`
        /// trusting `trustRoots(certificate, stranger)[i]`, where `stranger` is a second
        /// certificate nobody serves), runs `body` with an HTTPS client that trusts the
        /// certificate, then kills the nodes and shuts the client down, also when `body` throws.
        static func withTLSCluster(_ prefix: String, arguments: [String] = [],
                                   trustRoots: (_ certificate: String, _ stranger: String) -> [String] = { c, _ in [c, c, c] },
                                   _ body: (_ nodes: [Node], _ https: HTTPClient, _ certificate: SelfSignedCertificate) async throws -> Void) async throws {
            let root = try TemporaryDirectory(prefix: prefix)
            defer { root.remove() }
            let certificate = try SelfSignedCertificate()
            defer { certificate.directory.remove() }
            let stranger = try SelfSignedCertificate()
            defer { stranger.directory.remove() }
            let nodes = try await startCluster(root, certificate: certificate,
                                               trustRoots: trustRoots(certificate.certificatePath, stranger.certificatePath), arguments: arguments)
            let https = try TernProcess.httpsClient(trusting: certificate.certificatePath)
            do {
                try await ClusterProcessTests.killing(nodes) { try await body(nodes, https, certificate) }
            } catch {
                try? await https.shutdown()
                throw error
            }
            try await https.shutdown()
        }

        @Test(.enabled(if: SelfSignedCertificate.canBeMade, "needs the openssl command to make a certificate"))
        func nodesReplicateAndForwardOverTLS() async throws {
            try await Self.withTLSCluster("tern-cluster-tls") { nodes, https, certificate in
                let leader = try await Self.leader(https, of: nodes)
                let follower = nodes.first { $0.id != leader.id }!
                // Through a follower: forwarded to the leader over HTTPS, replicated over TLS.
                let created = try await Self.call(https, .PUT, follower.process.baseURL + "/queues/secure")
                #expect(created.status == 201 && created.servedBy == leader.id)
                let sent = try await Self.call(https, .POST, follower.process.baseURL + "/queues/secure/messages", json: ["message": "sealed"])
                #expect(sent.status == 201)

                var settings = TernClient.Settings()
                var tls = TLSConfiguration.makeClientConfiguration()
                tls.trustRoots = .file(certificate.certificatePath)
                settings.tls = tls
                let client = TernClient(host: "127.0.0.1", port: follower.binaryPort, settings: settings)
                let received = try await client.receive(from: "secure", maxMessages: 10, waitTime: 1)
                #expect(received.map { String(decoding: $0.body, as: UTF8.self) } == ["sealed"])
                #expect(client.currentAddress.port == leader.binaryPort, "Metadata over TLS sent the client to the leader")
                await client.close()
                // A client pinned to the follower: its requests are forwarded to the leader on a
                // peer connection over TLS (decision 133); plain TCP would be refused there.
                var pinned = settings
                pinned.discoverLeader = false
                pinned.maxLeaderRedirects = 0
                let pinnedClient = TernClient(host: "127.0.0.1", port: follower.binaryPort, settings: pinned)
                _ = try await pinnedClient.send([OutgoingMessage(body: Array("pinned".utf8))], to: "secure")
                let forwarded = try await pinnedClient.receive(from: "secure", maxMessages: 10, waitTime: 1)
                #expect(forwarded.map { String(decoding: $0.body, as: UTF8.self) } == ["pinned"], "forwarded over TLS")
                #expect(pinnedClient.currentAddress.port == follower.binaryPort)
                await pinnedClient.close()
                // Every node's links to the others were established (none refused for its certificate).
                for node in nodes {
                    #expect(try await Self.counter(https, node, "tern_peer_connections_established_total") >= 1, "\(node.id)")
                }
            }
        }

        /// A follower whose data directory was deleted is rebuilt by a snapshot fetched over TLS
        /// (`SnapshotChunk` on its own peer connection).
        @Test(.enabled(if: SelfSignedCertificate.canBeMade, "needs the openssl command to make a certificate"))
        func aNodeWhoseDataIsLost_isRebuiltBySnapshotOverTLS() async throws {
            try await Self.withTLSCluster("tern-cluster-tls-rejoin", arguments: ["--raft-log-entries", "20"]) { nodes, https, _ in
                let leader = try await Self.leader(https, of: nodes)
                #expect(try await Self.call(https, .PUT, leader.process.baseURL + "/queues/kept").status == 201)
                func send(_ tag: String, _ count: Int) async throws {
                    for k in 0..<count {
                        #expect(try await Self.call(https, .POST, leader.process.baseURL + "/queues/kept/messages", json: ["message": "\(tag)-\(k)"]).status == 201)
                    }
                }
                try await send("before", 30)
                let victim = nodes.first { $0.id != leader.id }!
                await victim.process.kill9()
                try FileManager.default.removeItem(atPath: victim.process.dataDirectory)
                try await send("while-gone", 30)
                try await victim.process.start(timeout: .seconds(60))
                var installed = 0
                let deadline = ContinuousClock.now + .seconds(60)
                while installed < 1 && ContinuousClock.now < deadline {
                    let groups = (try? await Self.call(https, .GET, victim.process.baseURL + "/cluster"))?.json["groups"] as? [[String: Any]] ?? []
                    installed = groups.compactMap { ($0["snapshots_installed"] as? NSNumber)?.intValue }.max() ?? 0
                    if installed < 1 { try await Task.sleep(for: .milliseconds(200)) }
                }
                #expect(installed >= 1, "the emptied node installed a snapshot over TLS")
                let failures = try await Self.counter(https, victim, "tern_raft_snapshot_install_failures_total")
                #expect(failures == 0, "no attempt failed (a plain-text fetch from a TLS listener would)")
            }
        }

        @Test(.enabled(if: SelfSignedCertificate.canBeMade, "needs the openssl command to make a certificate"))
        func aNodeThatDoesNotTrustTheOthersCertificate_cannotReachThem() async throws {
            // node-3 trusts only a certificate nobody serves.
            try await Self.withTLSCluster("tern-cluster-tls-untrusted", trustRoots: { c, stranger in [c, c, stranger] }) { nodes, https, _ in
                // node-1 and node-2 trust each other and form a majority.
                _ = try await Self.leader(https, of: Array(nodes.prefix(2)))
                let deadline = ContinuousClock.now + .seconds(30)
                var failures = 0.0
                while ContinuousClock.now < deadline {
                    failures = try await Self.counter(https, nodes[2], "tern_peer_connect_failures_total")
                    if failures >= 2 { break }
                    try await Task.sleep(for: .milliseconds(500))
                }
                #expect(failures >= 2, "node-3's connections fail the certificate check")
                #expect(try await Self.counter(https, nodes[2], "tern_peer_connections_established_total") == 0,
                        "no link of node-3 got through")
            }
        }
    }
}
