import ArgumentParser
import Foundation
import TernWire

/// `tern cluster …`: the cluster as this node sees it.
struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Inspect the cluster.",
        subcommands: [Members.self]
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

extension BrokerClient {
    func clusterMembers() async throws -> API.ClusterMembers {
        try await call(.GET, "/cluster/members", as: API.ClusterMembers.self).answer
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
