import Synchronization
import Testing
import TernBroker
import TernCore
import TernStorage
import TernTestKit

/// Issue 14, item 6: broker time advances with the monotonic clock while running, so wall-clock
/// jumps neither expire messages early nor leave them stuck, and the jump is reported once.
@Suite struct SteadyClockTests {
    final class Sources: Sendable {
        let wall = Mutex<UInt64>(1_764_579_600_000)
        let monotonic = Mutex<UInt64>(5_000)
        let jumps = Mutex<[Int64]>([])
        func advance(_ ms: UInt64) { wall.withLock { $0 += ms }; monotonic.withLock { $0 += ms } }
        func clock() -> SteadyClock {
            SteadyClock(wall: { Timestamp(milliseconds: self.wall.withLock { $0 }) }, monotonic: { self.monotonic.withLock { $0 } },
                        onJump: { offset in self.jumps.withLock { $0.append(offset) } })
        }
    }

    @Test func wallClockJumps_moveNoTime_andAreReportedOnce() {
        let sources = Sources()
        let clock = sources.clock()
        let start = clock.now
        sources.advance(1500)
        #expect(clock.now == start.adding(milliseconds: 1500))
        sources.wall.withLock { $0 += 2 * 3_600_000 }   // +2 h
        #expect(clock.now == start.adding(milliseconds: 1500))
        #expect(clock.now == start.adding(milliseconds: 1500))
        #expect(sources.jumps.withLock { $0 } == [7_200_000])
        sources.wall.withLock { $0 -= 4 * 3_600_000 }   // then −4 h: now 2 h behind
        sources.advance(500)
        #expect(clock.now == start.adding(milliseconds: 2000))
        #expect(sources.jumps.withLock { $0 } == [7_200_000, -7_200_000])
        sources.wall.withLock { $0 += 300 }             // small drift is not a jump
        _ = clock.now
        #expect(sources.jumps.withLock { $0 }.count == 2)
    }

    /// The failure the issue measured: a +2 h jump deleted every message of a queue with 1 h
    /// retention within seconds. On steady time nothing expires.
    @Test func plusTwoHours_doesNotExpireAQueueWithOneHourRetention() async throws {
        let sources = Sources()
        let directory = try TemporaryDirectory(prefix: "tern-clock")
        defer { directory.remove() }
        let storage = try Storage(directory: directory.path, databases: Broker.databaseNames, settings: BrokerFixture.fastSettings,
                                  logger: BrokerFixture.logger)
        defer { storage.close() }
        let broker = try await Broker.open(storage: storage, clock: sources.clock(), logger: BrokerFixture.logger)
        let name = try QueueName("jobs")
        var patch = QueueAttributes.Patch()
        patch.retention = 3600
        _ = try await broker.createOrUpdateQueue(name, patch: patch)
        _ = try await broker.send(name, [OutgoingMessage(body: Array("keep me".utf8))])
        let received = try await broker.receive(name, maxMessages: 1, visibilityTimeout: 60)
        sources.wall.withLock { $0 += 2 * 3_600_000 }
        sources.advance(15_000)
        _ = try await broker.runDueWork()
        #expect(try broker.describeQueue(name).counts.inFlight == 1, "in flight still: 15 s of 60 passed")
        sources.advance(50_000)
        _ = try await broker.runDueWork()
        #expect(try broker.describeQueue(name).counts.ready == 1, "back to ready after its 60 s, not deleted")
        _ = received
    }
}
