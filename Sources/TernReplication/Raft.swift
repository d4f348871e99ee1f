/// The Raft consensus algorithm as a pure state machine: no disk, no network, no clock.
///
/// Sources: "In Search of an Understandable Consensus Algorithm (Extended Version)", Ongaro &
/// Ousterhout 2014 (cited as "Raft §n"); "Consensus: Bridging Theory and Practice", Ongaro's PhD
/// thesis, Stanford 2014 (cited as "thesis §n"). The shape (``Raft/Instance/step(_:)``,
/// ``Raft/Instance/tick()``, a ``Raft/Ready`` handed to the caller, then
/// ``Raft/Instance/onPersisted(upTo:term:)``) follows etcd-io/raft's `RawNode`.
///
/// ```swift
/// var raft = try Raft.Instance(id: 1, bootstrap: Raft.Configuration(voters: [1, 2, 3]),
///                              settings: Raft.Settings(), randomSeed: seed)
/// raft.tick()                                  // every settings.tickInterval
/// raft.step(try Raft.Codec.decodeMessage(bytes)) // for every message received
/// if let ready = raft.ready() {
///     persist(ready.snapshot, ready.entries, ready.hardState)   // fsync
///     send(ready.messages)                     // only after persisting
///     apply(ready.committedEntries)
///     raft.advance(ready)                      // onPersisted + onApplied
/// }
/// ```
public enum Raft {
    /// A node's id within its cluster; 0 is reserved for "none".
    public typealias NodeID = UInt64
    /// A Raft term (Raft §5.1): 0 before any election, then increasing. The term is the leader
    /// epoch that every append, vote and client write carries.
    public typealias Term = UInt64
    /// A log position, from 1; 0 means "before the first entry".
    public typealias Index = UInt64

    /// The role of a node (Raft §5.1, pre-candidate from thesis §9.6).
    public enum Role: Sendable, Hashable, CustomStringConvertible {
        case follower, preCandidate, candidate, leader
        public var description: String {
            switch self {
            case .follower: "follower"
            case .preCandidate: "pre-candidate"
            case .candidate: "candidate"
            case .leader: "leader"
            }
        }
    }

    /// One log entry (Raft §5.3): its position, the term of the leader that created it, and an
    /// opaque payload (for data groups, one encoded broker command).
    public struct Entry: Sendable, Hashable {
        /// What an entry holds.
        public enum Kind: UInt8, Sendable, Hashable {
            /// An application command; an empty payload is the no-op a new leader appends.
            case normal = 0
            /// A ``Configuration`` (the whole new one, encoded), taking effect when appended
            /// (thesis §4.1).
            case configuration = 1
        }

        public var index: Index
        public var term: Term
        public var kind: Kind
        /// The command bytes, opaque to Raft.
        public var payload: [UInt8]

        public init(index: Index, term: Term, kind: Kind = .normal, payload: [UInt8]) {
            self.index = index
            self.term = term
            self.kind = kind
            self.payload = payload
        }

        /// Bytes an entry occupies on the wire and in the log (payload plus 21 bytes of header).
        public var encodedBytes: Int { payload.count + 21 }
    }

    /// The members of a group: voters decide elections and commitment, learners only receive
    /// the log (thesis §4.2.1, "catching up new servers").
    public struct Configuration: Sendable, Hashable, CustomStringConvertible {
        public var voters: Set<NodeID>
        public var learners: Set<NodeID>

        public init(voters: Set<NodeID> = [], learners: Set<NodeID> = []) {
            self.voters = voters
            self.learners = learners.subtracting(voters)
        }

        /// Voters and learners.
        public var members: Set<NodeID> { voters.union(learners) }

        /// Votes (or acknowledgements) needed for a majority of the voters: ⌊n/2⌋ + 1.
        public var quorum: Int { voters.count / 2 + 1 }

        public var description: String {
            "voters \(voters.sorted())" + (learners.isEmpty ? "" : " learners \(learners.sorted())")
        }

