extension Raft {
    /// The in-memory log of an instance: a snapshot point (index and term of the last entry it
    /// replaced) and the entries after it.
    struct Log: Sendable {
        private(set) var snapshotIndex: Index
        private(set) var snapshotTerm: Term
        /// `entries[k].index == snapshotIndex + 1 + k`.
        private(set) var entries: [Entry]

        init(snapshotIndex: Index = 0, snapshotTerm: Term = 0, entries: [Entry] = []) {
            self.snapshotIndex = snapshotIndex
            self.snapshotTerm = snapshotTerm
            self.entries = entries
            for (k, entry) in entries.enumerated() {
                precondition(entry.index == snapshotIndex + 1 + Index(k), "log entries are not consecutive")
            }
        }

        var firstIndex: Index { snapshotIndex + 1 }
        var lastIndex: Index { snapshotIndex + Index(entries.count) }
        var lastTerm: Term { entries.last?.term ?? snapshotTerm }

        /// The term of the entry at `index`, the snapshot's term at the snapshot index, or nil
        /// when the index is compacted away or beyond the end.
        func term(at index: Index) -> Term? {
            if index == snapshotIndex { return snapshotTerm }
            guard index > snapshotIndex, index <= lastIndex else { return nil }
            return entries[Int(index - snapshotIndex - 1)].term
        }

        func entry(at index: Index) -> Entry? {
            guard index > snapshotIndex, index <= lastIndex else { return nil }
            return entries[Int(index - snapshotIndex - 1)]
        }

        func matches(index: Index, term: Term) -> Bool { self.term(at: index) == term }

        /// Entries in `from...through`, stopping once `maxBytes` is reached (at least one).
        func slice(from: Index, through: Index, maxBytes: Int) -> [Entry] {
            guard from <= through, from > snapshotIndex, through <= lastIndex else { return [] }
            var result: [Entry] = []
            var bytes = 0
            var index = from
            while index <= through {
                let entry = entries[Int(index - snapshotIndex - 1)]
                bytes += entry.encodedBytes
                if !result.isEmpty && bytes > maxBytes { break }
                result.append(entry)
                index += 1
            }
            return result
        }

        /// The largest index ≤ `index` whose term is ≤ `term` (the snapshot index at the least):
        /// where a leader whose log has `term` at `index` can next probe (etcd's
        /// `findConflictByTerm`, the §5.3 optimisation).
        func lastIndex(atOrBefore index: Index, withTermAtMost term: Term) -> Index {
            var i = min(index, lastIndex)
            while i > snapshotIndex {
                if entries[Int(i - snapshotIndex - 1)].term <= term { return i }
                i -= 1
            }
            return snapshotIndex
        }

        /// Appends `newEntries` (consecutive, starting at most one past the end), first
        /// dropping every entry at or after the first one whose term differs (Raft §5.3, step 3).
        /// Entries already present with the same term are kept (they are identical, by the log
        /// matching property). Returns the index of the first entry written, or nil when all
        /// were present already.
        @discardableResult
        mutating func merge(_ newEntries: [Entry]) -> Index? {
            for (k, entry) in newEntries.enumerated() {
                if entry.index <= snapshotIndex { continue }  // compacted: committed, so it matches
                if let existing = term(at: entry.index), existing == entry.term { continue }
                precondition(entry.index <= lastIndex + 1, "gap in the log")
                entries.removeSubrange(Int(entry.index - snapshotIndex - 1)...)
                entries.append(contentsOf: newEntries[k...])
                return entry.index
            }
            return nil
        }

        mutating func append(_ entry: Entry) {
            precondition(entry.index == lastIndex + 1)
            entries.append(entry)
        }

        /// Drops entries through `index` (which must be in the log), keeping its term.
        mutating func compact(through index: Index) {
            guard index > snapshotIndex else { return }
            precondition(index <= lastIndex, "compacting past the end of the log")
            let term = self.term(at: index)!
            entries.removeFirst(Int(index - snapshotIndex))
            snapshotIndex = index
            snapshotTerm = term
        }

        /// Replaces the whole log with a snapshot point.
        mutating func restore(index: Index, term: Term) {
            snapshotIndex = index
            snapshotTerm = term
            entries = []
        }

        /// Whether a candidate whose log ends at (lastIndex, lastTerm) is at least as
        /// up-to-date as this log (Raft §5.4.1).
        func isUpToDate(lastIndex candidateIndex: Index, lastTerm candidateTerm: Term) -> Bool {
            candidateTerm > lastTerm || (candidateTerm == lastTerm && candidateIndex >= lastIndex)
        }
    }

    /// The leader's view of one follower (etcd-io/raft's `tracker.Progress`).
    struct Progress: Sendable {
        enum State: Sendable, CustomStringConvertible {
            /// One append at a time until the follower's log position is found.
            case probe
            /// Appends are pipelined: ``next`` moves on as they are sent, up to the window.
            case replicate
            /// A snapshot is on its way; nothing else is sent until it is acknowledged.
            case snapshot
            var description: String {
                switch self {
                case .probe: "probe"
                case .replicate: "replicate"
                case .snapshot: "snapshot"
                }
            }
        }

        /// The highest index known durable and matching on the follower.
        var match: Index = 0
        /// The next index to send.
        var next: Index
        var state: State = .probe
        /// In probe state: an append is out and unanswered.
        var probeSent = false
        /// In snapshot state: the index of the snapshot sent, and ticks since it was sent.
        var pendingSnapshot: Index = 0
        var ticksSinceSnapshot = 0
        /// Last indexes of appends in flight, oldest first (the pipelining window).
        var inflight: [Index] = []
        /// Whether the follower answered since the last check-quorum round.
        var recentActive = true
        /// The leader's tick count when the follower last answered (appends or heartbeats).
        var lastContactTick: UInt64 = 0
        /// The highest read sequence it acknowledged in a heartbeat response.
        var readAcknowledged: UInt64 = 0

        init(next: Index) { self.next = next }

        func isPaused(maxInflight: Int) -> Bool {
            switch state {
            case .probe: probeSent
            case .replicate: inflight.count >= maxInflight
            case .snapshot: true
            }
        }

        mutating func becomeProbe() {
            if state == .snapshot {
                next = max(match + 1, pendingSnapshot + 1)
                pendingSnapshot = 0
            } else {
                next = match + 1
            }
            state = .probe
            probeSent = false
            inflight.removeAll()
        }

        mutating func becomeReplicate() {
            state = .replicate
            next = match + 1
            probeSent = false
            inflight.removeAll()
        }

        /// Records a successful append response; returns whether it taught anything new.
        mutating func acknowledge(_ index: Index) -> Bool {
            var updated = false
            if index > match {
                match = index
                updated = true
                probeSent = false
            }
            next = max(next, index + 1)
            if let firstKept = inflight.firstIndex(where: { $0 > index }) {
                inflight.removeFirst(firstKept)
            } else {
                inflight.removeAll()
            }
            return updated
        }
    }

    /// SplitMix64 (Steele, Lea & Flood, OOPSLA 2014): the instance's only source of randomness,
    /// seeded by the caller so that runs are reproducible.
    struct SplitMix64: RandomNumberGenerator, Sendable {
        var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }
}
