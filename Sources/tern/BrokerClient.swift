import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

/// A failure the command line reports and exits on (status 1).
enum ClientError: Error, CustomStringConvertible {
    /// The server answered with its error body `{"error": {"code", "message"}}`.
    case server(status: Int, code: String, message: String)
    /// The server answered something this client does not understand.
    case unexpectedResponse(status: Int, detail: String)
    /// No connection could be made (refused, unreachable, timed out).
    case unreachable(server: String, cause: String)
    /// The request failed in transit after a connection was made.
    case transport(server: String, cause: String)
    /// Bad input on this side (standard input, arguments).
    case input(String)

    var description: String {
        switch self {
        case .server(_, let code, let message):
            return "\(code): \(message)"
        case .unexpectedResponse(let status, let detail):
            return "unexpected response (HTTP \(status)): \(detail)"
        case .unreachable(let server, let cause):
            return "cannot connect to ternd at \(server) (\(cause)); is it running? "
                + "Point --server or TERN_SERVER at it"
        case .transport(let server, let cause):
            return "request to \(server) failed: \(cause)"
        case .input(let message):
            return message
        }
    }

    /// Whether trying the same request again may succeed: connection failures and 5xx answers other
    /// than `507 StorageFull` (which only an operator can fix).
    var isRetryable: Bool {
        switch self {
        case .unreachable, .transport: return true
        case .server(let status, _, _), .unexpectedResponse(let status, _):
            return status >= 500 && status != 507
        case .input: return false
        }
    }
}

/// A thin client of ternd's HTTP API: builds requests, maps answers to ``API`` types and error
/// bodies to ``ClientError``.
///
/// Owns its `HTTPClient` (a pool of up to 16 HTTP/1.1 connections, so that concurrent acks and
/// batches do not queue behind each other); call ``shutdown()`` when done.
struct BrokerClient: Sendable {
    /// The server's base URL without a trailing slash, e.g. `http://127.0.0.1:7080`.
    let server: String
    /// Sent as `Authorization: Bearer <token>` on every request; never printed.
    private let token: String?
    private let http: HTTPClient
    private static let maxResponseBytes = 512 * 1024 * 1024

