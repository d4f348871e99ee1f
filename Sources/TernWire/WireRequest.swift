public import NIOCore
public import TernCore

/// A request of the binary protocol, decoded. Queue names travel as strings and are validated
/// by the broker (an invalid name is an `InvalidName` error response, not a bad frame).
public enum WireRequest: Sendable, Hashable {
    /// Version negotiation; the first request on every connection.
    case apiVersions(clientName: String)
    case createQueue(name: String, patch: QueueAttributes.Patch)
    case describeQueue(name: String)
    case listQueues
    case deleteQueue(name: String)
    case purgeQueue(name: String)
    case redrive(name: String)
    /// Stores `messages` in `queue`, all or nothing; with a `producer` stamp the send is idempotent.
    case send(queue: String, producer: WireProducerStamp?, messages: [OutgoingMessage])
    /// - Parameters: `visibilityTimeout` in seconds (nil = the queue's), `waitTime` in seconds (0–20).
    case receive(queue: String, maxMessages: UInt16, visibilityTimeout: UInt32?, waitTime: UInt8, autoAcknowledge: Bool)
    /// Acknowledges each handle independently; the response carries one result per handle.
    case acknowledge(queue: String, receiptHandles: [String])
    /// - Parameter visibilityTimeout: seconds from now; 0 releases the message.
    case changeVisibility(queue: String, receiptHandle: String, visibilityTimeout: UInt32)
    /// A producer id and epoch; with a transactional id, fences earlier producers of that id.
    case initProducer(transactionalID: String?)
    /// Checks that the producer may still write (not fenced, not expired).
    case beginTransaction(producerID: UInt64, epoch: UInt32)
    case commitTransaction(WireTransaction)
    case abortTransaction(producerID: UInt64, epoch: UInt32)
    /// The bearer token the connection's later requests are authorized with; sent right after
    /// `ApiVersions` when the broker has authentication on.
    case authenticate(token: String)

    // Topics and consumer groups. Topic and group names are plain strings (validated by the
    // broker: `InvalidName`), so an authorization layer can read them without the broker.

    /// Creates `name` (attributes from `patch` over the defaults) or updates its retention and max bytes.
    case createTopic(name: String, patch: TopicAttributes.Patch)
    case describeTopic(name: String)
    case listTopics
    case deleteTopic(name: String)
    /// Appends `messages` (1–1,000) to `topic`, all or nothing; with a `producer` stamp the
    /// produce is idempotent (sequences count messages per producer and topic).
    case produce(topic: String, producer: WireProducerStamp?, messages: [TopicMessage])
    /// Reads up to `maxMessages` (1–1,000) of one partition from `offset` (nil = the log start),
    /// waiting up to `waitTime` seconds (0–20) for the first.
    case fetch(topic: String, partition: UInt32, offset: UInt64?, maxMessages: UInt16, waitTime: UInt8)
    /// - Parameter sessionTimeout: seconds without a heartbeat after which the member is removed (1–300).
    case joinGroup(topic: String, group: String, sessionTimeout: UInt32)
    case heartbeat(topic: String, group: String, memberID: String)
    case leaveGroup(topic: String, group: String, memberID: String)
    /// Reads up to `maxMessages` (1–1,000) from the member's partitions, waiting up to `waitTime`
    /// seconds (0–20) for the first; counts as a heartbeat.
    case groupConsume(topic: String, group: String, memberID: String, maxMessages: UInt16, waitTime: UInt8)
    /// Commits `offsets` (partition → next offset to consume) in `generation`.
    case commitOffsets(topic: String, group: String, memberID: String, generation: UInt32, offsets: [Int: UInt64])
    /// Moves every committed offset of a group without members.
    case resetOffsets(topic: String, group: String, to: OffsetReset)
    case describeGroup(topic: String, group: String)
    /// The gossip membership view of the answering node.
    case describeCluster
    /// Who leads each replication group and where the nodes listen (``WireMetadata``).
    case metadata
    /// Node to node: the first frame of a peer connection after `ApiVersions`; answered with
    /// ``WireResponse/done`` or an error.
    case peerHello(WirePeerHello)
    /// Node to node: Raft messages; no answer unless refused.
    case raftBatch(WireRaftBatch)
    /// Node to node: one chunk of a snapshot; answered with ``WireResponse/snapshotChunk(_:)``.
    case snapshotChunk(WireSnapshotChunkRequest)
    /// Node to node: a client's request forwarded by a follower to the leader (``WireForward``);
    /// answered with the forwarded request's response payload.
    case forward(WireForward)

