import Foundation
public import Logging
import Synchronization
public import TernCore
public import TernReplication
public import TernStorage

/// What a replication group replicates: a deterministic state machine stored in the same
/// LMDB environment as the group's Raft log.
///
/// ``apply(_:in:)`` must be a function of the entry and the stored state alone (the same on
/// every replica). A ``TernError`` it throws is part of that function — the entry changes
/// nothing on any replica and its proposer receives the error —; any other error (LMDB
/// failing, an entry this version cannot decode) halts the replica rather than let it
/// diverge from the others.
public protocol ReplicatedStateMachine: Sendable {
    associatedtype Output: Sendable
    /// Applies one committed entry's payload (never the empty no-op of a new leader).
    func apply(_ payload: [UInt8], in txn: WriteTransaction) throws -> Output
    /// The LMDB databases that hold the state, all of it: a snapshot is their contents (with
    /// the group's applied index), and installing one replaces them.
    var databaseNames: [String] { get }
}

/// How a follower installs the snapshots its leader sends (decision 117): where it fetches
/// the state's chunks, and the directory the incoming file is written to.
public struct SnapshotInstaller: Sendable {
    public var source: any SnapshotSource
    /// `DATA_DIR/snapshots`; the incoming file is `incoming-group-G.snap` there.
    public var directory: String
    /// Bytes asked per chunk. Default 1 MiB.
    public var chunkBytes: Int = 1 << 20
    /// The first wait before fetching again after a failed attempt, doubled per failure up to
    /// 5 s. Default 200 ms.
    public var retryBackoff: Duration = .milliseconds(200)
    /// Test hook: called after each entry written by an install, in its transaction; a throw
    /// aborts the transaction (a crash in the middle of an install).
    @_spi(Testing) public var planted: (@Sendable (Int) throws -> Void)?

    public init(source: any SnapshotSource, directory: String) {
        self.source = source
        self.directory = directory
    }
}

/// This node's replica of one replication group: a ``Raft/Instance`` driven by real time, its
/// log and hard state in LMDB (``RaftLogStore``), its messages on a ``RaftTransport``, its
/// committed entries applied by a ``ReplicatedStateMachine``.
///
/// One ``Raft/Ready`` is carried out at a time (etcd-io/raft's `RawNode` contract): its
/// entries and hard state, and the committed entries it hands out, go to the group-commit
/// writer together, so appending and applying usually share one transaction and one sync;
/// messages leave only once the entries and hard state are durable (CLUSTER.md, "durable
/// before acknowledged"). Each committed entry is applied in its own job of that batch, with
/// the group's applied index stored in the same transaction, so a restart re-applies exactly
/// the entries whose effects are not stored.
///
/// A proposal is answered when its entry is applied here with the term it was proposed in;
/// an entry of another term at its index means a new leader replaced it (never applied), and a
/// proposal still unresolved after ``Settings/proposalTimeout`` is answered `Unavailable` (its
/// outcome is unknown: it may yet be committed by the next leader).
public final class ReplicaGroup<Machine: ReplicatedStateMachine>: Sendable {
    /// Timing of one replica.
    public struct Settings: Sendable {
        /// Raft timing and flow control: CLUSTER.md's defaults, except that the election timeout
        /// is drawn from 1.5–2.5 s instead of 1.5–3 s, so that writes resume within 3 s of a
        /// leader's death (decision 115).
        public var raft = Raft.Settings().with { $0.electionTimeoutMax = .milliseconds(2500) }
        /// How long a proposal waits for its entry to be applied before it is answered
        /// `Unavailable`. Default 10 s.
        public var proposalTimeout: Duration = .seconds(10)
        /// The most proposals waiting at once; more are refused with `Overloaded`. Default 65,536.
        public var maxPendingProposals = 65_536
        /// When each replica compacts its own log (decision 116).
        public var compaction = Compaction()
        /// Whether a leader promotes a learner to voter on its own once the learner's log
        /// reaches the commit index (RabbitMQ's quorum queues do; etcd waits for
        /// `member promote`). Default true (decision 126).
        public var promoteLearners = true

        public init() {}

        /// Checks the settings.
        /// - Throws: ``ReplicationError`` (`invalidSettings`) naming the first one out of range.
        public func validate() throws(ReplicationError) {
            try raft.validate()
            try compaction.validate()
        }
    }

    /// Log compaction (Raft §7): every replica compacts its own log, as every etcd member
    /// snapshots on its own (etcd's `--snapshot-count`, `SnapshotCatchUpEntries`). The state
    /// machine's LMDB databases are the snapshot, so compacting costs one deletion of log
    /// entries; the Raft snapshot's data is a one-byte descriptor (``ReplicaGroup/snapshotDescriptor``).
    ///
    /// Once ``logEntries`` applied entries, or ``logBytes`` of them, lie past the snapshot point,
    /// the log is compacted so that at most ``catchUpEntries`` and ``catchUpBytes`` of applied
    /// entries stay; a leader keeps, beyond that, the entries a follower within ``logEntries``
    /// and ``logBytes`` of the applied index still needs (a slow but replicating follower),
    /// never more. A follower further behind, or whose next entry is gone, is sent a snapshot.
    /// The log in memory and in LMDB therefore holds at most ``logEntries`` applied entries and
    /// about ``logBytes`` of them, plus the entries not applied yet (bounded by
    /// ``Raft/Settings/maxUncommittedBytes`` on a leader).
    public struct Compaction: Sendable, Hashable {
        /// Applied entries past the snapshot point that start a compaction. Default 10,000
        /// (etcd's default `--snapshot-count` since 3.6).
        public var logEntries = 10_000
        /// Applied entries kept after a compaction, for followers a little behind (etcd's
        /// `SnapshotCatchUpEntries`, 5,000). Default 5,000; less than ``logEntries``.
        public var catchUpEntries = 5_000
        /// Bytes of applied entries (``Raft/Entry/encodedBytes``) past the snapshot point that
        /// start a compaction: a batch of 1,000 messages of 1 KiB is one entry of 1 MiB. Default
        /// 67,108,864 (64 MiB).
        public var logBytes = 64 << 20
        /// Bytes of applied entries kept after a compaction. Default 33,554,432 (32 MiB); at
        /// most ``logBytes``.
        public var catchUpBytes = 32 << 20

        public init() {}

