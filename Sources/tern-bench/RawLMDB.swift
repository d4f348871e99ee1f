import ArgumentParser
import Foundation
import Logging
import TernStorage

/// The disk's limit on Tern's own storage path: durable `MDB_APPEND` puts of one size in
/// transactions of `--transaction-size`, through ``Storage`` (the same environment flags and
/// writer thread as the broker).
struct RawLMDB: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raw-lmdb", abstract: "Durable MDB_APPEND puts in transactions of 1,000 through TernStorage.")

    @Option(help: "Where to create the temporary environment (removed afterwards).")
    var directory = NSTemporaryDirectory()
    @Option(help: "Value size in bytes.")
    var messageSize = 1024
    @Option(help: "Puts in total.")
    var count = 500_000
    @Option(help: "Puts per write transaction.")
    var transactionSize = 1000
    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        let path = (directory as NSString).appendingPathComponent("tern-bench-raw-\(getpid())")
        defer { try? FileManager.default.removeItem(atPath: path) }
        var settings = Storage.Settings()
        settings.maxMapBytes = 64 << 30
        let storage = try Storage(directory: path, databases: ["raw"], settings: settings, logger: Logger(label: "tern-bench"))
        defer { storage.close() }
        let database = storage.database("raw")
        let value = [UInt8](repeating: 0x61, count: messageSize)
        let recorder = LatencyRecorder()
        let start = monotonicMicroseconds()
        var next: UInt64 = 0
        let transactionSize = self.transactionSize
        while next < UInt64(count) {
            let first = next
            let puts = min(transactionSize, count - Int(next))
            let begin = monotonicMicroseconds()
            try await storage.write { txn in
                for key in first..<first + UInt64(puts) {
                    var writer = BigEndianWriter(capacity: 8)
                    writer.write(key)
                    try txn.put(database, writer.bytes, value, append: true)
                }
            }
            recorder.record(microseconds: monotonicMicroseconds() - begin, count: puts, size: messageSize)
            next += UInt64(puts)
        }
        BenchResult(command: "raw-lmdb", transport: "lmdb", recorder: recorder, messageSize: messageSize,
                    seconds: Double(monotonicMicroseconds() - start) / 1e6).print(json: json)
    }
}
