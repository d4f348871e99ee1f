import Foundation
import NIOSSL
import TernClient
import TernCore
import TernWire

/// The commands' calls over ternd's binary protocol, through one pipelined `TernClient` connection.
///
/// Answers are converted to the HTTP API's shapes (``API``, ``TopicAPI``, the description JSON
/// of `GET /queues/{name}` and `GET /topics/{name}`) so that output does not depend on the
/// transport. Broker errors become ``ClientError/server(status:code:message:)`` with the code's
/// HTTP status, as the HTTP API would have answered.
struct BinaryBrokerClient: BrokerTransport {
    /// `tern://host:port` or `tern+tls://host:port`.
    let server: String
    private let client: TernClient
    /// Stamps `tern topic produce` batches so that a retried batch is stored once.
    private let sequencer = TopicSequencer()

    /// - Parameters:
    ///   - token: presented with `Authenticate` on the connection; nil without authentication.
    ///   - tls: whether to connect over TLS.
    ///   - trustRoots: the CA certificates the broker's certificate must chain to; nil = the system's.
    init(host: String, port: Int, token: String?, tls: Bool, trustRoots: [NIOSSLCertificate]?) {
        let printedHost = host.contains(":") ? "[\(host)]" : host
        server = (tls ? "tern+tls://" : "tern://") + "\(printedHost):\(port)"
        var settings = TernClient.Settings()
        settings.clientName = "tern-cli/0.1"
        settings.token = token
        // As much as the HTTP path accepts in one answer (a receive of 1,000 large messages).
        settings.wire.maxFrameBytes = 512 << 20
        if tls {
            var configuration = TLSConfiguration.makeClientConfiguration()
            if let trustRoots { configuration.trustRoots = .certificates(trustRoots) }
            settings.tls = configuration
        }
        // Reconnect attempts are the commands' business (they retry where retrying makes sense).
        client = TernClient(host: host, port: port, settings: settings)
    }

    func shutdown() async {
        await client.close()
    }

    // MARK: Queues

    func createQueue(_ name: String, attributes: API.QueueAttributes) async throws -> Bool {
        var patch = QueueAttributes.Patch()
        patch.visibilityTimeout = attributes.visibilityTimeout
        patch.retention = attributes.retention
        patch.maxMessageBytes = attributes.maxMessageBytes
        patch.delay = attributes.delay
        // Set only what was given: assigning a nil `Int?` to an `Int??` would turn the attribute off.
        if let value = attributes.maxReceiveCount { patch.maxReceiveCount = .some(value) }
        if let value = attributes.deadLetterQueue {
            do {
                patch.deadLetterQueue = .some(try QueueName(value))
            } catch {
                throw ClientError.server(status: ErrorCode.invalidAttribute.httpStatus, code: ErrorCode.invalidAttribute.name,
                                         message: "dead_letter_queue: \(error.message)")
            }
        }
        patch.fifo = attributes.fifo
        if let value = attributes.maxMessages { patch.maxMessages = .some(value) }
        if let value = attributes.maxBytes { patch.maxBytes = .some(value) }
        let client = self.client
        return try await perform { () async throws(TernError) in try await client.createQueue(name, patch: patch).created }
    }

    func listQueues() async throws -> [API.QueueDescription] {
        let client = self.client
        let infos = try await perform { () async throws(TernError) in try await client.listQueues() }
        let now = SystemClock().now
        return infos.map { Self.description($0, now: now) }
    }

    func clusterMembers() async throws -> API.ClusterMembers {
        let client = self.client
        return API.ClusterMembers(try await perform { () async throws(TernError) in try await client.describeCluster() })
    }

    func addReplica(_ node: String) async throws -> API.Replicas {
        throw ClientError.input("membership changes are served over HTTP (PUT /cluster/replicas/NODE): pass --server http://HOST:PORT")
    }

    func removeReplica(_ node: String) async throws -> API.Replicas {
        throw ClientError.input("membership changes are served over HTTP (DELETE /cluster/replicas/NODE): pass --server http://HOST:PORT")
    }

    func clusterStatus() async throws -> API.ClusterStatus {
        throw ClientError.input("cluster status is served over HTTP (GET /cluster): pass --server http://HOST:PORT")
    }

    func describeQueue(_ name: String) async throws -> JSONValue {
        let client = self.client
        let info = try await perform { () async throws(TernError) in try await client.describeQueue(name) }
        return try Self.json(QueueDescriptionJSON(info, now: SystemClock().now))
    }

    func deleteQueue(_ name: String) async throws {
        let client = self.client
        try await perform { () async throws(TernError) in try await client.deleteQueue(name) }
    }

