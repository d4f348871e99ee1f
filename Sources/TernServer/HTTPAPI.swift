import Foundation
public import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
public import TernBroker
import TernCore

/// The HTTP/JSON API of BRIEF §3 on Hummingbird 2 (described in `docs/openapi.yaml`).
///
/// Every failure is rendered as `{"error": {"code": "…", "message": "…"}}` with the code's
/// HTTP status; bad input never reaches the broker's state.
public enum HTTPAPI {
    /// Settings of the HTTP API.
    public struct Settings: Sendable {
        /// The largest accepted request body, in bytes. Default 64 MiB.
        public var maxRequestBytes: Int = 64 << 20
        /// Origins (`scheme://host[:port]`) that may call the API from a browser: CORS
        /// answers for them, and their state-changing requests pass the cross-origin check.
        /// Default none (CORS off). `--cors-origins`.
        public var corsOrigins: [String] = []
        /// Whether the `Host` header must name loopback or one of ``allowedHosts`` (DNS-rebinding
        /// protection). `ternd` turns it on when the HTTP listener is bound to loopback, or
        /// when ``allowedHosts`` is not empty. Default false.
        public var enforceAllowedHosts = false
        /// Host names accepted besides loopback ones, when ``enforceAllowedHosts`` is on.
        /// `--allowed-hosts`.
        public var allowedHosts: [String] = []
        /// The process-wide budget for bytes of request bodies being received (shared with the
        /// binary listener); past it a request is answered `503 Overloaded` with `Retry-After`.
        /// nil = no budget.
        public var requestBytes: RequestBytesBudget?
        public init() {}
    }

    /// Builds the router with every route; `operations` adds metrics, alerts, the console and
    /// authentication (see `Metrics+HTTP.swift`).
    public static func router(broker: Broker, settings: Settings = Settings(), operations: Operations = Operations()) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        if !settings.corsOrigins.isEmpty { router.add(middleware: CORSMiddleware(origins: Set(settings.corsOrigins))) }
        router.add(middleware: ErrorMiddleware())
        router.add(middleware: BrowserProtectionMiddleware(settings: settings, auth: operations.auth))
        operations.installMiddleware(on: router)
        if let node = operations.clusterNode {
            router.add(middleware: ClusterForwardingMiddleware(node: node, maxRequestBytes: settings.maxRequestBytes))
        }
        operations.installRoutes(on: router, broker: broker)
        let api = Handlers(nodeBroker: broker, settings: settings,
                           authenticator: operations.auth.enabled ? Authenticator(settings: operations.auth) : nil)

        router.get("/health") { _, _ in try json(.ok, ["status": "ok"]) }
        router.get("/queues") { _, _ in try await api.listQueues() }
        router.put("/queues/:name") { request, context in try await api.putQueue(request, context) }
        router.get("/queues/:name") { _, context in try await api.describeQueue(context) }
        router.delete("/queues/:name") { _, context in try await api.deleteQueue(context) }
        router.post("/queues/:name/purge") { _, context in try await api.purge(context) }
        router.post("/queues/:name/redrive") { _, context in try await api.redrive(context) }
        router.post("/queues/:name/messages") { request, context in try await api.send(request, context) }
        router.get("/queues/:name/messages") { request, context in try await api.receive(request, context) }
        addBatchRoutes(to: router, api)
        router.delete("/queues/:name/messages/:handle") { _, context in try await api.acknowledge(context) }
        router.patch("/queues/:name/messages/:handle") { request, context in try await api.changeVisibility(request, context) }
        addTopicRoutes(to: router, api)
        addTransactionRoutes(to: router, api)
        return router
    }

    /// Every route as `METHOD /path/{param}`, for the test that keeps the server and
    /// `docs/openapi.yaml` in agreement.
    public static let routes: [String] = [
        "GET /health", "GET /queues", "PUT /queues/{name}", "GET /queues/{name}", "DELETE /queues/{name}",
        "POST /queues/{name}/purge", "POST /queues/{name}/redrive", "POST /queues/{name}/messages",
        "GET /queues/{name}/messages", "DELETE /queues/{name}/messages/{receipt_handle}",
        "PATCH /queues/{name}/messages/{receipt_handle}",
    ] + batchRoutes + topicRoutes + Operations.routes + transactionRoutes

    /// The methods that `path` has among ``routes`` (for `405` and `Allow`), empty when no
    /// route has this path; `{param}` matches one non-empty segment.
    static func allowedMethods(path: String) -> [String] {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        var methods: [String] = []
        for route in routes {
            let parts = route.split(separator: " ", maxSplits: 1)
            let template = parts[1].split(separator: "/", omittingEmptySubsequences: false).dropFirst()
            guard template.count == segments.count else { continue }
            let matches = zip(template, segments).allSatisfy { t, s in
                t.hasPrefix("{") ? !s.isEmpty : t == s
            }
            if matches && !methods.contains(String(parts[0])) { methods.append(String(parts[0])) }
        }
        let order = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
        return methods.sorted { (order.firstIndex(of: $0) ?? 99) < (order.firstIndex(of: $1) ?? 99) }
    }
}

