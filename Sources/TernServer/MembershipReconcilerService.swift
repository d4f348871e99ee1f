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
            var reconciler = DataGroupReconciler(settings: settings)
            while !Task.isCancelled {
                do { try await Task.sleep(for: interval) } catch { return }
                await round(&reconciler)
            }
        }
    }

    /// One decision on the leader, and its change carried out.
    func round(_ reconciler: inout DataGroupReconciler) async {
        let status = node.data.group.status
        guard status.isServing else { return }
        func names(_ ids: Set<Raft.NodeID>) -> [String]? {
            let found = ids.compactMap { node.name(of: $0) }
            return found.count == ids.count ? found : nil
        }
        guard let voters = names(status.voters), let learners = names(status.learners) else { return }  // a member not known by name yet
        let caughtUp = Set(status.learners.filter { (status.match[$0] ?? 0) >= status.commitIndex }.compactMap { node.name(of: $0) })
        let members = node.gossip.members().map { view in
            Metadata.Controller.Member(id: view.member.node.id.rawValue, zone: view.member.node.zone, status: Self.status(view.member.state),
                                       since: Timestamp(milliseconds: view.lastChangeMilliseconds))
        }
        let now = Timestamp(milliseconds: UInt64(max(0, Date().timeIntervalSince1970 * 1000)))
        guard let change = reconciler.next(voters: voters, learners: learners, caughtUp: caughtUp, members: members, now: now) else { return }
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
