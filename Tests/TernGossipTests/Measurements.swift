import Foundation
import Testing
import TernGossip

/// The simulator measurements of `docs/performance.md` ("Gossip membership"). CI runs a small
/// version; `TERN_GOSSIP_MEASURE=1` runs the full one (5, 100 and 1,000 nodes; 10,000 protocol
/// periods) and `TERN_GOSSIP_MEASURE_OUT=FILE` writes the tables to FILE as Markdown.
enum Measurements {
    struct Detection {
        var detected = Distribution()  // first suspect-or-dead, per observer
        var dead = Distribution()      // declared dead, per observer
        var allDetected = Distribution()
        var allDead = Distribution()
        var join = Distribution()      // new member seen alive, per observer
        var allJoined = Distribution()
        var packetsPerMemberSecond = 0.0
        var bytesPerMemberSecond = 0.0
        var steadyPacketsPerMemberSecond = 0.0
        var steadyBytesPerMemberSecond = 0.0
        var trials = 0
    }

    /// Crash detection and join propagation with default settings over a LAN-like network
    /// (0.2–2 ms one-way, no loss).
    /// - Parameters:
    ///   - nodes: cluster size.
    ///   - trials: crashes (and joins) measured.
    ///   - seed: the simulation seed of the first trial (each trial adds its index).
    static func detection(nodes: Int, trials: Int, seed: UInt64) -> Detection {
        var result = Detection()
        // Small clusters: a fresh simulation per trial. Large ones: one simulation, crashes in turn.
        let perTrial = nodes <= 200
        var sim: Simulation! = nil
        var victims = [Int]()
        for trial in 0..<trials {
            if perTrial || sim == nil {
                sim = Simulation(nodes: nodes, seed: seed &+ UInt64(trial))
                sim.bootstrap()
                sim.run(for: .seconds(5))
                let (p0, b0, t0) = (sim.totalPackets, sim.totalBytes, sim.now)
                sim.run(for: .seconds(10))
                let seconds = Double((sim.now - t0).components.seconds)
                result.steadyPacketsPerMemberSecond = Double(sim.totalPackets - p0) / Double(nodes) / seconds
                result.steadyBytesPerMemberSecond = Double(sim.totalBytes - b0) / Double(nodes) / seconds
                victims = Array(1..<nodes)
            }
            let victim = victims.remove(at: (trial * 7 + 3) % victims.count)
            let id = sim.nodes[victim].instance.myself.id
            let start = sim.now
            let (p0, b0) = (sim.totalPackets, sim.totalBytes)
            var detected = [Int: Duration](), dead = [Int: Duration]()
            sim.onChange = { observation in
                guard observation.change.member.id == id else { return }
                let elapsed = observation.time - start
                if detected[observation.observer] == nil { detected[observation.observer] = elapsed }
                if observation.change.member.state == .dead, dead[observation.observer] == nil { dead[observation.observer] = elapsed }
            }
            sim.crash(victim)
            let live = sim.nodes.indices.filter { sim.nodes[$0].condition != .crashed }
            sim.run(until: { dead.count >= live.count }, limit: .seconds(300))
            let seconds = Double((sim.now - start).components.seconds) + 1
            result.packetsPerMemberSecond = Double(sim.totalPackets - p0) / Double(live.count) / seconds
            result.bytesPerMemberSecond = Double(sim.totalBytes - b0) / Double(live.count) / seconds
            for observer in live {
                if let d = detected[observer] { result.detected.add(d) }
                if let d = dead[observer] { result.dead.add(d) }
            }
            if detected.count >= live.count, let last = detected.values.max() { result.allDetected.add(last) }
            if dead.count >= live.count, let last = dead.values.max() { result.allDead.add(last) }

            // A new node joins through node 0.
            let joiner = sim.addNode()
            let joinerID = sim.nodes[joiner].instance.myself.id
            let joinStart = sim.now
            var joined = [Int: Duration]()
            sim.onChange = { observation in
                guard observation.change.member.id == joinerID, observation.change.member.state == .alive,
                      joined[observation.observer] == nil else { return }
                joined[observation.observer] = observation.time - joinStart
            }
            sim.start(joiner, seeds: [sim.nodes[0].instance.myself.gossip])
            sim.run(until: { joined.count >= live.count }, limit: .seconds(300))
            for observer in live { if let d = joined[observer] { result.join.add(d) } }
            if joined.count >= live.count, let last = joined.values.max() { result.allJoined.add(last) }
            sim.onChange = nil
            if !perTrial { sim.run(for: .seconds(20)) }
            result.trials += 1
        }
        return result
    }

    struct FalsePositives {
        var nodes = 0
        var periods = 0
        /// Live members declared dead (by anyone), counted once per observer and event.
        var falseDeaths = 0
        /// Of those, declarations made by the stalling member about others.
        var deathsByStaller = 0
        var suspicions = 0
        var packetsPerMemberSecond = 0.0
        var bytesPerMemberSecond = 0.0
    }

