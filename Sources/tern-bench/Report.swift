import Foundation
import Histogram
import Synchronization

/// Latencies in microseconds, merged from every worker.
final class LatencyRecorder: Sendable {
    private let histogram = Mutex(Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three))
    private let messages = Atomic<Int>(0)
    private let bytes = Atomic<Int>(0)

    /// Records `count` messages of `size` bytes that each took `microseconds`.
    func record(microseconds: UInt64, count: Int, size: Int) {
        histogram.withLock { _ = $0.record(max(1, microseconds), count: UInt64(count)) }
        messages.add(count, ordering: .relaxed)
        bytes.add(count * size, ordering: .relaxed)
    }

    var messageCount: Int { messages.load(ordering: .relaxed) }
    var byteCount: Int { bytes.load(ordering: .relaxed) }
    func snapshot() -> Histogram<UInt64> { histogram.withLock { $0 } }
}

/// Monotonic time in microseconds (`CLOCK_MONOTONIC`), comparable across processes of one machine.
func monotonicMicroseconds() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) * 1_000_000 + UInt64(spec.tv_nsec) / 1000
}

struct BenchResult: Encodable {
    var command: String
    var transport: String
    var messages: Int
    var messageSize: Int
    var seconds: Double
    var messagesPerSecond: Double
    var megabytesPerSecond: Double
    var latencyMicroseconds: [String: UInt64]
    /// end-to-end only: from a batch's intended send time to the broker's acknowledgement of it.
    var sendLatencyMicroseconds: [String: UInt64]?

    enum CodingKeys: String, CodingKey {
        case command, transport, messages, seconds
        case messageSize = "message_size"
        case messagesPerSecond = "messages_per_second"
        case megabytesPerSecond = "megabytes_per_second"
        case latencyMicroseconds = "latency_us"
        case sendLatencyMicroseconds = "send_latency_us"
    }

    init(command: String, transport: String, recorder: LatencyRecorder, messageSize: Int, seconds: Double) {
        self.command = command
        self.transport = transport
        messages = recorder.messageCount
        self.messageSize = messageSize
        self.seconds = seconds
        messagesPerSecond = Double(messages) / max(seconds, 1e-9)
        megabytesPerSecond = Double(recorder.byteCount) / max(seconds, 1e-9) / 1_000_000
        latencyMicroseconds = Self.percentiles(recorder)
    }

    /// p50, p90, p99, p99.9 and max of `recorder`, in microseconds; empty when nothing was recorded.
    static func percentiles(_ recorder: LatencyRecorder) -> [String: UInt64] {
        let histogram = recorder.snapshot()
        return histogram.totalCount == 0 ? [:] : [
            "p50": histogram.valueAtPercentile(50), "p90": histogram.valueAtPercentile(90), "p99": histogram.valueAtPercentile(99),
            "p99.9": histogram.valueAtPercentile(99.9), "max": histogram.maxRecorded,
        ]
    }

    func print(json: Bool) {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            Swift.print(String(decoding: try! encoder.encode(self), as: UTF8.self))
            return
        }
        Swift.print("\(command) over \(transport): \(messages) messages of \(messageSize) B in \(String(format: "%.2f", seconds)) s")
        Swift.print(String(format: "  throughput: %.0f msg/s, %.1f MB/s", messagesPerSecond, megabytesPerSecond))
        if !latencyMicroseconds.isEmpty {
            let order = ["p50", "p90", "p99", "p99.9", "max"]
            Swift.print("  latency: " + order.map { "\($0) \(Self.format(latencyMicroseconds[$0]!))" }.joined(separator: "  "))
        }
        if let send = sendLatencyMicroseconds, !send.isEmpty {
            let order = ["p50", "p90", "p99", "p99.9", "max"]
            Swift.print("  send latency: " + order.map { "\($0) \(Self.format(send[$0]!))" }.joined(separator: "  "))
        }
    }

    static func format(_ microseconds: UInt64) -> String {
        microseconds >= 10_000 ? String(format: "%.1f ms", Double(microseconds) / 1000) : String(format: "%.2f ms", Double(microseconds) / 1000)
    }
}

/// Prints a progress line on standard error once a second until cancelled.
func progress(_ label: String, recorder: LatencyRecorder, start: UInt64, quiet: Bool) -> Task<Void, Never> {
    Task {
        guard !quiet else { return }
        var last = 0
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            let now = recorder.messageCount
            let histogram = recorder.snapshot()
            let p99 = histogram.totalCount == 0 ? 0 : histogram.valueAtPercentile(99)
            let elapsed = Double(monotonicMicroseconds() - start) / 1e6
            let rate: Double = Double(now - last)
            let line: String = "\r\(label) \(String(format: "%6.1f", elapsed))s  \(now) msg  \(String(format: "%.0f", rate)) msg/s  p99 \(BenchResult.format(p99))   "
            FileHandle.standardError.write(Data(line.utf8))
            last = now
        }
    }
}

/// Paces a worker to `rate` messages per second (nil = unpaced).
struct Pacer {
    let interval: Double?
    var next: UInt64

    init(rate: Double?, start: UInt64) {
        interval = rate.map { 1e6 / $0 }
        next = start
    }

    /// Waits until `count` more messages may go. Returns the intended send time (for latency
    /// without coordinated omission: measured from when the message should have been sent).
    mutating func wait(count: Int) async -> UInt64 {
        guard let interval else { return monotonicMicroseconds() }
        let intended = next
        next += UInt64(interval * Double(count))
        let now = monotonicMicroseconds()
        if intended > now { try? await Task.sleep(for: .microseconds(intended - now)) }
        return intended
    }
}
