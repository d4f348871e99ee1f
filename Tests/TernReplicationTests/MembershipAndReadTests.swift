import Testing
import TernReplication

@Suite struct SnapshotTests {
    @Test func laggingFollower_whoseNextEntryIsCompacted_installsTheSnapshotThenCatchesUp() throws {
        let c = try TestCluster([1, 2, 3])
        c.campaign(1)
        c.tickAll(3)
        c.isolate(3)
        for k in 0..<10 { try c.nodes[1]!.propose([.text("e\(k)")]) }
        c.deliver()
        c.tickAll(3)
        let applied = c[1].appliedIndex
        #expect(applied == 11)
        c.nodes[1]!.compact(through: applied, data: .text("state@\(applied)"))
        c.processAll()
        #expect(c[1].snapshotIndex == applied)
        #expect(c.disks[1]!.snapshot?.metadata.index == applied)
        #expect(c.disks[1]!.entries.isEmpty, "the compacted entries left the disk")
        try c.nodes[1]!.propose([.text("after")])
        c.heal()
        c.tickAll(8)
        #expect(c.installedSnapshots[3]?.map(\.metadata.index) == [applied])
        #expect(c.installedSnapshots[3]?.first?.data == .text("state@\(applied)"))
        #expect(c[3].snapshotIndex == applied)
        #expect(c[3].lastIndex == c[1].lastIndex)
        #expect(c.appliedPayloads(3) == [.text("after")], "entries after the snapshot are applied normally")
        #expect(c[3].configuration == c[1].configuration)
    }

    @Test func restart_afterCompaction_startsFromTheSnapshot() throws {
        let c = try TestCluster([1, 2, 3])
        c.campaign(1)
        for k in 0..<5 { try c.nodes[1]!.propose([.text("e\(k)")]) }
        c.deliver()
        c.tickAll(3)
        c.nodes[2]!.compact(through: 4, data: .text("s4"))
        c.processAll()
        c.crash(2)
        try c.restart(2)
        #expect(c[2].snapshotIndex == 4)
        #expect(c[2].lastIndex == 6)
        #expect(c[2].appliedIndex == 4)
        c.tickAll(4)
        #expect(c.appliedPayloads(2) == [.text("e3"), .text("e4")])
    }
}

@Suite struct MembershipTests {
    /// The leader's own view of who answers (what `tern cluster remove` checks besides gossip).
    @Test func ticksSinceContact_growOnlyForAFollowerThatStoppedAnswering() throws {
        let c = try TestCluster([1, 2, 3])
        c.campaign(1)
        c.tickAll(3)
        #expect(c.nodes[1]!.ticksSinceContact(with: 1) == 0)
        #expect((c.nodes[1]!.ticksSinceContact(with: 2) ?? 99) <= 3)
        #expect(c.nodes[2]!.ticksSinceContact(with: 3) == nil, "only the leader knows")
        c.isolate(3)
        c.tickAll(12)
        #expect((c.nodes[1]!.ticksSinceContact(with: 2) ?? 99) <= 3, "a follower that answers stays fresh")
        #expect((c.nodes[1]!.ticksSinceContact(with: 3) ?? 0) >= 10, "an isolated one ages with every tick")
        #expect(c.nodes[1]!.ticksSinceContact(with: 9) == nil, "not a member")
    }

