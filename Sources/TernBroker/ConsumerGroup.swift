public import TernCore

/// Consumer groups: members that share a topic's partitions, with Kafka's vocabulary
/// (member, generation, rebalance, committed offset).
///
/// Membership (``State``) and committed offsets are durable and change only by commands;
/// session timers and fetch positions are the coordinating node's (``Instance``).
public enum ConsumerGroup {
    /// Session timeouts a member may ask for, in seconds (default 10).
    public static let sessionTimeoutRange = 1...300
    public static let defaultSessionTimeout = 10

    /// One member of a group.
    public struct Member: Sendable, Hashable {
        public var id: String
        /// How long the member may stay silent before it is removed, in milliseconds.
        public var sessionTimeoutMilliseconds: Int64
        /// The last join, heartbeat or consume.
        public var lastSeen: Timestamp
        /// The partitions assigned in the current generation, ascending.
        public var partitions: [Int]
        /// The generation the member last learned of (by join, heartbeat or consume).
        public var knownGeneration: UInt32

        /// When the member will be removed unless it is seen again.
        public var expiresAt: Timestamp { lastSeen.adding(milliseconds: sessionTimeoutMilliseconds) }
    }

    /// What a member learns from a join, heartbeat or consume.
    public typealias Assignment = GroupAssignment

    /// What the shell must do after an event.
    public enum Directive: Sendable, Hashable {
        /// A member missed its session timeout and was removed.
        case removed(memberID: String)
        /// The assignment changed: a new generation began; `moved` partitions changed owner
        /// and resume from their committed offsets.
        case rebalanced(generation: UInt32, moved: [Int])
    }

    /// The durable state of one group on one topic: generation, members with their session
    /// timeouts and assigned partitions, and since which generation each partition has had its
    /// owner. It changes only through commands (join, leave, session expiry), applied on the
    /// writer thread and stored in the `groups` database, so that fencing an offset commit
    /// reads nothing but LMDB and every replica of the group agrees on it (Kafka's group
    /// coordinator keeps the same state in its `__consumer_offsets` log).
    public struct State: Sendable, Hashable {
        /// One member as stored: what survives a restart of the coordinating node.
        public struct MemberRecord: Sendable, Hashable {
            public var id: String
            /// How long the member may stay silent before it is removed, in milliseconds.
            public var sessionTimeoutMilliseconds: Int64
            /// The partitions assigned in the current generation, ascending.
            public var partitions: [Int]
        }

        public let partitionCount: Int
        /// Starts at 0 (no member ever joined); one more at every join, leave and expiry.
        public internal(set) var generation: UInt32 = 0
        public internal(set) var members: [String: MemberRecord] = [:]
        /// Per partition, the generation in which its current owner was assigned it.
        public internal(set) var ownedSince: [Int: UInt32] = [:]

        public init(partitionCount: Int) {
            precondition(partitionCount > 0)
            self.partitionCount = partitionCount
        }

        init(partitionCount: Int, generation: UInt32, members: [String: MemberRecord], ownedSince: [Int: UInt32]) {
            self.init(partitionCount: partitionCount)
            self.generation = generation
            self.members = members
            self.ownedSince = ownedSince
        }

        /// Whether the group has no members (it may then be reset).
        public var isEmpty: Bool { members.isEmpty }

        /// Adds `memberID`; the group rebalances. - Returns: the partitions that changed owner.
        mutating func join(memberID: String, sessionTimeoutMilliseconds: Int64) -> [Int] {
            members[memberID] = MemberRecord(id: memberID, sessionTimeoutMilliseconds: sessionTimeoutMilliseconds, partitions: [])
            return rebalance()
        }

        /// Removes the members of `memberIDs` that are in the group; the group rebalances when
        /// one was. - Returns: the partitions that changed owner, nil when nothing changed.
        mutating func remove(_ memberIDs: [String]) -> [Int]? {
            var removed = false
            for id in memberIDs where members.removeValue(forKey: id) != nil { removed = true }
            return removed ? rebalance() : nil
        }

