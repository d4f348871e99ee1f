@_spi(Testing) import TernReplication

extension Duration {
    /// Whole microseconds.
    var microseconds: UInt64 {
        let (seconds, attoseconds) = components
        return UInt64(max(0, seconds)) * 1_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000_000)
    }
}

/// A binary min-heap of events ordered by (time, sequence): ties break by scheduling order,
/// so the run does not depend on anything but the seed.
struct EventQueue<Event> {
    private var items: [(time: UInt64, sequence: UInt64, event: Event)] = []
    private var sequence: UInt64 = 0

    var isEmpty: Bool { items.isEmpty }

    mutating func push(_ event: Event, at time: UInt64) {
        sequence += 1
        items.append((time, sequence, event))
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard less(child, parent) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> (time: UInt64, event: Event)? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < items.count && less(left, smallest) { smallest = left }
            if right < items.count && less(right, smallest) { smallest = right }
            if smallest == parent { break }
            items.swapAt(parent, smallest)
            parent = smallest
        }
        return (top.time, top.event)
    }

    private func less(_ a: Int, _ b: Int) -> Bool {
        items[a].time < items[b].time || (items[a].time == items[b].time && items[a].sequence < items[b].sequence)
    }
}

struct Engine<W: SimulationWorkload> {
    typealias Machine = W.Machine

    enum Event {
        case tick(node: Int, generation: Int)
        case deliver(Raft.Message)
        case synced(node: Int, generation: Int)
        case restart(node: Int)
        case fault
        case heal(partition: Int)
        case client(Int)
        case clientTimeout(client: Int, operation: Int)
        case operate
    }

    struct Disk {
        var hardState = Raft.HardState()
        var snapshot: Raft.Snapshot?
        var entries: [Raft.Entry] = []
    }

    struct Node {
        var raft: Raft.Instance?
        var generation = 0
        var disk = Disk()
        /// The ready being written; lost if the node crashes before it syncs.
        var writing: Raft.Ready?
        /// With ``Simulation/Options/pipelined``: the readies handed to the disk and not yet
        /// synced, oldest first (each one's messages wait for its sync); lost in a crash.
        var writes: [Raft.Ready] = []
        /// When the last write handed to the disk syncs: writes sync in order.
        var lastSyncAt: UInt64 = 0
        var machine = Machine()
        var applied: Raft.Index = 0
        var reads: [(requestID: UInt64, index: Raft.Index)] = []
        var restarts: UInt64 = 0
        var lastRole: Raft.Role = .follower
        var lastTerm: Raft.Term = 0
        /// Removed from the group and wiped: not restarted until it is added back.
        var decommissioned = false
        /// The configuration it starts with when its disk holds none.
        var bootstrap: Raft.Configuration?
    }

    enum Operation {
        case write(node: Int, index: Raft.Index, term: Raft.Term, command: [UInt8])
        case read(node: Int, requestID: UInt64, mustSee: Raft.Index)
    }

    struct Client {
        var preferred: Int
        var pending: Operation?
        var operation = 0
    }

    let options: Options
    typealias Options = Simulation.Options
    var random: Simulation.Random
    var queue = EventQueue<Event>()
    var now: UInt64 = 0
    var nodes: [Node] = []
    var clients: [Client] = []
    var workload = W()
    /// blocked[from][to]: the directed link drops everything.
    var blocked: [[Bool]]
    var partitionID = 0
    var healing = false
    var report: Simulation.Report
    let bootstrap: Raft.Configuration

    // Checker state.
    var leaderOfTerm: [Raft.Term: Int] = [:]
    /// The first application of each index anywhere: (term, payload digest).
    var canonical: [Raft.Index: (term: Raft.Term, digest: UInt64)] = [:]
    var highestCommitted: Raft.Index = 0
    /// The highest log index any client was told committed.
    var acknowledgedHighWater: Raft.Index = 0
    var nextReadID: UInt64 = 1
    var probe: (node: Int, index: Raft.Index, term: Raft.Term)?
    var pendingRemoval: Int?
    var removalIndex: Raft.Index = 0

    // Trace.
    var trace: [(time: UInt64, item: TraceItem)?]
    var traceNext = 0
    var traceHash: UInt64 = 0xCBF2_9CE4_8422_2325

