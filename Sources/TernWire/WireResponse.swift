public import NIOCore
public import TernCore

/// A response of the binary protocol, decoded. Which case a payload decodes to is decided by
/// the API key of the frame (the request's).
public enum WireResponse: Sendable, Equatable {
    /// The APIs and versions the broker serves, and its name and version.
    case apiVersions(broker: String, apis: [WireAPIVersions])
    /// CreateQueue and DescribeQueue (`created` is false for describe).
    case queue(created: Bool, QueueInfo)
    case queues([QueueInfo])
    /// DeleteQueue, ChangeVisibility, BeginTransaction, AbortTransaction, DeleteTopic,
    /// LeaveGroup, CommitOffsets, ResetOffsets, PeerHello.
    case done
    /// PurgeQueue (messages removed) and Redrive (messages moved).
    case count(UInt64)
    /// Send; `duplicate` when an idempotent retry matched a batch already stored (nothing was stored again).
    case sent([SentMessage], duplicate: Bool)
    case received([ReceivedMessage])
    /// Acknowledge: per handle, nil for success or the error.
    case acknowledged([TernError?])
    case producer(producerID: UInt64, epoch: UInt32)
    /// CommitTransaction: the sends' results in request order; `duplicate` when this transaction
    /// had already been committed.
    case committed([[SentMessage]], produced: [[TopicOffset]] = [], duplicate: Bool)
    /// CreateTopic and DescribeTopic (`created` is false for describe).
    case topic(created: Bool, TopicInfo)
    case topics([TopicInfo])
    /// Produce: where each message was stored, in request order; `duplicate` when an
    /// idempotent produce had already been applied (nothing stored again).
    case produced([TopicOffset], duplicate: Bool)
    case fetched(FetchResult)
    /// JoinGroup: the new member's id and assignment.
    case joined(memberID: String, GroupAssignment)
    /// Heartbeat.
    case assignment(GroupAssignment)
    /// GroupConsume: the messages and the assignment they were read under.
    case consumed([FetchedMessage], GroupAssignment)
    case group(WireGroupInfo)
    /// DescribeCluster.
    case cluster(WireClusterView)
    /// Metadata.
    case metadata(WireMetadata)
    /// SnapshotChunk (node to node).
    case snapshotChunk(WireSnapshotChunk)
    /// Any API: the request failed and changed nothing.
    case error(TernError)

    /// The response as a frame answering a request with `apiKey`, `apiVersion` and `correlationID`.
    public func frame(apiKey: UInt16, apiVersion: UInt16 = 0, correlationID: UInt32,
                      allocator: ByteBufferAllocator = ByteBufferAllocator()) -> WireFrame {
        var payload = allocator.buffer(capacity: estimatedPayloadBytes)
        encodePayload(into: &payload)
        return WireFrame(apiKey: apiKey, apiVersion: apiVersion, correlationID: correlationID, payload: payload)
    }

    /// About the bytes ``encodePayload(into:)`` writes, so that a large receive is written into
    /// one allocation instead of a buffer doubled a dozen times (each doubling a copy).
    var estimatedPayloadBytes: Int {
        switch self {
        case .received(let messages):
            // error u16, count u32; per message: id 16, body 4 + n, handle 4 + n, count 4, priority 1, sent at 8.
            return messages.reduce(6) { $0 + 37 + $1.body.count + $1.receiptHandle.utf8.count }
        case .consumed(let messages, _):
            return messages.reduce(256) { $0 + 64 + $1.value.count + ($1.key?.count ?? 0) }
        case .snapshotChunk(let chunk):
            return 64 + chunk.data.count
        default:
            return 64
        }
    }

