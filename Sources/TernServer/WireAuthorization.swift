import TernCore
import TernWire

/// What each binary-protocol request needs from the connection's bearer token: the same
/// permissions as the equivalent HTTP call (``Auth/requirement(method:path:)``).
enum WireAuthorization {
    /// Every requirement `request` must meet (a transaction needs one per queue and topic it
    /// touches); empty for the requests any connection may make.
    static func requirements(_ request: WireRequest) -> [Auth.Requirement] {
        switch request {
        case .apiVersions, .authenticate:
            return []
        case .peerHello, .raftBatch, .snapshotChunk, .forward:
            // Authenticated by the cluster key (PeerHello's proof), not by a bearer token; a
            // Forward's request is authorized with the client's token it carries (decision 133).
            return []
        case .describeQueue, .listQueues, .initProducer, .beginTransaction, .abortTransaction:
            return [.authenticated]
        case .createQueue, .deleteQueue, .purgeQueue, .redrive:
            return [.admin]
        case .send(let queue, _, _):
            return [.produce(queue)]
        case .receive(let queue, _, _, _, _), .acknowledge(let queue, _), .changeVisibility(let queue, _, _):
            return [.consume(queue)]
        case .describeTopic, .listTopics, .describeCluster, .metadata:
            return [.authenticated]
        case .createTopic, .deleteTopic:
            return [.admin]
        case .produce(let topic, _, _):
            return [.produce(topic)]
        case .fetch(let topic, _, _, _, _), .joinGroup(let topic, _, _), .heartbeat(let topic, _, _), .leaveGroup(let topic, _, _),
             .groupConsume(let topic, _, _, _, _), .commitOffsets(let topic, _, _, _, _), .resetOffsets(let topic, _, _),
             .describeGroup(let topic, _):
            // As over HTTP: group calls and offsets need consume on the topic.
            return [.consume(topic)]
        case .commitTransaction(let transaction):
            return [.authenticated]
                + transaction.sends.map { .produce($0.queue) }
                + transaction.acknowledgements.map { .consume($0.queue) }
                + transaction.offsets.map { .consume($0.topic) }
                + transaction.produces.map { .produce($0.topic) }
        }
    }
}
