import TernBroker
import TernCore
import TernTestKit

/// A seeded random workload over the broker's public API that reaches every command kind:
/// queues (standard, FIFO, dead-letter, size-limited, deleted and re-created), sends with
/// priorities and delays, receives, acknowledgements, visibility changes, purges, redrives,
/// time passing (delays, visibility timeouts, dead-letter moves, retention), topics with keyed
/// and keyless records, consumer groups that join, consume, commit (also with stale
/// generations), leave and expire, offset resets, idempotent producers, transactions, queue
/// metadata (tags, front-end attributes), the logical storage quota (sends refused at it),
/// producer expiry, and restarts. Failures the API reports (stale handles, fenced commits,
/// full queues) are part of the workload.
struct Workload {
    let fixture: BrokerFixture
    var random: SeededGenerator
    var handles: [(queue: String, handle: String)] = []
    var members: [(topic: String, group: String, member: String, generation: UInt32, partitions: [Int])] = []
    var producer: ProducerIdentity?
    var producerSequence: [String: UInt64] = [:]
    var transactionSequence: UInt64 = 0
    var operations = 0

    static let queues = ["jobs", "mail", "jobs-dlq", "orders.fifo", "orders-dlq.fifo", "small"]
    static let topics = ["logs", "events"]

    init(fixture: BrokerFixture, random: SeededGenerator) {
        self.fixture = fixture
        self.random = random
    }

    var broker: Broker { fixture.broker }

    mutating func pick<T>(_ values: [T]) -> T { values[Int(random.next() % UInt64(values.count))] }
    mutating func chance(_ percent: UInt64) -> Bool { random.next() % 100 < percent }
    mutating func number(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(random.next() % UInt64(range.count)) }

    /// Runs until the command log holds at least `commands` entries.
    mutating func run(commands: Int) async throws {
        try await setUp()
        while try logged() < commands {
            operations += 1
            do {
                try await step()
            } catch let error as TernError {
                _ = error  // refused operations are part of the workload
            }
        }
    }

    func logged() throws -> Int {
        Int(try fixture.storage.read { txn in try fixture.broker.machine.log.applied(in: txn).index })
    }

    mutating func setUp() async throws {
        try await fixture.createQueue("jobs-dlq")
        try await fixture.createQueue("orders-dlq.fifo")
        try await fixture.createQueue("jobs") { $0.maxReceiveCount = 2; $0.deadLetterQueue = try! QueueName("jobs-dlq"); $0.visibilityTimeout = 20 }
        try await fixture.createQueue("mail") { $0.retention = 120 }
        try await fixture.createQueue("orders.fifo") {
            $0.contentBasedDeduplication = true; $0.maxReceiveCount = 3; $0.deadLetterQueue = try! QueueName("orders-dlq.fifo")
        }
        try await fixture.createQueue("small") { $0.maxMessages = 20; $0.overflow = .dropOldest }
        _ = try await broker.createOrUpdateTopic(try QueueName("logs"), patch: .init(partitions: 4, retention: 300))
        _ = try await broker.createOrUpdateTopic(try QueueName("events"), patch: .init(partitions: 2, maxBytes: 20_000))
    }

    mutating func body() -> [UInt8] {
        Array("line \(random.next() % 100_000) \(String(repeating: "x", count: number(0...200)))".utf8)
    }

    mutating func step() async throws {
        switch random.next() % 100 {
        case 0..<18: try await send()
        case 18..<30: try await receive()
        case 30..<40: try await acknowledge()
        case 40..<44: try await changeVisibility()
        case 44..<52: fixture.clock.advance(bySeconds: number(0...25)); _ = try await broker.runDueWork()
        case 52..<62: try await produce()
        case 62..<75: try await group()
        case 75..<82: try await idempotent()
        case 82..<88: try await transaction()
        case 88..<90:
            let queue = try QueueName(pick(["mail", "small", "jobs"]))
            if chance(80) {
                _ = try await broker.purgeQueue(queue)
            } else {
                // A purge chunk as builds before decision 112 logged it (their logs still replay).
                let record = try broker.describeQueueWithMetadata(queue)
                let command = Command.purge(queueID: record.queueID, below: UInt64(number(1...400)), limit: number(1...50))
                let machine = broker.machine
                let envelope = CommandEnvelope(time: fixture.clock.now, command: command)
                _ = try await fixture.storage.write { txn in try machine.apply(envelope, in: txn) }
            }
        case 90..<92: _ = try await broker.redrive(try QueueName(pick(["jobs-dlq", "orders-dlq.fifo"])))
        case 92..<94: try await recreate()
        case 94..<95:
            if chance(50) {
                _ = try await broker.expireProducers(idleSeconds: 60)
            } else {
                // The logical quota: now and then just above what is stored (sends get refused), else off.
                let used = try broker.storageUsage().storedBytes
                _ = try await broker.setStorageLimit(chance(60) ? used + UInt64(number(0...3000)) : nil)
            }
        case 95..<96: try await metadata()
        case 96..<97:
            let name = try QueueName(pick(Self.queues))
            _ = try await broker.createOrUpdateQueue(name, patch: { var p = QueueAttributes.Patch(); p.visibilityTimeout = number(5...40); return p }())
        case 97..<98:
            _ = try await broker.createOrUpdateTopic(try QueueName("logs"), patch: .init(retention: number(100...400)))
        default:
            try await fixture.reopen()
            members.removeAll()  // members re-join after a restart here (their sessions survive, their ids are dropped)
        }
    }

