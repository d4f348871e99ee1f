import Foundation
import Logging
import Testing
import TernCluster
import TernCore
import TernReplication
import TernStorage
import TernTestKit
import Synchronization

/// Set while the recording machine applies "slow".
let slowApplying = Mutex(false)

/// How a replica applies committed entries when the state machine fails (decision 98): a
/// deterministic failure (``TernError``) is the entry's result everywhere and the next entries
/// apply; any other failure halts the replica without applying anything after it, and a
/// restart applies the entry again before the ones that follow.
@Suite struct ReplicaGroupApplyTests {
    /// Appends each payload to the `log` database under its own key; "bad" fails as a command
    /// would (deterministically); "disk" fails like a full disk while `diskFails` is set.
    struct RecordingMachine: ReplicatedStateMachine {
        let database: Database
        let diskFails: Bool

        func apply(_ payload: [UInt8], in txn: WriteTransaction) throws -> String {
            let text = String(decoding: payload, as: UTF8.self)
            if text == "bad" { throw TernError(.invalidParameter, "bad command") }
            if text == "slow" {  // holds its ready in flight while the test appends more
                slowApplying.withLock { $0 = true }
                Thread.sleep(forTimeInterval: 0.3)
            }
            if text == "disk", diskFails { throw StorageError(.mapFull, "disk full (planted)") }
            try txn.put(database, payload, payload)
            return text
        }

        var databaseNames: [String] { [database.name] }
    }

    struct Silent: RaftTransport { func send(_ envelopes: [RaftEnvelope]) {} }

    static func open(_ storage: Storage, diskFails: Bool) throws -> ReplicaGroup<RecordingMachine> {
        var settings = ReplicaGroup<RecordingMachine>.Settings()
        settings.raft.tickInterval = .milliseconds(10)
        settings.raft.heartbeatInterval = .milliseconds(30)
        settings.raft.electionTimeoutMin = .milliseconds(100)
        settings.raft.electionTimeoutMax = .milliseconds(200)
        let machine = RecordingMachine(database: storage.database("log"), diskFails: diskFails)
        let group = try ReplicaGroup(group: 1, node: "solo", voters: ["solo"], storage: storage, machine: machine,
                                     transport: Silent(), settings: settings, logger: Logger(label: "test"))
        group.start()
        return group
    }

    static func waitServing(_ group: ReplicaGroup<RecordingMachine>) async throws {
        for _ in 0..<1000 where !group.status.isServing { try await Task.sleep(for: .milliseconds(10)) }
        try #require(group.status.isServing)
    }

    /// A fresh environment (unsynced) with the test machine's `log` database and the Raft log's.
    static func makeStorage() throws -> (TemporaryDirectory, Storage) {
        let directory = try TemporaryDirectory(prefix: "tern-apply")
        var settings = Storage.Settings()
        settings.durable = false
        let storage = try Storage(directory: directory.path, databases: ["log"] + RaftLogStore.databaseNames, settings: settings,
                                  logger: Logger(label: "test"))
        return (directory, storage)
    }

    static func stored(_ storage: Storage) throws -> Set<String> {
        let database = storage.database("log")
        return try storage.read { txn in
            try Set(["a", "b", "c", "d", "disk", "bad", "slow"].filter { try txn.get(database, Array($0.utf8)) != nil })
        }
    }

    @Test func aCommandErrorIsTheEntrysResultAndTheNextEntriesApply() async throws {
        let (directory, storage) = try Self.makeStorage()
        defer { storage.close(); directory.remove() }
        let group = try Self.open(storage, diskFails: false)
        try await Self.waitServing(group)
        #expect(try await group.propose(Array("a".utf8)) == "a")
        await #expect(throws: TernError.self) { _ = try await group.propose(Array("bad".utf8)) }
        #expect(try await group.propose(Array("b".utf8)) == "b")
        #expect(try Self.stored(storage) == ["a", "b"])
        #expect(!group.status.halted)
        group.stop()
    }

    @Test func aDiskFailureHaltsWithoutApplyingPastItAndARestartAppliesItFirst() async throws {
        let (directory, storage) = try Self.makeStorage()
        defer { storage.close(); directory.remove() }
        let first = try Self.open(storage, diskFails: true)
        try await Self.waitServing(first)
        #expect(try await first.propose(Array("a".utf8)) == "a")
        // While "slow" is applied, "disk", "c" and "d" are appended in this order; they are then
        // persisted together and applied in one batch: "disk" fails on this node only, and
        // "c" and "d" must not be applied past it.
        let slow = Task { try? await first.propose(Array("slow".utf8)) }
        for _ in 0..<2000 where !slowApplying.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(1)) }
        var last = first.status.lastIndex
        var tasks: [Task<String?, Never>] = []
        for payload in ["disk", "c", "d"] {
            last = first.status.lastIndex
            tasks.append(Task { try? await first.propose(Array(payload.utf8)) })
            for _ in 0..<5000 where first.status.lastIndex == last { try await Task.sleep(for: .milliseconds(1)) }
        }
        #expect(await slow.value == "slow")
        var answers: [String?] = []
        for task in tasks { answers.append(await task.value) }
        #expect(answers == [nil, nil, nil], "nothing past the failure is answered: \(answers)")
        for _ in 0..<500 where !first.status.halted { try await Task.sleep(for: .milliseconds(10)) }
        #expect(first.status.halted)
        #expect(try Self.stored(storage) == ["a", "slow"], "nothing applied past the entry that failed")
        #expect(first.status.appliedIndex < first.status.lastIndex)
        first.stop()

        // The disk has room again: the restarted replica applies "disk", then "c" and "d".
        let second = try Self.open(storage, diskFails: false)
        try await Self.waitServing(second)
        #expect(try await second.propose(Array("b".utf8)) == "b")
        // "disk" is applied before anything after it; "c" and "d" are too when they reached the
        // log before the halt (on a loaded machine a proposal may come after it and be refused).
        let stored = try Self.stored(storage)
        #expect(stored.isSuperset(of: ["a", "slow", "disk", "b"]), "\(stored)")
        #expect(stored.isSubset(of: ["a", "slow", "disk", "c", "d", "b"]), "\(stored)")
        second.stop()
    }
}
