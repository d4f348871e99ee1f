import Foundation
import Testing
import TernCore
@testable import TernMetadata

/// Size and cost at scale: 100 nodes in 3 zones, `queues` queues of 3 replicas and a 1,024-partition topic.
@Suite struct ScaleTests {
    static func bigCluster(queues: Int) throws -> (Metadata.Catalogue, [Metadata.Controller.Member]) {
        var catalogue = Metadata.Catalogue()
        var members: [Metadata.Controller.Member] = []
        for index in 1...100 {
            let zone = "zone-\(index % 3)"
            _ = try catalogue.apply(.registerNode(id: "node-\(index)", zone: zone, at: Samples.t0))
            members.append(.init(id: "node-\(index)", zone: zone, status: .alive, since: Samples.t0))
        }
        let controller = Metadata.Controller()
        for index in 0..<queues {
            // Decided first, applied after: `catalogue.apply(controller.placeQueue(…, catalogue: catalogue))`
            // would hold a second reference to the catalogue during the mutation and copy it each time.
            let command = try controller.placeQueue(Samples.name("queue-\(index)"), catalogue: catalogue, members: members)
            _ = try catalogue.apply(command)
        }
        let topic = try controller.placeTopic(Samples.name("events"), partitions: 1024, catalogue: catalogue, members: members)
        _ = try catalogue.apply(topic)
        return (catalogue, members)
    }

    /// The snapshot stays small: with 9–10-character queue names and 6–8-character node ids,
    /// under 56 bytes a group (id, kind, owner, factor, epoch, 3 replicas, no learners) with its
    /// queue entry (name, group id) — about 53 for 11,024 groups.
    @Test func snapshot_isCompact_andRoundTrips() throws {
        let (catalogue, _) = try Self.bigCluster(queues: 1000)
        let bytes = Metadata.Codec.encode(catalogue)
        #expect(bytes.count < catalogue.groups.count * 56, "\(bytes.count) bytes for \(catalogue.groups.count) groups")
        #expect(try Metadata.Codec.decodeCatalogue(bytes) == catalogue)
    }

    /// How long a plan, an encode and a decode take at this scale (not a test of speed: it
    /// prints figures for `docs/performance.md`). Run with
    /// `TERN_METADATA_SCALE=1 swift test --skip-build --filter ScaleTests/timings` (10,000 queues).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["TERN_METADATA_SCALE"] == "1"))
    func timings() throws {
        let (catalogue, members) = try Self.bigCluster(queues: 10_000)
        var progress: [Metadata.GroupID: Metadata.Controller.GroupProgress] = [:]
        for group in catalogue.groups.values { progress[group.id] = .init(voters: Set(group.replicas)) }
        let clock = ContinuousClock()
        var controller = Metadata.Controller()
        var plan = Metadata.Controller.Plan()
        let steady = clock.measure { plan = controller.plan(catalogue: catalogue, members: members, progress: progress, now: Samples.t0) }
        let warm = clock.measure { plan = controller.plan(catalogue: catalogue, members: members, progress: progress, now: Samples.t0) }
        var dead = members
        dead[0].status = .dead
        let replacing = clock.measure {
            plan = controller.plan(catalogue: catalogue, members: dead, progress: progress, now: Samples.t0.adding(seconds: 61))
        }
        var bytes: [UInt8] = []
        let encode = clock.measure { bytes = Metadata.Codec.encode(catalogue) }
        let decode = try clock.measure { _ = try Metadata.Codec.decodeCatalogue(bytes) }
        print("""
            metadata scale: \(catalogue.groups.count) groups on \(catalogue.nodes.count) nodes; snapshot \(bytes.count) bytes
            plan, nothing to do: \(steady) first, \(warm) again; plan, node-1 dead past replace-after: \(replacing) (\(plan.commands.count) commands, \(plan.waiting.count) waiting)
            encode: \(encode); decode + validate: \(decode)
            """)
    }
}
