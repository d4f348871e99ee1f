import TernBroker
import TernCore
import TernTestKit

/// Commands of every kind, with random fields, for codec tests.
enum CommandSamples {
    static func name(_ random: inout SeededGenerator, fifo: Bool = false) -> QueueName {
        try! QueueName("q\(random.next() % 1000)" + (fifo ? ".fifo" : ""))
    }

    static func optional<T>(_ random: inout SeededGenerator, _ make: (inout SeededGenerator) -> T) -> T? {
        random.next() % 2 == 0 ? nil : make(&random)
    }

    /// `attributes: false` draws no random values for attributes, so that seed 1 gives the
    /// commands the version-1 fixtures were written from.
    static func message(_ random: inout SeededGenerator, attributes: Bool = true) -> OutgoingMessage {
        let size = Int(random.next() % 600)
        let text = random.next() % 2 == 0
        let body = text ? Array(String(repeating: "log line ", count: size / 9 + 1).utf8) : random.bytes(count: size + 1)
        return OutgoingMessage(body: body, priority: UInt8(random.next() % 10), delay: optional(&random) { Int($0.next() % 900) },
                               groupID: optional(&random) { "g\($0.next() % 9)" }, deduplicationID: optional(&random) { "d\($0.next())" },
                               attributes: !attributes ? [] : (0..<(random.next() % 3)).map { i in
                                   MessageAttribute(kind: i == 0 ? .user : .system, name: "attr\(i)", dataType: ["String", "Number", "Binary.png"][Int(random.next() % 3)],
                                                    value: random.bytes(count: Int(random.next() % 20)))
                               })
    }

    static func handle(_ random: inout SeededGenerator) -> ReceiptHandle {
        ReceiptHandle(queue: UInt32(random.next() % 100 + 1), sequence: random.next() % 1_000_000,
                      nonce: ReceiptNonce(high: random.next(), low: random.next()))
    }

    static func stamp(_ random: inout SeededGenerator) -> ProducerStamp {
        ProducerStamp(producer: ProducerIdentity(producerID: random.next() % 1000, epoch: UInt32(random.next() % 10)),
                      firstSequence: random.next() % 10_000)
    }

    static func produce(_ random: inout SeededGenerator, stamped: Bool) -> TopicProduce {
        let count = Int(random.next() % 5) + 1
        let messages = (0..<count).map { _ in
            TopicMessage(key: optional(&random) { $0.bytes(count: Int($0.next() % 20)) }, value: random.bytes(count: Int(random.next() % 300)),
                         partition: optional(&random) { Int($0.next() % 8) })
        }
        return TopicProduce(topic: name(&random), topicID: UInt32(random.next() % 50 + 1), messages: messages,
                            targets: messages.map { _ in Int(random.next() % 8) }, sticky: optional(&random) { Int($0.next() % 8) },
                            stamp: stamped ? optional(&random) { stamp(&$0) } : nil)
    }

    static func offsetCommit(_ random: inout SeededGenerator) -> OffsetCommitCommand {
        var offsets = [Int: UInt64]()
        for _ in 0..<(random.next() % 4 + 1) { offsets[Int(random.next() % 16)] = random.next() % 100_000 }
        let member = random.next() % 2 == 0
        return OffsetCommitCommand(topic: name(&random), group: name(&random), memberID: member ? "m-\(random.next())" : nil,
                                   generation: member ? UInt32(random.next() % 100) : nil, offsets: offsets)
    }

    static func metadataPatch(_ random: inout SeededGenerator) -> QueueMetadataPatch {
        var patch = QueueMetadataPatch()
        for _ in 0..<(random.next() % 3) { patch.tags["team-\(random.next() % 9)"] = random.next() % 3 == 0 ? .some(nil) : "v\(random.next())" }
        for _ in 0..<(random.next() % 3) {
            patch.attributes[["Policy", "RedriveAllowPolicy", "ReceiveMessageWaitTimeSeconds"][Int(random.next() % 3)]] =
                random.next() % 3 == 0 ? .some(nil) : "{\"ü\": \(random.next())}"
        }
        patch.lastModified = [.keep, .commandTime, .at(Timestamp(milliseconds: random.next() % 1_800_000_000_000))][Int(random.next() % 3)]
        patch.expected = optional(&random) { .init(queueID: UInt32($0.next() % 100), revision: $0.next() % 50) }
        return patch
    }

