import ArgumentParser
import Synchronization
import Foundation
import Logging
import NIOSSL
import TernBroker
import TernCluster
import TernCore
import TernGossip
import TernReplication
import TernServer
import TernStorage

/// `ternd`'s cluster flags. Without `--gossip` the node runs alone, as without clustering.
struct ClusterOptions: ParsableArguments {
    @Option(name: .long, help: "This node's id in the cluster: 1–64 of A–Z a–z 0–9 _ . - (keep it across restarts). Default: the host name.")
    var nodeID: String?

    @Option(name: .long, help: "Gossip (UDP) address HOST:PORT, where this node listens and what the others send to. Without it the node runs alone.")
    var gossip: String?

    @Option(name: .long, help: "Gossip addresses of members to join through: HOST:PORT,HOST:PORT (this node's own is ignored).")
    var seeds: String?

    @Option(name: .long, help: "This node's failure domain (rack, availability zone), 1–64 bytes.")
    var zone: String?

    @Option(name: .long, help: "A file holding the cluster key (at least 16 bytes): every gossip datagram is authenticated with HMAC-SHA256.")
    var clusterKey: String?

    @Option(name: .long, help: "Node ids of the controllers, n1,n2,n3: the founding replicas of the queues and topics (a node outside them starts as a spare until `tern cluster add` adds it). Needs --gossip.")
    var controllers: String?

    @Option(name: .long, help: "Copies of each queue and topic (1–9): the fewest voters the leader keeps the data group at, growing it onto spares. Default: the number of controllers.")
    var replicationFactor: Int?

    @Option(name: .long, help: "Seconds a replica may be dead before the leader replaces it with a live spare (learner, promoted once caught up, then the dead one removed); 0: never. Default 60.")
    var replaceAfter: Int?

    @Option(name: .long, help: "Applied entries a replica's Raft log holds before it is compacted (half are kept; a follower further behind gets a snapshot). Default 10000.")
    var raftLogEntries: Int?

    @Option(name: .long, help: "Bytes of applied entries a replica's Raft log holds before it is compacted (half are kept). Default 67108864 (64 MiB).")
    var raftLogBytes: Int?

    @Flag(name: .long, inversion: .prefixedNo,
          help: "Whether a follower forwards binary-protocol data requests to the leader (on by default); off, it answers them NotLeader naming the leader.")
    var binaryForwarding: Bool?

    @Flag(name: .long, help: "Give each queue created in the cluster a replication group of its own (or its colocate_with queue's), placed on the data group's voters (experimental: the HTTP API only; set it on every node). Default off: every queue lives in the data group.")
    var queueGroups = false

    @Option(name: .long, help: "The most queue groups the cluster holds (each costs every replica an LMDB environment, a Raft ticker and a task): 1–1000000; a queue that would need one more is refused 409 Conflict unless colocated. Default 1024.")
    var maxQueueGroups: Int?

    func apply(to cluster: inout ClusterConfiguration) {
        if let nodeID { cluster.nodeID = nodeID }
        if let gossip { cluster.gossip = gossip }
        if let seeds { try? cluster.set("seeds", seeds) }
        if let zone { cluster.zone = zone }
        if let clusterKey { cluster.keyFile = clusterKey }
        if let controllers { try? cluster.set("controllers", controllers) }
        if let replicationFactor { cluster.replicationFactor = replicationFactor }
        if let raftLogEntries { cluster.raftLogEntries = raftLogEntries }
        if let raftLogBytes { cluster.raftLogBytes = raftLogBytes }
        if let replaceAfter { cluster.replaceAfter = replaceAfter }
        if let binaryForwarding { cluster.binaryForwarding = binaryForwarding }
        if queueGroups { cluster.queueGroups = true }
        if let maxQueueGroups { cluster.maxQueueGroups = maxQueueGroups }
    }
}

extension Ternd {
    /// The gossip service of a configuration with a gossip address, nil without one.
    /// - Throws: ``ConfigurationError`` when the cluster key cannot be read.
    func makeGossipService(_ configuration: Configuration, metrics: TernMetrics?, logger: Logger) throws -> GossipService? {
        let cluster = configuration.cluster
        guard let text = cluster.gossip, let address = Gossip.Address(parsing: text),
              let id = Gossip.NodeID(rawValue: cluster.effectiveNodeID) else { return nil }
        // Validated by Configuration.validate: these parse.
        let http = parseAddress(configuration.http).flatMap { Gossip.Address(host: advertised($0.0, gossip: address), port: UInt16($0.1)) }
        let binary = parseAddress(configuration.binary).flatMap { $0.1 == 0 ? nil : Gossip.Address(host: advertised($0.0, gossip: address), port: UInt16($0.1)) }
        // The SQS endpoint, where followers forward SQS requests when this node leads (decision 137).
        let sqs = configuration.sqs.listen.flatMap(parseAddress).flatMap {
            $0.1 == 0 ? nil : Gossip.Address(host: advertised($0.0, gossip: address), port: UInt16($0.1))
        }
        let node = Gossip.Node(id: id, gossip: address, http: http, binary: binary, sqs: sqs, zone: cluster.zone,
                               startedAt: UInt64(Date().timeIntervalSince1970 * 1000))
        var settings = GossipService.Settings(bind: address)
        settings.seeds = cluster.seeds.compactMap(Gossip.Address.init(parsing:))
        settings.clusterKey = try cluster.keyFile.map(ClusterConfiguration.readKey)
        settings.metrics = metrics
        return GossipService(node: node, settings: settings, logger: logger)
    }

