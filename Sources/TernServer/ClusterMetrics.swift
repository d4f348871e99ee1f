import CoreMetrics
import Synchronization
import TernCluster
import TernReplication

extension TernMetrics.Name {
    public static let raftTerm = "tern_raft_term"
    public static let raftIsLeader = "tern_raft_is_leader"
    public static let raftCommitIndex = "tern_raft_commit_index"
    public static let raftAppliedIndex = "tern_raft_applied_index"
    public static let raftLastIndex = "tern_raft_last_index"
    public static let raftLeaderChanges = "tern_raft_leader_changes_total"
    public static let raftElections = "tern_raft_elections_total"
    public static let raftReplicationLatency = "tern_raft_replication_latency_seconds"  // histogram
    public static let raftFollowerLagEntries = "tern_raft_follower_lag_entries"  // replica = NODE, leader only
    public static let raftFollowerLagSeconds = "tern_raft_follower_lag_seconds"  // replica = NODE, leader only
    public static let raftSnapshotIndex = "tern_raft_snapshot_index"
    public static let raftLogEntries = "tern_raft_log_entries"
    /// The data group's voters and learners in its configuration as this node knows it.
    public static let raftVoters = "tern_raft_voters"
    public static let raftLearners = "tern_raft_learners"
    public static let raftSnapshotInstalls = "tern_raft_snapshot_installs_total"
    public static let raftSnapshotInstallFailures = "tern_raft_snapshot_install_failures_total"
    public static let raftSnapshotBytesReceived = "tern_raft_snapshot_bytes_received_total"
    public static let raftSnapshotBytesSent = "tern_raft_snapshot_bytes_sent_total"
    public static let clusterForwardedRequests = "tern_cluster_forwarded_requests_total"
    /// Queue groups (decision 140), one series per group this node holds, by Raft group id.
    public static let queueGroups = "tern_queue_groups"
    public static let queueGroupIsLeader = "tern_queue_group_is_leader"  // group
    public static let queueGroupTerm = "tern_queue_group_term"  // group
    public static let queueGroupCommitIndex = "tern_queue_group_commit_index"  // group
    public static let queueGroupAppliedIndex = "tern_queue_group_applied_index"  // group
    public static let queueGroupFollowerLagEntries = "tern_queue_group_follower_lag_entries"  // group, replica; leader only
    public static let peerFramesSent = "tern_peer_frames_sent_total"
    public static let peerMessagesSent = "tern_peer_messages_sent_total"
    public static let peerMessagesDropped = "tern_peer_messages_dropped_total"  // reason
    /// Peer connections whose `PeerHello` was accepted, and attempts that failed (refused,
    /// timed out, TLS handshake or hello refused): a failing count with no established ones
    /// points at a wrong cluster key, certificate or address.
    public static let peerConnectionsEstablished = "tern_peer_connections_established_total"
    public static let peerConnectFailures = "tern_peer_connect_failures_total"
}

/// The cluster's metrics (docs/operations.md, "Metrics"): the data group's Raft state and
/// replication latency, follower lag in entries and in seconds (on the leader), forwarded
/// requests, and the node-to-node links. Gauges are read at each scrape; counters advance by
/// what changed since the previous scrape.
final class ClusterMetrics: Sendable {
    private struct Seen {
        var leaderChanges = 0, elections = 0, forwarded = 0, frames = 0, messages = 0, established = 0, failures = 0
        var installs = 0, installFailures = 0, bytesReceived = 0, bytesSent = 0
        var dropped: [String: Int] = [:]
        /// Per replica: when its lag was last 0 (this node's clock), for the lag in seconds.
        var caughtUp: [Raft.NodeID: ContinuousClock.Instant] = [:]
        /// The queue groups' gauges written at the last scrape, to remove those of groups gone.
        var groupGauges: [String: CoreMetrics.Gauge] = [:]
    }
    private let seen = Mutex(Seen())