    mutating func send() async throws {
        let queue = pick(Self.queues)
        let count = number(1...5)
        var messages = [OutgoingMessage]()
        for _ in 0..<count {
            if queue.hasSuffix(".fifo") {
                messages.append(OutgoingMessage(body: Array("order \(random.next() % 50)".utf8), groupID: "g\(random.next() % 4)",
                                                deduplicationID: chance(30) ? "d\(random.next() % 20)" : nil))
            } else {
                let attributes = chance(25) ? [MessageAttribute(name: "trace", dataType: "String", value: Array("t-\(random.next() % 1000)".utf8))] : []
                messages.append(OutgoingMessage(body: body(), priority: UInt8(random.next() % 10), delay: chance(20) ? number(1...30) : nil,
                                                attributes: attributes))
            }
        }
        _ = try await broker.send(try QueueName(queue), messages)
    }

    mutating func receive() async throws {
        let queue = pick(Self.queues)
        let received = try await broker.receive(try QueueName(queue), maxMessages: number(1...6),
                                                visibilityTimeout: chance(50) ? number(1...30) : nil, autoAcknowledge: chance(10))
        for message in received where !message.receiptHandle.isEmpty { handles.append((queue, message.receiptHandle)) }
        if handles.count > 200 { handles.removeFirst(handles.count - 200) }
    }

    mutating func acknowledge() async throws {
        guard !handles.isEmpty else { return }
        let count = number(1...min(4, handles.count))
        let chosen = (0..<count).map { _ in handles.remove(at: Int(random.next() % UInt64(handles.count))) }
        if count == 1 {
            try await broker.acknowledge(try QueueName(chosen[0].queue), receiptHandle: chosen[0].handle)
        } else {
            _ = try await broker.acknowledge(try QueueName(chosen[0].queue), receiptHandles: chosen.map(\.handle))
        }
    }

    mutating func changeVisibility() async throws {
        guard let (queue, handle) = handles.randomElement(using: &random) else { return }
        if chance(30) {
            // A batch over the queue's handles (stale and expired ones fail in their slots).
            var batch = [(receiptHandle: String, timeout: Int)]()
            for entry in handles.filter({ $0.queue == queue }).prefix(number(1...4)) {
                batch.append((entry.handle, chance(40) ? 0 : number(1...60)))
            }
            _ = try await broker.changeVisibility(try QueueName(queue), changes: batch)
            return
        }
        try await broker.changeVisibility(try QueueName(queue), receiptHandle: handle, timeout: chance(40) ? 0 : number(1...60))
    }

    mutating func produce() async throws {
        let topic = pick(Self.topics)
        let messages = (0..<number(1...8)).map { _ in
            TopicMessage(key: chance(50) ? Array("k\(random.next() % 10)".utf8) : nil, value: body())
        }
        _ = try await broker.produce(try QueueName(topic), messages)
    }

    mutating func group() async throws {
        let topic = try QueueName(pick(Self.topics))
        let group = try QueueName(pick(["indexers", "billing"]))
        switch random.next() % 6 {
        case 0, 1:
            let (member, assignment) = try await broker.joinGroup(topic, group: group, sessionTimeout: number(5...30))
            members.append((topic.rawValue, group.rawValue, member, assignment.generation, assignment.partitions))
        case 2:
            guard !members.isEmpty else { return }
            let member = members.remove(at: Int(random.next() % UInt64(members.count)))
            try await broker.leaveGroup(try QueueName(member.topic), group: try QueueName(member.group), memberID: member.member)
        case 3, 4:
            guard !members.isEmpty else { return }
            let index = Int(random.next() % UInt64(members.count))
            let member = members[index]
            let batch = try await broker.consume(try QueueName(member.topic), group: try QueueName(member.group), memberID: member.member, max: 20)
            members[index].generation = batch.assignment.generation
            members[index].partitions = batch.assignment.partitions
            var offsets = [Int: UInt64]()
            for message in batch.messages { offsets[message.partition] = message.offset + 1 }
            // Sometimes with the generation the member had before (fenced after a rebalance).
            let generation = chance(20) ? member.generation : batch.assignment.generation
            if !offsets.isEmpty {
                try await broker.commitOffsets(try QueueName(member.topic), group: try QueueName(member.group), memberID: member.member,
                                               generation: generation, offsets: offsets)
            }
        default:
            if chance(50) {
                // Let sessions expire: the next group call expires them by command.
                fixture.clock.advance(bySeconds: number(5...35))
                _ = try await broker.describeGroup(topic, group: group)
            } else {
                try await broker.resetGroupOffsets(topic, group: group, to: pick([.earliest, .latest]))
            }
        }
    }

