import TernGossip
import TernTestKit

/// A deterministic simulation of many ``Gossip/Instance``s over a simulated network and clock
/// (FoundationDB's simulation testing): one seed decides every delay, loss, duplication and
/// every instance's random choices, so a run replays exactly from its seed.
///
/// The network delivers each datagram after a uniform random delay (so datagrams reorder),
/// loses it with probability `loss`, delivers it twice with probability `duplication`, and drops
/// it between nodes in different partition groups. A crashed node loses its timers and every
/// datagram; a stalled node (SIGSTOP) handles nothing until it resumes, then everything that
/// came meanwhile, late.
///
/// ```swift
/// let sim = Simulation(nodes: 5, seed: 42)
/// sim.bootstrap()
/// sim.run(for: .seconds(10))
/// sim.crash(2)
/// sim.run(until: { sim.everyoneSees(2, as: [.dead]) }, limit: .seconds(60))
/// ```
final class Simulation {
    struct Network {
        /// Probability of losing a datagram.
        var loss = 0.0
        /// Probability of delivering a datagram twice.
        var duplication = 0.0
        /// One-way delay, uniform in this range.
        var delay: ClosedRange<Duration> = .microseconds(200)...Duration.milliseconds(2)
    }

    enum Condition: Equatable {
        case running
        case crashed
        /// Handles nothing until the given time.
        case stalled(until: Duration)
    }

    struct Node {
        var instance: Gossip.Instance
        var condition: Condition = .running
        /// Incremented at each crash and restart: timers of an earlier life are dropped.
        var life = 0
        var packetsSent = 0
        var bytesSent = 0
    }

    enum EventKind {
        case deliver(Gossip.Packet, from: Gossip.Address, to: Int)
        case timer(Gossip.Timer, node: Int, life: Int)
    }

    struct Event {
        var time: Duration
        var order: UInt64
        var kind: EventKind
    }

    /// A member change seen by `observer` at `time`.
    struct Observation {
        var time: Duration
        var observer: Int
        var change: Gossip.MemberChange
    }

    let settings: Gossip.Settings
    var network: Network
    private(set) var now: Duration = .zero
    private(set) var nodes: [Node] = []
    private var byAddress: [Gossip.Address: Int] = [:]
    private var heap: [Event] = []
    private var order: UInt64 = 0
    private var random: SeededGenerator
    /// Partition group of each node; datagrams between different groups are lost.
    var groups: [Int] = []
    /// Called for every member change.
    var onChange: ((Observation) -> Void)?
    /// Datagrams and events handled so far.
    private(set) var eventsHandled = 0
    /// A running digest of every handled event, for replay checks.
    private(set) var digest: UInt64 = 0xCBF2_9CE4_8422_2325

    init(nodes count: Int, seed: UInt64, settings: Gossip.Settings = .init(), network: Network = .init()) {
        self.settings = settings
        self.network = network
        self.random = SeededGenerator(seed: seed)
        for index in 0..<count { addNode(index) }
    }

    static func node(_ index: Int, startedAt: UInt64 = 1) -> Gossip.Node {
        let address = Gossip.Address(host: "10.\(index / 65_536).\((index / 256) % 256).\(index % 256)", port: 7946)
        return Gossip.Node(id: Gossip.NodeID(rawValue: "node-\(index)")!, gossip: address,
                           http: .init(host: address.host, port: 7080), binary: .init(host: address.host, port: 7081),
                           zone: "zone-\(index % 3)", startedAt: startedAt)
    }

    @discardableResult
    func addNode(_ index: Int? = nil) -> Int {
        let index = index ?? nodes.count
        let node = Self.node(index)
        let instance = Gossip.Instance(myself: node, settings: settings, seed: random.next(), now: now)
        nodes.append(Node(instance: instance))
        byAddress[node.gossip] = index
        groups.append(0)
        return index
    }

    // MARK: Scenario

    /// Starts every node, each joining through node 0.
    func startAll() {
        for index in nodes.indices { start(index, seeds: index == 0 ? [] : [nodes[0].instance.myself.gossip]) }
    }

    func start(_ index: Int, seeds: [Gossip.Address]) {
        let directives = nodes[index].instance.onJoin(seeds: seeds, now: now)
        carry(directives, of: index)
    }

    /// Starts every node already knowing every other, as after a full state sync with a member
    /// that knew all, then runs until the updates of that sync have been disseminated.
    func bootstrap(settle limit: Duration = .seconds(300)) {
        let records = nodes.map { Gossip.MemberRecord(node: $0.instance.myself, state: .alive, incarnation: 0) }
        for index in nodes.indices {
            carry(nodes[index].instance.onJoin(seeds: [], now: now), of: index)
            let from = (index + 1) % nodes.count
            let packet = Gossip.Packet(sender: nodes[from].instance.myself.id,
                                       messages: [.sync(replyWanted: false, join: false, members: records)])
            carry(nodes[index].instance.onMessage(packet, from: nodes[from].instance.myself.gossip, now: now), of: index)
        }
        run(until: { self.nodes.allSatisfy { $0.instance.pendingBroadcasts == 0 } }, limit: limit)
    }

    func crash(_ index: Int) {
        nodes[index].condition = .crashed
        nodes[index].life += 1
    }

    /// A new process for `index`'s node id (incarnation 0, a new start time), joining through `seeds`.
    func restart(_ index: Int, seeds: [Gossip.Address]) {
        let node = Self.node(index, startedAt: UInt64(now.components.seconds) + 1)
        nodes[index].instance = Gossip.Instance(myself: node, settings: settings, seed: random.next(), now: now)
        nodes[index].condition = .running
        nodes[index].life += 1
        start(index, seeds: seeds)
    }

