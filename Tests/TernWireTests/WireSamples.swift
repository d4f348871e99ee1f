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
            .describeQueue(name: "jobs"),
            .listQueues,
            .deleteQueue(name: "jobs"),
            .purgeQueue(name: "jobs"),
            .redrive(name: "jobs-dlq"),
            .send(queue: "jobs", producer: nil, messages: [OutgoingMessage(body: Array("a".utf8)),
                                                            OutgoingMessage(body: Array("b".utf8), priority: 9, delay: 30)]),
            .send(queue: "jobs", producer: WireProducerStamp(producerID: 7, epoch: 2, firstSequence: 100),
                  messages: [OutgoingMessage(body: [0, 1, 2, 255])]),
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
                          .init(topic: "events", group: "audit", partition: 0, offset: 7, member: (id: "m-1", generation: 4))])),
        ]
    }()

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
        (.abortTransaction, .done),
        (.send, .error(TernError(.outOfOrderSequence, "expected 5, got 7"))),
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
