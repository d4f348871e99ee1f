import Testing
import TernCore
import TernTestKit
@testable import TernMetadata

/// A cluster in miniature: the catalogue, gossip's view with a manual clock, and a runtime that
/// carries out each committed replica-set change in the group (instantly, when the group has a
/// live majority) and lets learners catch up when told.
struct SimulatedCluster {
    typealias Member = Metadata.Controller.Member

    var catalogue: Metadata.Catalogue
    var controller: Metadata.Controller
    var members: [String: Member] = [:]
    var now = Samples.t0
    /// Learners the runtime reports caught up, per group.
    var caughtUp: [Metadata.GroupID: Set<String>] = [:]
    /// The configuration each group's Raft log has carried out (lags the catalogue when
    /// `autoReconcile` is off).
    var applied: [Metadata.GroupID: Metadata.Controller.GroupProgress] = [:]
    var autoReconcile = true
    /// Every command the controller proposed, with the plan it came from.
    var history: [Metadata.Command] = []

    init(nodes: Int, zones: [String] = [], settings: Metadata.Controller.Settings = .init()) {
        catalogue = Metadata.Catalogue()
        controller = Metadata.Controller(settings: settings)
        for index in 1...nodes {
            let id = "n\(index)"
            members[id] = Member(id: id, zone: zones.isEmpty ? nil : zones[(index - 1) % zones.count], status: .alive, since: now)
        }
        _ = step()  // registers everyone
    }

    var view: [Member] { members.values.sorted { $0.id < $1.id } }
    func isAlive(_ id: String) -> Bool { members[id]?.status == .alive }

    mutating func advance(seconds: Int) { now = now.adding(seconds: seconds) }

    mutating func set(_ id: String, _ status: Metadata.Controller.Status) {
        members[id]?.status = status
        members[id]?.since = now
    }

    mutating func add(_ id: String, zone: String? = nil) {
        members[id] = Member(id: id, zone: zone, status: .alive, since: now)
    }

    /// Creates a queue as the controller leader would.
    @discardableResult
    mutating func createQueue(_ name: String, replicationFactor: Int? = nil) throws -> Metadata.Group {
        let command = try controller.placeQueue(Samples.name(name), replicationFactor: replicationFactor,
                                                catalogue: catalogue, members: view)
        _ = try catalogue.apply(command)
        let group = try #require(catalogue.group(ofQueue: Samples.name(name)))
        reconcile()
        return group
    }

    /// Whether groups that lost their leader keep their last report (a runtime that caches
    /// reports may hand the controller stale ones).
    var staleReports = false

    /// What each group's leader reports: only groups with a live majority have one (or, with
    /// `staleReports`, whatever they reported last: what the configuration was when they had one).
    var progress: [Metadata.GroupID: Metadata.Controller.GroupProgress] {
        var result: [Metadata.GroupID: Metadata.Controller.GroupProgress] = [:]
        for (id, config) in applied where staleReports || config.voters.filter(isAlive).count > config.voters.count / 2 {
            var report = config
            report.caughtUp = caughtUp[id, default: []].intersection(config.learners)
            result[id] = report
        }
        return result
    }

    /// The groups' Raft logs carry out the catalogue's configuration (where they can commit).
    mutating func reconcile() {
        for group in catalogue.groups.values {
            let target = Metadata.Controller.GroupProgress(voters: Set(group.replicas), learners: Set(group.learners))
            if let current = applied[group.id], current.voters.filter(isAlive).count <= current.voters.count / 2 { continue }
            applied[group.id] = target
        }
        for id in applied.keys where catalogue.groups[id] == nil { applied[id] = nil }
    }

