#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Broker time for a running node: wall-clock time at start, then advancing with the monotonic
/// clock (`CLOCK_MONOTONIC`), so that a step of the wall clock (an operator's `date -s`, a VM
/// restored from a snapshot, NTP stepping) while the node runs moves no deadline, delay or
/// retention cut-off. Across restarts, time resumes from the wall clock and the state machine
/// keeps it from going backwards (`max(command time, last applied time)`, decision 39).
///
/// The clock compares itself with the wall clock each time it is read; when the two differ by
/// more than ``jumpThresholdMilliseconds`` beyond what was last reported, it calls `onJump` with
/// the difference (wall − steady, in milliseconds), once per jump, so the daemon can log a
/// warning. The offset is kept: the node stays on its steady time until it restarts.
///
/// ```swift
/// let clock = SteadyClock { offset in logger.warning("wall clock jumped", metadata: ["tern.offset_ms": "\(offset)"]) }
/// ```
public final class SteadyClock: TernClock, Sendable {
    /// Differences of the wall clock from steady time below this are not reported (slewing,
    /// scheduling noise). 1,000 ms.
    public static let jumpThresholdMilliseconds: Int64 = 1000

    private let wall: @Sendable () -> Timestamp
    private let monotonic: @Sendable () -> UInt64
    private let startWall: Timestamp
    private let startMonotonic: UInt64
    private let reported = Mutex<Int64>(0)
    private let onJump: @Sendable (Int64) -> Void

    /// - Parameters:
    ///   - wall: the wall clock (default `CLOCK_REALTIME`).
    ///   - monotonic: a monotonic clock in milliseconds (default `CLOCK_MONOTONIC`).
    ///   - onJump: called with wall − steady in milliseconds when the wall clock jumped.
    public init(wall: @escaping @Sendable () -> Timestamp = { SystemClock().now },
                monotonic: @escaping @Sendable () -> UInt64 = SteadyClock.monotonicMilliseconds,
                onJump: @escaping @Sendable (Int64) -> Void = { _ in }) {
        self.wall = wall
        self.monotonic = monotonic
        self.onJump = onJump
        startWall = wall()
        startMonotonic = monotonic()
    }

    public var now: Timestamp {
        let elapsed = monotonic() &- startMonotonic
        let steady = startWall.adding(milliseconds: Int64(clamping: elapsed))
        let offset = Int64(clamping: Int128(wall().milliseconds) - Int128(steady.milliseconds))
        let report: Bool = reported.withLock { last in
            guard abs(offset - last) > Self.jumpThresholdMilliseconds else { return false }
            last = offset
            return true
        }
        if report { onJump(offset) }
        return steady
    }

    public func sleep(until deadline: Timestamp) async throws {
        let current = now
        guard deadline > current else { return }
        try await Task.sleep(for: .milliseconds(deadline.milliseconds - current.milliseconds))
    }

    /// `CLOCK_MONOTONIC` in milliseconds.
    public static let monotonicMilliseconds: @Sendable () -> UInt64 = {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1000 + UInt64(spec.tv_nsec) / 1_000_000
    }
}
