import Foundation
import Hummingbird
import HummingbirdTesting
import TernCore
import TernServer
import TernTestKit
import Testing

@Suite struct NamePatternTests {
    @Test(arguments: [
        ("orders", "orders", true), ("orders", "orders2", false), ("orders*", "orders", true),
        ("orders*", "orders-eu", true), ("*-dlq", "jobs-dlq", true), ("*-dlq", "jobs", false), ("*", "anything", true),
        ("o?ders", "orders", true), ("o?ders", "oders", false), ("a*b*c", "aXbYc", true), ("a*b*c", "aXbY", false),
        ("Orders", "orders", false),
    ])
    func matches(pattern: String, name: String, expected: Bool) {
        #expect(NamePattern(pattern).matches(name) == expected)
    }
}

@Suite struct AuthTests {
    static let adminSecret = "admin-secret-0123456789"
    static let producerSecret = "producer-secret-0123456789"
    static let consumerSecret = "consumer-secret-0123456789"

    static var settings: Auth.Settings {
        var settings = Auth.Settings()
        settings.enabled = true
        settings.tokens = [
            Auth.Token(name: "operator", secret: adminSecret, permissions: [.admin]),
            Auth.Token(name: "producer", secret: producerSecret, permissions: [.produce(NamePattern("orders*"))]),
            Auth.Token(name: "consumer", secret: consumerSecret, permissions: [.consume(NamePattern("orders"))]),
        ]
        return settings
    }

    /// Runs `body` against the API with authentication on; `call(method, path, body, token)`.
    func withAuthServer(_ body: @Sendable (AuthClient) async throws -> Void) async throws {
        let f = try await ServerFixture()
        let operations = HTTPAPI.Operations(auth: Self.settings)
        let app = Application(router: HTTPAPI.router(broker: f.broker, settings: f.settings, operations: operations),
                              logger: ServerFixture.logger)
        try await app.test(.router) { client in try await body(AuthClient(client: client)) }
    }

    struct AuthClient: Sendable {
        let client: any TestClientProtocol

        func call(_ method: HTTPRequest.Method, _ path: String, _ body: String? = nil, token: String?,
                  scheme: String = "Bearer") async throws -> Reply {
            try await callWithChallenge(method, path, body, token: token, scheme: scheme).reply
        }

        /// The reply and its `WWW-Authenticate` header.
        func callWithChallenge(_ method: HTTPRequest.Method, _ path: String, _ body: String? = nil, token: String?,
                               scheme: String = "Bearer") async throws -> (reply: Reply, challenge: String?) {
            var headers: HTTPFields = [:]
            if body != nil { headers[.contentType] = "application/json" }
            if let token { headers[.authorization] = "\(scheme) \(token)" }
            let response = try await client.executeRequest(uri: path, method: method, headers: headers,
                                                           body: body.map { ByteBuffer(string: $0) })
            let reply = Reply(status: Int(response.status.code), bytes: Array(response.body.readableBytesView),
                              contentType: response.headers[.contentType])
            return (reply, response.headers[.wwwAuthenticate])
        }

        /// The queues and their counts, read with the admin token.
        func snapshot() async throws -> String {
            let reply = try await call(.get, "/queues", token: AuthTests.adminSecret)
            try #require(reply.status == 200, "\(reply)")
            return reply.text
        }
    }

