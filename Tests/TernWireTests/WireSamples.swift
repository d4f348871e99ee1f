import NIOCore
import TernCore
import TernWire

/// One sample of every request and response, shared by the round-trip, decoder and fuzz tests.
enum WireSamples {
    static let queueInfo: QueueInfo = {
        var attributes = QueueAttributes()
        attributes.maxReceiveCount = 5
        attributes.deadLetterQueue = try! QueueName("jobs-dlq")
        attributes.maxBytes = 1 << 30
        attributes.contentBasedDeduplication = true
        attributes.overflow = .dropOldest
        var counts = QueueCounts()
        counts.ready = 3
        counts.inFlight = 2
        counts.bytes = 4096
        return QueueInfo(name: try! QueueName("jobs"), attributes: attributes, counts: counts,
                         createdAt: Timestamp(milliseconds: 1_735_689_600_000), oldestSentAt: Timestamp(milliseconds: 1_735_689_601_000))
    }()

    static let sent = SentMessage(id: MessageID(high: 0x0194_1234_5678_7abc, low: 0x8000_0000_0000_0001), sequence: 42,
                                  visibleAt: Timestamp(milliseconds: 1_735_689_600_000))

    static let received = ReceivedMessage(
        id: MessageID(high: 1, low: 2), body: Array("hello".utf8),
        receiptHandle: "01000000010000000000000001000000000000000a000000000000000b", receiveCount: 1, priority: 4,
        sentAt: Timestamp(milliseconds: 1_735_689_600_000))

    static let requests: [WireRequest] = {
        var patch = QueueAttributes.Patch()
        patch.visibilityTimeout = 60
        patch.maxReceiveCount = .some(nil)
        patch.deadLetterQueue = .some(try! QueueName("dlq"))
        patch.fifo = false
        patch.maxMessages = .some(1000)
        return [
            .apiVersions(clientName: "tern-client/0.1"),
            .createQueue(name: "jobs", patch: patch),
            .createQueue(name: "plain", patch: .init()),
            .createQueue(name: "orders.fifo", patch: {
                var fifo = QueueAttributes.Patch()
                fifo.fifo = true
                fifo.contentBasedDeduplication = true
                fifo.overflow = .dropOldest
                return fifo
            }()),
            .describeQueue(name: "jobs"),
            .listQueues,
            .deleteQueue(name: "jobs"),
            .purgeQueue(name: "jobs"),
            .redrive(name: "jobs-dlq"),
            .send(queue: "jobs", producer: nil, messages: [OutgoingMessage(body: Array("a".utf8)),
                                                            OutgoingMessage(body: Array("b".utf8), priority: 9, delay: 30)]),
            .send(queue: "jobs", producer: WireProducerStamp(producerID: 7, epoch: 2, firstSequence: 100),
                  messages: [OutgoingMessage(body: [0, 1, 2, 255])]),
            .send(queue: "orders.fifo", producer: nil, messages: [OutgoingMessage(body: Array("o".utf8), groupID: "customer-7", deduplicationID: "order-1"),
                                                                   OutgoingMessage(body: Array("p".utf8), groupID: "customer-8")]),
            .receive(queue: "jobs", maxMessages: 10, visibilityTimeout: 30, waitTime: 20, autoAcknowledge: false),
            .receive(queue: "jobs", maxMessages: 1, visibilityTimeout: nil, waitTime: 0, autoAcknowledge: true),
            .acknowledge(queue: "jobs", receiptHandles: ["aa", "bb"]),
            .changeVisibility(queue: "jobs", receiptHandle: "aa", visibilityTimeout: 0),
            .initProducer(transactionalID: nil),
            .initProducer(transactionalID: "pipeline-1"),
            .beginTransaction(producerID: 7, epoch: 3),
            .abortTransaction(producerID: 7, epoch: 3),
            .authenticate(token: "s3cret-token"),
            .commitTransaction(WireTransaction(
                producerID: 7, epoch: 3, transactionSequence: 12,
                sends: [.init(queue: "out", messages: [OutgoingMessage(body: Array("X".utf8))])],
                acknowledgements: [.init(queue: "in", receiptHandle: "aa")],
                offsets: [.init(topic: "events", group: "billing", partition: 3, offset: 99),
                          .init(topic: "events", group: "audit", partition: 0, offset: 7, member: (id: "m-1", generation: 4))],
                produces: [.init(topic: "upper", messages: [TopicMessage(key: Array("k".utf8), value: Array("V".utf8)),
                                                            TopicMessage(value: [], partition: 2)])])),
            .describeCluster,
            .metadata,
        ] + topicRequests + peerRequests
    }()

