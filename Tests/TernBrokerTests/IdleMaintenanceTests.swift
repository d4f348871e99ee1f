import Synchronization
import Testing
import TernBroker
import TernCore
import TernStorage
import TernTestKit

/// A replication group's leader skips due-work rounds while nothing is due (decision 144), but
/// never when the last round left work, and never for a deadline that passed.
@Suite struct IdleMaintenanceTests {
    /// Applies commands on this node's writer as a group's leader would, counting them.
    final class CountingExecutor: CommandExecutor, Sendable {
        let storage: Storage
        let machine: StateMachine
        /// `tick` commands executed: due-work rounds.
        let ticks = Atomic<Int>(0)
        init(storage: Storage) {
            self.storage = storage
            machine = StateMachine(storage: storage)
        }
        func execute(_ envelope: CommandEnvelope, grows: Bool) async throws(TernError) -> CommandOutcome {
            if case .tick = envelope.command { ticks.add(1, ordering: .relaxed) }
            let machine = self.machine
            do {
                return try await storage.write(grows: grows) { txn in try machine.apply(envelope, in: txn) }
            } catch let error as TernError {
                throw error
            } catch {
                throw TernError(.internalError, "\(error)")
            }
        }
        var decidesTime: Bool { true }
    }

    @Test func anIdleLeaderSkipsRounds_butSweepsADeletedQueueToTheEnd_andMeetsDeadlines() async throws {
        let fixture = try await BrokerFixture()
        let executor = CountingExecutor(storage: fixture.storage)
        let broker = Broker.replicated(storage: fixture.storage, clock: fixture.clock, executor: executor, logger: BrokerFixture.logger)
        let name = try QueueName("big")
        _ = try await broker.createOrUpdateQueue(name, patch: .init())
        // More than two sweep chunks (5,000 records each).
        for _ in 0..<12 {
            _ = try await broker.send(name, (0..<1_000).map { OutgoingMessage(body: Array("m\($0)".utf8)) })
        }
        let queueID = try broker.describeQueueWithMetadata(name).queueID
        let maintenance = Task { await broker.runMaintenance() }
        defer { maintenance.cancel() }
        // The first round runs at once; then nothing is due and the clock stands still.
        try await Task.sleep(for: .milliseconds(300))
        let idle = executor.ticks.load(ordering: .relaxed)
        #expect(idle >= 1)
        try await Task.sleep(for: .milliseconds(1_500))
        #expect(executor.ticks.load(ordering: .relaxed) == idle, "no round while nothing is due and 10 s have not passed")

        // A delete leaves the records to sweep in chunks: every chunk follows at once.
        try await broker.deleteQueue(name)
        fixture.clock.advance(bySeconds: 11)  // the next round may run; the ones after it only because work is left
        let deadline = ContinuousClock.now + .seconds(20)
        while try PurgeTests.storedMessages(fixture, queue: queueID) > 0 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(try PurgeTests.storedMessages(fixture, queue: queueID) == 0, "the whole queue was swept without the clock moving on")

        // A visibility timeout that passes is handled without waiting for the idle interval.
        let jobs = try QueueName("jobs")
        _ = try await broker.createOrUpdateQueue(jobs, patch: .init())
        _ = try await broker.send(jobs, [OutgoingMessage(body: Array("x".utf8))])
        let taken = try await broker.receive(jobs, maxMessages: 1, visibilityTimeout: 1)
        #expect(taken.count == 1)
        fixture.clock.advance(bySeconds: 2)
        let rounds = executor.ticks.load(ordering: .relaxed)
        let until = ContinuousClock.now + .seconds(10)
        while executor.ticks.load(ordering: .relaxed) == rounds && ContinuousClock.now < until { try await Task.sleep(for: .milliseconds(50)) }
        #expect(executor.ticks.load(ordering: .relaxed) > rounds, "the passed deadline made a round")
        #expect(try broker.describeQueue(jobs).counts.ready == 1, "the message is visible again")
    }
}
