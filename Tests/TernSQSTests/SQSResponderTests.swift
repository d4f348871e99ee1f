import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import TernCore
@testable import TernSQS

/// The Hummingbird responder in front of the endpoint, over real sockets: the Host header
/// (which HTTP/1 delivers as the request's authority) makes the queue URLs and is signed, and an
/// oversized body is an SQS error, not a dropped connection.
@Suite struct SQSResponderTests {
    @Test func queueURLs_useTheHostTheClientSent_andErrorsCarryTheQueryErrorHeader() async throws {
        var settings = SQS.Settings()
        settings.maxRequestBytes = 4096
        let f = try await EndpointFixture(settings: settings)
        let app = Application(responder: f.endpoint.responder())
        try await app.test(.live) { client in
            var headers = HTTPFields()
            headers[.contentType] = "application/x-amz-json-1.0"
            headers[HTTPFields.Element.Name("X-Amz-Target")!] = "AmazonSQS.CreateQueue"
            headers[HTTPFields.Element.Name("Host")!] = "sqs.example.test:9324"
            let created = try await client.executeRequest(uri: "/", method: .post, headers: headers,
                                                          body: ByteBuffer(string: #"{"QueueName":"orders"}"#))
            #expect(created.status == .ok)
            #expect(String(buffer: created.body) == #"{"QueueUrl":"http://sqs.example.test:9324/000000000000/orders"}"#)
            headers[HTTPFields.Element.Name("X-Amz-Target")!] = "AmazonSQS.SendMessage"
            let tooLarge = try await client.executeRequest(uri: "/", method: .post, headers: headers,
                                                           body: ByteBuffer(string: String(repeating: "x", count: 5000)))
            #expect(tooLarge.status.code == 413)
            #expect(tooLarge.headers[HTTPFields.Element.Name("x-amzn-query-error")!] == "RequestEntityTooLarge;Sender")
        }
        #expect(try f.broker.describeQueue(try QueueName("orders")).counts.total == 0)
    }
}
