import ArgumentParser
import Foundation
import Logging
import TernBroker
import TernCore
import TernStorage

/// `tern-lmdb log DIR`: the logged commands of a data directory.
struct Log: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The command log (ternd --command-log-bytes): index, time, kind, queue or topic, size per command.",
        discussion: "Text: INDEX TIME KIND TARGET BYTES DETAIL. --json: one object per line.")
    @OptionGroup var options: DirectoryOptions
    @Option(help: "First index printed (default: the oldest kept).") var from: UInt64?
    @Option(help: "The most commands printed.") var limit: Int = 1000
    @Flag(help: "JSON lines instead of text.") var json = false

    func run() throws {
        let storage = try options.open()
        defer { storage.close() }
        guard storage.hasDatabase("log") else {
            printError("\(options.directory) has no command log (written by a ternd before the log existed)")
            throw ExitCode(1)
        }
        let log = CommandLog(storage: storage)
        let (applied, entries, state) = try storage.read { txn in
            let state = try log.state(in: txn)
            return (try log.applied(in: txn), try log.entries(from: from ?? state.first, limit: limit, in: txn), state)
        }
        if entries.isEmpty && !json {
            printError("no logged commands (applied index \(applied.index); the log is off unless ternd runs with --command-log-bytes)")
        }
        for entry in entries {
            let summary = CommandSummary(entry.envelope.command)
            if json {
                var object: [String: Any] = ["index": entry.index, "time_ms": entry.envelope.time.milliseconds, "kind": entry.envelope.command.kind,
                                             "bytes": entry.bytes, "detail": summary.detail]
                if let target = entry.envelope.command.target { object["target"] = target }
                if let count = summary.count { object["count"] = count }
                if let payload = summary.payloadBytes { object["payload_bytes"] = payload }
                printJSON(object)
            } else {
                let time = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(entry.envelope.time.milliseconds) / 1000))
                printLine("\(entry.index)\t\(time)\t\(entry.envelope.command.kind)\t\(entry.envelope.command.target ?? "-")\t\(entry.bytes)\t\(summary.detail)")
            }
        }
        if !json { printError("applied index \(applied.index); log holds \(state.first)… (\(state.bytes) bytes)") }
    }
}

/// A one-line description of a command for `tern-lmdb log`.
struct CommandSummary {
    var detail: String
    var count: Int?
    var payloadBytes: Int?

    init(_ command: Command) {
        switch command {
        case .send(_, let messages, _), .sendIdempotent(_, let messages, _, _):
            count = messages.count
            payloadBytes = messages.reduce(0) { $0 + $1.body.count }
            detail = "\(messages.count) message(s), \(payloadBytes!) body bytes"
        case .receive(_, let max, let timeout, let auto, _):
            detail = "max \(max)" + (timeout.map { ", visibility \($0) s" } ?? "") + (auto ? ", auto-ack" : "")
        case .acknowledge(_, let handles):
            count = handles.count
            detail = "\(handles.count) handle(s)"
        case .changeVisibility(_, let handle, let timeout):
            detail = "sequence \(handle.sequence) → \(timeout) s"
        case .changeVisibilityBatch(_, let changes):
            count = changes.count
            detail = "\(changes.count) handle(s)"
        case .purge(_, let below, let limit): detail = "below sequence \(below), up to \(limit)"
        case .redrive(_, let after, let limit): detail = "from sequence \(after), up to \(limit)"
        case .tick(let limit), .retention(let limit): detail = "up to \(limit)"
        case .produce(let produce):
            count = produce.messages.count
            payloadBytes = produce.messages.reduce(0) { $0 + $1.value.count + ($1.key?.count ?? 0) }
            detail = "\(produce.messages.count) record(s)" + (produce.stamp.map { " from producer \($0.producer.producerID)" } ?? "")
        case .joinGroup(_, let group, let member, _): detail = "group \(group): \(member) joins"
        case .leaveGroup(_, let group, let member): detail = "group \(group): \(member) leaves"
        case .expireMembers(_, let group, let members): detail = "group \(group): \(members.joined(separator: ", ")) expired"
        case .commitOffsets(let commit):
            detail = "group \(commit.group): " + commit.offsets.sorted { $0.key < $1.key }.map { "\($0.key)→\($0.value)" }.joined(separator: " ")
        case .resetOffsets(_, let group, let target): detail = "group \(group) to \(target)"
        case .initProducer(let id): detail = id.map { "transactional id \($0)" } ?? "idempotent"
        case .commitTransaction(let t):
            count = t.sends.reduce(0) { $0 + $1.messages.count } + t.produces.reduce(0) { $0 + $1.messages.count }
            detail = "producer \(t.producer.producerID): \(t.acknowledgements.count) ack(s), \(t.sends.count) send(s), \(t.produces.count) produce(s), \(t.offsets.count) offset commit(s)"
        case .expireProducers(let idle, _): detail = "idle over \(idle) s"
        case .setStorageLimit(let bytes): detail = bytes.map { "\($0) bytes" } ?? "no limit"
        case .createOrUpdateQueue, .createOrUpdateTopic: detail = "attributes"
        case .deleteQueue, .deleteTopic, .purgeQueue: detail = ""
        case .noteDeletedQueue(_, let keep): detail = "kept \(keep) ms"
        case .updateQueueMetadata(_, let patch):
            let changes = patch.tags.sorted { $0.key < $1.key }.map { "tag \($0.key)" + ($0.value == nil ? " removed" : " set") }
                + patch.attributes.sorted { $0.key < $1.key }.map { "\($0.key)" + ($0.value == nil ? " removed" : " set") }
            detail = changes.isEmpty ? "touched" : changes.joined(separator: ", ")
        }
    }
}

