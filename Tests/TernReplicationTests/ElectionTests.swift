import Testing
import TernReplication

@Suite struct ElectionTests {
    @Test func election_threeNodes_oneLeaderWhoseNoopCommitsEverywhere() throws {
        let c = try TestCluster([1, 2, 3])
        c.campaign(1)
        #expect(c.leaders == [1])
        #expect(c[1].term == 1)
        #expect(c[2].leader == 1 && c[3].leader == 1)
        c.tickAll(3)  // a heartbeat carries the commit index to the followers
        for id: Raft.NodeID in [1, 2, 3] {
            #expect(c[id].commitIndex == 1, "node \(id)")
            #expect(c.applied[id]?.map(\.index) == [1])
        }
        // Persisted before sending: each node's disk holds its vote for term 1.
        #expect(c.disks[2]!.hardState.vote == 1 && c.disks[2]!.hardState.term == 1)
    }

    /// `campaign()` (etcd's `Campaign`): a new queue group's preferred replica is elected
    /// without waiting out an election timeout; on a leader, or a node outside the
    /// configuration, it does nothing.
    @Test func campaign_electsAtOnce_withoutATick_andDoesNothingOnALeaderOrANonMember() throws {
        let c = try TestCluster([1, 2, 3], extra: [4])
        c.nodes[2]!.campaign()
        c.deliver()
        #expect(c.leaders == [2], "elected with no tick at all")
        #expect(c[2].term == 1)
        c.nodes[2]!.campaign()
        c.deliver()
        #expect(c.leaders == [2] && c[2].term == 1, "a leader's campaign changes nothing")
        c.nodes[4]!.campaign()
        c.deliver()
        #expect(c[4].role == .follower && c[4].term <= 1, "a node outside the configuration does not campaign")
        #expect(c.leaders == [2])
    }

    @Test func splitVote_noLeaderInTheTerm_thenRandomizedTimeoutsElectOne() throws {
        let c = try TestCluster([1, 2, 3, 4], settings: Raft.Settings().with { $0.preVote = false })
        // 1 and 2 campaign at once; 3 hears 1 first, 4 hears 2 first: 2 votes each of 4.
        c.processAll()
        while c[1].role == .follower { c[1].tick() }
        while c[2].role == .follower { c[2].tick() }
        c.processAll()
        c.deliver { m in
            if case .vote = m.kind { return (m.from == 1 && m.to == 3) || (m.from == 2 && m.to == 4) }
            return false
        }
        c.deliver { m in
            if case .vote = m.kind { return true }
            return true
        }
        #expect(c.leaders.isEmpty)
        #expect(c[1].role == .candidate && c[2].role == .candidate)
        #expect(c[1].term == 1 && c[2].term == 1)
        // Time passes for everyone: randomized timeouts make one candidate try first.
        for _ in 0..<200 where c.leaders.isEmpty { c.tickAll(1) }
        #expect(c.leaders.count == 1)
        #expect(c[c.leaders[0]].term >= 2)
    }

    @Test func preVote_rejoiningNode_doesNotDisruptTheLeader() throws {
        let c = try TestCluster([1, 2, 3])
        c.campaign(1)
        c.tickAll(3)
        c.isolate(3)
        // Node 3 times out again and again while cut off; with pre-vote its term stays.
        for _ in 0..<300 { c.tick(3); c.tickAll(1) }
        #expect(c[3].term == 1)
        #expect(c[3].role == .preCandidate || c[3].role == .follower)
        c.heal()
        for _ in 0..<20 { c.tickAll(1) }
        #expect(c.leaders == [1])
        #expect(c[1].term == 1)
        #expect(c[3].leader == 1)
    }

    @Test func withoutPreVote_rejoiningNode_deposesTheLeader() throws {
        // The contrast that shows what pre-vote prevents.
        let c = try TestCluster([1, 2, 3], settings: Raft.Settings().with { $0.preVote = false; $0.checkQuorum = false })
        c.campaign(1)
        c.tickAll(3)
        c.isolate(3)
        for _ in 0..<300 { c.tick(3); c.dropAll() }
        #expect(c[3].term > 3)
        c.heal()
        c.tickAll(4)
        #expect(c[1].term > 1, "the leader saw node 3's higher term and stepped down")
    }

    @Test func removedNode_campaigningWithAHigherTerm_isIgnoredInsideTheLease() throws {
        // Without pre-vote, only the leader lease (check-quorum) protects the group from a
        // server that was removed while cut off and keeps raising its term (thesis §4.2.3).
        let c = try TestCluster([1, 2, 3], settings: Raft.Settings().with { $0.preVote = false })
        c.campaign(1)
        c.tickAll(3)
        c.isolate(3)
        try c.nodes[1]!.proposeConfigurationChange(.remove(3))
        c.deliver()
        c.tickAll(3)
        #expect(c[1].configuration.voters == [1, 2])
        c.tick(3, 200)
        #expect(c[3].term > 2)
        c.heal()
        c.deliver()
        c.tickAll(10)
        #expect(c.leaders == [1] && c[1].term == 1)
        #expect(c[2].term == 1)
    }

    @Test func checkQuorum_leaderCutOffFromMajority_stepsDownWithinAnElectionTimeout() throws {
        let c = try TestCluster([1, 2, 3])
        c.campaign(1)
        c.tickAll(3)
        c.isolate(1)
        var ticks = 0
        while c[1].role == .leader && ticks < 1000 {
            c.tick(1)
            ticks += 1
        }
        #expect(c[1].role == .follower)
        #expect(ticks <= 2 * c.settings.electionTimeoutMinTicks)
        #expect(throws: ReplicationError.self) { try c.nodes[1]!.propose([.text("x")]) }
    }

    @Test func withoutCheckQuorum_isolatedLeader_staysLeader() throws {
        let c = try TestCluster([1, 2, 3], settings: Raft.Settings().with { $0.checkQuorum = false })
        c.campaign(1)
        c.isolate(1)
        c.tick(1, 500)
        #expect(c[1].role == .leader)
    }

    @Test func staleLeader_learnsTheNewTermFromAFollowersAnswer_andStepsDown() throws {
        let c = try TestCluster([1, 2, 3], settings: Raft.Settings().with { $0.checkQuorum = false })
        c.campaign(1)
        c.tickAll(3)
        c.isolate(1)
        for _ in 0..<100 where c[2].role != .leader && c[3].role != .leader { c.tick(2); c.tick(3); c.deliver() }
        #expect(c[2].role == .leader || c[3].role == .leader)
        c.heal()
        c.tick(1, 3)  // the old leader heartbeats; the answer carries the newer term
        c.deliver()
        #expect(c[1].role == .follower)
        #expect(c.leaders.count == 1)
    }

    @Test func vote_forACandidateWithAShorterLog_isRefused() throws {
        let c = try TestCluster([1, 2, 3], settings: Raft.Settings().with { $0.preVote = false; $0.checkQuorum = false })
        c.campaign(1)
        c.tickAll(3)
        c.isolate(3)
        try c.nodes[1]!.propose([.text("a")])
        c.deliver()
        c.heal()
        c.dropAll()
        while c[3].role == .follower { c[3].tick() }
        c.deliver { m in
            switch m.kind {
            case .vote, .voteResponse: return true
            default: return false
            }
        }
        #expect(c[3].role != .leader)
        let refusals = c.sent.filter { m in
            if case .voteResponse(false) = m.kind { return m.to == 3 }
            return false
        }
        #expect(refusals.count == 2)
    }
}
