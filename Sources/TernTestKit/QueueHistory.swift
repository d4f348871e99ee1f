import Synchronization

/// A Jepsen-style history of operations against queues, recorded by a test as they happen
/// (invocation and completion positions on one shared counter), and the checker of the
/// guarantees users rely on in a cluster (issue 11):
///
/// 1. every acknowledged send is delivered (``Violation/lostSend``);
/// 2. nothing is delivered that was never sent (``Violation/phantomDelivery``);
/// 3. no acknowledged ack is undone: a message is not delivered by a receive invoked after an
///    ack of it was answered `204` (``Violation/deliveredAfterAck``);
/// 4. receive counts never decrease: of two deliveries of a message, the one that started
///    after the other ended has the higher count (``Violation/receiveCountWentBack``);
/// 5. at most one node served writes in any term of a replication group
///    (``Violation/twoLeadersInOneTerm``; terms of different groups are unrelated);
/// 6. FIFO queues deliver each message group in send order: the first deliveries of a group's
///    messages, in the order their receives completed, have increasing sequence numbers
///    (``Violation/fifoOrderBroken``), among messages whose sends were acknowledged. A receive
///    that completed later was applied later (it could only take the group once the earlier
///    delivery was acknowledged or timed out).
///
/// Sends the client could not confirm (a timeout, a connection cut) are *indeterminate*: they
/// may or may not be delivered, and are never counted as lost.
public final class QueueHistory: Sendable {
    public struct Delivery: Sendable, Hashable {
        public var body: String
        public var messageID: String
        public var receiveCount: Int
        public var invoked: Int
        public var completed: Int
        /// FIFO deliveries: the message group and the message's number in its sender's sequence.
        public var fifo: (group: String, sequence: Int)?
        /// The position within its receive's batch.
        public var ordinal = 0

        public static func == (a: Delivery, b: Delivery) -> Bool {
            a.body == b.body && a.messageID == b.messageID && a.receiveCount == b.receiveCount && a.invoked == b.invoked
                && a.completed == b.completed && a.fifo?.group == b.fifo?.group && a.fifo?.sequence == b.fifo?.sequence && a.ordinal == b.ordinal
        }

        public func hash(into hasher: inout Hasher) { hasher.combine(messageID); hasher.combine(invoked) }
    }

    public enum Violation: Sendable, Hashable, CustomStringConvertible {
        case lostSend(body: String)
        case phantomDelivery(body: String)
        case deliveredAfterAck(body: String, ackCompleted: Int, receiveInvoked: Int)
        case receiveCountWentBack(messageID: String, earlier: Int, later: Int)
        /// `group`: the queue group's Raft id (`Tern-Queue-Group`), nil for the data group.
        case twoLeadersInOneTerm(term: UInt64, nodes: [String], group: UInt64? = nil)
        case fifoOrderBroken(group: String, earlier: Int, later: Int)
        /// Two acknowledged produces were given the same partition and offset.
        case offsetReused(partition: Int, offset: Int, values: [String])
        /// An acknowledged record is not in its partition at its offset (or holds another value).
        case recordLost(partition: Int, offset: Int, value: String, found: String?)
        /// A partition's committed offset is below one a commit was acknowledged with.
        case commitUndone(partition: Int, acknowledged: Int, stored: Int?)

        public var description: String {
            switch self {
            case .lostSend(let body): "acknowledged send never delivered: \(body)"
            case .phantomDelivery(let body): "delivered but never sent: \(body)"
            case .deliveredAfterAck(let body, let ack, let receive):
                "delivered by a receive invoked at \(receive), after its ack was answered at \(ack): \(body)"
            case .receiveCountWentBack(let id, let earlier, let later): "receive count of \(id) went from \(earlier) back to \(later)"
            case .twoLeadersInOneTerm(let term, let nodes, let group):
                "term \(term)\(group.map { " of queue group \($0)" } ?? "") was served by \(nodes.joined(separator: ", "))"
            case .offsetReused(let p, let o, let values): "partition \(p) offset \(o) was acknowledged to \(values.joined(separator: " and "))"
            case .recordLost(let p, let o, let value, let found): "acknowledged \(value) at \(p)/\(o); found \(found ?? "nothing")"
            case .commitUndone(let p, let acked, let stored): "partition \(p): commit of \(acked) acknowledged, stored \(stored.map(String.init) ?? "none")"
            case .fifoOrderBroken(let group, let earlier, let later):
                "FIFO group \(group): message \(later) was first delivered after message \(earlier) although sent before it"
            }
        }
    }

