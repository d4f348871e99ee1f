public import TernReplication

/// A small model of a queue — send, receive, acknowledge, and an `expire` command standing
/// in for visibility timeouts (the leader proposes it; nodes never expire on their own
/// clock) — used as the replicated state machine until the broker's command `apply` is
/// plugged in.
///
/// Commands (first byte the operation): `1 · id u64` send, `2` receive, `3 · id u64` ack,
/// `4` expire (every in-flight message becomes receivable again), `5` probe (no effect).
/// Results: send/expire/probe `[0]`; receive `[0]` when empty, else `1 · id u64 · count u32`;
/// ack `[1]` deleted, `[2]` deleted before, `[0]` unknown message.
public struct QueueModel: ReplicatedStateMachine, Sendable {
    /// Receivable message ids in send order, with the index of their send.
    private(set) var ready: [(id: UInt64, sendIndex: Raft.Index)] = []
    /// Received, not yet acknowledged.
    private(set) var inflight: [(id: UInt64, sendIndex: Raft.Index)] = []
    /// Receive counts of every message ever received and not deleted.
    private(set) var receiveCounts: [UInt64: UInt32] = [:]
    /// Ids acknowledged (deleted), so that a late duplicate ack is recognised.
    private(set) var acknowledged: Set<UInt64> = []
    private var known: Set<UInt64> = []

    public init() {}

    enum Op: UInt8 { case send = 1, receive, ack, expire, probe }

    public static func send(_ id: UInt64) -> [UInt8] { [Op.send.rawValue] + bigEndian(id) }
    public static let receive: [UInt8] = [Op.receive.rawValue]
    public static func ack(_ id: UInt64) -> [UInt8] { [Op.ack.rawValue] + bigEndian(id) }
    public static let expire: [UInt8] = [Op.expire.rawValue]
    public static let probe: [UInt8] = [Op.probe.rawValue]

    public mutating func apply(_ command: [UInt8], at index: Raft.Index) -> [UInt8] {
        guard let first = command.first, let op = Op(rawValue: first) else { return [0xFF] }
        switch op {
        case .send:
            guard command.count == 9 else { return [0xFF] }
            let id = Self.readU64(command, 1)
            // A duplicate send (a client retry) is ignored, like a deduplicated producer.
            if known.insert(id).inserted { ready.append((id, index)) }
            return [0]
        case .receive:
            guard !ready.isEmpty else { return [0] }
            let message = ready.removeFirst()
            inflight.append(message)
            let count = (receiveCounts[message.id] ?? 0) + 1
            receiveCounts[message.id] = count
            return [1] + Self.bigEndian(message.id) + Self.bigEndian32(count)
        case .ack:
            guard command.count == 9 else { return [0xFF] }
            let id = Self.readU64(command, 1)
            // Deletes the message whether in flight or back in the queue after an expiry.
            if acknowledged.contains(id) { return [2] }
            if let at = inflight.firstIndex(where: { $0.id == id }) {
                inflight.remove(at: at)
            } else if let at = ready.firstIndex(where: { $0.id == id }) {
                ready.remove(at: at)
            } else {
                return [0]
            }
            acknowledged.insert(id)
            return [1]
        case .expire:
            // Back in send order (FIFO redelivery).
            ready = (ready + inflight).sorted { $0.sendIndex < $1.sendIndex }
            inflight = []
            return [0]
        case .probe:
            return [0]
        }
    }

    public init(snapshot bytes: [UInt8]) throws {
        var offset = 0
        func u64() throws -> UInt64 {
            guard offset + 8 <= bytes.count else { throw SimulationError("truncated queue snapshot") }
            defer { offset += 8 }
            return Self.readU64(bytes, offset)
        }
        self.init()
        let readyCount = try u64()
        for _ in 0..<readyCount { ready.append((try u64(), try u64())) }
        let inflightCount = try u64()
        for _ in 0..<inflightCount { inflight.append((try u64(), try u64())) }
        let countCount = try u64()
        for _ in 0..<countCount { receiveCounts[try u64()] = UInt32(try u64()) }
        let ackCount = try u64()
        for _ in 0..<ackCount { acknowledged.insert(try u64()) }
        let knownCount = try u64()
        for _ in 0..<knownCount { known.insert(try u64()) }
    }

    public func snapshot() -> [UInt8] {
        var out: [UInt8] = []
        out += Self.bigEndian(UInt64(ready.count))
        for m in ready { out += Self.bigEndian(m.id) + Self.bigEndian(m.sendIndex) }
        out += Self.bigEndian(UInt64(inflight.count))
        for m in inflight { out += Self.bigEndian(m.id) + Self.bigEndian(m.sendIndex) }
        out += Self.bigEndian(UInt64(receiveCounts.count))
        for (id, count) in receiveCounts.sorted(by: { $0.key < $1.key }) { out += Self.bigEndian(id) + Self.bigEndian(UInt64(count)) }
        out += Self.bigEndian(UInt64(acknowledged.count))
        for id in acknowledged.sorted() { out += Self.bigEndian(id) }
        out += Self.bigEndian(UInt64(known.count))
        for id in known.sorted() { out += Self.bigEndian(id) }
        return out
    }

    public var digest: UInt64 { Simulation.hash(snapshot()) }

