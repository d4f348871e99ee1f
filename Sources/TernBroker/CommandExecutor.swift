public import TernCore

/// Where a ``Broker`` sends its commands when they must not be applied by this node alone: in
/// a cluster, the replication group's Raft log, which applies each command on every replica
/// (``StateMachine/apply(_:in:)`` on each) and answers once a majority has it durably.
public protocol CommandExecutor: Sendable {
    /// Applies `envelope` through the group and returns its outcome on this node.
    /// - Parameter grows: whether the command adds records (``Command/grows``).
    /// - Throws: ``TernError``: what the command fails with; `NotLeader` when this node does
    ///   not lead the group (nothing applied); `Unavailable` when leadership was lost before
    ///   the command committed (it may still be applied by the next leader).
    func execute(_ envelope: CommandEnvelope, grows: Bool) async throws(TernError) -> CommandOutcome

    /// Whether this node may decide time-driven commands (due work, retention, expiries) now:
    /// true only on the group's leader.
    var decidesTime: Bool { get }
}
