import Foundation
import Hummingbird
import TernBroker
import TernCore

/// The topic and consumer-group routes of the HTTP API (issue 3; `docs/openapi.yaml`).
extension HTTPAPI {
    /// Every topic route as `METHOD /path/{param}` (appended to ``routes``).
    static let topicRoutes: [String] = [
        "GET /topics", "PUT /topics/{name}", "GET /topics/{name}", "DELETE /topics/{name}",
        "POST /topics/{name}/messages", "GET /topics/{name}/partitions/{partition}/messages",
        "GET /topics/{name}/groups/{group}", "POST /topics/{name}/groups/{group}/members",
        "POST /topics/{name}/groups/{group}/members/{member_id}/heartbeat",
        "DELETE /topics/{name}/groups/{group}/members/{member_id}",
        "GET /topics/{name}/groups/{group}/messages", "POST /topics/{name}/groups/{group}/offsets",
        "POST /topics/{name}/groups/{group}/offsets/reset",
    ]

    /// Registers the topic routes on `router`.
    static func addTopicRoutes(to router: Router<BasicRequestContext>, _ api: Handlers) {
        router.get("/topics") { _, _ in try api.listTopics() }
        router.put("/topics/:name") { request, context in try await api.putTopic(request, context) }
        router.get("/topics/:name") { _, context in try api.describeTopic(context) }
        router.delete("/topics/:name") { _, context in try await api.deleteTopic(context) }
        router.post("/topics/:name/messages") { request, context in try await api.produce(request, context) }
        router.get("/topics/:name/partitions/:partition/messages") { request, context in try await api.fetch(request, context) }
        router.get("/topics/:name/groups/:group") { _, context in try await api.describeGroup(context) }
        router.post("/topics/:name/groups/:group/members") { request, context in try await api.join(request, context) }
        router.post("/topics/:name/groups/:group/members/:member/heartbeat") { _, context in try await api.heartbeat(context) }
        router.delete("/topics/:name/groups/:group/members/:member") { _, context in try await api.leave(context) }
        router.get("/topics/:name/groups/:group/messages") { request, context in try await api.consume(request, context) }
        router.post("/topics/:name/groups/:group/offsets") { request, context in try await api.commit(request, context) }
        router.post("/topics/:name/groups/:group/offsets/reset") { request, context in try await api.reset(request, context) }
    }
}

extension Handlers {
    func topicName(_ context: BasicRequestContext) throws(TernError) -> QueueName {
        guard let raw = context.parameters.get("name") else { throw TernError(.invalidName, "missing topic name") }
        return try QueueName(raw)
    }

    func groupName(_ context: BasicRequestContext) throws(TernError) -> QueueName {
        guard let raw = context.parameters.get("group") else { throw TernError(.invalidName, "missing group name") }
        do { return try QueueName(raw) } catch { throw TernError(.invalidName, "group name: \(error.message)") }
    }

    /// Query parameters, with unknown ones rejected.
    func query(_ request: Request, allowed: Set<String>) throws(TernError) -> [String: String] {
        var result = [String: String]()
        for (key, value) in request.uri.queryParameters {
            guard allowed.contains(String(key)) else {
                throw TernError(.invalidParameter, "unknown query parameter \(key); allowed: \(allowed.sorted().joined(separator: ", "))")
            }
            result[String(key)] = String(value)
        }
        return result
    }

    func integer(_ query: [String: String], _ key: String, _ range: ClosedRange<Int>) throws(TernError) -> Int? {
        guard let raw = query[key] else { return nil }
        guard let value = Int(raw), range.contains(value) else {
            throw TernError(.invalidParameter, "\(key) must be an integer \(range.lowerBound)–\(range.upperBound), got \"\(raw)\"")
        }
        return value
    }

    func isBlank(_ bytes: [UInt8]) -> Bool { bytes.allSatisfy { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 } }

    // MARK: Topics

    func listTopics() throws -> Response {
        try json(.ok, TopicList(topics: try broker.listTopics().map(TopicDescription.init)))
    }

    func putTopic(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let name = try topicName(context)
        let bytes = try await body(request)
        let patch = isBlank(bytes) ? TopicAttributes.Patch() : try JSONBody.decode(TopicAttributesBody.self, from: bytes).patch
        let (created, info) = try await broker.createOrUpdateTopic(name, patch: patch)
        return try json(created ? .created : .ok, TopicDescription(info))
    }

    func describeTopic(_ context: BasicRequestContext) throws -> Response {
        try json(.ok, TopicDescription(try broker.describeTopic(try topicName(context))))
    }

