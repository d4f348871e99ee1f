public import Logging
public import TernBroker
import TernCore
public import TernWire

/// Turns decoded binary-protocol requests into broker calls and their results into responses.
/// No I/O: ``WireServer`` feeds it requests and writes what it returns, so it is tested without
/// sockets.
public struct WireRequestHandler: Sendable {
    public let broker: Broker
    let logger: Logger
    /// The gossip membership `DescribeCluster` answers with; nil: the node runs alone.
    public var cluster: GossipService?
    /// This node's part in a cluster: data requests are served only by the data group's
    /// leader; elsewhere they are answered `NotLeader` naming the leader (decision 97), unless
    /// ``forwarder`` forwards them.
    public var clusterNode: ClusterNode?
    /// Forwards data requests that reach a follower to the leader (decision 133); nil: they
    /// are answered `NotLeader` (`--no-binary-forwarding`).
    public var forwarder: WireForwarder?

    /// The name and version the broker reports in `ApiVersions`.
    public static let brokerName = "ternd/0.1"

    public init(broker: Broker, logger: Logger) {
        self.broker = broker
        self.logger = logger
    }

    /// The response to `request`; failures become ``WireResponse/error(_:)`` and change nothing.
    public func respond(to request: WireRequest) async -> WireResponse {
        do {
            return try await perform(request)
        } catch {
            return .error(error)
        }
    }

    func perform(_ request: WireRequest) async throws(TernError) -> WireResponse {
        if let response = try await performQueueGroups(request) { return response }
        if let clusterNode, Self.isDataRequest(request) {
            switch clusterNode.route(http: false) {
            case .local: break
            case .unavailable(let reason): throw TernError(.unavailable, reason)
            case .forward(let leader, let address): throw Self.notLeader(leader: leader, address: address.description)
            }
        }
        switch request {
        case .apiVersions:
            return .apiVersions(broker: Self.brokerName, apis: WireAPIVersions.all)
        case .createQueue(let name, let patch):
            let (created, info) = try await broker.createOrUpdateQueue(try QueueName(name), patch: patch)
            return .queue(created: created, info)
        case .describeQueue(let name):
            return .queue(created: false, try broker.describeQueue(try QueueName(name)))
        case .listQueues:
            return .queues(try broker.listQueues())
        case .describeCluster:
            return .cluster(cluster?.wireView() ?? .alone)
        case .metadata:
            return .metadata(clusterNode?.metadata() ?? .alone)
        case .deleteQueue(let name):
            try await broker.deleteQueue(try QueueName(name))
            return .done
        case .purgeQueue(let name):
            return .count(UInt64(try await broker.purgeQueue(try QueueName(name))))
        case .redrive(let name):
            return .count(UInt64(try await broker.redrive(try QueueName(name))))
        case .send(let queue, let stamp, let messages):
            let name = try QueueName(queue)
            if let stamp {
                let result = try await broker.send(name, messages, producer: ProducerStamp(
                    producer: ProducerIdentity(producerID: stamp.producerID, epoch: stamp.epoch), firstSequence: stamp.firstSequence))
                return .sent(result.sent, duplicate: result.duplicate)
            }
            guard !messages.isEmpty else { throw TernError(.invalidParameter, "a send needs at least one message") }
            return .sent(try await broker.send(name, messages), duplicate: false)
        case .receive(let queue, let maxMessages, let visibilityTimeout, let waitTime, let autoAcknowledge):
            let messages = try await broker.receive(
                try QueueName(queue), maxMessages: Int(maxMessages), visibilityTimeout: visibilityTimeout.map { Int($0) },
                waitTime: Int(waitTime), autoAcknowledge: autoAcknowledge)
            return .received(messages)
        case .acknowledge(let queue, let handles):
            // One write transaction for the whole batch; each handle answers independently.
            return .acknowledged(try await broker.acknowledge(try QueueName(queue), receiptHandles: handles))
        case .changeVisibility(let queue, let handle, let timeout):
            try await broker.changeVisibility(try QueueName(queue), receiptHandle: handle, timeout: Int(timeout))
            return .done
        case .initProducer(let transactionalID):
            let identity = try await broker.initProducer(transactionalID: transactionalID)
            return .producer(producerID: identity.producerID, epoch: identity.epoch)
        case .beginTransaction(let producerID, let epoch), .abortTransaction(let producerID, let epoch):
            try broker.checkProducer(ProducerIdentity(producerID: producerID, epoch: epoch))
            return .done
        case .authenticate:
            // Handled by the connection (WireConnection), which never passes it here; with
            // authentication off a token is accepted and ignored.
            return .done
        case .commitTransaction(let wire):
            var transaction = ProducerTransaction(producer: ProducerIdentity(producerID: wire.producerID, epoch: wire.epoch),
                                                  sequence: wire.transactionSequence)
            for send in wire.sends { transaction.send(try QueueName(send.queue), send.messages) }
            for ack in wire.acknowledgements { transaction.acknowledge(try QueueName(ack.queue), receiptHandle: ack.receiptHandle) }
            transaction.offsets = wire.offsets.map {
                ProducerTransaction.OffsetCommit(topic: $0.topic, group: $0.group, partition: $0.partition, offset: $0.offset,
                                                 memberID: $0.member?.id, generation: $0.member?.generation)
            }
            for produce in wire.produces {
                transaction.produce(try QueueName(produce.topic), produce.messages)
            }
            let result = try await broker.commit(transaction)
            return .committed(result.sent, produced: result.produced, duplicate: result.duplicate)
        case .createTopic, .describeTopic, .listTopics, .deleteTopic, .produce, .fetch, .joinGroup, .heartbeat, .leaveGroup,
             .groupConsume, .commitOffsets, .resetOffsets, .describeGroup:
            return try await performTopic(request)
        case .peerHello, .raftBatch, .snapshotChunk, .forward:
            // Node-to-node frames are taken by the connection (WireConnection.handlePeer, and
            // answer(forwarded:in:authorize:) for Forward) and never reach the broker as such.
            throw TernError(.notInCluster, "\(request.api) is a node-to-node frame")
        }
    }

