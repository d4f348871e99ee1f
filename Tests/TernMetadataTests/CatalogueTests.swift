import Testing
import TernCore
import TernTestKit
@testable import TernMetadata

@Suite struct CatalogueTests {
    typealias Command = Metadata.Command
    let orders = Samples.name("orders")
    let dlq = Samples.name("orders-dlq")

    /// Applies `command`, expecting it to throw `code` and leave the catalogue as it was.
    func expectRefused(_ command: Command, on catalogue: Metadata.Catalogue, _ code: ErrorCode,
                       sourceLocation: SourceLocation = #_sourceLocation) {
        var copy = catalogue
        do {
            let outcome = try copy.apply(command)
            Issue.record("expected \(code), got \(outcome)", sourceLocation: sourceLocation)
        } catch {
            #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        }
        #expect(copy == catalogue, "a refused command changed the catalogue", sourceLocation: sourceLocation)
    }

    @Test func registerNode_thenSameZone_isUnchanged_andZoneChangeKeepsRegistrationTime() throws {
        var catalogue = Metadata.Catalogue()
        #expect(try catalogue.apply(.registerNode(id: "n1", zone: "a", at: Samples.t0)) == .nodeRegistered("n1"))
        #expect(try catalogue.apply(.registerNode(id: "n1", zone: "a", at: Samples.t0.adding(seconds: 5))) == .unchanged)
        #expect(try catalogue.apply(.registerNode(id: "n1", zone: "b", at: Samples.t0.adding(seconds: 9))) == .nodeUpdated("n1"))
        #expect(catalogue.nodes["n1"] == Metadata.Node(id: "n1", zone: "b", registeredAt: Samples.t0))
    }

    @Test func registerNode_badIdOrZone_isRefused() {
        let catalogue = Metadata.Catalogue()
        for id in ["", "has space", "ü", String(repeating: "x", count: 65)] {
            expectRefused(.registerNode(id: id, zone: nil, at: Samples.t0), on: catalogue, .invalidParameter)
        }
        expectRefused(.registerNode(id: "n1", zone: "", at: Samples.t0), on: catalogue, .invalidParameter)
        expectRefused(.registerNode(id: "n1", zone: String(repeating: "z", count: 65), at: Samples.t0), on: catalogue, .invalidParameter)
    }

    @Test func createQueue_makesAGroupAtEpoch1_andRepeatingItAnswersExists() throws {
        var catalogue = Samples.catalogue(nodes: 3)
        let outcome = try catalogue.apply(.createQueue(orders, placement: .replicas(["n2", "n1", "n3"], replicationFactor: 3)))
        #expect(outcome == .queueCreated(orders, group: 1, newGroup: true))
        let group = try #require(catalogue.group(ofQueue: orders))
        #expect(group == Metadata.Group(id: 1, kind: .queue, owner: orders, replicas: ["n2", "n1", "n3"], epoch: 1, replicationFactor: 3))
        #expect(group.preferredLeader == "n2")
        #expect(catalogue.nextGroupID == 2)
        let before = catalogue
        #expect(try catalogue.apply(.createQueue(orders, placement: .replicas(["n1"], replicationFactor: 1))) == .queueExists(orders, group: 1))
        #expect(catalogue == before)
    }

    @Test func createQueue_badReplicas_areRefused() {
        let catalogue = Samples.catalogue(nodes: 3)
        expectRefused(.createQueue(orders, placement: .replicas([], replicationFactor: 3)), on: catalogue, .invalidParameter)
        expectRefused(.createQueue(orders, placement: .replicas(["n1", "n1"], replicationFactor: 3)), on: catalogue, .invalidParameter)
        expectRefused(.createQueue(orders, placement: .replicas(["n1", "n9"], replicationFactor: 3)), on: catalogue, .invalidParameter)
        expectRefused(.createQueue(orders, placement: .replicas(["n1", "n2"], replicationFactor: 1)), on: catalogue, .invalidParameter)
        expectRefused(.createQueue(orders, placement: .replicas(["n1"], replicationFactor: 0)), on: catalogue, .invalidAttribute)
        expectRefused(.createQueue(orders, placement: .replicas(["n1"], replicationFactor: 10)), on: catalogue, .invalidAttribute)
        expectRefused(.createQueue(orders, placement: .colocated(with: orders)), on: catalogue, .invalidAttribute)
        expectRefused(.createQueue(orders, placement: .colocated(with: dlq)), on: catalogue, .queueNotFound)
    }

    @Test func colocatedQueue_sharesTheGroup_andReportsTheOwnerAsColocateWith() throws {
        var catalogue = Samples.catalogue(nodes: 3)
        _ = try catalogue.apply(.createQueue(orders, placement: .replicas(["n1", "n2", "n3"], replicationFactor: 3)))
        #expect(try catalogue.apply(.createQueue(dlq, placement: .colocated(with: orders))) == .queueCreated(dlq, group: 1, newGroup: false))
        // Colocating with a colocated queue lands in the same group; colocate_with names the owner.
        let third = Samples.name("orders-audit")
        _ = try catalogue.apply(.createQueue(third, placement: .colocated(with: dlq)))
        #expect(catalogue.queues(inGroup: 1) == [orders, dlq, third].sorted())
        #expect(catalogue.colocateWith(third) == orders)
        #expect(catalogue.colocateWith(orders) == nil)
        #expect(catalogue.groups.count == 1)
        #expect(try catalogue.apply(.createQueue(dlq, placement: .colocated(with: orders))) == .queueExists(dlq, group: 1))
        // A queue of its own cannot move into another group by a repeated create.
        let other = Samples.name("other")
        _ = try catalogue.apply(.createQueue(other, placement: .replicas(["n1"], replicationFactor: 1)))
        expectRefused(.createQueue(other, placement: .colocated(with: orders)), on: catalogue, .conflict)
    }

    @Test func deletingTheOwner_passesTheGroupToTheFirstRemainingQueue_andTheLastDeleteRemovesIt() throws {
        var catalogue = Samples.catalogue(nodes: 3)
        let audit = Samples.name("audit")
        _ = try catalogue.apply(.createQueue(orders, placement: .replicas(["n1", "n2", "n3"], replicationFactor: 3)))
        _ = try catalogue.apply(.createQueue(dlq, placement: .colocated(with: orders)))
        _ = try catalogue.apply(.createQueue(audit, placement: .colocated(with: orders)))
        #expect(try catalogue.apply(.deleteQueue(orders)) == .queueDeleted(orders, group: 1, groupDeleted: false))
        #expect(catalogue.groups[1]?.owner == audit)
        #expect(catalogue.colocateWith(dlq) == audit)
        try catalogue.validate()
        // A new queue named like the deleted owner gets a group of its own.
        _ = try catalogue.apply(.createQueue(orders, placement: .replicas(["n1"], replicationFactor: 1)))
        #expect(catalogue.queues[orders]?.group == 2)
        #expect(try catalogue.apply(.deleteQueue(audit)) == .queueDeleted(audit, group: 1, groupDeleted: false))
        #expect(try catalogue.apply(.deleteQueue(dlq)) == .queueDeleted(dlq, group: 1, groupDeleted: true))
        #expect(catalogue.groups[1] == nil)
        #expect(catalogue.nextGroupID == 3, "group ids are never reused")
        expectRefused(.deleteQueue(dlq), on: catalogue, .queueNotFound)
        try catalogue.validate()
    }

    @Test func createTopic_makesOneGroupPerPartition_coordinatedInPartition0() throws {
        var catalogue = Samples.catalogue(nodes: 3)
        _ = try catalogue.apply(.createQueue(orders, placement: .replicas(["n1"], replicationFactor: 1)))
        let clicks = Samples.name("clicks")
        let outcome = try catalogue.apply(.createTopic(clicks, partitions: [["n1", "n2"], ["n2", "n3"], ["n3"]], replicationFactor: 2))
        #expect(outcome == .topicCreated(clicks, groups: [2, 3, 4]))
        #expect(catalogue.topics[clicks]?.coordinationGroup == 2)
        #expect(catalogue.group(ofTopic: clicks, partition: 2)?.kind == .topicPartition(2))
        #expect(catalogue.group(ofTopic: clicks, partition: 2)?.replicas == ["n3"])
        #expect(catalogue.group(ofTopic: clicks, partition: 3) == nil)
        #expect(try catalogue.apply(.createTopic(clicks, partitions: [["n1"], ["n1"], ["n1"]], replicationFactor: 1)) == .topicExists(clicks, groups: [2, 3, 4]))
        expectRefused(.createTopic(clicks, partitions: [["n1"]], replicationFactor: 1), on: catalogue, .conflict)
        // A topic may share a queue's name: the namespaces are apart.
        _ = try catalogue.apply(.createTopic(orders, partitions: [["n1"]], replicationFactor: 1))
        try catalogue.validate()
        #expect(try catalogue.apply(.deleteTopic(clicks)) == .topicDeleted(clicks, groups: [2, 3, 4]))
        #expect(catalogue.groups.keys.sorted() == [1, 5])
        expectRefused(.deleteTopic(clicks), on: catalogue, .topicNotFound)
    }

    @Test func createTopic_badPartitions_areRefused_wholly() {
        let catalogue = Samples.catalogue(nodes: 3)
        let clicks = Samples.name("clicks")
        expectRefused(.createTopic(clicks, partitions: [], replicationFactor: 1), on: catalogue, .invalidAttribute)
        expectRefused(.createTopic(clicks, partitions: Array(repeating: ["n1"], count: 1025), replicationFactor: 1), on: catalogue, .invalidAttribute)
        // The last partition is bad: none of the others may be created.
        expectRefused(.createTopic(clicks, partitions: [["n1"], ["n2"], ["nX"]], replicationFactor: 1), on: catalogue, .invalidParameter)
    }

    @Test func membershipChanges_bumpTheEpoch_andAStaleEpochIsAConflict() throws {
        var catalogue = Samples.catalogue(nodes: 4)
        _ = try catalogue.apply(.createQueue(orders, placement: .replicas(["n1", "n2", "n3"], replicationFactor: 3)))
        #expect(try catalogue.apply(.addLearner(group: 1, node: "n4", epoch: 1)) == .replicasChanged(group: 1, epoch: 2))
        #expect(catalogue.groups[1]?.learners == ["n4"])
        expectRefused(.promoteLearner(group: 1, node: "n4", epoch: 1), on: catalogue, .conflict)
        #expect(try catalogue.apply(.promoteLearner(group: 1, node: "n4", epoch: 2)) == .replicasChanged(group: 1, epoch: 3))
        #expect(catalogue.groups[1]?.replicas == ["n1", "n2", "n3", "n4"])
        #expect(catalogue.groups[1]?.learners == [])
        #expect(try catalogue.apply(.removeReplica(group: 1, node: "n1", epoch: 3)) == .replicasChanged(group: 1, epoch: 4))
        #expect(catalogue.groups[1]?.replicas == ["n2", "n3", "n4"])
        #expect(catalogue.groups[1]?.preferredLeader == "n2")
    }

    @Test func membershipChanges_thatBreakTheRules_areRefused() throws {
        var catalogue = Samples.catalogue(nodes: 4)
        _ = try catalogue.apply(.createQueue(orders, placement: .replicas(["n1"], replicationFactor: 1)))
        expectRefused(.addLearner(group: 9, node: "n2", epoch: 1), on: catalogue, .invalidParameter)
        expectRefused(.addLearner(group: 1, node: "n1", epoch: 1), on: catalogue, .invalidParameter)
        expectRefused(.addLearner(group: 1, node: "n9", epoch: 1), on: catalogue, .invalidParameter)
        expectRefused(.promoteLearner(group: 1, node: "n2", epoch: 1), on: catalogue, .invalidParameter)
        expectRefused(.removeReplica(group: 1, node: "n2", epoch: 1), on: catalogue, .invalidParameter)
        expectRefused(.removeReplica(group: 1, node: "n1", epoch: 1), on: catalogue, .conflict)
        _ = try catalogue.apply(.addLearner(group: 1, node: "n2", epoch: 1))
        #expect(try catalogue.apply(.removeReplica(group: 1, node: "n2", epoch: 2)) == .replicasChanged(group: 1, epoch: 3))
        #expect(catalogue.groups[1]?.members == ["n1"])
    }

    @Test func groupsAtTheirLimits_refuseMoreMembers() throws {
        var catalogue = Samples.catalogue(nodes: 20)
        let nine = (1...9).map { "n\($0)" }
        _ = try catalogue.apply(.createQueue(orders, placement: .replicas(nine, replicationFactor: 9)))
        for (index, node) in (10...18).map({ "n\($0)" }).enumerated() {
            _ = try catalogue.apply(.addLearner(group: 1, node: node, epoch: UInt64(1 + index)))
        }
        expectRefused(.addLearner(group: 1, node: "n19", epoch: 10), on: catalogue, .conflict)
        expectRefused(.promoteLearner(group: 1, node: "n10", epoch: 10), on: catalogue, .conflict)
    }

    /// Random command sequences (valid and not) keep the invariants, and a refused command
    /// changes nothing.
    @Test(arguments: [UInt64(1), 2, 3, 4])
    func randomCommands_keepTheInvariants(seed: UInt64) throws {
        var random = SeededGenerator(seed: seed)
        var catalogue = Metadata.Catalogue()
        let nodes = (1...6).map { "n\($0)" } + ["bad id"]
        let names = ["a", "b", "c", "d.fifo"].map(Samples.name)
        var applied = 0
        for step in 0..<3000 {
            let node = nodes.randomElement(using: &random)!
            let name = names.randomElement(using: &random)!
            let group = UInt64.random(in: 0...catalogue.nextGroupID, using: &random)
            let epoch = catalogue.groups[group].map { Bool.random(using: &random) ? $0.epoch : $0.epoch + 1 } ?? 1
            let replicas = Array(nodes.shuffled(using: &random).prefix(Int.random(in: 0...4, using: &random)))
            let command: Command
            switch Int.random(in: 0..<9, using: &random) {
            case 0: command = .registerNode(id: node, zone: Bool.random(using: &random) ? "z\(step % 3)" : nil, at: Timestamp(milliseconds: UInt64(step)))
            case 1: command = .createQueue(name, placement: .replicas(replicas, replicationFactor: Int.random(in: 0...4, using: &random)))
            case 2: command = .createQueue(name, placement: .colocated(with: names.randomElement(using: &random)!))
            case 3: command = .deleteQueue(name)
            case 4: command = .createTopic(name, partitions: (0..<Int.random(in: 0...3, using: &random)).map { _ in replicas }, replicationFactor: 3)
            case 5: command = .deleteTopic(name)
            case 6: command = .addLearner(group: group, node: node, epoch: epoch)
            case 7: command = .promoteLearner(group: group, node: catalogue.groups[group]?.learners.first ?? node, epoch: epoch)
            default: command = .removeReplica(group: group, node: catalogue.groups[group]?.members.randomElement(using: &random) ?? node, epoch: epoch)
            }
            let before = catalogue
            do {
                _ = try catalogue.apply(command)
                applied += 1
            } catch {
                #expect(catalogue == before, "seed \(seed) step \(step): \(command) threw \(error) and changed the catalogue")
            }
            try catalogue.validate()
            // The snapshot round-trips at every step.
            if step % 50 == 0 { #expect(try Metadata.Codec.decodeCatalogue(Metadata.Codec.encode(catalogue)) == catalogue) }
        }
        #expect(applied > 300, "the generator should make many valid commands, made \(applied)")
    }
}
