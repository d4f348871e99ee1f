import AsyncHTTPClient
import Foundation
import NIOHTTP1
import Testing
import TernServer
import TernTestKit

extension IntegrationTests {
    /// Issue 11, "every HTTP route answers the same on a follower as on the leader": one row
    /// per data route of ``HTTPAPI/routes`` (everything under `/queues`, `/topics`,
    /// `/producers`, `/transactions`), each run once against the leader and once against a
    /// follower of a 3-node cluster on state set up alike, and the answers compared: status,
    /// error code, and body with ids, timestamps and handles (which legitimately differ) left out.
    @Suite(.serialized) struct ClusterForwardingTests {
        typealias Cluster = ClusterProcessTests

        /// The request a row sends, built once its state is in place.
        struct Request {
            var method: HTTPMethod
            var path: String
            var json: [String: Any]?
        }

        /// The names one run of a row uses (`rNN-l` on the leader's run, `rNN-f` on the
        /// follower's), and the leader's address to set state up through.
        struct Fixture {
            var name: String
            var leader: String

            /// Sets state up on the leader; anything but 2xx stops the test.
            @discardableResult
            func setUp(_ method: HTTPMethod, _ path: String, _ json: [String: Any]? = nil) async throws -> [String: Any] {
                let answer = try await Cluster.retrying { try await Cluster.call(method, leader + path, json: json) }
                guard (200..<300).contains(answer.status) else {
                    throw TernProcess.Failure("setting up \(method) \(path): \(answer.status) \(String(decoding: answer.body, as: UTF8.self))")
                }
                return answer.json
            }

            func queue(_ attributes: [String: Any] = [:], messages: Int = 0) async throws {
                try await setUp(.PUT, "/queues/\(name)", attributes)
                for k in 0..<messages { try await setUp(.POST, "/queues/\(name)/messages", ["message": "m\(k)"]) }
            }

            /// Sends one message and receives it: its receipt handle, path-escaped.
            func handle() async throws -> String {
                try await queue(messages: 1)
                let received = try await setUp(.GET, "/queues/\(name)/messages?batch_size=1&wait_time=1")
                guard let handle = (received["messages"] as? [[String: Any]])?.first?["receipt_handle"] as? String else {
                    throw TernProcess.Failure("no message received from \(name): \(received)")
                }
                return handle
            }

            func topic(records: Int = 0) async throws {
                try await setUp(.PUT, "/topics/\(name)", ["partitions": 2])
                for k in 0..<records { try await setUp(.POST, "/topics/\(name)/messages", ["value": "v\(k)", "partition": k % 2]) }
            }

            /// A topic with records and one member in group `g`: (member id, generation).
            func member() async throws -> (String, Int) {
                try await topic(records: 2)
                let joined = try await setUp(.POST, "/topics/\(name)/groups/g/members", ["session_timeout": 30])
                guard let member = joined["member_id"] as? String, let generation = joined["generation"] as? Int else {
                    throw TernProcess.Failure("join answered \(joined)")
                }
                return (member, generation)
            }
        }

        struct Row: Sendable {
            var route: String
            var request: @Sendable (Fixture) async throws -> Request
        }

        static func escape(_ text: String) -> String {
            text.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? text
        }