    /// Writes the payload: u16 error number (0 = success), then the body or the error message.
    public func encodePayload(into buffer: inout ByteBuffer) {
        if case .error(let error) = self {
            buffer.writeInteger(error.code.number)
            buffer.writeWireString(String(error.message.utf8.prefix(4096)) ?? "")
            return
        }
        buffer.writeInteger(UInt16(0))
        switch self {
        case .apiVersions(let broker, let apis):
            buffer.writeWireString(broker)
            buffer.writeInteger(UInt32(apis.count))
            for api in apis {
                buffer.writeInteger(api.apiKey)
                buffer.writeInteger(api.minVersion)
                buffer.writeInteger(api.maxVersion)
            }
        case .queue(let created, let info):
            buffer.writeWireBool(created)
            buffer.writeQueueInfo(info)
        case .queues(let infos):
            buffer.writeInteger(UInt32(infos.count))
            for info in infos { buffer.writeQueueInfo(info) }
        case .done:
            break
        case .count(let count):
            buffer.writeInteger(count)
        case .sent(let messages, let duplicate):
            buffer.writeWireBool(duplicate)
            buffer.writeInteger(UInt32(messages.count))
            for message in messages { buffer.writeSent(message) }
        case .received(let messages):
            buffer.writeInteger(UInt32(messages.count))
            for message in messages { buffer.writeReceived(message) }
        case .acknowledged(let results):
            buffer.writeInteger(UInt32(results.count))
            for result in results {
                buffer.writeInteger(result?.code.number ?? 0)
                if let result { buffer.writeWireString(String(result.message.utf8.prefix(4096)) ?? "") }
            }
        case .producer(let producerID, let epoch):
            buffer.writeInteger(producerID)
            buffer.writeInteger(epoch)
        case .committed(let sends, let produced, let duplicate):
            buffer.writeWireBool(duplicate)
            buffer.writeInteger(UInt32(sends.count))
            for sent in sends {
                buffer.writeInteger(UInt32(sent.count))
                for message in sent { buffer.writeSent(message) }
            }
            buffer.writeInteger(UInt32(produced.count))
            for offsets in produced {
                buffer.writeInteger(UInt32(offsets.count))
                for offset in offsets {
                    buffer.writePartitionNumber(offset.partition)
                    buffer.writeInteger(offset.offset)
                }
            }
        case .topic(let created, let info):
            buffer.writeWireBool(created)
            buffer.writeTopicInfo(info)
        case .topics(let infos):
            buffer.writeInteger(UInt32(infos.count))
            for info in infos { buffer.writeTopicInfo(info) }
        case .produced(let offsets, let duplicate):
            buffer.writeWireBool(duplicate)
            buffer.writeInteger(UInt32(offsets.count))
            for offset in offsets {
                buffer.writePartitionNumber(offset.partition)
                buffer.writeInteger(offset.offset)
            }
        case .fetched(let result):
            buffer.writeInteger(result.highWatermark)
            buffer.writeInteger(result.logStart)
            buffer.writeFetched(result.messages)
        case .joined(let memberID, let assignment):
            buffer.writeWireString(memberID)
            buffer.writeAssignment(assignment)
        case .assignment(let assignment):
            buffer.writeAssignment(assignment)
        case .consumed(let messages, let assignment):
            buffer.writeAssignment(assignment)
            buffer.writeFetched(messages)
        case .group(let info):
            buffer.writeGroupInfo(info)
        case .cluster(let view):
            buffer.writeClusterView(view)
        case .metadata(let metadata):
            buffer.writeMetadata(metadata)
        case .snapshotChunk(let chunk):
            chunk.write(to: &buffer)
        case .error:
            preconditionFailure("handled above")
        }
    }

