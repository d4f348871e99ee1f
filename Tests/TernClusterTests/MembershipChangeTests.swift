import Foundation
import Testing
import TernBroker
import TernCluster
import TernCore
import TernReplication
import TernStorage

/// Membership changes of a replication group, one server at a time (Raft thesis, Ongaro 2014,
/// §4.1, §4.2.1; decision 126): a node added as a learner catches up without voting, is
/// promoted once its log reaches the commit index, and then counts toward the majority; a
/// removed replica is sent nothing more. Replicas of ``ReplicatedBrokerTests`` (real LMDB
/// environments over ``LocalNetwork``); "n4" is not one of their founding voters, so it starts
/// as a spare.
@Suite(.serialized) struct MembershipChangeTests {
    typealias Node = ReplicatedBrokerTests.Node

    static func send(_ leader: Node, _ queue: QueueName, _ bodies: [String]) async throws {
        for body in bodies { _ = try await leader.replica.broker.send(queue, [OutgoingMessage(body: Array(body.utf8))]) }
    }

    @Test func anAddedNodeCatchesUp_isPromoted_andCarriesTheGroupWhenFoundingReplicasAreGone() async throws {
        var nodes = try ReplicatedBrokerTests.makeCluster()
        let network = nodes[0].network, clock = nodes[0].clock
        var leader = try await ReplicatedBrokerTests.leader(of: nodes)
        let queue = try QueueName("grow")
        _ = try await leader.replica.broker.createOrUpdateQueue(queue, patch: .init())
        var acknowledged = (0..<40).map { "before-\($0)" }
        try await Self.send(leader, queue, acknowledged)

        let spare = try Node(name: "n4", network: network, clock: clock)
        let n4 = RaftNodeID.of("n4")
        #expect(!spare.replica.group.status.voters.contains(n4), "a node outside the founding voters starts as a spare")
        let added = try await leader.replica.group.changeMembership(.addLearner(n4))
        #expect(added.learners == [n4] && added.voters.count == 3)
        nodes.append(spare)
        try await ReplicatedBrokerTests.eventually("n4 promoted to voter") {
            let status = leader.replica.group.status
            return status.voters.contains(n4) && status.learners.isEmpty
        }
        #expect(spare.replica.group.status.voters.count == 4, "the new voter applied its own promotion")

        let more = (0..<40).map { "after-\($0)" }
        try await Self.send(leader, queue, more)
        acknowledged += more
        let dumps = try await ReplicatedBrokerTests.convergedDumps(nodes)
        #expect(Set(dumps).count == 1, "the added replica holds the same state as the founders")

        // Remove one founder that does not lead, then lose another: the group of {leader or
        // survivor, n4, …} still has a majority only if n4 really votes.
        let removed = nodes.first { $0 !== leader && $0 !== spare }!
        let afterRemoval = try await leader.replica.group.changeMembership(.remove(removed.replica.group.node))
        #expect(afterRemoval.voters.count == 3 && !afterRemoval.voters.contains(removed.replica.group.node))
        let appliedAtRemoval = removed.replica.group.status.appliedIndex
        let crashed = nodes.first { $0 !== leader && $0 !== spare && $0 !== removed }!
        crashed.crash()
        let late = (0..<20).map { "late-\($0)" }
        try await Self.send(leader, queue, late)  // commits with the leader and n4 (2 of 3 voters)
        acknowledged += late
        #expect(leader.replica.group.status.commitIndex > appliedAtRemoval + 19)
        try await Task.sleep(for: .milliseconds(300))
        #expect(removed.replica.group.status.appliedIndex <= appliedAtRemoval + 1,
                "a removed replica is sent nothing past its removal")

        // Then the leader dies too: n4 and the restarted founder are a majority of the voters.
        try crashed.restart()
        try await ReplicatedBrokerTests.eventually("the restarted founder caught up") {
            crashed.replica.group.status.appliedIndex >= leader.replica.group.status.commitIndex
        }
        leader.crash()
        let survivors = [spare, crashed]
        leader = try await ReplicatedBrokerTests.leader(of: survivors)
        var delivered: [String] = []
        while true {
            let batch = try await leader.replica.broker.receive(queue, maxMessages: 10, autoAcknowledge: true)
            if batch.isEmpty { break }
            delivered += batch.map { String(decoding: $0.body, as: UTF8.self) }
        }
        #expect(delivered.sorted() == acknowledged.sorted(), "every acknowledged send is served by the new voter and the survivor")
    }

    @Test func aLearnerCutOffStaysALearner_andDoesNotCountTowardTheMajority() async throws {
        let nodes = try ReplicatedBrokerTests.makeCluster()
        let network = nodes[0].network, clock = nodes[0].clock
        let leader = try await ReplicatedBrokerTests.leader(of: nodes)
        let queue = try QueueName("learner")
        _ = try await leader.replica.broker.createOrUpdateQueue(queue, patch: .init())
        try await Self.send(leader, queue, (0..<10).map { "m\($0)" })

        let spare = try Node(name: "n4", network: network, clock: clock)
        let n4 = RaftNodeID.of("n4")
        network.isolate(n4)
        _ = try await leader.replica.group.changeMembership(.addLearner(n4))
        try await Self.send(leader, queue, (10..<30).map { "m\($0)" })  // commits without the learner
        try await Task.sleep(for: .milliseconds(500))
        var status = leader.replica.group.status
        #expect(status.learners == [n4] && !status.voters.contains(n4), "a learner that has not caught up is not promoted")

        // A voter lost now still leaves 2 of 3 voters: the learner never made the majority 3 of 4.
        let follower = nodes.first { $0 !== leader }!
        follower.crash()
        try await Self.send(leader, queue, ["while-one-voter-is-down"])

        network.heal(n4)
        try await ReplicatedBrokerTests.eventually("the learner caught up and was promoted") {
            status = leader.replica.group.status
            return status.voters.contains(n4) && spare.replica.group.status.appliedIndex >= status.commitIndex
        }
        try follower.restart()
        let dumps = try await ReplicatedBrokerTests.convergedDumps(nodes + [spare])
        #expect(Set(dumps).count == 1)
    }

    @Test func membershipChangesAreRefusedWhereTheyCannotApply() async throws {
        let nodes = try ReplicatedBrokerTests.makeCluster()
        let leader = try await ReplicatedBrokerTests.leader(of: nodes)
        let follower = nodes.first { $0 !== leader }!
        let n4 = RaftNodeID.of("n4")
        do {
            _ = try await follower.replica.group.changeMembership(.addLearner(n4))
            Issue.record("a follower accepted a membership change")
        } catch {
            #expect(error.code == .notLeader)
        }
        do {
            _ = try await leader.replica.group.changeMembership(.addLearner(follower.replica.group.node))
            Issue.record("a voter was added again")
        } catch {
            #expect(error.code == .conflict)
        }
        do {
            _ = try await leader.replica.group.changeMembership(.remove(n4))
            Issue.record("a non-member was removed")
        } catch {
            #expect(error.code == .conflict)
        }
        #expect(leader.replica.group.status.voters.count == 3, "nothing changed")
    }
}