        /// The table: every data route and the state it needs. A route added to
        /// ``HTTPAPI/routes`` without a row here fails ``everyDataRouteHasARow()``.
        static let rows: [Row] = [
            Row(route: "GET /queues") { _ in Request(method: .GET, path: "/queues") },
            Row(route: "PUT /queues/{name}") { f in
                Request(method: .PUT, path: "/queues/\(f.name)", json: ["visibility_timeout": 45, "retention": 3600, "max_messages": 1000])
            },
            Row(route: "GET /queues/{name}") { f in
                try await f.queue(messages: 2)
                return Request(method: .GET, path: "/queues/\(f.name)")
            },
            Row(route: "DELETE /queues/{name}") { f in
                try await f.queue()
                return Request(method: .DELETE, path: "/queues/\(f.name)")
            },
            Row(route: "POST /queues/{name}/purge") { f in
                try await f.queue(messages: 3)
                return Request(method: .POST, path: "/queues/\(f.name)/purge")
            },
            Row(route: "POST /queues/{name}/redrive") { f in
                // A dead-lettered message: received past max_receive_count 1.
                try await f.queue()
                try await f.setUp(.PUT, "/queues/\(f.name)-src", ["dead_letter_queue": f.name, "max_receive_count": 1])
                try await f.setUp(.POST, "/queues/\(f.name)-src/messages", ["message": "poison"])
                for _ in 0..<50 {
                    try await f.setUp(.GET, "/queues/\(f.name)-src/messages?batch_size=1&visibility_timeout=0")
                    let dlq = try await f.setUp(.GET, "/queues/\(f.name)")
                    if ((dlq["messages"] as? [String: Any])?["total"] as? Int ?? 0) == 1 { break }
                    try await Task.sleep(for: .milliseconds(200))
                }
                return Request(method: .POST, path: "/queues/\(f.name)/redrive")
            },
            Row(route: "POST /queues/{name}/messages") { f in
                try await f.queue()
                return Request(method: .POST, path: "/queues/\(f.name)/messages", json: ["message": "hello", "priority": 3])
            },
            Row(route: "GET /queues/{name}/messages") { f in
                try await f.queue(messages: 2)
                return Request(method: .GET, path: "/queues/\(f.name)/messages?batch_size=10&wait_time=1")
            },
            Row(route: "DELETE /queues/{name}/messages/{receipt_handle}") { f in
                let handle = try await f.handle()
                return Request(method: .DELETE, path: "/queues/\(f.name)/messages/\(escape(handle))")
            },
            Row(route: "PATCH /queues/{name}/messages/{receipt_handle}") { f in
                let handle = try await f.handle()
                return Request(method: .PATCH, path: "/queues/\(f.name)/messages/\(escape(handle))", json: ["visibility_timeout": 60])
            },
            Row(route: "POST /queues/{name}/messages/acknowledge") { f in
                let handle = try await f.handle()
                return Request(method: .POST, path: "/queues/\(f.name)/messages/acknowledge", json: ["receipt_handles": [handle, "not-a-handle"]])
            },
            Row(route: "POST /queues/{name}/messages/visibility") { f in
                let handle = try await f.handle()
                return Request(method: .POST, path: "/queues/\(f.name)/messages/visibility",
                               json: ["entries": [["receipt_handle": handle, "visibility_timeout": 60], ["receipt_handle": "bogus", "visibility_timeout": 1]]])
            },
            Row(route: "GET /queues/{name}/peek") { f in
                try await f.queue(messages: 2)
                return Request(method: .GET, path: "/queues/\(f.name)/peek?max=5")
            },
            Row(route: "GET /topics") { _ in Request(method: .GET, path: "/topics") },
            Row(route: "PUT /topics/{name}") { f in Request(method: .PUT, path: "/topics/\(f.name)", json: ["partitions": 3]) },
            Row(route: "GET /topics/{name}") { f in
                try await f.topic(records: 3)
                return Request(method: .GET, path: "/topics/\(f.name)")
            },
            Row(route: "DELETE /topics/{name}") { f in
                try await f.topic()
                return Request(method: .DELETE, path: "/topics/\(f.name)")
            },
            Row(route: "POST /topics/{name}/messages") { f in
                try await f.topic()
                return Request(method: .POST, path: "/topics/\(f.name)/messages",
                               json: ["messages": [["value": "a", "partition": 0], ["value": "b", "key": "k", "partition": 1]]])
            },
            Row(route: "GET /topics/{name}/partitions/{partition}/messages") { f in
                try await f.topic(records: 4)
                return Request(method: .GET, path: "/topics/\(f.name)/partitions/1/messages?offset=0&max=10")
            },
            Row(route: "GET /topics/{name}/groups/{group}") { f in
                _ = try await f.member()
                return Request(method: .GET, path: "/topics/\(f.name)/groups/g")
            },
            Row(route: "POST /topics/{name}/groups/{group}/members") { f in
                try await f.topic()
                return Request(method: .POST, path: "/topics/\(f.name)/groups/g/members", json: ["session_timeout": 30])
            },
            Row(route: "POST /topics/{name}/groups/{group}/members/{member_id}/heartbeat") { f in
                let (member, _) = try await f.member()
                return Request(method: .POST, path: "/topics/\(f.name)/groups/g/members/\(escape(member))/heartbeat")
            },
            Row(route: "DELETE /topics/{name}/groups/{group}/members/{member_id}") { f in
                let (member, _) = try await f.member()
                return Request(method: .DELETE, path: "/topics/\(f.name)/groups/g/members/\(escape(member))")
            },
            Row(route: "GET /topics/{name}/groups/{group}/messages") { f in
                let (member, _) = try await f.member()
                return Request(method: .GET, path: "/topics/\(f.name)/groups/g/messages?member_id=\(escape(member))&max=10&wait_time=0")
            },
            Row(route: "POST /topics/{name}/groups/{group}/offsets") { f in
                let (member, generation) = try await f.member()
                return Request(method: .POST, path: "/topics/\(f.name)/groups/g/offsets",
                               json: ["member_id": member, "generation": generation, "offsets": ["0": 1]])
            },
            Row(route: "POST /topics/{name}/groups/{group}/offsets/reset") { f in
                try await f.topic(records: 2)
                return Request(method: .POST, path: "/topics/\(f.name)/groups/g/offsets/reset", json: ["to": "latest"])
            },
            Row(route: "POST /producers") { f in Request(method: .POST, path: "/producers", json: ["transactional_id": "tx-\(f.name)"]) },
            Row(route: "POST /transactions") { f in
                try await f.queue()
                try await f.topic()
                let producer = try await f.setUp(.POST, "/producers", ["transactional_id": "tx-\(f.name)"])
                return Request(method: .POST, path: "/transactions", json: [
                    "producer_id": producer["producer_id"] ?? 0, "epoch": producer["epoch"] ?? 0, "sequence": 1,
                    "messages": [["queue": f.name, "message": "in a transaction"]],
                    "records": [["topic": f.name, "value": "r", "partition": 0]],
                ])
            },
        ]