    /// Pauses `index` for `duration` (SIGSTOP, then SIGCONT).
    func stall(_ index: Int, for duration: Duration) {
        nodes[index].condition = .stalled(until: now + duration)
    }

    func leave(_ index: Int) {
        carry(nodes[index].instance.onLeave(now: now), of: index)
    }

    /// Splits the nodes: `group[i]` is node i's side.
    func partition(_ assignment: (Int) -> Int) { groups = nodes.indices.map(assignment) }
    func heal() { groups = nodes.indices.map { _ in 0 } }

    // MARK: Queries

    /// Whether every running node other than `subject` sees it in one of `states`.
    func everyoneSees(_ subject: Int, as states: Set<Gossip.MemberState>) -> Bool {
        let id = nodes[subject].instance.myself.id
        for (index, node) in nodes.enumerated() where index != subject && node.condition != .crashed {
            guard let state = node.instance.member(id)?.state, states.contains(state) else { return false }
        }
        return true
    }

    /// Whether every running node sees every other running node alive.
    var converged: Bool {
        let live = nodes.indices.filter { nodes[$0].condition != .crashed }
        for i in live {
            for j in live where i != j {
                guard nodes[i].instance.member(nodes[j].instance.myself.id)?.state == .alive else { return false }
            }
        }
        return true
    }

    var totalPackets: Int { nodes.reduce(0) { $0 + $1.packetsSent } }
    var totalBytes: Int { nodes.reduce(0) { $0 + $1.bytesSent } }

    // MARK: Running

    func run(for duration: Duration) {
        let end = now + duration
        while let next = heap.first, next.time <= end { step() }
        now = end
    }

    /// Runs until `condition` holds (checked after each event) or `limit` passes.
    /// - Returns: whether the condition held.
    @discardableResult
    func run(until condition: () -> Bool, limit: Duration) -> Bool {
        let end = now + limit
        if condition() { return true }
        while let next = heap.first, next.time <= end {
            step()
            if condition() { return true }
        }
        now = end
        return condition()
    }

    private func step() {
        let event = pop()
        now = event.time
        eventsHandled += 1
        switch event.kind {
        case .deliver(let packet, let from, let to):
            switch nodes[to].condition {
            case .crashed: return
            case .stalled(let until) where until > now:
                push(Event(time: until, order: event.order, kind: event.kind))
                return
            default: nodes[to].condition = .running
            }
            mix(UInt64(to) &* 31 &+ UInt64(packet.messages.count))
            carry(nodes[to].instance.onMessage(packet, from: from, now: now), of: to)
        case .timer(let timer, let index, let life):
            guard nodes[index].life == life else { return }
            switch nodes[index].condition {
            case .crashed: return
            case .stalled(let until) where until > now:
                push(Event(time: until, order: event.order, kind: event.kind))
                return
            default: nodes[index].condition = .running
            }
            mix(UInt64(index) &* 17 &+ 1)
            carry(nodes[index].instance.onTimer(timer, now: now), of: index)
        }
    }

    private func carry(_ directives: [Gossip.Directive], of index: Int) {
        for directive in directives {
            switch directive {
            case .send(let packet, let address):
                let size = Gossip.Codec.headerBytes(sender: packet.sender)
                    + packet.messages.reduce(0) { $0 + Gossip.Codec.encodedBytes($1) } + Gossip.Codec.tagBytes
                precondition(size <= settings.maxPacketBytes, "a \(size)-byte packet")
                nodes[index].packetsSent += 1
                nodes[index].bytesSent += size
                guard let to = byAddress[address], groups[to] == groups[index] else { continue }
                if Double.random(in: 0..<1, using: &random) < network.loss { continue }
                let copies = Double.random(in: 0..<1, using: &random) < network.duplication ? 2 : 1
                for _ in 0..<copies {
                    let delay = randomDelay()
                    push(Event(time: now + delay, order: nextOrder(), kind: .deliver(packet, from: nodes[index].instance.myself.gossip, to: to)))
                }
            case .schedule(let timer, let delay):
                push(Event(time: now + delay, order: nextOrder(), kind: .timer(timer, node: index, life: nodes[index].life)))
            case .memberChanged(let change):
                mix(UInt64(change.member.state.rawValue) &+ change.member.incarnation &* 7)
                onChange?(Observation(time: now, observer: index, change: change))
            case .probeAcknowledged:
                break
            }
        }
    }

    private func randomDelay() -> Duration {
        let low = network.delay.lowerBound, high = network.delay.upperBound
        return low + (high - low) * Double.random(in: 0...1, using: &random)
    }

    private func nextOrder() -> UInt64 {
        order += 1
        return order
    }

    private func mix(_ value: UInt64) {
        digest = (digest ^ value ^ UInt64(now.components.attoseconds / 1_000_000)) &* 0x100_0000_01B3
    }

    // MARK: Event heap (by time, then order)

    private static func before(_ a: Event, _ b: Event) -> Bool { a.time < b.time || (a.time == b.time && a.order < b.order) }

    private func push(_ event: Event) {
        heap.append(event)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard Self.before(heap[child], heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private func pop() -> Event {
        let top = heap[0]
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var smallest = parent
                if left < heap.count && Self.before(heap[left], heap[smallest]) { smallest = left }
                if right < heap.count && Self.before(heap[right], heap[smallest]) { smallest = right }
                if smallest == parent { break }
                heap.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return top
    }
}

/// Percentiles of durations, in seconds.
struct Distribution {
    private(set) var values: [Double] = []
    mutating func add(_ d: Duration) { values.append(Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18) }
    mutating func add(seconds: Double) { values.append(seconds) }
    func percentile(_ p: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
        return sorted[Swift.min(Swift.max(rank, 0), sorted.count - 1)]
    }
    var max: Double { values.max() ?? .nan }
    var count: Int { values.count }
}
