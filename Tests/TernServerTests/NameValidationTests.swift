import Foundation
import Hummingbird
import TernCore
import Testing

/// BRIEF §3 "Names": 1–80 characters of `[A-Za-z0-9_-]`, FIFO names end in `.fifo` (counted in
/// the 80), case-sensitive; anything else `400`. (An empty name is a routing matter.)
@Suite struct NameValidationTests {
    static let invalidNames = [
        String(repeating: "a", count: 81),
        String(repeating: "b", count: 76) + ".fifo",  // 81 with the suffix
        "a.b", "a%20b", "%20", "caf%C3%A9", "café", "队列", "🙂", "a+b", "a~b", "a*b", "a:b", "a@b", "a%2Fb",
        ".fifo", "a.fifo.fifo", "a.FIFO", "a.fif", "fifo.", "..",
    ]

    @Test(arguments: invalidNames)
    func putWithInvalidName_isInvalidName_andCreatesNothing(name: String) async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("existing")
            let before = try await api.snapshot()
            expectError(try await api.request(.put, "/queues/\(name)", "{}"), .invalidName, name)
            expectError(try await api.request(.put, "/queues/\(name)"), .invalidName, "\(name), no body")
            #expect(try await api.snapshot() == before)
        }
    }

    /// Every queue route checks the name first, before the body, the query or the handle.
    @Test(arguments: ["a.b", String(repeating: "x", count: 81), "caf%C3%A9"])
    func everyQueueRoute_rejectsAnInvalidName(name: String) async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            let handle = API.wellFormedHandle
            let requests: [(HTTPRequest.Method, String, String?)] = [
                (.get, "/queues/\(name)", nil),
                (.delete, "/queues/\(name)", nil),
                (.post, "/queues/\(name)/purge", nil),
                (.post, "/queues/\(name)/redrive", nil),
                (.post, "/queues/\(name)/messages", "{\"message\": \"m\"}"),
                (.get, "/queues/\(name)/messages", nil),
                (.get, "/queues/\(name)/messages?batch_size=5", nil),
                (.delete, "/queues/\(name)/messages/\(handle)", nil),
                (.patch, "/queues/\(name)/messages/\(handle)", "{\"visibility_timeout\": 5}"),
            ]
            for (method, path, body) in requests {
                expectError(try await api.request(method, path, body), .invalidName, "\(method) \(path)")
            }
        }
    }

    @Test func nameOfExactly80Characters_isAccepted() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            let name = String(repeating: "a", count: 40) + String(repeating: "Z", count: 20) + "0123456789_-_-_-_-_-"
            #expect(name.count == 80)
            let created = try await api.createQueue(name)
            #expect(created.name == name)
            try await api.send(name, "m")
            #expect(try await api.receive(name).map { $0.body } == ["m"])
            #expect(try await api.snapshot().map { $0.name } == [name])
        }
    }

    @Test func namesAreCaseSensitive_distinctQueues() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("Jobs")
            try await api.createQueue("jobs")
            try await api.createQueue("JOBS")
            try await api.send("Jobs", "for Jobs")
            #expect(try await api.describe("jobs").messages.total == 0)
            #expect(try await api.describe("JOBS").messages.total == 0)
            #expect(try await api.describe("Jobs").messages.total == 1)
            #expect(try await api.receive("jobs").isEmpty)
            #expect(try await api.receive("Jobs").map { $0.body } == ["for Jobs"])
            #expect(try await api.snapshot().map { $0.name } == ["JOBS", "Jobs", "jobs"])
            #expect(try await api.request(.delete, "/queues/jobs").status == 204)
            #expect(try await api.snapshot().map { $0.name } == ["JOBS", "Jobs"])
            expectError(try await api.request(.get, "/queues/jOBS"), .queueNotFound)
        }
    }

    /// A `.fifo` name and the `fifo` attribute must agree (BRIEF §3): a mismatch is
    /// `400 InvalidAttribute`, and nothing is created.
    @Test(arguments: [("orders.fifo", "{\"fifo\": false}"), ("orders", "{\"fifo\": true}")])
    func fifoNameAndAttributeMismatch_is400_andCreatesNothing(name: String, body: String) async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            let reply = try await api.request(.put, "/queues/\(name)", body)
            #expect(reply.status == 400, "\(reply)")
            expectErrorShape(reply)
            #expect(try await api.snapshot().isEmpty)
            expectError(try await api.request(.get, "/queues/\(name)"), .queueNotFound)
        }
    }

    /// A `.fifo` name (80 characters at most, suffix included) creates a FIFO queue, with or
    /// without `"fifo": true`.
    @Test(arguments: [("orders.fifo", "{}"), ("orders.fifo", "{\"fifo\": true}"), (String(repeating: "f", count: 75) + ".fifo", "{}")])
    func fifoName_createsAFifoQueue(name: String, body: String) async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            let reply = try await api.request(.put, "/queues/\(name)", body)
            #expect(reply.status == 201, "\(reply)")
            #expect(try await api.describe(name).attributes.fifo)
        }
    }
}