    init(options: Options) {
        self.options = options
        random = Simulation.Random(seed: options.seed)
        blocked = Array(repeating: Array(repeating: false, count: options.nodes), count: options.nodes)
        report = Simulation.Report(seed: options.seed)
        bootstrap = Raft.Configuration(voters: Set((1...options.nodes).map { Raft.NodeID($0) }))
        trace = Array(repeating: nil, count: max(0, options.traceLength))
    }

    // MARK: Running

    mutating func run() -> Simulation.Report {
        for index in 0..<options.nodes {
            nodes.append(Node())
            start(index)
        }
        for c in 0..<options.clients {
            clients.append(Client(preferred: c % options.nodes))
            schedule(.client(c), after: random.uniform(1_000...100_000))
        }
        if options.operations && options.nodes >= 3 {
            schedule(.operate, after: random.uniform(3_000_000...12_000_000))
        }
        if options.faults.partitionEvery != nil || options.faults.crashEvery != nil {
            schedule(.fault, after: nextFaultDelay())
        }
        var healDeadline: UInt64 = 0
        var healStart: UInt64 = 0
        while let (time, event) = queue.pop() {
            now = time
            report.events += 1
            handle(event)
            if options.stopOnViolation && !report.violations.isEmpty { break }
            if report.events % 10_000 == 0 { checkLogMatching() }
            if !healing && report.events >= options.events {
                healing = true
                healStart = now
                healDeadline = now + UInt64(options.healWithinElectionTimeouts) * options.settings.electionTimeoutMax.microseconds
                healEverything()
            }
            if healing {
                if livenessReached() {
                    report.healTime = .microseconds(Int64(now - healStart))
                    break
                }
                if now > healDeadline {
                    violation("liveness: no leader with a proposal applied on every node within \(options.healWithinElectionTimeouts) election timeouts after healing"
                              + " (leaders: \(nodes.indices.filter { nodes[$0].raft?.role == .leader }.map { $0 + 1 }), terms \(nodes.map { $0.raft?.term ?? 0 }))")
                    break
                }
            }
        }
        if report.violations.isEmpty { finalChecks() }
        report.simulatedTime = .microseconds(Int64(now))
        report.traceHash = traceHash
        report.trace = renderedTrace()
        return report
    }

    mutating func schedule(_ event: Event, after delay: UInt64) {
        queue.push(event, at: now + delay)
    }

    mutating func handle(_ event: Event) {
        switch event {
        case .tick(let n, let generation):
            guard nodes[n].generation == generation, nodes[n].raft != nil else { return }
            nodes[n].raft!.tick()
            pump(n)
            let interval = options.settings.tickInterval.microseconds
            schedule(.tick(node: n, generation: generation), after: interval - interval / 20 + random.next() % (interval / 10 + 1))
        case .deliver(let message):
            let from = Int(message.from) - 1, to = Int(message.to) - 1
            guard nodes[to].raft != nil, !blocked[from][to] else {
                report.messagesDropped += 1
                return
            }
            record(.deliver(message), 1, message.from, message.to, message.term)
            nodes[to].raft!.step(message)
            pump(to)
        case .synced(let n, let generation):
            guard nodes[n].generation == generation else { return }
            if options.pipelined {
                guard !nodes[n].writes.isEmpty else { return }
                completeWrite(n, nodes[n].writes.removeFirst())
                pump(n)
                return
            }
            guard let ready = nodes[n].writing else { return }
            nodes[n].writing = nil
            complete(n, ready)
            pump(n)
        case .restart(let n):
            guard nodes[n].raft == nil, !nodes[n].decommissioned else { return }
            start(n)
        case .operate:
            guard !healing else { return }
            operate()
            schedule(.operate, after: random.uniform(3_000_000...12_000_000))
        case .fault:
            guard !healing else { return }
            injectFault()
            schedule(.fault, after: nextFaultDelay())
        case .heal(let id):
            guard id == partitionID else { return }
            healPartition()
        case .client(let c):
            guard !healing else { return }
            clientAct(c)
        case .clientTimeout(let c, let operation):
            guard clients[c].operation == operation, clients[c].pending != nil else { return }
            clients[c].pending = nil
            nextOperation(c)
        }
    }

    // MARK: Nodes

