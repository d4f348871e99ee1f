import Foundation

/// The commands' calls over ternd's HTTP API (routes as in `docs/openapi.yaml`).
extension BrokerClient: BrokerTransport {
    // MARK: Queues

    func createQueue(_ name: String, attributes: API.QueueAttributes) async throws -> Bool {
        try await call(.PUT, Self.queuePath(name), json: attributes, as: API.QueueDescription.self).status == 201
    }

    func listQueues() async throws -> [API.QueueDescription] {
        try await call(.GET, "/queues", as: API.QueueList.self).answer.queues
    }

    func describeQueue(_ name: String) async throws -> JSONValue {
        try await call(.GET, Self.queuePath(name), as: JSONValue.self).answer
    }

    func deleteQueue(_ name: String) async throws {
        try await callWithoutAnswer(.DELETE, Self.queuePath(name))
    }

    func purgeQueue(_ name: String) async throws -> Int {
        try await call(.POST, Self.queuePath(name) + "/purge", as: API.PurgeResult.self).answer.purged
    }

    func redrive(_ deadLetterQueue: String) async throws -> Int {
        try await call(.POST, Self.queuePath(deadLetterQueue) + "/redrive", as: API.RedriveResult.self).answer.moved
    }

    // MARK: Messages

    func send(_ message: API.SendRequest, to queue: String) async throws -> API.SendResult {
        try await call(.POST, Self.queuePath(queue) + "/messages", json: message, as: API.SendResult.self).answer
    }

    func send(batch messages: [API.SendRequest], to queue: String) async throws -> Int {
        try await call(.POST, Self.queuePath(queue) + "/messages", json: API.SendBatchRequest(messages: messages),
                       as: API.SendBatchResult.self).answer.messages.count
    }

    func receive(from queue: String, maxMessages: Int, visibilityTimeout: Int?, waitTime: Int?,
                 autoAcknowledge: Bool) async throws -> [API.ReceivedMessage] {
        var query = [("batch_size", String(maxMessages))]
        if let visibilityTimeout { query.append(("visibility_timeout", String(visibilityTimeout))) }
        if let waitTime { query.append(("wait_time", String(waitTime))) }
        if autoAcknowledge { query.append(("auto_ack", "true")) }
        return try await call(.GET, Self.queuePath(queue) + "/messages", query: query, timeout: Int64(waitTime ?? 0) + 60,
                              as: API.ReceiveResult.self).answer.messages
    }

    /// `DELETE /queues/{name}/messages/{receipt_handle}` for each handle, 64 at a time.
    func acknowledge(_ receiptHandles: [String], on queue: String) async throws {
        let messagesPath = Self.queuePath(queue) + "/messages"
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, handle) in receiptHandles.enumerated() {
                if index >= Receive.ackConcurrency { try await group.next() }
                group.addTask {
                    try await callWithoutAnswer(.DELETE, messagesPath + "/" + Self.escape(handle))
                }
            }
            try await group.waitForAll()
        }
    }

    func changeVisibility(_ receiptHandle: String, on queue: String, to seconds: Int) async throws {
        try await callWithoutAnswer(.PATCH, Self.queuePath(queue) + "/messages/" + Self.escape(receiptHandle),
                                    json: API.ChangeVisibilityRequest(visibilityTimeout: seconds))
    }

    // MARK: Topics

    func createTopic(_ name: String, attributes: TopicAPI.Attributes) async throws -> Bool {
        try await call(.PUT, Self.topicPath(name), json: attributes, as: JSONValue.self).status == 201
    }

    func listTopics() async throws -> [TopicAPI.Description] {
        try await call(.GET, "/topics", as: TopicAPI.List.self).answer.topics
    }

    func describeTopic(_ name: String) async throws -> JSONValue {
        try await call(.GET, Self.topicPath(name), as: JSONValue.self).answer
    }

    func produce(_ messages: [TopicAPI.Message], to topic: String) async throws -> Int {
        try await call(.POST, Self.topicPath(topic) + "/messages", json: TopicAPI.ProduceRequest(messages: messages),
                       as: TopicAPI.ProduceResult.self).answer.offsets.count
    }

    func joinGroup(topic: String, group: String, sessionTimeout: Int) async throws -> TopicAPI.Join {
        try await call(.POST, Self.groupPath(topic, group) + "/members", json: TopicAPI.JoinRequest(sessionTimeout: sessionTimeout),
                       as: TopicAPI.Join.self).answer
    }

    func consume(topic: String, group: String, memberID: String, max: Int, waitTime: Int) async throws -> TopicAPI.Batch {
        try await call(
            .GET, Self.groupPath(topic, group) + "/messages",
            query: [("member_id", memberID), ("max", String(max)), ("wait_time", String(waitTime))],
            timeout: Int64(waitTime) + 30, as: TopicAPI.Batch.self
        ).answer
    }

    func commitOffsets(_ offsets: [Int: UInt64], topic: String, group: String, memberID: String, generation: Int) async throws {
        let byName = Dictionary(uniqueKeysWithValues: offsets.map { (String($0.key), $0.value) })
        try await callWithoutAnswer(.POST, Self.groupPath(topic, group) + "/offsets",
                                    json: TopicAPI.Commit(memberID: memberID, generation: generation, offsets: byName))
    }

    func leaveGroup(topic: String, group: String, memberID: String) async throws {
        try await callWithoutAnswer(.DELETE, Self.groupPath(topic, group) + "/members/" + Self.escape(memberID))
    }

    // MARK: Paths

    /// `/topics/{name}` with `name` escaped.
    static func topicPath(_ name: String) -> String { "/topics/" + escape(name) }

    /// `/topics/{topic}/groups/{group}` with both escaped.
    static func groupPath(_ topic: String, _ group: String) -> String { topicPath(topic) + "/groups/" + escape(group) }
}
