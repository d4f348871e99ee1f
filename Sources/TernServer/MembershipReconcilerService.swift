public import Logging
public import ServiceLifecycle
public import TernCluster
import Foundation
import TernCore
import TernGossip
import TernMetadata
import TernReplication

/// In a cluster: while this node leads the data group, asks ``DataGroupReconciler`` once a
/// second for the next membership change and carries it out (decision 127): a replica dead
/// longer than `--replace-after` is replaced by a live spare, a group below the replication
/// factor grows. Nothing happens on followers; a new leader starts with its own gossip memory
/// of since when nodes have been dead.
public struct MembershipReconcilerService: Service {
    let node: ClusterNode
    let settings: DataGroupReconciler.Settings
    let interval: Duration
    let logger: Logger

    /// - Parameter interval: how often the leader decides. Default 1 s.
    public init(node: ClusterNode, settings: DataGroupReconciler.Settings, interval: Duration = .seconds(1), logger: Logger) {
        self.node = node
        self.settings = settings
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var state = RoundState(reconciler: DataGroupReconciler(settings: settings))
            while !Task.isCancelled {
                do { try await Task.sleep(for: interval) } catch { return }
                await round(&state)
            }
        }
    }

    /// What the rounds remember: the reconciler, and what was last warned about (warnings
    /// repeat at most once a minute).
    struct RoundState {
        var reconciler: DataGroupReconciler
        var lastWarning: (text: String, at: ContinuousClock.Instant)?
        /// Since when each learner has been one, seen from this leader.
        var learnerSince: [Raft.NodeID: ContinuousClock.Instant] = [:]
    }

    private func warn(_ text: String, _ state: inout RoundState) {
        let now = ContinuousClock.now
        if let last = state.lastWarning, last.text == text, now - last.at < .seconds(60) { return }
        state.lastWarning = (text, now)
        logger.warning("\(text)")
    }

    /// One decision on the leader, and its change carried out.
    func round(_ state: inout RoundState) async {
        let status = node.data.group.status
        guard status.isServing else { return }
        func names(_ ids: Set<Raft.NodeID>) -> [String]? {
            let found = ids.compactMap { node.name(of: $0) }
            return found.count == ids.count ? found : nil
        }
        guard let voters = names(status.voters), let learners = names(status.learners) else { return }  // a member not known by name yet
        let now0 = ContinuousClock.now
        state.learnerSince = state.learnerSince.filter { status.learners.contains($0.key) }
        for learner in status.learners where state.learnerSince[learner] == nil { state.learnerSince[learner] = now0 }
        for (learner, since) in state.learnerSince where now0 - since > .seconds(60) {
            let name = node.name(of: learner) ?? "\(learner)"
            warn("learner \(name) has not caught up after \(Int((now0 - since).components.seconds)) s (\(status.match[learner] ?? 0) of \(status.commitIndex) committed entries): check that it runs with this cluster's --controllers and cluster key and that its binary port is reachable, or remove it", &state)
        }
        let caughtUp = Set(status.learners.filter { (status.match[$0] ?? 0) >= status.commitIndex }.compactMap { node.name(of: $0) })
        let members = node.gossip.members().map { view in
            Metadata.Controller.Member(id: view.member.node.id.rawValue, zone: view.member.node.zone, status: Self.status(view.member.state),
                                       since: Timestamp(milliseconds: view.lastChangeMilliseconds))
        }
        let now = Timestamp(milliseconds: UInt64(max(0, Date().timeIntervalSince1970 * 1000)))
        let change: DataGroupReconciler.Change
        switch state.reconciler.next(voters: voters, learners: learners, caughtUp: caughtUp, members: members, now: now) {
        case .none: return
        case .waiting(let why):
            warn("the data group cannot replace a dead replica: \(why)", &state)
            return
        case .change(let next): change = next
        }
        logger.notice("changing the data group's membership", metadata: ["tern.change": "\(change)"])
        do throws(TernError) {
            switch change {
            case .addLearner(let name):
                node.data.group.learn(name: name)
                _ = try await node.data.group.changeMembership(.addLearner(RaftNodeID.of(name)))
            case .promote(let name):
                _ = try await node.data.group.changeMembership(.promote(RaftNodeID.of(name)))
            case .remove(let name):
                _ = try await node.data.group.changeMembership(.remove(RaftNodeID.of(name)))
            }
        } catch {
            // Decided again next round (another change in flight, the leader moved, a promotion
            // the tick made first).
            logger.info("membership change not made; deciding again", metadata: ["tern.change": "\(change)", "tern.error": "\(error)"])
        }
    }

    static func status(_ state: Gossip.MemberState) -> Metadata.Controller.Status {
        switch state {
        case .alive: .alive
        case .suspect: .suspect
        case .dead: .dead
        case .left: .left
        }
    }
}