        /// Whether `route` (`METHOD /path`) is served from the replicated state.
        static func isDataRoute(_ route: String) -> Bool {
            let path = route.split(separator: " ", maxSplits: 1).last.map(String.init) ?? ""
            return ["/queues", "/topics", "/producers", "/transactions"].contains { path == $0 || path.hasPrefix($0 + "/") }
        }

        /// Keys whose values differ between two runs of the same request for good reason.
        static let volatileKeys: Set<String> = [
            "id", "receipt_handle", "created_at", "sent_at", "visible_at", "timestamp", "last_seen", "member_id",
            "owner", "producer_id", "oldest_message_age",
        ]

        /// `value` with volatile keys dropped and the run's name replaced by `NAME`.
        static func normalized(_ value: Any, name: String) -> Any {
            switch value {
            case let object as [String: Any]:
                var out: [String: Any] = [:]
                for (key, item) in object where !volatileKeys.contains(key) { out[key] = normalized(item, name: name) }
                return out
            case let array as [Any]:
                // Records from several partitions: only each partition's order is promised,
                // so they are compared partition by partition (a stable sort keeps that order).
                let items = array.map { normalized($0, name: name) }
                guard let records = items as? [[String: Any]], records.allSatisfy({ $0["partition"] is Int && $0["offset"] != nil }) else {
                    return items
                }
                return records.enumerated().sorted { a, b in
                    let (pa, pb) = (a.element["partition"] as! Int, b.element["partition"] as! Int)
                    return pa != pb ? pa < pb : a.offset < b.offset
                }.map(\.element)
            case let text as String:
                return text.replacingOccurrences(of: name, with: "NAME")
            default:
                return value
            }
        }

        static func canonical(_ answer: Cluster.Answer, name: String) -> String {
            guard !answer.body.isEmpty else { return "" }
            guard let parsed = try? JSONSerialization.jsonObject(with: answer.body, options: [.fragmentsAllowed]),
                  let data = try? JSONSerialization.data(withJSONObject: normalized(parsed, name: name), options: [.sortedKeys, .fragmentsAllowed]) else {
                return String(decoding: answer.body, as: UTF8.self).replacingOccurrences(of: name, with: "NAME")
            }
            return String(decoding: data, as: UTF8.self)
        }

