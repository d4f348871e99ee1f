import Benchmark
import Foundation
import Logging
import TernStorage

/// Durable append throughput of the storage engine: one iteration is one group-commit
/// transaction of N puts of a 1 KiB record (envelope + CRC-32C, compression attempted as in
/// production), committed and synced to disk. Messages per second = transactions/s × N.
let benchmarks: @Sendable () -> Void = {
    let body = [UInt8]((0..<1024).map { _ in UInt8.random(in: 32...126) })
    for groupSize in [1, 100, 1000] {
        Benchmark(
            "durable append, 1 KiB, \(groupSize) per transaction",
            configuration: .init(metrics: [.throughput, .wallClock], maxDuration: .seconds(5), maxIterations: 100_000)
        ) { benchmark in
            let directory = NSTemporaryDirectory() + "tern-bench-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let storage = try Storage(directory: directory, databases: ["messages"], logger: Logger(label: "bench"))
            defer { storage.close() }
            let messages = storage.database("messages")
            var sequence: UInt64 = 0
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                let base = sequence
                sequence += UInt64(groupSize)
                try await storage.write { txn in
                    for offset in 0..<UInt64(groupSize) {
                        var key = BigEndianWriter(capacity: 16)
                        key.write(UInt32(1))
                        key.write(UInt32(0))
                        key.write(base + offset)
                        try txn.put(messages, key.bytes, RecordCodec.encode(body), append: true)
                    }
                }
            }
            benchmark.stopMeasurement()
        }
    }
}