    /// Decodes the response in `frame`.
    /// - Throws: ``TernError`` with ``ErrorCode/invalidFrame`` when the payload does not match
    ///   the API, or ``ErrorCode/unsupportedVersion`` for an unknown API key.
    public init(decoding frame: WireFrame) throws(TernError) {
        var r = WireReader(frame.payload)
        let number: UInt16 = try r.read(UInt16.self, "error number")
        if number != 0 {
            let message = try r.readString("error message")
            let code = ErrorCode.registered(number: number) ?? .internalError
            self = .error(TernError(code, code.number == number ? message : "error \(number): \(message)"))
            try r.expectEnd("the error")
            return
        }
        guard let api = WireAPI(rawValue: frame.apiKey) else {
            throw TernError(.unsupportedVersion, "response for unknown API key \(frame.apiKey)")
        }
        switch api {
        case .apiVersions:
            let broker = try r.readString("broker")
            let count = try r.readCount("API count", minimumElementBytes: 6)
            var apis = [WireAPIVersions]()
            for _ in 0..<count {
                apis.append(WireAPIVersions(apiKey: try r.read(UInt16.self, "API key"), minVersion: try r.read(UInt16.self, "min version"),
                                            maxVersion: try r.read(UInt16.self, "max version")))
            }
            self = .apiVersions(broker: broker, apis: apis)
        case .createQueue, .describeQueue:
            self = .queue(created: try r.readBool("created"), try r.readQueueInfo())
        case .listQueues:
            let count = try r.readCount("queue count", minimumElementBytes: 8)
            var infos = [QueueInfo]()
            for _ in 0..<count { infos.append(try r.readQueueInfo()) }
            self = .queues(infos)
        case .deleteQueue, .changeVisibility, .beginTransaction, .abortTransaction, .authenticate,
             .deleteTopic, .leaveGroup, .commitOffsets, .resetOffsets, .peerHello, .raftBatch:
            self = .done
        case .purgeQueue, .redrive:
            self = .count(try r.read(UInt64.self, "count"))
        case .send:
            let duplicate = try r.readBool("duplicate")
            let count = try r.readCount("message count", minimumElementBytes: 32)
            var sent = [SentMessage]()
            sent.reserveCapacity(count)
            for _ in 0..<count { sent.append(try r.readSent()) }
            self = .sent(sent, duplicate: duplicate)
        case .receive:
            let count = try r.readCount("message count", minimumElementBytes: 16)
            var messages = [ReceivedMessage]()
            messages.reserveCapacity(count)
            for _ in 0..<count { messages.append(try r.readReceived()) }
            self = .received(messages)
        case .acknowledge:
            let count = try r.readCount("result count", minimumElementBytes: 2)
            var results = [TernError?]()
            results.reserveCapacity(count)
            for _ in 0..<count {
                let number: UInt16 = try r.read(UInt16.self, "error number")
                if number == 0 {
                    results.append(nil)
                } else {
                    let message = try r.readString("error message")
                    results.append(TernError(ErrorCode.registered(number: number) ?? .internalError, message))
                }
            }
            self = .acknowledged(results)
        case .initProducer:
            self = .producer(producerID: try r.read(UInt64.self, "producer id"), epoch: try r.read(UInt32.self, "epoch"))
        case .commitTransaction:
            let duplicate = try r.readBool("duplicate")
            let count = try r.readCount("send count", minimumElementBytes: 4)
            var sends = [[SentMessage]]()
            for _ in 0..<count {
                let inner = try r.readCount("message count", minimumElementBytes: 32)
                var sent = [SentMessage]()
                for _ in 0..<inner { sent.append(try r.readSent()) }
                sends.append(sent)
            }
            let produceCount = try r.readCount("produce count", minimumElementBytes: 4)
            var produced = [[TopicOffset]]()
            for _ in 0..<produceCount {
                let inner = try r.readCount("offset count", minimumElementBytes: 12)
                var offsets = [TopicOffset]()
                for _ in 0..<inner {
                    offsets.append(TopicOffset(partition: try r.readPartitionNumber(), offset: try r.read(UInt64.self, "offset")))
                }
                produced.append(offsets)
            }
            self = .committed(sends, produced: produced, duplicate: duplicate)
        case .createTopic, .describeTopic:
            self = .topic(created: try r.readBool("created"), try r.readTopicInfo())
        case .listTopics:
            let count = try r.readCount("topic count", minimumElementBytes: 19)
            var infos = [TopicInfo]()
            for _ in 0..<count { infos.append(try r.readTopicInfo()) }
            self = .topics(infos)
        case .produce:
            let duplicate = try r.readBool("duplicate")
            let count = try r.readCount("offset count", minimumElementBytes: 12)
            var offsets = [TopicOffset]()
            offsets.reserveCapacity(count)
            for _ in 0..<count {
                offsets.append(TopicOffset(partition: try r.readPartitionNumber(), offset: try r.read(UInt64.self, "offset")))
            }
            self = .produced(offsets, duplicate: duplicate)
        case .fetch:
            let highWatermark: UInt64 = try r.read(UInt64.self, "high watermark")
            let logStart: UInt64 = try r.read(UInt64.self, "log start")
            self = .fetched(FetchResult(messages: try r.readFetched(), highWatermark: highWatermark, logStart: logStart))
        case .joinGroup:
            self = .joined(memberID: try r.readString("member id"), try r.readAssignment())
        case .heartbeat:
            self = .assignment(try r.readAssignment())
        case .groupConsume:
            let assignment = try r.readAssignment()
            self = .consumed(try r.readFetched(), assignment)
        case .describeGroup:
            self = .group(try r.readGroupInfo())
        case .describeCluster:
            self = .cluster(try r.readClusterView())
        case .metadata:
            self = .metadata(try r.readMetadata())
        case .snapshotChunk:
            self = .snapshotChunk(try r.readSnapshotChunk())
        case .forward:
            // The payload is the forwarded request's response: decode it with that request's key.
            throw TernError(.invalidFrame, "a Forward answer is decoded with the forwarded request's API key")
        }
        try r.expectEnd("the \(api) response")
    }
}