    /// The API this request belongs to.
    public var api: WireAPI {
        switch self {
        case .apiVersions: .apiVersions
        case .createQueue: .createQueue
        case .describeQueue: .describeQueue
        case .listQueues: .listQueues
        case .deleteQueue: .deleteQueue
        case .purgeQueue: .purgeQueue
        case .redrive: .redrive
        case .send: .send
        case .receive: .receive
        case .acknowledge: .acknowledge
        case .changeVisibility: .changeVisibility
        case .initProducer: .initProducer
        case .beginTransaction: .beginTransaction
        case .commitTransaction: .commitTransaction
        case .abortTransaction: .abortTransaction
        case .authenticate: .authenticate
        case .createTopic: .createTopic
        case .describeTopic: .describeTopic
        case .listTopics: .listTopics
        case .deleteTopic: .deleteTopic
        case .produce: .produce
        case .fetch: .fetch
        case .joinGroup: .joinGroup
        case .heartbeat: .heartbeat
        case .leaveGroup: .leaveGroup
        case .groupConsume: .groupConsume
        case .commitOffsets: .commitOffsets
        case .resetOffsets: .resetOffsets
        case .describeGroup: .describeGroup
        case .describeCluster: .describeCluster
        case .metadata: .metadata
        case .peerHello: .peerHello
        case .raftBatch: .raftBatch
        case .snapshotChunk: .snapshotChunk
        case .forward: .forward
        }
    }

    /// The request as a frame with `correlationID` (version 0).
    public func frame(correlationID: UInt32, allocator: ByteBufferAllocator = ByteBufferAllocator()) -> WireFrame {
        var payload = allocator.buffer(capacity: estimatedPayloadBytes)
        encodePayload(into: &payload)
        return WireFrame(apiKey: api.rawValue, apiVersion: 0, correlationID: correlationID, payload: payload)
    }

    /// About the bytes ``encodePayload(into:)`` writes (a batch then fills one allocation).
    var estimatedPayloadBytes: Int {
        switch self {
        case .send(let queue, _, let messages):
            return messages.reduce(64 + queue.utf8.count) { $0 + 32 + $1.body.count + ($1.groupID?.utf8.count ?? 0) + ($1.deduplicationID?.utf8.count ?? 0) }
        case .acknowledge(let queue, let handles):
            return handles.reduce(16 + queue.utf8.count) { $0 + 4 + $1.utf8.count }
        case .produce(let topic, _, let messages):
            return messages.reduce(64 + topic.utf8.count) { $0 + 24 + $1.value.count + ($1.key?.count ?? 0) }
        case .raftBatch(let batch):
            return batch.payloadBytes
        case .forward(let forward):
            return 16 + (forward.token?.utf8.count ?? 0) + forward.payload.readableBytes
        default:
            return 64
        }
    }