    /// The topic and consumer-group APIs, with the semantics and error codes of the HTTP routes
    /// (`HTTPAPI+Topics.swift`).
    func performTopic(_ request: WireRequest) async throws(TernError) -> WireResponse {
        switch request {
        case .createTopic(let name, let patch):
            let (created, info) = try await broker.createOrUpdateTopic(try QueueName(name), patch: patch)
            return .topic(created: created, info)
        case .describeTopic(let name):
            return .topic(created: false, try broker.describeTopic(try QueueName(name)))
        case .listTopics:
            return .topics(try broker.listTopics())
        case .deleteTopic(let name):
            try await broker.deleteTopic(try QueueName(name))
            return .done
        case .produce(let topic, let stamp, let messages):
            let name = try QueueName(topic)
            let result = try await broker.produce(
                name, messages,
                producer: stamp.map { ProducerStamp(producer: ProducerIdentity(producerID: $0.producerID, epoch: $0.epoch), firstSequence: $0.firstSequence) })
            return .produced(result.offsets, duplicate: result.duplicate)
        case .fetch(let topic, let partition, let offset, let maxMessages, let waitTime):
            let name = try QueueName(topic)
            let start: UInt64
            if let offset {
                start = offset
            } else {
                let partitions = try broker.describeTopic(name).partitions
                start = Int(partition) < partitions.count ? partitions[Int(partition)].logStart : 0
            }
            let result = try await broker.fetch(name, partition: Int(partition), offset: start, max: Int(maxMessages), waitTime: Int(waitTime))
            return .fetched(result)
        case .joinGroup(let topic, let group, let sessionTimeout):
            let (memberID, assignment) = try await broker.joinGroup(try QueueName(topic), group: try Self.groupName(group),
                                                                    sessionTimeout: Int(sessionTimeout))
            return .joined(memberID: memberID, assignment)
        case .heartbeat(let topic, let group, let memberID):
            return .assignment(try await broker.heartbeat(try QueueName(topic), group: try Self.groupName(group), memberID: memberID))
        case .leaveGroup(let topic, let group, let memberID):
            try await broker.leaveGroup(try QueueName(topic), group: try Self.groupName(group), memberID: memberID)
            return .done
        case .groupConsume(let topic, let group, let memberID, let maxMessages, let waitTime):
            guard !memberID.isEmpty else { throw TernError(.invalidParameter, "member_id is required (join the group first)") }
            let batch = try await broker.consume(try QueueName(topic), group: try Self.groupName(group), memberID: memberID,
                                                 max: Int(maxMessages), waitTime: Int(waitTime))
            return .consumed(batch.messages, batch.assignment)
        case .commitOffsets(let topic, let group, let memberID, let generation, let offsets):
            let (name, groupName) = (try QueueName(topic), try Self.groupName(group))
            guard !offsets.isEmpty else { throw TernError(.invalidParameter, "offsets must name at least one partition") }
            for (partition, offset) in offsets {
                guard partition < TopicAttributes.partitionsRange.upperBound else {
                    throw TernError(.invalidParameter, "offsets: \(partition) is not a partition number")
                }
                guard offset <= UInt64(Int64.max) else {
                    throw TernError(.invalidParameter, "offsets[\(partition)] must be a non-negative integer up to \(Int64.max)")
                }
            }
            try await broker.commitOffsets(name, group: groupName, memberID: memberID, generation: generation, offsets: offsets)
            return .done
        case .resetOffsets(let topic, let group, let target):
            try await broker.resetGroupOffsets(try QueueName(topic), group: try Self.groupName(group), to: target)
            return .done
        case .describeGroup(let topic, let group):
            return .group(Self.wire(try await broker.describeGroup(try QueueName(topic), group: try Self.groupName(group))))
        default:
            preconditionFailure("\(request.api) is served by perform(_:)")
        }
    }