    mutating func start(_ n: Int) {
        let disk = nodes[n].disk
        let initial = Raft.InitialState(hardState: disk.hardState, snapshot: disk.snapshot, entries: disk.entries,
                                        applied: disk.snapshot?.metadata.index ?? 0)
        nodes[n].restarts += 1
        let seed = options.seed &* 0x2545_F491_4F6C_DD1D &+ nodes[n].restarts
        do {
            var raft = try Raft.Instance(id: Raft.NodeID(n + 1), bootstrap: nodes[n].bootstrap ?? bootstrap, initialState: initial,
                                         settings: options.settings, randomSeed: seed)
            raft.plantedBugs = options.plantedBugs
            nodes[n].raft = raft
        } catch {
            violation("node \(n + 1) cannot start: \(error)")
            return
        }
        if let snapshot = disk.snapshot {
            do { nodes[n].machine = try Machine(snapshot: snapshot.data) } catch {
                violation("node \(n + 1): snapshot does not restore: \(error)")
            }
            nodes[n].applied = snapshot.metadata.index
        } else {
            nodes[n].machine = Machine()
            nodes[n].applied = 0
        }
        nodes[n].reads = []
        nodes[n].lastRole = .follower
        record("start node \(n + 1) (term \(disk.hardState.term), \(disk.entries.count) entries, snapshot \(disk.snapshot?.metadata.index ?? 0))", 2, UInt64(n), 0, 0)
        schedule(.tick(node: n, generation: nodes[n].generation), after: random.uniform(1...options.settings.tickInterval.microseconds))
    }

    mutating func crash(_ n: Int) {
        nodes[n].raft = nil
        nodes[n].writing = nil
        nodes[n].writes = []
        nodes[n].generation += 1
        nodes[n].reads = []
        report.crashes += 1
        record("crash node \(n + 1)", 3, UInt64(n), 0, 0)
        for c in clients.indices {
            switch clients[c].pending {
            case .write(let node, _, _, _)? where node == n, .read(let node, _, _)? where node == n:
                clients[c].pending = nil
                nextOperation(c)
            default: break
            }
        }
    }

    /// Takes the node's next ready: writes that need a sync wait for it, the rest completes now.
    mutating func pump(_ n: Int) {
        if options.pipelined {
            pumpPipelined(n)
            return
        }
        observeRole(n)
        var rounds = 0
        while nodes[n].raft != nil, nodes[n].writing == nil, let ready = nodes[n].raft!.ready() {
            rounds += 1
            precondition(rounds < 10_000, "ready loop does not settle")
            if ready.hardState != nil || !ready.entries.isEmpty || ready.snapshot != nil || ready.compaction != nil {
                nodes[n].writing = ready
                if options.sendBeforeSync {
                    for message in ready.messages { send(message) }
                    nodes[n].writing!.messages = []
                }
                let latency = random.uniform(options.faults.diskLatency.lowerBound.microseconds...options.faults.diskLatency.upperBound.microseconds)
                schedule(.synced(node: n, generation: nodes[n].generation), after: latency)
                return
            }
            complete(n, ready)
            observeRole(n)
        }
    }

    /// Takes every ready the node has, as `ReplicaGroup` does: a leader's appends leave at once,
    /// committed entries (persisted here already) are applied at once, and the rest of each
    /// ready waits for its write, which syncs after every earlier one; a ready with nothing to
    /// write still waits for the writes before it when it has messages (an answer may rest on
    /// them).
    mutating func pumpPipelined(_ n: Int) {
        observeRole(n)
        var rounds = 0
        while nodes[n].raft != nil, let ready = nodes[n].raft!.ready() {
            rounds += 1
            precondition(rounds < 10_000, "ready loop does not settle")
            let writes = ready.hardState != nil || !ready.entries.isEmpty || ready.snapshot != nil || ready.compaction != nil
            var write = ready
            write.committedEntries = []
            write.readStates = []
            if options.sendBeforeSync {
                for message in ready.messages { send(message) }
                write.messages = []
            } else {
                for message in ready.messages where Self.maySendBeforeSync(message) { send(message) }
                write.messages = ready.messages.filter { !Self.maySendBeforeSync($0) }
            }
            if writes || (!write.messages.isEmpty && !nodes[n].writes.isEmpty) {
                nodes[n].writes.append(write)
                let latency = writes ? random.uniform(options.faults.diskLatency.lowerBound.microseconds...options.faults.diskLatency.upperBound.microseconds) : 0
                let at = max(now + latency, nodes[n].lastSyncAt)
                nodes[n].lastSyncAt = at
                schedule(.synced(node: n, generation: nodes[n].generation), after: at - now)
            } else {
                for message in write.messages { send(message) }
            }
            for entry in ready.committedEntries { apply(n, entry) }
            if let last = ready.committedEntries.last { nodes[n].raft!.onApplied(upTo: last.index) }
            nodes[n].reads.append(contentsOf: ready.readStates.map { ($0.requestID, $0.index) })
            serveReads(n)
            compactIfDue(n)
            observeRole(n)
        }
    }

