import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
public import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
public import TernCore
public import TernGossip

/// Forwarding of HTTP requests in a cluster (issue 11, "any node serves any request"): a
/// request for queues, topics, producers or transactions that reaches a node which does not
/// lead the data group is sent on to the leader, and the leader's answer returned unchanged.
/// While the group has no leader the answer is `503 Unavailable` with `Retry-After: 1`,
/// never a guess from a follower's possibly stale state.
///
/// A forwarded request carries `Tern-Forwarded-By: NODE`; a node that receives one and does not
/// lead answers `503` instead of forwarding again (no loops while leadership moves). Long polls
/// wait on the leader: the forwarding client waits up to ``ClusterForwardingMiddleware/timeout``.
struct ClusterForwardingMiddleware<Context: RequestContext>: RouterMiddleware {
    let node: ClusterNode
    /// The largest request body forwarded (the listener's own limit).
    let maxRequestBytes: Int
    /// The largest answer relayed: a receive of 1,000 messages of 256 KiB, with room to spare.
    static var maxResponseBytes: Int { 512 << 20 }
    /// Longer than the longest long poll (20 s).
    static var timeout: TimeAmount { .seconds(35) }
    static var forwardedHeader: HTTPField.Name { HTTPField.Name("Tern-Forwarded-By")! }
    /// On answers a leader served: its node id and the term it led in (Jepsen-style
    /// histories check that one term has one leader).
    static var servedByHeader: HTTPField.Name { HTTPField.Name("Tern-Served-By")! }
    static var termHeader: HTTPField.Name { HTTPField.Name("Tern-Term")! }

    /// Headers that belong to one connection (RFC 9110 §7.6.1), plus the ones the client and
    /// server set again themselves.
    static var hopByHop: Set<String> { [
        "host", "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "content-length", "expect", "date", "server",
    ] }

    /// Whether `path` is served from the replicated state.
    static func isDataPath(_ path: String) -> Bool {
        for prefix in ["/queues", "/topics", "/producers", "/transactions"] where path == prefix || path.hasPrefix(prefix + "/") {
            return true
        }
        return false
    }

    /// Whether `method path` is a membership change, which only the data group's leader makes.
    static func isMembershipChange(method: HTTPRequest.Method, path: String) -> Bool {
        method != .get && method != .head && path.hasPrefix("/cluster/replicas/")
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard Self.isDataPath(request.uri.path) || Self.isMembershipChange(method: request.method, path: request.uri.path) else {
            return try await next(request, context)
        }
        if node.queueGroups != nil, let answer = try await routeQueueGroups(request, context: context, next: next) {
            return answer
        }
        return try await routeToDataGroup(request, context: context, next: next)
    }

    /// Serves `request` here when this node leads the data group, else forwards it to the
    /// leader (once: a forwarded request that finds no leader here is `503`).
    func routeToDataGroup(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        switch node.route(http: true) {
        case .local:
            return try await serveData(request, context: context, next: next)
        case .unavailable(let reason):
            throw TernError(.unavailable, reason)
        case .forward(let leader, let address):
            if let from = request.headers[Self.forwardedHeader] {
                throw TernError(.unavailable, "forwarded by \(from) to \(node.nodeID), which does not lead the data group now (leader: \(leader)); retry")
            }
            return try await forward(request, to: address, leader: leader)
        }
    }

    private func forward(_ request: Request, to address: TernGossipAddress, leader: String) async throws -> Response {
        let body = try await request.body.collect(upTo: maxRequestBytes)
        let answer = try await node.forward(
            ClusterNode.ForwardedRequest(method: request.method.rawValue, target: request.uri.description,
                                         headers: request.headers.map { ($0.name.canonicalName, $0.value) }, body: body),
            to: address, leader: leader)
        return Self.response(answer)
    }
}

extension ClusterNode {
    /// A request to relay to the leader: what a listener received, as it received it.
    public struct ForwardedRequest: Sendable {
        /// `GET`, `POST`…
        public var method: String
        /// The request target: the path as sent (percent-encoded) and `?query` when present.
        public var target: String
        /// Every header field as received (names in any case); hop-by-hop fields are dropped
        /// when it is sent on.
        public var headers: [(String, String)]
        public var body: ByteBuffer
        /// Whether the `Host` field goes to the leader unchanged (the SQS endpoint: SigV4 signs
        /// it, and queue URLs are built from it); otherwise the leader's address replaces it.
        public var keepsHost: Bool

        public init(method: String, target: String, headers: [(String, String)], body: ByteBuffer, keepsHost: Bool = false) {
            self.method = method
            self.target = target
            self.headers = headers
            self.body = body
            self.keepsHost = keepsHost
        }
    }

    /// The leader's answer to a forwarded request, hop-by-hop fields removed.
    public struct ForwardedAnswer: Sendable {
        public var status: Int
        public var headers: [(String, String)]
        public var body: ByteBuffer
    }

