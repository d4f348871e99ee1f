import ArgumentParser
import Foundation
import Logging
import TernBroker
import TernCore
import TernStorage

/// `tern-lmdb`: inspection of a Tern data directory. Read-only (`MDB_RDONLY`) unless a
/// subcommand says otherwise, and safe to run against the data directory of a running broker:
/// every figure comes from one LMDB read snapshot.
@main
struct TernLMDB: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tern-lmdb",
        abstract: "Inspect, verify and back up a Tern data directory (LMDB).",
        discussion: "Opens the environment read-only; safe beside a running ternd. Exit status 1 when verify finds a problem or a command fails.",
        subcommands: [Stat.self, Queues.self, Topics.self, Dump.self, Log.self, Replay.self, Verify.self, Backup.self, Readers.self])
}

/// Options every subcommand shares.
struct DirectoryOptions: ParsableArguments {
    @Argument(help: "The data directory (holds data.mdb and lock.mdb).")
    var directory: String

    /// Opens the environment read-only with every database Tern knows (missing ones skipped).
    func open() throws -> Storage { try Self.open(directory: directory) }

    static func open(directory: String) throws -> Storage {
        guard FileManager.default.fileExists(atPath: directory + "/data.mdb") else {
            throw ValidationError("\(directory) holds no data.mdb: not a Tern data directory")
        }
        var settings = Storage.Settings()
        settings.readOnly = true
        var logger = Logger(label: "tern-lmdb")
        logger.logLevel = .error
        var names = [String]()
        for name in Broker.databaseNames + ProducerSchema.databaseNames + StateDump.dumpedDatabases + StateDump.legacyDatabases.keys.sorted()
            where !names.contains(name) { names.append(name) }
        return try Storage(directory: directory, databases: names, settings: settings, logger: logger)
    }
}

/// Writes one JSON object per line to standard output (sorted keys, no escaped slashes).
func printJSON(_ object: [String: Any]) {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
    FileHandle.standardOutput.write(data + Data("\n".utf8))
}

func printLine(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// A body as JSON: the string when it is valid UTF-8, else base64 with `body_base64`.
func bodyFields(_ bytes: [UInt8], key: String = "body") -> [String: Any] {
    if let text = String(validating: bytes, as: UTF8.self) { return [key: text] }
    return [key + "_base64": Data(bytes).base64EncodedString()]
}

struct Stat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Environment info (map size and use, page size, last transaction, readers) and entries, pages and depth per database.")
    @OptionGroup var options: DirectoryOptions
    @Flag(help: "One JSON object instead of text.") var json = false

    func run() throws {
        let storage = try options.open()
        defer { storage.close() }
        let info = try storage.info()
        let names = try storage.namedDatabases()
        var databases = [[String: Any]]()
        try storage.read { txn in
            for name in names where storage.hasDatabase(name) {
                let s = try txn.statistics(storage.database(name))
                databases.append(["name": name, "entries": s.entries, "depth": s.depth, "branch_pages": s.branchPages,
                                  "leaf_pages": s.leafPages, "overflow_pages": s.overflowPages])
            }
        }
        let main = try storage.mainStatistics()
        let environment: [String: Any] = [
            "map_size_bytes": info.mapSize, "page_size_bytes": info.pageSize, "last_page": info.lastPage,
            "allocated_bytes": (info.lastPage + 1) * info.pageSize, "used_bytes": info.usedBytes,
            "free_pages": info.freePages, "last_transaction_id": info.lastTransactionID,
            "readers_in_use": info.readersInUse, "readers_max": info.maxReaders,
            "used_percent": Double(info.usedBytes) / Double(max(info.mapSize, 1)) * 100,
            "main_entries": main.entries, "main_depth": main.depth,
        ]
        if json {
            printJSON(["environment": environment, "databases": databases])
            return
        }
        printLine("environment \(options.directory)")
        for key in environment.keys.sorted() { printLine("  \(key): \(environment[key]!)") }
        printLine(String(format: "%-20@ %10@ %6@ %8@ %10@ %9@", "database" as NSString, "entries" as NSString, "depth" as NSString,
                         "branch" as NSString, "leaf" as NSString, "overflow" as NSString))
        for d in databases {
            printLine(String(format: "%-20@ %10d %6d %8d %10d %9d", (d["name"] as! String) as NSString, d["entries"] as! Int,
                             d["depth"] as! Int, d["branch_pages"] as! Int, d["leaf_pages"] as! Int, d["overflow_pages"] as! Int))
        }
    }
}

