import Foundation
public import Logging
import Synchronization
public import TernBroker
public import TernCluster
public import TernCore
public import TernMetadata
public import TernStorage

/// The queue groups this node is a replica of (decision 140): one replication group per queue
/// (or per set of colocated queues), each with its own LMDB environment under
/// `DATA_DIR/groups/<raft group id>`, its own Raft log, broker and snapshot server, started when
/// the catalogue places this node in the group and stopped and deleted when the catalogue no
/// longer does (the group was deleted).
///
/// The catalogue is the data group's (``CatalogueStore``); ``run()`` follows its changes. A
/// queue group's Raft id is its catalogue id plus one (``raftGroup(of:)``): Raft group 1 is the
/// data group.
public final class QueueGroupHost: Sendable {
    /// What starting a group needs besides its catalogue entry.
    public struct Settings: Sendable {
        /// Where the groups' directories are made (`DATA_DIR/groups`).
        public var directory: String
        /// The storage settings of every group's environment (the node's map size and sync).
        public var storage: Storage.Settings
        /// The replication settings of every group (the node's compaction and timeouts).
        public var replication: ReplicaGroup<BrokerStateMachine>.Settings
        /// How often the catalogue is looked at for changes. Default 50 ms.
        public var pollInterval: Duration = .milliseconds(50)

        public init(directory: String, storage: Storage.Settings, replication: ReplicaGroup<BrokerStateMachine>.Settings) {
            self.directory = directory
            self.storage = storage
            self.replication = replication
        }
    }

    /// One hosted group.
    public struct Hosted: Sendable {
        public var replica: ReplicatedBroker
        public var snapshots: SnapshotServer
        let storage: Storage
        let maintenance: Task<Void, Never>
    }

    public let nodeID: String
    let settings: Settings
    let catalogue: CatalogueStore
    let links: PeerLinks
    let clock: any TernClock
    let logger: Logger
    private let hosted = Mutex<[UInt64: Hosted]>([:])
    private let seenRevision = Mutex<UInt64?>(nil)
    private let observer = Mutex<(@Sendable (GroupEvent) -> Void)?>(nil)
    /// The node's space budget, which every group this node holds counts against.
    public let budget: NodeStorageBudget

    /// - Parameter budget: the node's space budget (decision 143); every group started here
    ///   counts against it and gets its limit as its own replicated quota.
    public init(nodeID: String, settings: Settings, catalogue: CatalogueStore, links: PeerLinks, clock: any TernClock,
                budget: NodeStorageBudget = NodeStorageBudget(limit: nil), logger: Logger) {
        self.budget = budget
        self.nodeID = nodeID
        self.settings = settings
        self.catalogue = catalogue
        self.links = links
        self.clock = clock
        self.logger = logger
    }

    /// The Raft group id of catalogue group `id`: `id + 1` (Raft group 1 is the data group).
    public static func raftGroup(of id: Metadata.GroupID) -> UInt64 { id + 1 }

    /// The hosted group whose Raft id is `raftGroup`, nil when this node does not host it.
    public func group(_ raftGroup: UInt64) -> Hosted? { hosted.withLock { $0[raftGroup] } }

