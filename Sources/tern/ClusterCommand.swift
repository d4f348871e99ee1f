import ArgumentParser
import Foundation
import TernWire

/// `tern cluster …`: the cluster as this node sees it.
struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Inspect the cluster, and add or remove replicas.",
        subcommands: [Members.self, Status.self, Add.self, Remove.self]
    )
}

extension API {
    /// `GET /cluster/members` (and `DescribeCluster` over the binary protocol).
    struct ClusterMembers: Codable, Sendable, Equatable {
        struct Addresses: Codable, Sendable, Equatable {
            var gossip: String
            var http: String?
            var binary: String?
        }
        struct Member: Codable, Sendable, Equatable {
            var nodeID: String
            var state: String
            var incarnation: UInt64
            var addresses: Addresses
            var zone: String?
            var startedAt: UInt64
            var lastChange: UInt64
            var local: Bool

            enum CodingKeys: String, CodingKey {
                case nodeID = "node_id", state, incarnation, addresses, zone, startedAt = "started_at", lastChange = "last_change", local
            }
        }
        var gossip: Bool
        var nodeID: String?
        var members: [Member]

        enum CodingKeys: String, CodingKey {
            case gossip, nodeID = "node_id", members
        }

        init(gossip: Bool, nodeID: String?, members: [Member]) {
            self.gossip = gossip
            self.nodeID = nodeID
            self.members = members
        }

        /// The binary protocol's view in the HTTP API's shape.
        init(_ view: WireClusterView) {
            self.init(gossip: view.gossip, nodeID: view.nodeID, members: view.members.map { member in
                Member(nodeID: member.nodeID, state: member.state.name, incarnation: member.incarnation,
                       addresses: Addresses(gossip: member.gossip, http: member.http, binary: member.binary), zone: member.zone,
                       startedAt: member.startedAt, lastChange: member.lastChange, local: member.isLocal)
            })
        }
    }
}

extension API {
    /// `GET /cluster`.
    struct ClusterStatus: Codable, Sendable, Equatable {
        struct Controller: Codable, Sendable, Equatable {
            var leader: String?
            var term: UInt64
        }
        struct Group: Codable, Sendable, Equatable {
            var kind: String
            var name: String
            var partition: Int?
            var group: UInt64
            var leader: String?
            var term: UInt64
            var replicas: [String]
            /// Absent from nodes older than membership changes.
            var learners: [String]?
            var inSync: [String]?
            var commitIndex: UInt64
            var appliedIndex: UInt64
            var lag: UInt64?
            /// Absent from nodes older than log compaction.
            var snapshotIndex: UInt64?
            var logEntries: Int?

            enum CodingKeys: String, CodingKey {
                case kind, name, partition, group, leader, term, replicas, learners, inSync = "in_sync", commitIndex = "commit_index",
                     appliedIndex = "applied_index", lag, snapshotIndex = "snapshot_index", logEntries = "log_entries"
            }
        }
        var clustered: Bool
        var nodeID: String?
        var controllers: [String]
        var controller: Controller?
        var members: [ClusterMembers.Member]
        /// Absent from nodes older than membership changes.
        var replicas: Replicas?
        var groups: [Group]

        enum CodingKeys: String, CodingKey {
            case clustered, nodeID = "node_id", controllers, controller, members, replicas, groups
        }
    }
}

extension API {
    /// The answer of `PUT`/`DELETE /cluster/replicas/{node_id}`.
    struct Replicas: Codable, Sendable, Equatable {
        var group: UInt64
        var voters: [String]
        var learners: [String]
    }
}

extension BrokerClient {
    func addReplica(_ node: String) async throws -> API.Replicas {
        try await call(.PUT, "/cluster/replicas/\(node)", as: API.Replicas.self).answer
    }

    func removeReplica(_ node: String) async throws -> API.Replicas {
        try await call(.DELETE, "/cluster/replicas/\(node)", as: API.Replicas.self).answer
    }

    func clusterMembers() async throws -> API.ClusterMembers {
        try await call(.GET, "/cluster/members", as: API.ClusterMembers.self).answer
    }

    func clusterStatus() async throws -> API.ClusterStatus {
        try await call(.GET, "/cluster", as: API.ClusterStatus.self).answer
    }
}

extension ClusterCommand {
    /// `tern cluster members`: the membership view as a table (HTTP: `GET /cluster/members`;
    /// binary: `DescribeCluster`).
    struct Members: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the cluster's members as the server sees them (state, incarnation, addresses, zone).")

        @OptionGroup var options: ServerOptions

        @Flag(help: "Print the JSON of GET /cluster/members instead of a table.")
        var json = false

        func run() async throws {
            let view = try await options.run { client in try await client.clusterMembers() }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try encoder.encode(view), as: UTF8.self))
                return
            }
            guard view.gossip else {
                print("this node runs alone (start ternd with --gossip HOST:PORT and --seeds to form a cluster)")
                return
            }
            print(Self.table(view, now: UInt64(Date().timeIntervalSince1970 * 1000)))
        }

        /// The members as aligned columns, by node id; `*` marks the answering node.
        static func table(_ view: API.ClusterMembers, now: UInt64) -> String {
            var rows = [["NODE", "STATE", "INCARNATION", "GOSSIP", "HTTP", "BINARY", "ZONE", "SINCE"]]
            for member in view.members.sorted(by: { $0.nodeID < $1.nodeID }) {
                let since = now >= member.lastChange ? QueueCommand.List.age(Double(now - member.lastChange) / 1000) : "0s"
                rows.append([member.nodeID + (member.local ? " *" : ""), member.state, String(member.incarnation),
                             member.addresses.gossip, member.addresses.http ?? "-", member.addresses.binary ?? "-",
                             member.zone ?? "-", since])
            }
            return align(rows)
        }

        /// Rows as aligned columns, two spaces apart, without trailing blanks.
        static func align(_ rows: [[String]]) -> String {
            let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
            return rows.map { row in
                var line = ""
                for (column, cell) in row.enumerated() {
                    line += (column == 0 ? "" : "  ") + cell + String(repeating: " ", count: widths[column] - cell.count)
                }
                while line.hasSuffix(" ") { line.removeLast() }
                return line
            }.joined(separator: "\n")
        }
    }
}