    /// Messages the shell sends before the ready's write syncs (`ReplicaGroup.maySendBeforeSync`).
    static func maySendBeforeSync(_ message: Raft.Message) -> Bool {
        switch message.kind {
        case .append, .heartbeat, .timeoutNow, .readIndexResponse: true
        default: false
        }
    }

    /// Node `n` installs the snapshot a ready carries: its state machine restored from it (a
    /// violation when it does not restore), applied up to its index.
    mutating func install(_ n: Int, _ snapshot: Raft.Snapshot) {
        do { nodes[n].machine = try Machine(snapshot: snapshot.data) } catch {
            violation("node \(n + 1): installed snapshot does not restore: \(error)")
        }
        nodes[n].applied = snapshot.metadata.index
        record("node \(n + 1) installed snapshot \(snapshot.metadata.index)@\(snapshot.metadata.term)", 5, UInt64(n), snapshot.metadata.index, 0)
    }

    /// A pipelined write synced: record it on the disk, send its messages, report it persisted.
    mutating func completeWrite(_ n: Int, _ ready: Raft.Ready) {
        recordOnDisk(n, ready)
        for message in ready.messages { send(message) }
        if let snapshot = ready.snapshot { install(n, snapshot) }
        if let last = ready.entries.last { nodes[n].raft!.onPersisted(upTo: last.index, term: last.term) }
    }

    /// Compacts the node's log once ``Simulation/Options/compactEvery`` applied entries follow
    /// its snapshot.
    mutating func compactIfDue(_ n: Int) {
        if nodes[n].applied >= nodes[n].raft!.snapshotIndex + options.compactEvery, nodes[n].raft!.appliedIndex >= nodes[n].applied {
            nodes[n].raft!.compact(through: nodes[n].applied, data: nodes[n].machine.snapshot())
        }
    }

    /// The ready's writes reached the disk.
    mutating func recordOnDisk(_ n: Int, _ ready: Raft.Ready) {
        var disk = nodes[n].disk
        if let snapshot = ready.snapshot {
            disk.snapshot = snapshot
            disk.entries = []
        }
        if let compaction = ready.compaction, compaction.metadata.index > (disk.snapshot?.metadata.index ?? 0) {
            disk.snapshot = compaction
            if let k = disk.entries.firstIndex(where: { $0.index > compaction.metadata.index }) {
                disk.entries.removeFirst(k)
            } else {
                disk.entries = []
            }
        }
        let base = disk.snapshot?.metadata.index ?? 0
        if let first = ready.entries.first(where: { $0.index > base }) {
            // Replace the stored suffix from the first new entry on (Raft §5.3).
            let keep = Int(first.index - base - 1)
            if keep < disk.entries.count { disk.entries.removeSubrange(keep...) }
            disk.entries.append(contentsOf: ready.entries.filter { $0.index > base })
        }
        if let hard = ready.hardState { disk.hardState = hard }
        nodes[n].disk = disk
        if !ready.entries.isEmpty || ready.hardState != nil {
            record(.synced(node: n, first: ready.entries.first?.index ?? 0, last: ready.entries.last?.index ?? 0, hardState: ready.hardState),
                   4, UInt64(n), UInt64(ready.entries.count), ready.hardState?.term ?? 0)
        }
    }

    /// The ready is durable: record it on the disk, send its messages, apply its entries.
    mutating func complete(_ n: Int, _ ready: Raft.Ready) {
        recordOnDisk(n, ready)
        for message in ready.messages { send(message) }
        if let snapshot = ready.snapshot { install(n, snapshot) }
        for entry in ready.committedEntries { apply(n, entry) }
        nodes[n].reads.append(contentsOf: ready.readStates.map { ($0.requestID, $0.index) })
        serveReads(n)
        nodes[n].raft!.advance(ready)
        compactIfDue(n)
    }

