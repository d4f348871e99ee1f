import TernBroker
import TernCore
import TernMetadata
import TernWire

/// Binary requests with queue groups on (decision 140, experimental): a request naming a queue
/// the catalogue places in a queue group is served by that group's leader; elsewhere it is
/// answered `NotLeader` naming the group's leader (or the replica most likely to lead it),
/// which `TernClient` follows. Such requests are never forwarded. Idempotent sends and
/// transactions whose queues all live in one queue group commit there, with producers the data
/// group issued (decision 141). Creating a queue places it
/// (on the data group's leader) and then answers the same way; deleting one and listing
/// queues are done over HTTP while queue groups are experimental.
extension WireRequestHandler {
    /// The queue `request` names, for the requests a queue group serves.
    static func queue(of request: WireRequest) -> String? {
        switch request {
        case .createQueue(let name, _), .describeQueue(let name), .deleteQueue(let name), .purgeQueue(let name),
             .redrive(let name):
            name
        case .send(let queue, _, _), .receive(let queue, _, _, _, _), .acknowledge(let queue, _),
             .changeVisibility(let queue, _, _):
            queue
        default:
            nil
        }
    }

    /// The producer whose write `request` is (an idempotent send, a transaction), nil otherwise.
    static func producer(of request: WireRequest) -> ProducerIdentity? {
        switch request {
        case .send(_, let stamp?, _): ProducerIdentity(producerID: stamp.producerID, epoch: stamp.epoch)
        case .commitTransaction(let wire): ProducerIdentity(producerID: wire.producerID, epoch: wire.epoch)
        default: nil
        }
    }

    /// The queue group `request` is for, when queue groups are on and it names a queue placed
    /// in one, or is a transaction that commits in one (such requests are never forwarded to the
    /// data group's leader).
    func queueGroup(of request: WireRequest) -> Metadata.Group? {
        guard let clusterNode, clusterNode.queueGroups != nil else { return nil }
        if case .commitTransaction(let wire) = request {
            // One that spans groups goes on to the data group's leader, which refuses it.
            return try? clusterNode.transactionGroup(queues: wire.sends.map(\.queue) + wire.acknowledgements.map(\.queue),
                                                     touchesTopics: !wire.produces.isEmpty || !wire.offsets.isEmpty)
        }
        guard let raw = Self.queue(of: request), let name = try? QueueName(raw) else { return nil }
        return clusterNode.queueGroup(of: name)
    }

    /// Answers `request` when queue groups decide where it goes; nil: the data group's request.
    func performQueueGroups(_ request: WireRequest) async throws(TernError) -> WireResponse? {
        guard let clusterNode, clusterNode.queueGroups != nil else { return nil }
        if case .commitTransaction(let wire) = request {
            guard let group = try clusterNode.transactionGroup(
                queues: wire.sends.map(\.queue) + wire.acknowledgements.map(\.queue),
                touchesTopics: !wire.produces.isEmpty || !wire.offsets.isEmpty) else { return nil }
            return try await serve(request, in: group, node: clusterNode)
        }
        if case .listQueues = request {
            throw TernError(.notImplemented, "with queue groups on (experimental), list queues over HTTP: GET /queues")
        }
        var group = queueGroup(of: request)
        if group == nil, case .createQueue(let raw, let patch) = request, case .local = clusterNode.route(http: false) {
            let name = try QueueName(raw)
            // A queue made before queue groups were on stays in the data group.
            guard (try? broker.describeQueue(name)) == nil else { return nil }
            // Bad input is refused before anything is placed.
            _ = try QueueAttributes.forNewQueue(name, patch)
            let placed = try await clusterNode.placeQueue(name, colocateWith: nil, deadLetterQueue: patch.deadLetterQueue ?? nil)
            do throws(TernError) {
                return try await waitAndServe(request, in: placed, node: clusterNode)
            } catch where error.code != .notLeader && error.code.httpStatus < 500 {
                // Refused by the group (a check only its state can make): take the placement back.
                try? await clusterNode.unplaceQueue(name)
                throw error
            }
        }
        guard let group else { return nil }
        if case .deleteQueue = request {
            throw TernError(.notImplemented, "with queue groups on (experimental), delete queues over HTTP: DELETE /queues/{name}")
        }
        if case .createQueue(let raw, let patch) = request, let dlq = patch.deadLetterQueue ?? nil,
           try clusterNode.groupOfDeadLetterQueue(dlq, for: try QueueName(raw)).id != group.id {
            throw TernError(.conflict, "dead_letter_queue \(dlq) lives in another queue group than queue \(raw), which cannot move; a queue and its dead-letter queue share a group (decision 142)")
        }
        if case .createQueue = request {
            // The queue may be new: its group's first leader may still be catching up.
            return try await waitAndServe(request, in: group, node: clusterNode)
        }
        return try await serve(request, in: group, node: clusterNode)
    }

    private func serve(_ request: WireRequest, in group: Metadata.Group, node: ClusterNode) async throws(TernError) -> WireResponse {
        switch node.route(group: group, http: false) {
        case .local(let broker, _):
            if let producer = Self.producer(of: request) {
                // The queue group adopts the producer; the data group must have issued it (decision 141).
                try await node.checkIssuedProducer(producer)
            }
            var handler = WireRequestHandler(broker: broker, logger: logger)
            handler.cluster = cluster
            return try await handler.perform(request)
        case .forward(let leader, let address):
            throw TernError(.notLeader, "this node does not lead queue group \(QueueGroupHost.raftGroup(of: group.id)); leader \(leader) at \(address)")
        case .unavailable(let reason):
            throw TernError(.unavailable, reason)
        }
    }

    /// A new queue's group may not have a leader for a moment: up to 10 s.
    private func waitAndServe(_ request: WireRequest, in group: Metadata.Group, node: ClusterNode) async throws(TernError) -> WireResponse {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            do throws(TernError) {
                return try await serve(request, in: group, node: node)
            } catch where error.code == .unavailable && ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
    }
}
