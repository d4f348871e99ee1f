public import Hummingbird
import Foundation
import NIOCore
import TernCore
import TernServer

extension SQSEndpoint {
    /// A Hummingbird responder that answers every request on the SQS listener (SQS uses `/`
    /// and queue URLs `/{account}/{name}`; nothing else is routed there). In a cluster a node
    /// that does not lead forwards the request to the leader's SQS endpoint (``serve(_:in:)``).
    public func responder() -> CallbackResponder<BasicRequestContext> {
        CallbackResponder { request, _ in
            var request = request
            var headers = [String: String]()
            for field in request.headers {
                let name = field.name.canonicalName
                headers[name] = headers[name].map { $0 + "," + field.value } ?? field.value
            }
            // HTTP/1's Host header arrives as the request's authority (HTTPTypes moves it).
            if headers["host"] == nil, let authority = request.head.authority { headers["host"] = authority }
            let body: ByteBuffer
            do {
                body = try await request.collectBody(upTo: self.settings.maxRequestBytes)
            } catch {
                let wire: WireProtocol = headers["x-amz-target"] != nil ? .json : .query
                let reply = self.render(SQSError(.requestEntityTooLarge, "The request body exceeds \(self.settings.maxRequestBytes) bytes."),
                                        wire: wire, requestID: "0")
                return Self.response(reply)
            }
            let incoming = HTTPRequest(method: request.method.rawValue, path: request.uri.path, query: request.uri.query ?? "",
                                       headers: headers, body: Array(body.readableBytesView))
            guard let cluster = self.cluster else { return Self.response(await self.handle(incoming)) }
            var fields = request.headers.map { ($0.name.canonicalName, $0.value) }
            if !fields.contains(where: { $0.0.lowercased() == "host" }), let authority = request.head.authority { fields.append(("Host", authority)) }
            let forwarded = ClusterNode.ForwardedRequest(method: request.method.rawValue, target: request.uri.description,
                                                         headers: fields, body: body, keepsHost: true)
            return Self.response(await self.serve(incoming, forwarding: forwarded, in: cluster))
        }
    }

    /// Answers a request that reached this node of a cluster (decision 136): the data group's
    /// leader serves it (its answers say `Tern-Served-By` and `Tern-Term`), a follower forwards
    /// it unchanged — `Host` included, so that SigV4 verifies and queue URLs name the node the
    /// client reached (decision 137) — to the leader's SQS endpoint and relays the answer.
    /// While no leader serves, or when forwarding fails, the answer is SQS's
    /// `ServiceUnavailable` (HTTP 503, which SDKs retry), saying whether the request may have
    /// been applied.
    func serve(_ request: HTTPRequest, forwarding forwarded: ClusterNode.ForwardedRequest, in cluster: ClusterNode) async -> HTTPReply {
        let wire: WireProtocol = request.headers["x-amz-target"] != nil ? .json : .query
        func unavailable(_ message: String) -> HTTPReply {
            var reply = render(SQSError(.serviceUnavailable, message), wire: wire, requestID: UUID().uuidString.lowercased())
            reply.headers.append(("Retry-After", "1"))
            return reply
        }
        switch cluster.routeSQS() {
        case .local:
            let term = cluster.servingTerm
            var reply = await handle(request)
            reply.headers.append(("Tern-Served-By", cluster.nodeID))
            reply.headers.append(("Tern-Term", String(term)))
            return reply
        case .unavailable(let reason):
            return unavailable(reason)
        case .forward(let leader, let address):
            if let from = request.headers["tern-forwarded-by"] {
                return unavailable("forwarded by \(from) to \(cluster.nodeID), which does not lead the data group now (leader: \(leader)); retry")
            }
            do {
                let answer = try await cluster.forward(forwarded, to: address, leader: leader)
                return HTTPReply(status: answer.status, headers: answer.headers, body: Array(answer.body.readableBytesView))
            } catch {
                return unavailable(error.message)
            }
        }
    }

    static func response(_ reply: HTTPReply) -> Response {
        var fields = HTTPFields()
        for (name, value) in reply.headers {
            if let field = HTTPFields.Element.Name(name) { fields[field] = value }
        }
        return Response(status: HTTPResponse.Status(code: reply.status), headers: fields,
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: reply.body)))
    }
}