/// `tern-lmdb replay SOURCE TARGET`: applies SOURCE's whole command log to a new, empty TARGET.
struct Replay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply the command log of SOURCE_DIR to a new, empty TARGET_DIR (then compare with dump --state).",
        discussion: "SOURCE is opened read-only. Its log must start at index 1 (not trimmed: run ternd with a --command-log-bytes that keeps it all). TARGET is created and keeps the same log.")
    @Argument(help: "The data directory whose log is applied.") var source: String
    @Argument(help: "A new or empty directory.") var target: String

    func run() async throws {
        let sourceStorage = try DirectoryOptions.open(directory: source)
        defer { sourceStorage.close() }
        guard sourceStorage.hasDatabase("log") else {
            printError("\(source) has no command log")
            throw ExitCode(1)
        }
        let log = CommandLog(storage: sourceStorage)
        let (state, applied) = try sourceStorage.read { txn in (try log.state(in: txn), try log.applied(in: txn)) }
        guard state.bytes > 0 else {
            printError("\(source) logged no commands (applied index \(applied.index); ternd logs with --command-log-bytes N)")
            throw ExitCode(1)
        }
        guard state.first == 1 else {
            printError("\(source)'s log was trimmed: it starts at index \(state.first), so it cannot rebuild the state from empty (raise --command-log-bytes)")
            throw ExitCode(1)
        }
        let manager = FileManager.default
        if let existing = try? manager.contentsOfDirectory(atPath: target), !existing.isEmpty {
            printError("\(target) is not empty")
            throw ExitCode(1)
        }
        try manager.createDirectory(atPath: target, withIntermediateDirectories: true)
        var logger = Logger(label: "tern-lmdb")
        logger.logLevel = .error
        var settings = Storage.Settings()
        settings.durable = false
        let targetStorage = try Storage(directory: target, databases: Broker.databaseNames, settings: settings, logger: logger)
        defer { targetStorage.close() }
        let machine = StateMachine(storage: targetStorage, logLimitBytes: Int(clamping: state.bytes) * 2 + (1 << 20))
        let count: Int
        do {
            count = try await machine.replay(from: sourceStorage, storage: targetStorage)
        } catch {
            printError("replay failed: \(error)")
            throw ExitCode(1)
        }
        try await targetStorage.write { _ in }   // one synced commit at the end
        printError("applied \(count) commands to \(target)")
    }
}