    /// One controller round: plan, then commit (apply) every proposed command.
    @discardableResult
    mutating func step() -> Metadata.Controller.Plan {
        let plan = controller.plan(catalogue: catalogue, members: view, progress: progress, now: now)
        var touched = Set<Metadata.GroupID>()
        for command in plan.commands {
            history.append(command)
            switch command {
            case .addLearner(let g, _, _), .promoteLearner(let g, _, _), .removeReplica(let g, _, _):
                #expect(touched.insert(g).inserted, "two commands for group \(g) in one plan")
            default: break
            }
            do { _ = try catalogue.apply(command) } catch { Issue.record("\(command) failed: \(error)") }
        }
        if autoReconcile { reconcile() }
        return plan
    }

    /// Runs rounds, `seconds` apart, until a plan proposes nothing (at most `limit` rounds).
    @discardableResult
    mutating func settle(every seconds: Int = 1, limit: Int = 50) -> [Metadata.Command] {
        var proposed: [Metadata.Command] = []
        for _ in 0..<limit {
            let plan = step()
            proposed += plan.commands
            if plan.commands.isEmpty { return proposed }
            advance(seconds: seconds)
        }
        Issue.record("no fixed point after \(limit) rounds")
        return proposed
    }

    /// Where group `id` belongs among the live registered nodes (what the controller steers to).
    func placement(of id: Metadata.GroupID) -> [String] {
        let live = catalogue.nodes.values.filter { isAlive($0.id) }.map { Metadata.Placement.Candidate(id: $0.id, zone: $0.zone) }
        return Metadata.Placement.replicas(for: id, among: live, count: catalogue.groups[id]?.replicationFactor ?? 3)
    }

    mutating func catchUpAll() {
        for group in catalogue.groups.values { caughtUp[group.id, default: []].formUnion(group.learners) }
    }
}

@Suite struct ControllerTests {
    typealias Controller = Metadata.Controller

    @Test func settings_defaultsAndRanges() throws {
        let defaults = Controller.Settings()
        #expect(defaults.replicationFactor == 3 && defaults.replaceAfter == .seconds(60) && defaults.maxGroupsChanging == 32)
        try defaults.validate()
        for bad in [defaults.with { $0.replicationFactor = 0 }, defaults.with { $0.replicationFactor = 10 },
                    defaults.with { $0.replaceAfter = .seconds(-1) }, defaults.with { $0.maxGroupsChanging = 0 }] {
            #expect(throws: Metadata.Error.self) { try bad.validate() }
        }
        #expect(defaults.with { $0.replaceAfter = .milliseconds(1500) }.replaceAfterMilliseconds == 1500)
    }

    @Test func aliveMembers_areRegistered_othersNot_andZoneChangesUpdate() {
        var cluster = SimulatedCluster(nodes: 3, zones: ["a"])
        #expect(cluster.catalogue.nodes.keys.sorted() == ["n1", "n2", "n3"])
        cluster.add("n4")
        cluster.add("n5")
        cluster.set("n5", .suspect)
        cluster.members["bad id"] = Controller.Member(id: "bad id", status: .alive, since: cluster.now)
        cluster.members["n1"]?.zone = "b"
        let plan = cluster.step()
        #expect(plan.commands == [.registerNode(id: "n1", zone: "b", at: cluster.now), .registerNode(id: "n4", zone: nil, at: cluster.now)])
        #expect(cluster.catalogue.nodes["n1"]?.registeredAt == Samples.t0)
        #expect(cluster.step().commands == [])
    }

