import Foundation
import Testing
import TernReplication
import TernSimulation

/// Simulator suites. Together they run more than 1,000,000 simulated events per CI run
/// (20k×3 + 40k + 60k×8 + 60k×4 + 50k×3 + 50k×3 + 40k×2 ≈ 1.2 million, plus the planted-bug runs;
/// docs/replication.md gives the time); `TERN_SIM_SOAK=<seeds>` runs a longer soak.
@Suite struct SimulationTests {
    static func options(seed: UInt64, nodes: Int = 3, events: Int, faults: Simulation.Faults = .all) -> Simulation.Options {
        var options = Simulation.Options(seed: seed)
        options.nodes = nodes
        options.events = events
        options.faults = faults
        return options
    }

    static func expectPassed(_ report: Simulation.Report) {
        #expect(report.passed, "\(report.rendered())")
        #expect(report.acknowledgedProposals > 0, "seed \(report.seed): clients made progress")
    }

    @Test func sameSeed_givesTheSameTrace() {
        let a = Simulation.run(Self.options(seed: 1234, events: 20_000))
        let b = Simulation.run(Self.options(seed: 1234, events: 20_000))
        #expect(a.traceHash == b.traceHash)
        #expect(a.trace == b.trace)
        #expect(a.events == b.events && a.committedEntries == b.committedEntries && a.messagesSent == b.messagesSent)
        let c = Simulation.run(Self.options(seed: 1235, events: 20_000))
        #expect(c.traceHash != a.traceHash, "another seed is another run")
    }

    @Test func noFaults_electsOnceAndCommitsEverything() {
        var options = Self.options(seed: 5, events: 40_000, faults: .none)
        options.operations = false
        let report = Simulation.run(options)
        Self.expectPassed(report)
        #expect(report.elections == 1)
        #expect(report.messagesDropped == 0)
    }

    /// 3 nodes, every fault: 8 seeds × 60,000 events.
    @Test(arguments: UInt64(100)..<108)
    func threeNodes_allFaults(seed: UInt64) {
        Self.expectPassed(Simulation.run(Self.options(seed: seed, events: 60_000)))
    }

    /// 5 nodes, every fault: 4 seeds × 60,000 events.
    @Test(arguments: UInt64(200)..<204)
    func fiveNodes_allFaults(seed: UInt64) {
        Self.expectPassed(Simulation.run(Self.options(seed: seed, nodes: 5, events: 60_000)))
    }

    /// Network faults only (partitions, loss, duplication, reordering), 3 and 5 nodes.
    @Test(arguments: UInt64(300)..<303)
    func networkFaults(seed: UInt64) {
        Self.expectPassed(Simulation.run(Self.options(seed: seed, nodes: seed % 2 == 0 ? 3 : 5, events: 50_000, faults: .network)))
    }

    /// Crashes only: unsynced writes lost, restarts from disk.
    @Test(arguments: UInt64(400)..<403)
    func crashes(seed: UInt64) {
        Self.expectPassed(Simulation.run(Self.options(seed: seed, events: 50_000, faults: .crashes)))
    }

    /// The shell that carries one ready out at a time (`pipelined = false`) passes the same
    /// checkers: 2 seeds × 40,000 events.
    @Test(arguments: UInt64(500)..<502)
    func oneReadyAtATime_allFaults(seed: UInt64) {
        var options = Self.options(seed: seed, events: 40_000)
        options.pipelined = false
        Self.expectPassed(Simulation.run(options))
    }

    @Test func replicationBenchmarkDriver_commitsEverything() throws {
        let work = try Simulation.replicate(entries: 2_000, payloadBytes: 50, batch: 16)
        #expect(work.committedEntries == 2_000)
        #expect(work.appendBytesPerEntryPerFollower >= 71, "21 bytes of entry header plus the payload at least")
    }

    @Test func soak_whenAskedFor() throws {
        guard let value = ProcessInfo.processInfo.environment["TERN_SIM_SOAK"], let seeds = UInt64(value) else { return }
        for seed in 10_000..<(10_000 + seeds) {
            Self.expectPassed(Simulation.run(Self.options(seed: seed, nodes: seed % 3 == 0 ? 5 : 3, events: 200_000)))
        }
    }
}

/// Each checker must be able to fail: a planted bug is caught.
@Suite struct PlantedBugTests {
    /// Runs seeds until one fails; returns its report.
    static func firstFailure(seeds: Range<UInt64>, _ configure: (inout Simulation.Options) -> Void) -> Simulation.Report? {
        for seed in seeds {
            var options = Simulation.Options(seed: seed)
            options.events = 40_000
            configure(&options)
            let report = Simulation.run(options)
            if !report.passed { return report }
        }
        return nil
    }

    @Test func votingTwiceInOneTerm_isCaughtByElectionSafety() throws {
        let report = try #require(Self.firstFailure(seeds: 1..<20) {
            $0.plantedBugs.voteTwiceInOneTerm = true
            $0.nodes = 5
            // Near-equal timeouts make concurrent candidates (split votes) common.
            $0.settings = $0.settings.with {
                $0.preVote = false
                $0.checkQuorum = false
                $0.electionTimeoutMax = $0.electionTimeoutMin + $0.tickInterval * 2
            }
        })
        #expect(report.violations.first?.contains("election safety") == true, "\(report.violations)")
        #expect(report.trace.last?.contains("VIOLATION") == true)
        #expect(report.rendered().contains("replay: swift run tern-sim --seed \(report.seed)"))
    }

    /// The shell sends a ready's messages before its writes are synced: a follower then
    /// acknowledges entries (and grants votes) that a power loss takes away, so the leader
    /// counts unpersisted entries toward commit. The durability checkers must notice.
    @Test func sendingBeforeTheSync_isCaughtByTheDurabilityCheckers() throws {
        let report = try #require(Self.firstFailure(seeds: 1..<30) {
            $0.sendBeforeSync = true
            $0.faults = .crashes
            $0.faults.powerLossFraction = 0.5
            $0.faults.diskLatency = .milliseconds(5) ... .milliseconds(60)
        })
        // A lost vote breaks election safety; a lost acknowledged entry breaks completeness or
        // the applied sequence; or the leader keeps believing the follower holds entries it
        // lost and the group never converges (the liveness checker).
        let caught = report.violations.first ?? ""
        #expect(["election safety", "leader completeness", "state-machine safety", "lost", "undone", "liveness"].contains { caught.contains($0) },
                "\(report.violations)")
    }

    @Test func withoutThePlantedBugs_theSameSettingsPass() {
        for seed: UInt64 in 1..<3 {
            var options = Simulation.Options(seed: seed)
            options.events = 40_000
            options.faults = .crashes
            options.faults.powerLossFraction = 0.5
            options.faults.diskLatency = .milliseconds(5) ... .milliseconds(60)
            let report = Simulation.run(options)
            #expect(report.passed, "\(report.rendered())")
        }
    }
}
