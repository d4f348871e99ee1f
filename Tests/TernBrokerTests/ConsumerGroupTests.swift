import Testing
import TernBroker
import TernCore
import TernStorage
import TernTestKit

/// The membership state machine alone: no storage, no clock but the times passed in.
@Suite struct ConsumerGroupInstanceTests {
    let t0 = Timestamp(milliseconds: 1_000_000)

    func counts(_ instance: ConsumerGroup.Instance) -> [Int] { instance.members.values.map(\.partitions.count).sorted() }

    func owners(_ instance: ConsumerGroup.Instance) -> [Int: String] {
        var owners = [Int: String]()
        for member in instance.members.values { for p in member.partitions { owners[p] = member.id } }
        return owners
    }

    @Test func twoThenThreeMembers_share16PartitionsEvenly_andMoveAsFewAsPossible() {
        var group = ConsumerGroup.Instance(partitionCount: 16)
        _ = group.onJoin(memberID: "a", sessionTimeout: 10, at: t0)
        #expect(counts(group) == [16])
        _ = group.onJoin(memberID: "b", sessionTimeout: 10, at: t0)
        #expect(counts(group) == [8, 8])
        #expect(group.generation == 2)
        let before = owners(group)
        let directives = group.onJoin(memberID: "c", sessionTimeout: 10, at: t0)
        #expect(counts(group) == [5, 5, 6])
        let after = owners(group)
        #expect(after.count == 16, "every partition has an owner")
        let moved = (0..<16).filter { before[$0] != after[$0] }
        #expect(moved.count == 5, "only the new member's partitions moved: \(moved)")
        #expect(directives == [.rebalanced(generation: 3, moved: moved)])
        #expect(Set(after.values) == ["a", "b", "c"])
    }

    @Test func memberThatStopsHeartbeating_losesItsPartitions_afterItsSessionTimeout() {
        var group = ConsumerGroup.Instance(partitionCount: 16)
        _ = group.onJoin(memberID: "a", sessionTimeout: 10, at: t0)
        _ = group.onJoin(memberID: "b", sessionTimeout: 10, at: t0)
        let bPartitions = group.members["b"]!.partitions
        // a keeps heartbeating, b goes silent.
        let early = group.onHeartbeat(memberID: "a", at: t0.adding(seconds: 9))
        #expect(early.directives.isEmpty)
        #expect(group.members.count == 2)
        let late = group.onHeartbeat(memberID: "a", at: t0.adding(seconds: 10))
        #expect(late.directives.first == .removed(memberID: "b"))
        #expect(late.assignment?.partitions == Array(0..<16))
        #expect(late.assignment?.rebalance == true)
        #expect(Set(bPartitions).isSubset(of: Set(late.assignment!.partitions)))
        #expect(group.onHeartbeat(memberID: "b", at: t0.adding(seconds: 11)).assignment == nil)
        // The next heartbeat reports no further change.
        #expect(group.onHeartbeat(memberID: "a", at: t0.adding(seconds: 12)).assignment?.rebalance == false)
    }

    @Test func commitFromAnOldGeneration_isStale_andOneForAForeignPartitionIsAConflict() {
        var group = ConsumerGroup.Instance(partitionCount: 4)
        _ = group.onJoin(memberID: "a", sessionTimeout: 10, at: t0)
        let old = group.generation
        _ = group.onJoin(memberID: "b", sessionTimeout: 10, at: t0)
        #expect(throws: TernError.self) { try group.validateCommit(memberID: "a", generation: old, partitions: [0]) }
        do {
            try group.validateCommit(memberID: "a", generation: old, partitions: [0])
        } catch {
            #expect(error.code == .staleGeneration)
        }
        let foreign = group.members["b"]!.partitions[0]
        do {
            try group.validateCommit(memberID: "a", generation: group.generation, partitions: [foreign])
            Issue.record("expected Conflict")
        } catch {
            #expect(error.code == .conflict)
        }
        let own = group.members["a"]!.partitions
        #expect(throws: Never.self) { try group.validateCommit(memberID: "a", generation: group.generation, partitions: own) }
    }