        /// Checks that `memberID` may commit `partitions` in `generation`.
        /// - Throws: ``ErrorCode/staleGeneration`` when `generation` is not the current one;
        ///   ``ErrorCode/memberNotFound`` for an unknown member; ``ErrorCode/conflict`` when
        ///   the member does not own one of the partitions.
        public func validateCommit(memberID: String, generation: UInt32, partitions: some Sequence<Int>) throws(TernError) {
            guard generation == self.generation else {
                throw TernError(.staleGeneration, "generation \(generation) is stale: the group is at generation \(self.generation) (it rebalanced; join or heartbeat to learn the new assignment)")
            }
            guard let member = members[memberID] else {
                throw TernError(.memberNotFound, "member \(memberID) is not in the group (it left or missed its session timeout)")
            }
            for partition in partitions where !member.partitions.contains(partition) {
                throw TernError(.conflict, "member \(memberID) does not own partition \(partition) in generation \(generation)")
            }
        }

        /// Reassigns the partitions among the current members and starts a new generation.
        ///
        /// Sticky and even: member counts differ by at most one; each member keeps as many of its
        /// current partitions as its quota allows (members that hold more get the larger
        /// quotas), and only the partitions freed that way or by departed members move.
        /// - Returns: the partitions whose owner changed, ascending.
        private mutating func rebalance() -> [Int] {
            generation += 1
            let before = members.mapValues(\.partitions)
            let assignment = Instance.assign(partitionCount: partitionCount, current: before)
            for (id, partitions) in assignment { members[id]?.partitions = partitions }
            var previousOwner = [Int: String]()
            for (id, partitions) in before { for p in partitions { previousOwner[p] = id } }
            var moved = [Int]()
            for (id, partitions) in assignment {
                for p in partitions where previousOwner[p] != id { moved.append(p) }
            }
            // Partitions whose owner left and that nobody holds now (no members) moved too.
            for p in 0..<partitionCount where previousOwner[p] != nil && !assignment.values.contains(where: { $0.contains(p) }) {
                moved.append(p)
            }
            moved.sort()
            for p in moved { ownedSince[p] = generation }
            return moved
        }
    }

    /// The coordinator's view of one group: the durable ``State`` plus what only the node that
    /// coordinates the group keeps in memory — when each member was last seen (heartbeats
    /// refresh a session timer and write nothing), the generation each member last learned of,
    /// and the fetch positions of the current generation. Pure: time comes in as arguments,
    /// member ids are chosen by the caller, and every event returns what happened as
    /// ``Directive``s (the instance/shell split of STYLE.md; swift-cluster-membership's
    /// `SWIM.Instance` is the model).
    ///
    /// The broker changes ``state`` only by commands and hands the stored result to
    /// ``adopt(_:at:)``; ``onJoin(memberID:sessionTimeout:at:)``, ``onLeave(memberID:at:)`` and
    /// ``onTick(at:)`` apply the same transitions locally (a single coordinator in tests).
    public struct Instance: Sendable, Hashable {
        public private(set) var state: State
        private var lastSeen: [String: Timestamp] = [:]
        private var knownGeneration: [String: UInt32] = [:]
        /// The next offset to hand out per partition in this generation; a partition without
        /// one resumes at its committed offset.
        public private(set) var positions: [Int: UInt64] = [:]

        public init(partitionCount: Int) {
            state = State(partitionCount: partitionCount)
        }

        /// The instance of a stored group, as a coordinator that just took over (or restarted)
        /// sees it: every member's session timer starts at `now` (Kafka's coordinator does the
        /// same after a fail-over), and every partition resumes at its committed offset.
        public init(state: State, at now: Timestamp) {
            self.state = state
            for id in state.members.keys {
                lastSeen[id] = now
                knownGeneration[id] = state.generation
            }
        }

