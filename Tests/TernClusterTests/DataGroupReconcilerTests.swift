import Testing
import TernCluster
import TernCore
import TernMetadata

/// The data group's automatic membership decisions (decision 127), on figures: a voter dead past
/// `replaceAfter` is replaced by a live node outside the group (learner, promote, remove), a
/// group below the factor grows, and nothing else moves.
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
                       members: Self.members(alive: ["n1", "n2", "n3", "n4"]), now: Self.at(600)) == nil)
    }

    @Test func aDeadVoterIsReplacedOnlyAfterReplaceAfter_learnerFirst_thenPromoted_thenRemoved() {
        var r = Self.reconciler()
        let view = Self.members(alive: ["n1", "n2", "n4"], dead: ["n3"])
        #expect(r.next(voters: ["n1", "n2", "n3"], learners: [], caughtUp: [], members: view, now: Self.at(59)) == nil)
        #expect(r.next(voters: ["n1", "n2", "n3"], learners: [], caughtUp: [], members: view, now: Self.at(61)) == .addLearner("n4"))
        #expect(r.next(voters: ["n1", "n2", "n3"], learners: ["n4"], caughtUp: [], members: view, now: Self.at(62)) == nil,
                "a learner still catching up holds the group")
        #expect(r.next(voters: ["n1", "n2", "n3"], learners: ["n4"], caughtUp: ["n4"], members: view, now: Self.at(63)) == .promote("n4"))
        #expect(r.next(voters: ["n1", "n2", "n3", "n4"], learners: [], caughtUp: [], members: view, now: Self.at(64)) == .remove("n3"))
        #expect(r.next(voters: ["n1", "n2", "n4"], learners: [], caughtUp: [], members: view, now: Self.at(65)) == nil)
    }

    @Test func aVoterMissingFromGossipCountsAsDeadFromWhenItWasFirstMissed() {
        var r = Self.reconciler()
        let view = Self.members(alive: ["n1", "n2", "n4"])
        #expect(r.next(voters: ["n1", "n2", "n3"], learners: [], caughtUp: [], members: view, now: Self.at(100)) == nil)
        #expect(r.next(voters: ["n1", "n2", "n3"], learners: [], caughtUp: [], members: view, now: Self.at(159)) == nil)
        #expect(r.next(voters: ["n1", "n2", "n3"], learners: [], caughtUp: [], members: view, now: Self.at(161)) == .addLearner("n4"))
    }

    @Test func nothingIsProposedWithoutALiveMajorityOrAFreeNode() {
        var r = Self.reconciler()
        #expect(r.next(voters: ["n1", "n2", "n3"], learners: [], caughtUp: [],
                       members: Self.members(alive: ["n1", "n4", "n5"], dead: ["n2", "n3"]), now: Self.at(600)) == nil,
                "two of three dead: no change can commit, and removing them could lose writes only they hold")
        #expect(r.next(voters: ["n1", "n2", "n3"], learners: [], caughtUp: [],
                       members: Self.members(alive: ["n1", "n2"], dead: ["n3"]), now: Self.at(600)) == nil,
                "no free node: the group keeps its dead voter and waits")
    }

    @Test func aGroupGrownByAnOperatorKeepsItsSize_andShrinksOnlyByTheDead() {
        var r = Self.reconciler()
        let voters = ["n1", "n2", "n3", "n4"]
        #expect(r.next(voters: voters, learners: [], caughtUp: [], members: Self.members(alive: voters + ["n5"]), now: Self.at(600)) == nil,
                "four live voters above a factor of three: none is removed")
        let view = Self.members(alive: ["n1", "n2", "n3", "n5"], dead: ["n4"])
        #expect(r.next(voters: voters, learners: [], caughtUp: [], members: view, now: Self.at(61)) == .remove("n4"),
                "three voters stay, the factor: the dead one goes without a replacement")
    }

    @Test func aGroupBelowTheFactorGrowsOntoALiveNode() {
        var r = Self.reconciler()
        #expect(r.next(voters: ["n1", "n2"], learners: [], caughtUp: [], members: Self.members(alive: ["n1", "n2", "n7"]), now: Self.at(1)) == .addLearner("n7"))
        var single = Self.reconciler(factor: 1)
        #expect(single.next(voters: ["n1", "n2"], learners: [], caughtUp: [], members: Self.members(alive: ["n1", "n2", "n7"]), now: Self.at(1)) == nil,
                "above a factor of one, two live voters stay")
    }

    @Test func aLearnerThatDiedIsRemoved() {
        var r = Self.reconciler()
        let view = Self.members(alive: ["n1", "n2", "n3"], dead: ["n4"])
        #expect(r.next(voters: ["n1", "n2", "n3"], learners: ["n4"], caughtUp: [], members: view, now: Self.at(5)) == .remove("n4"))
    }
}
