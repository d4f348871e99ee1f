public import TernCore

/// Consumer groups: members that share a topic's partitions, with Kafka's vocabulary
/// (member, generation, rebalance, committed offset).
///
/// Membership lives in memory (members re-join after a restart, as Kafka consumers do after a
/// coordinator fail-over); committed offsets are durable (``TopicStore/commit(topic:group:offsets:at:in:)``).
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

    /// The state machine of one group on one topic: membership, generation, assignment and
    /// fetch positions. Pure: time comes in as arguments, member ids are chosen by the caller,
    /// and every event returns what happened as ``Directive``s (the instance/shell split of
    /// STYLE.md; swift-cluster-membership's `SWIM.Instance` is the model).
    public struct Instance: Sendable, Hashable {
        public let partitionCount: Int
        public private(set) var generation: UInt32 = 0
        public private(set) var members: [String: Member] = [:]
        /// The next offset to hand out per partition in this generation; a partition without
        /// one resumes at its committed offset.
        public private(set) var positions: [Int: UInt64] = [:]
        /// Per partition, the generation in which its current owner was assigned it.
        public private(set) var ownedSince: [Int: UInt32] = [:]

        public init(partitionCount: Int) {
            precondition(partitionCount > 0)
            self.partitionCount = partitionCount
        }

        /// Whether the group has no members (it may then be reset).
        public var isEmpty: Bool { members.isEmpty }

        /// The earliest time a member will expire, nil without members.
        public var nextDeadline: Timestamp? { members.values.map(\.expiresAt).min() }

        /// A new member joins; the group rebalances.
        /// - Parameters:
        ///   - memberID: chosen by the caller (random), unique within the group.
        ///   - sessionTimeout: seconds, within ``sessionTimeoutRange``.
        public mutating func onJoin(memberID: String, sessionTimeout: Int, at now: Timestamp) -> [Directive] {
            var directives = onTick(at: now)
            members[memberID] = Member(id: memberID, sessionTimeoutMilliseconds: Int64(sessionTimeout) * 1000, lastSeen: now,
                                       partitions: [], knownGeneration: 0)
            directives += rebalance()
            members[memberID]?.knownGeneration = generation
            return directives
        }

        /// A member says it is alive (a heartbeat or a consume).
        /// - Returns: the directives (other members may have expired first) and the member's
        ///   assignment, nil when the member is unknown (never joined, left, or expired).
        public mutating func onHeartbeat(memberID: String, at now: Timestamp) -> (directives: [Directive], assignment: Assignment?) {
            let directives = onTick(at: now)
            guard var member = members[memberID] else { return (directives, nil) }
            let changed = member.knownGeneration != generation
            member.lastSeen = now
            member.knownGeneration = generation
            members[memberID] = member
            return (directives, Assignment(generation: generation, partitions: member.partitions, rebalance: changed))
        }

        /// A member leaves; the group rebalances when it was a member.
        public mutating func onLeave(memberID: String, at now: Timestamp) -> [Directive] {
            var directives = onTick(at: now)
            guard members.removeValue(forKey: memberID) != nil else { return directives }
            directives += rebalance()
            return directives
        }

        /// Time passes: members whose session timeout passed are removed and the group rebalances.
        public mutating func onTick(at now: Timestamp) -> [Directive] {
            let expired = members.values.filter { $0.expiresAt <= now }.map(\.id).sorted()
            guard !expired.isEmpty else { return [] }
            for id in expired { members.removeValue(forKey: id) }
            return expired.map { .removed(memberID: $0) } + rebalance()
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
            guard members[memberID]?.partitions.contains(partition) == true,
                  let since = ownedSince[partition], since <= generation else { return }
            positions[partition] = Swift.max(positions[partition] ?? 0, nextOffset)
        }

        /// The member read where `partition` resumes (its committed offset, or the log start)
        /// under its assignment of `generation`; later fetches continue from there without
        /// reading the committed offset again. Ignored when the partition already has a
        /// position or moved since.
        public mutating func onResumed(memberID: String, generation: UInt32, partition: Int, at offset: UInt64) {
            guard positions[partition] == nil, members[memberID]?.partitions.contains(partition) == true,
                  let since = ownedSince[partition], since <= generation else { return }
            positions[partition] = offset
        }

        /// The group's committed offsets were reset: every partition resumes from them.
        public mutating func onOffsetsReset() {
            positions = [:]
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
        private mutating func rebalance() -> [Directive] {
            generation += 1
            let before = members.mapValues(\.partitions)
            let assignment = Self.assign(partitionCount: partitionCount, current: before)
            var moved = [Int]()
            for (id, partitions) in assignment { members[id]?.partitions = partitions }
            var previousOwner = [Int: String]()
            for (id, partitions) in before { for p in partitions { previousOwner[p] = id } }
            for (id, partitions) in assignment {
                for p in partitions where previousOwner[p] != id { moved.append(p) }
            }
            // Partitions whose owner left and that nobody holds now (no members) moved too.
            for p in 0..<partitionCount where previousOwner[p] != nil && !assignment.values.contains(where: { $0.contains(p) }) {
                moved.append(p)
            }
            moved.sort()
            for p in moved {
                positions.removeValue(forKey: p)
                ownedSince[p] = generation
            }
            if members.isEmpty { positions = [:] }
            return [.rebalanced(generation: generation, moved: moved)]
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