    /// The host others reach a listener on: its own, unless it listens on every address; then the
    /// gossip host.
    private func advertised(_ host: String, gossip: Gossip.Address) -> String {
        host == "0.0.0.0" || host == "::" ? gossip.host : host
    }
}

extension Ternd {
    /// This node's part in the cluster: the replicated data group (voters: the controllers),
    /// its transport to the other nodes, and the routing of requests.
    /// - Throws: ``ExitMessage`` when the data directory holds state written by a node running
    ///   alone (joining it to a cluster would make it diverge from the others).
    /// - Parameter tls: the node's TLS (its listeners serve TLS): replication and forwarding to
    ///   the other nodes then use TLS too, checking their certificates against its trust roots.
    func makeClusterNode(_ configuration: Configuration, storage: Storage, storageSettings: Storage.Settings,
                         gossip: GossipService, clock: any TernClock, tls: TLSSettings?, logger: Logger) throws -> (node: ClusterNode, links: PeerLinks) {
        let cluster = configuration.cluster
        try Self.checkJoinable(storage, dataDir: configuration.dataDir)
        let nodeID = cluster.effectiveNodeID
        let resolver = NodeResolver()
        var linkSettings = PeerLinks.Settings()
        linkSettings.clusterKey = try cluster.keyFile.map(ClusterConfiguration.readKey)
        let peerTLS: TLSConfiguration?
        do {
            peerTLS = try tls?.peerClientConfiguration()
            linkSettings.tls = try peerTLS.map(NIOSSLContext.init(configuration:))
        } catch {
            throw ExitMessage("ternd: cannot load the TLS trust roots \(tls?.trustRootsPath ?? "(system)"): \(error)")
        }
        let links = PeerLinks(nodeID: nodeID, settings: linkSettings, logger: logger) { id in resolver.address(of: id) }
        // Snapshot files, served and received (decision 117); emptied at start.
        let snapshotDirectory = configuration.dataDir + "/snapshots"
        let snapshots = try SnapshotServer(storage: storage, settings: .init(directory: snapshotDirectory), logger: logger)
        var settings = ReplicaGroup<BrokerStateMachine>.Settings()
        settings.compaction = cluster.compaction
        let installer = SnapshotInstaller(source: PeerSnapshotClient(links: links), directory: snapshotDirectory)
        // With queue groups, the data group and every queue group share the node's space budget.
        let budget = NodeStorageBudget(limit: cluster.queueGroups ? configuration.effectiveStorageLimit : nil)
        let data = try ReplicatedBroker(group: ClusterNode.dataGroup, node: nodeID, voters: cluster.controllers, storage: storage,
                                        transport: links, clock: clock, settings: settings, installer: installer,
                                        carriesCatalogue: true, admission: { command throws(TernError) in try budget.admit(command) },
                                        logger: logger)
        budget.register(data.broker)
        var queueGroups: QueueGroupHost?
        if cluster.queueGroups, let catalogue = data.catalogue {
            queueGroups = QueueGroupHost(
                nodeID: nodeID,
                settings: QueueGroupHost.Settings(directory: configuration.dataDir + "/groups", storage: storageSettings,
                                                  replication: settings),
                catalogue: catalogue, links: links, clock: clock, budget: budget, logger: logger)
        }
        let node = ClusterNode(nodeID: nodeID, controllers: cluster.controllers, data: data, gossip: gossip, forwardingTLS: peerTLS,
                               snapshots: snapshots, queueGroups: queueGroups,
                               replicationFactor: cluster.replicationFactor ?? cluster.controllers.count,
                               maxQueueGroups: cluster.maxQueueGroups)
        snapshots.register(group: ClusterNode.dataGroup, databases: data.group.databaseNames)
        resolver.set(node)
        logger.info("cluster node", metadata: [
            "tern.node_id": "\(nodeID)", "tern.controllers": "\(cluster.controllers)", "tern.queue_groups": "\(cluster.queueGroups)",
            "tern.raft_id": "\(RaftNodeID.of(nodeID))", "tern.applied": "\(data.group.status.appliedIndex)",
        ])
        return (node, links)
    }

    /// Refuses a data directory that holds queues or topics but no replication state: it was
    /// written by a node running alone, and its state is not in any group's log.
    static func checkJoinable(_ storage: Storage, dataDir: String) throws {
        let logStore = RaftLogStore(storage: storage)
        let stateful = try storage.read { txn -> [String] in
            guard try logStore.groups(in: txn).isEmpty else { return [] }
            return try Broker.databaseNames.filter { $0 != "meta" && $0 != "log" }.filter { name in
                try txn.statistics(storage.database(name)).entries > 0
            }
        }
        guard stateful.isEmpty else {
            throw ExitMessage("ternd: the data directory \(dataDir) holds queues or topics written by a node running alone (\(stateful.joined(separator: ", "))); a cluster node starts from an empty directory and receives its state from the others")
        }
    }
}

/// Resolves Raft ids to binary addresses once the cluster node exists (the transport is made
/// before it).
final class NodeResolver: Sendable {
    private let node = Mutex<ClusterNode?>(nil)
    func set(_ value: ClusterNode) { node.withLock { $0 = value } }
    func address(of id: Raft.NodeID) -> (host: String, port: Int)? { node.withLock { $0 }?.binaryAddress(of: id) }
}