    /// - Parameters:
    ///   - server: `http://host:port` or `https://host:port`, with or without a trailing slash; a
    ///     bare `host:port` means http.
    ///   - token: the bearer token, nil when the broker runs without authentication.
    ///   - trustRoots: the CA certificates an `https://` server's certificate must chain to; nil =
    ///     the system's.
    init(server: String, token: String? = nil, trustRoots: [NIOSSLCertificate]? = nil) {
        var base = server
        if !base.contains("://") { base = "http://" + base }
        while base.hasSuffix("/") { base.removeLast() }
        self.server = base
        self.token = token

        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(5), read: nil)
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 16)
        // Fail fast on "connection refused": the commands retry where retrying makes sense.
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.httpVersion = .http1Only
        configuration.decompression = .disabled
        if let trustRoots {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .certificates(trustRoots)
            configuration.tlsConfiguration = tls
        }
        self.http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    /// Closes the connection pool. Call once, after the last request.
    func shutdown() async {
        try? await http.shutdown()
    }

    // MARK: Requests

    /// One HTTP exchange; the whole answer body is collected.
    /// - Parameters:
    ///   - path: absolute path with every variable segment already escaped (see ``segment(_:)``).
    ///   - query: query items, escaped here.
    ///   - body: a JSON body, or nil.
    ///   - timeout: for the whole exchange, in seconds (long polls need `wait_time` plus a margin).
    /// - Returns: the status and body of any answer, including 4xx and 5xx.
    /// - Throws: ``ClientError/unreachable(server:cause:)`` or ``ClientError/transport(server:cause:)``.
    func exchange(
        _ method: HTTPMethod, _ path: String, query: [(String, String)] = [], body: Data? = nil,
        timeout: Int64 = 60
    ) async throws -> (status: Int, body: ByteBuffer) {
        var url = server + path
        if !query.isEmpty {
            url += "?" + query.map { "\(Self.escape($0.0))=\(Self.escape($0.1))" }.joined(separator: "&")
        }
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(body)
        }
        request.headers.add(name: "Accept", value: "application/json")
        if let token { request.headers.add(name: "Authorization", value: "Bearer " + token) }
        do {
            let response = try await http.execute(request, timeout: .seconds(timeout))
            let bytes = try await response.body.collect(upTo: Self.maxResponseBytes)
            return (Int(response.status.code), bytes)
        } catch let error as CancellationError {
            throw error
        } catch {
            throw classify(error)
        }
    }

    /// Sends `body` (JSON-encoded when not nil) and decodes a 2xx answer as `Answer`.
    /// - Throws: ``ClientError/server(status:code:message:)`` for every non-2xx answer, or a
    ///   connection error from ``exchange(_:_:query:body:timeout:)``.
    func call<Answer: Decodable>(
        _ method: HTTPMethod, _ path: String, query: [(String, String)] = [], json body: (some Encodable)? = nil as String?,
        timeout: Int64 = 60, as type: Answer.Type = Answer.self
    ) async throws -> (status: Int, answer: Answer) {
        let data = try body.map { try Self.encoder.encode($0) }
        let (status, bytes) = try await exchange(method, path, query: query, body: data, timeout: timeout)
        try Self.check(status: status, body: bytes)
        do {
            return (status, try Self.decoder.decode(Answer.self, from: Data(bytes.readableBytesView)))
        } catch {
            throw ClientError.unexpectedResponse(status: status, detail: "cannot decode \(Answer.self): \(error)")
        }
    }

    /// Like ``call(_:_:query:json:timeout:as:)`` for calls that answer with an empty body (`204`).
    func callWithoutAnswer(
        _ method: HTTPMethod, _ path: String, json body: (some Encodable)? = nil as String?, timeout: Int64 = 60
    ) async throws {
        let data = try body.map { try Self.encoder.encode($0) }
        let (status, bytes) = try await exchange(method, path, body: data, timeout: timeout)
        try Self.check(status: status, body: bytes)
    }

    /// Throws the server's error for any non-2xx status.
    static func check(status: Int, body: ByteBuffer) throws {
        guard !(200..<300).contains(status) else { return }
        let data = Data(body.readableBytesView)
        if let error = try? decoder.decode(API.ErrorResponse.self, from: data) {
            throw ClientError.server(status: status, code: error.error.code, message: error.error.message)
        }
        let text = String(decoding: data.prefix(500), as: UTF8.self)
        throw ClientError.unexpectedResponse(status: status, detail: text.isEmpty ? "empty body" : text)
    }

    // MARK: Paths and encoding

    /// `/queues/{name}` with `name` escaped.
    static func queuePath(_ name: String) -> String { "/queues/" + escape(name) }

    /// Percent-encodes everything but RFC 3986's unreserved characters, so that any string is one
    /// path segment or query value.
    static func escape(_ string: String) -> String {
        var result = ""
        result.reserveCapacity(string.utf8.count)
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                UInt8(ascii: "_"), UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                result.unicodeScalars.append("%")
                result.unicodeScalars.append(Unicode.Scalar(hex[Int(byte >> 4)]))
                result.unicodeScalars.append(Unicode.Scalar(hex[Int(byte & 0x0F)]))
            }
        }
        return result
    }

    /// Encodes request bodies. Slashes are left unescaped (both forms decode to the same string).
    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }

    static var decoder: JSONDecoder { JSONDecoder() }

    private func classify(_ error: any Error) -> ClientError {
        if let error = error as? ClientError { return error }
        let text = String(describing: error)
        let lowered = text.lowercased()
        if let error = error as? HTTPClientError, error == .connectTimeout {
            return .unreachable(server: server, cause: "connect timed out")
        }
        if lowered.contains("connection refused") || lowered.contains("connectionrefused")
            || lowered.contains("econnrefused") || lowered.contains("connect(descriptor")
            || lowered.contains("connectionerror") || lowered.contains("no route to host")
            || lowered.contains("unknown host") || lowered.contains("unknownhost") || lowered.contains("dns error") || lowered.contains("name resolution")
        {
            return .unreachable(server: server, cause: Self.shortCause(text))
        }
        if lowered.contains("invalid constant string") || lowered.contains("invalid http") || lowered.contains("http parser") {
            // A server that does not speak HTTP: most likely ternd's binary-protocol port.
            return .transport(server: server, cause: Self.shortCause(text)
                + " — the server did not answer in HTTP; for ternd's binary protocol (port 7081 by default) use tern://host:port")
        }
        return .transport(server: server, cause: Self.shortCause(text))
    }

    private static func shortCause(_ text: String) -> String {
        let lowered = text.lowercased()
        if lowered.contains("refused") { return "connection refused" }
        if lowered.contains("unknownhost") || lowered.contains("dns error") { return "unknown host" }
        return text.count > 300 ? String(text.prefix(300)) + "…" : text
    }
}
