public import TernReplication

/// A deterministic state machine replicated by Raft: what a node applies committed entries to.
///
/// Implementing it: `apply` must depend only on the state and the payload (the leader decides
/// times and random seeds and puts them in the command, CLUSTER.md "only the leader runs
/// time"); `snapshot()` must capture everything `apply` reads, and `init(snapshot:)` must
/// restore exactly that. The broker's command `apply` plugs in here, with a
/// ``SimulationWorkload`` that generates its commands and checks its guarantees.
public protocol ReplicatedStateMachine {
    /// The empty state.
    init()
    /// The state a snapshot captured.
    /// - Throws: when the bytes are not a snapshot of this machine.
    init(snapshot: [UInt8]) throws
    /// Bytes that ``init(snapshot:)`` restores.
    func snapshot() -> [UInt8]
    /// Applies one committed command (a normal entry's payload; no-op entries are not passed).
    /// - Returns: the command's result, handed to the client that proposed it.
    mutating func apply(_ command: [UInt8], at index: Raft.Index) -> [UInt8]
    /// A digest of the whole state, equal on two nodes exactly when their states are equal
    /// (used to check that nodes converge).
    var digest: UInt64 { get }
}

/// The clients' side of a simulation: which commands they propose, and the guarantees the
/// state machine must give them, checked on what was committed and acknowledged.
///
/// The simulator calls ``nextCommand(client:random:)`` when a client is ready to send,
/// ``committed(_:result:at:)`` once for each index, the first time any node applies it (the
/// canonical sequence), ``acknowledged(_:result:at:)`` when a client learns its command
/// committed, and ``finalCheck(_:)`` with each node's state after the cluster healed and converged.
public protocol SimulationWorkload {
    associatedtype Machine: ReplicatedStateMachine
    init()
    /// The next command `client` proposes.
    mutating func nextCommand(client: Int, random: inout Simulation.Random) -> [UInt8]
    /// A command committed at `index` with `result` (first application anywhere). Returns
    /// violations of the machine's guarantees, as readable sentences.
    mutating func committed(_ command: [UInt8], result: [UInt8], at index: Raft.Index) -> [String]
    /// `client`'s command was acknowledged: committed at `index` with `result`.
    mutating func acknowledged(_ command: [UInt8], result: [UInt8], at index: Raft.Index, client: Int) -> [String]
    /// Checks a node's final state (after heal and convergence) against everything acknowledged.
    func finalCheck(_ machine: Machine) -> [String]
    /// A command whose only purpose is to show that proposals commit (the liveness probe).
    func probeCommand() -> [UInt8]
}
