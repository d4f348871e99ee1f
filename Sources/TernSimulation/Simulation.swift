public import TernReplication

/// A deterministic simulator of a whole Raft group in one process (FoundationDB's simulation
/// testing; TigerBeetle's VOPR): N ``Raft/Instance``s over a simulated network (loss, delay,
/// reordering, duplication, asymmetric partitions), a simulated disk per node (writes not yet
/// synced are lost in a crash; a node restarts from what it synced), a simulated clock, and
/// clients proposing commands and linearizable reads. One seed decides every event, so a
/// failing run replays exactly: `tern-sim --seed N`.
///
/// ```swift
/// let report = Simulation.run(Simulation.Options(seed: 7), workload: QueueWorkload.self)
/// if !report.passed { print(report.rendered()) }
/// ```
///
/// Checkers (run on every event, periodically, and at the end): at most one leader per term
/// (Raft §5.2, election safety); logs that hold an entry of the same index and term are equal
/// up to it (§5.3, log matching); every committed entry is in every later leader's log (§5.4,
/// leader completeness); every node applies the same command at each index (§5.4.3,
/// state-machine safety); reads are not stale (thesis §6.4); the workload's own guarantees;
/// and liveness: after the network heals and crashed nodes restart, a leader is elected and a
/// proposal commits on every node within a bounded number of election timeouts.
public enum Simulation {
    /// SplitMix64 (Steele, Lea & Flood 2014): the simulation's only source of randomness.
    public struct Random: RandomNumberGenerator, Sendable {
        private var state: UInt64
        public init(seed: UInt64) { state = seed }
        public mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        /// A uniform integer in `range`.
        public mutating func uniform(_ range: ClosedRange<UInt64>) -> UInt64 {
            range.lowerBound + next() % (range.upperBound - range.lowerBound + 1)
        }
        /// true with probability `p`.
        public mutating func chance(_ p: Double) -> Bool {
            p > 0 && Double(next() >> 11) / Double(1 << 53) < p
        }
    }