    static func patch(_ random: inout SeededGenerator) -> QueueAttributes.Patch {
        var patch = QueueAttributes.Patch()
        patch.visibilityTimeout = optional(&random) { Int($0.next() % 43_200) }
        patch.retention = optional(&random) { Int($0.next() % 100_000) + 60 }
        patch.maxMessageBytes = optional(&random) { Int($0.next() % 100_000) + 1 }
        patch.delay = optional(&random) { Int($0.next() % 60) }
        patch.maxReceiveCount = optional(&random) { r in optional(&r) { Int($0.next() % 10) + 1 } }
        patch.deadLetterQueue = optional(&random) { r in optional(&r) { name(&$0) } }
        patch.fifo = optional(&random) { $0.next() % 2 == 0 }
        patch.maxMessages = optional(&random) { r in optional(&r) { Int($0.next() % 1000) + 1 } }
        patch.maxBytes = optional(&random) { r in optional(&r) { Int($0.next() % 1_000_000) + 1 } }
        patch.contentBasedDeduplication = optional(&random) { $0.next() % 2 == 0 }
        patch.overflow = optional(&random) { $0.next() % 2 == 0 ? .reject : .dropOldest }
        return patch
    }

    /// The kinds version 1 of the codec knew: the first entries of ``everyKind(_:attributes:)``
    /// (the records of `Fixtures/commands-v1.hex`).
    static let version1Kinds = 22
    /// The kinds the records of `Fixtures/commands-v2.hex` cover (version 2's, through tag 27).
    static let version2Kinds = 27

    /// One command of every kind (27): the first 22 in ``Command`` case order, kinds added later
    /// appended at the end, so the seeded values of the earlier ones (and the fixture records
    /// made from them) stay the same; `attributes: false` gives messages as version 1 of the
    /// codec could carry them.
    static func everyKind(_ random: inout SeededGenerator, attributes: Bool = true) -> [Command] {
        let messages = (0..<(random.next() % 4 + 1)).map { _ in message(&random, attributes: attributes) }
        return [
            .createOrUpdateQueue(name(&random), patch(&random)),
            .deleteQueue(name(&random)),
            .send(name(&random), messages, idSeed: random.next()),
            .sendIdempotent(name(&random), messages, stamp: stamp(&random), idSeed: random.next()),
            .receive(name(&random), maxMessages: Int(random.next() % 1000) + 1, visibilityTimeout: optional(&random) { Int($0.next() % 100) },
                     autoAcknowledge: random.next() % 2 == 0, nonceSeed: random.next()),
            .acknowledge(name(&random), (0..<(random.next() % 3 + 1)).map { _ in handle(&random) }),
            .changeVisibility(name(&random), handle(&random), timeout: Int(random.next() % 43_200)),
            .purge(queueID: UInt32(random.next() % 100), below: random.next() % 10_000, limit: 5000),
            .redrive(name(&random), after: random.next() % 1000, limit: 5000),
            .tick(limit: 5000),
            .retention(limit: 5000),
            .createOrUpdateTopic(name(&random), TopicAttributes.Patch(partitions: optional(&random) { Int($0.next() % 16) + 1 },
                                                                      retention: optional(&random) { Int($0.next() % 10_000) + 60 },
                                                                      maxBytes: optional(&random) { r in optional(&r) { Int($0.next() % 1_000_000) + 1 } })),
            .deleteTopic(name(&random)),
            .produce(produce(&random, stamped: true)),
            .joinGroup(topic: name(&random), group: name(&random), memberID: "m-\(random.next())", sessionTimeout: Int(random.next() % 300) + 1),
            .leaveGroup(topic: name(&random), group: name(&random), memberID: "m-\(random.next())"),
            .expireMembers(topic: name(&random), group: name(&random), memberIDs: (0..<(random.next() % 3)).map { _ in "m-\(random.next())" }),
            .commitOffsets(offsetCommit(&random)),
            .resetOffsets(topic: name(&random), group: name(&random),
                          to: [.earliest, .latest, .timestamp(Timestamp(milliseconds: random.next() % 1_800_000_000_000))][Int(random.next() % 3)]),
            .initProducer(transactionalID: optional(&random) { "tx-\($0.next())" }),
            .commitTransaction(TransactionCommand(
                producer: ProducerIdentity(producerID: random.next() % 100, epoch: UInt32(random.next() % 5)),
                sequence: optional(&random) { $0.next() % 100 },
                acknowledgements: (0..<(random.next() % 3)).map { _ in .init(queue: name(&random), handle: handle(&random)) },
                sends: (0..<(random.next() % 3)).map { _ in .init(queue: name(&random), messages: messages, idSeed: random.next()) },
                produces: (0..<(random.next() % 2)).map { _ in produce(&random, stamped: false) },
                offsets: (0..<(random.next() % 2)).map { _ in offsetCommit(&random) })),
            .expireProducers(idleSeconds: 604_800, limit: 5000),
            .changeVisibilityBatch(name(&random), (0..<(random.next() % 3 + 1)).map { _ in
                VisibilityChange(handle: handle(&random), timeout: Int(random.next() % 43_201))
            }),
            .updateQueueMetadata(name(&random), metadataPatch(&random)),
            .setStorageLimit(bytes: optional(&random) { $0.next() % (1 << 40) }),
            .purgeQueue(name(&random)),
            .noteDeletedQueue(name(&random), keepMilliseconds: random.next() % 86_400_001),
        ]
    }
}