    private struct State {
        var clock = 0
        var acknowledgedSends: Set<String> = []
        var indeterminateSends: Set<String> = []
        var deliveries: [Delivery] = []
        /// Per message id: when its first successful ack was answered.
        var acks: [String: Int] = [:]
        /// Per (queue group or nil for the data group, term): the nodes that served writes.
        var servedBy: [Served: Set<String>] = [:]
        var faults: [String] = []
        /// Acknowledged produces: (partition, offset) → values (more than one is a violation).
        var produced: [Int: [Int: [String]]] = [:]
        /// The highest acknowledged commit per partition.
        var commits: [Int: Int] = [:]
    }
    struct Served: Hashable, Comparable {
        var group: UInt64?
        var term: UInt64
        static func < (a: Served, b: Served) -> Bool { ((a.group ?? 0), a.term) < ((b.group ?? 0), b.term) }
    }
    private let state = Mutex(State())

    public init() {}

    /// A position on the history's clock: call before invoking an operation, and again when it
    /// completes.
    public func now() -> Int {
        state.withLock { s in
            s.clock += 1
            return s.clock
        }
    }

    public func sendAcknowledged(_ body: String) { state.withLock { _ = $0.acknowledgedSends.insert(body) } }
    public func sendIndeterminate(_ body: String) { state.withLock { _ = $0.indeterminateSends.insert(body) } }

    /// - Parameters:
    ///   - fifo: for a FIFO queue, the message group and the message's number in its sender's
    ///     sequence (one sender per group, sending in order).
    ///   - ordinal: the message's position in its receive's batch.
    public func delivered(_ body: String, messageID: String, receiveCount: Int, invoked: Int, completed: Int,
                          fifo: (group: String, sequence: Int)? = nil, ordinal: Int = 0) {
        state.withLock {
            $0.deliveries.append(Delivery(body: body, messageID: messageID, receiveCount: receiveCount, invoked: invoked,
                                          completed: completed, fifo: fifo, ordinal: ordinal))
        }
    }

    /// An ack of `messageID` answered `204` at `completed`.
    public func acknowledged(_ messageID: String, completed: Int) {
        state.withLock { s in s.acks[messageID] = min(s.acks[messageID] ?? .max, completed) }
    }

    /// A write `node` served as leader in `term` (from `Tern-Served-By` / `Tern-Term`) of queue
    /// group `group` (`Tern-Queue-Group`; nil: the data group).
    public func served(by node: String, term: UInt64, group: UInt64? = nil) {
        state.withLock { _ = $0.servedBy[Served(group: group, term: term), default: []].insert(node) }
    }

    /// A produce of `value` answered with `partition` and `offset`.
    public func produced(_ value: String, partition: Int, offset: Int) {
        state.withLock { $0.produced[partition, default: [:]][offset, default: []].append(value) }
    }

    /// An offset commit answered `204`.
    public func committed(partition: Int, offset: Int) {
        state.withLock { $0.commits[partition] = max($0.commits[partition] ?? 0, offset) }
    }

    public var producedCount: Int { state.withLock { $0.produced.values.reduce(0) { $0 + $1.count } } }