    /// FNV-1a, 64 bits: digests of states and traces.
    public static func hash(_ bytes: [UInt8]) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return h
    }

    /// What can go wrong, and how often. Times are simulated.
    public struct Faults: Sendable, Hashable {
        /// Probability that a message is lost.
        public var lossRate = 0.02
        /// Probability that a message is delivered twice.
        public var duplicateRate = 0.01
        /// Probability that a message is held back by up to ``longDelay`` (reordering).
        public var reorderRate = 0.05
        /// Normal one-way delay range.
        public var delay: ClosedRange<Duration> = .microseconds(200) ... .milliseconds(10)
        public var longDelay: Duration = .milliseconds(400)
        /// Time from one write (a ready) to its sync.
        public var diskLatency: ClosedRange<Duration> = .microseconds(100) ... .milliseconds(4)
        /// Mean time between partitions (nil: none). A partition isolates a node, splits the
        /// group, or cuts one direction of one node's or one link's traffic (asymmetric).
        public var partitionEvery: Duration? = .seconds(8)
        public var partitionLength: ClosedRange<Duration> = .milliseconds(500) ... .seconds(8)
        /// Mean time between crashes of a node (nil: none); at most a minority is down at once.
        public var crashEvery: Duration? = .seconds(10)
        public var downtime: ClosedRange<Duration> = .milliseconds(100) ... .seconds(6)
        /// Fraction of crashes that take every node down at once (a power loss); the others
        /// take one node, at most a minority at a time, preferring one with a write in flight.
        public var powerLossFraction = 0.1

        public init() {}

        /// No faults at all.
        public static let none: Faults = {
            var f = Faults()
            f.lossRate = 0; f.duplicateRate = 0; f.reorderRate = 0
            f.partitionEvery = nil; f.crashEvery = nil
            return f
        }()
        /// Network faults only (loss, duplication, reordering, partitions).
        public static let network: Faults = { var f = Faults(); f.crashEvery = nil; return f }()
        /// Crashes only, over a reliable network.
        public static let crashes: Faults = {
            var f = Faults.none
            f.crashEvery = .seconds(4)
            return f
        }()
        /// Everything (the default).
        public static let all = Faults()

        /// A named profile: `none`, `network`, `crashes`, `all`.
        public static func named(_ name: String) -> Faults? {
            switch name {
            case "none": Faults.none
            case "network": .network
            case "crashes": .crashes
            case "all": .all
            default: nil
            }
        }
    }

    /// One run's parameters.
    public struct Options: Sendable {
        public var seed: UInt64
        public var nodes = 3
        /// Events to simulate before healing (ticks, deliveries, syncs, client actions, faults).
        public var events = 100_000
        public var faults = Faults.all
        public var clients = 3
        /// Fraction of client operations that are linearizable reads.
        public var readFraction = 0.1
        public var settings = Raft.Settings()
        /// A node compacts its log once this many applied entries follow its snapshot.
        public var compactEvery: UInt64 = 64
        /// Liveness bound: after healing, a leader must be elected and a proposal applied on
        /// every node within this many maximum election timeouts.
        public var healWithinElectionTimeouts = 10
        /// Rules broken on purpose, on every node (checker tests).
        public var plantedBugs = Raft.PlantedBugs.none
        /// A shell bug planted on purpose (checker tests): messages of a ready are sent as soon
        /// as it is taken, before its writes are synced, so a follower acknowledges entries a
        /// crash can still take away and the leader counts them toward commit.
        public var sendBeforeSync = false
        /// Carry readies out as `ReplicaGroup` does (pipelined): every ready is taken at once,
        /// a leader's appends leave before its sync, committed entries apply at once, and each
        /// ready's other messages wait for its write and every earlier one, which sync in
        /// order. false: one ready at a time, each synced before the next is taken. Default true.
        public var pipelined = true
        /// Pass every message through the binary codec (encode, then decode).
        public var codecRoundTrip = true
        /// Events kept for the trace printed on failure.
        public var traceLength = 200
        /// Stop at the first violation.
        public var stopOnViolation = true
        /// Operator actions now and then (3–12 s apart, groups of 3 nodes or more): leadership
        /// transfers, and removing a voter, wiping it and adding it back as a learner that is
        /// then promoted.
        public var operations = true

        public init(seed: UInt64) { self.seed = seed }
    }

    /// The outcome of a run.
    public struct Report: Sendable {
        public var seed: UInt64
        public var violations: [String] = []
        /// The last events before the end (or the first violation), oldest first.
        public var trace: [String] = []
        /// A digest of every event in order: equal for equal seeds and options.
        public var traceHash: UInt64 = 0
        public var events = 0
        public var simulatedTime: Duration = .zero
        public var committedEntries: UInt64 = 0
        public var elections = 0
        public var messagesSent = 0
        public var messagesDropped = 0
        public var crashes = 0
        public var partitions = 0
        public var acknowledgedProposals = 0
        public var servedReads = 0
        /// Operator actions started: leadership transfers, and membership changes (removals,
        /// learner additions, promotions).
        public var leadershipTransfers = 0
        public var membershipChanges = 0
        /// Simulated time from healing to a leader with the probe applied everywhere.
        public var healTime: Duration?

        public var passed: Bool { violations.isEmpty }

        /// A readable summary; with the trace and the replay command when the run failed.
        public func rendered() -> String {
            var lines: [String] = []
            lines.append("seed \(seed): \(passed ? "passed" : "FAILED") after \(events) events, \(simulatedTime) simulated")
            lines.append("  committed \(committedEntries) entries, \(acknowledgedProposals) acknowledged proposals, \(servedReads) reads, \(elections) leaders elected")
            lines.append("  \(leadershipTransfers) leadership transfers, \(membershipChanges) membership changes")
            lines.append("  \(messagesSent) messages sent, \(messagesDropped) dropped, \(crashes) crashes, \(partitions) partitions"
                         + (healTime.map { ", converged \($0) after heal" } ?? ""))
            if !passed {
                lines.append("violations:")
                lines += violations.prefix(20).map { "  - \($0)" }
                lines.append("last \(trace.count) events:")
                lines += trace.map { "  \($0)" }
                lines.append("replay: swift run tern-sim --seed \(seed) (with the same options)")
            }
            return lines.joined(separator: "\n")
        }
    }

    /// Runs one simulation of `options.nodes` nodes with `workload`'s clients and state machine.
    public static func run<W: SimulationWorkload>(_ options: Options, workload: W.Type) -> Report {
        var engine = Engine<W>(options: options)
        return engine.run()
    }

    /// Runs one simulation of the queue model.
    public static func run(_ options: Options) -> Report {
        run(options, workload: QueueWorkload.self)
    }
}

/// A failure inside the simulation's own machinery (for example an undecodable snapshot).
public struct SimulationError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