        /// Compaction every `entries` applied entries (or ``logBytes``), keeping half of them.
        public init(logEntries entries: Int) {
            logEntries = entries
            catchUpEntries = entries / 2
        }

        /// - Throws: ``ReplicationError`` (`invalidSettings`) when ``logEntries`` or ``logBytes``
        ///   is below 1, or a catch-up figure is negative or not below its bound.
        public func validate() throws(ReplicationError) {
            guard logEntries >= 1, logBytes >= 1 else {
                throw ReplicationError(.invalidSettings, "compaction.logEntries and logBytes must be at least 1")
            }
            guard catchUpEntries >= 0, catchUpEntries < logEntries, catchUpBytes >= 0, catchUpBytes <= logBytes else {
                throw ReplicationError(.invalidSettings, "compaction.catchUpEntries must be 0 or more and less than logEntries, catchUpBytes 0 to logBytes")
            }
        }

        /// The index to compact through, or nil when the log is not due for compaction.
        /// - Parameters:
        ///   - applied: the highest applied index in the log; `snapshotIndex`: the snapshot point.
        ///   - sizes: the bytes of the applied entries past the snapshot point.
        ///   - followerMatches: on a leader, each follower's highest replicated index.
        func target(applied: Raft.Index, snapshotIndex: Raft.Index, sizes: AppliedSizes,
                    followerMatches: [Raft.Index]) -> Raft.Index? {
            guard applied > snapshotIndex else { return nil }
            let entries = applied - snapshotIndex
            guard entries >= UInt64(logEntries) || sizes.bytes(after: snapshotIndex) >= logBytes else { return nil }
            var target = max(entries > UInt64(catchUpEntries) ? applied - UInt64(catchUpEntries) : snapshotIndex,
                             sizes.lowestIndex(keepingAtMost: catchUpBytes, applied: applied))
            // A follower within the bounds keeps its entries: it is replicating, and a snapshot
            // would cost it (and the leader) the whole state.
            let floor = max(entries > UInt64(logEntries) ? applied - UInt64(logEntries) : snapshotIndex,
                            sizes.lowestIndex(keepingAtMost: logBytes, applied: applied))
            for match in followerMatches where match > floor && match < target { target = match }
            return target > snapshotIndex ? min(target, applied) : nil
        }
    }

    /// The sizes of the applied entries past the snapshot point, as prefix sums, so that the
    /// compaction rule can count bytes without walking the log.
    struct AppliedSizes: Sendable {
        /// The index of the first entry counted; `cumulative[k]` is the bytes of entries
        /// `first…first + k`.
        private(set) var first: Raft.Index = 1
        private var cumulative: [Int] = []
        private var dropped = 0

        var total: Int { (cumulative.last ?? dropped) - dropped }

        /// Counts `index` (`bytes` bytes); an index that does not follow the last one counted
        /// starts the count again there (entries before it count as 0 bytes).
        mutating func append(_ index: Raft.Index, bytes: Int) {
            if cumulative.isEmpty || index != first + UInt64(cumulative.count) {
                first = index
                cumulative = []
                dropped = 0
            }
            cumulative.append((cumulative.last ?? 0) + bytes)
        }

        /// Bytes of the counted entries after `index`.
        func bytes(after index: Raft.Index) -> Int {
            guard let last = cumulative.last else { return 0 }
            if index < first { return last - dropped }
            let k = Int(index - first)
            return k >= cumulative.count ? 0 : last - cumulative[k]
        }

        /// The lowest index t such that the counted entries after t hold at most `limit` bytes.
        func lowestIndex(keepingAtMost limit: Int, applied: Raft.Index) -> Raft.Index {
            guard let last = cumulative.last, last - dropped > limit else { return first > 0 ? first - 1 : 0 }
            // cumulative is increasing: find the first k with last - cumulative[k] <= limit.
            var low = 0, high = cumulative.count - 1
            while low < high {
                let mid = (low + high) / 2
                if last - cumulative[mid] <= limit { high = mid } else { low = mid + 1 }
            }
            return first + UInt64(low)
        }

        /// Forgets the entries through `index` (compacted).
        mutating func drop(through index: Raft.Index) {
            guard index >= first, !cumulative.isEmpty else { return }
            let count = min(Int(index - first) + 1, cumulative.count)
            dropped = cumulative[count - 1]
            cumulative.removeFirst(count)
            first += UInt64(count)
            if cumulative.isEmpty { dropped = 0 }
        }

        mutating func reset() { self = AppliedSizes() }
    }

    /// A snapshot of the replica's Raft state, for `GET /cluster`, metrics and tests.
    public struct Status: Sendable, Hashable {
        public var group: UInt64
        public var node: Raft.NodeID
        public var role: Raft.Role
        public var term: Raft.Term
        public var leader: Raft.NodeID?
        public var commitIndex: Raft.Index
        public var appliedIndex: Raft.Index
        public var lastIndex: Raft.Index
        public var voters: Set<Raft.NodeID>
        public var learners: Set<Raft.NodeID>
        /// On the leader: each member's highest replicated index (the leader's own included).
        public var match: [Raft.NodeID: Raft.Index]
        /// On the leader: the members that answered it within the last minimum election
        /// timeout (itself included; what check-quorum counts): Raft's own view of who is
        /// alive, which sees a death sooner than gossip does.
        public var recentlyHeard: Set<Raft.NodeID> = []
        /// Whether this node leads and has applied its term's first entry (see
        /// ``Raft/Instance/termStartIndex``): it may serve reads and decide time.
        public var isServing: Bool
        /// Whether the replica stopped after a failure it cannot apply past (see ``ReplicatedStateMachine``).
        public var halted: Bool
        /// The index the log is compacted (or a snapshot installed) through; 0 for none.
        public var snapshotIndex: Raft.Index
        /// Entries the replica holds in memory (and in LMDB): those past the snapshot point.
        public var entriesInMemory: Int
        /// Whether the replica is installing a snapshot received from the leader.
        public var installingSnapshot: Bool
    }

    /// The Raft snapshot data every replica gives ``Raft/Instance/compact(through:data:)``: a
    /// format byte (1: "the state is the replica's LMDB databases; fetch it with
    /// `SnapshotChunk`"), not the state itself, which is too large for one message.
    public static var snapshotDescriptor: [UInt8] { [1] }

