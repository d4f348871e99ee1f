import Foundation
import Logging
import Testing
import TernBroker
import TernCore
import TernStorage
import TernTestKit

/// Replay equality (issue 8): a seeded random workload through the broker's public API, with
/// restarts, lands in the command log; applying that log to an empty environment gives the
/// same state, byte for byte (``StateDump``). `TERN_REPLAY_SEED` and `TERN_REPLAY_COMMANDS`
/// reproduce or lengthen a run (`swift test --filter ReplayTests`); CI runs a short one.
@Suite struct ReplayTests {
    static var seed: UInt64 { ProcessInfo.processInfo.environment["TERN_REPLAY_SEED"].flatMap { UInt64($0) } ?? 20261201 }
    static var commands: Int { ProcessInfo.processInfo.environment["TERN_REPLAY_COMMANDS"].flatMap { Int($0) } ?? 4000 }

    @Test func replayingTheLog_givesTheSameState() async throws {
        let seed = Self.seed
        let count = Self.commands
        print("replay equality: seed \(seed), \(count) commands (TERN_REPLAY_SEED=\(seed) TERN_REPLAY_COMMANDS=\(count) to rerun)")
        let source = try await BrokerFixture(commandLogBytes: 1 << 30)
        var workload = Workload(fixture: source, random: SeededGenerator(seed: seed))
        try await workload.run(commands: count)
        let kinds = try Self.loggedKinds(source.storage)
        print("replay equality: \(kinds.count) command kinds logged: \(kinds.sorted().joined(separator: " "))")
        #expect(kinds.count == CommandCodecTests.kinds, "the workload covers every command kind: \(kinds.sorted())")

        let target = try TemporaryDirectory(prefix: "tern-replay")
        defer { target.remove() }
        let replica = try Storage(directory: target.path, databases: Broker.databaseNames, settings: BrokerFixture.fastSettings,
                                  logger: BrokerFixture.logger)
        defer { replica.close() }
        let applied = try await Replay.apply(from: source.storage, to: replica, logLimitBytes: 1 << 30)
        #expect(applied >= count, "every command was logged")
        let expected = try StateDump.lines(storage: source.storage)
        let actual = try StateDump.lines(storage: replica)
        #expect(expected.count > 100)
        for storage in [source.storage, replica] {
            let quota = StorageQuota(storage: storage)
            #expect(try storage.read { txn in try quota.used(in: txn) == quota.recomputed(in: txn) }, "the stored-bytes counter is the sum")
        }
        if expected != actual {
            let first = (0..<min(expected.count, actual.count)).first { expected[$0] != actual[$0] } ?? min(expected.count, actual.count)
            Issue.record("seed \(seed): dumps differ at line \(first): \(expected.dropFirst(first).first ?? "<end>") vs \(actual.dropFirst(first).first ?? "<end>")")
        }
    }

    /// The checker is not vacuous: a replica that missed one command differs.
    @Test func dropping_oneCommand_isNoticed() async throws {
        let source = try await BrokerFixture(commandLogBytes: 1 << 30)
        var workload = Workload(fixture: source, random: SeededGenerator(seed: 7))
        try await workload.run(commands: 300)
        do {
            try await source.send("jobs-dlq", ["the one command the replica misses"])
        } catch let error as TernError where error.code == .storageFull {
            // The workload filled its random storage quota: the replica misses one of its sends.
        }
        let target = try TemporaryDirectory(prefix: "tern-replay")
        defer { target.remove() }
        let replica = try Storage(directory: target.path, databases: Broker.databaseNames, settings: BrokerFixture.fastSettings,
                                  logger: BrokerFixture.logger)
        defer { replica.close() }
        let entries = try source.storage.read { txn in try source.broker.machine.log.entries(from: 1, limit: .max, in: txn) }
        let skipped = entries.lastIndex { if case .send = $0.envelope.command { return true } else { return false } }!
        let machine = StateMachine(storage: replica, logLimitBytes: 1 << 30)
        for (position, entry) in entries.enumerated() where position != skipped {
            _ = try? await replica.write { txn in try machine.apply(entry.envelope, in: txn) }
        }
        #expect(try StateDump.lines(storage: source.storage) != StateDump.lines(storage: replica))
    }