    mutating func apply(_ n: Int, _ entry: Raft.Entry) {
        if entry.index != nodes[n].applied + 1 {
            violation("node \(n + 1) applied index \(entry.index) after \(nodes[n].applied)")
        }
        nodes[n].applied = entry.index
        let digest = Simulation.hash(entry.payload) ^ UInt64(entry.kind.rawValue)
        var first = false
        if let known = canonical[entry.index] {
            if known.term != entry.term || known.digest != digest {
                violation("state-machine safety: node \(n + 1) applied \(entry.index)@\(entry.term) but \(entry.index)@\(known.term) was applied before")
            }
        } else {
            canonical[entry.index] = (entry.term, digest)
            first = true
            highestCommitted = max(highestCommitted, entry.index)
            report.committedEntries += 1
        }
        var result: [UInt8] = []
        if entry.kind == .normal && !entry.payload.isEmpty {
            result = nodes[n].machine.apply(entry.payload, at: entry.index)
            if first {
                for v in workload.committed(entry.payload, result: result, at: entry.index) { violation(v) }
            }
        }
        for c in clients.indices {
            guard case .write(let node, let index, let term, let command)? = clients[c].pending, node == n, index == entry.index else { continue }
            clients[c].pending = nil
            if term == entry.term {
                report.acknowledgedProposals += 1
                acknowledgedHighWater = max(acknowledgedHighWater, index)
                record("client \(c) acknowledged at \(index)@\(term)", 6, UInt64(c), index, term)
                for v in workload.acknowledged(command, result: result, at: index, client: c) { violation(v) }
            }
            nextOperation(c)
        }
    }

    mutating func serveReads(_ n: Int) {
        while let read = nodes[n].reads.first, read.index <= nodes[n].applied {
            nodes[n].reads.removeFirst()
            for c in clients.indices {
                guard case .read(let node, let requestID, let mustSee)? = clients[c].pending, node == n, requestID == read.requestID else { continue }
                clients[c].pending = nil
                if read.index < mustSee {
                    violation("stale read: read \(requestID) on node \(n + 1) served at index \(read.index), but index \(mustSee) was acknowledged before it started")
                }
                report.servedReads += 1
                record("client \(c) read at \(read.index) on node \(n + 1)", 7, UInt64(c), read.index, 0)
                nextOperation(c)
            }
        }
    }

    // MARK: Network

    mutating func send(_ original: Raft.Message) {
        report.messagesSent += 1
        var message = original
        if options.codecRoundTrip {
            do { message = try Raft.Codec.decodeMessage(Raft.Codec.encode(original)) } catch {
                violation("codec: \(original) does not round-trip: \(error)")
            }
        }
        let from = Int(message.from) - 1, to = Int(message.to) - 1
        guard to >= 0, to < nodes.count else { return }
        let faults = options.faults
        if blocked[from][to] || (!healing && random.chance(faults.lossRate)) {
            report.messagesDropped += 1
            return
        }
        let copies = !healing && random.chance(faults.duplicateRate) ? 2 : 1
        for _ in 0..<copies {
            var delay = random.uniform(faults.delay.lowerBound.microseconds...faults.delay.upperBound.microseconds)
            if random.chance(faults.reorderRate) { delay += random.uniform(0...faults.longDelay.microseconds) }
            schedule(.deliver(message), after: delay)
        }
    }

    // MARK: Faults

    mutating func nextFaultDelay() -> UInt64 {
        var means: [UInt64] = []
        if let p = options.faults.partitionEvery { means.append(p.microseconds) }
        if let c = options.faults.crashEvery { means.append(c.microseconds) }
        // The combined rate of both kinds.
        let mean = means.count == 2 ? means[0] * means[1] / (means[0] + means[1]) : means[0]
        return random.uniform(mean / 2...mean * 3 / 2)
    }

