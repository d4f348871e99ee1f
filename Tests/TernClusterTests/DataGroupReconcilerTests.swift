import Testing
import TernCluster
import TernCore
import TernMetadata

/// The data group's automatic membership decisions (decision 127), on figures: a voter dead past
/// `replaceAfter` is replaced by a live spare (learner, promote, remove), and nothing else moves:
/// no growth, no rebalancing, no live voter removed, no node an operator removed taken back.
@Suite struct DataGroupReconcilerTests {
    typealias Member = Metadata.Controller.Member
    static let t0 = Timestamp(milliseconds: 1_000_000)

    static func at(_ seconds: UInt64) -> Timestamp { Timestamp(milliseconds: t0.milliseconds + seconds * 1000) }

    static func members(alive: [String], dead: [String] = [], since: Timestamp = t0) -> [Member] {
        alive.map { Member(id: $0, status: .alive, since: since) } + dead.map { Member(id: $0, status: .dead, since: since) }
    }

    static func reconciler(factor: Int = 3) -> DataGroupReconciler {
        DataGroupReconciler(settings: .init(replicationFactor: factor, replaceAfter: .seconds(60)))
    }

    @Test func aHealthyGroupIsLeftAlone_evenWithASpareAlive() {
        var r = Self.reconciler()
        #expect(r.next(voters: ["n1", "n2", "n3"], learners: [], caughtUp: [],
                       members: Self.members(alive: ["n1", "n2", "n3", "n4"]), now: Self.at(600)) == .none)
    }

    @Test func aDeadVoterIsReplacedOnlyAfterReplaceAfter_learnerFirst_thenPromoted_thenRemoved() {
        var r = Self.reconciler()
        let view = Self.members(alive: ["n1", "n2", "n4"], dead: ["n3"])
        #expect(r.next(voters: ["n1", "n2", "n3"], learners: [], caughtUp: [], members: view, now: Self.at(59)) == .none)
        #expect(r.next(voters: ["n1", "n2", "n3"], learners: [], caughtUp: [], members: view, now: Self.at(61)) == .change(.addLearner("n4")))
        #expect(r.next(voters: ["n1", "n2", "n3"], learners: ["n4"], caughtUp: [], members: view, now: Self.at(62)) == .none,
                "a learner still catching up holds the group")
        #expect(r.next(voters: ["n1", "n2", "n3"], learners: ["n4"], caughtUp: ["n4"], members: view, now: Self.at(63)) == .change(.promote("n4")))
        #expect(r.next(voters: ["n1", "n2", "n3", "n4"], learners: [], caughtUp: [], members: view, now: Self.at(64)) == .change(.remove("n3")))
        #expect(r.next(voters: ["n1", "n2", "n4"], learners: [], caughtUp: [], members: view, now: Self.at(65)) == .none)
    }

    @Test func aNewLeaderFinishesAReplacementItDidNotStart() {
        var fresh = Self.reconciler()
        let view = Self.members(alive: ["n1", "n2", "n4"], dead: ["n3"])
        #expect(fresh.next(voters: ["n1", "n2", "n3", "n4"], learners: [], caughtUp: [], members: view, now: Self.at(61)) == .change(.remove("n3")),
                "three voters stay, the factor: the dead one goes")
    }

    @Test func aVoterMissingFromGossipCountsAsDeadFromWhenItWasFirstMissed() {
        var r = Self.reconciler()
        let view = Self.members(alive: ["n1", "n2", "n4"])
        #expect(r.next(voters: ["n1", "n2", "n3"], learners: [], caughtUp: [], members: view, now: Self.at(100)) == .none)
        #expect(r.next(voters: ["n1", "n2", "n3"], learners: [], caughtUp: [], members: view, now: Self.at(159)) == .none)
        #expect(r.next(voters: ["n1", "n2", "n3"], learners: [], caughtUp: [], members: view, now: Self.at(161)) == .change(.addLearner("n4")))
    }

    @Test func nothingIsProposedWithoutALiveMajorityOrAFreeNode_andTheWaitIsSaid() {
        var r = Self.reconciler()
        guard case .waiting(let why) = r.next(voters: ["n1", "n2", "n3"], learners: [], caughtUp: [],
                                             members: Self.members(alive: ["n1", "n4", "n5"], dead: ["n2", "n3"]), now: Self.at(600)) else {
            Issue.record("two of three dead: no change can commit, and removing them could lose writes only they hold")
            return
        }
        #expect(why.contains("1 of 3"))
        guard case .waiting(let spareless) = r.next(voters: ["n1", "n2", "n3"], learners: [], caughtUp: [],
                                                   members: Self.members(alive: ["n1", "n2"], dead: ["n3"]), now: Self.at(600)) else {
            Issue.record("no free node: the group keeps its dead voter and waits")
            return
        }
        #expect(spareless.contains("no spare"))
    }

    @Test func aGroupGrownByAnOperatorKeepsItsSize_andShrinksOnlyByTheDead() {
        var r = Self.reconciler()
        let voters = ["n1", "n2", "n3", "n4"]
        #expect(r.next(voters: voters, learners: [], caughtUp: [], members: Self.members(alive: voters + ["n5"]), now: Self.at(600)) == .none,
                "four live voters above a factor of three: none is removed")
        let view = Self.members(alive: ["n1", "n2", "n3", "n5"], dead: ["n4"])
        #expect(r.next(voters: voters, learners: [], caughtUp: [], members: view, now: Self.at(61)) == .change(.remove("n4")),
                "three voters stay, the factor: the dead one goes without a replacement")
    }

    @Test func aGroupAnOperatorShrankIsNotGrownBack_andTheNodeItRemovedIsNotTakenBack() {
        // Of two spares, `favourite` is the one rendezvous hashing ranks first for the group:
        // the operator removes it (it keeps running), so only the memory of that removal keeps
        // it from being chosen.
        let (favourite, other) = Metadata.Placement.weight(for: 1, node: "s1") > Metadata.Placement.weight(for: 1, node: "s2")
            ? ("s1", "s2") : ("s2", "s1")
        var r = Self.reconciler()
        let all = Self.members(alive: ["n1", "n2", "n3", favourite, other])
        #expect(r.next(voters: ["n1", "n2", "n3", favourite], learners: [], caughtUp: [], members: all, now: Self.at(1)) == .none)
        #expect(r.next(voters: ["n1", "n2", "n3"], learners: [], caughtUp: [], members: all, now: Self.at(2)) == .none)
        var small = Self.reconciler()
        #expect(small.next(voters: ["n1", "n2"], learners: [], caughtUp: [], members: all, now: Self.at(2)) == .none,
                "two voters below the factor of three: not grown")
        // n3 dies for good: the replacement is the other spare, never the node just removed.
        let later = Self.members(alive: ["n1", "n2", favourite, other], dead: ["n3"], since: Self.at(10))
        #expect(r.next(voters: ["n1", "n2", "n3"], learners: [], caughtUp: [], members: later, now: Self.at(71)) == .change(.addLearner(other)))
        // Without that memory (another leader), rendezvous picks the favourite, as for any spare.
        var fresh = Self.reconciler()
        #expect(fresh.next(voters: ["n1", "n2", "n3"], learners: [], caughtUp: [], members: later, now: Self.at(71)) == .change(.addLearner(favourite)))
    }

    @Test func aLearnerThatDiedIsRemoved() {
        var r = Self.reconciler()
        let view = Self.members(alive: ["n1", "n2", "n3"], dead: ["n4"])
        #expect(r.next(voters: ["n1", "n2", "n3"], learners: ["n4"], caughtUp: [], members: view, now: Self.at(5)) == .change(.remove("n4")))
    }
}
