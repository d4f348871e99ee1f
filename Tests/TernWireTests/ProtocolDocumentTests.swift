import NIOCore
import Testing
import TernCore
import TernWire

/// The hex dumps of `docs/protocol.md`, checked against the encoder.
@Suite struct ProtocolDocumentTests {
    static func hex(_ text: String) -> [UInt8] {
        let digits = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        return digits.map { UInt8($0, radix: 16)! }
    }

    static func bytes(_ frame: WireFrame) -> [UInt8] { Array(frame.bytes.readableBytesView) }

    @Test func documentedRequestDumps_matchTheEncoder() {
        var patch = QueueAttributes.Patch()
        patch.visibilityTimeout = 60
        let cases: [(WireRequest, String)] = [
            (.apiVersions(clientName: "tern-client/0.1"),
             "00 00 00 19 00 00 00 00 00 00 00 01 00 0f 74 65 72 6e 2d 63 6c 69 65 6e 74 2f 30 2e 31"),
            (.createQueue(name: "jobs", patch: patch),
             "00 00 00 1d 00 01 00 00 00 00 00 01 00 04 6a 6f 62 73 01 00 00 00 3c 00 00 00 00 00 00 00 00 00 00"),
            (.describeQueue(name: "jobs"), "00 00 00 0e 00 02 00 00 00 00 00 01 00 04 6a 6f 62 73"),
            (.send(queue: "jobs", producer: nil, messages: [OutgoingMessage(body: Array("hi".utf8))]),
             "00 00 00 1d 00 06 00 00 00 00 00 01 00 04 6a 6f 62 73 00 00 00 00 01 00 00 00 02 68 69 00 00 00 00"),
            (.receive(queue: "jobs", maxMessages: 10, visibilityTimeout: 30, waitTime: 20, autoAcknowledge: false),
             "00 00 00 17 00 07 00 00 00 00 00 01 00 04 6a 6f 62 73 00 0a 01 00 00 00 1e 14 00"),
            (.acknowledge(queue: "jobs", receiptHandles: ["aa", "bb"]),
             "00 00 00 1a 00 08 00 00 00 00 00 01 00 04 6a 6f 62 73 00 00 00 02 00 02 61 61 00 02 62 62"),
            (.changeVisibility(queue: "jobs", receiptHandle: "aa", visibilityTimeout: 0),
             "00 00 00 16 00 09 00 00 00 00 00 01 00 04 6a 6f 62 73 00 02 61 61 00 00 00 00"),
            (.initProducer(transactionalID: "t1"), "00 00 00 0d 00 14 00 00 00 00 00 01 01 00 02 74 31"),
            (.authenticate(token: "s3cret"), "00 00 00 10 00 18 00 00 00 00 00 01 00 06 73 33 63 72 65 74"),
            (.beginTransaction(producerID: 7, epoch: 3),
             "00 00 00 14 00 15 00 00 00 00 00 01 00 00 00 00 00 00 00 07 00 00 00 03"),
            (.commitTransaction(WireTransaction(producerID: 7, epoch: 3, transactionSequence: 12,
                                                sends: [.init(queue: "out", messages: [OutgoingMessage(body: Array("X".utf8))])],
                                                acknowledgements: [.init(queue: "in", receiptHandle: "aa")])),
             """
             00 00 00 46 00 16 00 00 00 00 00 01 00 00 00 00 00 00 00 07 00 00 00 03 00 00 00 00 00 00 00 0c
             00 00 00 01 00 03 6f 75 74 00 00 00 01 00 00 00 01 58 00 00 00 00 00 00 00 01 00 02 69 6e 00 02 61 61 00 00 00 00
             00 00 00 00
             """),
        ]
        for (request, dump) in cases {
            #expect(Self.bytes(request.frame(correlationID: 1)) == Self.hex(dump), "\(request.api)")
        }
        #expect(Self.bytes(WireRequest.listQueues.frame(correlationID: 0x0102_0304)) == Self.hex("00 00 00 08 00 03 00 00 01 02 03 04"))
    }

