import CoreMetrics
import Synchronization
import TernGossip

extension TernMetrics.Name {
    public static let gossipMembers = "tern_gossip_members"  // state = alive | suspect | dead | left
    public static let gossipLocalHealth = "tern_gossip_local_health"
    public static let gossipProbesSent = "tern_gossip_probes_sent_total"
    public static let gossipIndirectProbesSent = "tern_gossip_indirect_probes_sent_total"
    public static let gossipProbesFailed = "tern_gossip_probes_failed_total"
    public static let gossipProbeRoundTrip = "tern_gossip_probe_round_trip_seconds"  // histogram
    public static let gossipSuspicionsRaised = "tern_gossip_suspicions_raised_total"
    public static let gossipSuspicionsRefuted = "tern_gossip_suspicions_refuted_total"
    public static let gossipSelfRefutations = "tern_gossip_self_refutations_total"
    public static let gossipPacketsSent = "tern_gossip_packets_sent_total"
    public static let gossipBytesSent = "tern_gossip_sent_bytes_total"
    public static let gossipPacketsReceived = "tern_gossip_packets_received_total"
    public static let gossipBytesReceived = "tern_gossip_received_bytes_total"
    public static let gossipPacketsDropped = "tern_gossip_packets_dropped_total"  // reason = auth | malformed
}

/// The gossip shell's metrics, through ``TernMetrics``'s factory: counters as the shell works,
/// member gauges read from the view at each scrape.
final class GossipMetrics: Sendable {
    let metrics: TernMetrics
    private let probeRoundTrip: CoreMetrics.Timer
    private let packetsSent: CoreMetrics.Counter
    private let bytesSent: CoreMetrics.Counter
    private let packetsReceived: CoreMetrics.Counter
    private let bytesReceived: CoreMetrics.Counter
    private let dropped: [String: CoreMetrics.Counter]
    private let fromStatistics: [(String, @Sendable (Gossip.Statistics) -> Int, CoreMetrics.Counter)]
    /// The statistics already counted.
    private let counted = Mutex(Gossip.Statistics())

    init(metrics: TernMetrics) {
        self.metrics = metrics
        let factory = metrics.factory
        func counter(_ name: String, _ dimensions: [(String, String)] = []) -> CoreMetrics.Counter {
            CoreMetrics.Counter(label: name, dimensions: dimensions, factory: factory)
        }
        probeRoundTrip = CoreMetrics.Timer(label: TernMetrics.Name.gossipProbeRoundTrip, dimensions: [], factory: factory)
        packetsSent = counter(TernMetrics.Name.gossipPacketsSent)
        bytesSent = counter(TernMetrics.Name.gossipBytesSent)
        packetsReceived = counter(TernMetrics.Name.gossipPacketsReceived)
        bytesReceived = counter(TernMetrics.Name.gossipBytesReceived)
        var dropped = [String: CoreMetrics.Counter]()
        for reason in GossipService.DropReason.allCases {
            dropped[reason.rawValue] = counter(TernMetrics.Name.gossipPacketsDropped, [("reason", reason.rawValue)])
        }
        self.dropped = dropped
        fromStatistics = [
            ("probes", { $0.probesSent }, counter(TernMetrics.Name.gossipProbesSent)),
            ("indirect", { $0.indirectProbesSent }, counter(TernMetrics.Name.gossipIndirectProbesSent)),
            ("failed", { $0.probesFailed }, counter(TernMetrics.Name.gossipProbesFailed)),
            ("raised", { $0.suspicionsRaised }, counter(TernMetrics.Name.gossipSuspicionsRaised)),
            ("refuted", { $0.suspicionsRefuted }, counter(TernMetrics.Name.gossipSuspicionsRefuted)),
            ("self", { $0.selfRefutations }, counter(TernMetrics.Name.gossipSelfRefutations)),
        ]
    }

    /// Registers the scrape-time gauges: members by state and the local health multiplier.
    func register(members: @escaping @Sendable () -> [GossipService.MemberView], localHealth: @escaping @Sendable () -> Int) {
        metrics.addCollector { metrics in
            var counts = [Gossip.MemberState: Int]()
            for view in members() { counts[view.member.state, default: 0] += 1 }
            for state in Gossip.MemberState.allCases {
                metrics.gauge(TernMetrics.Name.gossipMembers, [("state", state.description)]).record(counts[state] ?? 0)
            }
            metrics.gauge(TernMetrics.Name.gossipLocalHealth).record(localHealth())
        }
    }

    func sent(_ packet: Gossip.Packet, bytes: Int) {
        packetsSent.increment()
        bytesSent.increment(by: Int64(bytes))
    }

    func received(bytes: Int) {
        packetsReceived.increment()
        bytesReceived.increment(by: Int64(bytes))
    }

    func dropped(_ reason: GossipService.DropReason) { dropped[reason.rawValue]?.increment() }

    func probeAcknowledged(_ roundTrip: Duration) {
        probeRoundTrip.recordNanoseconds(roundTrip.components.seconds * 1_000_000_000 + roundTrip.components.attoseconds / 1_000_000_000)
    }

    func changed(_ change: Gossip.MemberChange) {}

    /// Counts what the instance's counters gained since the last call.
    func update(statistics: Gossip.Statistics) {
        let before = counted.withLock { counted in
            let before = counted
            counted = statistics
            return before
        }
        for (_, read, counter) in fromStatistics {
            let delta = read(statistics) - read(before)
            if delta > 0 { counter.increment(by: Int64(delta)) }
        }
    }
}
