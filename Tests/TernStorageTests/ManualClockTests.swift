import Testing
import TernCore
import TernTestKit

/// TernTestKit's manual clock (it lives here because TernTestKit has no test target of its own).
@Suite struct ManualClockTests {
    static let start = Timestamp(milliseconds: 1_000_000)

    @Test func now_afterAdvance_movesByExactlyThatMuch() {
        let clock = ManualClock(now: Self.start)
        clock.advance(bySeconds: 3)
        clock.advance(byMilliseconds: 250)
        #expect(clock.now == Timestamp(milliseconds: 1_003_250))
        clock.now = Timestamp(milliseconds: 5)
        #expect(clock.now == Timestamp(milliseconds: 5))
    }

    @Test func sleep_untilPastOrPresentDeadline_returnsAtOnce() async throws {
        let clock = ManualClock(now: Self.start)
        try await clock.sleep(until: Self.start)
        try await clock.sleep(until: Timestamp(milliseconds: 0))
        #expect(clock.sleeperCount == 0)
    }

    @Test func sleep_resumesOnlyWhenClockReachesDeadline() async throws {
        let clock = ManualClock(now: Self.start)
        let task = Task { try await clock.sleep(until: Self.start.adding(seconds: 10)); return clock.now }
        await clock.waitForSleepers(count: 1)

        clock.advance(bySeconds: 9)
        try await Task.sleep(for: .milliseconds(20))
        #expect(clock.sleeperCount == 1, "still asleep one second before the deadline")

        clock.advance(bySeconds: 1)
        let wokeAt = try await task.value
        #expect(wokeAt == Self.start.adding(seconds: 10))
        #expect(clock.sleeperCount == 0)
    }

    @Test func advance_pastSeveralDeadlines_resumesExactlyTheDueSleepers() async throws {
        let clock = ManualClock(now: Self.start)
        let tasks = (1...5).map { n in Task { try await clock.sleep(until: Self.start.adding(seconds: n)); return n } }
        await clock.waitForSleepers(count: 5)
        #expect(clock.nextDeadline == Self.start.adding(seconds: 1))

        clock.advance(bySeconds: 3)
        var woken = [Int]()
        for task in tasks.prefix(3) { woken.append(try await task.value) }
        #expect(woken == [1, 2, 3])
        #expect(clock.sleeperCount == 2)
        #expect(clock.nextDeadline == Self.start.adding(seconds: 4))

        clock.now = Self.start.adding(seconds: 100)
        for task in tasks.suffix(2) { _ = try await task.value }
        #expect(clock.sleeperCount == 0)
    }

    @Test func sleep_whenCancelled_throwsCancellationErrorAndUnregisters() async throws {
        let clock = ManualClock(now: Self.start)
        let task = Task { try await clock.sleep(until: Self.start.adding(seconds: 60)) }
        await clock.waitForSleepers(count: 1)

        task.cancel()

        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(clock.sleeperCount == 0)
    }

    @Test func sleep_inAlreadyCancelledTask_throwsWithoutWaiting() async throws {
        let clock = ManualClock(now: Self.start)
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await clock.sleep(until: Self.start.adding(seconds: 60))
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(clock.sleeperCount == 0)
    }
}

/// `Timestamp` from the real clock's `timespec` (issue 14: a clock before 1970 crashed `ternd`).
@Suite struct TimestampTests {
    @Test func clockBefore1970_readsAsTheEpoch_insteadOfTrapping() {
        #expect(Timestamp(unixSeconds: -86_400, nanoseconds: 500_000_000).milliseconds == 0)
        #expect(Timestamp(unixSeconds: -1, nanoseconds: 999_999_999).milliseconds == 0)
    }

    @Test func timespec_convertsToMilliseconds_andSaturates() {
        #expect(Timestamp(unixSeconds: 1_700_000_000, nanoseconds: 123_456_789).milliseconds == 1_700_000_000_123)
        #expect(Timestamp(unixSeconds: .max, nanoseconds: 0).milliseconds == .max)
        #expect(Timestamp(unixSeconds: 0, nanoseconds: 0).milliseconds == 0)
    }

    @Test func systemClock_readsAfter2020() {
        #expect(SystemClock().now.milliseconds > 1_577_836_800_000)
    }
}
