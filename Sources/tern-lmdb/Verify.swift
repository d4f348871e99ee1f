import ArgumentParser
import Foundation
import TernBroker
import TernCore
import TernStorage

/// `tern-lmdb verify DIR`: checks, in one read snapshot, every stored record's envelope
/// (checksum, format version, flags, snappy block) and layout, and the consistency of every
/// index with the messages: no index entry without its message, no message missing from the
/// index of its state, queue counters equal to the counts found, sequences below the queue's
/// next sequence, names and records in agreement. Topic batches and partition states are
/// checked the same way. Prints one line per problem naming the database and key, then a
/// summary; exit status 1 when anything is wrong.
struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every record's checksum and format and the consistency of indexes, messages and counters; exit 1 with a report when anything is wrong.")
    @OptionGroup var options: DirectoryOptions
    @Option(help: "Stop listing problems after this many (all are still counted).") var maxProblems = 1000

    func run() throws {
        let storage = try options.open()
        defer { storage.close() }
        let report = try storage.read { txn in
            var verifier = Verifier(storage: storage, txn: txn)
            return try verifier.run()
        }
        for problem in report.problems.prefix(maxProblems) { printLine("PROBLEM \(problem)") }
        if report.problems.count > maxProblems { printLine("… and \(report.problems.count - maxProblems) more problems") }
        let summary = report.checked.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        if report.problems.isEmpty {
            printLine("OK: \(summary)")
        } else {
            printLine("FAILED: \(report.problems.count) problem(s); checked \(summary)")
            throw ExitCode(1)
        }
    }
}

struct VerifyReport {
    var problems: [String] = []
    var checked: [String: Int] = [:]
}

struct Verifier {
    let storage: Storage
    let txn: ReadTransaction
    var report = VerifyReport()

    init(storage: Storage, txn: ReadTransaction) {
        self.storage = storage
        self.txn = txn
    }

    mutating func problem(_ text: String) { report.problems.append(text) }

    func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// Every entry of `name`, or nil (with a problem) when the database is missing.
    mutating func entries(_ name: String) throws -> [Cursor.Entry]? {
        guard storage.hasDatabase(name) else { return nil }
        let all = try txn.withCursor(storage.database(name)) { cursor in
            var all = [Cursor.Entry]()
            var entry = try cursor.first()
            while let current = entry {
                all.append(current)
                entry = try cursor.next()
            }
            return all
        }
        report.checked[name] = all.count
        return all
    }

    mutating func run() throws -> VerifyReport {
        try verifyQueues()
        if TopicSchema.databaseNames.allSatisfy(storage.hasDatabase) { try verifyTopics() }
        if storage.hasDatabase("topic_partitions") { verifyStoredBytes() }
        return report
    }

    /// The logical quota's counter (`meta` `stored_bytes`, decision 111) equals the sum of the
    /// queue records' and partition states' accounted bytes.
    mutating func verifyStoredBytes() {
        let quota = StorageQuota(storage: storage)
        do {
            guard let stored = try txn.get(storage.database("meta"), Array("stored_bytes".utf8)) else { return }
            var reader = BigEndianReader(stored)
            let counter = try reader.readUInt64()
            let sum = try quota.recomputed(in: txn)
            if counter != sum { problem("meta[stored_bytes]: is \(counter), but the queues and topic partitions hold \(sum) accounted bytes") }
        } catch {
            problem("meta[stored_bytes]: \(error)")
        }
    }

    // MARK: Queues