    /// One or more samples of every topic and consumer-group request (keys 30–42).
    static let topicRequests: [WireRequest] = [
        .createTopic(name: "logs", patch: TopicAttributes.Patch(partitions: 4, retention: 3600, maxBytes: .some(1 << 20))),
        .createTopic(name: "logs", patch: TopicAttributes.Patch(maxBytes: .some(nil))),
        .createTopic(name: "plain", patch: TopicAttributes.Patch()),
        .describeTopic(name: "logs"),
        .listTopics,
        .deleteTopic(name: "logs"),
        .produce(topic: "logs", producer: WireProducerStamp(producerID: 9, epoch: 1, firstSequence: 40), messages: [TopicMessage(value: [7])]),
        .produce(topic: "logs", producer: nil, messages: [
            TopicMessage(key: Array("k".utf8), value: Array("v".utf8)),
            TopicMessage(value: [], partition: 3),
            TopicMessage(key: [], value: [0, 255], partition: 0),
        ]),
        .fetch(topic: "logs", partition: 2, offset: 40, maxMessages: 100, waitTime: 5),
        .fetch(topic: "logs", partition: 0, offset: nil, maxMessages: 1, waitTime: 0),
        .joinGroup(topic: "logs", group: "indexer", sessionTimeout: 10),
        .heartbeat(topic: "logs", group: "indexer", memberID: "m-1"),
        .leaveGroup(topic: "logs", group: "indexer", memberID: "m-1"),
        .groupConsume(topic: "logs", group: "indexer", memberID: "m-1", maxMessages: 50, waitTime: 20),
        .commitOffsets(topic: "logs", group: "indexer", memberID: "m-1", generation: 3, offsets: [0: 16, 2: 7]),
        .resetOffsets(topic: "logs", group: "indexer", to: .earliest),
        .resetOffsets(topic: "logs", group: "indexer", to: .latest),
        .resetOffsets(topic: "logs", group: "indexer", to: .timestamp(Timestamp(milliseconds: 1_735_689_600_000))),
        .describeGroup(topic: "logs", group: "indexer"),
    ]

    /// A topic description as the wire carries it (the partition count is the partitions' count).
    static func topic(name: String, retention: Int, maxBytes: Int?, createdAt: Timestamp, partitions: [PartitionInfo]) -> TopicInfo {
        var attributes = TopicAttributes()
        attributes.partitions = partitions.count
        attributes.retention = retention
        attributes.maxBytes = maxBytes
        return TopicInfo(name: try! QueueName(name), attributes: attributes, createdAt: createdAt, partitions: partitions)
    }

    static let topicInfo = topic(
        name: "logs", retention: 604_800, maxBytes: 1 << 20, createdAt: Timestamp(milliseconds: 1_735_689_600_000),
        partitions: [PartitionInfo(partition: 0, logStart: 2, highWatermark: 10, bytes: 512, batches: 3),
                     PartitionInfo(partition: 1)])

    static let fetched = [
        FetchedMessage(partition: 1, offset: 7, key: Array("k".utf8), value: Array("v".utf8), timestamp: Timestamp(milliseconds: 1_735_689_600_000)),
        FetchedMessage(partition: 3, offset: 0, key: nil, value: [], timestamp: Timestamp(milliseconds: 1)),
    ]

    static let groupInfo = WireGroupInfo(
        generation: 4,
        members: [WireGroupInfo.Member(id: "m-1", sessionTimeout: 10, lastSeen: Timestamp(milliseconds: 1_735_689_600_000), partitions: [0, 1]),
                  WireGroupInfo.Member(id: "m-2", sessionTimeout: 30, lastSeen: Timestamp(milliseconds: 5), partitions: [])],
        partitions: [WireGroupInfo.PartitionLag(partition: 0, committed: 5, logStart: 0, highWatermark: 9, lag: 4, owner: "m-1"),
                     WireGroupInfo.PartitionLag(partition: 1, committed: nil, logStart: 2, highWatermark: 2, lag: 0, owner: nil)])