    /// Registers the collector and the latency histogram with `metrics`.
    static func attach(_ metrics: TernMetrics, node: ClusterNode, links: PeerLinks) {
        let latency = CoreMetrics.Timer(label: TernMetrics.Name.raftReplicationLatency, dimensions: [], factory: metrics.factory)
        node.data.group.setLatencyObserver { duration in
            latency.recordNanoseconds(duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
        }
        let collector = ClusterMetrics()
        metrics.addCollector { metrics in collector.collect(metrics, node: node, links: links) }
        // A queue group's queues are in its own broker: counted while this node holds it.
        node.queueGroups?.setObserver { event in
            switch event {
            case .started(_, let replica): metrics.attach(broker: replica.broker)
            case .stopped(_, let replica): metrics.detach(broker: replica.broker)
            }
        }
    }

    /// Each queue group's Raft state as this node sees it; a group's series go when it does.
    private func collectQueueGroups(_ metrics: TernMetrics, host: QueueGroupHost) {
        var values: [String: (String, [(String, String)], Int)] = [:]
        func put(_ name: String, _ labels: [(String, String)], _ value: Int) {
            values[name + "|" + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")] = (name, labels, value)
        }
        let groups = host.groups()
        metrics.gauge(TernMetrics.Name.queueGroups).record(groups.count)
        for (raftID, hosted) in groups {
            let group = [("group", String(raftID))]
            let status = hosted.replica.group.status
            put(TernMetrics.Name.queueGroupIsLeader, group, status.isServing ? 1 : 0)
            put(TernMetrics.Name.queueGroupTerm, group, Int(status.term))
            put(TernMetrics.Name.queueGroupCommitIndex, group, Int(status.commitIndex))
            put(TernMetrics.Name.queueGroupAppliedIndex, group, Int(status.appliedIndex))
            guard status.role == .leader else { continue }
            for (replica, match) in status.match where replica != status.node {
                let name = hosted.replica.group.name(of: replica) ?? "\(replica)"
                put(TernMetrics.Name.queueGroupFollowerLagEntries, group + [("replica", name)],
                    Int(status.commitIndex - min(match, status.commitIndex)))
            }
        }
        let (gauges, stale) = seen.withLock { s -> ([String: CoreMetrics.Gauge], [CoreMetrics.Gauge]) in
            var stale = [CoreMetrics.Gauge]()
            for key in s.groupGauges.keys where values[key] == nil { stale.append(s.groupGauges.removeValue(forKey: key)!) }
            for (key, value) in values where s.groupGauges[key] == nil { s.groupGauges[key] = metrics.gauge(value.0, value.1) }
            return (s.groupGauges, stale)
        }
        for gauge in stale { gauge.destroy() }
        for (key, value) in values { gauges[key]?.record(value.2) }
    }

    private func collect(_ metrics: TernMetrics, node: ClusterNode, links: PeerLinks) {
        if let host = node.queueGroups { collectQueueGroups(metrics, host: host) }
        let group = node.data.group
        let status = group.status
        let counters = links.counters
        metrics.gauge(TernMetrics.Name.raftTerm).record(Int(status.term))
        metrics.gauge(TernMetrics.Name.raftIsLeader).record(status.isServing ? 1 : 0)
        metrics.gauge(TernMetrics.Name.raftCommitIndex).record(Int(status.commitIndex))
        metrics.gauge(TernMetrics.Name.raftAppliedIndex).record(Int(status.appliedIndex))
        metrics.gauge(TernMetrics.Name.raftLastIndex).record(Int(status.lastIndex))
        metrics.gauge(TernMetrics.Name.raftSnapshotIndex).record(Int(status.snapshotIndex))
        metrics.gauge(TernMetrics.Name.raftLogEntries).record(status.entriesInMemory)
        metrics.gauge(TernMetrics.Name.raftVoters).record(status.voters.count)
        metrics.gauge(TernMetrics.Name.raftLearners).record(status.learners.count)
        let snapshots = group.snapshotCounts
        let bytesSent = Int(node.snapshots?.counters.bytesSent ?? 0)
        let now = ContinuousClock.now
        let deltas = seen.withLock { s -> [(String, [(String, String)], Int)] in
            var out: [(String, [(String, String)], Int)] = [
                (TernMetrics.Name.raftLeaderChanges, [], group.leaderChanges - s.leaderChanges),
                (TernMetrics.Name.raftElections, [], group.elections - s.elections),
                (TernMetrics.Name.clusterForwardedRequests, [], node.forwardedRequests - s.forwarded),
                (TernMetrics.Name.peerFramesSent, [], counters.framesSent - s.frames),
                (TernMetrics.Name.peerMessagesSent, [], counters.messagesSent - s.messages),
                (TernMetrics.Name.peerConnectionsEstablished, [], counters.connectionsEstablished - s.established),
                (TernMetrics.Name.peerConnectFailures, [], counters.connectFailures - s.failures),
                (TernMetrics.Name.raftSnapshotInstalls, [], snapshots.installed - s.installs),
                (TernMetrics.Name.raftSnapshotInstallFailures, [], snapshots.failures - s.installFailures),
                (TernMetrics.Name.raftSnapshotBytesReceived, [], Int(snapshots.bytesReceived) - s.bytesReceived),
                (TernMetrics.Name.raftSnapshotBytesSent, [], bytesSent - s.bytesSent),
            ]
            s.installs = snapshots.installed
            s.installFailures = snapshots.failures
            s.bytesReceived = Int(snapshots.bytesReceived)
            s.bytesSent = bytesSent
            for reason in PeerLinks.DropReason.allCases {
                let total = counters.dropped[reason] ?? 0
                out.append((TernMetrics.Name.peerMessagesDropped, [("reason", reason.rawValue)], total - (s.dropped[reason.rawValue] ?? 0)))
                s.dropped[reason.rawValue] = total
            }
            s.leaderChanges = group.leaderChanges
            s.elections = group.elections
            s.forwarded = node.forwardedRequests
            s.frames = counters.framesSent
            s.messages = counters.messagesSent
            s.established = counters.connectionsEstablished
            s.failures = counters.connectFailures
            return out
        }
        for (name, dimensions, delta) in deltas {
            let counter = CoreMetrics.Counter(label: name, dimensions: dimensions, factory: metrics.factory)
            if delta > 0 { counter.increment(by: delta) }
        }
        guard status.role == .leader else { return }
        for (replica, match) in status.match where replica != status.node {
            let lag = status.commitIndex - min(match, status.commitIndex)
            let since = seen.withLock { s -> ContinuousClock.Instant in
                if lag == 0 || s.caughtUp[replica] == nil { s.caughtUp[replica] = now }
                return s.caughtUp[replica]!
            }
            let name = group.name(of: replica) ?? "\(replica)"
            metrics.gauge(TernMetrics.Name.raftFollowerLagEntries, [("replica", name)]).record(Int(lag))
            let seconds = now - since
            metrics.gauge(TernMetrics.Name.raftFollowerLagSeconds, [("replica", name)])
                .record(Double(seconds.components.seconds) + Double(seconds.components.attoseconds) / 1e18)
        }
    }
}

extension TernMetrics {
    /// Adds the cluster's metrics (``ClusterMetrics``) for `node` and its transport.
    public func attach(cluster node: ClusterNode, links: PeerLinks) {
        ClusterMetrics.attach(self, node: node, links: links)
    }
}