    mutating func verifyQueues() throws {
        guard QueueSchema.databaseNames.prefix(8).allSatisfy(storage.hasDatabase) else {
            problem("queue databases missing: \(QueueSchema.databaseNames.prefix(8).filter { !storage.hasDatabase($0) })")
            return
        }
        // Queue records.
        var records = [UInt32: QueueRecord]()
        for entry in try entries("queues") ?? [] {
            let where_ = "queues[id \(hex(entry.key))]"
            do {
                let record = try QueueRecord(decoding: entry.value)
                guard entry.key == QueueSchema.queueIDKey(record.id) else {
                    problem("\(where_): record holds id \(record.id), stored under another key")
                    continue
                }
                records[record.id] = record
            } catch {
                problem("\(where_): \(error)")
            }
        }
        // Names.
        var named = Set<UInt32>()
        for entry in try entries("queue_names") ?? [] {
            let name = String(decoding: entry.key, as: UTF8.self)
            var reader = BigEndianReader(entry.value)
            guard entry.value.count == 4, let id = try? reader.readUInt32() else {
                problem("queue_names[\(name)]: value is \(entry.value.count) bytes, expected a 4-byte queue id")
                continue
            }
            guard let record = records[id] else {
                problem("queue_names[\(name)]: names queue id \(id), which has no record in queues")
                continue
            }
            if record.deleted { problem("queue_names[\(name)]: names queue id \(id), whose record is marked deleted") }
            if record.name.rawValue != name { problem("queue_names[\(name)]: names queue id \(id), whose record is named \(record.name)") }
            named.insert(id)
        }
        for record in records.values where !record.deleted && !named.contains(record.id) {
            problem("queues[id \(record.id) \(record.name)]: live queue has no entry in queue_names")
        }
        if let stored = try txn.get(storage.database("meta"), Array("next_queue_id".utf8)) {
            var reader = BigEndianReader(stored)
            if let next = try? reader.readUInt32(), let highest = records.keys.max(), next <= highest {
                problem("meta[next_queue_id]: is \(next), but queue id \(highest) exists")
            }
        }

        // Messages and bodies.
        struct Found { var header: MessageHeader }
        var messages = [[UInt8]: MessageHeader]()
        var counted = [UInt32: QueueCounts]()
        for entry in try entries("messages") ?? [] {
            guard entry.key.count == 16, let key = try? QueueSchema.decodeMessageKey(entry.key) else {
                problem("messages[key \(hex(entry.key))]: key is \(entry.key.count) bytes, expected 16")
                continue
            }
            let where_ = "messages[queue \(key.queue) partition \(key.partition) sequence \(key.sequence)]"
            let header: MessageHeader
            do { header = try MessageHeader(decoding: entry.value) } catch {
                problem("\(where_): \(error)")
                continue
            }
            messages[entry.key] = header
            guard let record = records[key.queue] else {
                problem("\(where_): queue \(key.queue) has no record")
                continue
            }
            if key.sequence >= record.nextSequence {
                problem("\(where_): sequence is not below the queue's next sequence \(record.nextSequence)")
            }
            // Messages below a purge watermark are gone for clients and not counted (decision 112).
            if key.sequence >= record.purgedBelow {
                counted[key.queue, default: QueueCounts()].add(header.state, bytes: header.bodyBytes)
            }
        }
        var bodiesSeen = Set<[UInt8]>()
        for entry in try entries("bodies") ?? [] {
            bodiesSeen.insert(entry.key)
            let where_: String
            if let key = try? QueueSchema.decodeMessageKey(entry.key), entry.key.count == 16 {
                where_ = "bodies[queue \(key.queue) partition \(key.partition) sequence \(key.sequence)]"
            } else {
                where_ = "bodies[key \(hex(entry.key))]"
            }
            let body: [UInt8]
            do { body = try MessageBody.decode(entry.value).body } catch {
                problem("\(where_): \(error)")
                continue
            }
            guard let header = messages[entry.key] else {
                problem("\(where_): body without a message in messages")
                continue
            }
            if body.count != Int(header.bodyBytes) {
                problem("\(where_): body is \(body.count) bytes, its header says \(header.bodyBytes)")
            }
        }
        for key in messages.keys where !bodiesSeen.contains(key) {
            let k = try QueueSchema.decodeMessageKey(key)
            problem("messages[queue \(k.queue) partition \(k.partition) sequence \(k.sequence)]: no body in bodies")
        }

        // Indexes: every entry points at a message in that state, every message has its entry.
        var indexed = Set<[UInt8]>()
        for entry in try entries("ready") ?? [] {
            guard entry.key.count == 13, let key = try? QueueSchema.decodeReadyKey(entry.key) else {
                problem("ready[key \(hex(entry.key))]: key is \(entry.key.count) bytes, expected 13")
                continue
            }
            let where_ = "ready[queue \(key.queue) priority \(key.priority) sequence \(key.sequence)]"
            let messageKey = QueueSchema.messageKey(queue: key.queue, sequence: key.sequence)
            guard let header = messages[messageKey] else {
                problem("\(where_): dangling index entry: no such message")
                continue
            }
            if header.state != .ready || header.priority != key.priority {
                problem("\(where_): message is \(header.state) with priority \(header.priority)")
                continue
            }
            indexed.insert(messageKey)
        }
        for (database, state) in [("inflight", MessageState.inFlight), ("delayed", MessageState.delayed)] {
            for entry in try entries(database) ?? [] {
                guard entry.key.count == 20, let key = try? QueueSchema.decodeTimeKey(entry.key) else {
                    problem("\(database)[key \(hex(entry.key))]: key is \(entry.key.count) bytes, expected 20")
                    continue
                }
                let where_ = "\(database)[time \(key.time.milliseconds) queue \(key.queue) sequence \(key.sequence)]"
                let messageKey = QueueSchema.messageKey(queue: key.queue, sequence: key.sequence)
                guard let header = messages[messageKey] else {
                    problem("\(where_): dangling index entry: no such message")
                    continue
                }
                if header.state != state || header.stateDeadline != key.time {
                    problem("\(where_): message is \(header.state) with deadline \(header.stateDeadline.milliseconds)")
                    continue
                }
                indexed.insert(messageKey)
            }
        }
        for (key, header) in messages.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) where !indexed.contains(key) {
            let k = try QueueSchema.decodeMessageKey(key)
            let index = header.state == .ready ? "ready" : header.state == .inFlight ? "inflight" : "delayed"
            problem("messages[queue \(k.queue) partition \(k.partition) sequence \(k.sequence)]: \(header.state) message missing from index \(index)")
        }