    func purgeQueue(_ name: String) async throws -> Int {
        let client = self.client
        return Int(clamping: try await perform { () async throws(TernError) in try await client.purgeQueue(name) })
    }

    func redrive(_ deadLetterQueue: String) async throws -> Int {
        let client = self.client
        return Int(clamping: try await perform { () async throws(TernError) in try await client.redrive(deadLetterQueue) })
    }

    // MARK: Messages

    func send(_ message: API.SendRequest, to queue: String) async throws -> API.SendResult {
        let outgoing = try Self.outgoing(message)
        let client = self.client
        let sent = try await perform { () async throws(TernError) in try await client.send([outgoing], to: queue) }
        guard let first = sent.first else {
            throw ClientError.unexpectedResponse(status: 200, detail: "the broker answered a send without a result")
        }
        return API.SendResult(id: first.id.description, sequence: first.sequence, visibleAt: Int64(clamping: first.visibleAt.milliseconds))
    }

    func send(batch messages: [API.SendRequest], to queue: String) async throws -> Int {
        let outgoing = try messages.map(Self.outgoing)
        let client = self.client
        return try await perform { () async throws(TernError) in try await client.send(outgoing, to: queue) }.count
    }

    func receive(from queue: String, maxMessages: Int, visibilityTimeout: Int?, waitTime: Int?,
                 autoAcknowledge: Bool) async throws -> [API.ReceivedMessage] {
        let client = self.client
        let messages = try await perform { () async throws(TernError) in
            try await client.receive(from: queue, maxMessages: maxMessages, visibilityTimeout: visibilityTimeout,
                                     waitTime: waitTime ?? 0, autoAcknowledge: autoAcknowledge)
        }
        return messages.map { message in
            // Decoded as the HTTP API does, so that both transports print the same bytes.
            API.ReceivedMessage(id: message.id.description, body: String(decoding: message.body, as: UTF8.self),
                                receiptHandle: message.receiptHandle, receiveCount: Int(message.receiveCount),
                                priority: Int(message.priority), sentAt: Int64(clamping: message.sentAt.milliseconds))
        }
    }

    /// `Acknowledge` requests of up to 1,000 handles; the first handle that failed is thrown.
    func acknowledge(_ receiptHandles: [String], on queue: String) async throws {
        let client = self.client
        var start = 0
        while start < receiptHandles.count {
            let chunk = Array(receiptHandles[start..<min(start + 1000, receiptHandles.count)])
            start += chunk.count
            let results = try await perform { () async throws(TernError) in try await client.acknowledge(chunk, on: queue) }
            if let failure = results.lazy.compactMap({ $0 }).first { throw Self.classify(failure, server: server) }
        }
    }

    func changeVisibility(_ receiptHandle: String, on queue: String, to seconds: Int) async throws {
        let client = self.client
        try await perform { () async throws(TernError) in try await client.changeVisibility(receiptHandle, on: queue, to: seconds) }
    }

    // MARK: Topics

    func createTopic(_ name: String, attributes: TopicAPI.Attributes) async throws -> Bool {
        var patch = TopicAttributes.Patch(partitions: attributes.partitions, retention: attributes.retention)
        if let value = attributes.maxBytes { patch.maxBytes = .some(value) }
        let client = self.client
        return try await perform { () async throws(TernError) in try await client.createTopic(name, patch: patch).created }
    }

    func listTopics() async throws -> [TopicAPI.Description] {
        let client = self.client
        let infos = try await perform { () async throws(TernError) in try await client.listTopics() }
        return infos.map { info in
            let json = TopicDescriptionJSON(info)
            return TopicAPI.Description(
                name: info.name.rawValue,
                attributes: TopicAPI.Attributes(partitions: info.partitions.count, retention: info.attributes.retention,
                                                maxBytes: info.attributes.maxBytes),
                messages: json.messages, bytes: json.bytes,
                partitions: info.partitions.map {
                    TopicAPI.Partition(partition: $0.partition, logStart: $0.logStart, highWatermark: $0.highWatermark, bytes: $0.bytes)
                })
        }
    }

    func describeTopic(_ name: String) async throws -> JSONValue {
        let client = self.client
        let info = try await perform { () async throws(TernError) in try await client.describeTopic(name) }
        return try Self.json(TopicDescriptionJSON(info))
    }