        /// The configuration after `change`, or a thrown ``ReplicationError/Code/invalidConfigurationChange``.
        public func applying(_ change: ConfigurationChange) throws(ReplicationError) -> Configuration {
            var next = self
            switch change {
            case .addLearner(let node):
                guard !voters.contains(node) else {
                    throw ReplicationError(.invalidConfigurationChange, "node \(node) is already a voter")
                }
                guard !learners.contains(node) else {
                    throw ReplicationError(.invalidConfigurationChange, "node \(node) is already a learner")
                }
                next.learners.insert(node)
            case .promote(let node):
                guard learners.contains(node) else {
                    throw ReplicationError(.invalidConfigurationChange,
                                           "node \(node) is not a learner: add it as a learner first (thesis §4.2.1)")
                }
                next.learners.remove(node)
                next.voters.insert(node)
            case .remove(let node):
                guard members.contains(node) else {
                    throw ReplicationError(.invalidConfigurationChange, "node \(node) is not a member")
                }
                guard !(voters == [node]) else {
                    throw ReplicationError(.invalidConfigurationChange, "cannot remove the last voter \(node)")
                }
                next.voters.remove(node)
                next.learners.remove(node)
            }
            return next
        }
    }

    /// One single-server membership change (thesis §4.1): at most one is uncommitted at a time.
    public enum ConfigurationChange: Sendable, Hashable {
        /// Adds a non-voting member that receives the log.
        case addLearner(NodeID)
        /// Turns a caught-up learner into a voter.
        case promote(NodeID)
        /// Removes a voter or learner. A leader that removes itself steps down once the change
        /// commits (thesis §4.2.2).
        case remove(NodeID)
    }

    /// The state a node must persist before it sends any message (Raft §5, figure 2).
    public struct HardState: Sendable, Hashable {
        /// The latest term this node has seen.
        public var term: Term
        /// The candidate voted for in ``term``, or nil.
        public var vote: NodeID?
        /// The highest index known committed (persisting it is an optimisation: it can be
        /// relearned from the leader).
        public var commit: Index

        public init(term: Term = 0, vote: NodeID? = nil, commit: Index = 0) {
            self.term = term
            self.vote = vote
            self.commit = commit
        }
    }

    /// What a snapshot replaces: the log up to and including ``index`` (Raft §7).
    public struct SnapshotMetadata: Sendable, Hashable {
        public var index: Index
        public var term: Term
        /// The configuration in effect at ``index``.
        public var configuration: Configuration

        public init(index: Index, term: Term, configuration: Configuration) {
            self.index = index
            self.term = term
            self.configuration = configuration
        }
    }

    /// A state-machine snapshot (Raft §7): the state after applying every entry through
    /// `metadata.index`, as opaque bytes the state machine produced.
    public struct Snapshot: Sendable, Hashable {
        public var metadata: SnapshotMetadata
        public var data: [UInt8]

        public init(metadata: SnapshotMetadata, data: [UInt8]) {
            self.metadata = metadata
            self.data = data
        }
    }

    /// A linearizable read that may be served once the state machine has applied ``index``
    /// (ReadIndex, thesis §6.4).
    public struct ReadState: Sendable, Hashable {
        /// The id the caller gave ``Instance/requestRead(id:)``.
        public var requestID: UInt64
        /// The commit index the read must wait for; serve it once applied ≥ index.
        public var index: Index

        public init(requestID: UInt64, index: Index) {
            self.requestID = requestID
            self.index = index
        }
    }

