import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import TernBroker
import TernCore
import TernServer
import TernStorage
import TernTestKit
import Testing

/// The HTTP API over a real broker on a temporary data directory, with a ``ManualClock``:
/// nothing in these tests waits for real time.
///
/// ```swift
/// let f = try await ServerFixture()
/// try await f.run { api in
///     try await api.createQueue("q")
///     #expect(try await api.request(.get, "/queues/q").status == 200)
/// }
/// ```
final class ServerFixture: @unchecked Sendable {
    let directory: TemporaryDirectory
    let clock = ManualClock()
    let storage: Storage
    let broker: Broker
    let settings: HTTPAPI.Settings

    init(settings: HTTPAPI.Settings = HTTPAPI.Settings()) async throws {
        directory = try TemporaryDirectory(prefix: "tern-server")
        self.settings = settings
        var storageSettings = Storage.Settings()
        storageSettings.durable = false
        storageSettings.maxMapBytes = 256 << 20
        storage = try Storage(directory: directory.path, databases: Broker.databaseNames, settings: storageSettings,
                              logger: Self.logger)
        broker = try await Broker.open(storage: storage, clock: clock, logger: Self.logger)
    }

    deinit {
        storage.close()
        directory.remove()
    }

    static let logger: Logger = {
        var logger = Logger(label: "tern-server-tests")
        logger.logLevel = .warning
        return logger
    }()

    /// Runs `body` against `Application(router: HTTPAPI.router(broker:))` in the given testing
    /// setup (in-process router, live server over a socket, or AsyncHTTPClient).
    func run(_ setup: TestingSetup = .router, _ body: @Sendable (API) async throws -> Void) async throws {
        let app = Application(router: HTTPAPI.router(broker: broker, settings: settings), logger: Self.logger)
        try await app.test(setup) { client in try await body(API(client: client)) }
    }
}

/// A response: status and body bytes.
struct Reply: Sendable, CustomStringConvertible {
    var status: Int
    var bytes: [UInt8]
    var contentType: String?

    var text: String { String(decoding: bytes, as: UTF8.self) }
    var description: String { "\(status) \(text.prefix(300))" }

    /// `error.code` of an error body, nil when the body is not one.
    var errorCode: String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
            let error = object["error"] as? [String: Any]
        else { return nil }
        return error["code"] as? String
    }

    func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(T.self, from: Data(bytes))
    }

    /// The body as a JSON object (for checking exact key sets).
    func object() throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any], "not a JSON object: \(self)")
    }
}

// MARK: Response shapes (docs/openapi.yaml)

struct QueueDescriptionBody: Decodable, Equatable {
    struct Attributes: Decodable, Equatable {
        var visibilityTimeout: Int
        var retention: Int
        var maxMessageBytes: Int
        var delay: Int
        var maxReceiveCount: Int?
        var deadLetterQueue: String?
        var fifo: Bool
        var maxMessages: Int?
        var maxBytes: Int?
    }
    struct Counts: Decodable, Equatable {
        var ready: UInt64
        var inFlight: UInt64
        var delayed: UInt64
        var total: UInt64
    }
    var name: String
    var attributes: Attributes
    var messages: Counts
    var bytes: UInt64
    var createdAt: UInt64
    var oldestMessageAge: Double?
}

struct QueueListBody: Decodable, Equatable {
    var queues: [QueueDescriptionBody]
}

struct SentBody: Decodable, Equatable {
    var id: String
    var sequence: UInt64
    var visibleAt: UInt64
}

struct SentBatchBody: Decodable, Equatable {
    var messages: [SentBody]
}

struct ReceivedBody: Decodable, Equatable {
    var id: String
    var body: String
    var receiptHandle: String
    var receiveCount: Int
    var priority: Int
    var sentAt: UInt64
}

struct ReceivedBatchBody: Decodable, Equatable {
    var messages: [ReceivedBody]
}

// MARK: Client

/// A thin JSON client over a HummingbirdTesting client; every helper that "expects" checks
/// the status and records an issue at the caller's location when it differs.
struct API: Sendable {
    let client: any TestClientProtocol

    /// A receipt handle Tern could have issued (version 1, queue 1, sequence 0, non-zero
    /// nonce) but did not.
    static let wellFormedHandle = "01" + "00000001" + "0000000000000000" + String(repeating: "0", count: 31) + "1"

    func request(_ method: HTTPRequest.Method, _ uri: String, _ body: String? = nil) async throws -> Reply {
        try await request(method, uri, bytes: body.map { Array($0.utf8) })
    }

    func request(_ method: HTTPRequest.Method, _ uri: String, bytes: [UInt8]?) async throws -> Reply {
        var headers: HTTPFields = [:]
        if bytes != nil { headers[.contentType] = "application/json" }
        let response = try await client.executeRequest(uri: uri, method: method, headers: headers,
                                                       body: bytes.map { ByteBuffer(bytes: $0) })
        return Reply(status: Int(response.status.code), bytes: Array(response.body.readableBytesView),
                     contentType: response.headers[.contentType])
    }