struct Queues: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Each queue with its message counts by state and bytes (JSON lines).")
    @OptionGroup var options: DirectoryOptions

    func run() throws {
        let storage = try options.open()
        defer { storage.close() }
        let store = QueueStore(storage: storage)
        let records = try storage.read { txn in try store.allRecords(in: txn) }
        for record in records {
            let c = record.counts
            printJSON([
                "id": record.id, "name": record.name.rawValue, "deleted": record.deleted,
                "ready": c.ready, "in_flight": c.inFlight, "delayed": c.delayed, "total": c.total, "bytes": c.bytes,
                "next_sequence": record.nextSequence, "created_at": record.createdAt.milliseconds,
                "dead_letter_queue": record.attributes.deadLetterQueue?.rawValue ?? NSNull(),
            ])
        }
    }
}

struct Topics: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Each topic with its partitions: log start, high watermark, messages and bytes (JSON lines).")
    @OptionGroup var options: DirectoryOptions

    func run() throws {
        let storage = try options.open()
        defer { storage.close() }
        guard TopicSchema.databaseNames.allSatisfy(storage.hasDatabase) else { return }
        let store = TopicStore(storage: storage)
        let lines: [[String: Any]] = try storage.read { txn in
            try store.allRecords(in: txn).map { record in
                let info = try store.info(record, in: txn)
                let partitions: [[String: Any]] = info.partitions.map {
                    ["partition": $0.partition, "log_start": $0.logStart, "high_watermark": $0.highWatermark,
                     "messages": $0.highWatermark - $0.logStart, "bytes": $0.bytes, "batches": $0.batches]
                }
                return ["id": record.id, "name": record.name.rawValue, "deleted": record.deleted,
                        "messages": info.partitions.reduce(UInt64(0)) { $0 + $1.highWatermark - $1.logStart },
                        "bytes": info.partitions.reduce(UInt64(0)) { $0 + $1.bytes }, "partitions": partitions]
            }
        }
        for line in lines { printJSON(line) }
    }
}