        public var partitionCount: Int { state.partitionCount }
        public var generation: UInt32 { state.generation }
        /// Per partition, the generation in which its current owner was assigned it.
        public var ownedSince: [Int: UInt32] { state.ownedSince }
        public var members: [String: Member] {
            state.members.mapValues { record in
                Member(id: record.id, sessionTimeoutMilliseconds: record.sessionTimeoutMilliseconds,
                       lastSeen: lastSeen[record.id] ?? Timestamp(milliseconds: 0), partitions: record.partitions,
                       knownGeneration: knownGeneration[record.id] ?? 0)
            }
        }

        /// Whether the group has no members (it may then be reset).
        public var isEmpty: Bool { state.isEmpty }

        /// The earliest time a member will expire, nil without members.
        public var nextDeadline: Timestamp? { members.values.map(\.expiresAt).min() }

        /// The members whose session timeout passed at `now`, by id (the shell turns them into
        /// an expiry command).
        public func expiredMembers(at now: Timestamp) -> [String] {
            members.values.filter { $0.expiresAt <= now }.map(\.id).sorted()
        }

        /// Takes over `newState`, the group's stored state after a command: members that stay
        /// keep their session timers, new ones start theirs at `now`, and partitions that
        /// changed owner lose their positions. A state older than the current one (commands
        /// answered out of order) is ignored.
        /// - Returns: whether the state was taken.
        @discardableResult
        public mutating func adopt(_ newState: State, at now: Timestamp) -> Bool {
            guard newState.generation >= state.generation, newState.partitionCount == state.partitionCount else { return false }
            for p in 0..<state.partitionCount where newState.ownedSince[p] != state.ownedSince[p] {
                positions.removeValue(forKey: p)
            }
            if newState.members.isEmpty { positions = [:] }
            var seen = [String: Timestamp]()
            var known = [String: UInt32]()
            for id in newState.members.keys {
                seen[id] = lastSeen[id] ?? now
                known[id] = knownGeneration[id] ?? newState.generation
            }
            lastSeen = seen
            knownGeneration = known
            state = newState
            return true
        }

        /// A new member joins; the group rebalances.
        /// - Parameters:
        ///   - memberID: chosen by the caller (random), unique within the group.
        ///   - sessionTimeout: seconds, within ``sessionTimeoutRange``.
        public mutating func onJoin(memberID: String, sessionTimeout: Int, at now: Timestamp) -> [Directive] {
            var directives = onTick(at: now)
            var next = state
            let moved = next.join(memberID: memberID, sessionTimeoutMilliseconds: Int64(sessionTimeout) * 1000)
            adopt(next, at: now)
            knownGeneration[memberID] = generation
            directives.append(.rebalanced(generation: generation, moved: moved))
            return directives
        }

        /// A member says it is alive (a heartbeat or a consume).
        /// - Returns: the directives (other members may have expired first) and the member's
        ///   assignment, nil when the member is unknown (never joined, left, or expired).
        public mutating func onHeartbeat(memberID: String, at now: Timestamp) -> (directives: [Directive], assignment: Assignment?) {
            let directives = onTick(at: now)
            return (directives, seen(memberID: memberID, at: now))
        }

        /// Refreshes `memberID`'s session timer without expiring anyone (the broker expires
        /// members by command first).
        /// - Returns: the member's assignment, nil when it is not a member.
        public mutating func seen(memberID: String, at now: Timestamp) -> Assignment? {
            guard let member = state.members[memberID] else { return nil }
            let changed = knownGeneration[memberID] != generation
            lastSeen[memberID] = now
            knownGeneration[memberID] = generation
            return Assignment(generation: generation, partitions: member.partitions, rebalance: changed)
        }