    /// What the caller must do next, in this order (etcd-io/raft's `Ready`):
    /// 1. install ``snapshot`` if any (replace the state machine, drop the stored log);
    /// 2. record ``compaction`` if any (drop stored entries through its index);
    /// 3. store ``entries`` (first deleting any stored entry at or after the first one's index)
    ///    and ``hardState``, and sync them to disk;
    /// 4. only then send ``messages`` (a vote or an append acknowledgement is a promise about
    ///    durable state);
    /// 5. apply ``committedEntries`` in order, serve ``readStates`` once applied;
    /// 6. call ``Instance/advance(_:)`` (or ``Instance/onPersisted(upTo:term:)`` and
    ///    ``Instance/onApplied(upTo:)`` separately, when persistence or application is asynchronous).
    public struct Ready: Sendable {
        /// The hard state to persist, when it changed since the last ready.
        public var hardState: HardState?
        /// A snapshot received from the leader, to install before anything else.
        public var snapshot: Snapshot?
        /// A local snapshot taken by ``Instance/compact(through:data:)``: the stored log
        /// through its index may be deleted once the snapshot itself is durable.
        public var compaction: Snapshot?
        /// Entries to persist, consecutive; the stored log from `entries.first.index` on is
        /// replaced.
        public var entries: [Entry] = []
        /// Messages to send once everything above is durable.
        public var messages: [Message] = []
        /// Entries known committed and persisted here, to apply in order.
        public var committedEntries: [Entry] = []
        /// Reads confirmed by a quorum (thesis §6.4).
        public var readStates: [ReadState] = []

        public init() {}

        /// Whether there is nothing to do.
        public var isEmpty: Bool {
            hardState == nil && snapshot == nil && compaction == nil && entries.isEmpty && messages.isEmpty
                && committedEntries.isEmpty && readStates.isEmpty
        }
    }
}

/// A failure of the replication layer: a refused proposal, a bad configuration change, an
/// undecodable message or invalid settings.
public struct ReplicationError: Error, Sendable, CustomStringConvertible, Equatable {
    /// What went wrong; extensible (new codes may be added).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case notLeader, leadershipTransferInProgress, configurationChangeInProgress
            case invalidConfigurationChange, learnerNotCaughtUp, uncommittedLimit, tooManyPendingReads
            case invalidMessage, unsupportedVersion, invalidSettings
        }
        private let value: Value
        /// This node is not the leader; ``ReplicationError/leaderHint`` names the leader when known.
        public static let notLeader = Code(value: .notLeader)
        /// The leader is handing over leadership (thesis §3.10) and refuses proposals meanwhile.
        public static let leadershipTransferInProgress = Code(value: .leadershipTransferInProgress)
        /// A configuration change is still uncommitted, or the leader has not yet committed an
        /// entry of its term (thesis §4.1, and the fix in Ongaro's 2015 raft-dev post).
        public static let configurationChangeInProgress = Code(value: .configurationChangeInProgress)
        /// The change does not fit the current configuration.
        public static let invalidConfigurationChange = Code(value: .invalidConfigurationChange)
        /// A learner is promoted before its log reached the leader's commit index.
        public static let learnerNotCaughtUp = Code(value: .learnerNotCaughtUp)
        /// The leader holds ``Raft/Settings/maxUncommittedBytes`` of uncommitted entries already.
        public static let uncommittedLimit = Code(value: .uncommittedLimit)
        /// ``Raft/Settings/maxPendingReads`` reads are waiting already.
        public static let tooManyPendingReads = Code(value: .tooManyPendingReads)
        /// A message could not be decoded (truncated, bad kind, impossible counts).
        public static let invalidMessage = Code(value: .invalidMessage)
        /// A message was encoded by a newer, incompatible format version.
        public static let unsupportedVersion = Code(value: .unsupportedVersion)
        /// ``Raft/Settings`` failed validation.
        public static let invalidSettings = Code(value: .invalidSettings)
        public var description: String { "\(value)" }
    }

    public var code: Code
    public var message: String
    /// The leader this node knows of, for ``Code/notLeader`` (clients retry there).
    public var leaderHint: Raft.NodeID?

    public init(_ code: Code, _ message: String, leaderHint: Raft.NodeID? = nil) {
        self.code = code
        self.message = message
        self.leaderHint = leaderHint
    }

    public var description: String { "replication error (\(code)): \(message)" }
}
