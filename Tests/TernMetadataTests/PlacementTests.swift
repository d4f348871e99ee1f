import Testing
@testable import TernMetadata

@Suite struct PlacementTests {
    typealias Placement = Metadata.Placement
    typealias Candidate = Placement.Candidate

    static func nodes(_ count: Int, zones: [String] = []) -> [Candidate] {
        (1...count).map { Candidate(id: "n\($0)", zone: zones.isEmpty ? nil : zones[($0 - 1) % zones.count]) }
    }

    /// The hash is part of the format: a placement computed by one release must be computed
    /// the same by the next (and by every process: Swift's `Hasher` would differ per run).
    @Test func weights_areFixedValues() {
        #expect(Placement.weight(for: 1, node: "n1") == Placement.weight(for: 1, node: "n1"))
        #expect(Placement.weight(for: 1, node: "n1") != Placement.weight(for: 2, node: "n1"))
        #expect(Placement.weight(for: 1, node: "n1") != Placement.weight(for: 1, node: "n2"))
        #expect(Placement.weight(for: 1, node: "n1") == 0x1bfd_1ab6_5f10_162c)
        #expect(Placement.replicas(for: 1, among: Self.nodes(5), count: 3) == ["n5", "n3", "n4"])
        #expect(Placement.replicas(for: "orders", among: Self.nodes(5), count: 3) == ["n2", "n4", "n1"])
    }

    @Test func replicas_areDistinct_ordered_andIndependentOfCandidateOrder() {
        let nodes = Self.nodes(7)
        for key in UInt64(1)...200 {
            let chosen = Placement.replicas(for: key, among: nodes, count: 3)
            #expect(chosen.count == 3 && Set(chosen).count == 3)
            #expect(Placement.replicas(for: key, among: nodes.reversed(), count: 3) == chosen)
            #expect(Placement.replicas(for: key, among: nodes + nodes, count: 3) == chosen, "repeats count once")
            // The first replicas of a larger count are the smaller count's (a prefix).
            #expect(Array(Placement.replicas(for: key, among: nodes, count: 5).prefix(3)) == chosen)
        }
        #expect(Placement.replicas(for: 1, among: Self.nodes(2), count: 3).count == 2)
        #expect(Placement.replicas(for: 1, among: Self.nodes(2), count: 0) == [])
        #expect(Placement.replicas(for: 1, among: [], count: 3) == [])
    }

    /// Each node leads and holds about its share: over 3,000 groups on 6 nodes, every node is
    /// preferred leader of 500 ± 25 % and holds 1,500 ± 15 % replicas.
    @Test func placements_spreadEvenly() {
        let nodes = Self.nodes(6)
        var leaders: [String: Int] = [:], replicas: [String: Int] = [:]
        for key in UInt64(1)...3000 {
            let chosen = Placement.replicas(for: key, among: nodes, count: 3)
            leaders[chosen[0], default: 0] += 1
            for node in chosen { replicas[node, default: 0] += 1 }
        }
        for node in nodes {
            #expect((375...625).contains(leaders[node.id, default: 0]), "\(node.id) leads \(leaders[node.id, default: 0])")
            #expect((1275...1725).contains(replicas[node.id, default: 0]), "\(node.id) holds \(replicas[node.id, default: 0])")
        }
    }

    /// Adding an 11th node changes the replica sets of only the groups it joins: about
    /// 3/11 of them for 3 replicas, each by one replica; removing a node changes only the
    /// groups that held it. (Modulo hashing would move nearly all.)
    @Test func addingOrRemovingANode_movesOnlyItsShare() {
        let before = Self.nodes(10)
        let after = Self.nodes(11)
        let keys = UInt64(1)...4000
        var changed = 0, moved = 0
        for key in keys {
            let old = Placement.replicas(for: key, among: before, count: 3)
            let new = Placement.replicas(for: key, among: after, count: 3)
            if old != new {
                changed += 1
                #expect(new.contains("n11"), "key \(key) changed without the new node")
                moved += Set(new).subtracting(old).count
            }
        }
        let expected = Double(keys.count) * 3 / 11
        #expect(abs(Double(changed) - expected) < expected * 0.15, "changed \(changed), expected about \(expected)")
        #expect(moved == changed, "each changed group gains exactly one replica, the new node")
        // Removing n4: only groups that held n4 change, and they keep their other replicas.
        let fewer = before.filter { $0.id != "n4" }
        for key in keys {
            let old = Placement.replicas(for: key, among: before, count: 3)
            let new = Placement.replicas(for: key, among: fewer, count: 3)
            if old.contains("n4") {
                #expect(Set(old).subtracting(["n4"]).isSubset(of: Set(new)))
            } else {
                #expect(old == new)
            }
        }
    }

    @Test func zones_areSpreadFirst() {
        // 9 nodes in 3 zones (n1, n4, n7 in a; …): every 3-replica group spans the 3 zones.
        let nodes = Self.nodes(9, zones: ["a", "b", "c"])
        let zoneOf = Dictionary(uniqueKeysWithValues: nodes.map { ($0.id, $0.zone!) })
        for key in UInt64(1)...500 {
            let chosen = Placement.replicas(for: key, among: nodes, count: 3)
            #expect(Set(chosen.map { zoneOf[$0]! }).count == 3, "key \(key): \(chosen)")
            // 5 replicas over 3 zones: 2, 2, 1.
            let five = Placement.replicas(for: key, among: nodes, count: 5)
            let perZone = Dictionary(grouping: five, by: { zoneOf[$0]! }).mapValues(\.count).values.sorted()
            #expect(perZone == [1, 2, 2], "key \(key): \(five)")
            // The preferred leader is the heaviest node overall, as without zones.
            let plain = Placement.replicas(for: key, among: nodes.map { Candidate(id: $0.id) }, count: 1)
            #expect(chosen[0] == plain[0])
        }
        // Uneven zones: 2 zones, 3 replicas → 2 + 1.
        let two = Self.nodes(6, zones: ["a", "b"])
        for key in UInt64(1)...100 {
            let chosen = Placement.replicas(for: key, among: two, count: 3)
            #expect(Set(chosen.map { Int($0.dropFirst())! % 2 }).count == 2)
        }
    }

    @Test func next_picksTheRunnerUp_inTheLeastCoveredZone() {
        let nodes = Self.nodes(6)
        for key in UInt64(1)...200 {
            let ranked = Placement.replicas(for: key, among: nodes, count: 6)
            // Keeping the first and third, the next is the second; keeping all, none.
            let keeping = [ranked[0], ranked[2]].map { Candidate(id: $0) }
            #expect(Placement.next(for: key, among: nodes, keeping: keeping) == ranked[1])
            #expect(Placement.next(for: key, among: nodes, keeping: nodes) == nil)
        }
        // With zones: keeping replicas in a and b, the next comes from c though lighter.
        let zoned = Self.nodes(9, zones: ["a", "b", "c"])
        for key in UInt64(1)...200 {
            let keeping = [zoned[0], zoned[1]]
            let next = Placement.next(for: key, among: zoned, keeping: keeping)
            #expect(next.flatMap { id in zoned.first { $0.id == id }?.zone } == "c")
        }
    }
}