struct Dump: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decoded records of a queue or topic as JSON lines (headers, attributes, decompressed body); with --state, the canonical dump of the whole broker state.",
        discussion: """
            `dump DIR NAME` prints a queue's messages or a topic partition's records. `dump --state DIR` prints \
            every queue, message, index entry, FIFO, topic, group-offset and producer record as canonical JSON lines \
            in a fixed order (docs/storage.md, "Canonical state dump"), without the command log or anything \
            node-local: two directories with the same state print the same bytes.
            """)
    @OptionGroup var options: DirectoryOptions
    @Argument(help: "A queue or topic name (not with --state).") var name: String?
    @Flag(help: "Print the canonical state dump of the whole directory instead of one queue or topic.") var state = false
    @Option(help: "First sequence (queues) or offset (topics).") var from: UInt64 = 0
    @Option(help: "The most records printed.") var limit: Int = 1000
    @Option(help: "Topic partition.") var partition: Int = 0

    func validate() throws {
        if state && name != nil { throw ValidationError("--state dumps the whole directory: give no queue or topic name") }
        if !state && name == nil { throw ValidationError("give a queue or topic name, or --state") }
    }

    func run() throws {
        let storage = try options.open()
        defer { storage.close() }
        guard let name else {
            try printStateDump(storage)
            return
        }
        let queueName = try QueueName(name)
        let queues = QueueStore(storage: storage)
        let messages = storage.database("messages"), bodies = storage.database("bodies")
        let lines: [[String: Any]]? = try storage.read { txn in
            guard let record = try? queues.record(named: queueName, in: txn) else { return nil }
            let prefix = QueueSchema.queuePrefix(record.id)
            return try txn.withCursor(messages) { cursor in
                var lines = [[String: Any]]()
                var entry = try cursor.seek(atOrAfter: QueueSchema.messageKey(queue: record.id, sequence: from))
                while let current = entry, current.key.starts(with: prefix), lines.count < limit {
                    let key = try QueueSchema.decodeMessageKey(current.key)
                    let header = try MessageHeader(decoding: current.value)
                    var line: [String: Any] = [
                        "queue": record.name.rawValue, "sequence": key.sequence, "id": header.id.description,
                        "state": header.state.description, "priority": header.priority,
                        "receive_count": header.receiveCount, "sent_at": header.sentAt.milliseconds,
                        "state_deadline": header.stateDeadline.milliseconds, "body_bytes": header.bodyBytes,
                        "dead_letter_source": header.deadLetterSource,
                    ]
                    if let body = try txn.get(bodies, current.key) {
                        let stored = try MessageBody.decode(body)
                        line.merge(bodyFields(stored.body)) { a, _ in a }
                        if !stored.attributes.isEmpty { line["attributes"] = stored.attributes.count }
                    }
                    lines.append(line)
                    entry = try cursor.next()
                }
                return lines
            }
        }
        if let lines {
            for line in lines { printJSON(line) }
            return
        }
        guard TopicSchema.databaseNames.allSatisfy(storage.hasDatabase) else {
            throw ValidationError("no queue or topic named \(name)")
        }
        let topics = TopicStore(storage: storage)
        let topicLines: [[String: Any]]? = try storage.read { txn in
            guard let record = try? topics.record(named: queueName, in: txn) else { return nil }
            let state = try topics.partitionState(topic: record.id, partition: partition, in: txn)
            let start = max(from, state.logStart)
            guard start < state.highWatermark else { return [] }
            return try topics.fetch(topic: record.id, partition: partition, from: start, max: limit, in: txn).messages.map { m in
                var line: [String: Any] = ["topic": record.name.rawValue, "partition": m.partition, "offset": m.offset,
                                           "timestamp": m.timestamp.milliseconds]
                if let key = m.key { line.merge(bodyFields(key, key: "key")) { a, _ in a } }
                line.merge(bodyFields(m.value, key: "value")) { a, _ in a }
                return line
            }
        }
        guard let topicLines else { throw ValidationError("no queue or topic named \(name)") }
        for line in topicLines { printJSON(line) }
    }
}

/// Writes ``StateDump`` to standard output, buffered (a dump has a line per message).
func printStateDump(_ storage: Storage) throws {
    var buffer = [UInt8]()
    buffer.reserveCapacity(1 << 20)
    try StateDump.write(storage: storage) { line in
        buffer.append(contentsOf: line.utf8)
        buffer.append(UInt8(ascii: "\n"))
        if buffer.count >= 1 << 20 {
            FileHandle.standardOutput.write(Data(buffer))
            buffer.removeAll(keepingCapacity: true)
        }
    }
    FileHandle.standardOutput.write(Data(buffer))
}

struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A consistent hot copy of the environment into DEST (mdb_env_copy2), safe while ternd runs.")
    @OptionGroup var options: DirectoryOptions
    @Argument(help: "The destination directory (created if missing; must be empty).") var destination: String
    @Flag(help: "Omit free pages and renumber (smaller, slower).") var compact = false

    func run() throws {
        let storage = try options.open()
        defer { storage.close() }
        try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
        guard (try FileManager.default.contentsOfDirectory(atPath: destination)).isEmpty else {
            throw ValidationError("\(destination) is not empty")
        }
        let started = ContinuousClock.now
        try storage.copy(to: destination, compact: compact)
        let size = (try? FileManager.default.attributesOfItem(atPath: destination + "/data.mdb")[.size] as? Int) ?? 0
        printJSON(["destination": destination, "bytes": size, "compact": compact,
                   "seconds": Double((ContinuousClock.now - started).components.attoseconds) / 1e18
                    + Double((ContinuousClock.now - started).components.seconds)])
    }
}

struct Readers: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The LMDB reader table: process, thread and pinned transaction of each slot in use.")
    @OptionGroup var options: DirectoryOptions
    @Flag(help: "Clear slots of processes that no longer exist (mdb_reader_check).") var clearStale = false

    func run() throws {
        let storage = try options.open()
        defer { storage.close() }
        if clearStale { printJSON(["cleared_stale_readers": try storage.clearStaleReaders()]) }
        for slot in try storage.readerSlots() {
            printJSON(["pid": slot.processID, "thread": slot.thread, "transaction_id": slot.transactionID ?? NSNull()])
        }
    }
}
