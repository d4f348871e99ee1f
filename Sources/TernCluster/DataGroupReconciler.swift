public import TernCore
public import TernMetadata

/// Decides the data group's next membership change on its own, as the controller decides for
/// every group in the design (``Metadata/Controller``, docs/cluster.md "Catalogue and
/// placement"): a voter dead for longer than ``Settings/replaceAfter`` is replaced (a live
/// node outside the group is added as a learner, promoted once caught up, then the dead voter
/// is removed), and a group with fewer voters than ``Settings/replicationFactor`` grows onto
/// live nodes. Pure: no clock, no I/O; the caller passes the group's committed configuration,
/// gossip's view and the time, and carries the change out (decision 127).
///
/// The group is never shrunk on its own while its voters live, and never rebalanced (a node
/// that joins does not pull the whole data set onto itself): a group an operator grew above the
/// factor keeps its size until a voter dies past ``Settings/replaceAfter``, when that voter is
/// removed without a replacement as long as the factor remains.
public struct DataGroupReconciler: Sendable {
    public struct Settings: Sendable, Hashable {
        /// The fewest voters the group is kept at, 1–9. Default 3.
        public var replicationFactor = 3
        /// How long a voter may be dead (or gone from gossip) before it is replaced. Default
        /// 60 s (decision 108).
        public var replaceAfter: Duration = .seconds(60)

        public init(replicationFactor: Int = 3, replaceAfter: Duration = .seconds(60)) {
            self.replicationFactor = replicationFactor
            self.replaceAfter = replaceAfter
        }
    }

    /// One single-server change (Raft thesis §4.1), by node id.
    public enum Change: Sendable, Hashable, CustomStringConvertible {
        case addLearner(String)
        case promote(String)
        case remove(String)

        public var description: String {
            switch self {
            case .addLearner(let node): "add \(node) as a learner"
            case .promote(let node): "promote learner \(node)"
            case .remove(let node): "remove \(node)"
            }
        }
    }

    public let settings: Settings
    private var controller: Metadata.Controller
    /// Since when each member has been seen not alive (dead, left, or missing from gossip).
    private var notAliveSince: [String: Timestamp] = [:]

    public init(settings: Settings) {
        self.settings = settings
        controller = Metadata.Controller(settings: Metadata.Controller.Settings().with {
            $0.replicationFactor = min(max(settings.replicationFactor, 1), 9)
            $0.replaceAfter = settings.replaceAfter
            $0.rebalance = false
        })
    }

    /// The next change for the group, nil when it needs none (or none is possible now: no
    /// live majority, no free live node, a learner still catching up).
    /// - Parameters:
    ///   - voters: the committed configuration's voters (node ids); more than 9 are never changed.
    ///   - learners: its learners.
    ///   - caughtUp: learners whose log reached the leader's commit index.
    ///   - members: gossip's view, this node included.
    ///   - now: ms since the epoch, the clock of `members[].since`.
    public mutating func next(voters: [String], learners: [String], caughtUp: Set<String>,
                              members: [Metadata.Controller.Member], now: Timestamp) -> Change? {
        guard !voters.isEmpty, voters.count <= 9, learners.count <= 9 else { return nil }
        var view: [String: Metadata.Controller.Member] = [:]
        for member in members where view[member.id] == nil { view[member.id] = member }
        var memory: [String: Timestamp] = [:]
        for id in voters + learners {
            switch view[id]?.status {
            case .alive?, .suspect?: continue
            case .dead?, .left?: memory[id] = min(notAliveSince[id] ?? view[id]!.since, view[id]!.since)
            case nil: memory[id] = notAliveSince[id] ?? now
            }
        }
        notAliveSince = memory
        let replaceAfter = controller.settings.replaceAfterMilliseconds
        let staying = voters.filter { id in
            guard let since = memory[id] else { return true }
            return now.milliseconds < since.milliseconds || now.milliseconds - since.milliseconds < replaceAfter
        }
        // The group's target: the factor, or more when an operator grew it (counting only the
        // voters not due for replacement, so a replacement does not raise it).
        let factor = min(max(controller.settings.replicationFactor, staying.count), 9)

        // The group as a catalogue of its own (group 1), rebuilt from the configuration.
        var catalogue = Metadata.Catalogue()
        var registered = Set<String>()
        for id in voters + learners + view.keys.sorted() where !registered.contains(id) && Metadata.isValidNodeID(id) {
            // A member not (or no longer) in gossip is registered without a zone.
            guard (try? catalogue.apply(.registerNode(id: id, zone: view[id]?.zone, at: now))) != nil else { return nil }
            registered.insert(id)
        }
        // A catalogue group is created with at most its factor of voters; more (a replacement
        // promoted before the dead voter's removal) join as promoted learners, as they did.
        let sorted = voters.sorted()
        let founding = Array(sorted.prefix(factor)), promoted = sorted.dropFirst(factor)
        guard let name = try? QueueName("data"),
              (try? catalogue.apply(.createQueue(name, placement: .replicas(founding, replicationFactor: factor)))) != nil,
              let group = catalogue.queues[name]?.group else { return nil }
        for voter in promoted {
            guard let epoch = catalogue.groups[group]?.epoch,
                  (try? catalogue.apply(.addLearner(group: group, node: voter, epoch: epoch))) != nil,
                  (try? catalogue.apply(.promoteLearner(group: group, node: voter, epoch: epoch + 1))) != nil else { return nil }
        }
        for learner in learners.sorted() {
            guard let epoch = catalogue.groups[group]?.epoch,
                  (try? catalogue.apply(.addLearner(group: group, node: learner, epoch: epoch))) != nil else { return nil }
        }
        let progress = Metadata.Controller.GroupProgress(voters: Set(voters), learners: Set(learners), caughtUp: caughtUp)
        let plan = controller.plan(catalogue: catalogue, members: Array(view.values), progress: [group: progress], now: now)
        for command in plan.commands {
            switch command {
            case .addLearner(group, let node, _): return .addLearner(node)
            case .promoteLearner(group, let node, _): return .promote(node)
            case .removeReplica(group, let node, _):
                // Never a live voter: the group shrinks on its own only by the dead.
                let alive = view[node]?.status == .alive || view[node]?.status == .suspect
                if voters.contains(node) && alive { return nil }
                return .remove(node)
            default: continue
            }
        }
        return nil
    }
}
