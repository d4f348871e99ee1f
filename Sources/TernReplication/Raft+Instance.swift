extension Raft {
    /// What a node loads from its disk at start: the last persisted hard state, the snapshot
    /// point (if the log was compacted or a snapshot installed), the entries after it, and how
    /// far the state machine has applied (it may have applied more than the hard state's
    /// commit when both live in one transaction).
    public struct InitialState: Sendable {
        public var hardState: HardState
        /// The persisted snapshot: its metadata, and its data when the caller can provide it
        /// (needed to send it to followers whose next entry is compacted away; a caller whose
        /// state machine is its own snapshot may pass empty data and call
        /// ``Instance/compact(through:data:)`` with a fresh one when asked).
        public var snapshot: Snapshot?
        /// The persisted log after the snapshot point, consecutive.
        public var entries: [Entry]
        /// The highest index the state machine has applied (≥ the snapshot index).
        public var applied: Index

        public init(hardState: HardState = HardState(), snapshot: Snapshot? = nil,
                    entries: [Entry] = [], applied: Index = 0) {
            self.hardState = hardState
            self.snapshot = snapshot
            self.entries = entries
            self.applied = max(applied, snapshot?.metadata.index ?? 0)
        }
    }

    /// One member of a Raft group as a pure state machine (Raft figure 2; etcd-io/raft's
    /// `raft` + `RawNode`).
    ///
    /// Inputs: ``step(_:)`` (a message from a peer), ``tick()`` (time), ``propose(_:)`` and
    /// ``proposeConfigurationChange(_:)`` (client writes), ``requestRead(id:)`` (linearizable
    /// reads), ``transferLeadership(to:)``, ``compact(through:data:)``, and the caller's reports
    /// ``onPersisted(upTo:term:)`` and ``onApplied(upTo:)``. Output: ``ready()``. See
    /// ``Raft/Ready`` for the order in which the caller must carry a ready out.
    ///
    /// Durability (CLUSTER.md, "durable before acknowledged"): an entry counts toward commit
    /// on a node only once that node reported it persisted — the leader's own copy included —
    /// and followers acknowledge appends only in messages that the caller sends after
    /// persisting.
    public struct Instance: Sendable {
        public let id: NodeID
        public let settings: Settings
        /// Rules broken on purpose by checker tests.
        @_spi(Testing) public var plantedBugs = PlantedBugs.none

        public private(set) var role: Role = .follower
        public private(set) var term: Term
        public private(set) var vote: NodeID?
        /// The leader of ``term`` as far as this node knows.
        public private(set) var leader: NodeID?
        /// The highest index known committed (Raft §5.3).
        public private(set) var commitIndex: Index
        /// The highest index the caller reported applied.
        public private(set) var appliedIndex: Index
        /// The highest index the caller reported durable on this node.
        public private(set) var persistedIndex: Index
        /// The configuration in effect: the last one in the log, appended or not (thesis §4.1).
        public private(set) var configuration: Configuration

        var log: Log
        /// The configuration of the snapshot point, and the bootstrap configuration.
        private var snapshotConfiguration: Configuration
        /// The newest local or received snapshot, sent to followers that need compacted entries.
        private var latestSnapshot: Snapshot?
        private var random: SplitMix64

        private var electionElapsed = 0
        /// Ticks since the instance was made (the clock of ``Progress/lastContactTick``).
        private var tickCount: UInt64 = 1
        private var heartbeatElapsed = 0
        private var randomizedElectionTimeout = 0
        private var votes: [NodeID: Bool] = [:]
        private var progress: [NodeID: Progress] = [:]
        /// Index of the latest configuration entry the leader appended (one change at a time).
        private var pendingConfigurationIndex: Index = 0
        /// The index of the leader's first entry of its term (its no-op).
        /// On a leader, the index of the no-op it appended when elected: once that entry is
        /// applied, the state machine holds every entry committed by earlier leaders (Raft
        /// §8), so reads and time-driven commands may be served.
        public private(set) var termStartIndex: Index = 0
        private var uncommittedBytes = 0
        private var transferee: NodeID?
        private var transferElapsed = 0

        // ReadIndex (thesis §6.4).
        private struct PendingRead: Sendable {
            var requestID: UInt64
            var origin: NodeID
            var index: Index
            var sequence: UInt64
        }
        private var readSequence: UInt64 = 0
        private var pendingReads: [PendingRead] = []
        /// Reads received before the leader committed an entry of its term.
        private var deferredReads: [(requestID: UInt64, origin: NodeID)] = []

        // What has been handed to the caller.
        private var unstableFrom: Index
        private var appliedHandedOut: Index
        private var lastHardState: HardState
        private var outbox: [Message] = []
        private var readStates: [ReadState] = []
        private var pendingSnapshotInstall: Snapshot?
        private var pendingCompaction: Snapshot?

        /// Starts a node from what it persisted.
        /// - Parameters:
        ///   - id: this node's id (not 0).
        ///   - bootstrap: the configuration to use while neither the log nor a snapshot holds
        ///     one: the initial voters for the founding members, empty for a node that will be
        ///     added later (it learns its configuration from the leader).
        ///   - initialState: the persisted state (``InitialState()`` for a new node).
        ///   - settings: validated here.
        ///   - randomSeed: seeds the election-timeout randomization (use a different seed per
        ///     node, e.g. derived from the node id and the start time, or from the simulation seed).
        /// - Throws: ``ReplicationError/Code/invalidSettings``.
        public init(id: NodeID, bootstrap: Configuration, initialState: InitialState = InitialState(),
                    settings: Settings = Settings(), randomSeed: UInt64) throws(ReplicationError) {
            precondition(id != 0, "node id 0 is reserved")
            try settings.validate()
            self.id = id
            self.settings = settings
            self.random = SplitMix64(seed: randomSeed ^ (id &* 0x9E37_79B9_7F4A_7C15))
            let hard = initialState.hardState
            self.term = hard.term
            self.vote = hard.vote
            let snapshotIndex = initialState.snapshot?.metadata.index ?? 0
            self.log = Log(snapshotIndex: snapshotIndex, snapshotTerm: initialState.snapshot?.metadata.term ?? 0,
                           entries: initialState.entries)
            self.snapshotConfiguration = initialState.snapshot?.metadata.configuration ?? bootstrap
            self.latestSnapshot = initialState.snapshot
            self.configuration = snapshotConfiguration
            self.commitIndex = min(max(hard.commit, snapshotIndex), log.lastIndex)
            self.appliedIndex = initialState.applied
            self.appliedHandedOut = initialState.applied
            self.persistedIndex = log.lastIndex
            self.unstableFrom = log.lastIndex + 1
            self.lastHardState = hard
            recomputeConfiguration()
            resetElectionTimeout()
        }

        // MARK: Observing

        /// The index of the last entry in the log.
        public var lastIndex: Index { log.lastIndex }
        /// The term of the last entry in the log.
        public var lastTerm: Term { log.lastTerm }
        /// The index of the snapshot point (entries through it are compacted).
        public var snapshotIndex: Index { log.snapshotIndex }
        /// The term of the entry at `index`, or nil when compacted away or beyond the end.
        public func term(at index: Index) -> Term? { log.term(at: index) }
        /// The entry at `index`, or nil when compacted away or beyond the end.
        public func entry(at index: Index) -> Entry? { log.entry(at: index) }
        /// The entries in memory, after the snapshot point.
        public var entries: [Entry] { log.entries }
        /// Whether this node may campaign: it is a voter of its configuration.
        public var isPromotable: Bool { configuration.voters.contains(id) }
        /// The node leadership is being handed to, on a leader.
        public var leadershipTransferee: NodeID? { transferee }

        /// The leader's view of `peer`: the highest index known replicated there, and the
        /// next index to send; nil on a non-leader or for a non-member.
        /// On a leader: the ticks since `peer` last answered an append or a heartbeat (0 for
        /// the leader itself); nil on other roles, for non-members, and for a member that has
        /// not answered this leader yet.
        public func ticksSinceContact(with peer: NodeID) -> UInt64? {
            guard role == .leader else { return nil }
            if peer == id { return 0 }
            guard let p = progress[peer], p.lastContactTick > 0 else { return nil }
            return tickCount - p.lastContactTick
        }

        public func replicationProgress(of peer: NodeID) -> (match: Index, next: Index)? {
            if peer == id, role == .leader { return (persistedIndex, log.lastIndex + 1) }
            guard let p = progress[peer] else { return nil }
            return (p.match, p.next)
        }

        // MARK: Inputs

        /// Advances time by one tick (``Settings/tickInterval``): runs election timeouts on
        /// followers and candidates, heartbeats and check-quorum on the leader.
        public mutating func tick() {
            tickCount += 1
            switch role {
            case .follower, .preCandidate, .candidate:
                electionElapsed += 1
                if isPromotable && electionElapsed >= randomizedElectionTimeout {
                    electionElapsed = 0
                    campaign(transfer: false)
                }
            case .leader:
                heartbeatElapsed += 1
                electionElapsed += 1
                for key in Array(progress.keys) where progress[key]!.state == .snapshot {
                    progress[key]!.ticksSinceSnapshot += 1
                }
                if transferee != nil {
                    transferElapsed += 1
                    if transferElapsed >= settings.electionTimeoutMinTicks { transferee = nil }
                }
                if electionElapsed >= settings.electionTimeoutMinTicks {
                    electionElapsed = 0
                    if settings.checkQuorum && !checkQuorumActive() {
                        becomeFollower(term: term, leader: nil)
                        return
                    }
                }
                if heartbeatElapsed >= settings.heartbeatTicks {
                    heartbeatElapsed = 0
                    broadcastHeartbeat()
                }
            }
        }

        /// Starts an election now instead of waiting for the election timeout (etcd-io/raft's
        /// `Campaign`, `MsgHup`): a pre-vote first when ``Settings/preVote`` is on, as a timeout
        /// would. Used by a new group's preferred leader, so that a group created on demand has a
        /// leader within a round trip rather than after 1.5–2.5 s. Does nothing on a leader or on
        /// a node that cannot vote (a learner, or not in the configuration).
        public mutating func campaign() {
            guard role != .leader, isPromotable else { return }
            electionElapsed = 0
            campaign(transfer: false)
        }

        /// Handles one message from a peer (Raft figure 2, "Rules for servers").
        ///
        /// Messages of an older term are answered so that a stale leader or candidate learns
        /// the newer term, or dropped. Messages addressed to another node, or from this node,
        /// are ignored.
        public mutating func step(_ message: Message) {
            guard message.to == id, message.from != id else { return }
            if message.term > term {
                switch message.kind {
                case .preVote, .vote(_, _, false):
                    // Leader lease (thesis §4.2.3): a node that heard from a leader within the
                    // least election timeout ignores (pre-)votes, so a removed or partitioned
                    // server cannot disrupt a healthy group.
                    if settings.checkQuorum, leader != nil, electionElapsed < settings.electionTimeoutMinTicks {
                        return
                    }
                default: break
                }
                switch message.kind {
                case .preVote:
                    break  // a pre-vote never changes the receiver's term
                case .preVoteResponse(true):
                    break  // granted pre-votes echo the proposed term; handled below
                case .append, .heartbeat, .snapshot:
                    becomeFollower(term: message.term, leader: message.from)
                default:
                    becomeFollower(term: message.term, leader: nil)
                }
            } else if message.term < term {
                switch message.kind {
                case .append, .heartbeat:
                    // A stale leader (for example one that was partitioned away): tell it the
                    // term so it steps down (with check-quorum and pre-vote, a rejoining node's
                    // term is never ahead for long, so this does not disrupt).
                    send(to: message.from, .appendResponse(index: 0, reject: true, hintIndex: 0, hintTerm: 0))
                case .preVote:
                    send(to: message.from, .preVoteResponse(granted: false))
                default:
                    break
                }
                return
            }

            switch message.kind {
            case .preVote(let lastIndex, let lastTerm):
                handleVoteRequest(message, lastIndex: lastIndex, lastTerm: lastTerm, preVote: true)
            case .vote(let lastIndex, let lastTerm, _):
                handleVoteRequest(message, lastIndex: lastIndex, lastTerm: lastTerm, preVote: false)
            case .preVoteResponse(let granted):
                guard role == .preCandidate, message.term == term + 1 || !granted else { return }
                tallyVote(from: message.from, granted: granted)
            case .voteResponse(let granted):
                guard role == .candidate else { return }
                tallyVote(from: message.from, granted: granted)
            case .append(let prevIndex, let prevTerm, let entries, let commit):
                guard role != .leader else { return }
                becomeFollowerIfCandidate(leader: message.from)
                electionElapsed = 0
                leader = message.from
                handleAppend(from: message.from, prevIndex: prevIndex, prevTerm: prevTerm, entries: entries, commit: commit)
            case .heartbeat(let commit, let sequence):
                guard role != .leader else { return }
                becomeFollowerIfCandidate(leader: message.from)
                electionElapsed = 0
                leader = message.from
                if commit > commitIndex { commitIndex = min(commit, log.lastIndex) }
                send(to: message.from, .heartbeatResponse(readSequence: sequence))
            case .snapshot(let snapshot):
                guard role != .leader else { return }
                becomeFollowerIfCandidate(leader: message.from)
                electionElapsed = 0
                leader = message.from
                handleSnapshot(from: message.from, snapshot)
            case .appendResponse(let index, let reject, let hintIndex, let hintTerm):
                guard role == .leader else { return }
                handleAppendResponse(from: message.from, index: index, reject: reject, hintIndex: hintIndex, hintTerm: hintTerm)
            case .heartbeatResponse(let sequence):
                guard role == .leader else { return }
                handleHeartbeatResponse(from: message.from, sequence: sequence)
            case .timeoutNow:
                // Thesis §3.10: start an election at once, skipping pre-vote and the lease.
                guard role != .leader, isPromotable else { return }
                campaign(transfer: true)
            case .readIndex(let requestID):
                guard role == .leader else { return }
                startRead(requestID: requestID, origin: message.from)
            case .readIndexResponse(let requestID, let index):
                guard role != .leader else { return }
                readStates.append(ReadState(requestID: requestID, index: index))
            }
        }

        /// Appends client commands to the leader's log (Raft §5.3) and replicates them.
        /// - Parameter payloads: one command per entry, each opaque bytes.
        /// - Returns: the indexes assigned, all in the current ``term``. A command is committed
        ///   when an entry with that index *and term* is applied; an applied entry of another
        ///   term at that index means the command was lost with its leader.
        /// - Throws: ``ReplicationError/Code/notLeader`` (with a leader hint when known),
        ///   ``ReplicationError/Code/leadershipTransferInProgress``,
        ///   ``ReplicationError/Code/uncommittedLimit``.
        @discardableResult
        public mutating func propose(_ payloads: [[UInt8]]) throws(ReplicationError) -> ClosedRange<Index> {
            try checkCanPropose()
            let bytes = payloads.reduce(0) { $0 + $1.count + 21 }
            guard uncommittedBytes == 0 || uncommittedBytes + bytes <= settings.maxUncommittedBytes else {
                throw ReplicationError(.uncommittedLimit,
                                       "\(uncommittedBytes) bytes are uncommitted; the limit is \(settings.maxUncommittedBytes)")
            }
            let first = log.lastIndex + 1
            for payload in payloads {
                appendToLog(Entry(index: log.lastIndex + 1, term: term, kind: .normal, payload: payload))
            }
            uncommittedBytes += bytes
            broadcastAppend()
            return first...max(first, log.lastIndex)
        }

        /// Proposes a single-server membership change (thesis §4.1). It takes effect on each
        /// node when appended; the next change is accepted once this one commits.
        /// - Returns: the index of the configuration entry.
        /// - Throws: ``ReplicationError/Code/notLeader``,
        ///   ``ReplicationError/Code/configurationChangeInProgress`` (one is uncommitted, or the
        ///   leader has not committed its first entry yet),
        ///   ``ReplicationError/Code/invalidConfigurationChange``,
        ///   ``ReplicationError/Code/learnerNotCaughtUp`` (a learner promoted before its log
        ///   reached the leader's commit index).
        @discardableResult
        public mutating func proposeConfigurationChange(_ change: ConfigurationChange) throws(ReplicationError) -> Index {
            try checkCanPropose()
            guard pendingConfigurationIndex <= commitIndex, commitIndex >= termStartIndex else {
                throw ReplicationError(.configurationChangeInProgress,
                                       "a configuration change or the leader's first entry is not yet committed")
            }
            let next = try configuration.applying(change)
            if case .promote(let node) = change, node != id {
                let match = progress[node]?.match ?? 0
                guard match >= commitIndex else {
                    throw ReplicationError(.learnerNotCaughtUp,
                                           "learner \(node) has \(match) of \(commitIndex) committed entries")
                }
            }
            let entry = Entry(index: log.lastIndex + 1, term: term, kind: .configuration,
                              payload: Codec.encode(next))
            appendToLog(entry)
            broadcastAppend()
            return entry.index
        }

        /// Asks for a linearizable read without a log write (ReadIndex, thesis §6.4). The
        /// answer comes as a ``ReadState`` in a later ``Ready``: serve the read once the
        /// state machine has applied its index. A follower forwards the request to the leader;
        /// a lost request is not answered (the caller times out and retries).
        /// - Parameter id: a caller-chosen id, echoed in the ``ReadState``.
        /// - Throws: ``ReplicationError/Code/notLeader`` when no leader is known,
        ///   ``ReplicationError/Code/tooManyPendingReads``.
        public mutating func requestRead(id requestID: UInt64) throws(ReplicationError) {
            if role == .leader {
                guard pendingReads.count + deferredReads.count < settings.maxPendingReads else {
                    throw ReplicationError(.tooManyPendingReads, "\(settings.maxPendingReads) reads are waiting")
                }
                startRead(requestID: requestID, origin: id)
            } else if let leader {
                send(to: leader, .readIndex(requestID: requestID))
            } else {
                throw ReplicationError(.notLeader, "no leader is known")
            }
        }

        /// Hands leadership to `target` (thesis §3.10): stops accepting proposals, brings the
        /// target's log up to date, then tells it to campaign at once. Abandoned after an
        /// election timeout.
        /// - Throws: ``ReplicationError/Code/notLeader``,
        ///   ``ReplicationError/Code/invalidConfigurationChange`` when the target is not another voter.
        public mutating func transferLeadership(to target: NodeID) throws(ReplicationError) {
            guard role == .leader else { throw ReplicationError(.notLeader, "not the leader", leaderHint: leader) }
            guard target != id, configuration.voters.contains(target) else {
                throw ReplicationError(.invalidConfigurationChange, "node \(target) is not another voter")
            }
            transferee = target
            transferElapsed = 0
            if progress[target]?.match == log.lastIndex {
                send(to: target, .timeoutNow)
            } else {
                sendAppend(to: target, sendIfEmpty: true)
            }
        }

        /// Records that the caller made the log durable through `index`, whose entry has
        /// `term` (etcd's `stableTo`). A report about an entry that has since been replaced
        /// (same index, other term) is ignored.
        public mutating func onPersisted(upTo index: Index, term entryTerm: Term) {
            guard index > persistedIndex, index <= log.lastIndex, log.term(at: index) == entryTerm else { return }
            persistedIndex = index
            if role == .leader, maybeCommit() { broadcastCommit() }
        }

        /// Records that the state machine applied every committed entry through `index`.
        public mutating func onApplied(upTo index: Index) {
            if index > appliedIndex { appliedIndex = min(index, commitIndex) }
        }

        /// Carries out the reports for a ``Ready`` the caller has fully processed: persisted
        /// its snapshot, entries and hard state, and applied its committed entries.
        public mutating func advance(_ ready: Ready) {
            if let last = ready.entries.last { onPersisted(upTo: last.index, term: last.term) }
            if let last = ready.committedEntries.last { onApplied(upTo: last.index) }
        }

        /// Replaces the log through `index` with a snapshot of the state machine (Raft §7).
        /// - Parameters:
        ///   - index: at most ``appliedIndex``; `data` must be the state after applying it.
        ///   - data: the state machine's snapshot bytes.
        /// The next ``Ready`` carries the snapshot in ``Ready/compaction`` for the caller to
        /// persist; followers whose next entry is gone receive it.
        public mutating func compact(through index: Index, data: [UInt8]) {
            precondition(index <= appliedIndex, "compacting past the applied index")
            guard index > log.snapshotIndex else { return }
            let metadata = SnapshotMetadata(index: index, term: log.term(at: index)!,
                                            configuration: configuration(at: index))
            log.compact(through: index)
            snapshotConfiguration = metadata.configuration
            let snapshot = Snapshot(metadata: metadata, data: data)
            latestSnapshot = snapshot
            pendingCompaction = snapshot
        }

        /// Whether ``ready()`` would return something.
        public var hasReady: Bool {
            !outbox.isEmpty || !readStates.isEmpty || pendingSnapshotInstall != nil || pendingCompaction != nil
                || unstableFrom <= log.lastIndex || currentHardState != lastHardState
                || appliedHandedOut < min(commitIndex, persistedIndex)
        }

        /// What the caller must persist, send and apply now, or nil when nothing. Calling it
        /// hands the contents over: the same entries and messages are not returned again.
        public mutating func ready() -> Ready? {
            guard hasReady else { return nil }
            var ready = Ready()
            let hard = currentHardState
            if hard != lastHardState {
                ready.hardState = hard
                lastHardState = hard
            }
            ready.snapshot = pendingSnapshotInstall
            pendingSnapshotInstall = nil
            ready.compaction = pendingCompaction
            pendingCompaction = nil
            if unstableFrom <= log.lastIndex {
                ready.entries = log.slice(from: max(unstableFrom, log.firstIndex), through: log.lastIndex, maxBytes: .max)
                unstableFrom = log.lastIndex + 1
            }
            ready.messages = outbox
            outbox.removeAll(keepingCapacity: true)
            let applyThrough = min(commitIndex, persistedIndex)
            if appliedHandedOut < applyThrough {
                ready.committedEntries = log.slice(from: appliedHandedOut + 1, through: applyThrough,
                                                   maxBytes: settings.maxApplyBytesPerReady)
                if let last = ready.committedEntries.last { appliedHandedOut = last.index }
            }
            ready.readStates = readStates
            readStates.removeAll()
            return ready
        }

        private var currentHardState: HardState { HardState(term: term, vote: vote, commit: commitIndex) }

        // MARK: Elections (Raft §5.2, thesis §9.6)

        private mutating func resetElectionTimeout() {
            let low = settings.electionTimeoutMinTicks, high = settings.electionTimeoutMaxTicks
            randomizedElectionTimeout = Int.random(in: low..<high, using: &random)
        }

        private mutating func reset(term newTerm: Term) {
            if newTerm != term {
                term = newTerm
                vote = nil
            }
            leader = nil
            electionElapsed = 0
            heartbeatElapsed = 0
            resetElectionTimeout()
            votes = [:]
            transferee = nil
            pendingReads.removeAll()
            deferredReads.removeAll()
            progress = [:]
        }

        private mutating func becomeFollower(term newTerm: Term, leader newLeader: NodeID?) {
            reset(term: newTerm)
            role = .follower
            leader = newLeader
        }

        private mutating func becomeFollowerIfCandidate(leader newLeader: NodeID) {
            if role == .candidate || role == .preCandidate { becomeFollower(term: term, leader: newLeader) }
        }

        /// Starts an election: a pre-vote round first unless `transfer` (thesis §3.10) or
        /// pre-vote is off.
        private mutating func campaign(transfer: Bool) {
            if settings.preVote && !transfer {
                // A pre-candidate keeps its term and vote (thesis §9.6): reset in the same term.
                reset(term: term)
                role = .preCandidate
                votes = [id: true]
                if hasQuorum(granted: true) { startElection(transfer: false); return }
                for peer in configuration.voters.sorted() where peer != id {
                    send(to: peer, term: term + 1, .preVote(lastIndex: log.lastIndex, lastTerm: log.lastTerm))
                }
            } else {
                startElection(transfer: transfer)
            }
        }

        private mutating func startElection(transfer: Bool) {
            reset(term: term + 1)
            role = .candidate
            vote = id
            votes = [id: true]
            if hasQuorum(granted: true) { becomeLeader(); return }
            for peer in configuration.voters.sorted() where peer != id {
                send(to: peer, .vote(lastIndex: log.lastIndex, lastTerm: log.lastTerm, transfer: transfer))
            }
        }

        private func hasQuorum(granted: Bool) -> Bool {
            configuration.voters.reduce(0) { $0 + (votes[$1] == granted ? 1 : 0) } >= configuration.quorum
        }

        private mutating func tallyVote(from peer: NodeID, granted: Bool) {
            guard configuration.voters.contains(peer), votes[peer] == nil else { return }
            votes[peer] = granted
            if hasQuorum(granted: true) {
                if role == .preCandidate { startElection(transfer: false) } else { becomeLeader() }
            } else if hasQuorum(granted: false) {
                becomeFollower(term: term, leader: nil)
            }
        }

        /// RequestVote receiver (Raft §5.2, §5.4.1), for votes and pre-votes.
        private mutating func handleVoteRequest(_ message: Message, lastIndex: Index, lastTerm: Term, preVote: Bool) {
            // etcd's canVote: a repeated request, a term where we neither voted nor know a
            // leader, or a pre-vote for a later term.
            let mayVote = vote == message.from || (vote == nil && leader == nil)
                || (preVote && message.term > term) || (!preVote && plantedBugs.voteTwiceInOneTerm)
            let upToDate = log.isUpToDate(lastIndex: lastIndex, lastTerm: lastTerm)
            if mayVote && upToDate {
                if preVote {
                    send(to: message.from, term: message.term, .preVoteResponse(granted: true))
                } else {
                    electionElapsed = 0
                    vote = message.from
                    send(to: message.from, .voteResponse(granted: true))
                }
            } else {
                if preVote {
                    send(to: message.from, .preVoteResponse(granted: false))
                } else {
                    send(to: message.from, .voteResponse(granted: false))
                }
            }
        }

        private mutating func becomeLeader() {
            reset(term: term)
            role = .leader
            leader = id
            vote = id
            for peer in configuration.members where peer != id {
                progress[peer] = Progress(next: log.lastIndex + 1)
            }
            uncommittedBytes = 0
            // Every uncommitted configuration entry counts as pending (thesis §4.1).
            pendingConfigurationIndex = log.lastIndex
            // Raft §5.4.2 / §8: a no-op of the new term lets earlier entries commit.
            let noop = Entry(index: log.lastIndex + 1, term: term, kind: .normal, payload: [])
            termStartIndex = noop.index
            appendToLog(noop)
            broadcastAppend()
        }

        /// Whether a majority of voters answered since the last check, and starts a new period
        /// (check-quorum, thesis §6.2).
        private mutating func checkQuorumActive() -> Bool {
            var active = 0
            for voter in configuration.voters {
                if voter == id || progress[voter]?.recentActive == true { active += 1 }
            }
            for key in Array(progress.keys) { progress[key]!.recentActive = false }
            return active >= configuration.quorum
        }

        // MARK: Replication (Raft §5.3)

        private mutating func checkCanPropose() throws(ReplicationError) {
            guard role == .leader else { throw ReplicationError(.notLeader, "not the leader", leaderHint: leader) }
            guard transferee == nil else {
                throw ReplicationError(.leadershipTransferInProgress, "leadership is being transferred to \(transferee!)")
            }
        }

        private mutating func appendToLog(_ entry: Entry) {
            log.append(entry)
            if entry.kind == .configuration { applyConfigurationEntry(entry) }
        }

        private mutating func broadcastAppend() {
            for peer in progress.keys.sorted() { sendAppend(to: peer, sendIfEmpty: false) }
        }

        /// After the commit index moved: sends every follower what it lacks, and an empty
        /// append carrying the new commit index to those that lack nothing, so that followers
        /// apply now rather than at the next heartbeat (etcd-io/raft's `bcastAppend` after
        /// `maybeCommit`). A follower whose window is full learns it with its next append.
        private mutating func broadcastCommit() {
            for peer in progress.keys.sorted() { sendAppend(to: peer, sendIfEmpty: true) }
        }

        private mutating func broadcastHeartbeat() {
            for peer in progress.keys.sorted() { sendHeartbeat(to: peer) }
        }

        private mutating func sendHeartbeat(to peer: NodeID) {
            guard let p = progress[peer] else { return }
            send(to: peer, .heartbeat(commit: min(p.match, commitIndex), readSequence: readSequence))
        }

        /// Sends entries from the follower's next index while its window has room
        /// (pipelining), or a snapshot when they are compacted away.
        private mutating func sendAppend(to peer: NodeID, sendIfEmpty: Bool) {
            var first = true
            while var p = progress[peer], !p.isPaused(maxInflight: settings.maxInflightAppends) {
                let prevIndex = p.next - 1
                guard let prevTerm = log.term(at: prevIndex) else {
                    sendSnapshot(to: peer)
                    return
                }
                let entries = log.slice(from: p.next, through: log.lastIndex, maxBytes: settings.maxBytesPerAppend)
                if entries.isEmpty && !(sendIfEmpty && first) { return }
                first = false
                send(to: peer, .append(prevIndex: prevIndex, prevTerm: prevTerm, entries: entries, commit: commitIndex))
                switch p.state {
                case .replicate:
                    if let last = entries.last {
                        p.next = last.index + 1
                        p.inflight.append(last.index)
                    }
                case .probe:
                    p.probeSent = true
                case .snapshot:
                    break
                }
                progress[peer] = p
                if p.state != .replicate || entries.isEmpty { return }
            }
        }

        private mutating func sendSnapshot(to peer: NodeID) {
            guard let snapshot = latestSnapshot, snapshot.metadata.index == log.snapshotIndex else {
                // The log was restored from a snapshot this instance no longer holds in memory
                // (a restart): the caller must compact again to provide one.
                return
            }
            progress[peer]!.state = .snapshot
            progress[peer]!.pendingSnapshot = snapshot.metadata.index
            progress[peer]!.ticksSinceSnapshot = 0
            send(to: peer, .snapshot(snapshot))
        }

        /// AppendEntries receiver (Raft figure 2, steps 1–5).
        private mutating func handleAppend(from peer: NodeID, prevIndex: Index, prevTerm: Term, entries: [Entry], commit: Index) {
            if prevIndex < commitIndex {
                // Everything through our commit index matches already.
                send(to: peer, .appendResponse(index: commitIndex, reject: false, hintIndex: 0, hintTerm: 0))
                return
            }
            guard log.matches(index: prevIndex, term: prevTerm) else {
                let hintIndex = log.lastIndex(atOrBefore: min(prevIndex, log.lastIndex), withTermAtMost: prevTerm)
                let hintTerm = log.term(at: hintIndex) ?? 0
                send(to: peer, .appendResponse(index: prevIndex, reject: true, hintIndex: hintIndex, hintTerm: hintTerm))
                return
            }
            if let written = log.merge(entries) {
                truncated(from: written)
                for entry in entries where entry.index >= written && entry.kind == .configuration {
                    applyConfigurationEntry(entry)
                }
            }
            let lastNew = prevIndex + Index(entries.count)
            if commit > commitIndex { commitIndex = min(commit, lastNew) }
            send(to: peer, .appendResponse(index: lastNew, reject: false, hintIndex: 0, hintTerm: 0))
        }

        /// Bookkeeping after the log changed from `index` on.
        private mutating func truncated(from index: Index) {
            unstableFrom = min(unstableFrom, index)
            persistedIndex = min(persistedIndex, index - 1)
            if configurationIndex >= index { recomputeConfiguration() }
            // A queued acknowledgement of entries that have just been replaced would claim
            // entries this node will never have persisted: drop it.
            outbox.removeAll { message in
                if case .appendResponse(let acked, false, _, _) = message.kind, acked >= index { return true }
                return false
            }
        }

        /// InstallSnapshot receiver (Raft §7).
        private mutating func handleSnapshot(from peer: NodeID, _ snapshot: Snapshot) {
            let meta = snapshot.metadata
            if meta.index <= commitIndex {
                send(to: peer, .appendResponse(index: commitIndex, reject: false, hintIndex: 0, hintTerm: 0))
                return
            }
            if log.matches(index: meta.index, term: meta.term) {
                // Our log already holds it: just learn the commit.
                commitIndex = meta.index
                send(to: peer, .appendResponse(index: meta.index, reject: false, hintIndex: 0, hintTerm: 0))
                return
            }
            log.restore(index: meta.index, term: meta.term)
            snapshotConfiguration = meta.configuration
            configurationIndex = 0
            configuration = meta.configuration
            latestSnapshot = snapshot
            pendingSnapshotInstall = snapshot
            pendingCompaction = nil
            commitIndex = meta.index
            persistedIndex = meta.index
            unstableFrom = meta.index + 1
            appliedIndex = meta.index
            appliedHandedOut = meta.index
            outbox.removeAll { message in
                if case .appendResponse(_, false, _, _) = message.kind { return true }
                return false
            }
            send(to: peer, .appendResponse(index: meta.index, reject: false, hintIndex: 0, hintTerm: 0))
        }

        private mutating func handleAppendResponse(from peer: NodeID, index: Index, reject: Bool, hintIndex: Index, hintTerm: Term) {
            guard var p = progress[peer] else { return }
            p.recentActive = true
            p.lastContactTick = tickCount
            if reject {
                if index == 0 && hintIndex == 0 { progress[peer] = p; return }  // a stale-term answer
                // Ignore rejections of appends we no longer have in flight.
                let stale = p.state == .replicate ? index <= p.match : index != p.next - 1
                if stale { progress[peer] = p; return }
                var probe = hintIndex
                if hintTerm > 0 { probe = log.lastIndex(atOrBefore: hintIndex, withTermAtMost: hintTerm) }
                if index <= p.match {
                    // The follower lacks an entry it acknowledged: its disk lost synced data (or
                    // this rejection was overtaken by a later acknowledgement). Replicate again
                    // from its hint rather than probe at `match` forever (a rejection storm):
                    // a lower match only delays commits, which never move back.
                    p.match = min(p.match, probe)
                }
                p.next = max(min(index, probe + 1), p.match + 1)
                if p.state == .replicate {
                    p.state = .probe
                    p.inflight.removeAll()
                }
                p.probeSent = false
                progress[peer] = p
                sendAppend(to: peer, sendIfEmpty: true)
                return
            }
            let wasPaused = p.isPaused(maxInflight: settings.maxInflightAppends)
            let updated = p.acknowledge(index)
            if updated {
                switch p.state {
                case .probe: p.becomeReplicate()
                case .snapshot where p.match >= p.pendingSnapshot: p.becomeProbe(); p.becomeReplicate()
                default: break
                }
            }
            progress[peer] = p
            if updated, maybeCommit() {
                broadcastCommit()
            } else if updated || wasPaused {
                sendAppend(to: peer, sendIfEmpty: false)
            }
            if role == .leader, peer == transferee, progress[peer]?.match == log.lastIndex {
                send(to: peer, .timeoutNow)
            }
        }

        private mutating func handleHeartbeatResponse(from peer: NodeID, sequence: UInt64) {
            guard var p = progress[peer] else { return }
            p.recentActive = true
            p.lastContactTick = tickCount
            p.probeSent = false
            if p.state == .replicate, p.inflight.count >= settings.maxInflightAppends { p.inflight.removeFirst() }
            if p.state == .snapshot, p.ticksSinceSnapshot >= settings.electionTimeoutMinTicks {
                p.becomeProbe()  // the snapshot was probably lost; try again from the log
            }
            p.readAcknowledged = max(p.readAcknowledged, sequence)
            progress[peer] = p
            if p.match < log.lastIndex { sendAppend(to: peer, sendIfEmpty: true) }
            if !pendingReads.isEmpty { releaseConfirmedReads() }
        }

        /// Advances the commit index to the highest index persisted on a majority of voters,
        /// if that entry is of the current term (Raft §5.3, §5.4.2: earlier terms' entries
        /// commit only indirectly). Returns whether it moved.
        private mutating func maybeCommit() -> Bool {
            guard role == .leader else { return false }
            var matches: [Index] = []
            matches.reserveCapacity(configuration.voters.count)
            for voter in configuration.voters {
                if voter == id {
                    matches.append(plantedBugs.countUnpersistedEntries ? log.lastIndex : persistedIndex)
                } else {
                    matches.append(progress[voter]?.match ?? 0)
                }
            }
            guard !matches.isEmpty else { return false }
            matches.sort(by: >)
            let candidate = matches[configuration.quorum - 1]
            guard candidate > commitIndex else { return false }
            guard plantedBugs.commitPreviousTermEntries || log.term(at: candidate) == term else { return false }
            commitTo(candidate)
            return true
        }

        private mutating func commitTo(_ index: Index) {
            var released = 0
            var i = commitIndex + 1
            while i <= index {
                if let entry = log.entry(at: i), entry.term == term { released += entry.encodedBytes }
                i += 1
            }
            uncommittedBytes = max(0, uncommittedBytes - released)
            let wasBeforeTermStart = commitIndex < termStartIndex
            commitIndex = index
            if wasBeforeTermStart && commitIndex >= termStartIndex { releaseDeferredReads() }
            // Thesis §4.2.2: a leader removed from the configuration steps down once the
            // change committed.
            if !configuration.voters.contains(id) && commitIndex >= configurationIndex {
                becomeFollower(term: term, leader: nil)
            }
        }

        // MARK: Configuration (thesis §4.1)

        /// The index of the entry that set ``configuration`` (0: the snapshot's or bootstrap).
        private var configurationIndex: Index = 0

        private mutating func applyConfigurationEntry(_ entry: Entry) {
            guard let next = try? Codec.decodeConfiguration(entry.payload) else { return }
            configuration = next
            configurationIndex = entry.index
            if role == .leader {
                pendingConfigurationIndex = entry.index
                for peer in next.members where peer != id && progress[peer] == nil {
                    progress[peer] = Progress(next: log.lastIndex + 1)
                }
                for peer in progress.keys where !next.members.contains(peer) { progress[peer] = nil }
                if let transferee, !next.voters.contains(transferee) { self.transferee = nil }
            }
        }

        private mutating func recomputeConfiguration() {
            configuration = snapshotConfiguration
            configurationIndex = 0
            for entry in log.entries.reversed() where entry.kind == .configuration {
                if let decoded = try? Codec.decodeConfiguration(entry.payload) {
                    configuration = decoded
                    configurationIndex = entry.index
                    break
                }
            }
        }

        private func configuration(at index: Index) -> Configuration {
            var i = index
            while i > log.snapshotIndex {
                if let entry = log.entry(at: i), entry.kind == .configuration,
                   let decoded = try? Codec.decodeConfiguration(entry.payload) {
                    return decoded
                }
                i -= 1
            }
            return snapshotConfiguration
        }

        // MARK: ReadIndex (thesis §6.4)

        private mutating func startRead(requestID: UInt64, origin: NodeID) {
            guard commitIndex >= termStartIndex else {
                // The leader's commit index is current only once an entry of its term committed.
                if deferredReads.count < settings.maxPendingReads { deferredReads.append((requestID, origin)) }
                return
            }
            readSequence += 1
            pendingReads.append(PendingRead(requestID: requestID, origin: origin, index: commitIndex, sequence: readSequence))
            if configuration.voters == [id] {
                releaseConfirmedReads()
            } else {
                broadcastHeartbeat()
            }
        }

        private mutating func releaseDeferredReads() {
            let waiting = deferredReads
            deferredReads.removeAll()
            for read in waiting { startRead(requestID: read.requestID, origin: read.origin) }
        }

        /// Answers every pending read whose heartbeat a quorum acknowledged.
        private mutating func releaseConfirmedReads() {
            var acknowledged: [UInt64] = []
            for voter in configuration.voters {
                acknowledged.append(voter == id ? readSequence : progress[voter]?.readAcknowledged ?? 0)
            }
            acknowledged.sort(by: >)
            let confirmed = acknowledged[configuration.quorum - 1]
            while let read = pendingReads.first, read.sequence <= confirmed {
                pendingReads.removeFirst()
                if read.origin == id {
                    readStates.append(ReadState(requestID: read.requestID, index: read.index))
                } else {
                    send(to: read.origin, .readIndexResponse(requestID: read.requestID, index: read.index))
                }
            }
        }

        // MARK: Messages

        private mutating func send(to peer: NodeID, term messageTerm: Term? = nil, _ kind: Message.Kind) {
            outbox.append(Message(from: id, to: peer, term: messageTerm ?? term, kind: kind))
        }
    }
}