    mutating func injectFault() {
        let canPartition = options.faults.partitionEvery != nil
        let canCrash = options.faults.crashEvery != nil
        let crashNow = canCrash && (!canPartition || random.next() % 2 == 0)
        if crashNow {
            let d = options.faults.downtime
            let alive = nodes.indices.filter { nodes[$0].raft != nil }
            if random.chance(options.faults.powerLossFraction) {
                // Every node loses power at once: only synced writes survive anywhere.
                record("power loss: every node crashes", 14, 0, 0, 0)
                for n in alive {
                    crash(n)
                    schedule(.restart(node: n), after: random.uniform(d.lowerBound.microseconds...d.upperBound.microseconds))
                }
                return
            }
            let down = nodes.count - alive.count
            guard down + 1 <= (nodes.count - 1) / 2 else { return }
            // Prefer a node in the middle of a write: the unsynced part is what a crash takes.
            let writing = alive.filter { nodes[$0].writing != nil || !nodes[$0].writes.isEmpty }
            let pool = !writing.isEmpty && random.chance(0.7) ? writing : alive
            let n = pool[Int(random.next() % UInt64(pool.count))]
            crash(n)
            schedule(.restart(node: n), after: random.uniform(d.lowerBound.microseconds...d.upperBound.microseconds))
        } else {
            healPartition()
            let count = nodes.count
            let a = Int(random.next() % UInt64(count))
            var description: String
            switch random.next() % 4 {
            case 0:
                for b in 0..<count where b != a { blocked[a][b] = true; blocked[b][a] = true }
                description = "isolate node \(a + 1)"
            case 1:
                var side = (0..<count).map { _ in random.next() % 2 == 0 }
                side[a] = true
                for x in 0..<count { for y in 0..<count where side[x] != side[y] { blocked[x][y] = true } }
                description = "split \((0..<count).filter { side[$0] }.map { $0 + 1 }) | \((0..<count).filter { !side[$0] }.map { $0 + 1 })"
            case 2:
                for b in 0..<count where b != a { blocked[a][b] = true }
                description = "node \(a + 1) cannot send (asymmetric)"
            default:
                let b = (a + 1 + Int(random.next() % UInt64(count - 1))) % count
                blocked[a][b] = true
                description = "link \(a + 1)→\(b + 1) cut (asymmetric)"
            }
            partitionID += 1
            report.partitions += 1
            record("partition: \(description)", 8, UInt64(a), 0, 0)
            let l = options.faults.partitionLength
            schedule(.heal(partition: partitionID), after: random.uniform(l.lowerBound.microseconds...l.upperBound.microseconds))
        }
    }

    mutating func healPartition() {
        if blocked.contains(where: { $0.contains(true) }) { record("heal network", 9, 0, 0, 0) }
        for x in blocked.indices { for y in blocked.indices { blocked[x][y] = false } }
    }

    mutating func healEverything() {
        record("heal everything: network restored, crashed nodes restart", 10, 0, 0, 0)
        partitionID += 1
        healPartition()
        for n in nodes.indices where nodes[n].raft == nil && !nodes[n].decommissioned { start(n) }
    }

    // MARK: Operator actions

    /// What an operator (or the controller) does now and then: hand leadership to another
    /// voter, or take one node out of the group, wipe it, and bring it back as a learner that
    /// is promoted once caught up (thesis §3.10, §4.1, §4.2.1).
    mutating func operate() {
        guard let l = nodes.indices.first(where: { nodes[$0].raft?.role == .leader }) else { return }
        let configuration = nodes[l].raft!.configuration
        if let k = nodes.indices.first(where: { nodes[$0].decommissioned }) {
            // Bring it back, fresh, as a learner.
            nodes[k].decommissioned = false
            nodes[k].bootstrap = Raft.Configuration()
            nodes[k].disk = Disk()
            start(k)
            if (try? nodes[l].raft!.proposeConfigurationChange(.addLearner(Raft.NodeID(k + 1)))) != nil {
                record("operator: add node \(k + 1) as a learner", 15, UInt64(k), 0, 0)
                report.membershipChanges += 1
            }
            pump(l)
            return
        }
        if let learner = configuration.learners.sorted().first {
            if (try? nodes[l].raft!.proposeConfigurationChange(.promote(learner))) != nil {
                record("operator: promote node \(learner)", 16, learner, 0, 0)
                report.membershipChanges += 1
            }
            pump(l)
            return
        }
        let others = configuration.voters.sorted().filter { $0 != Raft.NodeID(l + 1) }
        guard !others.isEmpty else { return }
        let target = others[Int(random.next() % UInt64(others.count))]
        let k = Int(target) - 1
        if random.next() % 3 == 0, configuration.voters.count == options.nodes, configuration.members.contains(target) {
            if let pending = pendingRemoval, pending == k {
                // The removal committed: decommission the node (its data is gone for good).
                if !nodes[l].raft!.configuration.members.contains(target), nodes[l].raft!.commitIndex >= removalIndex {
                    pendingRemoval = nil
                    if nodes[k].raft != nil { crash(k) }
                    nodes[k].decommissioned = true
                    nodes[k].disk = Disk()
                    record("operator: node \(k + 1) decommissioned and wiped", 17, UInt64(k), 0, 0)
                }
                return
            }
            if let index = try? nodes[l].raft!.proposeConfigurationChange(.remove(target)) {
                pendingRemoval = k
                removalIndex = index
                record("operator: remove node \(target)", 18, target, index, 0)
                report.membershipChanges += 1
            }
        } else if let pending = pendingRemoval {
            if !configuration.members.contains(Raft.NodeID(pending + 1)), nodes[l].raft!.commitIndex >= removalIndex {
                pendingRemoval = nil
                if nodes[pending].raft != nil { crash(pending) }
                nodes[pending].decommissioned = true
                nodes[pending].disk = Disk()
                record("operator: node \(pending + 1) decommissioned and wiped", 17, UInt64(pending), 0, 0)
            }
        } else if nodes[k].raft != nil {
            if (try? nodes[l].raft!.transferLeadership(to: target)) != nil {
                record("operator: transfer leadership from \(l + 1) to \(target)", 19, UInt64(l), target, 0)
                report.leadershipTransfers += 1
            }
        }
        pump(l)
    }