    @Test func documentedResponseDumps_matchTheEncoder() {
        let sent = SentMessage(id: MessageID(high: 0x0194_1234_5678_7abc, low: 0x8000_0000_0000_0001), sequence: 42,
                               visibleAt: Timestamp(milliseconds: 1_735_689_600_000))
        let cases: [(WireAPI, UInt32, WireResponse, String)] = [
            (.send, 1, .sent([sent], duplicate: false),
             "00 00 00 2f 00 06 00 00 00 00 00 01 00 00 00 00 00 00 01 01 94 12 34 56 78 7a bc 80 00 00 00 00 00 00 01 00 00 00 00 00 00 00 2a 00 00 01 94 1f 29 7c 00"),
            (.acknowledge, 1, .acknowledged([nil, TernError(.receiptHandleStale, "gone")]),
             "00 00 00 18 00 08 00 00 00 00 00 01 00 00 00 00 00 02 00 00 00 28 00 04 67 6f 6e 65"),
            (.initProducer, 1, .producer(producerID: 7, epoch: 3),
             "00 00 00 16 00 14 00 00 00 00 00 01 00 00 00 00 00 00 00 00 00 07 00 00 00 03"),
            (.send, 3, .error(TernError(.producerFenced, "epoch 1 < 2")),
             "00 00 00 17 00 06 00 00 00 00 00 03 00 68 00 0b 65 70 6f 63 68 20 31 20 3c 20 32"),
        ]
        for (api, correlation, response, dump) in cases {
            #expect(Self.bytes(response.frame(apiKey: api.rawValue, correlationID: correlation)) == Self.hex(dump), "\(api)")
        }
    }

    /// The dumps of the "Topics and consumer groups (keys 30–42)" section.
    @Test func documentedTopicRequestDumps_matchTheEncoder() {
        let cases: [(WireRequest, String)] = [
            (.createTopic(name: "logs", patch: TopicAttributes.Patch(partitions: 4)),
             "00 00 00 15 00 1e 00 00 00 00 00 01 00 04 6c 6f 67 73 01 00 00 00 04 00 00"),
            (.describeTopic(name: "logs"), "00 00 00 0e 00 1f 00 00 00 00 00 01 00 04 6c 6f 67 73"),
            (.deleteTopic(name: "logs"), "00 00 00 0e 00 21 00 00 00 00 00 01 00 04 6c 6f 67 73"),
            (.listTopics, "00 00 00 08 00 20 00 00 00 00 00 01"),
            (.produce(topic: "logs", producer: nil, messages: [TopicMessage(key: Array("k".utf8), value: Array("v".utf8)),
                                                TopicMessage(value: Array("w".utf8), partition: 3)]),
             "00 00 00 2a 00 22 00 00 00 00 00 01 00 04 6c 6f 67 73 00 00 00 00 02 01 00 00 00 01 6b 00 00 00 00 01 76 00 01 00 00 00 03 00 00 00 01 77"),
            (.fetch(topic: "logs", partition: 2, offset: 40, maxMessages: 100, waitTime: 5),
             "00 00 00 1e 00 23 00 00 00 00 00 01 00 04 6c 6f 67 73 00 00 00 02 01 00 00 00 00 00 00 00 28 00 64 05"),
            (.joinGroup(topic: "logs", group: "g", sessionTimeout: 10),
             "00 00 00 15 00 24 00 00 00 00 00 01 00 04 6c 6f 67 73 00 01 67 00 00 00 0a"),
            (.heartbeat(topic: "logs", group: "g", memberID: "m-1"),
             "00 00 00 16 00 25 00 00 00 00 00 01 00 04 6c 6f 67 73 00 01 67 00 03 6d 2d 31"),
            (.leaveGroup(topic: "logs", group: "g", memberID: "m-1"),
             "00 00 00 16 00 26 00 00 00 00 00 01 00 04 6c 6f 67 73 00 01 67 00 03 6d 2d 31"),
            (.groupConsume(topic: "logs", group: "g", memberID: "m-1", maxMessages: 50, waitTime: 20),
             "00 00 00 19 00 27 00 00 00 00 00 01 00 04 6c 6f 67 73 00 01 67 00 03 6d 2d 31 00 32 14"),
            (.commitOffsets(topic: "logs", group: "g", memberID: "m-1", generation: 3, offsets: [0: 16]),
             "00 00 00 2a 00 28 00 00 00 00 00 01 00 04 6c 6f 67 73 00 01 67 00 03 6d 2d 31 00 00 00 03 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 10"),
            (.resetOffsets(topic: "logs", group: "g", to: .latest),
             "00 00 00 12 00 29 00 00 00 00 00 01 00 04 6c 6f 67 73 00 01 67 01"),
            (.resetOffsets(topic: "logs", group: "g", to: .timestamp(Timestamp(milliseconds: 1_735_689_600_000))),
             "00 00 00 1a 00 29 00 00 00 00 00 01 00 04 6c 6f 67 73 00 01 67 02 00 00 01 94 1f 29 7c 00"),
            (.describeGroup(topic: "logs", group: "g"), "00 00 00 11 00 2a 00 00 00 00 00 01 00 04 6c 6f 67 73 00 01 67"),
        ]
        for (request, dump) in cases {
            #expect(Self.bytes(request.frame(correlationID: 1)) == Self.hex(dump), "\(request.api)")
        }
    }