    mutating func ensureProducer() async throws -> ProducerIdentity {
        if let producer, !chance(3) { return producer }
        let identity = try await broker.initProducer(transactionalID: chance(50) ? "tx-\(random.next() % 3)" : nil)
        producer = identity
        producerSequence = [:]
        transactionSequence = 0
        return identity
    }

    mutating func idempotent() async throws {
        let identity = try await ensureProducer()
        if chance(50) {
            let queue = pick(["jobs", "mail"])
            let messages = (0..<number(1...4)).map { _ in OutgoingMessage(body: body()) }
            // Sometimes a retry of the previous batch (answered as a duplicate).
            let first = producerSequence[queue, default: 0]
            let stamp = ProducerStamp(producer: identity, firstSequence: chance(20) && first >= UInt64(messages.count) ? first - UInt64(messages.count) : first)
            let result = try await broker.send(try QueueName(queue), messages, producer: stamp)
            if !result.duplicate { producerSequence[queue] = first + UInt64(messages.count) }
        } else {
            let topic = pick(Self.topics)
            let messages = (0..<number(1...4)).map { _ in TopicMessage(key: chance(50) ? Array("k\(random.next() % 5)".utf8) : nil, value: body()) }
            let first = producerSequence["topic:" + topic, default: 0]
            let result = try await broker.produce(try QueueName(topic), messages, producer: ProducerStamp(producer: identity, firstSequence: first))
            if !result.duplicate { producerSequence["topic:" + topic] = first + UInt64(messages.count) }
        }
    }

    mutating func transaction() async throws {
        let identity = try await ensureProducer()
        var transaction = ProducerTransaction(producer: identity, sequence: transactionSequence + 1)
        if let (queue, handle) = handles.popLast() { transaction.acknowledge(try QueueName(queue), receiptHandle: handle) }
        transaction.send(try QueueName(pick(["jobs", "mail"])), [OutgoingMessage(body: body())])
        if chance(50) { transaction.produce(try QueueName("logs"), [TopicMessage(value: body())]) }
        if chance(30), let member = members.first(where: { $0.topic == "logs" && !$0.partitions.isEmpty }) {
            transaction.commitOffset(.init(topic: member.topic, group: member.group, partition: UInt32(member.partitions[0]), offset: 0,
                                           memberID: member.member, generation: member.generation))
        }
        _ = try await broker.commit(transaction)
        transactionSequence += 1
    }

    /// Tags and front-end attributes (SQS's), read-modify-write with the revision check;
    /// `mail`'s are dropped with it when it is deleted and re-created.
    mutating func metadata() async throws {
        let queue = try QueueName(pick(["mail", "jobs", "orders.fifo"]))
        let key = "k\(random.next() % 6)"
        let value = chance(25) ? nil : "v\(random.next() % 100)"
        let touch = chance(50)
        try await broker.modifyQueueMetadata(queue, lastModified: touch ? .commandTime : .keep) { _, tags, attributes in
            if key.hasSuffix("5") { attributes["Policy"] = value } else { tags[key] = value }
        }
    }

    mutating func recreate() async throws {
        if chance(50) {
            try await broker.deleteQueue(try QueueName("mail"))
            // A front end remembers the name (SQS's 60 s); re-created all the same here. (No
            // random draw: the seeds' workloads stay what they were.)
            try await broker.noteDeletedQueue(try QueueName("mail"), keepMilliseconds: 60_000)
            try await fixture.createQueue("mail") { $0.retention = 120 }
        } else {
            try await broker.deleteTopic(try QueueName("events"))
            _ = try await broker.createOrUpdateTopic(try QueueName("events"), patch: .init(partitions: 2, maxBytes: 20_000))
            members.removeAll { $0.topic == "events" }
        }
    }
}