    /// Responses of every topic and consumer-group API.
    static let topicResponses: [(WireAPI, WireResponse)] = [
        (.createTopic, .topic(created: true, topicInfo)),
        (.describeTopic, .topic(created: false, topicInfo)),
        (.listTopics, .topics([topicInfo, topic(name: "empty", retention: 60, maxBytes: nil, createdAt: Timestamp(milliseconds: 0), partitions: [])])),
        (.listTopics, .topics([])),
        (.deleteTopic, .done),
        (.produce, .produced([TopicOffset(partition: 0, offset: 41), TopicOffset(partition: 3, offset: 0)], duplicate: false)),
        (.produce, .produced([TopicOffset(partition: 2, offset: 5)], duplicate: true)),
        (.fetch, .fetched(FetchResult(messages: fetched, highWatermark: 8, logStart: 0))),
        (.fetch, .fetched(FetchResult(messages: [], highWatermark: 0, logStart: 0))),
        (.fetch, .error(TernError(.offsetOutOfRange, "offset 99 is above the high watermark 8"))),
        (.joinGroup, .joined(memberID: "m-1", GroupAssignment(generation: 1, partitions: [0, 1, 2, 3]))),
        (.heartbeat, .assignment(GroupAssignment(generation: 2, partitions: [0, 1], rebalance: true))),
        (.leaveGroup, .done),
        (.groupConsume, .consumed(fetched, GroupAssignment(generation: 2, partitions: [1, 3]))),
        (.groupConsume, .consumed([], GroupAssignment(generation: 2, partitions: []))),
        (.commitOffsets, .done),
        (.commitOffsets, .error(TernError(.staleGeneration, "generation 1 is stale"))),
        (.resetOffsets, .done),
        (.describeGroup, .group(groupInfo)),
    ]

    /// Responses with the API key they answer.
    static let responses: [(WireAPI, WireResponse)] = [
        (.apiVersions, .apiVersions(broker: "ternd/0.1", apis: WireAPIVersions.all)),
        (.createQueue, .queue(created: true, queueInfo)),
        (.describeQueue, .queue(created: false, queueInfo)),
        (.listQueues, .queues([queueInfo, queueInfo])),
        (.deleteQueue, .done),
        (.authenticate, .done),
        (.purgeQueue, .count(17)),
        (.redrive, .count(0)),
        (.send, .sent([sent, sent], duplicate: false)),
        (.send, .sent([sent], duplicate: true)),
        (.receive, .received([received])),
        (.receive, .received([])),
        (.acknowledge, .acknowledged([nil, TernError(.receiptHandleStale, "gone")])),
        (.changeVisibility, .done),
        (.initProducer, .producer(producerID: 1, epoch: 0)),
        (.beginTransaction, .done),
        (.commitTransaction, .committed([[sent], []], duplicate: false)),
        (.commitTransaction, .committed([], produced: [[TopicOffset(partition: 1, offset: 9), TopicOffset(partition: 2, offset: 0)]], duplicate: true)),
        (.abortTransaction, .done),
        (.describeCluster, .cluster(.alone)),
        (.describeCluster, .cluster(WireClusterView(gossip: true, nodeID: "n1", members: [
            WireClusterMember(nodeID: "n1", state: .alive, incarnation: 0, gossip: "10.0.0.1:7946", http: "10.0.0.1:7080",
                              binary: nil, zone: "z1", startedAt: 1_735_689_600_000, lastChange: 1_735_689_601_000, isLocal: true),
            WireClusterMember(nodeID: "n2", state: .left, incarnation: 3, gossip: "10.0.0.2:7946", http: nil, binary: "10.0.0.2:7081",
                              zone: nil, startedAt: 1, lastChange: 2, isLocal: false),
        ]))),
        (.metadata, .metadata(.alone)),
        (.metadata, .metadata(WireMetadata(clustered: true, nodeID: "n2", nodes: [
            WireMetadata.Node(nodeID: "n1", binary: "10.0.0.1:7081", reachable: true),
            WireMetadata.Node(nodeID: "n2", binary: nil, reachable: true),
            WireMetadata.Node(nodeID: "n3", binary: "10.0.0.3:7081", reachable: false),
        ], groups: [WireMetadata.Group(id: 1, scope: .everything, leader: "n1", leaderBinary: "10.0.0.1:7081", term: 7)]))),
        (.metadata, .metadata(WireMetadata(clustered: true, nodeID: "n1", nodes: [],
                                           groups: [WireMetadata.Group(id: 1, scope: .everything, leader: nil, leaderBinary: nil, term: 0)]))),
        (.send, .error(TernError(.outOfOrderSequence, "expected 5, got 7"))),
        (.peerHello, .done),
        (.peerHello, .error(TernError(.notInCluster, "this node does not run in a cluster"))),
        (.raftBatch, .error(TernError(.invalidFrame, "RaftBatch before an accepted PeerHello"))),
        (.snapshotChunk, .snapshotChunk(WireSnapshotChunk(snapshotID: 0xABCD, group: 1, applied: 977, totalBytes: 5, checksum: 0xDEAD_BEEF,
                                                          offset: 2, data: [1, 2, 3]))),
        (.snapshotChunk, .snapshotChunk(WireSnapshotChunk(snapshotID: 1, group: 1, applied: 0, totalBytes: 0, checksum: 0, offset: 0, data: []))),
        (.snapshotChunk, .error(TernError(.conflict, "snapshot 7 is no longer served"))),
        // A Forward's successful answer carries the forwarded API's payload (decoded under that
        // key, WireForwardTests); an error answer decodes under any key.
        (.forward, .error(TernError(.notLeader, "this node does not lead the data group (a forwarded request is not forwarded again); leader n2 at 10.0.0.2:7081"))),
    ] + topicResponses