    /// Every group this node hosts now, by Raft id, in id order.
    public func groups() -> [(raftID: UInt64, group: Hosted)] {
        hosted.withLock { $0.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } }
    }

    /// A group starting or stopping on this node, for ``setObserver(_:)``.
    public enum GroupEvent: Sendable {
        case started(raftID: UInt64, ReplicatedBroker)
        case stopped(raftID: UInt64, ReplicatedBroker)
    }

    /// Sets the one observer of groups starting and stopping here (the metrics), and tells it
    /// of every group running now.
    public func setObserver(_ observer: @escaping @Sendable (GroupEvent) -> Void) {
        self.observer.withLock { $0 = observer }
        for (raftID, group) in groups() { observer(.started(raftID: raftID, group.replica)) }
    }

    private func notify(_ event: GroupEvent) { observer.withLock { $0 }?(event) }

    /// Follows the catalogue until cancelled: starts the groups it places on this node, stops
    /// and deletes the ones it no longer lists; stops every group when cancelled. Every 2 s, each
    /// group this node leads gets the node's budget (``NodeStorageBudget/limit``) as its own
    /// replicated quota, as the data group does.
    public func run() async {
        var lastQuota = ContinuousClock.now - .seconds(2)
        while !Task.isCancelled {
            reconcileIfChanged()
            if ContinuousClock.now - lastQuota >= .seconds(2) {
                lastQuota = ContinuousClock.now
                await setQuotas()
            }
            try? await Task.sleep(for: settings.pollInterval)
        }
        stopAll()
    }

    private func setQuotas() async {
        let limit = budget.limit
        for group in hosted.withLock({ Array($0.values) }) where group.replica.group.status.isServing {
            let broker = group.replica.broker
            if (try? broker.storageUsage())?.limitBytes != limit { _ = try? await broker.setStorageLimit(limit) }
        }
    }

    /// Starts and stops groups to match the catalogue, when it changed since the last look.
    /// One caller at a time (the loop, or a request for a group placed here a moment ago), so
    /// that a group's environment is never opened twice.
    public func reconcileIfChanged() {
        seenRevision.withLock { seen in
            let revision = catalogue.revision
            guard seen != revision else { return }
            seen = revision
            reconcile(catalogue.catalogue)
        }
    }

    /// Starts the groups `catalogue` places on this node that are not running, and stops and
    /// deletes the running ones it does not place here. Called by ``reconcileIfChanged()``,
    /// which serializes the calls.
    func reconcile(_ catalogue: Metadata.Catalogue) {
        let wanted = Dictionary(uniqueKeysWithValues: catalogue.groups(onNode: nodeID).filter { $0.kind == .queue }
            .map { (Self.raftGroup(of: $0.id), $0) })
        let running = Set(hosted.withLock { $0.keys })
        for (raftID, group) in wanted where !running.contains(raftID) {
            do {
                try start(group, raftID: raftID)
            } catch {
                logger.error("cannot start a queue group", metadata: ["tern.group": "\(raftID)", "tern.error": "\(error)"])
            }
        }
        for raftID in running where wanted[raftID] == nil {
            remove(raftID)
        }
    }

    private func directory(of raftID: UInt64) -> String { settings.directory + "/\(raftID)" }

    private func start(_ group: Metadata.Group, raftID: UInt64) throws {
        let path = directory(of: raftID)
        try FileManager.default.createDirectory(atPath: path + "/snapshots", withIntermediateDirectories: true)
        let storage = try Storage(directory: path, databases: Broker.databaseNames + RaftLogStore.databaseNames,
                                  settings: settings.storage, logger: logger)
        let snapshots = try SnapshotServer(storage: storage, settings: .init(directory: path + "/snapshots"), logger: logger)
        let installer = SnapshotInstaller(source: PeerSnapshotClient(links: links), directory: path + "/snapshots")
        let replica = try ReplicatedBroker(group: raftID, node: nodeID, voters: group.replicas, storage: storage,
                                           transport: links, clock: clock, settings: settings.replication,
                                           installer: installer, producerIDs: .adopted,
                                           admission: { [budget] command throws(TernError) in try budget.admit(command) }, logger: logger)
        for member in group.members { replica.group.learn(name: member) }
        snapshots.register(group: raftID, databases: replica.group.databaseNames)
        let broker = replica.broker
        budget.register(broker)
        let maintenance = Task { await broker.runMaintenance() }
        hosted.withLock { $0[raftID] = Hosted(replica: replica, snapshots: snapshots, storage: storage,
                                              maintenance: maintenance) }
        notify(.started(raftID: raftID, replica))
        replica.start()
        // A new group elects its preferred leader at once instead of after an election timeout.
        let status = replica.group.status
        if group.preferredLeader == nodeID, status.term == 0, status.lastIndex == 0 {
            replica.group.campaign()
        }
        logger.info("hosting a queue group", metadata: [
            "tern.group": "\(raftID)", "tern.queues": "\(self.catalogue.catalogue.queues(inGroup: group.id).map(\.rawValue))",
            "tern.replicas": "\(group.replicas)",
        ])
    }

    /// Stops a group the catalogue no longer places here, and deletes its directory once the
    /// requests still reading it are done (2 s later: the longest read is far shorter; a long
    /// poll on it is woken by the stop).
    private func remove(_ raftID: UInt64) {
        guard let group = hosted.withLock({ $0.removeValue(forKey: raftID) }) else { return }
        stop(group)
        let path = directory(of: raftID)
        let logger = self.logger
        Task {
            try? await Task.sleep(for: .seconds(2))
            group.storage.close()
            try? FileManager.default.removeItem(atPath: path)
            logger.info("deleted a queue group", metadata: ["tern.group": "\(raftID)"])
        }
    }

    private func stop(_ group: Hosted) {
        notify(.stopped(raftID: group.replica.group.group, group.replica))
        budget.unregister(group.replica.broker)
        group.maintenance.cancel()
        group.replica.stop()
        let snapshots = group.snapshots
        Task { await snapshots.close() }
    }

    /// Stops every hosted group (at shutdown); their directories stay.
    public func stopAll() {
        let all = hosted.withLock { groups in
            defer { groups.removeAll() }
            return Array(groups.values)
        }
        for group in all { stop(group) }
    }
}
