import TernReplication

/// A hand-driven cluster of instances for event-by-event tests: the test decides which
/// messages are delivered, dropped or held, which node ticks, persists or crashes.
final class TestCluster {
    typealias ID = Raft.NodeID

    /// What a node has made durable.
    struct Disk {
        var hardState = Raft.HardState()
        var snapshot: Raft.Snapshot?
        var entries: [Raft.Entry] = []
    }

    var settings: Raft.Settings
    var nodes: [ID: Raft.Instance] = [:]
    var disks: [ID: Disk] = [:]
    /// Messages sent and not yet delivered, in send order.
    var network: [Raft.Message] = []
    /// Crashed nodes: they neither process nor receive.
    var down: Set<ID> = []
    /// Directed links that drop every message (from, to).
    var cut: Set<[ID]> = []
    /// Nodes whose readies are left unprocessed (their disk is slow).
    var holdPersistence: Set<ID> = []
    /// Committed entries each node applied, in order (kept across restarts).
    var applied: [ID: [Raft.Entry]] = [:]
    var reads: [ID: [Raft.ReadState]] = [:]
    var installedSnapshots: [ID: [Raft.Snapshot]] = [:]
    /// Every message ever sent, for assertions about traffic.
    var sent: [Raft.Message] = []
    let bootstrap: Raft.Configuration

    init(_ ids: [ID], settings: Raft.Settings = Raft.Settings(), extra: [ID] = []) throws {
        self.settings = settings
        bootstrap = Raft.Configuration(voters: Set(ids))
        for id in ids {
            nodes[id] = try Raft.Instance(id: id, bootstrap: bootstrap, settings: settings, randomSeed: id)
            disks[id] = Disk()
        }
        for id in extra {
            nodes[id] = try Raft.Instance(id: id, bootstrap: Raft.Configuration(), settings: settings, randomSeed: id)
            disks[id] = Disk()
        }
    }

    subscript(_ id: ID) -> Raft.Instance {
        get { nodes[id]! }
        set { nodes[id] = newValue }
    }

    /// Carries out every pending ready of `id` (persist, then send, then apply).
    func process(_ id: ID) {
        guard !down.contains(id), !holdPersistence.contains(id) else { return }
        while let ready = nodes[id]!.ready() {
            var disk = disks[id]!
            if let snapshot = ready.snapshot {
                disk.snapshot = snapshot
                disk.entries = []
                installedSnapshots[id, default: []].append(snapshot)
                applied[id, default: []].removeAll()
            }
            if let compaction = ready.compaction {
                disk.snapshot = compaction
                disk.entries.removeAll { $0.index <= compaction.metadata.index }
            }
            if let first = ready.entries.first {
                disk.entries.removeAll { $0.index >= first.index }
                disk.entries.append(contentsOf: ready.entries)
            }
            if let hard = ready.hardState { disk.hardState = hard }
            disks[id] = disk
            network.append(contentsOf: ready.messages)
            sent.append(contentsOf: ready.messages)
            applied[id, default: []].append(contentsOf: ready.committedEntries)
            reads[id, default: []].append(contentsOf: ready.readStates)
            nodes[id]!.advance(ready)
        }
    }

    func processAll() {
        for id in nodes.keys.sorted() { process(id) }
    }

    /// Delivers the messages in flight that match `filter` (dropping those on cut links or to
    /// down nodes), repeating until no matching message is left; others stay in flight.
    func deliver(rounds: Int = 100, where filter: (Raft.Message) -> Bool = { _ in true }) {
        for _ in 0..<rounds {
            processAll()
            let batch = network
            network.removeAll()
            var delivered = false
            for message in batch {
                if down.contains(message.to) || down.contains(message.from) || cut.contains([message.from, message.to]) {
                    continue
                }
                if filter(message) {
                    nodes[message.to]!.step(message)
                    delivered = true
                } else {
                    network.append(message)
                }
            }
            if !delivered { processAll(); return }
        }
    }

    /// Drops every message in flight.
    func dropAll() { processAll(); network.removeAll() }

    /// Ticks `id` until it starts campaigning (or becomes leader at once), then delivers.
    func campaign(_ id: ID) {
        processAll()
        for _ in 0..<1000 where nodes[id]!.role == .follower { nodes[id]!.tick() }
        deliver()
    }

    /// Runs elections on `id` (ticking it until it starts one, then delivering the messages
    /// that match `filter`) until it leads, at most 20 times.
    func elect(_ id: ID, where filter: (Raft.Message) -> Bool = { _ in true }) {
        processAll()
        for _ in 0..<20 where nodes[id]!.role != .leader {
            let term = nodes[id]!.term
            for _ in 0..<1000 where nodes[id]!.term == term && nodes[id]!.role != .leader { nodes[id]!.tick() }
            deliver(where: filter)
        }
    }

    func tick(_ id: ID, _ times: Int = 1) {
        for _ in 0..<times { nodes[id]!.tick() }
        process(id)
    }

    /// Ticks every live node `times` times, delivering after each tick.
    func tickAll(_ times: Int, deliverAfter: Bool = true) {
        for _ in 0..<times {
            for id in nodes.keys.sorted() where !down.contains(id) { nodes[id]!.tick() }
            if deliverAfter { deliver() } else { processAll() }
        }
    }

    /// Crashes `id`: its memory is gone, messages to it are dropped.
    func crash(_ id: ID) {
        processAll()
        down.insert(id)
    }

    /// Restarts `id` from its disk.
    func restart(_ id: ID, bootstrap: Raft.Configuration? = nil) throws {
        down.remove(id)
        let disk = disks[id]!
        let start = Raft.InitialState(hardState: disk.hardState, snapshot: disk.snapshot, entries: disk.entries,
                                      applied: disk.snapshot?.metadata.index ?? 0)
        nodes[id] = try Raft.Instance(id: id, bootstrap: bootstrap ?? self.bootstrap, initialState: start,
                                      settings: settings, randomSeed: id &+ 1000)
        applied[id] = []
    }

    func isolate(_ id: ID) {
        for other in nodes.keys where other != id {
            cut.insert([id, other])
            cut.insert([other, id])
        }
    }

    func heal() { cut.removeAll() }

    var leaders: [ID] { nodes.keys.sorted().filter { nodes[$0]!.role == .leader && !down.contains($0) } }

    /// The payloads `id` applied, non-empty ones only (leaders' no-ops are skipped).
    func appliedPayloads(_ id: ID) -> [[UInt8]] {
        (applied[id] ?? []).filter { $0.kind == .normal && !$0.payload.isEmpty }.map(\.payload)
    }
}

extension Array where Element == UInt8 {
    static func text(_ s: String) -> [UInt8] { Array(s.utf8) }
}