    mutating func livenessReached() -> Bool {
        guard let leader = nodes.indices.first(where: { nodes[$0].raft?.role == .leader }) else { return false }
        let raft = nodes[leader].raft!
        if probe == nil || probe!.node != leader || probe!.term != raft.term {
            guard let range = try? nodes[leader].raft!.propose([workload.probeCommand()]) else { return false }
            probe = (leader, range.lowerBound, raft.term)
            pump(leader)
            return false
        }
        let target = probe!.index
        guard canonical[target]?.term == probe!.term else { return false }
        let members = raft.configuration.members
        return nodes.indices.allSatisfy { n in
            !members.contains(Raft.NodeID(n + 1)) || (nodes[n].raft != nil && nodes[n].applied >= target)
        }
    }

    // MARK: Clients

    mutating func nextOperation(_ c: Int) {
        clients[c].operation += 1
        if !healing { schedule(.client(c), after: random.uniform(500...30_000)) }
    }

    mutating func clientAct(_ c: Int) {
        guard clients[c].pending == nil else { return }
        var n = clients[c].preferred
        if nodes[n].raft == nil { n = Int(random.next() % UInt64(nodes.count)) }
        guard nodes[n].raft != nil else { nextOperation(c); return }
        let timeout = 10 * options.settings.electionTimeoutMax.microseconds
        if random.chance(options.readFraction) {
            let id = nextReadID
            nextReadID += 1
            do {
                try nodes[n].raft!.requestRead(id: id)
                clients[c].pending = .read(node: n, requestID: id, mustSee: acknowledgedHighWater)
                schedule(.clientTimeout(client: c, operation: clients[c].operation), after: timeout)
                pump(n)
            } catch {
                retry(c, error)
            }
            return
        }
        let command = workload.nextCommand(client: c, random: &random)
        do {
            let range = try nodes[n].raft!.propose([command])
            clients[c].pending = .write(node: n, index: range.lowerBound, term: nodes[n].raft!.term, command: command)
            record("client \(c) proposed at \(range.lowerBound) on node \(n + 1)", 11, UInt64(c), range.lowerBound, nodes[n].raft!.term)
            schedule(.clientTimeout(client: c, operation: clients[c].operation), after: timeout)
            pump(n)
        } catch {
            retry(c, error)
        }
    }

    mutating func retry(_ c: Int, _ error: ReplicationError) {
        if let hint = error.leaderHint, hint >= 1, hint <= nodes.count {
            clients[c].preferred = Int(hint) - 1
        } else {
            clients[c].preferred = Int(random.next() % UInt64(nodes.count))
        }
        nextOperation(c)
    }

    // MARK: Checkers