/// The broker a request is served by when it is not the node's own: a queue group's
/// (decision 140), set by ``ClusterForwardingMiddleware`` for the request's task.
enum ServingBroker {
    @TaskLocal static var current: Broker?
}

struct Handlers: Sendable {
    /// The node's own broker (alone, or the data group's).
    let nodeBroker: Broker
    /// The broker this request is served by: a queue group's, or the node's own.
    var broker: Broker { ServingBroker.current ?? nodeBroker }
    let settings: HTTPAPI.Settings
    /// For checks that need the body (a transaction's queues and topics); nil = auth off.
    var authenticator: Authenticator? = nil

    func queueName(_ context: BasicRequestContext) throws(TernError) -> QueueName {
        guard let raw = context.parameters.get("name") else { throw TernError(.invalidName, "missing queue name") }
        return try QueueName(raw)
    }

    /// The request body, at most ``HTTPAPI/Settings/maxRequestBytes``; its bytes count in the
    /// request-bytes budget while they arrive.
    /// - Throws: ``TernError`` `RequestTooLarge` past the limit, `Overloaded` (503, with
    ///   `Retry-After`) when the budget has no room, `MalformedRequest` for a broken chunked body.
    func body(_ request: Request) async throws -> [UInt8] {
        let limit = settings.maxRequestBytes
        var bytes: [UInt8] = []
        var reserved = 0
        defer { settings.requestBytes?.release(reserved) }
        for try await chunk in request.body {
            guard bytes.count + chunk.readableBytes <= limit else {
                throw TernError(.requestTooLarge, "the request body exceeds \(limit) bytes")
            }
            if let budget = settings.requestBytes {
                guard budget.tryReserve(chunk.readableBytes) else {
                    throw TernError(.overloaded, "the server is receiving too many request bodies (\(budget.limit) bytes); retry later")
                }
                reserved += chunk.readableBytes
            }
            bytes.append(contentsOf: chunk.readableBytesView)
        }
        return bytes
    }

    func listQueues() async throws -> Response {
        let now = broker.clock.now
        return try json(.ok, QueueList(queues: try broker.listQueues().map { QueueDescription($0, now: now) }))
    }

