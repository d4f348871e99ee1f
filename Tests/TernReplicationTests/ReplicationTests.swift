import Testing
@_spi(Testing) import TernReplication

@Suite struct ReplicationTests {
    @Test func propose_onLeader_commitsOnAMajorityAndEveryoneAppliesInOrder() throws {
        let c = try TestCluster([1, 2, 3])
        c.campaign(1)
        let range = try c.nodes[1]!.propose([.text("a"), .text("b")])
        #expect(range == 2...3)
        c.deliver()
        c.tickAll(3)
        for id: Raft.NodeID in [1, 2, 3] {
            #expect(c.appliedPayloads(id) == [.text("a"), .text("b")], "node \(id)")
        }
    }

    @Test func propose_onFollower_isRefusedWithTheLeaderAsHint() throws {
        let c = try TestCluster([1, 2, 3])
        c.campaign(1)
        #expect {
            try c.nodes[2]!.propose([.text("x")])
        } throws: { error in
            let e = error as! ReplicationError
            return e.code == .notLeader && e.leaderHint == 1
        }
    }

    @Test func leaderEntry_doesNotCommit_untilTheLeaderItselfPersistedIt() throws {
        let c = try TestCluster([1, 2, 3])
        c.campaign(1)
        c.tickAll(3)
        c.isolate(3)
        c.holdPersistence.insert(1)
        try c.nodes[1]!.propose([.text("a")])
        // The leader's disk is slow: it hands out the entry and its appends, then waits.
        var ready = c.nodes[1]!.ready()!
        #expect(ready.entries.map(\.index) == [2])
        c.network.append(contentsOf: ready.messages)
        c.deliver()
        // Node 2 persisted and acknowledged; the leader has not persisted: 1 of 3 durable copies
        // is not a majority once the leader is counted only after its own fsync.
        #expect(c[1].replicationProgress(of: 2)?.match == 2)
        #expect(c[1].commitIndex == 1)
        c.nodes[1]!.onPersisted(upTo: 2, term: 1)
        #expect(c[1].commitIndex == 2)
        ready = c.nodes[1]!.ready()!
        #expect(ready.committedEntries.map(\.index) == [2])
    }

    @Test func withThePlantedBug_theLeaderCommitsBeforeItsOwnSync() throws {
        let c = try TestCluster([1, 2, 3])
        c.campaign(1)
        c.tickAll(3)
        c.isolate(3)
        c.nodes[1]!.plantedBugs.countUnpersistedEntries = true
        c.holdPersistence.insert(1)
        try c.nodes[1]!.propose([.text("a")])
        let ready = c.nodes[1]!.ready()!
        c.network.append(contentsOf: ready.messages)
        c.deliver()
        #expect(c[1].commitIndex == 2, "the bug this rule prevents: one durable copy of three counted as a majority")
    }

    @Test func follower_acknowledgesAnAppend_inTheSameReadyThatPersistsIt() throws {
        let c = try TestCluster([1, 2, 3])
        c.campaign(1)
        try c.nodes[1]!.propose([.text("a")])
        c.processAll()
        let append = c.network.first { $0.to == 2 }!
        c.network.removeAll()
        c.nodes[2]!.step(append)
        let ready = c.nodes[2]!.ready()!
        #expect(ready.entries.map(\.index) == [2])
        let acknowledgements = ready.messages.filter {
            if case .appendResponse(2, false, _, _) = $0.kind { return true }
            return false
        }
        #expect(acknowledgements.count == 1, "sent only after the entries of this ready are durable")
    }

    @Test func conflictingSuffix_isTruncatedAndReplacedByTheNewLeadersLog() throws {
        let c = try TestCluster([1, 2, 3], settings: Raft.Settings().with { $0.checkQuorum = false })
        c.campaign(1)
        c.tickAll(3)
        // Leader 1 appends three entries nobody else receives.
        c.isolate(1)
        try c.nodes[1]!.propose([.text("lost1"), .text("lost2"), .text("lost3")])
        c.dropAll()
        // 2 becomes leader of term 2 and commits two other entries.
        c.campaign(2)
        #expect(c.leaders.contains(2))
        try c.nodes[2]!.propose([.text("kept1"), .text("kept2")])
        c.deliver()
        c.heal()
        c.tickAll(6)
        #expect(c.leaders == [2])
        #expect(c[1].lastIndex == c[2].lastIndex)
        for index in 1...c[2].lastIndex {
            #expect(c[1].term(at: index) == c[2].term(at: index), "index \(index)")
        }
        #expect(c.appliedPayloads(1) == [.text("kept1"), .text("kept2")])
        #expect(!c.disks[1]!.entries.contains { $0.payload == .text("lost1") }, "the stored suffix was replaced")
    }

    @Test func fastBackoff_skipsAWholeConflictingTermInOneRejection() throws {
        let c = try TestCluster([1, 2, 3], settings: Raft.Settings().with { $0.checkQuorum = false })
        c.campaign(1)
        c.tickAll(3)
        // Node 1 leads term 1 alone and appends 50 entries nobody else gets.
        c.isolate(1)
        try c.nodes[1]!.propose((0..<50).map { .text("stale\($0)") })
        c.dropAll()
        // Nodes 2 and 3 move on: 2 leads term 2 and commits 30 entries, then hands over to 3,
        // whose probe of node 1 starts at the end of a 32-entry log of later terms.
        c.campaign(2)
        try c.nodes[2]!.propose((0..<30).map { .text("new\($0)") })
        c.deliver()
        try c.nodes[2]!.transferLeadership(to: 3)
        c.deliver()
        #expect(c[3].role == .leader)
        c.sent.removeAll()
        c.heal()
        c.tickAll(6)
        let rejections = c.sent.filter {
            if case .appendResponse(_, true, _, _) = $0.kind { return $0.from == 1 }
            return false
        }
        #expect(!rejections.isEmpty)
        #expect(rejections.count <= 2, "one rejection per conflicting term, not one per entry (\(rejections.count))")
        #expect(c[1].lastIndex == c[3].lastIndex)
        #expect(c[1].term(at: c[1].lastIndex) == c[3].term(at: c[3].lastIndex))
    }

    /// Raft §5.4.2, figure 8, with five servers: an entry of an earlier term that sits on a
    /// majority must not be committed by counting, because a server with a later-term entry
    /// at that index can still be elected and overwrite it.
    @Test(arguments: [false, true])
    func figure8_previousTermEntryOnAMajority_commitsOnlyThroughACurrentTermEntry(planted: Bool) throws {
        let settings = Raft.Settings().with { $0.preVote = false; $0.checkQuorum = false; $0.maxBytesPerAppend = 1 }
        let c = try TestCluster([1, 2, 3, 4, 5], settings: settings)
        let votesOnly: (Raft.Message) -> Bool = { m in
            switch m.kind {
            case .vote, .voteResponse: true
            default: false
            }
        }
        c.campaign(1)
        c.tickAll(3)
        #expect(c[1].commitIndex == 1)
        // (a) S1 leads and replicates x (index 2) to S2 only.
        for id: Raft.NodeID in [3, 4, 5] { c.isolate(id) }
        try c.nodes[1]!.propose([.text("x")])
        c.deliver()
        let firstTerm = c[1].term
        #expect(c[2].term(at: 2) == firstTerm && c[3].term(at: 2) == nil)
        // (b) S1 crashes; S5 is elected by S3, S4, S5 and appends its no-op at index 2, unreplicated.
        c.crash(1)
        c.heal()
        c.isolate(2)
        c.elect(5, where: votesOnly)
        #expect(c.leaders == [5])
        c.dropAll()
        let s5Term = c[5].term
        #expect(c[5].term(at: 2) == s5Term)
        // (c) S5 crashes; S1 restarts and is elected by S2, S3, S4, then copies x to S3 and S4
        // but its own no-op (index 3) reaches nobody.
        c.crash(5)
        c.heal()
        try c.restart(1)
        c.nodes[1]!.plantedBugs.commitPreviousTermEntries = planted
        c.elect(1, where: votesOnly)
        #expect(c.leaders == [1])
        let leaderTerm = c[1].term
        c.deliver { m in
            // Appends carrying the no-op are delivered only where they will be refused (the
            // follower lacks prevIndex), so the leader probes back and copies x.
            if case .append(let prevIndex, _, let entries, _) = m.kind, entries.contains(where: { $0.index == 3 }) {
                return c[m.to].lastIndex < prevIndex
            }
            return true
        }
        #expect(c[3].term(at: 2) == firstTerm && c[4].term(at: 2) == firstTerm)
        #expect((c[1].replicationProgress(of: 3)?.match ?? 0) >= 2)
        if !planted {
            #expect(c[1].commitIndex == 1, "x is on a majority but of term \(firstTerm), not \(leaderTerm)")
            // (e) Once S1's own no-op is on a majority, x commits with it.
            c.network.removeAll()
            c.tickAll(6)
            #expect(c[1].commitIndex >= 3)
            #expect(c.appliedPayloads(1) == [.text("x")])
        } else {
            #expect(c[1].commitIndex == 2, "the planted bug commits x by counting replicas")
            c.processAll()
            #expect(c.appliedPayloads(1) == [.text("x")])
            // (d) S1 crashes; S5 is elected (its last term is later) and overwrites x: an
            // applied entry is lost, which is what §5.4.2 forbids.
            c.crash(1)
            c.network.removeAll()
            try c.restart(5)
            c.elect(5, where: votesOnly)
            #expect(c.leaders == [5])
            c.tickAll(6)
            #expect(c[3].term(at: 2) == s5Term)
        }
    }

    @Test func pipelining_sendsAtMostTheWindowOfAppendsToASilentFollower() throws {
        let settings = Raft.Settings().with { $0.maxInflightAppends = 4; $0.maxBytesPerAppend = 1 }
        let c = try TestCluster([1, 2, 3], settings: settings)
        c.campaign(1)
        c.tickAll(3)
        c.cut.insert([2, 1])  // node 2's answers are lost
        c.sent.removeAll()
        for k in 0..<20 { try c.nodes[1]!.propose([.text("e\(k)")]) }
        c.processAll()
        let appendsTo2 = c.sent.filter { m in
            if case .append(_, _, let entries, _) = m.kind { return m.to == 2 && !entries.isEmpty }
            return false
        }
        #expect(appendsTo2.count == 4)
        c.deliver()
        // Node 3 keeps acknowledging, so the group commits without node 2.
        #expect(c[1].commitIndex == c[1].lastIndex)
    }

    @Test func append_respectsMaxBytesPerAppend() throws {
        let settings = Raft.Settings().with { $0.maxBytesPerAppend = 100 }
        let c = try TestCluster([1, 2, 3], settings: settings)
        c.campaign(1)
        c.tickAll(3)
        c.sent.removeAll()
        try c.nodes[1]!.propose((0..<10).map { _ in [UInt8](repeating: 7, count: 40) })
        c.deliver()
        for m in c.sent {
            if case .append(_, _, let entries, _) = m.kind, entries.count > 1 {
                #expect(entries.reduce(0) { $0 + $1.encodedBytes } <= 100)
            }
        }
        #expect(c[2].lastIndex == c[1].lastIndex)
    }

    @Test func uncommittedLimit_refusesProposalsBeyondIt() throws {
        let settings = Raft.Settings().with { $0.maxUncommittedBytes = 1000 }
        let c = try TestCluster([1, 2, 3], settings: settings)
        c.campaign(1)
        c.tickAll(3)
        c.isolate(1)
        try c.nodes[1]!.propose([[UInt8](repeating: 1, count: 600)])
        #expect {
            try c.nodes[1]!.propose([[UInt8](repeating: 1, count: 600)])
        } throws: { ($0 as! ReplicationError).code == .uncommittedLimit }
        c.heal()
        c.deliver()
        c.tickAll(3)
        try c.nodes[1]!.propose([[UInt8](repeating: 1, count: 600)])
    }

    /// Found by `tern-sim --seed 2 --events 40000 --faults crashes --plant-bug send-before-sync`:
    /// a follower that lost entries it had acknowledged was probed at its old match index
    /// forever, each rejection answered by the same append at network speed. Now the leader
    /// lowers the match and re-replicates.
    @Test func followerThatLostAcknowledgedEntries_isReplicatedAgain_withoutARejectionStorm() throws {
        let c = try TestCluster([1, 2, 3])
        c.campaign(1)
        try c.nodes[1]!.propose([.text("a"), .text("b"), .text("c")])
        c.deliver()
        c.tickAll(3)
        #expect(c[1].replicationProgress(of: 2)?.match == 4)
        // Node 2's disk loses its last two entries (a lying fsync), then it restarts.
        c.crash(2)
        c.disks[2]!.entries.removeLast(2)
        c.disks[2]!.hardState.commit = 2
        try c.restart(2)
        c.isolate(3)
        c.sent.removeAll()
        try c.nodes[1]!.propose([.text("d")])
        c.deliver()
        c.tickAll(4)
        let rejections = c.sent.filter {
            if case .appendResponse(_, true, _, _) = $0.kind { return $0.from == 2 }
            return false
        }
        #expect(rejections.count <= 3, "\(rejections.count) rejections")
        #expect(c[2].lastIndex == c[1].lastIndex)
        #expect(c[1].commitIndex == 5)
    }

    @Test func restart_fromDisk_keepsTermVoteAndLog() throws {
        let c = try TestCluster([1, 2, 3])
        c.campaign(1)
        try c.nodes[1]!.propose([.text("a")])
        c.deliver()
        c.tickAll(3)
        c.crash(2)
        try c.restart(2)
        #expect(c[2].term == 1)
        #expect(c[2].vote == 1)
        #expect(c[2].lastIndex == 2)
        c.tickAll(4)
        #expect(c.appliedPayloads(2) == [.text("a")], "re-applied from the log after restart")
    }
}
