import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import TernBroker
import TernCore

extension HTTPAPI {
    /// The operator-facing parts of the HTTP API: `/metrics`, `/alerts`, `/console`, peeking,
    /// bearer-token authentication and error counting. Everything is optional; the default
    /// serves the console and peek, with authentication off.
    public struct Operations: Sendable {
        /// Rendered at `GET /metrics`; also counts errors by code. nil: `/metrics` answers 404.
        public var metrics: TernMetrics?
        /// Listed at `GET /alerts`. nil: the list is empty.
        public var alerts: AlertMonitor?
        /// Bearer-token authentication (off by default).
        public var auth = Auth.Settings()
        /// Whether `/console` is served. Default true.
        public var console = true
        /// The gossip membership shown at `GET /cluster/members`; nil: the node runs alone.
        public var cluster: GossipService?
        /// This node's part in a cluster (replication, forwarding, `GET /cluster`); nil: the
        /// node runs alone.
        public var clusterNode: ClusterNode?

        public init(metrics: TernMetrics? = nil, alerts: AlertMonitor? = nil, auth: Auth.Settings = Auth.Settings()) {
            self.metrics = metrics
            self.alerts = alerts
            self.auth = auth
        }

        /// Middleware that must wrap every route (Hummingbird applies a router's middleware to the
        /// routes added after it): error counting, then authentication.
        func installMiddleware(on router: Router<BasicRequestContext>) {
            if let metrics { router.add(middleware: ErrorCountingMiddleware(metrics: metrics)) }
            if auth.enabled { router.add(middleware: AuthMiddleware(authenticator: Authenticator(settings: auth))) }
        }

        /// The operator routes.
        func installRoutes(on router: Router<BasicRequestContext>, broker: Broker) {
            let metrics = self.metrics
            router.get("/metrics") { _, _ -> Response in
                guard let metrics else { throw TernError(.unavailable, "metrics are disabled (metrics: false)") }
                let bytes = metrics.render()
                return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                                body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
            }
            let alerts = self.alerts
            router.get("/alerts") { _, _ -> Response in
                try json(.ok, AlertList(alerts?.firing ?? [], rules: alerts?.rules ?? []))
            }
            router.get("/queues/:name/peek") { request, context -> Response in
                guard let raw = context.parameters.get("name") else { throw TernError(.invalidName, "missing queue name") }
                let name = try QueueName(raw)
                var max = 10
                for (key, value) in request.uri.queryParameters {
                    guard key == "max" else { throw TernError(.invalidParameter, "unknown query parameter \(key)") }
                    guard let parsed = Int(value), (1...100).contains(parsed) else {
                        throw TernError(.invalidParameter, "max must be an integer 1–100, got \"\(value)\"")
                    }
                    max = parsed
                }
                let messages = try broker.peek(name, maxMessages: max)
                return try json(.ok, PeekedBatch(messages: messages.map(PeekedDescription.init)))
            }
            installClusterRoutes(on: router)
            if console {
                router.get("/console") { _, _ -> Response in
                    Response(status: .ok, headers: Self.consoleHeaders("text/html; charset=utf-8"),
                             body: .init(byteBuffer: ByteBuffer(string: Console.html)))
                }
                router.get("/console/console.js") { _, _ -> Response in
                    Response(status: .ok, headers: Self.consoleHeaders("text/javascript; charset=utf-8"),
                             body: .init(byteBuffer: ByteBuffer(string: Console.script)))
                }
            }
        }

        /// The console's headers: no caching, its CSP, no framing, no MIME sniffing, no referrer.
        static func consoleHeaders(_ contentType: String) -> HTTPFields {
            [.contentType: contentType, .cacheControl: "no-store",
             .contentSecurityPolicy: Console.contentSecurityPolicy, HTTPField.Name("X-Frame-Options")!: "DENY",
             HTTPField.Name("X-Content-Type-Options")!: "nosniff", HTTPField.Name("Referrer-Policy")!: "no-referrer"]
        }

        /// The routes of ``installRoutes(on:broker:)``, as `METHOD /path`.
        static let routes = ["GET /metrics", "GET /alerts", "GET /queues/{name}/peek", "GET /console", "GET /console/console.js"] + clusterRoutes
    }
}

/// Counts every failed request by its error code (`tern_errors_total{code}`), then rethrows.
struct ErrorCountingMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: TernMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as TernError {
            metrics.recordError(error.code)
            throw error
        } catch let error as HTTPError {
            switch error.status {
            case .notFound: metrics.recordError(.routeNotFound)
            case .contentTooLarge: metrics.recordError(.requestTooLarge)
            default: metrics.recordError(error.status.code < 500 ? .invalidParameter : .internalError)
            }
            throw error
        } catch {
            metrics.recordError(.internalError)
            throw error
        }
    }
}

/// Counts open client connections for `tern_http_open_connections` or
/// `tern_binary_open_connections`.
final class ConnectionCounter: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = Any
    let metrics: TernMetrics
    let binary: Bool

    init(metrics: TernMetrics, binary: Bool = false) {
        self.metrics = metrics
        self.binary = binary
    }

    func handlerAdded(context: ChannelHandlerContext) { metrics.connectionsChanged(by: 1, binary: binary) }
    func handlerRemoved(context: ChannelHandlerContext) { metrics.connectionsChanged(by: -1, binary: binary) }
}

struct AlertList: Encodable {
    struct Item: Encodable {
        var name: String
        var subject: String
        var condition: String
        var value: Double
        var fired_at: UInt64
    }
    struct RuleItem: Encodable {
        var name: String
        var condition: String
        var pattern: String
        var for_seconds: Double
    }
    var alerts: [Item]
    var rules: [RuleItem]

    init(_ alerts: [Alerts.Alert], rules: [Alerts.Rule]) {
        self.alerts = alerts.map {
            Item(name: $0.name, subject: $0.subject, condition: $0.condition.description, value: $0.value,
                 fired_at: $0.firedAt.milliseconds)
        }
        self.rules = rules.map {
            RuleItem(name: $0.name, condition: $0.condition.description, pattern: $0.pattern.text,
                     for_seconds: Double($0.holdFor.components.seconds) + Double($0.holdFor.components.attoseconds) / 1e18)
        }
    }
}

struct PeekedDescription: Encodable {
    var id: String
    var body: String
    var priority: UInt8
    var receive_count: UInt32
    var sent_at: UInt64

    init(_ message: PeekedMessage) {
        id = message.id.description
        body = String(decoding: message.body, as: UTF8.self)
        priority = message.priority
        receive_count = message.receiveCount
        sent_at = message.sentAt.milliseconds
    }
}

struct PeekedBatch: Encodable {
    var messages: [PeekedDescription]
}