    /// Command time never goes backwards: a clock that jumps back neither moves deadlines
    /// back nor stamps new messages earlier than what was applied before.
    @Test func clockJumpingBack_doesNotMoveTimeBackwards() async throws {
        let fixture = try await BrokerFixture()
        try await fixture.createQueue("jobs") { $0.visibilityTimeout = 30 }
        try await fixture.send("jobs", ["a"])
        let before = fixture.clock.now
        let received = try await fixture.receive("jobs")
        fixture.clock.now = before.adding(seconds: -600)
        try await fixture.broker.changeVisibility(try QueueName("jobs"), receiptHandle: received[0].receiptHandle, timeout: 5)
        let sent = try await fixture.send("jobs", ["b"])
        #expect(sent[0].visibleAt >= before, "a message sent after the jump is stamped at the last applied time")
        // 5 s after the last applied time, not after the lagging clock: still invisible 4 s after it…
        fixture.clock.now = before.adding(seconds: 4)
        _ = try await fixture.broker.runDueWork()
        #expect(try fixture.counts("jobs").inFlight == 1)
        fixture.clock.now = before.adding(seconds: 6)
        _ = try await fixture.broker.runDueWork()
        #expect(try fixture.counts("jobs").inFlight == 0)
    }

    /// Applying the same logged commands on environments whose nodes' clocks lag by minutes
    /// gives the same state: `apply` reads no clock, only the commands' times (the lagging
    /// node's own start-up due work runs at its earlier time, before any command).
    @Test func sameCommands_laggingClocks_sameState() async throws {
        let source = try await BrokerFixture(commandLogBytes: 1 << 30)
        var workload = Workload(fixture: source, random: SeededGenerator(seed: 11))
        try await workload.run(commands: 500)
        let first = try source.storage.read { txn in try source.broker.machine.log.entries(from: 1, limit: 1, in: txn) }[0].envelope.time
        var dumps = [[String]]()
        for lag in [nil, 300, 3600] {
            let target = try TemporaryDirectory(prefix: "tern-replay")
            defer { target.remove() }
            let replica = try Storage(directory: target.path, databases: Broker.databaseNames, settings: BrokerFixture.fastSettings,
                                      logger: BrokerFixture.logger)
            if let lag {
                // A node whose clock is `lag` seconds behind opens the replica before it applies.
                let clock = ManualClock(now: first.adding(seconds: -lag))
                _ = try await Broker.open(storage: replica, clock: clock, commandLogBytes: 1 << 30, logger: BrokerFixture.logger)
            }
            _ = try await Replay.apply(from: source.storage, to: replica, logLimitBytes: 1 << 30)
            dumps.append(try StateDump.lines(storage: replica))
            replica.close()
        }
        #expect(dumps[0] == dumps[1])
        #expect(dumps[0] == dumps[2])
        #expect(dumps[0] == (try StateDump.lines(storage: source.storage)))
    }

    static func loggedKinds(_ storage: Storage) throws -> Set<String> {
        try storage.read { txn in
            Set(try CommandLog(storage: storage).entries(from: 1, limit: .max, in: txn).map(\.envelope.command.kind))
        }
    }
}

/// Applies a log to another environment.
enum Replay {
    /// Applies every logged command of `source` (from index 1; the log must not be trimmed) to
    /// `target`. - Returns: how many were applied.
    static func apply(from source: Storage, to target: Storage, logLimitBytes: Int) async throws -> Int {
        let first = try source.read { txn in try CommandLog(storage: source).state(in: txn).first }
        #expect(first == 1, "the log was not trimmed")
        return try await StateMachine(storage: target, logLimitBytes: logLimitBytes).replay(from: source, storage: target)
    }
}
