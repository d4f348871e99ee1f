import Foundation
import Hummingbird
import TernCore
import Testing

/// BRIEF §3 queue attributes: defaults, ranges and cross-field rules; a rejected `PUT`
/// neither creates nor changes a queue.
@Suite struct QueueAttributeTests {
    /// Bodies every one of which is `400 InvalidAttribute` (a queue `dlq` exists).
    static let invalidAttributeBodies = [
        "{\"visibility_timeout\": 43201}", "{\"visibility_timeout\": -1}",
        "{\"retention\": 59}", "{\"retention\": 1209601}", "{\"retention\": 0}",
        "{\"max_message_bytes\": 0}", "{\"max_message_bytes\": 16777217}", "{\"max_message_bytes\": -5}",
        "{\"retention\": 60, \"delay\": 61}", "{\"delay\": 1209601}", "{\"delay\": -1}",
        "{\"max_receive_count\": 0, \"dead_letter_queue\": \"dlq\"}",
        "{\"max_receive_count\": 1001, \"dead_letter_queue\": \"dlq\"}",
        "{\"max_receive_count\": 5}",
        "{\"dead_letter_queue\": \"dlq\"}",
        "{\"max_receive_count\": 5, \"dead_letter_queue\": \"missing\"}",
        "{\"max_receive_count\": 5, \"dead_letter_queue\": \"q\"}",
        "{\"max_receive_count\": 5, \"dead_letter_queue\": \"bad.name\"}",
        "{\"max_receive_count\": 5, \"dead_letter_queue\": \"\"}",
        "{\"max_receive_count\": 5, \"dead_letter_queue\": 7}",
        "{\"max_receive_count\": 5, \"dead_letter_queue\": \"DLQ\"}",
        "{\"colour\": \"blue\"}", "{\"visibility_timeout\": 30, \"VisibilityTimeout\": 30}", "{\"visibilityTimeout\": 30}",
        "{\"visibility_timeout\": \"30\"}", "{\"visibility_timeout\": 1.5}", "{\"visibility_timeout\": null}",
        "{\"visibility_timeout\": true}", "{\"retention\": [60]}", "{\"delay\": {}}",
        "{\"fifo\": \"false\"}", "{\"fifo\": 0}", "{\"fifo\": null}",
        "{\"max_messages\": 0}", "{\"max_messages\": -1}", "{\"max_messages\": \"10\"}",
        "{\"max_bytes\": 0}", "{\"max_bytes\": 1.5}",
        "{\"max_receive_count\": \"5\", \"dead_letter_queue\": \"dlq\"}",
    ]