    func putQueue(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let name = try queueName(context)
        let bytes = try await body(request)
        let patch = bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 })
            ? QueueAttributes.Patch() : try JSONBody.decode(QueueAttributesBody.self, from: bytes).patch
        let (created, info) = try await broker.createOrUpdateQueue(name, patch: patch)
        return try json(created ? .created : .ok, QueueDescription(info, now: broker.clock.now))
    }

    func describeQueue(_ context: BasicRequestContext) async throws -> Response {
        let info = try broker.describeQueue(try queueName(context))
        return try json(.ok, QueueDescription(info, now: broker.clock.now))
    }

    func deleteQueue(_ context: BasicRequestContext) async throws -> Response {
        try await broker.deleteQueue(try queueName(context))
        return Response(status: .noContent)
    }

    func purge(_ context: BasicRequestContext) async throws -> Response {
        let purged = try await broker.purgeQueue(try queueName(context))
        return try json(.ok, ["purged": purged])
    }

    func redrive(_ context: BasicRequestContext) async throws -> Response {
        let moved = try await broker.redrive(try queueName(context))
        return try json(.ok, ["moved": moved])
    }

    func send(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let name = try queueName(context)
        let parsed = try JSONBody.decode(SendBody.self, from: try await body(request))
        let sent = try await broker.send(name, parsed.messages)
        // FIFO: 200 when every message was a duplicate (nothing stored), else 201.
        let status: HTTPResponse.Status = sent.allSatisfy(\.duplicate) ? .ok : .created
        if parsed.isBatch {
            return try json(status, SentBatch(messages: sent.map(SentDescription.init)))
        }
        return try json(status, SentDescription(sent[0]))
    }

    func receive(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let name = try queueName(context)
        let query = request.uri.queryParameters
        func integer(_ key: String, _ range: ClosedRange<Int>) throws(TernError) -> Int? {
            guard let raw = query[key[...]] else { return nil }
            guard let value = Int(raw), range.contains(value) else {
                throw TernError(.invalidParameter, "\(key) must be an integer \(range.lowerBound)–\(range.upperBound), got \"\(raw)\"")
            }
            return value
        }
        for key in query.map({ String($0.key) }) where !["batch_size", "visibility_timeout", "wait_time", "auto_ack"].contains(key) {
            throw TernError(.invalidParameter, "unknown query parameter \(key)")
        }
        let batchSize = try integer("batch_size", Broker.batchSizeRange) ?? 1
        let visibilityTimeout = try integer("visibility_timeout", QueueAttributes.visibilityTimeoutRange)
        let waitTime = try integer("wait_time", Broker.waitTimeRange) ?? 0
        var autoAck = false
        if let raw = query["auto_ack"] {
            guard raw == "true" || raw == "false" else { throw TernError(.invalidParameter, "auto_ack must be true or false") }
            autoAck = raw == "true"
        }
        let messages = try await broker.receive(name, maxMessages: batchSize, visibilityTimeout: visibilityTimeout,
                                                waitTime: waitTime, autoAcknowledge: autoAck)
        return try json(.ok, ReceivedBatch(messages: messages.map(ReceivedDescription.init)))
    }

    func acknowledge(_ context: BasicRequestContext) async throws -> Response {
        let name = try queueName(context)
        try await broker.acknowledge(name, receiptHandle: context.parameters.get("handle") ?? "")
        return Response(status: .noContent)
    }

    func changeVisibility(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let name = try queueName(context)
        let parsed = try JSONBody.decode(VisibilityBody.self, from: try await body(request))
        try await broker.changeVisibility(name, receiptHandle: context.parameters.get("handle") ?? "", timeout: parsed.visibilityTimeout)
        return Response(status: .noContent)
    }
}

let jsonEncoder: JSONEncoder = {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
    return encoder
}()

func json(_ status: HTTPResponse.Status, _ value: some Encodable) throws -> Response {
    let data = try jsonEncoder.encode(value)
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

/// Renders every error as the stable JSON error body.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as TernError {
            return render(error)
        } catch let error as HTTPParserError {
            var response = render(TernError(.malformedRequest, "the request is not valid HTTP/1.1 (\(error))"))
            response.headers[.connection] = "close"
            return response
        } catch let error as HTTPError {
            switch error.status {
            case .notFound:
                let allowed = HTTPAPI.allowedMethods(path: request.uri.path)
                if !allowed.isEmpty {
                    var response = render(TernError(.methodNotAllowed, "\(request.method) is not allowed on \(request.uri.path); allowed: \(allowed.joined(separator: ", "))"))
                    response.headers[.allow] = allowed.joined(separator: ", ")
                    return response
                }
                return render(TernError(.routeNotFound, "no route for \(request.method) \(request.uri.path)"))
            case .methodNotAllowed: return render(TernError(.methodNotAllowed, "\(request.method) is not allowed on \(request.uri.path)"))
            case .contentTooLarge: return render(TernError(.requestTooLarge, "the request body is too large"))
            default:
                if error.status.code < 500 { return render(TernError(.invalidParameter, error.body ?? "\(error.status)")) }
                return render(TernError(.internalError, error.body ?? "\(error.status)"))
            }
        } catch {
            context.logger.error("request failed", metadata: ["tern.error": "\(error)"])
            return render(TernError(.internalError, "\(error)"))
        }
    }

    func render(_ error: TernError) -> Response {
        let body = ErrorBody(error: .init(code: error.code.name, message: error.message))
        let data = (try? jsonEncoder.encode(body)) ?? Data()
        var headers: HTTPFields = [.contentType: "application/json"]
        if error.code == .unauthorized { headers[.wwwAuthenticate] = "Bearer realm=\"tern\"" }
        if error.code == .overloaded || error.code == .unavailable || error.code == .notLeader { headers[.retryAfter] = "1" }
        if error.code == .malformedRequest { headers[.connection] = "close" }
        return Response(status: .init(code: error.code.httpStatus), headers: headers,
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