        // Counters.
        for record in records.values.sorted(by: { $0.id < $1.id }) {
            let found = counted[record.id] ?? QueueCounts()
            let stored = record.counts
            if stored.ready != found.ready || stored.inFlight != found.inFlight || stored.delayed != found.delayed
                || stored.bytes != found.bytes {
                problem("queues[id \(record.id) \(record.name)]: counters ready=\(stored.ready) in_flight=\(stored.inFlight) delayed=\(stored.delayed) bytes=\(stored.bytes), found ready=\(found.ready) in_flight=\(found.inFlight) delayed=\(found.delayed) bytes=\(found.bytes)")
            }
        }
        report.checked["queues_live"] = records.values.filter { !$0.deleted }.count
    }

    // MARK: Topics

    mutating func verifyTopics() throws {
        var topics = [UInt32: TopicRecord]()
        for entry in try entries("topics") ?? [] {
            do {
                let record = try TopicRecord(decoding: entry.value)
                topics[record.id] = record
            } catch {
                problem("topics[id \(hex(entry.key))]: \(error)")
            }
        }
        for entry in try entries("topic_names") ?? [] {
            let name = String(decoding: entry.key, as: UTF8.self)
            var reader = BigEndianReader(entry.value)
            guard let id = try? reader.readUInt32(), let record = topics[id] else {
                problem("topic_names[\(name)]: names a topic that has no record")
                continue
            }
            if record.name.rawValue != name { problem("topic_names[\(name)]: names topic id \(id), whose record is named \(record.name)") }
        }
        var states = [[UInt8]: PartitionState]()
        for entry in try entries("topic_partitions") ?? [] {
            do { states[entry.key] = try PartitionState(decoding: entry.value) } catch {
                problem("topic_partitions[key \(hex(entry.key))]: \(error)")
            }
        }
        var seen = [[UInt8]: (messages: UInt64, lastEnd: UInt64?)]()
        for entry in try entries("topic_batches") ?? [] {
            guard entry.key.count == 16, let key = try? TopicSchema.decodeBatchKey(entry.key) else {
                problem("topic_batches[key \(hex(entry.key))]: key is \(entry.key.count) bytes, expected 16")
                continue
            }
            let where_ = "topic_batches[topic \(key.topic) partition \(key.partition) offset \(key.baseOffset)]"
            let batch: TopicBatch
            do { batch = try TopicBatch(decoding: entry.value) } catch {
                problem("\(where_): \(error)")
                continue
            }
            if topics[key.topic] == nil { problem("\(where_): topic \(key.topic) has no record") }
            let partitionKey = TopicSchema.partitionKey(topic: key.topic, partition: key.partition)
            guard let state = states[partitionKey] else {
                problem("\(where_): partition has no state in topic_partitions")
                continue
            }
            let end = key.baseOffset + UInt64(batch.entries.count)
            if end > state.highWatermark {
                problem("\(where_): batch ends at \(end), above the partition's high watermark \(state.highWatermark)")
            }
            var progress = seen[partitionKey] ?? (0, nil)
            if let lastEnd = progress.lastEnd, lastEnd != key.baseOffset {
                problem("\(where_): offsets \(lastEnd)..<\(key.baseOffset) are missing")
            }
            progress.lastEnd = end
            progress.messages += UInt64(batch.entries.count)
            seen[partitionKey] = progress
        }
        for (key, state) in states {
            let progress = seen[key]
            if let lastEnd = progress?.lastEnd, lastEnd != state.highWatermark {
                var reader = BigEndianReader(key)
                let topic = (try? reader.readUInt32()) ?? 0, partition = (try? reader.readUInt32()) ?? 0
                problem("topic_partitions[topic \(topic) partition \(partition)]: high watermark \(state.highWatermark), batches end at \(lastEnd)")
            }
        }
        report.checked["topics_live"] = topics.values.filter { !$0.deleted }.count
    }
}

extension QueueCounts {
    mutating func add(_ state: MessageState, bytes: UInt32) {
        switch state {
        case .ready: ready += 1
        case .inFlight: inFlight += 1
        case .delayed: delayed += 1
        }
        self.bytes += UInt64(bytes)
    }
}