    mutating func observeRole(_ n: Int) {
        guard let raft = nodes[n].raft else { return }
        guard raft.role != nodes[n].lastRole || raft.term != nodes[n].lastTerm else { return }
        nodes[n].lastRole = raft.role
        nodes[n].lastTerm = raft.term
        record("node \(n + 1) is \(raft.role) in term \(raft.term)", 12, UInt64(n), raft.term, 0)
        guard raft.role == .leader else { return }
        report.elections += 1
        if let other = leaderOfTerm[raft.term], other != n {
            violation("election safety: nodes \(other + 1) and \(n + 1) both lead term \(raft.term)")
        }
        leaderOfTerm[raft.term] = n
        // Leader completeness (Raft §5.4): every committed entry is in the new leader's log.
        var index = max(raft.snapshotIndex + 1, 1)
        while index <= highestCommitted {
            if let known = canonical[index], raft.term(at: index) != known.term {
                violation("leader completeness: new leader \(n + 1) of term \(raft.term) has \(raft.term(at: index).map { "term \($0)" } ?? "nothing") at committed index \(index) (\(known.term))")
                break
            }
            index += 1
        }
    }

    /// Log matching (Raft §5.3): two logs with an entry of the same index and term are equal
    /// up to that entry.
    mutating func checkLogMatching() {
        let live = nodes.indices.filter { nodes[$0].raft != nil }
        for i in live.indices {
            for j in live.indices where j > i {
                let a = nodes[live[i]].raft!, b = nodes[live[j]].raft!
                let low = max(a.snapshotIndex, b.snapshotIndex) + 1
                var index = min(a.lastIndex, b.lastIndex)
                while index >= low, a.term(at: index) != b.term(at: index) { index -= 1 }
                while index >= low {
                    if a.entry(at: index) != b.entry(at: index) {
                        violation("log matching: nodes \(live[i] + 1) and \(live[j] + 1) differ at \(index) below a common entry")
                        return
                    }
                    index -= 1
                }
            }
        }
    }

    mutating func finalChecks() {
        checkLogMatching()
        let leader = nodes.indices.first { nodes[$0].raft?.role == .leader }
        let members = leader.map { nodes[$0].raft!.configuration.members } ?? Set(nodes.indices.map { Raft.NodeID($0 + 1) })
        let memberNodes = nodes.indices.filter { members.contains(Raft.NodeID($0 + 1)) }
        let digests = memberNodes.map { nodes[$0].machine.digest }
        if Set(digests).count > 1 {
            violation("convergence: members' states differ after healing (applied \(memberNodes.map { nodes[$0].applied }))")
        }
        for n in memberNodes {
            for v in workload.finalCheck(nodes[n].machine) { violation("node \(n + 1): \(v)") }
        }
    }

    mutating func violation(_ text: String) {
        if report.violations.isEmpty { record("VIOLATION: \(text)", 13, 0, 0, 0) }
        report.violations.append("t=\(Duration.microseconds(Int64(now))): \(text)")
    }

    // MARK: Trace

    /// One traced event, rendered only when the trace is printed.
    enum TraceItem {
        case text(String)
        case deliver(Raft.Message)
        case synced(node: Int, first: Raft.Index, last: Raft.Index, hardState: Raft.HardState?)

        var rendered: String {
            switch self {
            case .text(let text): text
            case .deliver(let message): "deliver \(message)"
            case .synced(let n, let first, let last, let hard):
                "node \(n + 1) synced " + (first == 0 ? "no entries" : "entries \(first)…\(last)")
                    + (hard.map { ", hard state term \($0.term) vote \($0.vote ?? 0) commit \($0.commit)" } ?? "")
            }
        }
    }

    mutating func record(_ text: String, _ kind: UInt64, _ a: UInt64, _ b: UInt64, _ c: UInt64) {
        record(.text(text), kind, a, b, c)
    }

    /// Records one event in the trace ring and folds its identity into the trace hash.
    mutating func record(_ item: TraceItem, _ kind: UInt64, _ a: UInt64, _ b: UInt64, _ c: UInt64) {
        traceHash = (traceHash ^ now) &* 0x100_0000_01B3
        traceHash = (traceHash ^ kind) &* 0x100_0000_01B3
        traceHash = (traceHash ^ a) &* 0x100_0000_01B3
        traceHash = (traceHash ^ b) &* 0x100_0000_01B3
        traceHash = (traceHash ^ c) &* 0x100_0000_01B3
        if !trace.isEmpty {
            trace[traceNext] = (now, item)
            traceNext = (traceNext + 1) % trace.count
        }
    }

    func renderedTrace() -> [String] {
        (0..<trace.count).compactMap { k in
            trace[(traceNext + k) % trace.count].map { "t=\($0.time / 1000).\(String($0.time % 1000).leftPadded(3))ms \($0.item.rendered)" }
        }
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