    /// Idempotent over the binary protocol: a batch sent again after an error that left its
    /// fate unknown (the same messages, as the produce command retries them) carries the same
    /// sequence numbers, and the broker stores it once.
    func produce(_ messages: [TopicAPI.Message], to topic: String) async throws -> Int {
        let outgoing = messages.map { TopicMessage(key: $0.key.map { Array($0.utf8) }, value: Array($0.value.utf8)) }
        let client = self.client
        let sequencer = self.sequencer
        return try await perform { () async throws(TernError) in
            var attempt = 0
            while true {
                let stamp = try await sequencer.stamp(outgoing, topic: topic, client: client)
                do throws(TernError) {
                    guard case .produced(let offsets, _) = try await client.call(.produce(topic: topic, producer: stamp, messages: outgoing)) else {
                        throw TernError(.internalError, "unexpected answer to Produce")
                    }
                    await sequencer.succeeded()
                    return offsets
                } catch {
                    // An expired producer: start again with a new one (its sequences begin at 0).
                    guard error.code == .unknownProducer, attempt == 0 else {
                        await sequencer.failed(definitely: error.code != .unavailable)
                        throw error
                    }
                    await sequencer.reset()
                    attempt += 1
                }
            }
        }.count
    }

    func joinGroup(topic: String, group: String, sessionTimeout: Int) async throws -> TopicAPI.Join {
        let client = self.client
        let joined = try await perform { () async throws(TernError) in
            try await client.joinGroup(topic: topic, group: group, sessionTimeout: sessionTimeout)
        }
        return TopicAPI.Join(memberID: joined.memberID, generation: Int(joined.assignment.generation),
                             partitions: joined.assignment.partitions)
    }

    func consume(topic: String, group: String, memberID: String, max: Int, waitTime: Int) async throws -> TopicAPI.Batch {
        let client = self.client
        let answer = try await perform { () async throws(TernError) in
            try await client.consume(topic: topic, group: group, memberID: memberID, max: max, wait: waitTime)
        }
        return TopicAPI.Batch(
            messages: answer.messages.map {
                TopicAPI.Fetched(partition: $0.partition, offset: $0.offset, key: $0.key.map { String(decoding: $0, as: UTF8.self) },
                                 value: String(decoding: $0.value, as: UTF8.self))
            },
            generation: Int(answer.assignment.generation), partitions: answer.assignment.partitions)
    }

    func commitOffsets(_ offsets: [Int: UInt64], topic: String, group: String, memberID: String, generation: Int) async throws {
        guard let wireGeneration = UInt32(exactly: generation) else {
            throw ClientError.input("generation \(generation) is out of range")
        }
        let client = self.client
        try await perform { () async throws(TernError) in
            try await client.commitOffsets(offsets, topic: topic, group: group, memberID: memberID, generation: wireGeneration)
        }
    }

    func leaveGroup(topic: String, group: String, memberID: String) async throws {
        let client = self.client
        try await perform { () async throws(TernError) in try await client.leaveGroup(topic: topic, group: group, memberID: memberID) }
    }

    // MARK: Conversions

    /// Runs one client call and turns its ``TernError`` into a ``ClientError``.
    private func perform<T>(_ call: () async throws(TernError) -> T) async throws(ClientError) -> T {
        do {
            return try await call()
        } catch {
            throw Self.classify(error, server: server)
        }
    }

    /// A broker error as the HTTP path reports it; `Unavailable` raised by the client itself
    /// (no connection, or the connection was lost) as ``ClientError/unreachable(server:cause:)``
    /// or ``ClientError/transport(server:cause:)``.
    ///
    /// `TernClient` reports connection failures as `Unavailable` with a message naming them;
    /// the prefixes below are the ones `ClientConnection` uses.
    static func classify(_ error: TernError, server: String) -> ClientError {
        if error.code == .unavailable {
            let lowered = error.message.lowercased()
            if lowered.hasPrefix("cannot connect to ternd") || lowered.hasPrefix("the tls configuration") {
                return .unreachable(server: server, cause: shortCause(error.message))
            }
            if lowered.hasPrefix("connection to ") || lowered.hasPrefix("writing to ") || lowered.hasPrefix("the client closed") {
                return .transport(server: server, cause: shortCause(error.message))
            }
        }
        if error.code == .frameTooLarge && error.message.contains("frame of 1213486160 bytes") {
            // The first four bytes of the answer were "HTTP": an HTTP server, not the binary protocol.
            return .server(status: error.code.httpStatus, code: error.code.name,
                           message: "the server answered in HTTP; this looks like ternd's HTTP port: use http://host:port (the binary protocol listens on 7081 by default)")
        }
        if (error.code == .frameTooLarge || error.code == .invalidFrame) && !server.hasPrefix("tern+tls://") {
            // What a plain connection makes of a TLS listener's answer.
            return .server(status: error.code.httpStatus, code: error.code.name,
                           message: error.message + " (if ternd serves TLS, use tern+tls:// or --tls)")
        }
        return .server(status: error.code.httpStatus, code: error.code.name, message: error.message)
    }