    /// Samples of the node-to-node requests (keys 61–64).
    static let peerRequests: [WireRequest] = [
        .forward(WireForward(forwarding: WireRequest.send(queue: "jobs", producer: nil, messages: [OutgoingMessage(body: Array("hi".utf8))])
            .frame(correlationID: 0), token: "s3cret")),
        .forward(WireForward(forwarding: WireRequest.listQueues.frame(correlationID: 0), token: nil)),
        .forward(WireForward(token: "", apiKey: 0x7777, apiVersion: 3, payload: ByteBuffer(bytes: [1, 2, 3]))),
        .peerHello(WirePeerHello(nodeID: "n1", target: 0x1234_5678_9abc_def0, timestamp: 1_735_689_600_000,
                                 nonce: Array(0..<16))),
        .peerHello(WirePeerHello(nodeID: "node-\u{e9}", target: 1, timestamp: 0, nonce: Array(repeating: 0xff, count: 16),
                                 proof: Array(100..<132))),
        .raftBatch(WireRaftBatch(from: "n1", messages: [])),
        .snapshotChunk(WireSnapshotChunkRequest(group: 1, snapshotID: 0, minApplied: 977, offset: 0, maxBytes: 1 << 20)),
        .snapshotChunk(WireSnapshotChunkRequest(group: 0xFFFF_FFFF_FFFF_FFFF, snapshotID: 0xABCD, minApplied: 0, offset: 1 << 40,
                                                maxBytes: UInt32(WireSnapshotChunkRequest.maxChunkBytes))),
        .raftBatch(WireRaftBatch(from: "n2", messages: [
            .init(group: 0, bytes: [1, 7, 0, 0, 0, 0, 0, 0, 0, 1]),
            .init(group: 0xFFFF_FFFF_FFFF_FFFF, bytes: Array(repeating: 0xAB, count: 300)),
        ])),
    ]

    /// Every sample request and response as one stream of frame bytes.
    static func stream() -> ByteBuffer {
        var buffer = ByteBuffer()
        for (index, request) in requests.enumerated() {
            request.frame(correlationID: UInt32(index)).write(to: &buffer)
        }
        for (index, (api, response)) in responses.enumerated() {
            response.frame(apiKey: api.rawValue, correlationID: UInt32(1000 + index)).write(to: &buffer)
        }
        return buffer
    }
}
