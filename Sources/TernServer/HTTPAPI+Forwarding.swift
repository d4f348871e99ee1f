import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import TernCore
import TernGossip

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
        switch node.route(http: true) {
        case .local:
            let term = node.data.group.status.term  // the term this node leads in as it serves
            var response: Response
            do {
                response = try await next(request, context)
            } catch let error as TernError where error.code == .notLeader {
                // Leadership moved while the request was served: nothing was applied.
                throw TernError(.unavailable, error.message + "; retry")
            }
            // Errors thrown here are rendered (and counted in metrics) by the outer middleware,
            // without these headers: only successful answers say who served them.
            response.headers[Self.servedByHeader] = node.nodeID
            response.headers[Self.termHeader] = String(term)
            return response
        case .unavailable(let reason):
            throw TernError(.unavailable, reason)
        case .forward(let leader, let address):
            if let from = request.headers[Self.forwardedHeader] {
                throw TernError(.unavailable, "forwarded by \(from) to \(node.nodeID), which does not lead the data group now (leader: \(leader)); retry")
            }
            node.countForwarded()
            return try await forward(request, to: address, leader: leader)
        }
    }

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

    private func forward(_ request: Request, to address: TernGossipAddress, leader: String) async throws -> Response {
        let host = address.host.contains(":") ? "[\(address.host)]" : address.host
        var outgoing = HTTPClientRequest(url: "\(node.forwarding.scheme)://\(host):\(address.port)\(request.uri.description)")
        outgoing.method = HTTPMethod(rawValue: request.method.rawValue)
        for field in request.headers where !Self.hopByHop.contains(field.name.canonicalName.lowercased()) {
            outgoing.headers.add(name: field.name.canonicalName, value: field.value)
        }
        outgoing.headers.add(name: Self.forwardedHeader.canonicalName, value: node.nodeID)
        let body = try await request.body.collect(upTo: maxRequestBytes)
        if body.readableBytes > 0 || ["POST", "PUT", "PATCH"].contains(request.method.rawValue) {
            outgoing.body = .bytes(body)
        }
        let answer: HTTPClientResponse
        do {
            answer = try await node.forwarding.client.execute(outgoing, timeout: Self.timeout)
        } catch where Self.isConnectFailure(error) {
            // No connection to the leader was made: the request was never sent.
            throw TernError(.unavailable, "the leader \(leader) could not be reached (\(error)); the request was not applied; retry")
        } catch {
            // The leader went away mid-request: whether it applied the request is unknown.
            throw TernError(.unavailable, "forwarding to the leader \(leader) failed (\(error)); the request may or may not have been applied; retry")
        }
        let bytes = try await answer.body.collect(upTo: Self.maxResponseBytes)
        var headers = HTTPFields()
        for (name, value) in answer.headers {
            guard let fieldName = HTTPField.Name(name), !Self.hopByHop.contains(name.lowercased()) else { continue }
            headers.append(HTTPField(name: fieldName, value: value))
        }
        return Response(status: .init(code: Int(answer.status.code)), headers: headers, body: .init(byteBuffer: bytes))
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
