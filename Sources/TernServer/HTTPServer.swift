import Foundation
import Hummingbird
public import HummingbirdCore
import HummingbirdTLS
import Logging
public import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import TernCore

extension HTTPAPI {
    /// Settings of the HTTP/1.1 listener: connection-level limits that hold before any route
    /// runs (documented with their defaults in `docs/operations.md`).
    public struct ServerSettings: Sendable {
        /// TLS on the listener; nil = plain HTTP.
        public var tls: TLSSettings?
        /// Where open connections are counted (`tern_http_open_connections`); nil = nowhere.
        public var metrics: TernMetrics?
        /// Time from the first byte of a request to the end of its header; a connection that
        /// takes longer is closed (slow-header clients). nil = no limit. Default 10 s (Go's
        /// `http.Server.ReadHeaderTimeout` as commonly set; nginx `client_header_timeout` 60 s).
        public var headerReadTimeout: Duration? = .seconds(10)
        /// A keep-alive connection with no request for this long is closed; nil = never.
        /// Default 60 s (nginx `keepalive_timeout` 75 s, Go's `IdleTimeout` as commonly set).
        public var idleTimeout: Duration? = .seconds(60)
        /// The largest request body, in bytes: a `Content-Length` above it is answered `413`
        /// before the body is read. Default 64 MiB (``HTTPAPI/Settings/maxRequestBytes``).
        public var maxRequestBytes: Int = 64 << 20
        /// The process-wide connection cap (shared with the binary listener); nil = no cap.
        public var connections: ConnectionLimiter?

        public init() {}
    }

    /// The HTTP/1.1 server: plain, or TLS when `tls` is set; counts open connections into
    /// `metrics` when given. The other limits of ``ServerSettings`` keep their defaults.
    /// - Throws: when the certificate or key cannot be loaded.
    public static func serverBuilder(tls: TLSSettings?, metrics: TernMetrics?) throws -> HTTPServerBuilder {
        var settings = ServerSettings()
        settings.tls = tls
        settings.metrics = metrics
        return try serverBuilder(settings: settings)
    }

    /// The HTTP/1.1 server with the limits of `settings`: the connection cap (and its reserve,
    /// see ``ConnectionLimiter``), the header read timeout, the keep-alive idle timeout, and
    /// strict HTTP/1.1 framing (a `Host` header on HTTP/1.1, no transfer coding but `chunked`,
    /// no `Content-Length` above the body limit, `400` for a malformed chunked body).
    /// - Throws: when the certificate or key cannot be loaded.
    public static func serverBuilder(settings: ServerSettings) throws -> HTTPServerBuilder {
        let base = HTTPServerBuilder { responder in GuardedHTTP1Channel(responder: responder, settings: settings) }
        guard let tls = settings.tls else { return base }
        return try .tls(base, tlsConfiguration: try tls.serverConfiguration())
    }
}

/// HTTP/1.1 as Hummingbird's `HTTP1Channel` sets it up, with Tern's guards around the codec:
/// connection cap, header read timeout, framing checks.
struct GuardedHTTP1Channel: ServerChildChannel, HTTPChannelHandler {
    typealias Value = NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>
    let responder: HTTPChannelHandler.Responder
    let settings: HTTPAPI.ServerSettings

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let sync = channel.pipeline.syncOperations
            var reserve = false
            if let connections = settings.connections {
                let limit = ConnectionLimitHandler(limiter: connections, logger: logger)
                try sync.addHandler(limit)
                reserve = limit.admission == .reserve
            }
            if let metrics = settings.metrics { try sync.addHandler(ConnectionCounter(metrics: metrics)) }
            let state = HTTPReadState()
            if let timeout = settings.headerReadTimeout {
                try sync.addHandler(HeaderReadTimeoutHandler(timeout: timeout, state: state))
            }
            try sync.configureHTTPServerPipeline(
                withPipeliningAssistance: false, withErrorHandling: false, withOutboundHeaderValidation: false,
                withEncoderConfiguration: .init())
            try sync.addHandler(HTTP1RequestGuard(maxRequestBytes: settings.maxRequestBytes, reserve: reserve, state: state))
            try sync.addHandler(HTTP1ToHTTPServerCodec(secure: settings.tls != nil))
            try sync.addHandler(HTTPConnectionStateHandler(idleTimeout: settings.idleTimeout, logger: logger))
            return try NIOAsyncChannel(wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
        }
    }

    func handle(value asyncChannel: Value, logger: Logger) async {
        await handleHTTP(asyncChannel: asyncChannel, logger: logger)
    }
}

/// Where a connection is in reading its current request (shared by the two handlers below,
/// both on the channel's event loop).
final class HTTPReadState {
    enum Phase { case idle, head, body }
    var phase = Phase.idle
    var timer: Scheduled<Void>?
}