    /// Runs `nodes` members for `periods` protocol periods of simulated time at `loss`; with
    /// `stalling`, node 1 stalls for 2 s every 10 s (Lifeguard's slow-member experiment).
    static func falsePositives(nodes: Int, periods: Int, seed: UInt64, stalling: Bool, loss: Double = 0.05,
                               settings: Gossip.Settings = .init()) -> FalsePositives {
        var network = Simulation.Network()
        network.loss = loss
        let sim = Simulation(nodes: nodes, seed: seed, settings: settings, network: network)
        sim.bootstrap()
        var result = FalsePositives(nodes: nodes, periods: periods)
        sim.onChange = { observation in
            if observation.change.member.state == .dead {
                result.falseDeaths += 1
                if observation.observer == 1 && stalling { result.deathsByStaller += 1 }
            }
            if observation.change.member.state == .suspect { result.suspicions += 1 }
        }
        let (p0, b0) = (sim.totalPackets, sim.totalBytes)
        let seconds = periods * Int(settings.probeInterval.components.seconds == 0 ? 1 : settings.probeInterval.components.seconds)
        var elapsed = 0
        while elapsed < seconds {
            if stalling { sim.stall(1, for: .seconds(2)) }
            sim.run(for: .seconds(10))
            elapsed += 10
        }
        result.packetsPerMemberSecond = Double(sim.totalPackets - p0) / Double(nodes) / Double(seconds)
        result.bytesPerMemberSecond = Double(sim.totalBytes - b0) / Double(nodes) / Double(seconds)
        return result
    }

    static let lifeguardOff = Gossip.Settings().with {
        $0.awarenessMaxMultiplier = 1
        $0.nacks = false
        $0.suspicionMaxTimeoutMultiplier = 1
    }
}

@Suite struct GossipMeasurements {
    static var full: Bool { ProcessInfo.processInfo.environment["TERN_GOSSIP_MEASURE"] == "1" }

    @Test func convergenceAndFalsePositives() throws {
        let clock = ContinuousClock()
        let started = clock.now
        let sizes: [(Int, Int)] = Self.full ? [(5, 200), (100, 20), (1_000, 3)] : [(5, 10), (50, 2)]
        let periods = Self.full ? 10_000 : 1_000
        var lines = [String]()
        func f(_ x: Double) -> String { String(format: "%.2f", x) }
        lines.append("| nodes | trials | seed | detected by all: p50 / p99 / max (s) | dead at all: p50 / p99 / max (s) | join known to all: p50 / p99 / max (s) | datagrams / member / s (steady; during crash) | bytes / member / s (steady; during crash) |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for (nodes, trials) in sizes {
            let seed: UInt64 = 1_000 + UInt64(nodes)
            let r = Measurements.detection(nodes: nodes, trials: trials, seed: seed)
            #expect(r.dead.count == r.trials * (nodes - 1), "every live member declared each crash dead")
            #expect(r.join.count >= r.trials * (nodes - 1), "every live member saw each join")
            lines.append("| \(nodes) | \(r.trials) | \(seed) | \(f(r.detected.percentile(50))) / \(f(r.detected.percentile(99))) / \(f(r.detected.max)) "
                + "| \(f(r.dead.percentile(50))) / \(f(r.dead.percentile(99))) / \(f(r.dead.max)) "
                + "| \(f(r.join.percentile(50))) / \(f(r.join.percentile(99))) / \(f(r.join.max)) "
                + "| \(f(r.steadyPacketsPerMemberSecond)); \(f(r.packetsPerMemberSecond)) | \(Int(r.steadyBytesPerMemberSecond)); \(Int(r.bytesPerMemberSecond)) |")
        }
        lines.append("")
        lines.append("| scenario | nodes | protocol periods | seed | live members declared dead | suspicions | datagrams / member / s | bytes / member / s |")
        lines.append("|---|---|---|---|---|---|---|---|")
        let scenarios: [(String, Int, Bool, Gossip.Settings)] = [
            ("5 % loss", 5, false, .init()),
            ("5 % loss", 20, false, .init()),
            ("5 % loss, node 1 stalls 2 s every 10 s", 10, true, .init()),
            ("same, Lifeguard off (SWIM)", 10, true, Measurements.lifeguardOff),
        ]
        for (index, (name, nodes, stalling, settings)) in scenarios.enumerated() {
            let seed = UInt64(2_000 + index)
            let r = Measurements.falsePositives(nodes: nodes, periods: periods, seed: seed, stalling: stalling, settings: settings)
            if index < 3 { #expect(r.falseDeaths == 0, "\(name): \(r.falseDeaths) live members declared dead") }
            lines.append("| \(name) | \(nodes) | \(periods) per member | \(seed) | \(r.falseDeaths)\(stalling ? " (\(r.deathsByStaller) by the staller)" : "") "
                + "| \(r.suspicions) | \(f(r.packetsPerMemberSecond)) | \(Int(r.bytesPerMemberSecond)) |")
        }
        let elapsed = clock.now - started
        lines.append("")
        lines.append("Real time of this run: \(elapsed.components.seconds) s.")
        let text = lines.joined(separator: "\n") + "\n"
        print(text)
        if let path = ProcessInfo.processInfo.environment["TERN_GOSSIP_MEASURE_OUT"] {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        }
    }
}