    @Test(arguments: invalidAttributeBodies)
    func invalidAttributeOnCreate_isInvalidAttribute_andCreatesNothing(body: String) async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("dlq")
            let before = try await api.snapshot()
            expectError(try await api.request(.put, "/queues/q", body), .invalidAttribute, body)
            #expect(try await api.snapshot() == before)
            expectError(try await api.request(.get, "/queues/q"), .queueNotFound)
        }
    }

    @Test(arguments: invalidAttributeBodies)
    func invalidAttributeOnUpdate_isInvalidAttribute_andChangesNothing(body: String) async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("dlq")
            try await api.createQueue("q", "{\"visibility_timeout\": 45, \"retention\": 3600, \"delay\": 5, \"max_messages\": 100}")
            try await api.send("q", "m")
            let before = try await api.snapshot()
            expectError(try await api.request(.put, "/queues/q", body), .invalidAttribute, body)
            #expect(try await api.snapshot() == before)
        }
    }

    /// Cross-field rules hold against the stored values, not only within one body.
    @Test(arguments: [
        ("q", "{\"retention\": 60}"), ("q", "{\"retention\": 99}"), ("r", "{\"dead_letter_queue\": null}"),
        ("r", "{\"max_receive_count\": null}"), ("r", "{\"dead_letter_queue\": \"r\"}"),
    ])
    func updateBreakingACrossFieldRuleWithStoredValues_isInvalidAttribute(target: String, body: String) async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("dlq")
            try await api.createQueue("q", "{\"delay\": 100}")
            try await api.createQueue("r", "{\"max_receive_count\": 2, \"dead_letter_queue\": \"dlq\"}")
            let before = try await api.snapshot()
            expectError(try await api.request(.put, "/queues/\(target)", body), .invalidAttribute, body)
            #expect(try await api.snapshot() == before)
        }
    }

    @Test(arguments: ["{", "[]", "\"x\"", "null", "{\"visibility_timeout\" 30}", "{\"retention\": 60}}"])
    func putBodyThatIsNotAJSONObject_isInvalidJSON_andCreatesNothing(body: String) async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            expectError(try await api.request(.put, "/queues/q", body), .invalidJSON, body)
            #expect(try await api.snapshot().isEmpty)
        }
    }

    /// RFC 8259 has no trailing commas; Foundation's JSONDecoder accepts them.
    @Test
    func putBodyWithTrailingComma_isInvalidJSON_andCreatesNothing() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            expectError(try await api.request(.put, "/queues/q", "{\"visibility_timeout\": 31,}"), .invalidJSON)
            #expect(try await api.snapshot().isEmpty)
        }
    }

    @Test func put_creates201WithDefaults_thenUpdates200() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            let created = try await api.request(.put, "/queues/q")
            #expect(created.status == 201, "\(created)")
            #expect(created.contentType == "application/json")
            let description = try created.decode(QueueDescriptionBody.self)
            #expect(description.name == "q")
            #expect(description.attributes == .init(
                visibilityTimeout: 30, retention: 604_800, maxMessageBytes: 1_048_576, delay: 0, maxReceiveCount: nil,
                deadLetterQueue: nil, fifo: false, maxMessages: nil, maxBytes: nil))
            #expect(description.messages == .init(ready: 0, inFlight: 0, delayed: 0, total: 0))
            #expect(description.createdAt == f.clock.now.milliseconds)
            #expect(description.oldestMessageAge == nil)
            let attributeKeys = try #require(try created.object()["attributes"] as? [String: Any]).keys
            #expect(Set(attributeKeys) == ["visibility_timeout", "retention", "max_message_bytes", "delay", "max_receive_count",
                                           "dead_letter_queue", "fifo", "max_messages", "max_bytes",
                                           "content_based_deduplication", "overflow"])

            let updated = try await api.request(.put, "/queues/q", "{\"visibility_timeout\": 60, \"max_bytes\": 1000}")
            #expect(updated.status == 200, "\(updated)")
            let after = try updated.decode(QueueDescriptionBody.self)
            #expect(after.attributes.visibilityTimeout == 60)
            #expect(after.attributes.maxBytes == 1000)
            #expect(after.attributes.retention == 604_800)
            #expect(after.createdAt == description.createdAt)

            let again = try await api.request(.put, "/queues/q", "{}")
            #expect(again.status == 200, "\(again)")
            #expect(try again.decode(QueueDescriptionBody.self) == after)
            let whitespace = try await api.request(.put, "/queues/q", " \n")
            #expect(whitespace.status == 200, "\(whitespace)")
            #expect(try await api.describe("q") == after)
            #expect(try await api.snapshot() == [after])
        }
    }

    @Test func everyAttribute_atItsBounds_isAccepted() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("dlq")
            let low = try await api.createQueue("low", """
                {"visibility_timeout": 0, "retention": 60, "max_message_bytes": 1, "delay": 60,
                 "max_receive_count": 1, "dead_letter_queue": "dlq", "fifo": false, "max_messages": 1, "max_bytes": 1}
                """)
            #expect(low.attributes == .init(visibilityTimeout: 0, retention: 60, maxMessageBytes: 1, delay: 60, maxReceiveCount: 1,
                                            deadLetterQueue: "dlq", fifo: false, maxMessages: 1, maxBytes: 1))
            let high = try await api.createQueue("high", """
                {"visibility_timeout": 43200, "retention": 1209600, "max_message_bytes": 16777216, "delay": 1209600,
                 "max_receive_count": 1000, "dead_letter_queue": "dlq"}
                """)
            #expect(high.attributes.visibilityTimeout == 43200)
            #expect(high.attributes.retention == 1_209_600)
            #expect(high.attributes.maxMessageBytes == 16_777_216)
            #expect(high.attributes.delay == 1_209_600)
            #expect(high.attributes.maxReceiveCount == 1000)
        }
    }

    @Test func nullTurnsOptionalAttributesOff() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("dlq")
            try await api.createQueue("q", "{\"max_receive_count\": 3, \"dead_letter_queue\": \"dlq\", \"max_messages\": 5, \"max_bytes\": 9}")
            let reply = try await api.request(.put, "/queues/q",
                                              "{\"max_receive_count\": null, \"dead_letter_queue\": null, \"max_messages\": null, \"max_bytes\": null}")
            #expect(reply.status == 200, "\(reply)")
            let attributes = try reply.decode(QueueDescriptionBody.self).attributes
            #expect(attributes.maxReceiveCount == nil && attributes.deadLetterQueue == nil)
            #expect(attributes.maxMessages == nil && attributes.maxBytes == nil)
        }
    }

    @Test func changingFifoOfAnExistingQueue_isConflict_andChangesNothing() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            let before = try await api.snapshot()
            expectError(try await api.request(.put, "/queues/q", "{\"fifo\": true}"), .conflict)
            #expect(try await api.snapshot() == before)
            #expect(try await api.request(.put, "/queues/q", "{\"fifo\": false}").status == 200)
        }
    }

    @Test func maxMessages_rejectsSendsBeyondIt_withQueueFull() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q", "{\"max_messages\": 2}")
            try await api.send("q", "a")
            let before = try await api.snapshot()
            let reply = try await api.request(.post, "/queues/q/messages", "{\"messages\": [{\"message\": \"b\"}, {\"message\": \"c\"}]}")
            expectError(reply, .queueFull)
            #expect(try await api.snapshot() == before)
            try await api.send("q", "b")
        }
    }

    /// Lowering `max_message_bytes` applies to later sends.
    @Test func maxMessageBytesUpdate_appliesToLaterSends() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            try await api.send("q", "12345")
            #expect(try await api.request(.put, "/queues/q", "{\"max_message_bytes\": 4}").status == 200)
            expectError(try await api.request(.post, "/queues/q/messages", "{\"message\": \"12345\"}"), .messageTooLarge)
            try await api.send("q", "1234")
            #expect(try await api.describe("q").messages.total == 2)
        }
    }
}
