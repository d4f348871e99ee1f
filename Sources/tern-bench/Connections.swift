import ArgumentParser
import Foundation
import TernClient
import TernCore

/// `tern-bench connections`: the broker's anonymous memory (`RssAnon`: heap, stacks, NIO
/// buffers) with idle binary connections open, and after they close (issue 13, item 4).
///
/// For each count of `--counts` in turn: opens that many connections, each with its own
/// ``TernClient`` that completes the `ApiVersions` handshake and sends nothing else (real
/// protocol connections, not bare sockets), waits `--settle` seconds, reads `RssAnon` of `--pid` from
/// `/proc/PID/status`, closes them all, waits again and reads it again. Prints one table row per
/// count, in KiB, against the baseline read before the first count. Linux only (`/proc`).
///
/// ```
/// tern-bench connections --server tern://127.0.0.1:7451 --pid $(pgrep -x ternd) --counts 1,64,1000,10000
/// ```
struct Connections: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "RssAnon of a ternd process with N idle binary connections (ApiVersions done), and after they close.")

    @Option(help: "The broker: tern://HOST:PORT (binary protocol).")
    var server = "tern://127.0.0.1:7081"

    @Option(help: "The broker's process id (its /proc/PID/status is read).")
    var pid: Int32

    @Option(help: "Connection counts opened one after another, comma-separated (each needs that many open files here and in ternd).")
    var counts = "1,64,1000,10000"

    @Option(help: "Connections being opened at the same time.")
    var parallel = 64

    @Option(help: "Seconds waited after opening, before memory is read.")
    var settle = 3.0

    @Option(help: "Seconds waited after closing, before memory is read (ternd's memory_trim_interval is 10 s by default).")
    var settleAfterClose = 12.0

    @Option(help: "Before idling, each connection sends one batch of this many messages and receives + acknowledges a batch as large (frames of about this × --message-size bytes each way); 0 = only the handshake.")
    var sendBatch = 0

    @Option(help: "Body size of --send-batch messages, in bytes.")
    var messageSize = 1024

    @Option(help: "The queue --send-batch uses (created when missing).")
    var queue = "connections"

    @Flag(help: "Print the rows as JSON on standard output.")
    var json = false

    struct Row: Codable {
        var connections: Int
        /// RssAnon with the connections open, KiB.
        var openKiB: Int
        /// (open − baseline) ÷ connections, bytes.
        var bytesPerConnection: Int
        /// RssAnon after they closed, KiB.
        var closedKiB: Int
    }

    func run() async throws {
        guard let (host, port) = TernClient.address(from: server) else {
            throw ValidationError("--server must be tern://HOST:PORT, got \(server)")
        }
        let sizes = counts.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !sizes.isEmpty, sizes.allSatisfy({ $0 >= 1 }) else { throw ValidationError("--counts must list positive integers") }
        guard parallel >= 1 else { throw ValidationError("--parallel must be at least 1") }
        guard (0...1000).contains(sendBatch) else { throw ValidationError("--send-batch must be 0 to 1000") }
        if sendBatch > 0 {
            let setup = TernClient(host: host, port: port)
            try await setup.createQueue(queue)
            await setup.close()
        }
        try await pause(settle)
        let baseline = try Self.rssAnonKiB(pid: pid)
        var rows: [Row] = []
        for count in sizes {
            let clients = try await open(count, host: host, port: port)
            try await pause(settle)
            let opened = try Self.rssAnonKiB(pid: pid)
            for client in clients { await client.close() }
            try await pause(settleAfterClose)
            let closed = try Self.rssAnonKiB(pid: pid)
            rows.append(Row(connections: count, openKiB: opened, bytesPerConnection: (opened - baseline) * 1024 / count, closedKiB: closed))
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let data = try encoder.encode(["baselineKiB": AnyEncodable(baseline), "rows": AnyEncodable(rows)])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("idle baseline: RssAnon \(baseline) KiB")
        print("| idle connections | RssAnon open (KiB) | per connection over baseline (bytes) | RssAnon after close (KiB) | after close ÷ baseline |")
        print("|---:|---:|---:|---:|---:|")
        for row in rows {
            let ratio = String(format: "%.2f", Double(row.closedKiB) / Double(max(baseline, 1)))
            print("| \(row.connections) | \(row.openKiB) | \(row.bytesPerConnection) | \(row.closedKiB) | \(ratio) |")
        }
    }

    func pause(_ seconds: Double) async throws { try await Task.sleep(for: .milliseconds(Int(seconds * 1000))) }

    /// Opens `count` clients, `parallel` at a time, each through the `ApiVersions` handshake.
    /// - Throws: the first connection that fails (at ternd's `max_connections` + reserve, or
    ///   out of file descriptors here).
    func open(_ count: Int, host: String, port: Int) async throws -> [TernClient] {
        var clients: [TernClient] = []
        clients.reserveCapacity(count)
        var next = 0
        let (batch, queue) = (sendBatch, queue)
        let body = [UInt8](repeating: UInt8(ascii: "x"), count: messageSize)
        while next < count {
            let wave = min(parallel, count - next)
            let opened = try await withThrowingTaskGroup(of: TernClient.self) { group in
                for _ in 0..<wave {
                    group.addTask {
                        let client = TernClient(host: host, port: port)
                        try await client.connect()
                        if batch > 0 {
                            _ = try await client.send(Array(repeating: OutgoingMessage(body: body), count: batch), to: queue)
                            let received = try await client.receive(from: queue, maxMessages: batch, waitTime: 1)
                            for result in try await client.acknowledge(received.map(\.receiptHandle), on: queue) {
                                if let result { throw result }
                            }
                        }
                        return client
                    }
                }
                var opened: [TernClient] = []
                for try await client in group { opened.append(client) }
                return opened
            }
            clients += opened
            next += wave
        }
        return clients
    }

    /// `RssAnon` of process `pid` in KiB (`/proc/PID/status`).
    static func rssAnonKiB(pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        for line in status.split(separator: "\n") where line.hasPrefix("RssAnon:") {
            if let kib = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap({ Int($0) }) { return kib }
        }
        throw BenchError("no RssAnon in /proc/\(pid)/status")
    }
}

/// A type-erased `Encodable` for the JSON summary.
struct AnyEncodable: Encodable {
    let encodeValue: (any Encoder) throws -> Void
    init(_ value: some Encodable) { encodeValue = value.encode(to:) }
    func encode(to encoder: any Encoder) throws { try encodeValue(encoder) }
}