    @Test func learner_catchesUpWithoutVoting_thenIsPromoted() throws {
        let c = try TestCluster([1, 2, 3], extra: [4])
        c.campaign(1)
        for k in 0..<5 { try c.nodes[1]!.propose([.text("e\(k)")]) }
        c.deliver()
        c.tickAll(3)
        // Node 4 joins as a learner while cut off: it cannot be promoted before catching up.
        c.isolate(4)
        try c.nodes[1]!.proposeConfigurationChange(.addLearner(4))
        c.deliver()
        c.tickAll(3)
        #expect(c[1].configuration.learners == [4])
        #expect(c[1].configuration.quorum == 2, "a learner does not change the quorum")
        #expect {
            try c.nodes[1]!.proposeConfigurationChange(.promote(4))
        } throws: { ($0 as! ReplicationError).code == .learnerNotCaughtUp }
        c.heal()
        c.tickAll(6)
        #expect(c[4].lastIndex == c[1].lastIndex)
        #expect(c.appliedPayloads(4).count == 5)
        #expect(!c[4].isPromotable)
        c.tick(4, 200)
        #expect(c[4].role == .follower, "a learner never campaigns")
        try c.nodes[1]!.proposeConfigurationChange(.promote(4))
        c.deliver()
        c.tickAll(3)
        for id: Raft.NodeID in [1, 2, 3, 4] {
            #expect(c[id].configuration.voters == [1, 2, 3, 4], "node \(id)")
        }
        #expect(c[4].isPromotable)
        // With 4 voters a quorum is 3: with two cut off, nothing commits.
        c.isolate(3)
        c.isolate(4)
        let before = c[1].commitIndex
        try c.nodes[1]!.propose([.text("needs3")])
        c.deliver()
        #expect(c[1].commitIndex == before)
    }

    @Test func secondChange_beforeTheFirstCommits_isRefused() throws {
        let c = try TestCluster([1, 2, 3], extra: [4, 5])
        c.campaign(1)
        c.tickAll(3)
        c.isolate(1)
        try c.nodes[1]!.proposeConfigurationChange(.addLearner(4))
        #expect {
            try c.nodes[1]!.proposeConfigurationChange(.addLearner(5))
        } throws: { ($0 as! ReplicationError).code == .configurationChangeInProgress }
        #expect {
            try c.nodes[1]!.proposeConfigurationChange(.remove(3))
        } throws: { ($0 as! ReplicationError).code == .configurationChangeInProgress }
    }

    @Test func addingAVoterDirectly_isRefused_learnerFirst() throws {
        let c = try TestCluster([1, 2, 3], extra: [4])
        c.campaign(1)
        c.tickAll(3)
        #expect {
            try c.nodes[1]!.proposeConfigurationChange(.promote(4))
        } throws: { ($0 as! ReplicationError).code == .invalidConfigurationChange }
    }

    @Test func leaderRemovingItself_stepsDownOnceTheChangeCommits() throws {
        let c = try TestCluster([1, 2, 3])
        c.campaign(1)
        c.tickAll(3)
        try c.nodes[1]!.proposeConfigurationChange(.remove(1))
        #expect(c[1].role == .leader, "still leads until the change commits (thesis §4.2.2)")
        c.deliver()
        #expect(c[1].role == .follower)
        #expect(!c[1].isPromotable)
        for _ in 0..<200 where c.leaders.isEmpty { c.tickAll(1) }
        #expect(c.leaders.count == 1 && c.leaders[0] != 1)
    }

    @Test func truncatedConfigurationEntry_revertsTheConfiguration() throws {
        let c = try TestCluster([1, 2, 3], settings: Raft.Settings().with { $0.checkQuorum = false }, extra: [4])
        c.campaign(1)
        c.tickAll(3)
        c.isolate(1)
        try c.nodes[1]!.proposeConfigurationChange(.addLearner(4))
        #expect(c[1].configuration.learners == [4], "in effect once appended (thesis §4.1)")
        c.dropAll()
        c.campaign(2)
        c.heal()
        c.tickAll(6)
        #expect(c[1].configuration.learners.isEmpty, "the uncommitted change was replaced")
    }
}

@Suite struct LeadershipTransferTests {
    @Test func transfer_toAnUpToDateFollower_electsItWithoutWaitingForATimeout() throws {
        let c = try TestCluster([1, 2, 3])
        c.campaign(1)
        c.tickAll(3)
        try c.nodes[1]!.transferLeadership(to: 2)
        c.deliver()
        #expect(c.leaders == [2])
        #expect(c[2].term == 2)
        #expect(c.sent.contains { if case .timeoutNow = $0.kind { return $0.to == 2 }; return false })
    }

