import Testing
import TernGossip

/// Whole clusters in the simulator: behaviour a user relies on, under loss, delay, reordering,
/// duplication, partitions, crashes, stalls and restarts. Simulated time only; each test runs in
/// well under a second of real time.
@Suite struct SimulationTests {
    static let lossy = Simulation.Network(loss: 0.05, duplication: 0.02, delay: .microseconds(100)...Duration.milliseconds(20))

    @Test(arguments: [1, 2, 3] as [UInt64])
    func nodesJoiningThroughOneSeed_converge(seed: UInt64) {
        let sim = Simulation(nodes: 8, seed: seed, network: Self.lossy)
        sim.startAll()
        #expect(sim.run(until: { sim.converged }, limit: .seconds(60)), "seed \(seed)")
    }

    @Test func crash_isSuspectedThenDeclaredDeadByEveryone() {
        let sim = Simulation(nodes: 5, seed: 11, network: Self.lossy)
        sim.bootstrap()
        sim.run(for: .seconds(5))
        sim.crash(3)
        #expect(sim.run(until: { sim.everyoneSees(3, as: [.suspect, .dead]) }, limit: .seconds(30)))
        #expect(sim.run(until: { sim.everyoneSees(3, as: [.dead]) }, limit: .seconds(60)))
        // Nobody else was declared dead on the way.
        for index in [0, 1, 2, 4] { #expect(sim.everyoneSees(index, as: [.alive])) }
    }

    @Test func leave_isSeenAsLeftByEveryoneWithinOneProbeInterval() {
        let sim = Simulation(nodes: 5, seed: 12)
        sim.bootstrap()
        sim.run(for: .seconds(3))
        sim.leave(2)
        #expect(sim.run(until: { sim.everyoneSees(2, as: [.left]) }, limit: .seconds(1)))
        sim.crash(2)  // the process exits
        sim.run(for: .seconds(60))
        #expect(sim.everyoneSees(2, as: [.left]))
    }

    @Test func stalledPastTheSuspicionTimeout_isDeclaredDeadThenRefutesWithAHigherIncarnation() {
        let sim = Simulation(nodes: 5, seed: 13, network: Self.lossy)
        sim.bootstrap()
        sim.run(for: .seconds(3))
        let resume = sim.now + .seconds(40)
        sim.stall(1, for: .seconds(40))
        #expect(sim.run(until: { sim.everyoneSees(1, as: [.dead]) }, limit: .seconds(39)))
        sim.run(for: resume - sim.now)  // it resumes (SIGCONT)
        #expect(sim.run(until: { sim.converged }, limit: .seconds(10)))
        #expect(sim.nodes[1].instance.incarnation >= 1)
        #expect(sim.nodes[0].instance.member(sim.nodes[1].instance.myself.id)!.incarnation == sim.nodes[1].instance.incarnation)
    }

    @Test func restartedWithTheSameNodeID_isAliveAgainWithAHigherIncarnation() {
        let sim = Simulation(nodes: 5, seed: 14, network: Self.lossy)
        sim.bootstrap()
        sim.run(for: .seconds(3))
        sim.crash(4)
        #expect(sim.run(until: { sim.everyoneSees(4, as: [.dead]) }, limit: .seconds(60)))
        sim.restart(4, seeds: [sim.nodes[0].instance.myself.gossip])
        #expect(sim.run(until: { sim.converged }, limit: .seconds(20)))
        let seen = sim.nodes[0].instance.member(sim.nodes[4].instance.myself.id)!
        #expect(seen.incarnation >= 1)
        #expect(seen.node.startedAt == sim.nodes[4].instance.myself.startedAt)
    }

    @Test func partition_marksTheOtherSideDead_andHealingReunitesEveryone() {
        let sim = Simulation(nodes: 6, seed: 15, network: Self.lossy)
        sim.bootstrap()
        sim.run(for: .seconds(3))
        sim.partition { $0 < 3 ? 0 : 1 }
        #expect(sim.run(until: { sim.nodes[0].instance.member(sim.nodes[5].instance.myself.id)?.state == .dead
                                    && sim.nodes[5].instance.member(sim.nodes[0].instance.myself.id)?.state == .dead },
                        limit: .seconds(90)))
        // Each side still sees its own members alive.
        #expect(sim.nodes[0].instance.member(sim.nodes[1].instance.myself.id)?.state == .alive)
        sim.run(for: .seconds(60))
        sim.heal()
        #expect(sim.run(until: { sim.converged }, limit: .seconds(180)))
    }

    @Test func sameSeed_replaysExactly_andAnotherSeedDiffers() {
        func digest(_ seed: UInt64) -> UInt64 {
            let sim = Simulation(nodes: 6, seed: seed, network: Self.lossy)
            sim.startAll()
            sim.run(for: .seconds(20))
            sim.crash(2)
            sim.run(for: .seconds(20))
            return sim.digest
        }
        #expect(digest(99) == digest(99))
        #expect(digest(99) != digest(100))
    }

    @Test func fivePercentLoss_declaresNoLiveMemberDead() {
        let result = Measurements.falsePositives(nodes: 5, periods: 2_000, seed: 21, stalling: false)
        #expect(result.falseDeaths == 0)
    }

    /// The false-positive checker is shown to catch a planted fault: SWIM without indirect probes
    /// and with a one-period suspicion (the shortcuts Lifeguard and SWIM §3.1 exist to avoid)
    /// declares live members dead at 20 % loss.
    @Test func falsePositiveChecker_catchesAPlantedFault() {
        let careless = Gossip.Settings().with {
            $0.indirectProbes = 0
            $0.suspicionMultiplier = 1
            $0.suspicionMaxTimeoutMultiplier = 1
            $0.awarenessMaxMultiplier = 1
        }
        let result = Measurements.falsePositives(nodes: 5, periods: 1_000, seed: 22, stalling: false, loss: 0.2, settings: careless)
        #expect(result.falseDeaths > 0)
    }
}
