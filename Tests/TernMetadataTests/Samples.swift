import TernCore
@testable import TernMetadata

/// Builders shared by the metadata tests.
enum Samples {
    static let t0 = Timestamp(milliseconds: 1_764_000_000_000)

    static func name(_ raw: String) -> QueueName { try! QueueName(raw) }

    /// A catalogue with nodes `n1`…`nN` registered (zones cycling through `zones`, if any).
    static func catalogue(nodes count: Int, zones: [String] = []) -> Metadata.Catalogue {
        var catalogue = Metadata.Catalogue()
        for index in 1...count {
            let zone = zones.isEmpty ? nil : zones[(index - 1) % zones.count]
            _ = try! catalogue.apply(.registerNode(id: "n\(index)", zone: zone, at: t0))
        }
        return catalogue
    }

    /// One command of every kind (and of every placement), for codec tests and the fixture.
    static let everyCommand: [Metadata.Command] = [
        .registerNode(id: "n1", zone: nil, at: t0),
        .registerNode(id: "node-2.eu", zone: "eu-west-1a", at: Timestamp(milliseconds: 1)),
        .createQueue(name("orders"), placement: .replicas(["n1", "n2", "n3"], replicationFactor: 3)),
        .createQueue(name("orders-dlq"), placement: .colocated(with: name("orders"))),
        .createQueue(name("jobs.fifo"), placement: .replicas(["n2"], replicationFactor: 1)),
        .deleteQueue(name("orders")),
        .createTopic(name("clicks"), partitions: [["n1", "n2"], ["n2", "n3"], ["n3", "n1"]], replicationFactor: 2),
        .deleteTopic(name("clicks")),
        .addLearner(group: 3, node: "n4", epoch: 1),
        .promoteLearner(group: 3, node: "n4", epoch: 2),
        .removeReplica(group: 300, node: "n1", epoch: 1 << 40),
    ]

    /// A catalogue using every feature: zones, a colocated queue, a topic, a learner, a bumped epoch.
    static func richCatalogue() -> Metadata.Catalogue {
        var catalogue = catalogue(nodes: 5, zones: ["a", "b"])
        _ = try! catalogue.apply(.registerNode(id: "solo", zone: nil, at: Timestamp(milliseconds: 5)))
        _ = try! catalogue.apply(.createQueue(name("orders"), placement: .replicas(["n1", "n2", "n3"], replicationFactor: 3)))
        _ = try! catalogue.apply(.createQueue(name("orders-dlq"), placement: .colocated(with: name("orders"))))
        _ = try! catalogue.apply(.createQueue(name("jobs.fifo"), placement: .replicas(["n4"], replicationFactor: 3)))
        _ = try! catalogue.apply(.createTopic(name("clicks"), partitions: [["n1", "n2"], ["n2", "n3"]], replicationFactor: 2))
        _ = try! catalogue.apply(.addLearner(group: 2, node: "n5", epoch: 1))
        _ = try! catalogue.apply(.addLearner(group: 1, node: "n4", epoch: 1))
        _ = try! catalogue.apply(.promoteLearner(group: 1, node: "n4", epoch: 2))
        return catalogue
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
    }

    static func bytes(hex: Substring) -> [UInt8]? {
        guard hex.count % 2 == 0 else { return nil }
        var result: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index..<next], radix: 16) else { return nil }
            result.append(byte)
            index = next
        }
        return result
    }
}