    public let group: UInt64
    public let node: Raft.NodeID
    private let storage: Storage
    private let logStore: RaftLogStore
    private let machine: Machine
    private let transport: any RaftTransport
    private let settings: Settings
    private let installer: SnapshotInstaller?
    private let bootstrap: Raft.Configuration
    private let logger: Logger
    /// The string ids of members, by Raft id: the founding voters, and every name learned since
    /// (``learn(name:)``: a member added later, one gossip reports).
    private let names: Mutex<[Raft.NodeID: String]>
    private let state: Mutex<State>
    // Closures are kept in a struct, never as a Mutex's own value: `withLock`'s inout access to a
    // value of function type re-abstracts it on every call, wrapping the closure in two more
    // thunks each time until calling it overflows the stack.
    private let observers = Mutex(Observers())
    /// Entries whose command failed with a ``TernError`` (the same on every replica): the next
    /// entries may be applied past them. Pruned once the stored applied index passes them.
    private let deterministicFailures = Mutex<Set<Raft.Index>>([])

    private struct Observers {
        var applied: (@Sendable (Machine.Output) -> Void)?
        var latency: (@Sendable (Duration) -> Void)?
        var leader: (@Sendable () -> Void)?
        var installed: (@Sendable () -> Void)?
    }
    private let ticker = Mutex<TickTimer?>(nil)

    private struct TickTimer: @unchecked Sendable {  // DispatchSource is thread-safe
        let source: any DispatchSourceTimer
    }

    private struct Pending {
        var term: Raft.Term
        var proposed: ContinuousClock.Instant
        var deadline: ContinuousClock.Instant
        var continuation: CheckedContinuation<Result<Machine.Output, TernError>, Never>
    }

    private struct State: ~Copyable {
        var raft: Raft.Instance
        /// Whether a thread is in ``pump()`` handing readies to the writer.
        var pumping = false
        /// Persist jobs handed to the writer and not completed.
        var persistsInFlight = 0
        /// The term and vote last handed to the writer to be synced.
        var syncedTerm: Raft.Term = 0
        var syncedVote: Raft.NodeID?
        /// The rest of a ready whose snapshot was just installed, carried out next.
        var resumed: Raft.Ready?
        var halted = false
        var stopped = false
        var pending: [Raft.Index: Pending] = [:]
        var leaderChanges = 0
        var lastLeader: Raft.NodeID?
        var elections = 0
        var lastRole: Raft.Role = .follower
        var installing = false
        var appliedSizes = AppliedSizes()
        var snapshotsInstalled = 0
        var snapshotInstallFailures = 0
        var snapshotBytesReceived: UInt64 = 0
        /// Membership changes proposed here, by the index of their configuration entry.
        var pendingChanges: [Raft.Index: PendingChange] = [:]
    }

    private struct PendingChange {
        var term: Raft.Term
        var deadline: ContinuousClock.Instant
        var continuation: CheckedContinuation<Result<Raft.Configuration, TernError>, Never>
    }

    /// Opens the replica from what `storage` holds for `group` (a new replica starts empty).
    /// - Parameters:
    ///   - voters: the founding voters' string node ids (used while neither the log nor a
    ///     snapshot holds a configuration; include this node).
    ///   - storage: the environment holding both the Raft log (``RaftLogStore/databaseNames``)
    ///     and the state machine's databases.
    /// - Throws: ``StorageError`` when the stored log cannot be read;
    ///   ``ReplicationError`` (`invalidSettings`).
    ///   - installer: how snapshots from the leader are fetched and installed; nil: a follower
    ///     that is sent one halts (it cannot catch up).
    public init(group: UInt64, node: String, voters: [String], storage: Storage, machine: Machine,
                transport: any RaftTransport, settings: Settings = Settings(), installer: SnapshotInstaller? = nil,
                logger: Logger) throws {
        self.group = group
        self.installer = installer
        self.node = RaftNodeID.of(node)
        self.storage = storage
        self.logStore = RaftLogStore(storage: storage)
        self.machine = machine
        self.transport = transport
        try settings.validate()
        self.settings = settings
        var logger = logger
        logger[metadataKey: "tern.group"] = "\(group)"
        self.logger = logger
        var names: [Raft.NodeID: String] = [:]
        for voter in voters + [node] { names[RaftNodeID.of(voter)] = voter }
        self.names = Mutex(names)
        let bootstrap = Raft.Configuration(voters: Set(voters.map(RaftNodeID.of)))
        self.bootstrap = bootstrap
        let (raft, sizes) = try Self.load(group: group, node: RaftNodeID.of(node), bootstrap: bootstrap, storage: storage,
                                          logStore: RaftLogStore(storage: storage), settings: settings)
        var initialState = State(raft: raft)
        initialState.appliedSizes = sizes
        initialState.syncedTerm = raft.term
        initialState.syncedVote = raft.vote
        state = Mutex(initialState)
    }

    /// A Raft instance from what `storage` holds for `group`, and the sizes of its applied
    /// entries in memory.
    private static func load(group: UInt64, node: Raft.NodeID, bootstrap: Raft.Configuration, storage: Storage,
                             logStore: RaftLogStore, settings: Settings) throws -> (Raft.Instance, AppliedSizes) {
        let (stored, applied) = try storage.read { txn in
            (try logStore.load(group: group, in: txn), try logStore.loadApplied(group: group, in: txn))
        }
        let snapshot = try stored.snapshot.map { point in
            Raft.Snapshot(metadata: Raft.SnapshotMetadata(index: point.index, term: point.term,
                                                          configuration: try Raft.Codec.decodeConfiguration(point.configuration)),
                          data: [])
        }
        let initial = Raft.InitialState(
            hardState: stored.hardState.map { Raft.HardState(term: $0.term, vote: $0.vote == 0 ? nil : $0.vote, commit: $0.commit) }
                ?? Raft.HardState(),
            snapshot: snapshot,
            entries: stored.entries.map { Raft.Entry(index: $0.index, term: $0.term, kind: Raft.Entry.Kind(rawValue: $0.kind) ?? .normal, payload: $0.payload) },
            applied: applied)
        let raft = try Raft.Instance(id: node, bootstrap: bootstrap, initialState: initial, settings: settings.raft,
                                     randomSeed: UInt64.random(in: 1...UInt64.max))
        var sizes = AppliedSizes()
        for entry in raft.entries where entry.index <= raft.appliedIndex { sizes.append(entry.index, bytes: entry.encodedBytes) }
        return (raft, sizes)
    }