    @Test func missingOrWrongToken_is401_andChangesNothing() async throws {
        try await withAuthServer { api in
            #expect(try await api.call(.put, "/queues/orders", "{}", token: Self.adminSecret).status == 201)
            let before = try await api.snapshot()
            let attempts: [(String?, String)] = [
                (nil, "Bearer"), ("wrong-token-0123456789", "Bearer"), ("", "Bearer"), (Self.adminSecret, "Basic"),
                (Self.adminSecret + "x", "Bearer"), (String(Self.adminSecret.dropLast()), "Bearer"),
            ]
            for (token, scheme) in attempts {
                for (method, path, body) in [
                    (HTTPRequest.Method.put, "/queues/other", "{}"), (.post, "/queues/orders/messages", #"{"message": "x"}"#),
                    (.get, "/queues/orders/messages", nil), (.post, "/queues/orders/purge", nil), (.delete, "/queues/orders", nil),
                    (.get, "/queues", nil), (.get, "/metrics", nil), (.get, "/alerts", nil),
                ] as [(HTTPRequest.Method, String, String?)] {
                    let (reply, challenge) = try await api.callWithChallenge(method, path, body, token: token, scheme: scheme)
                    expectError(reply, .unauthorized, "\(method) \(path) with \(scheme) token \(token == nil ? "none" : "bad")")
                    #expect(challenge?.hasPrefix("Bearer") == true)
                    #expect(!reply.text.contains(Self.adminSecret), "the secret is never echoed")
                }
            }
            #expect(try await api.snapshot() == before)
        }
    }

    @Test func tokenWithoutThePermission_is403_andChangesNothing() async throws {
        try await withAuthServer { api in
            #expect(try await api.call(.put, "/queues/orders", "{}", token: Self.adminSecret).status == 201)
            #expect(try await api.call(.put, "/queues/payments", "{}", token: Self.adminSecret).status == 201)
            #expect(try await api.call(.post, "/queues/orders/messages", #"{"message": "m"}"#, token: Self.producerSecret).status == 201)
            let before = try await api.snapshot()
            let denied: [(HTTPRequest.Method, String, String?, String)] = [
                (.put, "/queues/new", "{}", Self.producerSecret),
                (.put, "/queues/orders", #"{"visibility_timeout": 5}"#, Self.consumerSecret),
                (.delete, "/queues/orders", nil, Self.producerSecret),
                (.post, "/queues/orders/purge", nil, Self.consumerSecret),
                (.post, "/queues/orders/redrive", nil, Self.producerSecret),
                (.post, "/queues/payments/messages", #"{"message": "m"}"#, Self.producerSecret),
                (.post, "/queues/orders/messages", #"{"message": "m"}"#, Self.consumerSecret),
                (.get, "/queues/orders/messages", nil, Self.producerSecret),
                (.get, "/queues/orders/peek", nil, Self.producerSecret),
                (.get, "/queues/orders-eu/messages", nil, Self.consumerSecret),
            ]
            for (method, path, body, token) in denied {
                let reply = try await api.call(method, path, body, token: token)
                expectError(reply, .forbidden, "\(method) \(path)")
            }
            #expect(try await api.snapshot() == before)
        }
    }

    @Test func tokensWithThePermission_areServed() async throws {
        try await withAuthServer { api in
            #expect(try await api.call(.get, "/health", token: nil).status == 200)
            #expect(try await api.call(.get, "/console", token: nil).status == 200)
            #expect(try await api.call(.put, "/queues/orders", "{}", token: Self.adminSecret).status == 201)
            #expect(try await api.call(.post, "/queues/orders/messages", #"{"message": "m"}"#, token: Self.producerSecret).status == 201)
            #expect(try await api.call(.get, "/queues/orders", token: Self.producerSecret).status == 200)
            #expect(try await api.call(.get, "/queues/orders/peek", token: Self.consumerSecret).status == 200)
            let received = try await api.call(.get, "/queues/orders/messages", token: Self.consumerSecret)
            #expect(received.status == 200)
            let handle = try #require(try received.decode(ReceivedBatchBody.self).messages.first?.receiptHandle)
            #expect(try await api.call(.delete, "/queues/orders/messages/\(handle)", token: Self.consumerSecret).status == 204)
            #expect(try await api.call(.post, "/queues/orders/purge", token: Self.adminSecret).status == 200)
        }
    }

    @Test func authenticationOff_allowsEverythingWithoutAToken() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            #expect(try await api.request(.post, "/queues/q/purge").status == 200)
        }
    }

    @Test func requirements_ofTheRoutes() {
        #expect(Auth.requirement(method: "GET", path: "/health") == .none)
        #expect(Auth.requirement(method: "GET", path: "/queues") == .authenticated)
        #expect(Auth.requirement(method: "PUT", path: "/queues/a") == .admin)
        #expect(Auth.requirement(method: "POST", path: "/queues/a/messages") == .produce("a"))
        #expect(Auth.requirement(method: "GET", path: "/queues/a/messages") == .consume("a"))
        #expect(Auth.requirement(method: "DELETE", path: "/queues/a/messages/h") == .consume("a"))
        #expect(Auth.requirement(method: "PATCH", path: "/queues/a/messages/h") == .consume("a"))
        #expect(Auth.requirement(method: "POST", path: "/queues/a/redrive") == .admin)
        #expect(Auth.requirement(method: "POST", path: "/topics/t/messages") == .produce("t"))
        #expect(Auth.requirement(method: "GET", path: "/topics/t/partitions/0/messages") == .consume("t"))
        #expect(Auth.requirement(method: "DELETE", path: "/topics/t") == .admin)
    }

    @Test func tokenDescription_neverShowsTheSecret() {
        let token = Auth.Token(name: "ops", secret: "very-secret-value-123", permissions: [.admin])
        #expect(!"\(token)".contains("very-secret"))
        #expect(!String(reflecting: Self.settings.tokens.map(\.description)).contains("secret-0123"))
    }
}

