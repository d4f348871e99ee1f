import Foundation
import TernCluster
import TernBroker
import TernGossip
import TernServer

/// The `cluster:` part of ``Configuration``: gossip membership (`docs/gossip.md`). Without a
/// gossip address the node runs alone, exactly as without clustering.
///
/// ```yaml
/// cluster:
///   node_id: tern-1
///   gossip: 10.0.0.1:7946
///   seeds: [10.0.0.2:7946, 10.0.0.3:7946]
///   zone: eu-west-1a
///   key_file: /etc/tern/cluster.key
/// ```
struct ClusterConfiguration: Equatable {
    /// `--node-id`; default: the host name (only used with a gossip address).
    var nodeID: String?
    /// `--gossip HOST:PORT`: where gossip (UDP) listens and what the others send to.
    var gossip: String?
    /// `--seeds HOST:PORT,…`.
    var seeds: [String] = []
    /// `--zone`.
    var zone: String?
    /// `--cluster-key FILE`.
    var keyFile: String?
    /// `--controllers n1,n2,n3`: the node ids of the controllers, the voters of the
    /// replicated state. Without it, a gossiping node only reports membership.
    var controllers: [String] = []
    /// `--replication-factor N`: copies of each queue and topic, the fewest voters the data
    /// group is kept at (decision 127); nil = the number of controllers.
    var replicationFactor: Int?
    /// `--replace-after S`: seconds a voter may be dead before the leader replaces it with a
    /// live node outside the group; 0 = never (decisions 108, 127). Default 60.
    var replaceAfter = 60
    /// `--raft-log-entries N`: applied entries a replica's Raft log holds before it is
    /// compacted (half of them are kept); default 10,000 (decision 116).
    var raftLogEntries = ReplicaGroup<BrokerStateMachine>.Compaction().logEntries
    /// `--raft-log-bytes N`: bytes of applied entries that start a compaction (half are kept);
    /// default 67,108,864 (decision 116).
    var raftLogBytes = ReplicaGroup<BrokerStateMachine>.Compaction().logBytes
    /// `--[no-]binary-forwarding`: a follower forwards binary data requests to the leader
    /// (decision 133); off, it answers them `NotLeader` naming the leader. Default on.
    var binaryForwarding = true
    /// `--queue-groups`: each queue created in the cluster gets a replication group of its own
    /// (or its `colocate_with` queue's), placed on the data group's voters (decision 140;
    /// experimental: the HTTP API only). Default off: every queue lives in the data group.
    var queueGroups = false
    /// `--max-queue-groups N`: the most queue groups the cluster holds (each costs every replica
    /// an LMDB environment, a Raft ticker and a task); a queue that would need one more is
    /// refused `409 Conflict` unless colocated. Default 1,024.
    var maxQueueGroups = 1024

    /// The compaction settings these figures give.
    var compaction: ReplicaGroup<BrokerStateMachine>.Compaction {
        var compaction = ReplicaGroup<BrokerStateMachine>.Compaction(logEntries: raftLogEntries)
        compaction.logBytes = raftLogBytes
        compaction.catchUpBytes = raftLogBytes / 2
        return compaction
    }

    static let keys: Set<String> = ["node_id", "gossip", "seeds", "zone", "key_file", "controllers", "replication_factor",
                                    "raft_log_entries", "raft_log_bytes", "replace_after", "binary_forwarding",
                                    "queue_groups", "max_queue_groups"]
    static let environmentVariables: [(String, String)] = [
        ("TERN_NODE_ID", "node_id"), ("TERN_GOSSIP", "gossip"), ("TERN_SEEDS", "seeds"), ("TERN_ZONE", "zone"),
        ("TERN_CLUSTER_KEY", "key_file"), ("TERN_CONTROLLERS", "controllers"), ("TERN_REPLICATION_FACTOR", "replication_factor"),
        ("TERN_RAFT_LOG_ENTRIES", "raft_log_entries"), ("TERN_RAFT_LOG_BYTES", "raft_log_bytes"),
        ("TERN_REPLACE_AFTER", "replace_after"),
        ("TERN_BINARY_FORWARDING", "binary_forwarding"), ("TERN_QUEUE_GROUPS", "queue_groups"),
        ("TERN_MAX_QUEUE_GROUPS", "max_queue_groups"),
    ]