    @Test func rebalance_forgetsThePositionsOfMovedPartitionsOnly() {
        var group = ConsumerGroup.Instance(partitionCount: 4)
        _ = group.onJoin(memberID: "a", sessionTimeout: 10, at: t0)
        for p in 0..<4 { group.onDelivered(memberID: "a", generation: group.generation, partition: p, nextOffset: 10) }
        _ = group.onJoin(memberID: "b", sessionTimeout: 10, at: t0)
        let kept = group.members["a"]!.partitions
        #expect(Set(group.positions.keys) == Set(kept))
    }

    /// A fetch answered under the old generation, recorded after a rebalance that left the
    /// partition with its member, moves the position: otherwise the member would be handed
    /// the same messages again (the flaky loghub topic test of issue 3).
    @Test func deliveryUnderThePreviousGeneration_movesTheKeptPartitionsPosition_notAMovedOnes() {
        var group = ConsumerGroup.Instance(partitionCount: 4)
        _ = group.onJoin(memberID: "a", sessionTimeout: 10, at: t0)
        let fetchedIn = group.generation
        _ = group.onJoin(memberID: "b", sessionTimeout: 10, at: t0)
        let kept = group.members["a"]!.partitions
        let moved = group.members["b"]!.partitions
        group.onDelivered(memberID: "a", generation: fetchedIn, partition: kept[0], nextOffset: 99)
        group.onDelivered(memberID: "a", generation: fetchedIn, partition: moved[0], nextOffset: 99)
        #expect(group.positions[kept[0]] == 99)
        #expect(group.positions[moved[0]] == nil, "b resumes at the committed offset")
        // Never backwards.
        group.onDelivered(memberID: "a", generation: group.generation, partition: kept[0], nextOffset: 50)
        #expect(group.positions[kept[0]] == 99)
    }

    /// Where a newly assigned partition resumes is remembered once read, never over a position
    /// the member already has, and not for a partition that moved since.
    @Test func resumedPosition_isKeptOnce_andNotForAPartitionThatMoved() {
        var group = ConsumerGroup.Instance(partitionCount: 2)
        _ = group.onJoin(memberID: "a", sessionTimeout: 10, at: t0)
        let generation = group.generation
        group.onResumed(memberID: "a", generation: generation, partition: 0, at: 5)
        #expect(group.positions[0] == 5)
        group.onDelivered(memberID: "a", generation: generation, partition: 0, nextOffset: 9)
        group.onResumed(memberID: "a", generation: generation, partition: 0, at: 5)
        #expect(group.positions[0] == 9, "a resume does not move an existing position back")
        _ = group.onJoin(memberID: "b", sessionTimeout: 10, at: t0)
        let moved = group.members["b"]!.partitions[0]
        group.onResumed(memberID: "a", generation: generation, partition: moved, at: 3)
        #expect(group.positions[moved] == nil)
    }

    /// A partition that moved away and came back: a fetch from before it left does not count.
    @Test func deliveryFromBeforeAPartitionLeftAndReturned_isIgnored() {
        var group = ConsumerGroup.Instance(partitionCount: 2)
        _ = group.onJoin(memberID: "a", sessionTimeout: 10, at: t0)
        let fetchedIn = group.generation
        _ = group.onJoin(memberID: "b", sessionTimeout: 10, at: t0)
        let lent = group.members["b"]!.partitions[0]
        _ = group.onLeave(memberID: "b", at: t0)
        #expect(group.members["a"]!.partitions.contains(lent))
        group.onDelivered(memberID: "a", generation: fetchedIn, partition: lent, nextOffset: 7)
        #expect(group.positions[lent] == nil)
    }

    @Test(arguments: 1...12)
    func assignment_isEvenForAnyMemberCount(members: Int) {
        var group = ConsumerGroup.Instance(partitionCount: 16)
        for m in 0..<members { _ = group.onJoin(memberID: "m\(m)", sessionTimeout: 10, at: t0) }
        let sizes = counts(group)
        #expect(sizes.reduce(0, +) == 16)
        #expect(sizes.max()! - sizes.min()! <= 1)
        #expect(owners(group).count == 16)
    }
}

extension BrokerFixture {
    func join(_ topic: String, _ group: String, sessionTimeout: Int = 10) async throws -> (String, ConsumerGroup.Assignment) {
        let (member, assignment) = try await broker.joinGroup(try QueueName(topic), group: try QueueName(group), sessionTimeout: sessionTimeout)
        return (member, assignment)
    }