    /// A group name, validated as HTTP does (`InvalidName`, "group name: …").
    /// Whether `request` is served from the replicated state (everything but the handshake,
    /// authentication, cluster description and node-to-node frames).
    static func isDataRequest(_ request: WireRequest) -> Bool {
        switch request {
        case .apiVersions, .authenticate, .describeCluster, .metadata, .peerHello, .raftBatch, .snapshotChunk, .forward: false
        default: true
        }
    }

    /// `NotLeader` with the leader's binary address in a form clients parse:
    /// `… leader node-2 at 10.0.0.2:7081`.
    static func notLeader(leader: String, address: String) -> TernError {
        TernError(.notLeader, "this node does not lead the data group; leader \(leader) at \(address)")
    }

    /// The answer to the client's `frame` (its request decoded as `request`) under the
    /// client's header: forwarded to the leader when this node is a follower and forwarding
    /// is on, else served here (or refused `NotLeader` / `Unavailable`).
    /// - Parameter token: the bearer token the client's connection authenticated with.
    func answer(_ frame: WireFrame, _ request: WireRequest, token: String?) async -> WireFrame {
        if let forwarder, let clusterNode, Self.isDataRequest(request), queueGroup(of: request) == nil,
           case .forward(let leader, let address) = clusterNode.route(http: false) {
            return await forwarder.forward(frame, token: token, waitTime: Self.waitTime(request), to: leader, at: address)
        }
        return await respond(to: request).frame(apiKey: frame.apiKey, apiVersion: frame.apiVersion, correlationID: frame.correlationID)
    }

    /// The answer to a peer's `Forward` (decision 133): the forwarded request authorized with
    /// the client's token by `authorize`, then served here if this node leads; never forwarded
    /// again (`NotLeader` when this node does not lead). The payload is the forwarded
    /// request's response payload; the header is the `Forward` frame's.
    func answer(forwarded forward: WireForward, in frame: WireFrame,
                authorize: (WireRequest, String?) throws(TernError) -> Void) async -> WireFrame {
        let inner = forward.frame(correlationID: frame.correlationID)
        let response: WireResponse
        do throws(TernError) {
            let request = try WireRequest(decoding: inner)
            if let clusterNode, queueGroup(of: request) == nil, case .forward(let leader, let address) = clusterNode.route(http: false) {
                throw TernError(.notLeader, "this node does not lead the data group (a forwarded request is not forwarded again); leader \(leader) at \(address)")
            }
            guard Self.isDataRequest(request) else {
                throw TernError(.invalidFrame, "a Forward carries data requests only, not \(request.api)")
            }
            try authorize(request, forward.token)
            response = await respond(to: request)
        } catch {
            response = .error(error)
        }
        let payload = response.frame(apiKey: forward.apiKey, apiVersion: forward.apiVersion, correlationID: frame.correlationID).payload
        return WireFrame(apiKey: frame.apiKey, apiVersion: frame.apiVersion, correlationID: frame.correlationID, payload: payload)
    }

    /// How long `request` may wait on the leader for data (a long poll's wait time).
    static func waitTime(_ request: WireRequest) -> Duration {
        switch request {
        case .receive(_, _, _, let waitTime, _), .fetch(_, _, _, _, let waitTime), .groupConsume(_, _, _, _, let waitTime):
            .seconds(Int(waitTime))
        default:
            .zero
        }
    }

    static func groupName(_ raw: String) throws(TernError) -> QueueName {
        do { return try QueueName(raw) } catch { throw TernError(.invalidName, "group name: \(error.message)") }
    }

    static func wire(_ info: Broker.GroupInfo) -> WireGroupInfo {
        WireGroupInfo(
            generation: info.generation,
            members: info.members.map {
                WireGroupInfo.Member(id: $0.id, sessionTimeout: Int($0.sessionTimeoutMilliseconds / 1000), lastSeen: $0.lastSeen,
                                     partitions: $0.partitions)
            },
            partitions: info.partitions.map {
                WireGroupInfo.PartitionLag(partition: $0.partition, committed: $0.committed, logStart: $0.logStart,
                                           highWatermark: $0.highWatermark, lag: $0.lag, owner: $0.owner)
            })
    }
}