        /// The table stays complete: a route added to ``HTTPAPI/routes`` under a data path
        /// without a row here fails this test (and a row for a route that is gone fails too).
        @Test func everyDataRouteHasARow() {
            let dataRoutes = Set(HTTPAPI.routes.filter(Self.isDataRoute))
            let covered = Set(Self.rows.map(\.route))
            #expect(dataRoutes.subtracting(covered).sorted() == [], "data routes without a row in ClusterForwardingTests.rows")
            #expect(covered.subtracting(dataRoutes).sorted() == [], "rows for routes HTTPAPI.routes does not have")
            #expect(Self.rows.count == covered.count, "one row per route")
            #expect(dataRoutes.count >= 28, "the data routes were found: \(dataRoutes.count)")
        }

        /// Each row twice: on the leader with names `rNN-l`, on a follower with `rNN-f`; then
        /// the row again on a missing queue or topic (`absent-l`/`absent-f`), where both must
        /// give the same error. Every answer must say the leader served it.
        @Test func everyDataRouteAnswersTheSameOnAFollowerAsOnTheLeader() async throws {
            try await Cluster.withCluster("tern-cluster-forwarding") { nodes, _ in
                let leader = try await Cluster.leader(of: nodes)
                let follower = nodes.first { $0.id != leader.id }!
                let leaderURL = leader.process.baseURL

                for (index, row) in Self.rows.enumerated() {
                    let number = String(format: "r%02d", index)
                    var answers: [(name: String, answer: Cluster.Answer)] = []
                    for (tag, target) in [("l", leader), ("f", follower)] {
                        let fixture = Fixture(name: "\(number)-\(tag)", leader: leaderURL)
                        let request = try await row.request(fixture)
                        let answer = try await Cluster.retrying {
                            try await Cluster.call(request.method, target.process.baseURL + request.path, json: request.json)
                        }
                        // Errors are rendered outside the forwarding middleware, without the header.
                        if (200..<300).contains(answer.status) {
                            #expect(answer.servedBy == leader.id, "\(row.route) on \(target.id) was served by \(answer.servedBy ?? "nobody")")
                        }
                        answers.append((fixture.name, answer))
                    }
                    let (onLeader, onFollower) = (answers[0].answer, answers[1].answer)
                    let context = "\(row.route): leader \(onLeader.status) \(String(decoding: onLeader.body.prefix(300), as: UTF8.self)), follower \(onFollower.status) \(String(decoding: onFollower.body.prefix(300), as: UTF8.self))"
                    #expect((200..<300).contains(onLeader.status), "the row's request succeeds: \(context)")
                    #expect(onFollower.status == onLeader.status, "\(context)")
                    #expect(HTTP.errorCode(onFollower.body) == HTTP.errorCode(onLeader.body), "\(context)")
                    #expect(Self.canonical(onFollower, name: answers[1].name) == Self.canonical(onLeader, name: answers[0].name), "\(context)")

                    // The same request on a queue or topic that does not exist.
                    guard row.route.contains("{name}") else { continue }
                    var errors: [Cluster.Answer] = []
                    for (tag, target) in [("l", leader), ("f", follower)] {
                        let scratch = "\(number)x-\(tag)"  // set up, then the request aimed elsewhere
                        let request = try await row.request(Fixture(name: scratch, leader: leaderURL))
                        let path = request.path.replacingOccurrences(of: "/\(scratch)/", with: "/absent\(number)-\(tag)/")
                            .replacingOccurrences(of: "/\(scratch)", with: "/absent\(number)-\(tag)")
                        errors.append(try await Cluster.retrying {
                            try await Cluster.call(request.method, target.process.baseURL + path, json: request.json)
                        })
                    }
                    let missingContext = "\(row.route) on a missing resource: leader \(errors[0].status) \(String(decoding: errors[0].body.prefix(300), as: UTF8.self)), follower \(errors[1].status) \(String(decoding: errors[1].body.prefix(300), as: UTF8.self))"
                    #expect(errors[1].status == errors[0].status, "\(missingContext)")
                    #expect(HTTP.errorCode(errors[1].body) == HTTP.errorCode(errors[0].body), "\(missingContext)")
                    if !row.route.hasPrefix("PUT ") {
                        #expect(errors[0].status == 404, "\(missingContext)")
                    }
                }
            }
        }
    }
}
