public import Hummingbird
import NIOCore

extension SQSEndpoint {
    /// A Hummingbird responder that answers every request on the SQS listener (SQS uses `/`
    /// and queue URLs `/{account}/{name}`; nothing else is routed there).
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
            let body: [UInt8]
            do {
                body = Array(try await request.collectBody(upTo: self.settings.maxRequestBytes).readableBytesView)
            } catch {
                let wire: WireProtocol = headers["x-amz-target"] != nil ? .json : .query
                let reply = self.render(SQSError(.requestEntityTooLarge, "The request body exceeds \(self.settings.maxRequestBytes) bytes."),
                                        wire: wire, requestID: "0")
                return Self.response(reply)
            }
            let reply = await self.handle(HTTPRequest(
                method: request.method.rawValue, path: request.uri.path, query: request.uri.query ?? "", headers: headers, body: body))
            return Self.response(reply)
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