    @Test func documentedTopicResponseDumps_matchTheEncoder() {
        let created = Timestamp(milliseconds: 1_735_689_600_000)
        let message = FetchedMessage(partition: 2, offset: 40, key: Array("k".utf8), value: Array("v".utf8), timestamp: created)
        let cases: [(WireAPI, WireResponse, String)] = [
            (.describeTopic, .topic(created: false, WireSamples.topic(
                name: "logs", retention: 604_800, maxBytes: nil, createdAt: created,
                partitions: [PartitionInfo(partition: 0, logStart: 0, highWatermark: 3, bytes: 120, batches: 1)])),
             "00 00 00 46 00 1f 00 00 00 00 00 01 00 00 00 00 04 6c 6f 67 73 00 09 3a 80 00 00 00 01 94 1f 29 7c 00 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 03 00 00 00 00 00 00 00 78 00 00 00 00 00 00 00 01"),
            (.produce, .produced([TopicOffset(partition: 1, offset: 7), TopicOffset(partition: 3, offset: 0)], duplicate: false),
             "00 00 00 27 00 22 00 00 00 00 00 01 00 00 00 00 00 00 02 00 00 00 01 00 00 00 00 00 00 00 07 00 00 00 03 00 00 00 00 00 00 00 00"),
            (.fetch, .fetched(FetchResult(messages: [message], highWatermark: 41, logStart: 0)),
             "00 00 00 3d 00 23 00 00 00 00 00 01 00 00 00 00 00 00 00 00 00 29 00 00 00 00 00 00 00 00 00 00 00 01 00 00 00 02 00 00 00 00 00 00 00 28 01 00 00 00 01 6b 00 00 00 01 76 00 00 01 94 1f 29 7c 00"),
            (.fetch, .error(TernError(.offsetOutOfRange, "offset 99")),
             "00 00 00 15 00 23 00 00 00 00 00 01 00 7a 00 09 6f 66 66 73 65 74 20 39 39"),
            (.joinGroup, .joined(memberID: "m-1", GroupAssignment(generation: 1, partitions: [0, 1])),
             "00 00 00 20 00 24 00 00 00 00 00 01 00 00 00 03 6d 2d 31 00 00 00 01 00 00 00 02 00 00 00 00 00 00 00 01 00"),
            (.heartbeat, .assignment(GroupAssignment(generation: 2, partitions: [1], rebalance: true)),
             "00 00 00 17 00 25 00 00 00 00 00 01 00 00 00 00 00 02 00 00 00 01 00 00 00 01 01"),
            (.groupConsume, .consumed([message], GroupAssignment(generation: 2, partitions: [2])),
             "00 00 00 3a 00 27 00 00 00 00 00 01 00 00 00 00 00 02 00 00 00 01 00 00 00 02 00 00 00 00 01 00 00 00 02 00 00 00 00 00 00 00 28 01 00 00 00 01 6b 00 00 00 01 76 00 00 01 94 1f 29 7c 00"),
            (.commitOffsets, .error(TernError(.staleGeneration, "stale")),
             "00 00 00 11 00 28 00 00 00 00 00 01 00 7b 00 05 73 74 61 6c 65"),
            (.describeGroup, .group(WireGroupInfo(
                generation: 2, members: [.init(id: "m-1", sessionTimeout: 10, lastSeen: created, partitions: [0])],
                partitions: [.init(partition: 0, committed: 16, logStart: 0, highWatermark: 20, lag: 4, owner: "m-1")])),
             "00 00 00 5a 00 2a 00 00 00 00 00 01 00 00 00 00 00 02 00 00 00 01 00 03 6d 2d 31 00 00 00 0a 00 00 01 94 1f 29 7c 00 00 00 00 01 00 00 00 00 00 00 00 01 00 00 00 00 01 00 00 00 00 00 00 00 10 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 14 00 00 00 00 00 00 00 04 01 00 03 6d 2d 31"),
        ]
        for (api, response, dump) in cases {
            #expect(Self.bytes(response.frame(apiKey: api.rawValue, correlationID: 1)) == Self.hex(dump), "\(api)")
        }
    }
}