    @Test func transfer_toALaggingFollower_firstCatchesItUp_andRefusesProposalsMeanwhile() throws {
        let c = try TestCluster([1, 2, 3])
        c.campaign(1)
        c.tickAll(3)
        c.isolate(3)
        for k in 0..<5 { try c.nodes[1]!.propose([.text("e\(k)")]) }
        c.deliver()
        try c.nodes[1]!.transferLeadership(to: 3)
        #expect {
            try c.nodes[1]!.propose([.text("during")])
        } throws: { ($0 as! ReplicationError).code == .leadershipTransferInProgress }
        c.heal()
        c.tickAll(4)
        #expect(c.leaders == [3])
        #expect(c[3].lastIndex >= 6)
    }

    @Test func transfer_toAnUnreachableNode_isAbandonedAfterAnElectionTimeout() throws {
        let c = try TestCluster([1, 2, 3])
        c.campaign(1)
        c.tickAll(3)
        c.cut.insert([1, 3])
        try c.nodes[1]!.transferLeadership(to: 3)
        c.tickAll(c.settings.electionTimeoutMinTicks + 1)
        #expect(c[1].leadershipTransferee == nil)
        #expect(c.leaders == [1])
        try c.nodes[1]!.propose([.text("resumed")])
    }
}

@Suite struct ReadIndexTests {
    @Test func read_onTheLeader_isConfirmedByAHeartbeatQuorum_withoutALogWrite() throws {
        let c = try TestCluster([1, 2, 3])
        c.campaign(1)
        try c.nodes[1]!.propose([.text("a")])
        c.deliver()
        let last = c[1].lastIndex
        try c.nodes[1]!.requestRead(id: 7)
        c.processAll()
        #expect(c.reads[1, default: []].isEmpty, "not before a quorum confirmed the leadership")
        c.deliver()
        #expect(c.reads[1] == [Raft.ReadState(requestID: 7, index: c[1].commitIndex)])
        #expect(c[1].lastIndex == last, "no entry was written for the read")
    }

    @Test func read_onALeaderCutOffFromTheMajority_isNeverConfirmed() throws {
        let c = try TestCluster([1, 2, 3], settings: Raft.Settings().with { $0.checkQuorum = false })
        c.campaign(1)
        c.tickAll(3)
        c.isolate(1)
        try c.nodes[1]!.requestRead(id: 1)
        c.tickAll(20)
        #expect(c.reads[1, default: []].isEmpty, "a deposed leader must not serve a stale read")
    }

    @Test func read_onAFollower_isForwardedAndAnsweredWithTheLeadersCommitIndex() throws {
        let c = try TestCluster([1, 2, 3])
        c.campaign(1)
        try c.nodes[1]!.propose([.text("a")])
        c.deliver()
        try c.nodes[3]!.requestRead(id: 42)
        c.deliver()
        #expect(c.reads[3] == [Raft.ReadState(requestID: 42, index: c[1].commitIndex)])
    }

    @Test func read_onANewLeader_waitsUntilItsFirstEntryCommits() throws {
        let c = try TestCluster([1, 2, 3])
        c.elect(1, where: { m in
            switch m.kind {
            case .preVote, .preVoteResponse, .vote, .voteResponse: true
            default: false
            }
        })
        #expect(c.leaders == [1])
        try c.nodes[1]!.requestRead(id: 5)
        c.processAll()
        #expect(c.reads[1, default: []].isEmpty)
        c.deliver()
        #expect(c.reads[1] == [Raft.ReadState(requestID: 5, index: 1)])
    }

    @Test func read_withNoLeaderKnown_isRefused() throws {
        let c = try TestCluster([1, 2, 3])
        #expect {
            try c.nodes[2]!.requestRead(id: 1)
        } throws: { ($0 as! ReplicationError).code == .notLeader }
    }
}
