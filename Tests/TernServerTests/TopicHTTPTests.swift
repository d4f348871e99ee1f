import Foundation
import Hummingbird
import HummingbirdTesting
import TernCore
import Testing

extension API {
    func json(_ method: HTTPRequest.Method, _ uri: String, _ body: String? = nil, expect status: Int,
              sourceLocation: SourceLocation = #_sourceLocation) async throws -> [String: Any] {
        let reply = try await request(method, uri, body)
        try #require(reply.status == status, "\(method) \(uri): \(reply)", sourceLocation: sourceLocation)
        return reply.bytes.isEmpty ? [:] : try reply.object()
    }
}

@Suite struct TopicHTTPTests {
    @Test func topicLifecycle_createDescribeListUpdateDelete() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            let created = try await api.json(.put, "/topics/logs", "{\"partitions\": 16, \"retention\": 604800, \"max_bytes\": null}", expect: 201)
            #expect(created["name"] as? String == "logs")
            #expect((created["partitions"] as? [[String: Any]])?.count == 16)
            let attributes = try #require(created["attributes"] as? [String: Any])
            #expect(attributes["partitions"] as? Int == 16)
            #expect(attributes["max_bytes"] is NSNull)
            let updated = try await api.json(.put, "/topics/logs", "{\"retention\": 3600}", expect: 200)
            #expect((updated["attributes"] as? [String: Any])?["retention"] as? Int == 3600)
            expectError(try await api.request(.put, "/topics/logs", "{\"partitions\": 4}"), .conflict)
            let list = try await api.json(.get, "/topics", expect: 200)
            #expect((list["topics"] as? [[String: Any]])?.map { $0["name"] as? String } == ["logs"])
            _ = try await api.json(.delete, "/topics/logs", expect: 204)
            expectError(try await api.request(.get, "/topics/logs"), .topicNotFound)
        }
    }

    @Test(arguments: ["{\"partitions\": 0}", "{\"partitions\": 1025}", "{\"retention\": 1}", "{\"max_bytes\": 0}",
                      "{\"partitons\": 3}", "{\"partitions\": \"3\"}"])
    func invalidTopicAttributes_are400_andCreateNothing(body: String) async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            expectError(try await api.request(.put, "/topics/t", body), .invalidAttribute, body)
            #expect((try await api.json(.get, "/topics", expect: 200)["topics"] as? [Any])?.isEmpty == true)
        }
    }

    @Test func produceAndFetch_roundTripKeysValuesAndDenseOffsets() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            _ = try await api.json(.put, "/topics/t", "{\"partitions\": 2}", expect: 201)
            let produced = try await api.json(.post, "/topics/t/messages", """
                {"messages": [{"value": "a", "partition": 1}, {"key": "k", "value": "b\\u00e9", "partition": 1}, {"value": "", "partition": 1}]}
                """, expect: 201)
            let offsets = try #require(produced["offsets"] as? [[String: Int]])
            #expect(offsets == [["partition": 1, "offset": 0], ["partition": 1, "offset": 1], ["partition": 1, "offset": 2]])
            let page = try await api.json(.get, "/topics/t/partitions/1/messages?offset=1&max=10", expect: 200)
            #expect(page["high_watermark"] as? Int == 3)
            #expect(page["log_start"] as? Int == 0)
            let messages = try #require(page["messages"] as? [[String: Any]])
            #expect(messages.map { $0["offset"] as? Int } == [1, 2])
            #expect(messages[0]["key"] as? String == "k")
            #expect(messages[0]["value"] as? String == "bé")
            #expect(messages[1]["key"] is NSNull)
            #expect(Set(messages[0].keys) == ["partition", "offset", "key", "value", "timestamp"])
            #expect(messages[0]["timestamp"] as? Int == Int(f.clock.now.milliseconds))
        }
    }

    @Test func fetchOutsideTheRange_is416_withTheValidRangeInTheError() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            _ = try await api.json(.put, "/topics/t", "{}", expect: 201)
            _ = try await api.json(.post, "/topics/t/messages", "{\"messages\": [{\"value\": \"a\"}, {\"value\": \"b\"}]}", expect: 201)
            let reply = try await api.request(.get, "/topics/t/partitions/0/messages?offset=3")
            expectError(reply, .offsetOutOfRange)
            #expect(reply.status == 416)
            #expect(reply.text.contains("0–2"), "\(reply)")
            #expect(try await api.json(.get, "/topics/t/partitions/0/messages?offset=2", expect: 200)["messages"] as? [Any] != nil)
            expectError(try await api.request(.get, "/topics/t/partitions/1/messages?offset=0"), .invalidParameter)
            expectError(try await api.request(.get, "/topics/t/partitions/x/messages"), .invalidParameter)
            expectError(try await api.request(.get, "/topics/t/partitions/0/messages?offset=-1"), .invalidParameter)
            expectError(try await api.request(.get, "/topics/t/partitions/0/messages?max=0"), .invalidParameter)
            expectError(try await api.request(.get, "/topics/none/partitions/0/messages"), .topicNotFound)
        }
    }

    @Test(arguments: ["{}", "{\"messages\": []}", "{\"messages\": [{\"key\": \"k\"}]}", "{\"messages\": [{\"value\": 5}]}",
                      "{\"messages\": [{\"value\": \"v\", \"partition\": 9}]}", "{\"messages\": [{\"value\": \"v\", \"extra\": 1}]}"])
    func invalidProduce_is400_andStoresNothing(body: String) async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            _ = try await api.json(.put, "/topics/t", "{\"partitions\": 2}", expect: 201)
            let reply = try await api.request(.post, "/topics/t/messages", body)
            #expect(reply.status == 400, "\(body): \(reply)")
            expectErrorShape(reply)
            let topic = try await api.json(.get, "/topics/t", expect: 200)
            #expect(topic["messages"] as? Int == 0)
        }
    }

    @Test func consumerGroup_joinConsumeCommitDescribe_andStaleCommitIs409() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            _ = try await api.json(.put, "/topics/t", "{\"partitions\": 4}", expect: 201)
            for p in 0..<4 {
                _ = try await api.json(.post, "/topics/t/messages", "{\"messages\": [{\"value\": \"p\(p)-0\", \"partition\": \(p)}, {\"value\": \"p\(p)-1\", \"partition\": \(p)}]}", expect: 201)
            }
            let joined = try await api.json(.post, "/topics/t/groups/g/members", "{\"session_timeout\": 10}", expect: 200)
            let a = try #require(joined["member_id"] as? String)
            #expect(joined["partitions"] as? [Int] == [0, 1, 2, 3])
            let generation = try #require(joined["generation"] as? Int)
            let batch = try await api.json(.get, "/topics/t/groups/g/messages?member_id=\(a)&max=100", expect: 200)
            #expect((batch["messages"] as? [Any])?.count == 8)
            _ = try await api.json(.post, "/topics/t/groups/g/offsets", "{\"member_id\": \"\(a)\", \"generation\": \(generation), \"offsets\": {\"0\": 2, \"1\": 1}}", expect: 204)
            expectError(try await api.request(.post, "/topics/t/groups/g/offsets", "{\"member_id\": \"\(a)\", \"generation\": \(generation), \"offsets\": {\"0\": 3}}"), .invalidParameter)
            let second = try await api.json(.post, "/topics/t/groups/g/members", nil, expect: 200)
            let b = try #require(second["member_id"] as? String)
            #expect((second["partitions"] as? [Int])?.count == 2)
            let stale = try await api.request(.post, "/topics/t/groups/g/offsets", "{\"member_id\": \"\(a)\", \"generation\": \(generation), \"offsets\": {\"0\": 0}}")
            expectError(stale, .staleGeneration)
            #expect(stale.status == 409)
            let heartbeat = try await api.json(.post, "/topics/t/groups/g/members/\(a)/heartbeat", nil, expect: 200)
            #expect(heartbeat["rebalance"] as? Bool == true)
            #expect((heartbeat["partitions"] as? [Int])?.count == 2)
            let described = try await api.json(.get, "/topics/t/groups/g", expect: 200)
            #expect(described["generation"] as? Int == generation + 1)
            #expect((described["members"] as? [[String: Any]])?.count == 2)
            let partitions = try #require(described["partitions"] as? [[String: Any]])
            #expect(partitions.map { $0["committed"] as? Int } == [2, 1, nil, nil])
            #expect(partitions.map { $0["lag"] as? Int } == [0, 1, 2, 2])
            #expect(described["lag"] as? Int == 5)
            expectError(try await api.request(.post, "/topics/t/groups/g/offsets/reset", "{\"to\": \"earliest\"}"), .conflict)
            _ = try await api.json(.delete, "/topics/t/groups/g/members/\(a)", expect: 204)
            _ = try await api.json(.delete, "/topics/t/groups/g/members/\(b)", expect: 204)
            expectError(try await api.request(.delete, "/topics/t/groups/g/members/\(b)"), .memberNotFound)
            expectError(try await api.request(.get, "/topics/t/groups/g/messages?member_id=\(b)"), .memberNotFound)
            _ = try await api.json(.post, "/topics/t/groups/g/offsets/reset", "{\"to\": {\"timestamp\": 0}}", expect: 204)
            let reset = try await api.json(.get, "/topics/t/groups/g", expect: 200)
            #expect((reset["partitions"] as? [[String: Any]])?.map { $0["committed"] as? Int } == [0, 0, 0, 0])
        }
    }

    @Test func longPollingFetch_overHTTP_isWokenByAProduce() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            _ = try await api.json(.put, "/topics/t", "{}", expect: 201)
            async let waiting = api.request(.get, "/topics/t/partitions/0/messages?offset=0&wait_time=20")
            await f.clock.waitForSleepers(count: 1)
            _ = try await api.json(.post, "/topics/t/messages", "{\"value\": \"wake\"}", expect: 201)
            let reply = try await waiting
            #expect(reply.status == 200)
            #expect(reply.text.contains("\"wake\""), "\(reply)")
        }
    }
}

