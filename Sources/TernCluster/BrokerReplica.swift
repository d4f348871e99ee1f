public import Logging
public import TernBroker
public import TernCore
public import TernStorage

/// The broker's ``StateMachine`` as the state machine of a replication group: each entry is
/// one encoded ``CommandEnvelope`` (``CommandCodec``), applied by ``StateMachine/apply(_:in:)``.
public struct BrokerStateMachine: ReplicatedStateMachine {
    public let machine: StateMachine

    public init(machine: StateMachine) {
        self.machine = machine
    }

    /// - Throws: the command's ``TernError`` (deterministic); ``StorageError`` when the entry
    ///   cannot be decoded (a newer format or corruption: the replica halts) or LMDB fails.
    public func apply(_ payload: [UInt8], in txn: WriteTransaction) throws -> CommandOutcome {
        try machine.apply(try CommandCodec.decode(payload), in: txn)
    }

    /// Every database of the broker (``Broker/databaseNames``): the broker reads only LMDB.
    public var databaseNames: [String] { Broker.databaseNames }
}

/// Sends a ``Broker``'s commands through its replication group: the leader proposes the
/// encoded command, and answers once a majority persisted it and this node applied it.
public struct ReplicatedExecutor: CommandExecutor {
    public let group: ReplicaGroup<BrokerStateMachine>

    public init(group: ReplicaGroup<BrokerStateMachine>) {
        self.group = group
    }

    public func execute(_ envelope: CommandEnvelope, grows: Bool) async throws(TernError) -> CommandOutcome {
        try await group.propose(CommandCodec.encode(envelope))
    }

    public var decidesTime: Bool { group.status.isServing }
}

/// A broker whose state is one replication group's (CLUSTER.md, "data"): the group's log
/// carries every command, and every replica applies them to its own LMDB environment.
///
/// ```swift
/// let replica = try ReplicatedBroker(group: 1, node: "n1", voters: ["n1", "n2", "n3"],
///                                    storage: storage, transport: links, clock: clock, logger: logger)
/// replica.start()
/// // serve replica.broker on the leader (replica.group.status.isServing)
/// ```
public final class ReplicatedBroker: Sendable {
    public let group: ReplicaGroup<BrokerStateMachine>
    public let broker: Broker

    /// - Parameter storage: opened with ``Broker/databaseNames`` and ``RaftLogStore/databaseNames``.
    /// - Throws: what ``ReplicaGroup/init(group:node:voters:storage:machine:transport:settings:logger:)`` throws.
    public init(group id: UInt64, node: String, voters: [String], storage: Storage, transport: any RaftTransport,
                clock: any TernClock, settings: ReplicaGroup<BrokerStateMachine>.Settings = .init(),
                installer: SnapshotInstaller? = nil, logger: Logger) throws {
        let machine = StateMachine(storage: storage)
        let group = try ReplicaGroup(group: id, node: node, voters: voters, storage: storage,
                                     machine: BrokerStateMachine(machine: machine), transport: transport,
                                     settings: settings, installer: installer, logger: logger)
        let broker = Broker.replicated(storage: storage, clock: clock, executor: ReplicatedExecutor(group: group), logger: logger)
        group.setApplyObserver { outcome in broker.didApply(outcome) }
        group.setLeaderObserver { broker.forgetCoordinatorState() }
        group.setSnapshotObserver { broker.didReplaceState() }
        self.group = group
        self.broker = broker
    }

    public func start() { group.start() }
    public func stop() { group.stop() }
}