    func consume(_ topic: String, _ group: String, _ member: String, max: Int = 100) async throws -> Broker.GroupBatch {
        try await broker.consume(try QueueName(topic), group: try QueueName(group), memberID: member, max: max)
    }

    func commit(_ topic: String, _ group: String, _ member: String, generation: UInt32, _ offsets: [Int: UInt64]) async throws {
        try await broker.commitOffsets(try QueueName(topic), group: try QueueName(group), memberID: member, generation: generation, offsets: offsets)
    }

    func group(_ topic: String, _ group: String) async throws -> Broker.GroupInfo {
        try await broker.describeGroup(try QueueName(topic), group: try QueueName(group))
    }
}

@Suite struct ConsumerGroupTests {
    @Test func twoThenThreeMembers_share16PartitionsEvenly() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t", partitions: 16)
        let (a, _) = try await f.join("t", "g")
        let (b, bAssignment) = try await f.join("t", "g")
        var info = try await f.group("t", "g")
        #expect(info.members.map(\.partitions.count) == [8, 8])
        #expect(bAssignment.partitions.count == 8)
        let (c, _) = try await f.join("t", "g")
        info = try await f.group("t", "g")
        #expect(info.generation == 3)
        #expect(info.members.map(\.partitions.count).sorted() == [5, 5, 6])
        #expect(Set(info.members.flatMap(\.partitions)) == Set(0..<16))
        let heartbeat = try await f.broker.heartbeat(try QueueName("t"), group: try QueueName("g"), memberID: a)
        #expect(heartbeat.rebalance, "a learns of the rebalance")
        #expect(Set([a, b, c]) == Set(info.members.map(\.id)))
    }

    @Test func memberThatStopsHeartbeating_losesItsPartitions_afterTheSessionTimeout() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t", partitions: 16)
        let (a, _) = try await f.join("t", "g", sessionTimeout: 10)
        let (b, _) = try await f.join("t", "g", sessionTimeout: 10)
        f.clock.advance(bySeconds: 6)
        _ = try await f.broker.heartbeat(try QueueName("t"), group: try QueueName("g"), memberID: a)
        f.clock.advance(bySeconds: 3)
        #expect(try await f.group("t", "g").members.count == 2, "9 s: b is still within its timeout")
        f.clock.advance(bySeconds: 1)
        let info = try await f.group("t", "g")
        #expect(info.members.map(\.id) == [a])
        #expect(info.members[0].partitions == Array(0..<16))
        await #expect(throws: TernError.self) { try await f.broker.heartbeat(try QueueName("t"), group: try QueueName("g"), memberID: b) }
    }

    @Test func commitFromTheOldGeneration_is409_andDoesNotMoveTheOffset() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t", partitions: 2)
        try await f.produce("t", (0..<10).map { "m\($0)" }, partition: 0)
        let (a, first) = try await f.join("t", "g")
        try await f.commit("t", "g", a, generation: first.generation, [0: 4])
        _ = try await f.join("t", "g")
        do {
            try await f.commit("t", "g", a, generation: first.generation, [0: 8])
            Issue.record("expected StaleGeneration")
        } catch let error as TernError {
            #expect(error.code == .staleGeneration)
            #expect(error.code.httpStatus == 409)
        }
        #expect(try await f.group("t", "g").partitions[0].committed == 4)
    }

    @Test func commitBeyondTheHighWatermark_isInvalidParameter() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t")
        try await f.produce("t", ["a", "b"])
        let (a, assignment) = try await f.join("t", "g")
        await #expect(throws: TernError.self) { try await f.commit("t", "g", a, generation: assignment.generation, [0: 3]) }
        try await f.commit("t", "g", a, generation: assignment.generation, [0: 2])
        #expect(try await f.group("t", "g").partitions[0].committed == 2)
        #expect(try await f.group("t", "g").partitions[0].lag == 0)
    }

    @Test func afterARebalance_theNewOwnerStartsExactlyAtTheLastCommittedOffset() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t", partitions: 1)
        try await f.produce("t", (0..<10).map { "m\($0)" })
        let (a, assignment) = try await f.join("t", "g", sessionTimeout: 5)
        let firstBatch = try await f.consume("t", "g", a, max: 6)
        #expect(firstBatch.messages.map(\.offset) == [0, 1, 2, 3, 4, 5])
        try await f.commit("t", "g", a, generation: assignment.generation, [0: 4])  // processed 0–3 only
        let (b, _) = try await f.join("t", "g", sessionTimeout: 5)
        // a goes silent; after its timeout b owns partition 0.
        f.clock.advance(bySeconds: 3)
        _ = try await f.broker.heartbeat(try QueueName("t"), group: try QueueName("g"), memberID: b)
        f.clock.advance(bySeconds: 2)
        #expect(try await f.group("t", "g").members.map(\.id) == [b])
        let batch = try await f.consume("t", "g", b, max: 100)
        #expect(batch.assignment.partitions == [0])
        #expect(batch.messages.first?.offset == 4, "starts at the committed offset")
        #expect(batch.messages.map(\.text) == (4..<10).map { "m\($0)" })
    }

    @Test func consume_continuesFromTheGroupsPosition_withoutCommits() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t")
        try await f.produce("t", (0..<5).map { "m\($0)" })
        let (a, _) = try await f.join("t", "g")
        #expect(try await f.consume("t", "g", a, max: 3).messages.map(\.offset) == [0, 1, 2])
        #expect(try await f.consume("t", "g", a, max: 3).messages.map(\.offset) == [3, 4])
        #expect(try await f.consume("t", "g", a, max: 3).messages.isEmpty)
        #expect(try await f.group("t", "g").partitions[0].lag == 5, "nothing committed yet")
    }

    @Test func reset_isOnlyAllowedWithoutMembers_andMovesEveryPartition() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t", partitions: 2)
        try await f.produce("t", ["a", "b"], partition: 0)
        f.clock.advance(bySeconds: 10)
        let mark = f.clock.now
        try await f.produce("t", ["c"], partition: 0)
        try await f.produce("t", ["d"], partition: 1)
        let (a, _) = try await f.join("t", "g")
        await #expect(throws: TernError.self) { try await f.broker.resetGroupOffsets(try QueueName("t"), group: try QueueName("g"), to: .latest) }
        try await f.broker.leaveGroup(try QueueName("t"), group: try QueueName("g"), memberID: a)
        try await f.broker.resetGroupOffsets(try QueueName("t"), group: try QueueName("g"), to: .latest)
        #expect(try await f.group("t", "g").partitions.map(\.committed) == [3, 1])
        try await f.broker.resetGroupOffsets(try QueueName("t"), group: try QueueName("g"), to: .timestamp(mark))
        #expect(try await f.group("t", "g").partitions.map(\.committed) == [2, 0])
        try await f.broker.resetGroupOffsets(try QueueName("t"), group: try QueueName("g"), to: .earliest)
        #expect(try await f.group("t", "g").partitions.map(\.committed) == [0, 0])
    }

    @Test func committedOffsetsAndMembers_surviveARestart() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t")
        try await f.produce("t", ["a", "b", "c"])
        let (a, assignment) = try await f.join("t", "g")
        try await f.commit("t", "g", a, generation: assignment.generation, [0: 2])
        try await f.reopen()
        // The member survives the restart (its session timer restarts) and resumes at the committed offset.
        #expect(try await f.consume("t", "g", a).messages.map(\.text) == ["c"])
        // Once its session lapses, a new member takes the partition from the committed offset.
        f.clock.advance(bySeconds: 11)
        let (b, assignmentB) = try await f.join("t", "g")
        #expect(assignmentB.partitions == [0])
        #expect(try await f.consume("t", "g", b).messages.map(\.text) == ["c"])
    }

    @Test func longPollingConsume_isWokenByAProduceToAnOwnedPartition() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t", partitions: 4)
        let (a, _) = try await f.join("t", "g", sessionTimeout: 60)
        let broker = f.broker
        let waiter = Task { try await broker.consume(try QueueName("t"), group: try QueueName("g"), memberID: a, max: 10, waitTime: 20) }
        await f.clock.waitForSleepers(count: 1)
        try await f.produce("t", ["hello"], partition: 3)
        #expect(try await waiter.value.messages.map(\.text) == ["hello"])
    }
}