/// FIFO sends over HTTP (they share the queue routes; kept here with the other issue-3 routes).
@Suite struct FifoHTTPTests {
    @Test func duplicateSend_is200WithTheOriginalId_andAMixedBatchIs201MarkingTheDuplicates() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            _ = try await api.json(.put, "/queues/o.fifo", "{\"content_based_deduplication\": true}", expect: 201)
            let first = try await api.json(.post, "/queues/o.fifo/messages", "{\"message\": \"a\", \"group_id\": \"g\", \"deduplication_id\": \"d1\"}", expect: 201)
            #expect(first["duplicate"] == nil)
            let again = try await api.json(.post, "/queues/o.fifo/messages", "{\"message\": \"b\", \"group_id\": \"g\", \"deduplication_id\": \"d1\"}", expect: 200)
            #expect(again["id"] as? String == first["id"] as? String)
            #expect(again["duplicate"] as? Bool == true)
            let mixed = try await api.json(.post, "/queues/o.fifo/messages", """
                {"messages": [{"message": "c", "group_id": "g", "deduplication_id": "d1"}, {"message": "content", "group_id": "g"}]}
                """, expect: 201)
            let items = try #require(mixed["messages"] as? [[String: Any]])
            #expect(items.map { $0["duplicate"] as? Bool } == [true, nil])
            let description = try await api.describe("o.fifo")
            #expect(description.messages.total == 2)
            let attributes = try #require(try await api.request(.get, "/queues/o.fifo").object()["attributes"] as? [String: Any])
            #expect(attributes["content_based_deduplication"] as? Bool == true)
            #expect(attributes["overflow"] as? String == "reject")
        }
    }

    @Test(arguments: [
        "{\"message\": \"a\"}", "{\"message\": \"a\", \"group_id\": \"g\"}", "{\"message\": \"a\", \"group_id\": \"\", \"deduplication_id\": \"d\"}",
        "{\"message\": \"a\", \"group_id\": \"g\", \"deduplication_id\": \"d\", \"priority\": 1}",
    ])
    func fifoSendWithoutItsFields_is400_andStoresNothing(body: String) async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            _ = try await api.json(.put, "/queues/o.fifo", "{}", expect: 201)
            expectError(try await api.request(.post, "/queues/o.fifo/messages", body), .invalidParameter, body)
            #expect(try await api.describe("o.fifo").messages.total == 0)
        }
    }

    @Test func groupIdOnAStandardQueue_is400() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            _ = try await api.json(.put, "/queues/q", "{}", expect: 201)
            expectError(try await api.request(.post, "/queues/q/messages", "{\"message\": \"a\", \"group_id\": \"g\"}"), .invalidParameter)
            expectError(try await api.request(.put, "/queues/q", "{\"content_based_deduplication\": true}"), .invalidAttribute)
            expectError(try await api.request(.put, "/queues/q", "{\"overflow\": \"drop\"}"), .invalidAttribute)
            let updated = try await api.json(.put, "/queues/q", "{\"overflow\": \"drop_oldest\", \"max_messages\": 1}", expect: 200)
            #expect((updated["attributes"] as? [String: Any])?["overflow"] as? String == "drop_oldest")
            _ = try await api.json(.post, "/queues/q/messages", "{\"message\": \"old\"}", expect: 201)
            _ = try await api.json(.post, "/queues/q/messages", "{\"message\": \"new\"}", expect: 201)
            #expect(try await api.receive("q").map(\.body) == ["new"])
        }
    }
}
