import Foundation
import Hummingbird
import HummingbirdTesting
import TernCore
import Testing

/// `POST /producers` and `POST /transactions`: acknowledgements, sends and consumer-group offset
/// commits applied together, or nothing on any error.
@Suite struct TransactionHTTPTests {
    /// Queue `in` with two received messages, queue `out`, topic `t` (one partition, 5 messages)
    /// with member `member` of group `g` at `generation`, and a producer.
    struct Setup {
        var handles: [String]
        var member: String
        var generation: Int
        var producerID: Int
        var epoch: Int
    }

    func setUp(_ api: API) async throws -> Setup {
        try await api.createQueue("in")
        try await api.createQueue("out")
        try await api.send("in", "x")
        try await api.send("in", "y")
        let handles = try await api.receive("in", "batch_size=2").map(\.receiptHandle)
        _ = try await api.json(.put, "/topics/t", "{\"partitions\": 1}", expect: 201)
        _ = try await api.json(.post, "/topics/t/messages",
                               "{\"messages\": [{\"value\": \"a\"}, {\"value\": \"b\"}, {\"value\": \"c\"}, {\"value\": \"d\"}, {\"value\": \"e\"}]}",
                               expect: 201)
        let joined = try await api.json(.post, "/topics/t/groups/g/members", "{\"session_timeout\": 30}", expect: 200)
        let producer = try await api.json(.post, "/producers", "{\"transactional_id\": \"upper\"}", expect: 201)
        return Setup(handles: handles, member: try #require(joined["member_id"] as? String),
                     generation: try #require(joined["generation"] as? Int),
                     producerID: try #require(producer["producer_id"] as? Int), epoch: try #require(producer["epoch"] as? Int))
    }

    func body(_ s: Setup, generation: Int? = nil, offset: Int = 3, handles: [String]? = nil) -> String {
        let acks = (handles ?? s.handles).map { "{\"queue\": \"in\", \"receipt_handle\": \"\($0)\"}" }.joined(separator: ", ")
        return """
            {"producer_id": \(s.producerID), "epoch": \(s.epoch), "sequence": 1,
             "acks": [\(acks)],
             "messages": [{"queue": "out", "message": "X"}, {"queue": "out", "message": "Y"}],
             "offsets": [{"topic": "t", "group": "g", "partition": 0, "offset": \(offset),
                          "member_id": "\(s.member)", "generation": \(generation ?? s.generation)}]}
            """
    }

    func state(_ api: API) async throws -> (inFlight: Int, out: Int, committed: Int?) {
        let input = try await api.describe("in")
        let output = try await api.describe("out")
        let group = try await api.json(.get, "/topics/t/groups/g", expect: 200)
        let partitions = try #require(group["partitions"] as? [[String: Any]])
        return (Int(input.messages.inFlight), Int(output.messages.total), partitions.first?["committed"] as? Int)
    }

    @Test func transaction_appliesAcksSendsAndOffsetsTogether() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            let s = try await setUp(api)
            let committed = try await api.json(.post, "/transactions", body(s), expect: 200)
            #expect(committed["duplicate"] as? Bool == false)
            #expect((committed["messages"] as? [[String: Any]])?.count == 2)
            let after = try await state(api)
            #expect(after.inFlight == 0)
            #expect(after.out == 2)
            #expect(after.committed == 3)
            // The same sequence again is answered as a duplicate and applies nothing more.
            let retry = try await api.json(.post, "/transactions", body(s), expect: 200)
            #expect(retry["duplicate"] as? Bool == true)
            #expect(try await state(api).out == 2)
        }
    }

    @Test func staleGenerationOrOffsetBeyondTheHighWatermark_failTheWholeTransaction() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            let s = try await setUp(api)
            _ = try await api.json(.post, "/topics/t/groups/g/members", "{\"session_timeout\": 30}", expect: 200)  // rebalance
            expectError(try await api.request(.post, "/transactions", body(s)), .staleGeneration)
            let rebalanced = try await api.json(.get, "/topics/t/groups/g", expect: 200)
            let generation = try #require(rebalanced["generation"] as? Int)
            expectError(try await api.request(.post, "/transactions", body(s, generation: generation, offset: 6)), .invalidParameter)
            let after = try await state(api)
            #expect(after.inFlight == 2, "no acknowledgement was applied")
            #expect(after.out == 0, "no message was stored")
            #expect(after.committed == nil, "no offset was committed")
        }
    }

    @Test(arguments: [
        "{\"producer_id\": 1}",
        "{\"producer_id\": 1, \"epoch\": 0, \"offsets\": [{\"topic\": \"t\", \"group\": \"g\", \"partition\": 0}]}",
        "{\"producer_id\": 1, \"epoch\": 0, \"offsets\": [{\"topic\": \"t\", \"group\": \"g\", \"partition\": 0, \"offset\": 1, \"member\": \"m\"}]}",
        "{\"producer_id\": 1, \"epoch\": 0, \"offsets\": [{\"topic\": \"t\", \"group\": \"g\", \"partition\": -1, \"offset\": 1}]}",
        "{\"producer_id\": 1, \"epoch\": 0, \"acks\": {}}",
        "{\"producer_id\": 1, \"epoch\": 0, \"extra\": true}",
    ])
    func malformedBodies_are400InvalidParameter_andChangeNothing(body: String) async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            let s = try await setUp(api)
            _ = s
            expectError(try await api.request(.post, "/transactions", body), .invalidParameter, body)
            let after = try await state(api)
            #expect(after.inFlight == 2)
            #expect(after.out == 0)
            #expect(after.committed == nil)
        }
    }

    @Test func records_areProducedToTopics_withTheOffsetsInTheAnswer() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            let s = try await setUp(api)
            _ = try await api.json(.put, "/topics/upper", "{\"partitions\": 2}", expect: 201)
            let body = """
                {"producer_id": \(s.producerID), "epoch": \(s.epoch), "sequence": 1,
                 "acks": [{"queue": "in", "receipt_handle": "\(s.handles[0])"}],
                 "records": [{"topic": "upper", "value": "X", "partition": 1}, {"topic": "upper", "value": "Y", "key": "k"}],
                 "offsets": [{"topic": "t", "group": "g", "partition": 0, "offset": 1, "member_id": "\(s.member)", "generation": \(s.generation)}]}
                """
            let committed = try await api.json(.post, "/transactions", body, expect: 200)
            let records = try #require(committed["records"] as? [[String: Any]])
            #expect(records.count == 2)
            #expect(records.first?["partition"] as? Int == 1)
            #expect(records.first?["offset"] as? Int == 0)
            let page = try await api.json(.get, "/topics/upper/partitions/1/messages?offset=0", expect: 200)
            #expect((page["messages"] as? [[String: Any]])?.first?["value"] as? String == "X")
            let after = try await state(api)
            #expect(after.inFlight == 1)
            #expect(after.committed == 1)
            // An unknown field in a record changes nothing.
            expectError(try await api.request(.post, "/transactions", """
                {"producer_id": \(s.producerID), "epoch": \(s.epoch), "records": [{"topic": "upper", "value": "Z", "colour": "red"}]}
                """), .invalidParameter)
            let described = try await api.json(.get, "/topics/upper", expect: 200)
            #expect(described["messages"] as? Int == 2)
        }
    }
}
