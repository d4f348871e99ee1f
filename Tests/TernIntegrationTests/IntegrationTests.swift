import AsyncHTTPClient
import Foundation
import Testing
import TernTestKit

/// Black-box tests of the real `ternd` and `tern` executables over real sockets.
///
/// The suites below run one after another (each starts its own `ternd` on its own data
/// directory and port; run side by side they would compete for the two cores and the disk).
/// Failures print where the server's log is kept.
@Suite(.serialized) struct IntegrationTests {}

/// Starts `ternd` in a fresh temporary directory, runs `body`, then stops the server (SIGTERM; its
/// exit status is checked by ConfigTests). The directory is removed when `body` succeeds and kept
/// (its path printed) when it throws.
func withServer<T>(
    _ extraArguments: [String] = [],
    _ body: (TernProcess, TemporaryDirectory) async throws -> T
) async throws -> T {
    let root = try TemporaryDirectory(prefix: "tern-it")
    let server: TernProcess
    do {
        server = try await TernProcess.launch(in: root, extraArguments: extraArguments)
    } catch {
        print("ternd did not start; data and log kept in \(root.path)")
        throw error
    }
    do {
        let result = try await body(server, root)
        await server.terminate()
        root.remove()
        return result
    } catch {
        await server.terminate()
        print("test failed; ternd data and log kept in \(root.path)")
        throw error
    }
}

/// The queue calls of Tern's HTTP API, as a client sees them.
struct QueueAPI: Sendable {
    let baseURL: String
    let http: HTTP

    init(baseURL: String, client: HTTPClient = .shared) {
        self.baseURL = baseURL
        self.http = HTTP(client: client)
    }

    /// One delivered message.
    struct Received: Sendable, Hashable {
        var id: String
        var body: String
        var receiptHandle: String
        var receiveCount: Int
        var priority: Int
    }

    func url(_ queue: String, _ suffix: String = "") -> String { "\(baseURL)/queues/\(queue)\(suffix)" }

    @discardableResult
    func createQueue(_ queue: String, attributes: [String: Any] = [:]) async throws -> (status: Int, body: Data) {
        try await http.request(.PUT, url(queue), json: attributes)
    }

    /// `GET /queues/{name}`: the description, or a thrown ``HTTP/DecodingError`` for any status but 200.
    func describe(_ queue: String) async throws -> [String: Any] {
        let (status, body) = try await http.request(.GET, url(queue))
        guard status == 200 else {
            throw HTTP.DecodingError(message: "GET /queues/\(queue) answered \(status): \(String(decoding: body, as: UTF8.self))")
        }
        return try HTTP.object(body)
    }

    /// `messages.total` of the description.
    func total(_ queue: String) async throws -> Int? {
        let description = try await describe(queue)
        return int((description["messages"] as? [String: Any])?["total"])
    }

    func send(_ queue: String, _ body: String, timeout: Duration = .seconds(10)) async throws -> (status: Int, body: Data) {
        try await http.request(.POST, url(queue, "/messages"), json: ["message": body], timeout: timeout)
    }

    /// `GET /queues/{name}/messages`; the messages are parsed only for a 200 answer.
    func receive(_ queue: String, batchSize: Int, visibilityTimeout: Int? = nil, waitTime: Int = 0,
                 timeout: Duration = .seconds(10)) async throws -> (status: Int, messages: [Received], body: Data) {
        var query = "?batch_size=\(batchSize)&wait_time=\(waitTime)"
        if let visibilityTimeout { query += "&visibility_timeout=\(visibilityTimeout)" }
        let (status, body) = try await http.request(.GET, url(queue, "/messages" + query), timeout: timeout)
        guard status == 200 else { return (status, [], body) }
        let object = try HTTP.object(body)
        guard let list = object["messages"] as? [[String: Any]] else {
            throw HTTP.DecodingError(message: "receive answer has no messages array: \(String(decoding: body, as: UTF8.self))")
        }
        let messages = try list.map { item in
            guard let id = item["id"] as? String, let text = item["body"] as? String,
                let handle = item["receipt_handle"] as? String, let count = int(item["receive_count"])
            else { throw HTTP.DecodingError(message: "malformed message in receive answer: \(item)") }
            return Received(id: id, body: text, receiptHandle: handle, receiveCount: count, priority: int(item["priority"]) ?? -1)
        }
        return (status, messages, body)
    }

    func acknowledge(_ queue: String, _ handle: String, timeout: Duration = .seconds(10)) async throws -> Int {
        try await http.request(.DELETE, url(queue, "/messages/\(handle)"), timeout: timeout).status
    }

    func purge(_ queue: String) async throws -> (status: Int, body: Data) {
        try await http.request(.POST, url(queue, "/purge"))
    }

    func delete(_ queue: String) async throws -> Int {
        try await http.request(.DELETE, url(queue)).status
    }
}

/// An integer from a `JSONSerialization` value (`Int` or `NSNumber`).
func int(_ value: Any?) -> Int? {
    switch value {
    case let value as Int: value
    case let value as NSNumber: value.intValue
    default: nil
    }
}

/// Text for failure messages.
func text(_ data: Data) -> String { String(decoding: data.prefix(2_000), as: UTF8.self) }