    private static func shortCause(_ text: String) -> String {
        let lowered = text.lowercased()
        if lowered.contains("refused") { return "connection refused" }
        if lowered.contains("timed out") || lowered.contains("timeout") { return "connect timed out" }
        if lowered.contains("unknownhost") || lowered.contains("unknown host") || lowered.contains("name resolution")
            || lowered.contains("no address") {
            return "unknown host"
        }
        if lowered.contains("handshake") || lowered.contains("certificate") || lowered.contains("ssl") || lowered.contains("tls") {
            let hint = lowered.contains("wrong_version_number") ? " (does ternd serve TLS? without it, use tern://)" : ""
            return "TLS handshake failed: " + (text.count > 300 ? String(text.prefix(300)) + "…" : text) + hint
        }
        return text.count > 300 ? String(text.prefix(300)) + "…" : text
    }

    /// `request` as the client library's message.
    /// - Throws: ``ClientError/server(status:code:message:)`` `InvalidParameter` for a priority
    ///   the wire cannot carry (the broker checks 0–9 itself).
    private static func outgoing(_ request: API.SendRequest) throws(ClientError) -> OutgoingMessage {
        var priority: UInt8 = 0
        if let given = request.priority {
            guard let narrowed = UInt8(exactly: given) else {
                throw .server(status: ErrorCode.invalidParameter.httpStatus, code: ErrorCode.invalidParameter.name,
                              message: "priority must be 0–\(OutgoingMessage.maxPriority), got \(given)")
            }
            priority = narrowed
        }
        return OutgoingMessage(body: Array(request.message.utf8), priority: priority, delay: request.delay)
    }

    /// A queue as `GET /queues` describes it; the oldest message's age is measured against this
    /// machine's clock (the HTTP API measures against the broker's).
    private static func description(_ info: QueueInfo, now: Timestamp) -> API.QueueDescription {
        let a = info.attributes
        var attributes = API.QueueAttributes()
        attributes.visibilityTimeout = a.visibilityTimeout
        attributes.retention = a.retention
        attributes.maxMessageBytes = a.maxMessageBytes
        attributes.delay = a.delay
        attributes.maxReceiveCount = a.maxReceiveCount
        attributes.deadLetterQueue = a.deadLetterQueue?.rawValue
        attributes.fifo = a.fifo
        attributes.maxMessages = a.maxMessages
        attributes.maxBytes = a.maxBytes
        return API.QueueDescription(
            name: info.name.rawValue, attributes: attributes,
            messages: API.MessageCounts(ready: info.counts.ready, inFlight: info.counts.inFlight, delayed: info.counts.delayed,
                                        total: info.counts.total),
            bytes: info.counts.bytes, createdAt: Int64(clamping: info.createdAt.milliseconds),
            oldestMessageAge: info.oldestSentAt.map { max(0, $0.seconds(until: now)) })
    }

    /// `value` encoded and decoded again, so that it prints exactly as an HTTP answer of the same
    /// JSON would (numbers take the same path through `JSONEncoder` and ``JSONValue``).
    private static func json(_ value: some Encodable) throws -> JSONValue {
        try BrokerClient.decoder.decode(JSONValue.self, from: try BrokerClient.encoder.encode(value))
    }
}

/// The JSON of `GET /queues/{name}`, field for field as ternd's HTTP API writes it
/// (`QueueDescription` in `TernServer/ResponseBodies.swift`).
private struct QueueDescriptionJSON: Encodable {
    let info: QueueInfo
    let now: Timestamp

    init(_ info: QueueInfo, now: Timestamp) {
        self.info = info
        self.now = now
    }

    private struct Attributes: Encodable {
        let attributes: QueueAttributes

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: JSONKey.self)
            try c.encode(attributes.visibilityTimeout, forKey: "visibility_timeout")
            try c.encode(attributes.retention, forKey: "retention")
            try c.encode(attributes.maxMessageBytes, forKey: "max_message_bytes")
            try c.encode(attributes.delay, forKey: "delay")
            try c.encode(attributes.maxReceiveCount, forKey: "max_receive_count")
            try c.encode(attributes.deadLetterQueue?.rawValue, forKey: "dead_letter_queue")
            try c.encode(attributes.fifo, forKey: "fifo")
            try c.encode(attributes.maxMessages, forKey: "max_messages")
            try c.encode(attributes.maxBytes, forKey: "max_bytes")
            try c.encode(attributes.contentBasedDeduplication, forKey: "content_based_deduplication")
            try c.encode(attributes.overflow.rawValue, forKey: "overflow")
        }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: JSONKey.self)
        try c.encode(info.name.rawValue, forKey: "name")
        try c.encode(Attributes(attributes: info.attributes), forKey: "attributes")
        try c.encode(API.MessageCounts(ready: info.counts.ready, inFlight: info.counts.inFlight, delayed: info.counts.delayed,
                                       total: info.counts.total), forKey: "messages")
        try c.encode(info.counts.bytes, forKey: "bytes")
        try c.encode(info.createdAt.milliseconds, forKey: "created_at")
        try c.encode(info.oldestSentAt.map { max(0, $0.seconds(until: now)) }, forKey: "oldest_message_age")
    }
}