    /// Writes the payload (the bytes after the frame header).
    public func encodePayload(into buffer: inout ByteBuffer) {
        switch self {
        case .apiVersions(let clientName):
            buffer.writeWireString(clientName)
        case .createQueue(let name, let patch):
            buffer.writeWireString(name)
            buffer.writePatch(patch)
        case .describeQueue(let name), .deleteQueue(let name), .purgeQueue(let name), .redrive(let name):
            buffer.writeWireString(name)
        case .listQueues, .describeCluster, .metadata:
            break
        case .send(let queue, let producer, let messages):
            buffer.writeWireString(queue)
            buffer.writeProducerStamp(producer)
            buffer.writeInteger(UInt32(messages.count))
            for message in messages { buffer.writeOutgoing(message) }
        case .receive(let queue, let maxMessages, let visibilityTimeout, let waitTime, let autoAcknowledge):
            buffer.writeWireString(queue)
            buffer.writeInteger(maxMessages)
            buffer.writeWireOptional(visibilityTimeout) { $0.writeInteger($1) }
            buffer.writeInteger(waitTime)
            buffer.writeWireBool(autoAcknowledge)
        case .acknowledge(let queue, let receiptHandles):
            buffer.writeWireString(queue)
            buffer.writeInteger(UInt32(receiptHandles.count))
            for handle in receiptHandles { buffer.writeWireString(handle) }
        case .changeVisibility(let queue, let receiptHandle, let visibilityTimeout):
            buffer.writeWireString(queue)
            buffer.writeWireString(receiptHandle)
            buffer.writeInteger(visibilityTimeout)
        case .initProducer(let transactionalID):
            buffer.writeWireOptional(transactionalID) { $0.writeWireString($1) }
        case .authenticate(let token):
            buffer.writeWireString(token)
        case .beginTransaction(let producerID, let epoch), .abortTransaction(let producerID, let epoch):
            buffer.writeInteger(producerID)
            buffer.writeInteger(epoch)
        case .commitTransaction(let transaction):
            buffer.writeInteger(transaction.producerID)
            buffer.writeInteger(transaction.epoch)
            buffer.writeInteger(transaction.transactionSequence)
            buffer.writeInteger(UInt32(transaction.sends.count))
            for send in transaction.sends {
                buffer.writeWireString(send.queue)
                buffer.writeInteger(UInt32(send.messages.count))
                for message in send.messages { buffer.writeOutgoing(message) }
            }
            buffer.writeInteger(UInt32(transaction.acknowledgements.count))
            for ack in transaction.acknowledgements {
                buffer.writeWireString(ack.queue)
                buffer.writeWireString(ack.receiptHandle)
            }
            buffer.writeInteger(UInt32(transaction.offsets.count))
            for offset in transaction.offsets {
                buffer.writeWireString(offset.topic)
                buffer.writeWireString(offset.group)
                buffer.writeInteger(offset.partition)
                buffer.writeInteger(offset.offset)
                buffer.writeWireOptional(offset.member) { buffer, member in
                    buffer.writeWireString(member.id)
                    buffer.writeInteger(member.generation)
                }
            }
            buffer.writeInteger(UInt32(transaction.produces.count))
            for produce in transaction.produces {
                buffer.writeWireString(produce.topic)
                buffer.writeInteger(UInt32(produce.messages.count))
                for message in produce.messages { buffer.writeTopicMessage(message) }
            }
        case .createTopic(let name, let patch):
            buffer.writeWireString(name)
            buffer.writeTopicPatch(patch)
        case .describeTopic(let name), .deleteTopic(let name):
            buffer.writeWireString(name)
        case .listTopics:
            break
        case .produce(let topic, let producer, let messages):
            buffer.writeWireString(topic)
            buffer.writeProducerStamp(producer)
            buffer.writeInteger(UInt32(messages.count))
            for message in messages { buffer.writeTopicMessage(message) }
        case .fetch(let topic, let partition, let offset, let maxMessages, let waitTime):
            buffer.writeWireString(topic)
            buffer.writeInteger(partition)
            buffer.writeWireOptional(offset) { $0.writeInteger($1) }
            buffer.writeInteger(maxMessages)
            buffer.writeInteger(waitTime)
        case .joinGroup(let topic, let group, let sessionTimeout):
            buffer.writeWireString(topic)
            buffer.writeWireString(group)
            buffer.writeInteger(sessionTimeout)
        case .heartbeat(let topic, let group, let memberID), .leaveGroup(let topic, let group, let memberID):
            buffer.writeWireString(topic)
            buffer.writeWireString(group)
            buffer.writeWireString(memberID)
        case .groupConsume(let topic, let group, let memberID, let maxMessages, let waitTime):
            buffer.writeWireString(topic)
            buffer.writeWireString(group)
            buffer.writeWireString(memberID)
            buffer.writeInteger(maxMessages)
            buffer.writeInteger(waitTime)
        case .commitOffsets(let topic, let group, let memberID, let generation, let offsets):
            buffer.writeWireString(topic)
            buffer.writeWireString(group)
            buffer.writeWireString(memberID)
            buffer.writeInteger(generation)
            buffer.writeInteger(UInt32(offsets.count))
            for (partition, offset) in offsets.sorted(by: { $0.key < $1.key }) {
                buffer.writePartitionNumber(partition)
                buffer.writeInteger(offset)
            }
        case .resetOffsets(let topic, let group, let target):
            buffer.writeWireString(topic)
            buffer.writeWireString(group)
            buffer.writeOffsetReset(target)
        case .describeGroup(let topic, let group):
            buffer.writeWireString(topic)
            buffer.writeWireString(group)
        case .peerHello(let hello):
            hello.write(to: &buffer)
        case .raftBatch(let batch):
            batch.write(to: &buffer)
        case .snapshotChunk(let request):
            request.write(to: &buffer)
        case .forward(let forward):
            forward.write(to: &buffer)
        }
    }

