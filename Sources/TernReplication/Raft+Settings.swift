extension Raft {
    /// Timing and flow-control settings of one Raft group. Defaults follow CLUSTER.md
    /// (Redpanda's 150 ms heartbeat and an election timeout randomized in 1.5–3 s).
    ///
    /// The instance counts time in ticks: the shell calls ``Instance/tick()`` every
    /// ``tickInterval``, and each duration below is rounded down to whole ticks.
    public struct Settings: Sendable, Hashable {
        /// How often the shell calls ``Instance/tick()``. Default 50 ms.
        public var tickInterval: Duration = .milliseconds(50)
        /// How often a leader sends heartbeats to idle followers (Raft §5.2). Default 150 ms.
        public var heartbeatInterval: Duration = .milliseconds(150)
        /// The least election timeout (Raft §5.2); also the check-quorum period and the leader
        /// lease during which (pre-)votes are ignored. Default 1.5 s.
        public var electionTimeoutMin: Duration = .milliseconds(1500)
        /// The election timeout is drawn uniformly from [min, max) after every reset (Raft §5.2,
        /// §9.3 of the thesis: randomization makes split votes rare). Default 3 s.
        public var electionTimeoutMax: Duration = .milliseconds(3000)
        /// Ask a majority whether it would vote before starting a real election (thesis §9.6).
        /// Default true.
        public var preVote: Bool = true
        /// A leader that has not heard from a majority for ``electionTimeoutMin`` steps down, and
        /// followers that heard from a leader within that time ignore vote requests (thesis
        /// §6.2, §4.2.3). Default true.
        public var checkQuorum: Bool = true
        /// Appends in flight per follower while replicating (pipelining). Default 64.
        public var maxInflightAppends: Int = 64
        /// The most entry bytes in one append message (a larger single entry goes alone).
        /// Default 1 MiB.
        public var maxBytesPerAppend: Int = 1 << 20
        /// The most bytes of uncommitted entries a leader accepts; proposals beyond are
        /// refused with ``ReplicationError/Code/uncommittedLimit``. Default 64 MiB.
        public var maxUncommittedBytes: Int = 64 << 20
        /// The most committed entry bytes handed out by one ``Ready`` (at least one entry).
        /// Default 4 MiB.
        public var maxApplyBytesPerReady: Int = 4 << 20
        /// The most reads waiting for confirmation. Default 4,096.
        public var maxPendingReads: Int = 4096

        public init() {}

        /// A copy with `change` applied: `Raft.Settings().with { $0.preVote = false }`.
        public func with(_ change: (inout Settings) -> Void) -> Settings {
            var copy = self
            change(&copy)
            return copy
        }

        /// ``heartbeatInterval`` in ticks.
        public var heartbeatTicks: Int { ticks(heartbeatInterval) }
        /// ``electionTimeoutMin`` in ticks.
        public var electionTimeoutMinTicks: Int { ticks(electionTimeoutMin) }
        /// ``electionTimeoutMax`` in ticks.
        public var electionTimeoutMaxTicks: Int { ticks(electionTimeoutMax) }

        private func ticks(_ duration: Duration) -> Int {
            Int(duration / tickInterval)
        }

        /// Checks the settings.
        /// - Throws: ``ReplicationError/Code/invalidSettings`` when the tick interval is not
        ///   positive, the heartbeat is shorter than a tick, the election timeout is not longer
        ///   than two heartbeats or its range is empty, or a limit is below 1.
        public func validate() throws(ReplicationError) {
            func fail(_ text: String) -> ReplicationError { ReplicationError(.invalidSettings, text) }
            guard tickInterval > .zero else { throw fail("tickInterval must be positive") }
            guard heartbeatTicks >= 1 else { throw fail("heartbeatInterval must be at least one tickInterval") }
            guard electionTimeoutMinTicks >= 2 * heartbeatTicks else {
                throw fail("electionTimeoutMin must be at least two heartbeat intervals")
            }
            guard electionTimeoutMaxTicks > electionTimeoutMinTicks else {
                throw fail("electionTimeoutMax must be longer than electionTimeoutMin (by at least one tick)")
            }
            guard maxInflightAppends >= 1 else { throw fail("maxInflightAppends must be at least 1") }
            guard maxBytesPerAppend >= 1 else { throw fail("maxBytesPerAppend must be at least 1") }
            guard maxUncommittedBytes >= 1 else { throw fail("maxUncommittedBytes must be at least 1") }
            guard maxApplyBytesPerReady >= 1 else { throw fail("maxApplyBytesPerReady must be at least 1") }
            guard maxPendingReads >= 1 else { throw fail("maxPendingReads must be at least 1") }
        }
    }

    /// Rules a test can break on purpose, to show that the simulator's checkers catch the
    /// breakage. Never set outside tests.
    public struct PlantedBugs: Sendable, Hashable {
        /// The leader counts its own entries toward commit before it persisted them.
        public var countUnpersistedEntries = false
        /// A node grants a vote in a term where it already voted for someone else.
        public var voteTwiceInOneTerm = false
        /// The leader commits an entry of an earlier term by counting replicas (breaks §5.4.2).
        public var commitPreviousTermEntries = false

        public init() {}
        public static let none = PlantedBugs()
    }
}
