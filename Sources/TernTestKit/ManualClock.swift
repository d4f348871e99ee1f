import Synchronization
public import TernCore

/// A ``TernClock`` that moves only when a test moves it.
///
/// Sleepers registered with ``sleep(until:)`` are resumed, in deadline order, as soon as
/// ``now`` reaches their deadline through ``advance(bySeconds:)``, ``advance(byMilliseconds:)``
/// or a direct assignment of ``now``. A cancelled sleeper resumes at once with
/// `CancellationError`. Nothing ever sleeps for real, so tests of visibility timeouts, delays and
/// retention run in microseconds.
///
/// ```swift
/// let clock = ManualClock(now: Timestamp(milliseconds: 1_000))
/// let task = Task { try await clock.sleep(until: Timestamp(milliseconds: 3_000)) }
/// await clock.waitForSleepers(count: 1)
/// clock.advance(bySeconds: 2)        // task resumes
/// ```
public final class ManualClock: TernClock {
    private struct Sleeper {
        var deadline: Timestamp
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Timestamp
        var nextToken: UInt64 = 0
        var sleepers: [UInt64: Sleeper] = [:]
    }

    private let state: Mutex<State>

    /// A clock standing at `now` (default: 2025-01-01T00:00:00Z, 1,735,689,600,000 ms).
    public init(now: Timestamp = Timestamp(milliseconds: 1_735_689_600_000)) {
        state = Mutex(State(now: now))
    }

    /// The current time. Setting it resumes every sleeper whose deadline is at or before the
    /// new value; the clock may be set backwards (sleepers then keep waiting).
    public var now: Timestamp {
        get { state.withLock { $0.now } }
        set { resume(state.withLock { state in
            state.now = newValue
            return Self.takeDue(&state)
        }) }
    }

    /// Moves the clock forward by `seconds` (may be negative) and resumes the sleepers now due.
    public func advance(bySeconds seconds: Int) {
        advance(byMilliseconds: Int64(seconds) * 1000)
    }

    /// Moves the clock forward by `milliseconds` (may be negative) and resumes the sleepers now due.
    public func advance(byMilliseconds milliseconds: Int64) {
        resume(state.withLock { state in
            state.now = state.now.adding(milliseconds: milliseconds)
            return Self.takeDue(&state)
        })
    }

    /// How many tasks are suspended in ``sleep(until:)``.
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    /// The earliest deadline among the current sleepers, nil when none sleeps.
    public var nextDeadline: Timestamp? { state.withLock { $0.sleepers.values.map(\.deadline).min() } }

    /// Suspends (yielding, never blocking a thread) until at least `count` tasks sleep on this clock.
    /// Use it before ``advance(bySeconds:)`` when the code under test sleeps from another task.
    public func waitForSleepers(count: Int) async {
        while sleeperCount < count { await Task.yield() }
    }

    /// Suspends until ``now`` reaches `deadline`; returns at once when it already has.
    /// - Throws: `CancellationError` when the task is cancelled first.
    public func sleep(until deadline: Timestamp) async throws {
        let token: UInt64? = state.withLock { state in
            guard deadline > state.now else { return nil }
            defer { state.nextToken += 1 }
            return state.nextToken
        }
        guard let token else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome: Result<Void, any Error>? = state.withLock { state in
                    // The cancellation flag is set before `onCancel` runs, and both sides hold
                    // the lock: either `onCancel` finds this sleeper, or this check sees the flag.
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if deadline <= state.now { return .success(()) }
                    state.sleepers[token] = Sleeper(deadline: deadline, continuation: continuation)
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let sleeper = state.withLock { $0.sleepers.removeValue(forKey: token) }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Removes and returns the sleepers due at `state.now`, earliest deadline first.
    private static func takeDue(_ state: inout State) -> [Sleeper] {
        let due = state.sleepers.filter { $0.value.deadline <= state.now }
        for token in due.keys { state.sleepers.removeValue(forKey: token) }
        return due.sorted { ($0.value.deadline, $0.key) < ($1.value.deadline, $1.key) }.map(\.value)
    }

    private func resume(_ sleepers: [Sleeper]) {
        for sleeper in sleepers { sleeper.continuation.resume() }
    }
}