    /// A JSON string literal for `text` (escapes as JSONEncoder writes them).
    static func jsonString(_ text: String) -> String {
        String(decoding: try! JSONEncoder().encode(text), as: UTF8.self)
    }

    @discardableResult
    func createQueue(_ name: String, _ attributes: String = "{}",
                     sourceLocation: SourceLocation = #_sourceLocation) async throws -> QueueDescriptionBody {
        let reply = try await request(.put, "/queues/\(name)", attributes)
        try #require(reply.status == 201, "PUT /queues/\(name) \(attributes): \(reply)", sourceLocation: sourceLocation)
        return try reply.decode()
    }

    func describe(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> QueueDescriptionBody {
        let reply = try await request(.get, "/queues/\(name)")
        try #require(reply.status == 200, "GET /queues/\(name): \(reply)", sourceLocation: sourceLocation)
        return try reply.decode()
    }

    /// Every queue with its attributes and counts: the state a rejected request must not change.
    func snapshot(sourceLocation: SourceLocation = #_sourceLocation) async throws -> [QueueDescriptionBody] {
        let reply = try await request(.get, "/queues")
        try #require(reply.status == 200, "GET /queues: \(reply)", sourceLocation: sourceLocation)
        return try reply.decode(QueueListBody.self).queues
    }

    @discardableResult
    func send(_ queue: String, _ text: String, priority: Int? = nil, delay: Int? = nil,
              sourceLocation: SourceLocation = #_sourceLocation) async throws -> SentBody {
        var fields = ["\"message\": \(Self.jsonString(text))"]
        if let priority { fields.append("\"priority\": \(priority)") }
        if let delay { fields.append("\"delay\": \(delay)") }
        let reply = try await request(.post, "/queues/\(queue)/messages", "{\(fields.joined(separator: ", "))}")
        try #require(reply.status == 201, "send to \(queue): \(reply)", sourceLocation: sourceLocation)
        return try reply.decode()
    }

    func receive(_ queue: String, _ query: String = "batch_size=10",
                 sourceLocation: SourceLocation = #_sourceLocation) async throws -> [ReceivedBody] {
        let reply = try await request(.get, "/queues/\(queue)/messages?\(query)")
        try #require(reply.status == 200, "receive from \(queue)?\(query): \(reply)", sourceLocation: sourceLocation)
        return try reply.decode(ReceivedBatchBody.self).messages
    }

    func acknowledge(_ queue: String, _ handle: String) async throws -> Reply {
        try await request(.delete, "/queues/\(queue)/messages/\(handle)")
    }

    func changeVisibility(_ queue: String, _ handle: String, _ seconds: Int) async throws -> Reply {
        try await request(.patch, "/queues/\(queue)/messages/\(handle)", "{\"visibility_timeout\": \(seconds)}")
    }
}

/// Checks that `reply` is the error body `{"error": {"code", "message"}}` with `code`'s name
/// and HTTP status.
func expectError(_ reply: Reply, _ code: ErrorCode, _ comment: String = "",
                 sourceLocation: SourceLocation = #_sourceLocation) {
    let context = comment.isEmpty ? "" : " (\(comment))"
    #expect(reply.status == code.httpStatus, "status of \(reply)\(context)", sourceLocation: sourceLocation)
    #expect(reply.errorCode == code.name, "code of \(reply)\(context)", sourceLocation: sourceLocation)
    expectErrorShape(reply, sourceLocation: sourceLocation)
}

/// Checks that `reply` is an error body of the documented shape (and not a 500).
func expectErrorShape(_ reply: Reply, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(reply.status < 500 || reply.status == 507 || reply.status == 503, "\(reply)", sourceLocation: sourceLocation)
    #expect(reply.contentType == "application/json", "content type of \(reply)", sourceLocation: sourceLocation)
    guard let object = try? JSONSerialization.jsonObject(with: Data(reply.bytes)) as? [String: Any],
        let error = object["error"] as? [String: Any]
    else {
        Issue.record("not an error body: \(reply)", sourceLocation: sourceLocation)
        return
    }
    #expect(Set(object.keys) == ["error"], "\(reply)", sourceLocation: sourceLocation)
    #expect(Set(error.keys) == ["code", "message"], "\(reply)", sourceLocation: sourceLocation)
    #expect((error["message"] as? String)?.isEmpty == false, "\(reply)", sourceLocation: sourceLocation)
    if let code = error["code"] as? String {
        #expect(ErrorCode.all.contains { $0.name == code }, "unregistered code \(code)", sourceLocation: sourceLocation)
    }
}

extension String {
    /// UTF-8 bytes, for byte-exact comparisons (`==` on `String` is canonical equivalence).
    var bytes: [UInt8] { Array(utf8) }
}