    /// Decodes the request carried by `frame`.
    /// - Throws: ``TernError`` with ``ErrorCode/unsupportedVersion`` for an unknown API key or
    ///   version; ``ErrorCode/invalidFrame`` for a truncated payload, trailing bytes, invalid
    ///   UTF-8 or out-of-range markers; ``ErrorCode/invalidAttribute`` for an invalid
    ///   dead-letter queue name in a create request.
    public init(decoding frame: WireFrame) throws(TernError) {
        guard let api = WireAPI(rawValue: frame.apiKey) else {
            throw TernError(.unsupportedVersion, "unknown API key \(frame.apiKey)")
        }
        guard api.supportedVersions.contains(frame.apiVersion) else {
            throw TernError(.unsupportedVersion, "\(api) version \(frame.apiVersion) is not supported (supported: \(api.supportedVersions))")
        }
        var r = WireReader(frame.payload)
        switch api {
        case .apiVersions:
            self = .apiVersions(clientName: try r.readString("client name"))
        case .createQueue:
            let name = try r.readString("queue name")
            self = .createQueue(name: name, patch: try r.readPatch())
        case .describeQueue: self = .describeQueue(name: try r.readString("queue name"))
        case .listQueues: self = .listQueues
        case .describeCluster: self = .describeCluster
        case .metadata: self = .metadata
        case .deleteQueue: self = .deleteQueue(name: try r.readString("queue name"))
        case .purgeQueue: self = .purgeQueue(name: try r.readString("queue name"))
        case .redrive: self = .redrive(name: try r.readString("queue name"))
        case .send:
            let queue = try r.readString("queue name")
            let producer = try r.readProducerStamp()
            let count = try r.readCount("message count", minimumElementBytes: 8)
            var messages = [OutgoingMessage]()
            messages.reserveCapacity(count)
            for _ in 0..<count { messages.append(try r.readOutgoing()) }
            self = .send(queue: queue, producer: producer, messages: messages)
        case .receive:
            let queue = try r.readString("queue name")
            let maxMessages: UInt16 = try r.read(UInt16.self, "max messages")
            let visibilityTimeout = try r.readOptional("visibility timeout") { (r: inout WireReader) throws(TernError) in try r.read(UInt32.self, "visibility timeout") }
            let waitTime: UInt8 = try r.read(UInt8.self, "wait time")
            self = .receive(queue: queue, maxMessages: maxMessages, visibilityTimeout: visibilityTimeout, waitTime: waitTime,
                            autoAcknowledge: try r.readBool("auto acknowledge"))
        case .acknowledge:
            let queue = try r.readString("queue name")
            let count = try r.readCount("handle count", minimumElementBytes: 2)
            var handles = [String]()
            handles.reserveCapacity(count)
            for _ in 0..<count { handles.append(try r.readString("receipt handle")) }
            self = .acknowledge(queue: queue, receiptHandles: handles)
        case .changeVisibility:
            self = .changeVisibility(queue: try r.readString("queue name"), receiptHandle: try r.readString("receipt handle"),
                                     visibilityTimeout: try r.read(UInt32.self, "visibility timeout"))
        case .initProducer:
            self = .initProducer(transactionalID: try r.readOptional("transactional id") { (r: inout WireReader) throws(TernError) in try r.readString("transactional id") })
        case .authenticate:
            self = .authenticate(token: try r.readString("token"))
        case .beginTransaction:
            self = .beginTransaction(producerID: try r.read(UInt64.self, "producer id"), epoch: try r.read(UInt32.self, "epoch"))
        case .abortTransaction:
            self = .abortTransaction(producerID: try r.read(UInt64.self, "producer id"), epoch: try r.read(UInt32.self, "epoch"))
        case .commitTransaction:
            var transaction = WireTransaction(producerID: try r.read(UInt64.self, "producer id"), epoch: try r.read(UInt32.self, "epoch"),
                                              transactionSequence: try r.read(UInt64.self, "transaction sequence"))
            let sendCount = try r.readCount("send count", minimumElementBytes: 6)
            for _ in 0..<sendCount {
                let queue = try r.readString("queue name")
                let count = try r.readCount("message count", minimumElementBytes: 8)
                var messages = [OutgoingMessage]()
                messages.reserveCapacity(count)
                for _ in 0..<count { messages.append(try r.readOutgoing()) }
                transaction.sends.append(.init(queue: queue, messages: messages))
            }
            let ackCount = try r.readCount("acknowledgement count", minimumElementBytes: 4)
            for _ in 0..<ackCount {
                transaction.acknowledgements.append(.init(queue: try r.readString("queue name"), receiptHandle: try r.readString("receipt handle")))
            }
            let offsetCount = try r.readCount("offset count", minimumElementBytes: 17)
            for _ in 0..<offsetCount {
                let topic = try r.readString("topic")
                let group = try r.readString("group")
                let partition = try r.read(UInt32.self, "partition")
                let offset = try r.read(UInt64.self, "offset")
                let member = try r.readOptional("member") { (r: inout WireReader) throws(TernError) in
                    (id: try r.readString("member id"), generation: try r.read(UInt32.self, "generation"))
                }
                transaction.offsets.append(.init(topic: topic, group: group, partition: partition, offset: offset, member: member))
            }
            let produceCount = try r.readCount("produce count", minimumElementBytes: 6)
            for _ in 0..<produceCount {
                let topic = try r.readString("topic")
                let count = try r.readCount("record count", minimumElementBytes: 6)
                var messages = [TopicMessage]()
                messages.reserveCapacity(count)
                for _ in 0..<count { messages.append(try r.readTopicMessage()) }
                transaction.produces.append(.init(topic: topic, messages: messages))
            }
            self = .commitTransaction(transaction)
        case .createTopic:
            let name = try r.readString("topic name")
            self = .createTopic(name: name, patch: try r.readTopicPatch())
        case .describeTopic: self = .describeTopic(name: try r.readString("topic name"))
        case .listTopics: self = .listTopics
        case .deleteTopic: self = .deleteTopic(name: try r.readString("topic name"))
        case .produce:
            let topic = try r.readString("topic name")
            let producer = try r.readProducerStamp()
            let count = try r.readCount("message count", minimumElementBytes: 6)
            var messages = [TopicMessage]()
            messages.reserveCapacity(count)
            for _ in 0..<count { messages.append(try r.readTopicMessage()) }
            self = .produce(topic: topic, producer: producer, messages: messages)
        case .fetch:
            let topic = try r.readString("topic name")
            let partition: UInt32 = try r.read(UInt32.self, "partition")
            let offset = try r.readOptional("offset") { (r: inout WireReader) throws(TernError) in try r.read(UInt64.self, "offset") }
            let maxMessages: UInt16 = try r.read(UInt16.self, "max messages")
            self = .fetch(topic: topic, partition: partition, offset: offset, maxMessages: maxMessages,
                          waitTime: try r.read(UInt8.self, "wait time"))
        case .joinGroup:
            self = .joinGroup(topic: try r.readString("topic name"), group: try r.readString("group name"),
                              sessionTimeout: try r.read(UInt32.self, "session timeout"))
        case .heartbeat:
            self = .heartbeat(topic: try r.readString("topic name"), group: try r.readString("group name"),
                              memberID: try r.readString("member id"))
        case .leaveGroup:
            self = .leaveGroup(topic: try r.readString("topic name"), group: try r.readString("group name"),
                               memberID: try r.readString("member id"))
        case .groupConsume:
            let topic = try r.readString("topic name")
            let group = try r.readString("group name")
            let memberID = try r.readString("member id")
            let maxMessages: UInt16 = try r.read(UInt16.self, "max messages")
            self = .groupConsume(topic: topic, group: group, memberID: memberID, maxMessages: maxMessages,
                                 waitTime: try r.read(UInt8.self, "wait time"))
        case .commitOffsets:
            let topic = try r.readString("topic name")
            let group = try r.readString("group name")
            let memberID = try r.readString("member id")
            let generation: UInt32 = try r.read(UInt32.self, "generation")
            let count = try r.readCount("offset count", minimumElementBytes: 12)
            var offsets = [Int: UInt64]()
            for _ in 0..<count {
                let partition = try r.readPartitionNumber()
                let offset: UInt64 = try r.read(UInt64.self, "offset")
                guard offsets.updateValue(offset, forKey: partition) == nil else {
                    throw TernError(.invalidFrame, "offsets name partition \(partition) twice")
                }
            }
            self = .commitOffsets(topic: topic, group: group, memberID: memberID, generation: generation, offsets: offsets)
        case .resetOffsets:
            self = .resetOffsets(topic: try r.readString("topic name"), group: try r.readString("group name"), to: try r.readOffsetReset())
        case .describeGroup:
            self = .describeGroup(topic: try r.readString("topic name"), group: try r.readString("group name"))
        case .peerHello:
            self = .peerHello(try r.readPeerHello())
        case .raftBatch:
            self = .raftBatch(try r.readRaftBatch())
        case .snapshotChunk:
            self = .snapshotChunk(try r.readSnapshotChunkRequest())
        case .forward:
            self = .forward(try r.readForward())
        }
        try r.expectEnd("the \(api) request")
    }
}

extension ByteBuffer {
    /// `optional<(u64 producer id, u32 epoch, u64 first sequence)>`.
    mutating func writeProducerStamp(_ stamp: WireProducerStamp?) {
        writeWireOptional(stamp) { buffer, stamp in
            buffer.writeInteger(stamp.producerID)
            buffer.writeInteger(stamp.epoch)
            buffer.writeInteger(stamp.firstSequence)
        }
    }
}

extension WireReader {
    mutating func readProducerStamp() throws(TernError) -> WireProducerStamp? {
        try readOptional("producer") { (r: inout WireReader) throws(TernError) in
            WireProducerStamp(producerID: try r.read(UInt64.self, "producer id"), epoch: try r.read(UInt32.self, "epoch"),
                              firstSequence: try r.read(UInt64.self, "first sequence"))
        }
    }
}