    /// Sends `request` to the leader at `address` (HTTP or HTTPS as the nodes serve), marked
    /// `Tern-Forwarded-By: <this node>` so that the leader never forwards it again, and returns
    /// its answer, waiting up to 35 s (longer than the longest long poll). Counted in the
    /// forwarded-requests metric. Used by Tern's HTTP API (``ClusterForwardingMiddleware``)
    /// and the SQS endpoint (decision 136).
    /// - Parameters:
    ///   - address: the leader's listener (HTTP API or SQS, from gossip).
    ///   - leader: its node id, for error messages.
    /// - Returns: the answer, at most 512 MiB.
    /// - Throws: ``TernError`` `Unavailable` — "the request was not applied" when no connection
    ///   to the leader opened (refused, connect timeout of 500 ms), "may or may not have been
    ///   applied" when it broke after the request was sent (decision 97).
    public func forward(_ request: ForwardedRequest, to address: Gossip.Address, leader: String) async throws(TernError) -> ForwardedAnswer {
        typealias Forwarding = ClusterForwardingMiddleware<BasicRequestContext>
        countForwarded()
        let host = address.host.contains(":") ? "[\(address.host)]" : address.host
        var outgoing = HTTPClientRequest(url: "\(forwarding.scheme)://\(host):\(address.port)\(request.target)")
        outgoing.method = HTTPMethod(rawValue: request.method)
        for (name, value) in request.headers {
            let lowered = name.lowercased()
            guard !Forwarding.hopByHop.contains(lowered) || (lowered == "host" && request.keepsHost) else { continue }
            outgoing.headers.add(name: name, value: value)
        }
        outgoing.headers.add(name: Forwarding.forwardedHeader.canonicalName, value: nodeID)
        if request.body.readableBytes > 0 || ["POST", "PUT", "PATCH"].contains(request.method) {
            outgoing.body = .bytes(request.body)
        }
        let answer: HTTPClientResponse
        do {
            answer = try await forwarding.client.execute(outgoing, timeout: Forwarding.timeout)
        } catch where Forwarding.isConnectFailure(error) {
            // No connection to the leader was made: the request was never sent.
            throw TernError(.unavailable, "the leader \(leader) could not be reached (\(error)); the request was not applied; retry")
        } catch {
            // The leader went away mid-request: whether it applied the request is unknown.
            throw TernError(.unavailable, "forwarding to the leader \(leader) failed (\(error)); the request may or may not have been applied; retry")
        }
        let bytes: ByteBuffer
        do {
            bytes = try await answer.body.collect(upTo: Forwarding.maxResponseBytes)
        } catch {
            throw TernError(.unavailable, "the answer of the leader \(leader) broke off (\(error)); the request may or may not have been applied; retry")
        }
        var headers = [(String, String)]()
        for (name, value) in answer.headers where !Forwarding.hopByHop.contains(name.lowercased()) {
            headers.append((name, value))
        }
        return ForwardedAnswer(status: Int(answer.status.code), headers: headers, body: bytes)
    }

    /// The Raft term of the data group as this node sees it now (the term it leads in, when it
    /// serves), for the `Tern-Term` header of served answers.
    public var servingTerm: UInt64 { data.group.status.term }

    /// Where an SQS request goes now: as ``route(http:)``, but a forward names the leader's
    /// SQS endpoint, which it announces in gossip (``Gossip/Node/sqs``).
    /// - Returns: `.unavailable` also when the leader serves no SQS endpoint (configure `--sqs`
    ///   on every node) or gossip has not told its address yet.
    public func routeSQS() -> Route {
        switch route(http: true) {
        case .local: return .local
        case .unavailable(let reason): return .unavailable(reason)
        case .forward(let leader, _):
            guard let member = member(leader) else {
                return .unavailable("the data group's leader \(leader) is not known to gossip yet; retry")
            }
            guard let sqs = member.node.sqs else {
                return .unavailable("the data group's leader \(leader) serves no SQS endpoint (start every node with --sqs); retry")
            }
            return .forward(leader: leader, address: sqs)
        }
    }
}

extension ClusterForwardingMiddleware {
    /// Whether `error` means the connection to the leader never opened (refused, unreachable,
    /// timed out while connecting), so that nothing of the request reached it.
    static func isConnectFailure(_ error: any Error) -> Bool {
        if let error = error as? HTTPClientError { return error == .connectTimeout }
        if error is NIOConnectionError { return true }  // every connection attempt failed
        if let error = error as? ChannelError, case .connectTimeout = error { return true }
        // Refused is only ever the answer to a connection attempt (a reset of an open
        // connection is ECONNRESET); unreachable and timed out can also end an open one.
        if let error = error as? IOError { return error.errnoCode == ECONNREFUSED }
        return false
    }

}

typealias TernGossipAddress = Gossip.Address

/// The HTTP client that forwards to leaders: a short connect timeout, so that a request for a
/// leader that just died fails fast (`503`, retry) instead of waiting out the whole forwarding
/// timeout, and a pool that does not keep idle connections to a node for long.
struct ForwardingClient: Sendable {
    let client: HTTPClient
    /// `http`, or `https` when the nodes serve TLS.
    let scheme: String
    /// Whether the client was made for this node (and must be shut down with it).
    let isOwned: Bool

    static func configuration(tls: TLSConfiguration?) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .milliseconds(500))
        configuration.connectionPool = .init(idleTimeout: .seconds(10))
        configuration.tlsConfiguration = tls
        return configuration
    }

    /// Plain HTTP, one client for the process.
    static let plain = ForwardingClient(
        client: HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration(tls: nil)), scheme: "http", isOwned: false)

    /// HTTPS with `tls` (the other nodes' certificates checked against its trust roots).
    init(tls: TLSConfiguration) {
        self.init(client: HTTPClient(eventLoopGroupProvider: .singleton, configuration: Self.configuration(tls: tls)),
                  scheme: "https", isOwned: true)
    }

    private init(client: HTTPClient, scheme: String, isOwned: Bool) {
        self.client = client
        self.scheme = scheme
        self.isOwned = isOwned
    }
}