    @Test func placeQueue_usesTheDefaultFactor_cappedByLiveNodes_andRefusesWhatCannotBe() throws {
        var cluster = SimulatedCluster(nodes: 5)
        let group = try cluster.createQueue("orders")
        #expect(group.replicas.count == 3 && group.replicationFactor == 3)
        #expect(group.replicas == Metadata.Placement.replicas(for: group.id, among: SimulatedCluster(nodes: 5).view.map { .init(id: $0.id) }, count: 3))
        for id in ["n3", "n4", "n5"] { cluster.set(id, .dead) }
        let small = try cluster.createQueue("small")
        #expect(small.replicas.sorted() == ["n1", "n2"] && small.replicationFactor == 3)
        #expect(throws: Metadata.Error(.invalidAttribute, "replication_factor 3 exceeds the 2 live nodes")) {
            try cluster.controller.placeQueue(Samples.name("x"), replicationFactor: 3, catalogue: cluster.catalogue, members: cluster.view)
        }
        for rf in [0, 10] {
            #expect(throws: Metadata.Error.self) {
                try cluster.controller.placeQueue(Samples.name("x"), replicationFactor: rf, catalogue: cluster.catalogue, members: cluster.view)
            }
        }
        let colocated = try cluster.controller.placeQueue(Samples.name("dlq"), colocateWith: Samples.name("orders"),
                                                          catalogue: cluster.catalogue, members: cluster.view)
        #expect(colocated == .createQueue(Samples.name("dlq"), placement: .colocated(with: Samples.name("orders"))))
        #expect(throws: Metadata.Error.self) {
            try cluster.controller.placeQueue(Samples.name("dlq"), colocateWith: Samples.name("nope"), catalogue: cluster.catalogue, members: cluster.view)
        }
        cluster.set("n1", .dead)
        cluster.set("n2", .suspect)
        #expect(throws: Metadata.Error(.unavailable, "no registered node is alive")) {
            try cluster.controller.placeQueue(Samples.name("x"), catalogue: cluster.catalogue, members: cluster.view)
        }
    }

    @Test func placeTopic_placesEachPartitionByItsGroupID() throws {
        let cluster = SimulatedCluster(nodes: 6, zones: ["a", "b", "c"])
        let command = try cluster.controller.placeTopic(Samples.name("clicks"), partitions: 12, catalogue: cluster.catalogue, members: cluster.view)
        guard case .createTopic(_, let partitions, 3) = command else { Issue.record("\(command)"); return }
        #expect(partitions.count == 12)
        let candidates = cluster.catalogue.nodes.values.map { Metadata.Placement.Candidate(id: $0.id, zone: $0.zone) }
        for (partition, replicas) in partitions.enumerated() {
            #expect(replicas == Metadata.Placement.replicas(for: UInt64(1 + partition), among: candidates, count: 3))
        }
        #expect(Set(partitions.map { $0[0] }).count > 3, "preferred leaders spread: \(partitions.map { $0[0] })")
        #expect(throws: Metadata.Error.self) {
            try cluster.controller.placeTopic(Samples.name("clicks"), partitions: 0, catalogue: cluster.catalogue, members: cluster.view)
        }
    }

    @Test func aNodeThatComesBackBeforeReplaceAfter_movesNothing() throws {
        var cluster = SimulatedCluster(nodes: 5)
        let group = try cluster.createQueue("orders")
        let victim = group.replicas[0]
        cluster.set(victim, .suspect)
        cluster.advance(seconds: 5)
        cluster.set(victim, .dead)
        for _ in 0..<11 {
            cluster.advance(seconds: 5)
            #expect(cluster.step().commands == [])
        }
        cluster.set(victim, .alive)
        cluster.advance(seconds: 120)
        #expect(cluster.step().commands == [])
        #expect(cluster.catalogue.groups[group.id] == group)
    }

    @Test func aNodeDeadPastReplaceAfter_isReplaced_learnerThenPromoteThenRemove() throws {
        var cluster = SimulatedCluster(nodes: 5)
        let group = try cluster.createQueue("orders")
        let victim = group.replicas[1]
        cluster.set(victim, .dead)
        cluster.advance(seconds: 59)
        #expect(cluster.step().commands == [])
        cluster.advance(seconds: 1)
        let live = cluster.catalogue.nodes.keys.filter { $0 != victim }.map { Metadata.Placement.Candidate(id: $0) }
        let expected = Metadata.Placement.next(for: group.id, among: live.filter { !group.replicas.contains($0.id) },
                                               keeping: group.replicas.filter { $0 != victim }.map { .init(id: $0) })!
        #expect(cluster.step().commands == [.addLearner(group: group.id, node: expected, epoch: 1)])
        // Still catching up: the group waits.
        for _ in 0..<3 {
            cluster.advance(seconds: 1)
            let plan = cluster.step()
            #expect(plan.commands == [])
            #expect(plan.waiting[group.id] == .learnerCatchingUp(expected))
        }
        cluster.catchUpAll()
        #expect(cluster.step().commands == [.promoteLearner(group: group.id, node: expected, epoch: 2)])
        #expect(cluster.step().commands == [.removeReplica(group: group.id, node: victim, epoch: 3)])
        #expect(cluster.step().commands == [])
        let final = try #require(cluster.catalogue.groups[group.id])
        #expect(final.replicas == group.replicas.filter { $0 != victim } + [expected])
        #expect(final.epoch == 4 && final.learners.isEmpty)
        // The dead node coming back later is like a node joining: the group moves back onto it
        // (its placement), one change at a time, and settles there.
        cluster.set(victim, .alive)
        for _ in 0..<6 {
            cluster.step()
            cluster.catchUpAll()
        }
        #expect(cluster.settle().isEmpty)
        #expect(Set(try #require(cluster.catalogue.groups[group.id]).replicas) == Set(group.replicas))
        // Without rebalancing it stays out.
        var still = SimulatedCluster(nodes: 5, settings: Controller.Settings().with { $0.rebalance = false })
        let other = try still.createQueue("orders")
        still.set(other.replicas[1], .dead)
        still.advance(seconds: 61)
        for _ in 0..<4 {
            still.step()
            still.catchUpAll()
        }
        still.set(other.replicas[1], .alive)
        #expect(still.settle().isEmpty)
        #expect(!(try #require(still.catalogue.groups[other.id]).replicas.contains(other.replicas[1])))
    }

    @Test func aReplacedNodeThatReturnsBeforeItsRemoval_leavesTheGroupAtItsFactor() throws {
        var cluster = SimulatedCluster(nodes: 5)
        let group = try cluster.createQueue("orders")
        let victim = group.replicas[0]
        cluster.set(victim, .dead)
        cluster.advance(seconds: 61)
        #expect(cluster.step().commands.count == 1)   // learner
        cluster.catchUpAll()
        #expect(cluster.step().commands.count == 1)   // promoted: 4 voters
        cluster.set(victim, .alive)                    // back before its removal
        let plan = cluster.step()
        #expect(plan.commands.count == 1)
        guard case .removeReplica(_, let removed, 3)? = plan.commands.first else { Issue.record("\(plan)"); return }
        let final = try #require(cluster.catalogue.groups[group.id])
        #expect(final.replicas.count == 3 && !final.replicas.contains(removed))
        // The lightest of the four in the group's ranking went.
        let four = final.replicas + [removed]
        #expect(four.allSatisfy { Metadata.Placement.weight(for: group.id, node: $0) >= Metadata.Placement.weight(for: group.id, node: removed) })
        #expect(cluster.settle().isEmpty)
    }

    @Test func leftIsTreatedAsDead_andANodeGossipForgot_isReplacedAfterReplaceAfterFromWhenItWasMissed() throws {
        var cluster = SimulatedCluster(nodes: 4)
        let group = try cluster.createQueue("orders")
        let victim = group.replicas[2]
        cluster.members[victim] = nil       // reaped from gossip's view
        cluster.advance(seconds: 1)
        #expect(cluster.step().commands == [])
        cluster.advance(seconds: 59)
        #expect(cluster.step().commands == [], "60 s count from when the controller missed it")
        cluster.advance(seconds: 1)
        #expect(cluster.step().commands.count == 1)
        #expect(cluster.controller.notAliveSince[victim] == Samples.t0.adding(seconds: 1))

        var other = SimulatedCluster(nodes: 4)
        let second = try other.createQueue("orders")
        other.set(second.replicas[0], .left)
        other.advance(seconds: 60)
        #expect(other.step().commands.count == 1)
    }

    /// Two of a 3-replica group's voters die: the group has no live majority, so it cannot
    /// commit anything and the controller proposes nothing for it, however long they stay
    /// dead (removing them could lose writes only they hold). When one comes back the group
    /// has its majority again and the other is replaced as usual.
    @Test func twoOfThreeReplicasDead_theGroupWaits_thenHealsWhenOneReturns() throws {
        var cluster = SimulatedCluster(nodes: 5)
        let group = try cluster.createQueue("orders")
        let (first, second) = (group.replicas[1], group.replicas[2])
        cluster.set(first, .dead)
        cluster.set(second, .dead)
        for _ in 0..<10 {
            cluster.advance(seconds: 60)
            let plan = cluster.step()
            #expect(plan.commands == [])
            #expect(plan.waiting[group.id] == .lostQuorum(liveVoters: 1, voters: 3))
        }
        cluster.set(first, .alive)
        cluster.advance(seconds: 1)
        cluster.catchUpAll()
        var proposed: [Metadata.Command] = []
        for _ in 0..<6 {
            proposed += cluster.step().commands
            cluster.catchUpAll()
        }
        #expect(proposed.count == 3)
        let final = try #require(cluster.catalogue.groups[group.id])
        #expect(!final.replicas.contains(second) && final.replicas.contains(first) && final.replicas.count == 3)
        #expect(final.replicas.allSatisfy(cluster.isAlive))
    }

    @Test func oneChangeAtATime_theNextWaitsForTheGroupToCarryOutTheLast() throws {
        var cluster = SimulatedCluster(nodes: 5)
        let group = try cluster.createQueue("orders")
        cluster.autoReconcile = false
        cluster.set(group.replicas[0], .dead)
        cluster.advance(seconds: 61)
        #expect(cluster.step().commands.count == 1)   // add learner, not yet carried out
        cluster.catchUpAll()
        for _ in 0..<3 {
            let plan = cluster.step()
            #expect(plan.commands == [])
            #expect(plan.waiting[group.id] == .changeInFlight)
        }
        cluster.reconcile()
        #expect(cluster.step().commands.count == 1)   // promote
    }

    @Test func aLearnerThatDies_isRemoved_andAnotherChosen() throws {
        var cluster = SimulatedCluster(nodes: 6)
        let group = try cluster.createQueue("orders")
        cluster.set(group.replicas[0], .dead)
        cluster.advance(seconds: 61)
        guard case .addLearner(_, let learner, _)? = cluster.step().commands.first else { Issue.record("no learner"); return }
        cluster.set(learner, .dead)
        #expect(cluster.step().commands == [.removeReplica(group: group.id, node: learner, epoch: 2)])
        guard case .addLearner(_, let next, 3)? = cluster.step().commands.first else { Issue.record("no second learner"); return }
        #expect(next != learner && cluster.isAlive(next))
    }

    @Test func withNoFreeNode_aDeadReplicaStays_andTheGroupWaits() throws {
        var cluster = SimulatedCluster(nodes: 3)
        let group = try cluster.createQueue("orders")
        cluster.set("n2", .dead)
        cluster.advance(seconds: 3600)
        let plan = cluster.step()
        #expect(plan.commands == [])
        #expect(plan.waiting[group.id] == .noCandidate)
        // A fourth node joins: it replaces the dead one.
        cluster.add("n4")
        cluster.step()  // registers n4
        #expect(cluster.step().commands == [.addLearner(group: group.id, node: "n4", epoch: 1)])
    }

    @Test func groupsPlacedOnFewerNodesThanTheirFactor_growAsNodesJoin() throws {
        var cluster = SimulatedCluster(nodes: 1)
        let group = try cluster.createQueue("orders")
        #expect(group.replicas == ["n1"] && group.replicationFactor == 3)
        #expect(cluster.settle().isEmpty)
        cluster.add("n2")
        cluster.add("n3")
        cluster.add("n4")
        for _ in 0..<12 {
            cluster.step()
            cluster.catchUpAll()
        }
        let grown = try #require(cluster.catalogue.groups[group.id])
        #expect(grown.replicas.count == 3 && grown.learners.isEmpty)
        #expect(Set(grown.replicas) == Set(cluster.placement(of: group.id)))
        #expect(cluster.settle().isEmpty)
    }

    /// A node joins a 3-node cluster of 40 groups: the groups whose placement now includes it
    /// (about 3/4 of them) each move one replica onto it, learner first, and nothing else moves.
    @Test func aNodeThatJoins_takesItsShareOfExistingGroups() throws {
        var cluster = SimulatedCluster(nodes: 3)
        for index in 0..<40 { try cluster.createQueue("q\(index)") }
        #expect(cluster.settle().isEmpty)
        cluster.add("n4")
        for _ in 0..<20 {
            cluster.step()
            cluster.catchUpAll()
        }
        #expect(cluster.settle().isEmpty)
        let onN4 = cluster.catalogue.groups(onNode: "n4").count
        #expect((22...38).contains(onN4), "n4 holds \(onN4) of 40 groups")
        for group in cluster.catalogue.groups.values {
            #expect(group.replicas.count == 3 && group.learners.isEmpty)
            #expect(Set(group.replicas) == Set(cluster.placement(of: group.id)))
        }
        // Each moved group took three changes (learner, promote, remove), the others none.
        let changes = cluster.history.filter { if case .registerNode = $0 { false } else { true } }
        #expect(changes.count == 3 * onN4)
    }

    @Test func rebalancingOff_leavesExistingGroupsWhereTheyAre() throws {
        var cluster = SimulatedCluster(nodes: 3, settings: Controller.Settings().with { $0.rebalance = false })
        for index in 0..<10 { try cluster.createQueue("q\(index)") }
        cluster.add("n4")
        cluster.step()
        #expect(cluster.settle().isEmpty)
        #expect(cluster.catalogue.groups(onNode: "n4").isEmpty)
    }

    @Test func zonesStaySpread_whenAReplicaIsReplaced() throws {
        var cluster = SimulatedCluster(nodes: 9, zones: ["a", "b", "c"])
        var groups: [Metadata.Group] = []
        for index in 0..<20 { groups.append(try cluster.createQueue("q\(index)")) }
        let zone = { (id: String) in cluster.catalogue.nodes[id]!.zone! }
        for group in groups { #expect(Set(group.replicas.map(zone)).count == 3) }
        cluster.set("n1", .dead)
        cluster.advance(seconds: 61)
        for _ in 0..<10 {
            cluster.step()
            cluster.catchUpAll()
        }
        for group in cluster.catalogue.groups.values {
            #expect(!group.replicas.contains("n1"))
            #expect(Set(group.replicas.map(zone)).count == 3, "group \(group.id): \(group.replicas)")
        }
    }

    @Test func replacementsAreThrottled_toMaxGroupsChanging() throws {
        var cluster = SimulatedCluster(nodes: 4, settings: Controller.Settings().with { $0.maxGroupsChanging = 2 })
        for index in 0..<6 { try cluster.createQueue("q\(index)") }  // 3 of 4 nodes: most hold n1
        let onN1 = cluster.catalogue.groups(onNode: "n1").count
        #expect(onN1 >= 3)
        cluster.set("n1", .dead)
        cluster.advance(seconds: 61)
        let plan = cluster.step()
        #expect(plan.commands.count == 2)
        #expect(plan.waiting.values.filter { $0 == .throttled }.count == onN1 - 2)
    }

    /// Random faults, time and catch-up: the controller never proposes a change that leaves a
    /// group without a live majority of voters, never two per group in one plan (checked by
    /// ``SimulatedCluster/step()``), never one while the last is in flight, and once the faults
    /// stop and the dead stay dead every group ends on live nodes at its factor.
    @Test(arguments: [UInt64(21), 22, 23, 24, 25])
    func randomFaults_neverCostAMajority_andSettleOnLiveNodes(seed: UInt64) throws {
        let violations = try Self.randomFaults(seed: seed, bugs: [])
        #expect(violations.isEmpty, "seed \(seed): \(violations.prefix(5))")
    }

    /// The checker above catches a controller that ignores quorum or changes in flight.
    @Test(arguments: [Controller.PlantedBugs.ignoreQuorum, .ignoreInFlight])
    func randomFaults_checker_catchesPlantedBugs(bug: Controller.PlantedBugs) throws {
        var caught = 0
        for seed in UInt64(21)...25 where try !Self.randomFaults(seed: seed, bugs: bug, settle: false).isEmpty { caught += 1 }
        #expect(caught > 0)
    }

    static func randomFaults(seed: UInt64, bugs: Controller.PlantedBugs, settle: Bool = true) throws -> [String] {
        var violations: [String] = []
        var random = SeededGenerator(seed: seed)
        var cluster = SimulatedCluster(nodes: 7, zones: ["a", "b", "c"],
                                       settings: Controller.Settings().with { $0.replaceAfter = .seconds(20) })
        cluster.controller.plantedBugs = bugs
        for index in 0..<8 { try cluster.createQueue("q\(index)") }
        for _ in 0..<400 {
            let node = "n\(Int.random(in: 1...7, using: &random))"
            switch Int.random(in: 0..<10, using: &random) {
            case 0: cluster.set(node, .dead)
            case 1: cluster.set(node, .alive)
            case 2: cluster.set(node, .suspect)
            case 3: cluster.catchUpAll()
            case 4: cluster.autoReconcile.toggle()
            case 5: cluster.staleReports.toggle()
            default: break
            }
            if !cluster.autoReconcile, Bool.random(using: &random) { cluster.reconcile() }
            cluster.advance(seconds: Int.random(in: 0...10, using: &random))
            let before = cluster.catalogue
            let progress = cluster.progress
            let inFlight = Set(before.groups.values.filter { group in
                progress[group.id].map { $0.voters != Set(group.replicas) || $0.learners != Set(group.learners) } ?? true
            }.map(\.id))
            let plan = cluster.step()
            for command in plan.commands {
                let id: Metadata.GroupID
                switch command {
                case .addLearner(let g, _, _), .promoteLearner(let g, _, _), .removeReplica(let g, _, _): id = g
                default: continue
                }
                if inFlight.contains(id) { violations.append("\(command) while group \(id) had a change in flight") }
                guard let after = cluster.catalogue.groups[id] else { continue }
                let liveVoters = after.replicas.filter(cluster.isAlive).count
                if liveVoters <= after.replicas.count / 2 {
                    violations.append("\(command) left \(liveVoters) of \(after.replicas.count) voters alive")
                }
            }
        }
        guard settle else { return violations }
        // Faults stop: n6 and n7 stay dead, everyone else is alive.
        for index in 1...5 { cluster.set("n\(index)", .alive) }
        cluster.set("n6", .dead)
        cluster.set("n7", .dead)
        cluster.autoReconcile = true
        cluster.staleReports = false
        cluster.reconcile()
        cluster.advance(seconds: 30)
        for _ in 0..<60 {
            cluster.step()
            cluster.catchUpAll()
            cluster.advance(seconds: 1)
        }
        for group in cluster.catalogue.groups.values {
            let live = group.replicas.filter(cluster.isAlive)
            // Groups that lost their majority for good (both dead nodes among 3) stay as they are.
            guard live.count > group.replicas.count / 2 else { continue }
            if !(live.count == group.replicas.count && group.replicas.count == 3 && group.learners.isEmpty) {
                violations.append("group \(group.id) ended as \(group.replicas) + \(group.learners)")
            } else if Set(group.replicas) != Set(cluster.placement(of: group.id)) {
                violations.append("group \(group.id) ended off its placement: \(group.replicas), not \(cluster.placement(of: group.id))")
            }
        }
        return violations
    }
}
