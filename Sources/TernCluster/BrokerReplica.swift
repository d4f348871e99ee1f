public import Logging
public import TernBroker
public import TernCore
public import TernStorage
public import TernMetadata

/// What applying one data group entry produced: a broker command's outcome, or (in the data
/// group that carries the catalogue) a catalogue command's.
public enum DataGroupOutput: Sendable {
    case command(CommandOutcome)
    case catalogue(Metadata.Outcome)
}

/// The broker's ``StateMachine`` as the state machine of a replication group: each entry is
/// one encoded ``CommandEnvelope`` (``CommandCodec``), applied by ``StateMachine/apply(_:in:)``.
/// The data group's machine also holds the cluster catalogue (``CatalogueStore``, decision 140):
/// its entries are tagged and applied to it instead.
public struct BrokerStateMachine: ReplicatedStateMachine {
    public let machine: StateMachine
    /// The catalogue this group carries (the data group's), nil for a queue's own group.
    public let catalogue: CatalogueStore?

    public init(machine: StateMachine, catalogue: CatalogueStore? = nil) {
        self.machine = machine
        self.catalogue = catalogue
    }

    /// - Throws: the command's ``TernError`` (deterministic); ``StorageError`` when the entry
    ///   cannot be decoded (a newer format or corruption: the replica halts) or LMDB fails.
    public func apply(_ payload: [UInt8], in txn: WriteTransaction) throws -> DataGroupOutput {
        if let catalogue, CatalogueStore.isEntry(payload) {
            return .catalogue(try catalogue.apply(payload, in: txn))
        }
        return .command(try machine.apply(try CommandCodec.decode(payload), in: txn))
    }

    /// Every database of the broker (``Broker/databaseNames``), and the catalogue's when this
    /// group carries it: the broker reads only LMDB.
    public var databaseNames: [String] { Broker.databaseNames + (catalogue == nil ? [] : [CatalogueStore.databaseName]) }
}

/// Sends a ``Broker``'s commands through its replication group: the leader proposes the
/// encoded command, and answers once a majority persisted it and this node applied it.
public struct ReplicatedExecutor: CommandExecutor {
    public let group: ReplicaGroup<BrokerStateMachine>
    /// Asked before a command that stores more (a send, a produce) is proposed; throws to
    /// refuse it (``ReplicatedBroker/Admission``).
    public let admission: ReplicatedBroker.Admission?

    public init(group: ReplicaGroup<BrokerStateMachine>, admission: ReplicatedBroker.Admission? = nil) {
        self.group = group
        self.admission = admission
    }

    public func execute(_ envelope: CommandEnvelope, grows: Bool) async throws(TernError) -> CommandOutcome {
        if grows, let admission { try admission(envelope.command) }
        guard case .command(let outcome) = try await group.propose(CommandCodec.encode(envelope)) else {
            throw TernError(.internalError, "a broker command was applied as a catalogue command")
        }
        return outcome
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
    /// A check the leader makes before proposing a command that stores more (``Command/grows``),
    /// outside the replicated state (a node-wide budget, for example): given the command, it
    /// throws the refusal (`StorageFull`), and nothing is proposed.
    public typealias Admission = @Sendable (Command) throws(TernError) -> Void

    public let group: ReplicaGroup<BrokerStateMachine>
    public let broker: Broker
    /// The cluster catalogue, in the group that carries it (the data group); nil elsewhere.
    public let catalogue: CatalogueStore?

    /// - Parameters:
    ///   - storage: opened with ``Broker/databaseNames`` and ``RaftLogStore/databaseNames`` (and
    ///     ``CatalogueStore/databaseName`` when `carriesCatalogue`).
    ///   - carriesCatalogue: whether the group's log carries the cluster catalogue (the data group).
    ///   - producerIDs: ``ProducerStore/ProducerIDs/adopted`` in a queue group, whose producers
    ///     the data group issues.
    ///   - admission: asked before each command that stores more is proposed (``Admission``).
    /// - Throws: what ``ReplicaGroup/init(group:node:voters:storage:machine:transport:settings:logger:)`` throws.
    public init(group id: UInt64, node: String, voters: [String], storage: Storage, transport: any RaftTransport,
                clock: any TernClock, settings: ReplicaGroup<BrokerStateMachine>.Settings = .init(),
                installer: SnapshotInstaller? = nil, carriesCatalogue: Bool = false,
                producerIDs: ProducerStore.ProducerIDs = .issued, admission: Admission? = nil, logger: Logger) throws {
        let machine = StateMachine(storage: storage, producerIDs: producerIDs)
        let catalogue = carriesCatalogue ? try CatalogueStore(storage: storage) : nil
        let group = try ReplicaGroup(group: id, node: node, voters: voters, storage: storage,
                                     machine: BrokerStateMachine(machine: machine, catalogue: catalogue), transport: transport,
                                     settings: settings, installer: installer, logger: logger)
        let broker = Broker.replicated(storage: storage, clock: clock, executor: ReplicatedExecutor(group: group, admission: admission), logger: logger)
        group.setApplyObserver { output in
            if case .command(let outcome) = output { broker.didApply(outcome) }
        }
        group.setLeaderObserver { broker.forgetCoordinatorState() }
        group.setSnapshotObserver {
            broker.didReplaceState()
            try? catalogue?.reload()
        }
        self.group = group
        self.broker = broker
        self.catalogue = catalogue
    }

    /// Commits catalogue `command` through this group's log (its leader only) and returns what
    /// applying it produced.
    /// - Throws: ``TernError``: `NotInCluster` when this group carries no catalogue; the
    ///   catalogue's refusal (`InvalidParameter`, `InvalidAttribute`, `QueueNotFound`,
    ///   `Conflict`; nothing changed); what ``ReplicaGroup/propose(_:)`` throws (`NotLeader`,
    ///   `Unavailable`).
    public func propose(_ command: Metadata.Command) async throws(TernError) -> Metadata.Outcome {
        guard catalogue != nil else { throw TernError(.notInCluster, "group \(group.group) carries no catalogue") }
        guard case .catalogue(let outcome) = try await group.propose(CatalogueStore.entry(command)) else {
            throw TernError(.internalError, "a catalogue command was applied as a broker command")
        }
        return outcome
    }

    public func start() { group.start() }
    public func stop() { group.stop() }
}
