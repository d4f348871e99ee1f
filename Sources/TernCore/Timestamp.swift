#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A point in wall-clock time: milliseconds since the Unix epoch (UTC).
///
/// Wall-clock time, not a monotonic clock, because deadlines, delays and retention are
/// stored on disk and must keep their meaning across restarts (downtime counts).
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    public var milliseconds: UInt64

    public init(milliseconds: UInt64) { self.milliseconds = milliseconds }

    /// The time `seconds` + `nanoseconds` after the epoch (a `timespec`), clamped to the
    /// epoch when earlier: a wall clock set before 1970 reads as 1970-01-01, it does not trap.
    public init(unixSeconds seconds: Int64, nanoseconds: Int64) {
        guard seconds >= 0 else {
            self.milliseconds = 0
            return
        }
        let (product, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1000)
        let sub = UInt64(max(0, min(nanoseconds, 999_999_999))) / 1_000_000
        self.milliseconds = overflow ? .max : product.addingReportingOverflow(sub).overflow ? .max : product + sub
    }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.milliseconds < rhs.milliseconds }

    /// This time plus `seconds` (saturating).
    public func adding(seconds: Int) -> Timestamp { adding(milliseconds: Int64(seconds) * 1000) }

    /// This time plus `milliseconds`, which may be negative (saturating at 0 and `UInt64.max`).
    public func adding(milliseconds delta: Int64) -> Timestamp {
        if delta >= 0 {
            let (sum, overflow) = milliseconds.addingReportingOverflow(UInt64(delta))
            return Timestamp(milliseconds: overflow ? .max : sum)
        }
        let magnitude = delta.magnitude
        return Timestamp(milliseconds: milliseconds > magnitude ? milliseconds - magnitude : 0)
    }

    /// Seconds from `self` to `other` (negative when `other` is earlier).
    public func seconds(until other: Timestamp) -> Double {
        (Double(other.milliseconds) - Double(milliseconds)) / 1000
    }

    public var description: String { "\(milliseconds)ms" }
}

/// The source of "now" and of sleeping, injected everywhere time matters so that tests of
/// visibility timeouts, delays and retention run on a manual clock without sleeping.
public protocol TernClock: Sendable {
    /// The current wall-clock time.
    var now: Timestamp { get }
    /// Suspends until `deadline` (by this clock) or until the task is cancelled.
    /// - Throws: `CancellationError` when the task is cancelled.
    func sleep(until deadline: Timestamp) async throws
}

/// The real wall clock (`CLOCK_REALTIME`).
public struct SystemClock: TernClock {
    public init() {}

    public var now: Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(unixSeconds: Int64(spec.tv_sec), nanoseconds: Int64(spec.tv_nsec))
    }

    public func sleep(until deadline: Timestamp) async throws {
        let current = now
        guard deadline > current else { return }
        try await Task.sleep(for: .milliseconds(deadline.milliseconds - current.milliseconds))
    }
}