        /// A member leaves; the group rebalances when it was a member.
        public mutating func onLeave(memberID: String, at now: Timestamp) -> [Directive] {
            var directives = onTick(at: now)
            var next = state
            guard let moved = next.remove([memberID]) else { return directives }
            adopt(next, at: now)
            directives.append(.rebalanced(generation: generation, moved: moved))
            return directives
        }

        /// Time passes: members whose session timeout passed are removed and the group rebalances.
        public mutating func onTick(at now: Timestamp) -> [Directive] {
            let expired = expiredMembers(at: now)
            guard !expired.isEmpty else { return [] }
            var next = state
            let moved = next.remove(expired) ?? []
            adopt(next, at: now)
            return expired.map { .removed(memberID: $0) } + [.rebalanced(generation: generation, moved: moved)]
        }

        /// A member was handed messages of `partition` up to (excluding) `nextOffset`, read
        /// under its assignment of `generation`.
        ///
        /// The position moves when the member has owned the partition without interruption
        /// since `generation`, even if the group rebalanced meanwhile: a partition that stayed
        /// with its member continues where that member is (as Kafka's cooperative-sticky
        /// consumers keep their fetch position). It is ignored when the partition moved to
        /// another member since (the new owner resumes at the committed offset), and it
        /// never moves a position backwards (concurrent fetches of one member).
        public mutating func onDelivered(memberID: String, generation: UInt32, partition: Int, nextOffset: UInt64) {
            guard state.members[memberID]?.partitions.contains(partition) == true,
                  let since = ownedSince[partition], since <= generation else { return }
            positions[partition] = Swift.max(positions[partition] ?? 0, nextOffset)
        }

        /// The member read where `partition` resumes (its committed offset, or the log start)
        /// under its assignment of `generation`; later fetches continue from there without
        /// reading the committed offset again. Ignored when the partition already has a
        /// position or moved since.
        public mutating func onResumed(memberID: String, generation: UInt32, partition: Int, at offset: UInt64) {
            guard positions[partition] == nil, state.members[memberID]?.partitions.contains(partition) == true,
                  let since = ownedSince[partition], since <= generation else { return }
            positions[partition] = offset
        }

        /// The group's committed offsets were reset: every partition resumes from them.
        public mutating func onOffsetsReset() {
            positions = [:]
        }

        /// Checks that `memberID` may commit `partitions` in `generation` (see ``State/validateCommit(memberID:generation:partitions:)``).
        public func validateCommit(memberID: String, generation: UInt32, partitions: some Sequence<Int>) throws(TernError) {
            try state.validateCommit(memberID: memberID, generation: generation, partitions: partitions)
        }

        /// The sticky, even assignment of `partitionCount` partitions to the members of
        /// `current` (member id → partitions it holds now, possibly of departed members'
        /// partitions excluded). Deterministic: ties break by member id.
        public static func assign(partitionCount: Int, current: [String: [Int]]) -> [String: [Int]] {
            let ids = current.keys.sorted()
            guard !ids.isEmpty else { return [:] }
            let base = partitionCount / ids.count
            let extra = partitionCount % ids.count
            // Larger quotas go to members that hold more already, so fewer partitions move.
            let byHolding = ids.sorted { (current[$0]!.count, $1) > (current[$1]!.count, $0) }
            var quota = [String: Int]()
            for (rank, id) in byHolding.enumerated() { quota[id] = base + (rank < extra ? 1 : 0) }
            var result = [String: [Int]]()
            var taken = Set<Int>()
            for id in ids {
                let kept = current[id]!.filter { (0..<partitionCount).contains($0) && !taken.contains($0) }.sorted().prefix(quota[id]!)
                result[id] = Array(kept)
                taken.formUnion(kept)
            }
            var free = (0..<partitionCount).filter { !taken.contains($0) }[...]
            for id in ids {
                while result[id]!.count < quota[id]!, let p = free.popFirst() { result[id]!.append(p) }
                result[id]!.sort()
            }
            return result
        }
    }
}
