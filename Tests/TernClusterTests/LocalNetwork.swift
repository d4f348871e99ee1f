import Foundation
import Synchronization
import TernCluster
import TernReplication

/// An in-process network for replicas: delivers each envelope asynchronously to the
/// addressed node's handler, except to and from isolated nodes (a crashed or cut-off node).
final class LocalNetwork: Sendable {
    private struct State {
        var handlers: [Raft.NodeID: @Sendable (RaftEnvelope) -> Void] = [:]
        var isolated: Set<Raft.NodeID> = []
        var delivered = 0
    }
    private let state = Mutex(State())
    private let queue = DispatchQueue(label: "local-network")

    func register(_ node: Raft.NodeID, _ handler: @escaping @Sendable (RaftEnvelope) -> Void) {
        state.withLock { $0.handlers[node] = handler }
    }

    func isolate(_ node: Raft.NodeID) { state.withLock { _ = $0.isolated.insert(node) } }
    func heal(_ node: Raft.NodeID) { state.withLock { _ = $0.isolated.remove(node) } }

    /// The transport of `node`.
    func transport(for node: Raft.NodeID) -> Link { Link(network: self, node: node) }

    struct Link: RaftTransport {
        let network: LocalNetwork
        let node: Raft.NodeID
        func send(_ envelopes: [RaftEnvelope]) { network.deliver(envelopes) }
    }

    private func deliver(_ envelopes: [RaftEnvelope]) {
        for envelope in envelopes {
            let handler = state.withLock { s -> (@Sendable (RaftEnvelope) -> Void)? in
                guard !s.isolated.contains(envelope.message.from), !s.isolated.contains(envelope.message.to) else { return nil }
                s.delivered += 1
                return s.handlers[envelope.message.to]
            }
            if let handler { queue.async { handler(envelope) } }
        }
    }
}