/// The JSON of `GET /topics/{name}`, field for field as ternd's HTTP API writes it
/// (`TopicDescription` in `TernServer/TopicsResponseBodies.swift`).
private struct TopicDescriptionJSON: Encodable {
    let info: TopicInfo
    /// Messages stored: high watermark − log start, summed over the partitions.
    let messages: UInt64
    /// Stored bytes of all partitions.
    let bytes: UInt64

    init(_ info: TopicInfo) {
        self.info = info
        messages = info.partitions.reduce(0) { $0 + ($1.highWatermark - $1.logStart) }
        bytes = info.partitions.reduce(0) { $0 + $1.bytes }
    }

    private struct Partition: Encodable {
        let partition: PartitionInfo

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: JSONKey.self)
            try c.encode(partition.partition, forKey: "partition")
            try c.encode(partition.logStart, forKey: "log_start")
            try c.encode(partition.highWatermark, forKey: "high_watermark")
            try c.encode(partition.bytes, forKey: "bytes")
            try c.encode(partition.batches, forKey: "batches")
        }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: JSONKey.self)
        try c.encode(info.name.rawValue, forKey: "name")
        var attributes = c.nestedContainer(keyedBy: JSONKey.self, forKey: "attributes")
        try attributes.encode(info.partitions.count, forKey: "partitions")
        try attributes.encode(info.attributes.retention, forKey: "retention")
        try attributes.encode(info.attributes.maxBytes, forKey: "max_bytes")
        try c.encode(info.createdAt.milliseconds, forKey: "created_at")
        try c.encode(messages, forKey: "messages")
        try c.encode(bytes, forKey: "bytes")
        try c.encode(info.partitions.map(Partition.init), forKey: "partitions")
    }
}

/// A JSON object key spelled out at the call site.
private struct JSONKey: CodingKey, ExpressibleByStringLiteral {
    let stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
    init(stringLiteral value: String) { stringValue = value }
}

/// The producer id and sequence numbers of `tern topic produce` over the binary protocol
/// (Kafka's idempotent producer, decision 30): one producer per command, sequences counted per
/// topic, and the batch whose answer was lost sent again with the same numbers.
actor TopicSequencer {
    private var identity: (producerID: UInt64, epoch: UInt32)?
    private var next: [String: UInt64] = [:]
    /// The batch in flight or whose fate is unknown: its messages, topic and first sequence.
    private var pending: (messages: [TopicMessage], topic: String, first: UInt64)?

    func stamp(_ messages: [TopicMessage], topic: String, client: TernClient) async throws(TernError) -> WireProducerStamp {
        let identity: (producerID: UInt64, epoch: UInt32)
        if let known = self.identity {
            identity = known
        } else {
            guard case .producer(let id, let epoch) = try await client.call(.initProducer(transactionalID: nil)) else {
                throw TernError(.internalError, "unexpected answer to InitProducer")
            }
            identity = (id, epoch)
            self.identity = identity
        }
        if let pending, pending.topic == topic, pending.messages == messages {
            return WireProducerStamp(producerID: identity.producerID, epoch: identity.epoch, firstSequence: pending.first)
        }
        let first = next[topic, default: 0]
        next[topic] = first + UInt64(messages.count)
        pending = (messages, topic, first)
        return WireProducerStamp(producerID: identity.producerID, epoch: identity.epoch, firstSequence: first)
    }

    func succeeded() { pending = nil }

    /// A failure that stored nothing (`definitely`) gives the numbers back; an unknown outcome
    /// keeps them for the retry.
    func failed(definitely: Bool) {
        guard definitely, let pending else { return }
        if next[pending.topic] == pending.first + UInt64(pending.messages.count) { next[pending.topic] = pending.first }
        self.pending = nil
    }

    func reset() {
        identity = nil
        next = [:]
        pending = nil
    }
}
