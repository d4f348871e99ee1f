import ArgumentParser
import Foundation
import TernReplication
import TernSimulation


/// Runs deterministic simulations of a Raft group (see docs/replication.md): one seed decides
/// every event, so a failure printed here replays exactly with the same arguments.
@main
struct TernSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tern-sim",
        abstract: "Deterministic simulation of a Raft group: safety and liveness checkers over random faults.",
        discussion: """
            Examples:
              tern-sim --seed 42                         one run of 100,000 events
              tern-sim --seed 1 --seeds 200 --events 50000 --nodes 5
              tern-sim --seed 7 --faults network --plant-bug vote-twice   shows a checker failing
            """)

    @Option(help: "The first seed.") var seed: UInt64 = 1
    @Option(help: "How many consecutive seeds to run, from --seed.") var seeds: Int = 1
    @Option(help: "Nodes in the group (1–9).") var nodes: Int = 3
    @Option(help: "Events per run before the network heals.") var events: Int = 100_000
    @Option(help: "Fault profile: none, network, crashes, all.") var faults: String = "all"
    @Option(help: "Concurrent clients.") var clients: Int = 3
    @Option(help: "Compact a node's log once this many applied entries follow its snapshot.") var compactEvery: UInt64 = 64
    @Option(help: "Plant a bug to see a checker catch it: unpersisted-commit, vote-twice, previous-term-commit, send-before-sync (the shell sends before syncing; use with --faults crashes).")
    var plantBug: String?
    @Flag(help: "Skip the codec round trip of every message (faster).") var noCodec = false
    @Flag(help: "No operator actions (leadership transfers, membership changes).") var noOperations = false
    @Flag(help: "Turn pre-vote off.") var noPreVote = false
    @Flag(help: "Turn check-quorum (and the leader lease) off.") var noCheckQuorum = false
    @Option(help: "Raft.Settings.maxInflightAppends.") var maxInflight: Int = 64
    @Option(help: "Raft.Settings.maxBytesPerAppend.") var maxAppendBytes: Int = 1 << 20
    @Flag(help: "Print a summary of passing runs too.") var verbose = false
    @Flag(help: "Measure instead: entries committed per second through a 3-node group (CPU only, no simulated disk or network).")
    var benchmark = false
    @Option(help: "With --benchmark: entries to commit.") var entries: Int = 200_000
    @Option(help: "With --benchmark: payload bytes per entry.") var payloadBytes: Int = 100
    @Option(help: "With --benchmark: entries per proposal.") var batch: Int = 64

    mutating func validate() throws {
        guard (1...9).contains(nodes) else { throw ValidationError("--nodes must be 1…9") }
        guard Simulation.Faults.named(faults) != nil else { throw ValidationError("--faults must be none, network, crashes or all") }
        guard seeds >= 1, events >= 1, clients >= 0 else { throw ValidationError("--seeds, --events must be ≥ 1, --clients ≥ 0") }
        if let plantBug, !["unpersisted-commit", "vote-twice", "previous-term-commit", "send-before-sync"].contains(plantBug) {
            throw ValidationError("unknown --plant-bug \(plantBug)")
        }
    }

    func run() throws {
        if benchmark { return try runBenchmark() }
        var failed = 0
        var totalEvents = 0
        let clock = ContinuousClock()
        let started = clock.now
        for s in seed..<(seed + UInt64(seeds)) {
            var options = Simulation.Options(seed: s)
            options.nodes = nodes
            options.events = events
            options.faults = Simulation.Faults.named(faults)!
            options.clients = clients
            options.compactEvery = compactEvery
            options.codecRoundTrip = !noCodec
            options.operations = !noOperations
            options.settings = options.settings.with { [noPreVote, noCheckQuorum, maxInflight, maxAppendBytes] in
                $0.preVote = !noPreVote
                $0.checkQuorum = !noCheckQuorum
                $0.maxInflightAppends = maxInflight
                $0.maxBytesPerAppend = maxAppendBytes
            }
            switch plantBug {
            case "unpersisted-commit"?: options.plantedBugs.countUnpersistedEntries = true
            case "vote-twice"?: options.plantedBugs.voteTwiceInOneTerm = true
            case "previous-term-commit"?: options.plantedBugs.commitPreviousTermEntries = true
            case "send-before-sync"?:
                options.sendBeforeSync = true
                options.faults.powerLossFraction = 0.5
                options.faults.diskLatency = .milliseconds(5) ... .milliseconds(60)
            default: break
            }
            let report = Simulation.run(options)
            totalEvents += report.events
            if !report.passed {
                failed += 1
                print(report.rendered())
                print("replay: tern-sim --seed \(s) --nodes \(nodes) --events \(events) --faults \(faults) --clients \(clients) --compact-every \(compactEvery)"
                      + (plantBug.map { " --plant-bug \($0)" } ?? "") + (noCodec ? " --no-codec" : "")
                      + (noOperations ? " --no-operations" : "") + (noPreVote ? " --no-pre-vote" : "")
                      + (noCheckQuorum ? " --no-check-quorum" : "") + " --max-inflight \(maxInflight) --max-append-bytes \(maxAppendBytes)")
            } else if verbose {
                print(report.rendered())
            }
        }
        let elapsed = clock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print("\(seeds - failed)/\(seeds) seeds passed, \(totalEvents) events in \(String(format: "%.1f", seconds)) s (\(Int(Double(totalEvents) / max(seconds, 1e-9))) events/s)")
        if failed > 0 { throw ExitCode(1) }
    }

    func runBenchmark() throws {
        let clock = ContinuousClock()
        let started = clock.now
        let work = try Simulation.replicate(entries: entries, payloadBytes: payloadBytes, batch: batch, nodes: nodes)
        let elapsed = clock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print("\(nodes) nodes, \(entries) entries of \(payloadBytes) B in batches of \(batch): \(String(format: "%.2f", seconds)) s, "
              + "\(Int(Double(entries) / seconds)) entries/s committed")
        print("  \(work.messages) messages, \(work.messageBytes) bytes encoded; appends to one follower carry "
              + "\(String(format: "%.1f", work.appendBytesPerEntryPerFollower)) B per entry (\(String(format: "%.1f", work.appendBytesPerEntryPerFollower - Double(payloadBytes))) B overhead)")
    }
}
