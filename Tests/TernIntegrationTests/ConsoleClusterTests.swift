import Foundation
import NIOHTTP1
import Testing
import TernTestKit

extension IntegrationTests {
    /// The console's cluster page (`#/cluster`), read from headless Chromium's DOM and compared
    /// with `GET /cluster` of the same node.
    @Suite(.serialized) struct ConsoleClusterTests {
        typealias Cluster = ClusterProcessTests

        @Test(.enabled(if: Chromium.path != nil,
                       "needs Debian's chromium (apt-get install chromium; .ci/run installs it) to drive the console headless"))
        func clusterPage_showsTheLeaderTermAndEveryGroup_asGETClusterReportsThem() async throws {
            try await Cluster.withCluster("tern-cluster-console") { nodes, _ in
                let leader = try await Cluster.leader(of: nodes)
                let follower = nodes.first { $0.id != leader.id }!
                _ = try await Cluster.retrying { try await Cluster.call(.PUT, leader.process.baseURL + "/queues/orders") }
                _ = try await Cluster.retrying { try await Cluster.call(.PUT, leader.process.baseURL + "/topics/clicks", json: ["partitions": 2]) }

                // Wait until the follower applied everything, so both pages list the same groups.
                var followerView: [String: Any] = [:]
                for _ in 0..<150 {
                    followerView = try await Cluster.call(.GET, follower.process.baseURL + "/cluster").json
                    let groups = followerView["groups"] as? [[String: Any]] ?? []
                    if groups.count == 3, groups.allSatisfy({ ($0["applied_index"] as? Int) == ($0["commit_index"] as? Int) }) { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                let term = try #require((followerView["controller"] as? [String: Any])?["term"] as? Int)

                for (node, isLeader) in [(follower, false), (leader, true)] {
                    let page = ConsoleDOM(html: try await Chromium.dumpDOM("\(node.process.baseURL)/console#/cluster"))
                    #expect(page.html.contains("id=\"status\">updated"), "the page rendered: \(page.html.prefix(2000))")
                    let controller = "data-controller=\"\(node.id)\""
                    #expect(page.field(row: controller, "leader") == leader.id, "the controller leader on \(node.id)")
                    #expect(page.field(row: controller, "term") == "\(term)")
                    #expect(page.field(row: controller, "controllers") == nodes.map(\.id).joined(separator: " "))
                    for member in nodes {
                        #expect(page.html.contains("data-member=\"\(member.id)\""), "member \(member.id) listed on \(node.id)")
                    }
                    for group in ["queue:orders", "topic:clicks:0", "topic:clicks:1"] {
                        let row = "data-group=\"\(group)\""
                        #expect(page.field(row: row, "leader") == leader.id, "\(group) on \(node.id)")
                        #expect(page.field(row: row, "replicas") == nodes.map(\.id).sorted().joined(separator: " "), "\(group) on \(node.id)")
                        #expect(page.field(row: row, "group") == "1")
                        let applied = page.field(row: row, "applied_index").flatMap(Int.init) ?? 0
                        #expect(applied > 0, "\(group) on \(node.id): applied index \(page.field(row: row, "applied_index") ?? "none")")
                        if isLeader {
                            #expect(page.field(row: row, "in_sync")?.split(separator: " ").count ?? 0 >= 2, "a majority is in sync")
                            #expect(page.field(row: row, "lag").flatMap(Int.init) != nil, "the leader knows the lag")
                        } else {
                            #expect(page.field(row: row, "in_sync") == "–", "only the leader knows who is in sync")
                            #expect(page.field(row: row, "lag") == "–")
                        }
                    }
                }
            }
        }

        @Test(.enabled(if: Chromium.path != nil,
                       "needs Debian's chromium (apt-get install chromium; .ci/run installs it) to drive the console headless"))
        func clusterPage_saysTheNodeRunsAlone_withoutACluster() async throws {
            try await withServer(["--binary", "127.0.0.1:0", "--no-sync"]) { server, _ in
                let page = ConsoleDOM(html: try await Chromium.dumpDOM("\(server.baseURL)/console#/cluster"))
                #expect(page.html.contains("id=\"status\">updated"), "the page rendered: \(page.html.prefix(2000))")
                #expect(page.html.contains("id=\"cluster-alone\""), "\(page.html.prefix(2000))")
                #expect(page.html.contains("This node runs alone"))
                #expect(!page.html.contains("id=\"groups\""))
            }
        }

        /// What a hostile (or broken) node could put in `GET /cluster`: markup in every field,
        /// numbers included. The page and its script come from a real `ternd`, with its CSP;
        /// `/cluster` from a stub (python3's http.server) that answers with the payload.
        static let stub = #"""
import http.server, json, sys, urllib.request
upstream, port, payload = sys.argv[1], int(sys.argv[2]), sys.argv[3]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        path = self.path.split("?")[0]
        headers = {"Content-Type": "application/json"}
        if path == "/cluster":
            status, data = 200, payload.encode()
        elif path.startswith("/console"):
            with urllib.request.urlopen(upstream + path) as answer:
                status, data = 200, answer.read()
                headers = {k: answer.headers[k] for k in ("Content-Type", "Content-Security-Policy") if answer.headers[k]}
        else:
            status, data = 404, b'{"error": {"code": "RouteNotFound", "message": "stub"}}'
        self.send_response(status)
        for key, value in headers.items(): self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args): pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""#

        static var python3: String? {
            ["/usr/bin/python3", "/usr/local/bin/python3"].first { FileManager.default.isExecutableFile(atPath: $0) }
        }

        @Test(.enabled(if: Chromium.path != nil && python3 != nil, "needs chromium and python3 (.ci/run installs both)"))
        func clusterPage_escapesEveryFieldOfGETCluster() async throws {
            let hostile = "<img src=x id=pwned>"
            let payload: [String: Any] = [
                "clustered": true, "node_id": hostile, "controllers": [hostile], "controller": ["leader": hostile, "term": hostile],
                "members": [["node_id": hostile, "state": hostile, "incarnation": hostile, "zone": hostile, "started_at": 0,
                             "last_change": 0, "local": false, "addresses": ["gossip": hostile, "http": hostile, "binary": hostile]]],
                "groups": [["kind": hostile, "name": hostile, "partition": hostile, "group": hostile, "leader": hostile, "term": hostile,
                            "replicas": [hostile], "in_sync": [hostile], "commit_index": hostile, "applied_index": hostile, "lag": hostile]],
            ]
            let json = String(decoding: try JSONSerialization.data(withJSONObject: payload), as: UTF8.self)
            try await withServer(["--binary", "127.0.0.1:0", "--no-sync"]) { server, root in
                let port = try TernProcess.freePort()
                let process = try ChildProcess(executable: Self.python3!, arguments: ["-c", Self.stub, server.baseURL, String(port), json],
                                               standardError: root.appending("stub.log"))
                func stop() async {
                    process.send(SIGKILL)
                    _ = await process.waitForExit()
                }
                do {
                    try await Self.checkEscaping(stub: port)
                } catch {
                    await stop()
                    throw error
                }
                await stop()
            }
        }

        static func checkEscaping(stub port: Int) async throws {
            let http = HTTP()
            for _ in 0..<100 {
                if let (status, _) = try? await http.request(.GET, "http://127.0.0.1:\(port)/cluster", timeout: .seconds(1)), status == 200 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            let page = ConsoleDOM(html: try await Chromium.dumpDOM("http://127.0.0.1:\(port)/console#/cluster"))
            #expect(page.html.contains("id=\"status\">updated"), "the page rendered: \(page.html.prefix(2000))")
            #expect(!page.html.contains("id=\"pwned\""), "markup from GET /cluster became an element: \(page.html)")
            // node, controllers, leader, term; member id, state, incarnation, gossip, HTTP (twice), zone;
            // kind, name, partition, group, leader, term, replicas, in sync, commit, applied, lag.
            #expect(page.count(of: "&lt;img src=x id=pwned&gt;") >= 21, "every field shown as text: \(page.html)")
        }
    }
}