/// Before the HTTP decoder: starts the header timer at the first byte of a request.
final class HeaderReadTimeoutHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    let timeout: Duration
    let state: HTTPReadState

    init(timeout: Duration, state: HTTPReadState) {
        self.timeout = timeout
        self.state = state
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if state.phase == .idle {
            state.phase = .head
            state.timer = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(timeout)) {
                context.close(promise: nil)
            }
        }
        context.fireChannelRead(data)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        state.timer?.cancel()
        state.timer = nil
    }
}

/// Between the HTTP/1 decoder and the conversion to HTTP types: refuses requests whose
/// framing is wrong before any route sees them, with the JSON error body and
/// `Connection: close` (RFC 9112 §3.2 for `Host`, §6.1 for transfer codings, §6.3 for
/// lengths). Marks requests of reserve connections (``ConnectionLimiter``) with the internal
/// ``reserveHeader``.
final class HTTP1RequestGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Set on requests of a reserve connection; removed from what clients send.
    static let reserveHeader = "tern-reserve-connection"

    let maxRequestBytes: Int
    let reserve: Bool
    let state: HTTPReadState
    /// Requests passed on and not yet answered in full.
    private var open = 0
    /// After a refusal: the rest of the input is dropped and the connection closes.
    private var refusing = false
    /// After a parse error inside a body: close once that request is answered.
    private var closeAfterResponse = false

    init(maxRequestBytes: Int, reserve: Bool, state: HTTPReadState) {
        self.maxRequestBytes = maxRequestBytes
        self.reserve = reserve
        self.state = state
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refusing else { return }
        switch unwrapInboundIn(data) {
        case .head(var head):
            state.timer?.cancel()
            state.timer = nil
            state.phase = .body
            if let refusal = Self.check(head, maxRequestBytes: maxRequestBytes) {
                refuse(context: context, refusal)
                return
            }
            head.headers.remove(name: Self.reserveHeader)
            if reserve { head.headers.add(name: Self.reserveHeader, value: "1") }
            // HTTP/1.0 closes after the response unless it asked for keep-alive (RFC 9112 §9.3).
            if head.version.major == 1 && head.version.minor == 0 && !head.isKeepAlive {
                head.headers.replaceOrAdd(name: "connection", value: "close")
            }
            open += 1
            context.fireChannelRead(wrapInboundOut(.head(head)))
        case .body:
            context.fireChannelRead(data)
        case .end:
            state.phase = .idle
            context.fireChannelRead(data)
        }
    }

    /// The refusal for `head`, nil when its framing is acceptable.
    static func check(_ head: HTTPRequestHead, maxRequestBytes: Int) -> TernError? {
        let hosts = head.headers["host"]
        if (head.version.major, head.version.minor) >= (1, 1) && hosts.isEmpty {
            return TernError(.malformedRequest, "an HTTP/1.1 request needs a Host header")
        }
        if hosts.count > 1 { return TernError(.malformedRequest, "more than one Host header") }
        let codings = head.headers["transfer-encoding"].flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        if !codings.isEmpty && codings != ["chunked"] {
            return TernError(.notImplemented, "transfer coding \(codings.joined(separator: ", ")) is not supported (only chunked)")
        }
        let lengths = head.headers["content-length"]
        if !lengths.isEmpty {
            guard Set(lengths).count == 1, let length = Int(lengths[0]), length >= 0 else {
                return TernError(.malformedRequest, "Content-Length must be one non-negative integer")
            }
            if length > maxRequestBytes {
                return TernError(.requestTooLarge, "the request body of \(length) bytes exceeds \(maxRequestBytes) bytes")
            }
        }
        return nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        if open == 0 && !refusing {
            refuse(context: context, TernError(.malformedRequest, "the request is not valid HTTP/1.1 (\(error))"))
        } else {
            // In a body: the route's body read fails and answers 400; then the connection closes.
            closeAfterResponse = true
            context.fireErrorCaught(error)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .end = unwrapOutboundIn(data) else {
            context.write(data, promise: promise)
            return
        }
        open -= 1
        if closeAfterResponse && open == 0 {
            context.writeAndFlush(data).whenComplete { _ in context.close(promise: nil) }
            promise?.succeed()
            return
        }
        context.write(data, promise: promise)
    }

    private func refuse(context: ChannelHandlerContext, _ error: TernError) {
        refusing = true
        guard open == 0 else {
            // A pipelined request before this one is still being answered: just close.
            context.close(promise: nil)
            return
        }
        let body = ErrorResponses.body(error)
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: "\(body.readableBytes)")
        headers.add(name: "connection", value: "close")
        let status = HTTPResponseStatus(statusCode: error.code.httpStatus)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }
}

/// The JSON error body, for code outside the router (the framing guard).
enum ErrorResponses {
    static func body(_ error: TernError) -> ByteBuffer {
        let data = (try? jsonEncoder.encode(ErrorBody(error: .init(code: error.code.name, message: error.message)))) ?? Data()
        return ByteBuffer(bytes: data)
    }
}
