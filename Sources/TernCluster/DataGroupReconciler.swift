public import TernCore
public import TernMetadata

/// Decides the data group's next membership change on its own (decision 127): a voter dead for
/// longer than ``Settings/replaceAfter`` is replaced — a live spare is added as a learner,
/// promoted once caught up, and then the dead voter is removed — and nothing else. Pure: no
/// clock, no I/O; the caller passes the group's committed configuration, gossip's view and the
/// time, and carries the change out.
///
/// Rules (the controller's, `Metadata.Controller`, for one group whose size an operator sets):
/// - a learner that is dead or gone from gossip is removed; one still catching up holds the group;
///   one caught up is promoted;
/// - a voter dead past `replaceAfter` is removed at once when the voters left still number at
///   least ``Settings/replicationFactor``, or once its replacement was promoted; otherwise a
///   replacement is added: the spare that rendezvous hashing (``Metadata/Placement``, zone-aware)
///   ranks first among live nodes that are not members and were not seen removed while alive;
/// - no change leaves fewer live voters than a majority of the new configuration (a group
///   without a live majority gets nothing: removing its dead could lose writes only they hold);
/// - a live voter is never removed, and a group is never grown or rebalanced otherwise: what an
///   operator sets with `tern cluster add`/`remove` stays.
public struct DataGroupReconciler: Sendable {
    public struct Settings: Sendable, Hashable {
        /// Voters the group keeps while replacing: a dead voter leaves without a replacement
        /// when at least this many others remain. 1–9; default 3.
        public var replicationFactor = 3
        /// How long a voter may be dead (or gone from gossip) before it is replaced. Default
        /// 60 s (decision 108).
        public var replaceAfter: Duration = .seconds(60)

        public init(replicationFactor: Int = 3, replaceAfter: Duration = .seconds(60)) {
            self.replicationFactor = replicationFactor
            self.replaceAfter = replaceAfter
        }

        var replaceAfterMilliseconds: UInt64 {
            Metadata.Controller.Settings().with { $0.replaceAfter = replaceAfter }.replaceAfterMilliseconds
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

    /// What one decision found.
    public enum Decision: Sendable, Hashable {
        case change(Change)
        /// Nothing to do.
        case none
        /// A voter is due for replacement and cannot be replaced now, and why.
        case waiting(String)
    }

    public let settings: Settings
    /// Since when each member has been seen not alive (dead, left, or missing from gossip).
    private var notAliveSince: [String: Timestamp] = [:]
    /// Replacements this reconciler started: dead voter → its learner.
    private var replacing: [String: String] = [:]
    /// Members seen leaving the configuration while alive (an operator's `remove`): never
    /// chosen as a replacement by this reconciler.
    private var removedAlive: Set<String> = []
    private var lastMembers: Set<String> = []

    public init(settings: Settings) {
        self.settings = settings
    }

    /// The next change for the group.
    /// - Parameters:
    ///   - voters: the committed configuration's voters (node ids).
    ///   - learners: its learners.
    ///   - caughtUp: learners whose log reached the leader's commit index.
    ///   - members: gossip's view, this node included.
    ///   - now: ms since the epoch, the clock of `members[].since`.
    public mutating func next(voters: [String], learners: [String], caughtUp: Set<String>,
                              members: [Metadata.Controller.Member], now: Timestamp) -> Decision {
        var view: [String: Metadata.Controller.Member] = [:]
        for member in members where view[member.id] == nil { view[member.id] = member }
        func isAlive(_ id: String) -> Bool { view[id]?.status == .alive || view[id]?.status == .suspect }
        let current = Set(voters + learners)
        for gone in lastMembers.subtracting(current) where isAlive(gone) { removedAlive.insert(gone) }
        removedAlive.subtract(current)  // added back by an operator
        lastMembers = current

        var memory: [String: Timestamp] = [:]
        for id in current where !isAlive(id) {
            if let member = view[id] {
                memory[id] = min(notAliveSince[id] ?? member.since, member.since)
            } else {
                memory[id] = notAliveSince[id] ?? now
            }
        }
        notAliveSince = memory
        replacing = replacing.filter { voters.contains($0.key) && current.contains($0.value) }

        // Learners first: one dead goes, one catching up holds the group, one caught up is promoted.
        if let dead = learners.sorted().first(where: { !isAlive($0) }) { return .change(.remove(dead)) }
        if let learner = learners.sorted().first {
            return caughtUp.contains(learner) ? .change(.promote(learner)) : .none
        }

        let limit = settings.replaceAfterMilliseconds
        let due = voters.sorted().filter { id in
            guard let since = memory[id] else { return false }
            return now.milliseconds >= since.milliseconds && now.milliseconds - since.milliseconds >= limit
        }
        guard let victim = due.first else { return .none }
        let quorum = { (count: Int) in count / 2 + 1 }
        let live = voters.filter(isAlive)
        guard live.count >= quorum(voters.count) else {
            return .waiting("\(live.count) of \(voters.count) voters are alive: no change can commit until a majority is back")
        }
        let others = voters.filter { $0 != victim }
        let replaced = replacing[victim].map { voters.contains($0) } ?? false
        if replaced || others.count >= settings.replicationFactor {
            guard live.count >= quorum(others.count) else { return .none }
            replacing[victim] = nil
            return .change(.remove(victim))
        }
        let candidates = view.values.filter { isAlive($0.id) && !current.contains($0.id) && !removedAlive.contains($0.id)
            && Metadata.isValidNodeID($0.id) }
            .sorted { $0.id < $1.id }.map { Metadata.Placement.Candidate(id: $0.id, zone: $0.zone) }
        let keeping = others.map { Metadata.Placement.Candidate(id: $0, zone: view[$0]?.zone) }
        guard let spare = Metadata.Placement.next(for: 1, among: candidates, keeping: keeping) else {
            return .waiting("\(victim) has been dead longer than the replace-after time and no spare is alive to replace it")
        }
        replacing[victim] = spare
        return .change(.addLearner(spare))
    }
}