    func deleteTopic(_ context: BasicRequestContext) async throws -> Response {
        try await broker.deleteTopic(try topicName(context))
        return Response(status: .noContent)
    }

    func produce(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let name = try topicName(context)
        let parsed = try JSONBody.decode(ProduceBody.self, from: try await body(request))
        let offsets = try await broker.produce(name, parsed.messages)
        return try json(.created, ProducedOffsets(offsets: offsets.map { .init(partition: $0.partition, offset: $0.offset) }))
    }

    func fetch(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let name = try topicName(context)
        let raw = context.parameters.get("partition") ?? ""
        guard let partition = Int(raw), partition >= 0 else {
            throw TernError(.invalidParameter, "partition must be a non-negative integer, got \"\(raw)\"")
        }
        let query = try query(request, allowed: ["offset", "max", "wait_time"])
        let max = try integer(query, "max", Broker.fetchMaxRange) ?? 100
        let waitTime = try integer(query, "wait_time", Broker.waitTimeRange) ?? 0
        let offset: UInt64
        if let rawOffset = query["offset"] {
            guard let value = UInt64(rawOffset) else {
                throw TernError(.invalidParameter, "offset must be a non-negative integer, got \"\(rawOffset)\"")
            }
            offset = value
        } else {
            let partitions = try broker.describeTopic(name).partitions
            offset = partition < partitions.count ? partitions[partition].logStart : 0
        }
        let result = try await broker.fetch(name, partition: partition, offset: offset, max: max, waitTime: waitTime)
        return try json(.ok, FetchAnswer(messages: result.messages.map(FetchedDescription.init),
                                         high_watermark: result.highWatermark, log_start: result.logStart))
    }

    // MARK: Consumer groups

    func join(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (topic, group) = (try topicName(context), try groupName(context))
        let bytes = try await body(request)
        let timeout = isBlank(bytes) ? ConsumerGroup.defaultSessionTimeout : try JSONBody.decode(JoinBody.self, from: bytes).sessionTimeout
        let (member, assignment) = try await broker.joinGroup(topic, group: group, sessionTimeout: timeout)
        return try json(.ok, AssignmentAnswer(member_id: member, generation: assignment.generation, partitions: assignment.partitions))
    }

    func heartbeat(_ context: BasicRequestContext) async throws -> Response {
        let (topic, group) = (try topicName(context), try groupName(context))
        let assignment = try await broker.heartbeat(topic, group: group, memberID: context.parameters.get("member") ?? "")
        return try json(.ok, AssignmentAnswer(generation: assignment.generation, partitions: assignment.partitions, rebalance: assignment.rebalance))
    }

    func leave(_ context: BasicRequestContext) async throws -> Response {
        let (topic, group) = (try topicName(context), try groupName(context))
        try await broker.leaveGroup(topic, group: group, memberID: context.parameters.get("member") ?? "")
        return Response(status: .noContent)
    }

    func consume(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (topic, group) = (try topicName(context), try groupName(context))
        let query = try query(request, allowed: ["member_id", "max", "wait_time"])
        guard let member = query["member_id"], !member.isEmpty else {
            throw TernError(.invalidParameter, "member_id is required (join the group first)")
        }
        let max = try integer(query, "max", Broker.fetchMaxRange) ?? 100
        let waitTime = try integer(query, "wait_time", Broker.waitTimeRange) ?? 0
        let batch = try await broker.consume(topic, group: group, memberID: member, max: max, waitTime: waitTime)
        return try json(.ok, GroupBatchAnswer(messages: batch.messages.map(FetchedDescription.init), generation: batch.assignment.generation,
                                              partitions: batch.assignment.partitions, rebalance: batch.assignment.rebalance))
    }

    func commit(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (topic, group) = (try topicName(context), try groupName(context))
        let parsed = try JSONBody.decode(CommitBody.self, from: try await body(request))
        try await broker.commitOffsets(topic, group: group, memberID: parsed.memberID, generation: parsed.generation, offsets: parsed.offsets)
        return Response(status: .noContent)
    }

    func reset(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (topic, group) = (try topicName(context), try groupName(context))
        let parsed = try JSONBody.decode(ResetBody.self, from: try await body(request))
        try await broker.resetGroupOffsets(topic, group: group, to: parsed.target)
        return Response(status: .noContent)
    }

    func describeGroup(_ context: BasicRequestContext) async throws -> Response {
        let (topic, group) = (try topicName(context), try groupName(context))
        return try json(.ok, GroupDescription(topic: topic.rawValue, group: group.rawValue, try await broker.describeGroup(topic, group: group)))
    }
}