extension ClusterCommand {
    /// `tern cluster status`: who leads what, terms, replicas and lag, as tables (`GET /cluster`).
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the cluster: members, the controller leader, and each queue's and topic partition's leader, replicas and lag.")

        @OptionGroup var options: ServerOptions

        @Flag(help: "Print the JSON of GET /cluster instead of tables.")
        var json = false

        func run() async throws {
            let view = try await options.run { client in try await client.clusterStatus() }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try encoder.encode(view), as: UTF8.self))
                return
            }
            guard view.clustered else {
                print("this node does not replicate (start ternd with --gossip, --seeds and --controllers to form a cluster)")
                return
            }
            print(Self.render(view))
        }

        static func render(_ view: API.ClusterStatus) -> String {
            var lines: [String] = []
            let leader = view.controller?.leader ?? "none"
            lines.append("node \(view.nodeID ?? "?"); controllers \(view.controllers.joined(separator: ",")); leader \(leader), term \(view.controller?.term ?? 0)")
            lines.append("")
            var members = [["NODE", "STATE", "HTTP", "BINARY", "ZONE"]]
            for member in view.members.sorted(by: { $0.nodeID < $1.nodeID }) {
                let mark = (member.local ? " *" : "") + (member.nodeID == view.controller?.leader ? " (leader)" : "")
                members.append([member.nodeID + mark, member.state, member.addresses.http ?? "-", member.addresses.binary ?? "-", member.zone ?? "-"])
            }
            lines.append(Members.align(members))
            if let replicas = view.replicas {
                lines.append("")
                lines.append("replicas: \(Remove.describe(replicas))")
            }
            lines.append("")
            if view.groups.isEmpty {
                lines.append("no queues or topics yet")
            } else {
                var groups = [["KIND", "NAME", "PARTITION", "GROUP", "LEADER", "TERM", "REPLICAS", "IN-SYNC", "COMMIT", "APPLIED", "LAG", "SNAPSHOT", "LOG"]]
                for group in view.groups {
                    groups.append([group.kind, group.name, group.partition.map(String.init) ?? "-", String(group.group), group.leader ?? "none",
                                   String(group.term), group.replicas.map { (group.learners ?? []).contains($0) ? $0 + "(learner)" : $0 }.joined(separator: ","), group.inSync?.joined(separator: ",") ?? "?",
                                   String(group.commitIndex), String(group.appliedIndex), group.lag.map(String.init) ?? "?",
                                   group.snapshotIndex.map(String.init) ?? "?", group.logEntries.map(String.init) ?? "?"])
                }
                lines.append(Members.align(groups))
            }
            return lines.joined(separator: "\n")
        }
    }
}

extension ClusterCommand {
    /// `tern cluster add NODE`: adds a running node to the data group (`PUT /cluster/replicas/NODE`).
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a running node to the replicas of the queues and topics (as a learner; promoted to voter once caught up).",
            discussion: "Start the node first with --node-id, --gossip and this cluster's --seeds and --controllers; then add it from any node. Watch the promotion with `tern cluster status`.")

        @OptionGroup var options: ServerOptions

        @Argument(help: "The node id to add (its --node-id).")
        var node: String

        func validate() throws { try Remove.check(node) }

        func run() async throws {
            let (before, replicas) = try await options.run { client in
                let before = try? await client.clusterStatus().replicas
                return (before, try await client.addReplica(node))
            }
            if let before, before.voters.contains(node) || before.learners.contains(node) {
                print("\(node) is already a replica; nothing changed")
            } else {
                print("added \(node) as a learner; it becomes a voter once it has caught up (tern cluster status)")
            }
            print(Remove.describe(replicas))
        }
    }

    /// `tern cluster remove NODE`: removes a node from the data group (`DELETE /cluster/replicas/NODE`).
    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a node from the replicas of the queues and topics.",
            discussion: "Refused while the voters left would not have a majority alive. Once removed, stop the node and empty its data directory before it joins again.")

        @OptionGroup var options: ServerOptions

        @Argument(help: "The node id to remove.")
        var node: String

        func validate() throws { try Self.check(node) }

        func run() async throws {
            let replicas = try await options.run { client in try await client.removeReplica(node) }
            print("removed \(node); stop it, and empty its data directory before it joins again")
            print(Self.describe(replicas))
        }

        /// Refuses a node id the server would refuse, before anything is sent (and before it
        /// could be read as a path: `..`, `a/b`).
        static func check(_ node: String) throws {
            let allowed = node.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                    || byte == 0x5f || byte == 0x2e || byte == 0x2d
            }
            guard !node.isEmpty, node.utf8.count <= 64, allowed, node != ".", node != ".." else {
                throw ValidationError("node ids are 1–64 of A–Z a–z 0–9 _ . -, got \"\(node)\"")
            }
        }

        static func describe(_ replicas: API.Replicas) -> String {
            "group \(replicas.group): voters \(replicas.voters.joined(separator: ",")); learners \(replicas.learners.isEmpty ? "none" : replicas.learners.joined(separator: ","))"
        }
    }
}
