extension Raft {
    /// One message between two members of a group (Raft figure 2, with pre-vote from thesis
    /// §9.6, TimeoutNow from thesis §3.10 and ReadIndex from thesis §6.4).
    ///
    /// ``term`` is the sender's term when it created the message, except for a pre-vote, which
    /// carries the term the sender *would* campaign in (its own plus one), and a granted
    /// pre-vote response, which echoes that term. Encode with ``encode()``; decode with
    /// ``init(decoding:)``.
    public struct Message: Sendable, Hashable, CustomStringConvertible {
        public var from: NodeID
        public var to: NodeID
        public var term: Term
        public var kind: Kind

        public init(from: NodeID, to: NodeID, term: Term, kind: Kind) {
            self.from = from
            self.to = to
            self.term = term
            self.kind = kind
        }

        /// The request or response a message carries.
        public enum Kind: Sendable, Hashable {
            /// "Would you vote for me?" without changing anyone's term (thesis §9.6).
            case preVote(lastIndex: Index, lastTerm: Term)
            case preVoteResponse(granted: Bool)
            /// RequestVote (Raft §5.2, §5.4.1). `transfer` marks an election started by
            /// TimeoutNow, which voters honour even while they hear from a leader (thesis §3.10).
            case vote(lastIndex: Index, lastTerm: Term, transfer: Bool)
            case voteResponse(granted: Bool)
            /// AppendEntries (Raft §5.3): entries after (prevIndex, prevTerm), and the leader's commit.
            case append(prevIndex: Index, prevTerm: Term, entries: [Entry], commit: Index)
            /// Success: the follower's log matches the leader's through `index`, durably.
            /// Rejection: `index` is the rejected prevIndex; (`hintIndex`, `hintTerm`) is the
            /// follower's last entry at or before it with a term ≤ the leader's prevTerm, so the
            /// leader can skip a whole term at once (Raft §5.3, "fast back-off").
            case appendResponse(index: Index, reject: Bool, hintIndex: Index, hintTerm: Term)
            /// A heartbeat (an empty AppendEntries, Raft §5.2) carrying the commit index the
            /// follower is known to have and the leader's latest read sequence (thesis §6.4).
            case heartbeat(commit: Index, readSequence: UInt64)
            case heartbeatResponse(readSequence: UInt64)
            /// InstallSnapshot (Raft §7), sent whole; answered with an append response.
            case snapshot(Snapshot)
            /// "Start an election now" from a leader handing over leadership (thesis §3.10).
            case timeoutNow
            /// A follower asks the leader for a read index on behalf of its client (thesis §6.4).
            case readIndex(requestID: UInt64)
            /// The leader's answer: the read may be served once `index` is applied.
            case readIndexResponse(requestID: UInt64, index: Index)
        }

        public var description: String {
            let body: String
            switch kind {
            case .preVote(let i, let t): body = "preVote(last \(i)@\(t))"
            case .preVoteResponse(let g): body = "preVoteResponse(\(g ? "granted" : "rejected"))"
            case .vote(let i, let t, let tr): body = "vote(last \(i)@\(t)\(tr ? ", transfer" : ""))"
            case .voteResponse(let g): body = "voteResponse(\(g ? "granted" : "rejected"))"
            case .append(let pi, let pt, let e, let c):
                body = "append(prev \(pi)@\(pt), \(e.count) entries\(e.isEmpty ? "" : " \(e.first!.index)…\(e.last!.index)"), commit \(c))"
            case .appendResponse(let i, let r, let hi, let ht):
                body = r ? "appendResponse(reject \(i), hint \(hi)@\(ht))" : "appendResponse(match \(i))"
            case .heartbeat(let c, let s): body = "heartbeat(commit \(c), read \(s))"
            case .heartbeatResponse(let s): body = "heartbeatResponse(read \(s))"
            case .snapshot(let s): body = "snapshot(\(s.metadata.index)@\(s.metadata.term), \(s.data.count) B)"
            case .timeoutNow: body = "timeoutNow"
            case .readIndex(let id): body = "readIndex(\(id))"
            case .readIndexResponse(let id, let i): body = "readIndexResponse(\(id), index \(i))"
            }
            return "\(from)→\(to) t\(term) \(body)"
        }
    }
}
