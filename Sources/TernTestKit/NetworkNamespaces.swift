import Foundation

/// Linux network namespaces for cluster tests: node `i` runs in a namespace of its own with two
/// interfaces, one on a *cluster* bridge (gossip, Raft, forwarding) and one on a *client* bridge
/// (the test's requests). ``cut(_:)`` takes the node's cluster link down — it can no longer
/// reach the other nodes nor they it — while clients still reach it: a real partition, with
/// the isolated node still answering requests (Jepsen's "partition one node" nemesis).
///
/// Needs root and `ip` (iproute2); ``isAvailable`` probes both. Names carry a random tag, so
/// concurrent test runs do not collide; ``remove()`` (or `deinit`) deletes everything.
public final class NetworkNamespaces: @unchecked Sendable {
    public let count: Int
    private let tag: String
    /// Second octet of both /24 subnets: 10.S.0.0 (cluster) and 10.S.1.0 (clients).
    private let octet: Int
    private var removed = false

    static let ip = "/usr/sbin/ip"

    /// Whether namespaces can be made here (root, iproute2, and a probe namespace succeeds).
    public static var isAvailable: Bool {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: ip) else { return false }
        let name = "ternprobe\(UInt16.random(in: 0...UInt16.max))"
        guard (try? run(["netns", "add", name])) != nil else { return false }
        _ = try? run(["netns", "del", name])
        return true
    }

    /// Creates `count` namespaces wired to the two bridges.
    /// - Throws: ``TernProcess/Failure`` naming the `ip` command that failed (everything made
    ///   so far is removed).
    public init(count: Int) throws {
        self.count = count
        tag = String(format: "%04x", UInt16.random(in: 0...UInt16.max))
        octet = Int.random(in: 100...199)
        do {
            for (bridge, subnet) in [(clusterBridge, 0), (clientBridge, 1)] {
                try Self.run(["link", "add", bridge, "type", "bridge"])
                try Self.run(["addr", "add", "10.\(octet).\(subnet).1/24", "dev", bridge])
                try Self.run(["link", "set", bridge, "up"])
            }
            for i in 0..<count {
                let ns = namespace(i)
                try Self.run(["netns", "add", ns])
                for (kind, bridge, subnet) in [("c", clusterBridge, 0), ("k", clientBridge, 1)] {
                    let host = "t\(tag)\(kind)\(i)h", inside = "t\(tag)\(kind)\(i)n"
                    try Self.run(["link", "add", host, "type", "veth", "peer", "name", inside])
                    try Self.run(["link", "set", inside, "netns", ns])
                    try Self.run(["link", "set", host, "master", bridge])
                    try Self.run(["link", "set", host, "up"])
                    try Self.run(["netns", "exec", ns, Self.ip, "addr", "add", "10.\(octet).\(subnet).\(10 + i)/24", "dev", inside])
                    try Self.run(["netns", "exec", ns, Self.ip, "link", "set", inside, "up"])
                }
                try Self.run(["netns", "exec", ns, Self.ip, "link", "set", "lo", "up"])
            }
        } catch {
            remove()
            throw error
        }
    }

    private var clusterBridge: String { "t\(tag)cbr" }
    private var clientBridge: String { "t\(tag)kbr" }
    private func namespace(_ i: Int) -> String { "tern\(tag)n\(i)" }

    /// Node `i`'s address on the cluster network (bind gossip and the binary listener there).
    public func clusterAddress(_ i: Int) -> String { "10.\(octet).0.\(10 + i)" }
    /// Node `i`'s address on the client network (the test's requests go there).
    public func clientAddress(_ i: Int) -> String { "10.\(octet).1.\(10 + i)" }
    /// The prefix that runs a command in node `i`'s namespace (``TernProcess/launcher``).
    public func launcher(_ i: Int) -> [String] { [Self.ip, "netns", "exec", namespace(i)] }

    /// Cuts node `i` off from the other nodes (clients still reach it).
    public func cut(_ i: Int) throws { try Self.run(["link", "set", "t\(tag)c\(i)h", "down"]) }
    /// Reconnects node `i` to the other nodes.
    public func heal(_ i: Int) throws { try Self.run(["link", "set", "t\(tag)c\(i)h", "up"]) }

    /// Deletes the namespaces (their veth ends go with them) and the bridges.
    public func remove() {
        guard !removed else { return }
        removed = true
        for i in 0..<count { _ = try? Self.run(["netns", "del", namespace(i)]) }
        for i in 0..<count {
            for kind in ["c", "k"] { _ = try? Self.run(["link", "del", "t\(tag)\(kind)\(i)h"]) }
        }
        _ = try? Self.run(["link", "del", clusterBridge])
        _ = try? Self.run(["link", "del", clientBridge])
    }

    deinit { remove() }

    @discardableResult
    static func run(_ arguments: [String]) throws -> String {
        let (status, output) = try ChildProcess.run(ip, arguments)
        guard status == 0 else {
            throw TernProcess.Failure("ip \(arguments.joined(separator: " ")) failed (\(status)): \(output)")
        }
        return output
    }
}