    /// The topic guarantees against what the cluster holds at the end: `log` is every
    /// partition read from its start (partition → offset → value), `stored` the group's
    /// committed offset per partition (nil: none).
    public func checkTopic(log: [Int: [Int: String]], stored: [Int: Int?]) -> [Violation] {
        let (produced, commits) = state.withLock { ($0.produced, $0.commits) }
        var violations: [Violation] = []
        for (partition, offsets) in produced.sorted(by: { $0.key < $1.key }) {
            for (offset, values) in offsets.sorted(by: { $0.key < $1.key }) {
                if Set(values).count > 1 || values.count > 1 {
                    violations.append(.offsetReused(partition: partition, offset: offset, values: values))
                }
                let found = log[partition]?[offset]
                if found != values[0] { violations.append(.recordLost(partition: partition, offset: offset, value: values[0], found: found)) }
            }
        }
        for (partition, acknowledged) in commits.sorted(by: { $0.key < $1.key }) {
            let value = stored[partition] ?? nil
            if (value ?? -1) < acknowledged { violations.append(.commitUndone(partition: partition, acknowledged: acknowledged, stored: value)) }
        }
        return violations
    }

    public func fault(_ description: String) { state.withLock { $0.faults.append(description) } }

    public var faults: [String] { state.withLock { $0.faults } }
    public var acknowledgedSendCount: Int { state.withLock { $0.acknowledgedSends.count } }
    public var deliveredBodies: Set<String> { state.withLock { Set($0.deliveries.map(\.body)) } }
    public var termsServed: Int { state.withLock { $0.servedBy.count } }

    /// Every violation of the guarantees above in the history so far.
    public func check() -> [Violation] {
        let s = state.withLock { s in (s.acknowledgedSends, s.indeterminateSends, s.deliveries, s.acks, s.servedBy) }
        let (sent, indeterminate, deliveries, acks, servedBy) = s
        var violations: [Violation] = []
        let delivered = Set(deliveries.map(\.body))
        for body in sent.subtracting(delivered).sorted() { violations.append(.lostSend(body: body)) }
        for body in delivered.subtracting(sent).subtracting(indeterminate).sorted() { violations.append(.phantomDelivery(body: body)) }
        for delivery in deliveries {
            if let ack = acks[delivery.messageID], delivery.invoked > ack {
                violations.append(.deliveredAfterAck(body: delivery.body, ackCompleted: ack, receiveInvoked: delivery.invoked))
            }
        }
        let byMessage = Dictionary(grouping: deliveries, by: \.messageID)
        for (id, list) in byMessage.sorted(by: { $0.key < $1.key }) {
            for a in list {
                for b in list where a.completed < b.invoked && b.receiveCount <= a.receiveCount {
                    violations.append(.receiveCountWentBack(messageID: id, earlier: a.receiveCount, later: b.receiveCount))
                }
            }
        }
        for (served, nodes) in servedBy.sorted(by: { $0.key < $1.key }) where nodes.count > 1 {
            violations.append(.twoLeadersInOneTerm(term: served.term, nodes: nodes.sorted(), group: served.group))
        }
        var first: [String: Delivery] = [:]
        // Only acknowledged sends promise an order: a send whose answer was lost may still be
        // applied later (a request delayed in flight), as SQS FIFO producers know — they retry
        // it with the same deduplication id before sending the next.
        for delivery in deliveries where delivery.fifo != nil && sent.contains(delivery.body) {
            if let seen = first[delivery.messageID], (seen.completed, seen.ordinal) <= (delivery.completed, delivery.ordinal) { continue }
            first[delivery.messageID] = delivery
        }
        let byGroup = Dictionary(grouping: first.values, by: { $0.fifo!.group })
        for (group, list) in byGroup.sorted(by: { $0.key < $1.key }) {
            let ordered = list.sorted { ($0.completed, $0.ordinal) < ($1.completed, $1.ordinal) }
            for (a, b) in zip(ordered, ordered.dropFirst()) where b.fifo!.sequence < a.fifo!.sequence {
                violations.append(.fifoOrderBroken(group: group, earlier: a.fifo!.sequence, later: b.fifo!.sequence))
            }
        }
        return violations
    }
}
