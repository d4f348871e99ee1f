import ArgumentParser
import Foundation

/// `tern-bench`: the load generator of Tern.
///
/// ```
/// tern-bench raw-lmdb --message-size 1024 --count 200000
/// tern-bench produce  --server tern://127.0.0.1:7081 --connections 4 --batch 1000 --count 1000000
/// tern-bench consume  --server tern://127.0.0.1:7081 --connections 4 --batch 1000 --count 1000000
/// tern-bench end-to-end --rate 10000 --duration 30
/// tern-bench produce  --topic logs --partitions 8 --batch 500 --count 1000000
/// tern-bench consume  --topic logs --connections 4 --batch 1000 --count 1000000
/// tern-bench connections --server tern://127.0.0.1:7081 --pid $(pgrep -x ternd) --counts 1,64,1000,10000
/// ```
@main
struct TernBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tern-bench",
        abstract: "Load generator for Tern: throughput and latency percentiles (hdrhistogram).",
        subcommands: [Produce.self, Consume.self, EndToEnd.self, RawLMDB.self, Connections.self, Pipeline.self])
}

/// Options shared by the commands that talk to a broker.
struct LoadOptions: ParsableArguments {
    @Option(help: "The broker: tern://HOST:PORT (binary protocol) or http://HOST:PORT (HTTP API).")
    var server = "tern://127.0.0.1:7081"

    @Option(help: "The queue (created when missing).")
    var queue = "bench"

    @Option(help: "A topic instead of a queue (created with --partitions when missing): produce appends to it, consume reads every partition by offset from the log start.")
    var topic: String?

    @Option(help: "Partitions of a topic created by --topic.")
    var partitions = 4

    @Option(help: "Body size in bytes.")
    var messageSize = 1024

    @Option(help: "Messages in total (ignored when --duration is given).")
    var count = 100_000

    @Option(help: "Run for this many seconds instead of --count messages.")
    var duration: Double?

    @Option(help: "Concurrent connections (each with its own client).")
    var connections = 4

    @Option(help: "Messages per request (send batch, receive batch size).")
    var batch = 100

    @Option(help: "Target rate in messages per second over all connections (default: as fast as possible).")
    var rate: Double?

    @Flag(help: "Print the result as JSON on standard output.")
    var json = false

    @Flag(help: "No progress line on standard error.")
    var quiet = false

    @Flag(help: "Binary: talk only to --server (no Metadata, no following NotLeader); pointed at a follower, every request is forwarded to the leader.")
    var stayOnNode = false

    var isHTTP: Bool { server.hasPrefix("http://") }
}