    var enabled: Bool { gossip != nil }
    /// Whether this node replicates queues and topics with others (controllers are named).
    var replicates: Bool { enabled && !controllers.isEmpty }

    mutating func apply(yaml value: Any) throws {
        let mapping = try Configuration.mapping(value, "cluster", allowed: Self.keys)
        for (key, value) in mapping {
            if key == "seeds", let list = value as? [Any] {
                seeds = try list.map { try Configuration.string($0, "cluster.seeds") }
            } else if key == "controllers", let list = value as? [Any] {
                controllers = try list.map { try Configuration.string($0, "cluster.controllers") }
            } else if key == "replication_factor", let number = value as? Int {
                replicationFactor = number
            } else if key == "raft_log_entries", let number = value as? Int {
                raftLogEntries = number
            } else if key == "raft_log_bytes", let number = value as? Int {
                raftLogBytes = number
            } else if key == "replace_after", let number = value as? Int {
                replaceAfter = number
            } else if key == "binary_forwarding" {
                binaryForwarding = try Configuration.bool(value, "cluster.binary_forwarding")
            } else if key == "max_queue_groups", let number = value as? Int {
                maxQueueGroups = number
            } else if key == "queue_groups" {
                queueGroups = try Configuration.bool(value, "cluster.queue_groups")
            } else {
                try set(key, Configuration.string(value, "cluster.\(key)"))
            }
        }
    }

    mutating func apply(environment: [String: String]) throws {
        for (variable, key) in Self.environmentVariables {
            if let value = environment[variable] { try set(key, value) }
        }
    }

    mutating func set(_ key: String, _ value: String) throws {
        switch key {
        case "node_id": nodeID = value
        case "gossip": gossip = value
        case "seeds": seeds = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        case "zone": zone = value
        case "key_file": keyFile = value
        case "controllers": controllers = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        case "replication_factor":
            guard let number = Int(value) else { throw ConfigurationError("replication_factor must be a whole number, got \(value)") }
            replicationFactor = number
        case "raft_log_entries":
            guard let number = Int(value) else { throw ConfigurationError("raft_log_entries must be a whole number, got \(value)") }
            raftLogEntries = number
        case "raft_log_bytes":
            guard let number = Int(value) else { throw ConfigurationError("raft_log_bytes must be a whole number, got \(value)") }
            raftLogBytes = number
        case "replace_after":
            guard let number = Int(value) else { throw ConfigurationError("replace_after must be a whole number of seconds, got \(value)") }
            replaceAfter = number
        case "binary_forwarding": binaryForwarding = try Configuration.bool(value, "cluster.binary_forwarding")
        case "queue_groups": queueGroups = try Configuration.bool(value, "cluster.queue_groups")
        case "max_queue_groups":
            guard let number = Int(value) else { throw ConfigurationError("max_queue_groups must be a whole number, got \(value)") }
            maxQueueGroups = number
        default: throw ConfigurationError("unknown setting cluster.\(key)")
        }
    }

    /// The node id: `nodeID`, else the host name cut to a valid id.
    var effectiveNodeID: String {
        if let nodeID { return nodeID }
        let host = ProcessInfo.processInfo.hostName.map { Gossip.NodeID.isValid(String($0)) ? $0 : "-" }
        return String(String(host).prefix(Gossip.NodeID.maxBytes))
    }

