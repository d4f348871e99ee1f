public import AsyncHTTPClient
public import Foundation
import NIOCore
import NIOHTTP1

/// A small JSON-over-HTTP helper for black-box tests, on AsyncHTTPClient.
///
/// ```swift
/// let http = HTTP()
/// let (status, body) = try await http.request(.PUT, "\(server.baseURL)/queues/orders", json: ["visibility_timeout": 5])
/// let description = try HTTP.object(body)
/// ```
public struct HTTP: Sendable {
    /// The client requests go through (default `HTTPClient.shared`, which needs no shutdown).
    public let client: HTTPClient
    /// The most response body bytes read, in bytes. Default 64 MiB.
    public var maxResponseBytes = 64 << 20

    public init(client: HTTPClient = .shared) {
        self.client = client
    }

    /// Runs `body` with a client of its own that allows up to `connectionsPerHost` concurrent
    /// HTTP/1.1 connections to one server (the shared client allows 8), for tests that want many
    /// requests in flight so that group commit has something to batch. The client is shut down
    /// when `body` returns or throws (AsyncHTTPClient traps in debug builds on a client that is
    /// released without a shutdown).
    public static func withClient<T>(connectionsPerHost: Int = 64, _ body: (HTTPClient) async throws -> T) async throws -> T {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60),
                                             concurrentHTTP1ConnectionsPerHostSoftLimit: connectionsPerHost)
        configuration.timeout = .init(connect: .seconds(5))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            let result = try await body(client)
            try await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// The request methods the Tern API uses.
    public enum Method: String, Sendable {
        case GET, PUT, POST, PATCH, DELETE, HEAD
    }

    /// Sends `method url` with `json` serialized as the body (`Content-Type: application/json`).
    /// - Parameters:
    ///   - json: a JSON object (`JSONSerialization` types); nil sends no body.
    ///   - timeout: the whole request's deadline. Default 30 s.
    /// - Returns: the status code and the complete response body.
    /// - Throws: connection errors (refused, reset, timed out) as AsyncHTTPClient reports them,
    ///   and `JSONSerialization` errors for a body that is not valid JSON.
    public func request(_ method: Method, _ url: String, json: [String: Any]?,
                        timeout: Duration = .seconds(30)) async throws -> (status: Int, body: Data) {
        let data = try json.map { try JSONSerialization.data(withJSONObject: $0) }
        return try await request(method, url, body: data, timeout: timeout)
    }

    /// Sends `method url` with `body` as it is (`Content-Type: application/json` when non-nil).
    /// - Returns: the status code and the complete response body.
    /// - Throws: connection errors as AsyncHTTPClient reports them.
    public func request(_ method: Method, _ url: String, body: Data? = nil,
                        timeout: Duration = .seconds(30)) async throws -> (status: Int, body: Data) {
        var request = HTTPClientRequest(url: url)
        request.method = HTTPMethod(rawValue: method.rawValue)
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let (seconds, attoseconds) = timeout.components
        let response = try await client.execute(request, timeout: .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000))
        let buffer = try await response.body.collect(upTo: maxResponseBytes)
        return (Int(response.status.code), Data(buffer.readableBytesView))
    }

    /// Parses `data` as a JSON object.
    /// - Throws: ``HTTP/DecodingError`` when `data` is not a JSON object (the message quotes it).
    public static func object(_ data: Data) throws -> [String: Any] {
        guard let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) as? [String: Any] else {
            throw DecodingError(message: "not a JSON object: \(String(decoding: data.prefix(500), as: UTF8.self))")
        }
        return object
    }

    /// Decodes `data` as `T` with `JSONDecoder` (snake_case keys are converted to camelCase).
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(type, from: data)
    }

    /// The `error.code` of an error body `{"error": {"code": ..., "message": ...}}`, nil when
    /// `data` has no such field.
    public static func errorCode(_ data: Data) -> String? {
        guard let object = try? object(data), let error = object["error"] as? [String: Any] else { return nil }
        return error["code"] as? String
    }

    /// A response body that is not what a test expected.
    public struct DecodingError: Error, CustomStringConvertible {
        public var message: String
        public init(message: String) { self.message = message }
        public var description: String { message }
    }
}