    /// Whether message `id` can still be delivered (ready or in flight).
    public func holds(_ id: UInt64) -> Bool {
        ready.contains { $0.id == id } || inflight.contains { $0.id == id }
    }

    public func isAcknowledged(_ id: UInt64) -> Bool { acknowledged.contains(id) }

    static func bigEndian(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * UInt64($0))) } }
    static func bigEndian32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * UInt32($0))) } }
    static func readU32(_ b: [UInt8], _ at: Int) -> UInt32 {
        var v: UInt32 = 0
        for k in 0..<4 { v = v << 8 | UInt32(b[at + k]) }
        return v
    }
    static func readU64(_ b: [UInt8], _ at: Int) -> UInt64 {
        var v: UInt64 = 0
        for k in 0..<8 { v = v << 8 | UInt64(b[at + k]) }
        return v
    }
}

/// Clients of the ``QueueModel``, and the queue guarantees checked on top of Raft's:
/// an acknowledged send is delivered once the cluster heals; an acknowledged ack is never
/// undone; receive counts of a message never decrease; messages are first delivered in send
/// order.
public struct QueueWorkload: SimulationWorkload {
    public typealias Machine = QueueModel

    private var nextMessageID: UInt64 = 1
    /// Messages each client has received and may acknowledge.
    private var received: [Int: [UInt64]] = [:]
    /// Sends and acks the clients were told committed.
    private(set) var acknowledgedSends: [UInt64] = []
    private(set) var acknowledgedAcks: [UInt64] = []
    /// From the canonical committed sequence.
    private var sendIndexes: [UInt64: Raft.Index] = [:]
    private var lastCount: [UInt64: UInt32] = [:]
    private var deletedAt: [UInt64: Raft.Index] = [:]
    private var delivered: Set<UInt64> = []
    private var sendOrder: [UInt64] = []
    private var firstUndelivered = 0
    /// The canonical model, replayed from the committed sequence.
    private var model = QueueModel()

    public init() {}

    public mutating func nextCommand(client: Int, random: inout Simulation.Random) -> [UInt8] {
        let roll = random.next() % 100
        if roll < 40 {
            defer { nextMessageID += 1 }
            return QueueModel.send(nextMessageID)
        } else if roll < 75 {
            return QueueModel.receive
        } else if roll < 97 {
            if var mine = received[client], !mine.isEmpty {
                let id = mine.remove(at: Int(random.next() % UInt64(mine.count)))
                received[client] = mine
                return QueueModel.ack(id)
            }
            return QueueModel.receive
        } else {
            return QueueModel.expire
        }
    }

    public mutating func committed(_ command: [UInt8], result: [UInt8], at index: Raft.Index) -> [String] {
        var violations: [String] = []
        let expected = model.apply(command, at: index)
        if expected != result {
            violations.append("index \(index): result \(result) differs from the model's \(expected)")
        }
        switch command.first {
        case QueueModel.Op.send.rawValue?:
            let id = QueueModel.readU64(command, 1)
            if sendIndexes[id] == nil {
                sendIndexes[id] = index
                sendOrder.append(id)
            }
        case QueueModel.Op.receive.rawValue? where result.first == 1:
            let id = QueueModel.readU64(result, 1)
            let count = QueueModel.readU32(result, 9)
            if let deleted = deletedAt[id] {
                violations.append("index \(index): message \(id) received after its ack committed at \(deleted)")
            }
            if let last = lastCount[id], count <= last {
                violations.append("index \(index): receive count of message \(id) went from \(last) to \(count)")
            }
            lastCount[id] = count
            if !delivered.contains(id) {
                // FIFO: a first delivery is of the oldest message never delivered.
                while firstUndelivered < sendOrder.count && delivered.contains(sendOrder[firstUndelivered]) {
                    firstUndelivered += 1
                }
                if firstUndelivered < sendOrder.count, sendOrder[firstUndelivered] != id {
                    violations.append("index \(index): message \(id) delivered before earlier message \(sendOrder[firstUndelivered])")
                }
                delivered.insert(id)
            }
        case QueueModel.Op.ack.rawValue?:
            let id = QueueModel.readU64(command, 1)
            if model.isAcknowledged(id), deletedAt[id] == nil { deletedAt[id] = index }
        default:
            break
        }
        return violations
    }

    public mutating func acknowledged(_ command: [UInt8], result: [UInt8], at index: Raft.Index, client: Int) -> [String] {
        switch command.first {
        case QueueModel.Op.receive.rawValue? where result.first == 1 && result.count >= 9:
            received[client, default: []].append(QueueModel.readU64(result, 1))
        case QueueModel.Op.send.rawValue?:
            acknowledgedSends.append(QueueModel.readU64(command, 1))
        case QueueModel.Op.ack.rawValue? where result == [1] || result == [2]:
            acknowledgedAcks.append(QueueModel.readU64(command, 1))
        default:
            break
        }
        return []
    }

    public func finalCheck(_ machine: QueueModel) -> [String] {
        var violations: [String] = []
        for id in acknowledgedSends where !machine.holds(id) && !machine.isAcknowledged(id) {
            violations.append("acknowledged send of message \(id) is lost")
        }
        for id in acknowledgedAcks where machine.holds(id) {
            violations.append("acknowledged ack of message \(id) was undone: it is deliverable again")
        }
        return violations
    }

    public func probeCommand() -> [UInt8] { QueueModel.probe }
}