    func validate() throws {
        if let nodeID, !Gossip.NodeID.isValid(nodeID) {
            throw ConfigurationError("node_id must be 1–64 characters of A–Z a–z 0–9 _ . -, got \"\(nodeID)\"")
        }
        if let zone, zone.utf8.count > 64 || zone.isEmpty { throw ConfigurationError("zone must be 1–64 bytes") }
        if let gossip {
            guard let address = Gossip.Address(parsing: gossip) else { throw ConfigurationError("gossip must be HOST:PORT, got \(gossip)") }
            guard address.port != 0 else { throw ConfigurationError("gossip needs a fixed port (others send to it), got \(gossip)") }
            guard address.host != "0.0.0.0", address.host != "::" else {
                throw ConfigurationError("gossip must name an address the other nodes can reach, not \(address.host)")
            }
        }
        for seed in seeds where Gossip.Address(parsing: seed) == nil {
            throw ConfigurationError("seeds must be HOST:PORT separated by commas, got \(seed)")
        }
        if !controllers.isEmpty {
            guard enabled else { throw ConfigurationError("controllers need a gossip address (--gossip HOST:PORT)") }
            for controller in controllers where !Gossip.NodeID.isValid(controller) {
                throw ConfigurationError("controllers must be node ids (1–64 of A–Z a–z 0–9 _ . -), got \"\(controller)\"")
            }
            guard Set(controllers).count == controllers.count else { throw ConfigurationError("controllers are named twice: \(controllers)") }
            guard Set(controllers.map(RaftNodeID.of)).count == controllers.count else {
                throw ConfigurationError("two controller ids hash to the same Raft id; rename one of \(controllers)")
            }
            // A node outside the controllers starts as a spare: it holds no copy until a
            // member adds it (`tern cluster add`, decision 126). Its Raft id must not be one of theirs.
            if !controllers.contains(effectiveNodeID), controllers.map(RaftNodeID.of).contains(RaftNodeID.of(effectiveNodeID)) {
                throw ConfigurationError("this node's id (\(effectiveNodeID)) hashes to the same Raft id as one of the controllers \(controllers); rename it")
            }
            if let replicationFactor, !(1...9).contains(replicationFactor) {
                throw ConfigurationError("replication_factor must be 1–9, got \(replicationFactor)")
            }
        } else if replicationFactor != nil {
            throw ConfigurationError("replication_factor needs controllers (--controllers n1,n2,n3)")
        }
        guard replaceAfter >= 0 else { throw ConfigurationError("replace_after must be 0 (never) or more seconds, got \(replaceAfter)") }
        guard (1...1_000_000).contains(maxQueueGroups) else {
            throw ConfigurationError("max_queue_groups must be 1–1000000, got \(maxQueueGroups)")
        }
        guard raftLogEntries >= 2 else { throw ConfigurationError("raft_log_entries must be at least 2, got \(raftLogEntries)") }
        guard raftLogBytes >= 1024 else { throw ConfigurationError("raft_log_bytes must be at least 1024, got \(raftLogBytes)") }
        if !enabled {
            if !seeds.isEmpty { throw ConfigurationError("seeds need a gossip address (--gossip HOST:PORT)") }
            if keyFile != nil { throw ConfigurationError("a cluster key needs a gossip address (--gossip HOST:PORT)") }
        }
        if let keyFile { _ = try Self.readKey(keyFile) }
    }

    /// The key in `path`: the file's bytes without surrounding white space, at least 16.
    /// - Throws: ``ConfigurationError`` when the file cannot be read or the key is too short.
    static func readKey(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else { throw ConfigurationError("cannot read the cluster key file \(path)") }
        let trimmed = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let bytes = Array(trimmed.utf8)
        guard bytes.count >= 16 else {
            throw ConfigurationError("the cluster key in \(path) must be at least 16 bytes (try: openssl rand -base64 32 > \(path))")
        }
        return bytes
    }

    /// YAML lines (the key file's path, never the key).
    func yaml(quoted: (String) -> String) -> [String] {
        guard enabled else { return ["cluster: null"] }
        return [
            "cluster:", "  node_id: \(quoted(effectiveNodeID))", "  gossip: \(quoted(gossip ?? ""))",
            "  seeds: [\(seeds.map(quoted).joined(separator: ", "))]", "  zone: \(zone.map(quoted) ?? "null")",
            "  key_file: \(keyFile.map(quoted) ?? "null")",
            "  controllers: [\(controllers.map(quoted).joined(separator: ", "))]",
            "  replication_factor: \(replicationFactor.map(String.init) ?? (controllers.isEmpty ? "null" : "\(controllers.count)"))",
            "  raft_log_entries: \(raftLogEntries)",
            "  raft_log_bytes: \(raftLogBytes)",
            "  replace_after: \(replaceAfter)",
            "  binary_forwarding: \(binaryForwarding)",
            "  queue_groups: \(queueGroups)",
            "  max_queue_groups: \(maxQueueGroups)",
        ]
    }
}