    /// The state machine's databases (what a snapshot of this group holds).
    public var databaseNames: [String] { machine.databaseNames }

    /// The string id of a member (as given to `--node-id`), when known.
    public func name(of node: Raft.NodeID) -> String? { names.withLock { $0[node] } }

    /// Remembers `name` as the string id of the member whose Raft id is
    /// ``RaftNodeID/of(_:)`` of it (a node added to the group, or one gossip reports).
    public func learn(name: String) {
        let id = RaftNodeID.of(name)
        names.withLock { if $0[id] == nil { $0[id] = name } }
    }

    /// Calls `observer` on this node for every entry applied here, whoever proposed it (the
    /// broker wakes long polls and counts metrics with it).
    public func setApplyObserver(_ observer: (@Sendable (Machine.Output) -> Void)?) {
        observers.withLock { $0.applied = observer }
    }

    /// Starts ticking (every ``Raft/Settings/tickInterval``) on a dispatch queue of its own, so
    /// that time keeps moving for Raft even while Swift's cooperative thread pool is busy.
    public func start() {
        let nanoseconds = settings.raft.tickInterval.components.seconds * 1_000_000_000
            + settings.raft.tickInterval.components.attoseconds / 1_000_000_000
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "tern.raft.group-\(group)"))
        timer.schedule(deadline: .now() + .nanoseconds(Int(nanoseconds)), repeating: .nanoseconds(Int(nanoseconds)),
                       leeway: .milliseconds(1))
        timer.setEventHandler { [weak self] in self?.tick() }
        timer.resume()
        ticker.withLock { $0 = TickTimer(source: timer) }
    }

    /// Stops ticking and answers every waiting proposal `Unavailable`. Writes already handed to
    /// the writer still complete.
    public func stop() {
        ticker.withLock { $0?.source.cancel(); $0 = nil }
        let (pending, changes) = state.withLock { s in
            s.stopped = true
            defer { s.pending.removeAll(); s.pendingChanges.removeAll() }
            return (Array(s.pending.values), Array(s.pendingChanges.values))
        }
        for p in pending {
            p.continuation.resume(returning: .failure(TernError(.unavailable, "the node is shutting down; the write may or may not have been applied")))
        }
        for c in changes {
            c.continuation.resume(returning: .failure(TernError(.unavailable, "the node is shutting down; the membership change may or may not have been applied")))
        }
    }

    /// Hands a message from a peer to Raft.
    public func step(_ message: Raft.Message) {
        let (accepted, change) = state.withLock { s -> (Bool, LeaderChange?) in
            // While a snapshot is installed, Raft stands still: the instance already counts the
            // snapshot as its state, so it must neither campaign nor answer before the state is
            // really there (the leader retries what it sends meanwhile).
            guard !s.stopped, !s.halted, !s.installing else { return (false, nil) }
            s.raft.step(message)
            return (true, Self.observeRole(&s))
        }
        if let change { log(change) }
        if accepted { pump() }
    }

    /// Advances Raft's time by one tick and answers proposals past their timeout.
    func tick() {
        let now = ContinuousClock.now
        var change: LeaderChange?
        var expiredChanges: [PendingChange] = []
        var promoted: Raft.NodeID?
        let expired: [Pending] = state.withLock { s in
            guard !s.stopped, !s.halted, !s.installing else { return [] }
            s.raft.tick()
            change = Self.observeRole(&s)
            if settings.promoteLearners { promoted = Self.promoteCaughtUpLearner(&s) }
            let lateChanges = s.pendingChanges.filter { $0.value.deadline <= now }
            for key in lateChanges.keys { s.pendingChanges[key] = nil }
            expiredChanges = Array(lateChanges.values)
            let late = s.pending.filter { $0.value.deadline <= now }
            for key in late.keys { s.pending[key] = nil }
            return Array(late.values)
        }
        if let change { log(change) }
        if let promoted {
            logger.info("promoting a caught-up learner to voter", metadata: ["tern.node": "\(name(of: promoted) ?? "\(promoted)")"])
        }
        for p in expired {
            p.continuation.resume(returning: .failure(TernError(
                .unavailable, "the write was not confirmed within \(settings.proposalTimeout); it may or may not have been applied")))
        }
        for c in expiredChanges {
            c.continuation.resume(returning: .failure(TernError(
                .unavailable, "the membership change was not confirmed within \(settings.proposalTimeout); it may or may not have been applied")))
        }
        pump()
    }

    /// Proposes `payload` (one command) and waits until this node applied it.
    /// - Returns: what the state machine's `apply` returned for it.
    /// - Throws: ``TernError``: what `apply` threw; `NotLeader` (nothing appended; the message
    ///   names the leader when known); `Overloaded` (too many proposals or uncommitted bytes);
    ///   `Unavailable` (leadership lost before the entry committed, the timeout passed, or the
    ///   node is stopping: the outcome is unknown).
    public func propose(_ payload: [UInt8]) async throws(TernError) -> Machine.Output {
        let result: Result<Machine.Output, TernError> = await withCheckedContinuation { continuation in
            let refusal = state.withLock { s -> TernError? in
                if s.stopped || s.halted { return TernError(.unavailable, "replica of group \(group) is not running") }
                guard s.pending.count < settings.maxPendingProposals else {
                    return TernError(.overloaded, "\(s.pending.count) writes are waiting for replication")
                }
                do throws(ReplicationError) {
                    let range = try s.raft.propose([payload])
                    s.pending[range.lowerBound] = Pending(term: s.raft.term, proposed: .now, deadline: .now + settings.proposalTimeout,
                                                          continuation: continuation)
                    return nil
                } catch {
                    return self.translate(error)
                }
            }
            if let refusal {
                continuation.resume(returning: .failure(refusal))
            } else {
                pump()
            }
        }
        return try result.get()
    }

    /// Changes the group's membership by one server (Raft thesis, Ongaro 2014, §4.1 and §4.2.1:
    /// a new server joins as a non-voting learner and votes once caught up), and waits until the
    /// configuration entry is committed and applied here.
    /// - Returns: the configuration the change committed.
    /// - Throws: ``TernError``: `NotLeader` (nothing appended); `Unavailable` (another change or
    ///   the leader's first entry is not yet committed: retry; or leadership was lost, the
    ///   timeout passed, or the node is stopping: the outcome is unknown); `Conflict` (the change
    ///   does not apply to the configuration: already a member, not a member, the last voter,
    ///   or a learner not yet caught up).
    public func changeMembership(_ change: Raft.ConfigurationChange) async throws(TernError) -> Raft.Configuration {
        let result: Result<Raft.Configuration, TernError> = await withCheckedContinuation { continuation in
            let refusal = state.withLock { s -> TernError? in
                if s.stopped || s.halted { return TernError(.unavailable, "replica of group \(group) is not running") }
                do throws(ReplicationError) {
                    let index = try s.raft.proposeConfigurationChange(change)
                    s.pendingChanges[index] = PendingChange(term: s.raft.term, deadline: .now + settings.proposalTimeout,
                                                            continuation: continuation)
                    return nil
                } catch {
                    return self.translate(error)
                }
            }
            if let refusal {
                continuation.resume(returning: .failure(refusal))
            } else {
                pump()
            }
        }
        return try result.get()
    }

    /// On a leader with no membership change in flight: proposes the promotion of the first
    /// learner (by id) whose log reached the commit index, and returns it.
    private static func promoteCaughtUpLearner(_ s: inout State) -> Raft.NodeID? {
        guard s.raft.role == .leader, !s.raft.configuration.learners.isEmpty else { return nil }
        let commit = s.raft.commitIndex
        for learner in s.raft.configuration.learners.sorted() {
            guard let match = s.raft.replicationProgress(of: learner)?.match, match >= commit else { continue }
            do throws(ReplicationError) {
                _ = try s.raft.proposeConfigurationChange(.promote(learner))
                return learner
            } catch {
                return nil  // a change is in flight, or the leader's first entry is not committed
            }
        }
        return nil
    }

    /// The replica's Raft state now.
    public var status: Status {
        state.withLock { s in
            var match: [Raft.NodeID: Raft.Index] = [:]
            var heard: Set<Raft.NodeID> = []
            if s.raft.role == .leader {
                let window = UInt64(settings.raft.electionTimeoutMinTicks)
                for member in s.raft.configuration.members {
                    if let progress = s.raft.replicationProgress(of: member) { match[member] = progress.match }
                    if let ticks = s.raft.ticksSinceContact(with: member), ticks <= window { heard.insert(member) }
                }
            }
            var status = Status(group: group, node: node, role: s.raft.role, term: s.raft.term, leader: s.raft.leader,
                          commitIndex: s.raft.commitIndex, appliedIndex: s.raft.appliedIndex, lastIndex: s.raft.lastIndex,
                          voters: s.raft.configuration.voters, learners: s.raft.configuration.learners, match: match,
                          isServing: s.raft.role == .leader && s.raft.appliedIndex >= s.raft.termStartIndex && !s.halted
                            && !s.installing,
                          halted: s.halted, snapshotIndex: s.raft.snapshotIndex, entriesInMemory: s.raft.entries.count,
                          installingSnapshot: s.installing)
            status.recentlyHeard = heard
            return status
        }
    }

    /// How many times this replica saw the group's leader change (including to "none").
    public var leaderChanges: Int { state.withLock { $0.leaderChanges } }
    /// How many elections this replica started (became a candidate; pre-votes not counted).
    public var elections: Int { state.withLock { $0.elections } }

    /// Called with the time from proposal to answer of every write this node proposed and
    /// applied (replication latency: the leader's sync, a majority's, the apply).
    public func setLatencyObserver(_ observer: (@Sendable (Duration) -> Void)?) {
        observers.withLock { $0.latency = observer }
    }

    private struct LeaderChange {
        var leader: Raft.NodeID?
        var term: Raft.Term
    }

    private static func observeRole(_ s: inout State) -> LeaderChange? {
        if s.raft.role == .candidate && s.lastRole != .candidate { s.elections += 1 }
        s.lastRole = s.raft.role
        guard s.raft.leader != s.lastLeader else { return nil }
        s.lastLeader = s.raft.leader
        s.leaderChanges += 1
        return LeaderChange(leader: s.raft.leader, term: s.raft.term)
    }

    /// Calls `observer` whenever this replica sees the group's leader change (to anyone, or
    /// to none), after the change.
    public func setLeaderObserver(_ observer: (@Sendable () -> Void)?) {
        observers.withLock { $0.leader = observer }
    }

    private func log(_ change: LeaderChange) {
        observers.withLock { $0.leader }?()
        logger.info("raft leader changed", metadata: [
            "tern.leader": "\(change.leader.map { name(of: $0) ?? "\($0)" } ?? "none")", "tern.term": "\(change.term)",
        ])
    }

    /// Hands leadership to `target` (thesis §3.10), e.g. before a graceful shutdown.
    /// - Throws: ``TernError`` `NotLeader`, `Conflict` (a transfer is in progress).
    public func transferLeadership(to target: Raft.NodeID) throws(TernError) {
        let error = state.withLock { s -> TernError? in
            do throws(ReplicationError) { try s.raft.transferLeadership(to: target); return nil } catch { return translate(error) }
        }
        if let error { throw error }
        pump()
    }

    /// Starts an election at once (``Raft/Instance/campaign()``): a new group's preferred
    /// leader calls it so that the group serves within a round trip of its creation.
    public func campaign() {
        state.withLock { $0.raft.campaign() }
        pump()
    }

    // MARK: Carrying out readies

    private func translate(_ error: ReplicationError) -> TernError {
        switch error.code {
        case .notLeader:
            let hint = error.leaderHint.map { name(of: $0) ?? "\($0)" }
            return TernError(.notLeader, hint.map { "this node does not lead group \(group); the leader is \($0)" }
                             ?? "this node does not lead group \(group); no leader is known now")
        case .uncommittedLimit:
            return TernError(.overloaded, error.message)
        case .leadershipTransferInProgress, .configurationChangeInProgress:
            return TernError(.unavailable, error.message)
        default:
            return TernError(.conflict, error.message)
        }
    }

    /// Takes every ready Raft has and carries each out, one thread at a time, so that the
    /// writer receives the jobs of successive readies in the order Raft handed them out.
    ///
    /// Readies are pipelined (etcd-io/raft's asynchronous storage writes; thesis §10.2.1): a
    /// ready is taken as soon as Raft has one, without waiting for the previous one's sync or
    /// applies, so that a commit learned while the leader's last batch syncs is applied at once,
    /// and appends proposed meanwhile leave at once. Order is kept by the writer, which runs and
    /// completes jobs in submission order: a job completes only once every earlier job is
    /// committed, and synced when it needed to be.
    private func pump() {
        let begin = state.withLock { s -> Bool in
            if s.pumping { return false }
            s.pumping = true
            return true
        }
        guard begin else { return }
        while true {
            let next: (Raft.Ready, Bool)? = state.withLock { s in
                // After stop() nothing new goes to the writer: the storage closes next. While a
                // snapshot is installed, nothing else is carried out.
                guard !s.halted, !s.stopped, !s.installing else { s.pumping = false; return nil }
                let ready: Raft.Ready
                if let resumed = s.resumed {
                    s.resumed = nil
                    ready = resumed
                } else if let taken = s.raft.ready() {
                    ready = taken
                } else {
                    s.pumping = false
                    return nil
                }
                if ready.snapshot != nil { s.installing = true }
                // Term and vote are promises (a vote, a term seen) and must be synced before a
                // message relies on them; the commit index alone need not be (Raft §5, figure 2:
                // commitIndex is volatile state; a replica that loses it relearns it).
                var syncsHardState = false
                if let hard = ready.hardState {
                    syncsHardState = hard.term != s.syncedTerm || hard.vote != s.syncedVote
                    s.syncedTerm = hard.term
                    s.syncedVote = hard.vote
                }
                return (ready, syncsHardState)
            }
            guard let (ready, syncsHardState) = next else { return }
            carryOut(ready, syncsHardState: syncsHardState)
        }
    }

    /// Hands one ready to the writer and the transport. Called only by ``pump()`` (one thread
    /// at a time, in the order the readies were taken).
    private func carryOut(_ ready: Raft.Ready, syncsHardState: Bool) {
        if let snapshot = ready.snapshot {
            guard let installer else {
                halt("the leader sent a snapshot and this replica cannot install one")
                return
            }
            install(snapshot, then: ready, installer: installer)
            return
        }
        let needsPersist = ready.hardState != nil || !ready.entries.isEmpty || ready.compaction != nil
        // A leader's appends and heartbeats promise nothing about its own disk, so they leave at
        // once, before its sync and before earlier readies are done: the followers' syncs
        // overlap the leader's (thesis §10.2.1; the leader's entry still counts toward commit
        // only once it reported it persisted). Votes, vote answers and append answers wait for
        // this ready's persistence and for every earlier one's.
        let early = ready.messages.filter(Self.maySendBeforeSync)
        let late = ready.messages.filter { !Self.maySendBeforeSync($0) }
        if !early.isEmpty { transport.send(early.map { RaftEnvelope(group: group, message: $0) }) }
        if needsPersist {
            let group = self.group, logStore = self.logStore
            let hard = ready.hardState, entries = ready.entries, compaction = ready.compaction
            let durable = syncsHardState || !entries.isEmpty || compaction != nil
            state.withLock { $0.persistsInFlight += 1 }
            storage.submit(durable: durable, { txn in
                if let hard {
                    try logStore.saveHardState(group: group, RaftLogStore.HardState(term: hard.term, vote: hard.vote ?? 0, commit: hard.commit), in: txn)
                }
                if let compaction {
                    try logStore.compact(group: group, through: RaftLogStore.SnapshotPoint(
                        index: compaction.metadata.index, term: compaction.metadata.term,
                        configuration: Raft.Codec.encode(compaction.metadata.configuration)), in: txn)
                }
                try logStore.append(group: group, entries.map {
                    RaftLogStore.Entry(index: $0.index, term: $0.term, kind: $0.kind.rawValue, payload: $0.payload)
                }, in: txn)
            }, completion: { [self] (result: Result<Void, any Error>) in
                if case .failure(let error) = result {
                    self.halt("cannot persist the raft log: \(error)")
                    return
                }
                let (halted, change) = state.withLock { s -> (Bool, LeaderChange?) in
                    s.persistsInFlight -= 1
                    // After a halt (an earlier ready failed to persist) nothing is promised.
                    guard !s.halted else { return (true, nil) }
                    if let last = entries.last { s.raft.onPersisted(upTo: last.index, term: last.term) }
                    return (false, Self.observeRole(&s))
                }
                guard !halted else { return }
                if let change { log(change) }
                if !late.isEmpty { self.transport.send(late.map { RaftEnvelope(group: self.group, message: $0) }) }
                pump()
            })
        } else if !late.isEmpty {
            // An answer may rest on entries whose persistence is still under way (an earlier
            // ready's): a job submitted now completes after theirs.
            if state.withLock({ $0.persistsInFlight }) > 0 {
                storage.submit(durable: false, { _ in }, completion: { [self] (result: Result<Void, any Error>) in
                    guard case .success = result, !state.withLock({ $0.halted }) else { return }
                    self.transport.send(late.map { RaftEnvelope(group: self.group, message: $0) })
                })
            } else {
                transport.send(late.map { RaftEnvelope(group: group, message: $0) })
            }
        }
        guard !ready.committedEntries.isEmpty else { return }
        let committed = ready.committedEntries
        let remaining = Mutex(committed.count)
        let outputs = Mutex<[Raft.Index: Result<Machine.Output?, any Error>]>([:])
        for entry in committed {
            let group = self.group, logStore = self.logStore, machine = self.machine
            // Not synced on its own: the entry is durable in the log on a majority, and a
            // replica that loses the applied state in a crash applies the entry again. It
            // depends on no later append (the entry is persisted here already), so it commits
            // ahead of the appends queued with it rather than wait for their sync.
            storage.submit(durable: false, overtakesSyncs: true, { [self] txn -> Machine.Output? in
                // In order and never past a gap: every earlier entry is applied (its effects and
                // index stored in one transaction) or failed deterministically (it changes
                // nothing anywhere). An entry after one that failed otherwise is not applied,
                // so a replica that halts on a disk error cannot skip it after a restart.
                let stored = try logStore.loadApplied(group: group, in: txn)
                guard entry.index > stored else { return nil }  // applied before a restart
                var previous = entry.index - 1
                while previous > stored, deterministicFailures.withLock({ $0.contains(previous) }) { previous -= 1 }
                guard previous <= stored else {
                    throw StorageError(.corruptRecord, "entry \(entry.index) of group \(group) follows entry \(previous), which was not applied")
                }
                do {
                    var output: Machine.Output?
                    if entry.kind == .normal, !entry.payload.isEmpty {
                        output = try machine.apply(entry.payload, in: txn)
                    }
                    try logStore.saveApplied(group: group, entry.index, in: txn)
                    deterministicFailures.withLock { set in if !set.isEmpty { set = set.filter { $0 > stored } } }
                    return output
                } catch let error as TernError {
                    deterministicFailures.withLock { _ = $0.insert(entry.index) }
                    throw error
                }
            }, completion: { [self] (result: Result<Machine.Output?, any Error>) in
                outputs.withLock { $0[entry.index] = result }
                guard remaining.withLock({ $0 -= 1; return $0 }) == 0 else { return }
                applied(committed, outputs: outputs.withLock { $0 })
            })
        }
    }

    /// Messages a leader may send before its own entries are durable (thesis §10.2.1).
    static func maySendBeforeSync(_ message: Raft.Message) -> Bool {
        switch message.kind {
        case .append, .heartbeat, .timeoutNow, .readIndexResponse: true
        default: false
        }
    }

    /// The committed entries of one ready were applied (or failed): reports them to Raft,
    /// answers their proposals, and compacts the log when due.
    private func applied(_ committed: [Raft.Entry], outputs: [Raft.Index: Result<Machine.Output?, any Error>]) {
        var answers: [(Pending, Result<Machine.Output, TernError>)] = []
        var changes: [(PendingChange, Result<Raft.Configuration, TernError>)] = []
        var failure: (any Error)?
        for entry in committed {
            guard let result = outputs[entry.index] else { continue }
            switch result {
            case .success(let output):
                if let output { observers.withLock { $0.applied }?(output) }
            case .failure(let error as TernError):
                _ = error  // deterministic: the entry changed nothing on any replica
            case .failure(let error):
                failure = error
            }
            if failure != nil { break }
        }
        let halted = failure != nil
        state.withLock { s in
            if !halted, let last = committed.last {
                s.raft.onApplied(upTo: last.index)
                for entry in committed { s.appliedSizes.append(entry.index, bytes: entry.encodedBytes) }
                compactIfDue(&s)
            }
            for entry in committed {
                guard let change = s.pendingChanges.removeValue(forKey: entry.index) else { continue }
                if change.term != entry.term || entry.kind != .configuration {
                    changes.append((change, .failure(TernError(.unavailable, "a new leader replaced the membership change before it committed; it was not applied"))))
                } else if let configuration = try? Raft.Codec.decodeConfiguration(entry.payload) {
                    changes.append((change, .success(configuration)))
                } else {
                    changes.append((change, .success(s.raft.configuration)))
                }
            }
            for entry in committed {
                guard let pending = s.pending.removeValue(forKey: entry.index) else { continue }
                guard pending.term == entry.term else {
                    answers.append((pending, .failure(TernError(.unavailable, "a new leader replaced the write before it committed; it was not applied"))))
                    continue
                }
                switch outputs[entry.index] {
                case .success(let output?): answers.append((pending, .success(output)))
                case .failure(let error as TernError): answers.append((pending, .failure(error)))
                default: answers.append((pending, .failure(TernError(.internalError, "the write could not be applied on this node"))))
                }
            }
        }
        let latency = observers.withLock { $0.latency }
        let now = ContinuousClock.now
        for (pending, answer) in answers {
            if case .success = answer { latency?(now - pending.proposed) }
            pending.continuation.resume(returning: answer)
        }
        for (change, answer) in changes { change.continuation.resume(returning: answer) }
        if let failure {
            halt("cannot apply a committed entry: \(failure)")
            return
        }
        pump()
    }

    // MARK: Installing snapshots

    /// Calls `observer` after every snapshot installed here (the broker drops what it keeps in
    /// memory about the state it replaced).
    public func setSnapshotObserver(_ observer: (@Sendable () -> Void)?) {
        observers.withLock { $0.installed = observer }
    }

    /// Snapshots installed since start, attempts that failed (and were retried), and chunk
    /// bytes received.
    public var snapshotCounts: (installed: Int, failures: Int, bytesReceived: UInt64) {
        state.withLock { ($0.snapshotsInstalled, $0.snapshotInstallFailures, $0.snapshotBytesReceived) }
    }

    /// Installs `snapshot` (Raft §7, InstallSnapshot), then carries out the rest of `ready`.
    ///
    /// The state is fetched from the leader (else the other members, in turn) into
    /// `incoming-group-G.snap`, synced and checked (size, CRC32C, header), then one write
    /// transaction replaces the state machine's databases and applied index with the file's
    /// and the stored log with the snapshot point. Only then are the ready's messages (the
    /// acknowledgement of the snapshot) sent. A failed attempt (the peer unreachable, a
    /// checksum mismatch, a failed transaction) changes nothing stored and is retried with
    /// backoff; a crash leaves the old state, and the leader sends the snapshot again. The
    /// hard state (term, vote) is this node's own throughout.
    private func install(_ snapshot: Raft.Snapshot, then ready: Raft.Ready, installer: SnapshotInstaller) {
        let preferred = state.withLock { s -> [Raft.NodeID] in
            let others = s.raft.configuration.members.subtracting([node]).sorted()
            guard let leader = s.raft.leader, leader != node else { return others }
            return [leader] + others.filter { $0 != leader }
        }
        let meta = snapshot.metadata
        logger.info("installing snapshot", metadata: [
            "tern.snapshot_index": "\(meta.index)", "tern.snapshot_term": "\(meta.term)",
            "tern.from": "\(preferred.first.map { name(of: $0) ?? "\($0)" } ?? "none")",
        ])
        Task.detached { [self] in
            var failures = 0
            while true {
                if state.withLock({ $0.stopped }) { return }
                guard !preferred.isEmpty else { halt("no member to fetch a snapshot from"); return }
                if failures > 0 && failures % (2 * preferred.count) == 0 {
                    // Every member failed twice (none reachable, or none has applied far enough:
                    // the leader may be gone before the others learned the commit). Waiting on
                    // would keep this node from voting, and the others may need its vote to
                    // elect a leader that can serve: give the snapshot up and go back to what
                    // is stored, as after a crash (nothing of the ready was persisted or sent).
                    abandonInstall(reason: "every member failed twice")
                    return
                }
                let peer = preferred[failures % preferred.count]
                do {
                    let applied = try await fetchAndInstall(meta, from: peer, installer: installer)
                    logger.info("snapshot installed", metadata: [
                        "tern.snapshot_index": "\(meta.index)", "tern.applied": "\(applied)",
                    ])
                    break
                } catch {
                    failures += 1
                    state.withLock { $0.snapshotInstallFailures += 1 }
                    logger.warning("snapshot install failed; retrying", metadata: [
                        "tern.from": "\(name(of: peer) ?? "\(peer)")", "tern.error": "\(error)", "tern.attempt": "\(failures)",
                    ])
                    let wait = min(installer.retryBackoff * (1 << min(failures - 1, 10)), .seconds(5))
                    try? await Task.sleep(for: wait)
                }
            }
            var rest = ready
            rest.snapshot = nil
            state.withLock { s in
                s.installing = false
                s.snapshotsInstalled += 1
                s.appliedSizes.reset()
                s.resumed = rest
            }
            observers.withLock { $0.installed }?()
            pump()
        }
    }

    /// Drops the Raft instance's view that the snapshot is installed and reloads it from
    /// storage (the old state), then takes Raft messages again; the leader sends the snapshot
    /// again when it still has to.
    private func abandonInstall(reason: String) {
        logger.warning("snapshot install abandoned; going on from the stored state", metadata: ["tern.reason": "\(reason)"])
        do {
            let (raft, sizes) = try Self.load(group: group, node: node, bootstrap: bootstrap, storage: storage,
                                              logStore: logStore, settings: settings)
            state.withLock { s in
                s.raft = raft
                s.appliedSizes = sizes
                s.installing = false
                s.syncedTerm = raft.term
                s.syncedVote = raft.vote
            }
            pump()
        } catch {
            halt("cannot reload the raft log after an abandoned snapshot install: \(error)")
        }
    }

    /// One attempt: fetch the state from `peer` into the incoming file, check it, install it.
    /// - Returns: the applied index of the installed state (≥ `meta.index`).
    private func fetchAndInstall(_ meta: Raft.SnapshotMetadata, from peer: Raft.NodeID,
                                 installer: SnapshotInstaller) async throws -> UInt64 {
        let path = installer.directory + "/incoming-group-\(group).snap"
        try FileManager.default.createDirectory(atPath: installer.directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let output = try OutputFile(path: path)
        var info: SnapshotFile.Info?
        var snapshotID: UInt64 = 0
        do {
            defer { output.close() }
            var offset: UInt64 = 0
            repeat {
                let request = SnapshotChunkRequest(group: group, snapshotID: snapshotID, minApplied: meta.index, offset: offset,
                                                   maxBytes: UInt32(min(installer.chunkBytes, SnapshotChunk.maxBytes)))
                let chunk = try await installer.source.chunk(request, from: peer)
                if snapshotID == 0 {
                    guard chunk.snapshotID != 0, chunk.info.group == group, chunk.info.applied >= meta.index else {
                        throw TernError(.invalidFrame, "the peer served a snapshot of group \(chunk.info.group) at \(chunk.info.applied), not one of group \(group) at \(meta.index) or later")
                    }
                    snapshotID = chunk.snapshotID
                    info = chunk.info
                }
                guard chunk.snapshotID == snapshotID, chunk.info == info, chunk.offset == offset,
                      chunk.data.count <= Int(request.maxBytes), offset + UInt64(chunk.data.count) <= chunk.info.bytes,
                      !chunk.data.isEmpty || offset == chunk.info.bytes else {
                    throw TernError(.invalidFrame, "the peer's snapshot chunk does not follow the previous one")
                }
                try output.write(chunk.data)
                offset += UInt64(chunk.data.count)
                state.withLock { $0.snapshotBytesReceived += UInt64(chunk.data.count) }
            } while offset < info!.bytes
            try output.sync()
        }
        guard let info else { throw TernError(.internalError, "no snapshot was fetched") }
        try SnapshotFile.verify(path: path, expected: info)
        let group = self.group, storage = self.storage, databases = machine.databaseNames, planted = installer.planted
        let point = RaftLogStore.SnapshotPoint(index: meta.index, term: meta.term,
                                               configuration: Raft.Codec.encode(meta.configuration))
        return try await storage.write { txn in
            let applied = try SnapshotFile.install(path: path, group: group, databases: databases, storage: storage, in: txn,
                                                   planted: planted)
            try RaftLogStore(storage: storage).installSnapshot(group: group, point, in: txn)
            return applied
        }
    }

    /// Compacts the log when ``Settings/compaction`` says it is due (decision 116). The state
    /// through the applied index is stored already (each entry's effects and the applied index
    /// in one transaction), so the snapshot is that state: only the log entries go.
    private func compactIfDue(_ s: inout State) {
        var matches: [Raft.Index] = []
        if s.raft.role == .leader {
            for member in s.raft.configuration.members where member != node {
                if let progress = s.raft.replicationProgress(of: member) { matches.append(progress.match) }
            }
        }
        // After a restart that followed an install, the applied index may lie past the log's
        // end (the installed state was ahead of the snapshot point): compact only what is in it.
        let applied = min(s.raft.appliedIndex, s.raft.lastIndex)
        guard let target = settings.compaction.target(applied: applied, snapshotIndex: s.raft.snapshotIndex,
                                                      sizes: s.appliedSizes, followerMatches: matches) else { return }
        s.raft.compact(through: target, data: Self.snapshotDescriptor)
        s.appliedSizes.drop(through: target)
    }

    /// Stops this replica for good (until restart): it would diverge from the others otherwise.
    private func halt(_ reason: String) {
        logger.critical("replica halted", metadata: ["tern.reason": "\(reason)"])
        let pending = state.withLock { s in
            s.halted = true
            defer { s.pending.removeAll() }
            return Array(s.pending.values)
        }
        for p in pending { p.continuation.resume(returning: .failure(TernError(.unavailable, "the replica halted: \(reason)"))) }
    }
}
