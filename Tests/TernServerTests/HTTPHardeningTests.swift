import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOPosix
import TernBroker
import TernCore
import TernServer
import Testing

/// One HTTP/1.1 exchange over a raw socket: writes `text`, reads until the server closes the
/// connection or `timeout` passes (then `closed` is false).
enum RawHTTP {
    static func exchange(port: Int, _ text: String, timeout: Duration = .seconds(12)) async throws -> (response: String, closed: Bool) {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "localhost", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        let underlying = channel.channel
        return try await channel.executeThenClose { inbound, outbound in
            // A connection the server closes at once (a refused one) fails the write: closed.
            if !text.isEmpty {
                do { try await outbound.write(ByteBuffer(string: text)) } catch { return ("", true) }
            }
            let timer = Task { () async throws -> Bool in
                try await Task.sleep(for: timeout)
                underlying.close(promise: nil)
                return true
            }
            var received = ByteBuffer()
            // The end of the stream or a reset: closed by the server, unless the timer fired.
            do {
                for try await chunk in inbound { received.writeImmutableBuffer(chunk) }
            } catch {}
            timer.cancel()
            let closed = (try? await timer.value) != true
            return (String(decoding: received.readableBytesView, as: UTF8.self), closed)
        }
    }

    /// The status code of the first response in `response`, nil when there is none.
    static func status(_ response: String) -> Int? {
        let parts = response.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/") else { return nil }
        return Int(parts[1])
    }
}

@Suite(.serialized) struct HTTPHardeningTests {
    /// Runs `body` with a live server built by ``HTTPAPI/serverBuilder(settings:)`` (the one
    /// `ternd` uses), on a free port of localhost.
    func withGuardedServer(_ f: ServerFixture, api: HTTPAPI.Settings = .init(), _ configure: (inout HTTPAPI.ServerSettings) -> Void = { _ in },
                           _ body: @Sendable (Int, API) async throws -> Void) async throws {
        var settings = HTTPAPI.ServerSettings()
        configure(&settings)
        let app = Application(router: HTTPAPI.router(broker: f.broker, settings: api), server: try HTTPAPI.serverBuilder(settings: settings),
                              logger: ServerFixture.logger)
        try await app.test(.live) { client in try await body(try #require(client.port), API(client: client)) }
    }

    func withRouter(_ f: ServerFixture, api: HTTPAPI.Settings = .init(), operations: HTTPAPI.Operations = .init(),
                    _ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let app = Application(router: HTTPAPI.router(broker: f.broker, settings: api, operations: operations), logger: ServerFixture.logger)
        try await app.test(.router) { client in try await body(client) }
    }

    func reply(_ response: TestResponse) -> Reply {
        Reply(status: Int(response.status.code), bytes: Array(response.body.readableBytesView), contentType: response.headers[.contentType])
    }

    // MARK: Cross-origin requests (Go 1.25's CrossOriginProtection)

    @Test(arguments: [
        ("Sec-Fetch-Site", "cross-site"), ("Sec-Fetch-Site", "same-site"), ("Origin", "http://evil.example"),
    ])
    func crossOriginStateChange_isRefused403_andChangesNothing(_ header: String, _ value: String) async throws {
        let f = try await ServerFixture()
        try await withRouter(f) { client in
            let api = API(client: client)
            try await api.createQueue("q")
            _ = try await api.send("q", "keep me")
            var headers: HTTPFields = [HTTPField.Name(header)!: value]
            headers[.contentType] = "application/json"
            let purge = reply(try await client.executeRequest(uri: "/queues/q/purge", method: .post, headers: headers, body: nil))
            expectError(purge, .crossOriginRequest)
            let send = reply(try await client.executeRequest(uri: "/queues/q/messages", method: .post, headers: headers,
                                                             body: ByteBuffer(string: #"{"message": "injected"}"#)))
            expectError(send, .crossOriginRequest)
            let deleted = reply(try await client.executeRequest(uri: "/queues/q", method: .delete, headers: headers, body: nil))
            expectError(deleted, .crossOriginRequest)
            #expect(try await api.describe("q").messages.total == 1, "nothing changed")
            // Reads are not state-changing: allowed.
            #expect(reply(try await client.executeRequest(uri: "/queues/q", method: .get, headers: headers, body: nil)).status == 200)
        }
    }

    @Test func requestsWithoutBrowserHeaders_orSameOrigin_areUnaffected() async throws {
        let f = try await ServerFixture()
        try await withRouter(f) { client in
            let api = API(client: client)
            try await api.createQueue("q")
            _ = try await api.send("q", "from curl")
            for value in ["same-origin", "none"] {
                let r = reply(try await client.executeRequest(uri: "/queues/q/messages", method: .post,
                                                              headers: [HTTPField.Name("Sec-Fetch-Site")!: value],
                                                              body: ByteBuffer(string: #"{"message": "m"}"#)))
                #expect(r.status == 201, "Sec-Fetch-Site: \(value): \(r)")
            }
        }
    }

    @Test func corsOrigins_answerPreflights_andPassTheCrossOriginCheck() async throws {
        let f = try await ServerFixture()
        var settings = HTTPAPI.Settings()
        settings.corsOrigins = ["https://app.example"]
        try await withRouter(f, api: settings) { client in
            try await API(client: client).createQueue("q")
            let preflight = try await client.executeRequest(
                uri: "/queues/q/messages", method: .options,
                headers: [HTTPField.Name("Origin")!: "https://app.example", HTTPField.Name("Access-Control-Request-Method")!: "POST"], body: nil)
            #expect(preflight.status == .noContent)
            #expect(preflight.headers[HTTPField.Name("Access-Control-Allow-Origin")!] == "https://app.example")
            #expect(preflight.headers[HTTPField.Name("Access-Control-Allow-Headers")!]?.contains("Authorization") == true)
            let sent = try await client.executeRequest(
                uri: "/queues/q/messages", method: .post,
                headers: [HTTPField.Name("Origin")!: "https://app.example", HTTPField.Name("Sec-Fetch-Site")!: "cross-site"],
                body: ByteBuffer(string: #"{"message": "m"}"#))
            #expect(sent.status == .created)
            #expect(sent.headers[HTTPField.Name("Access-Control-Allow-Origin")!] == "https://app.example")
            let other = try await client.executeRequest(
                uri: "/queues/q/messages", method: .post,
                headers: [HTTPField.Name("Origin")!: "https://other.example", HTTPField.Name("Sec-Fetch-Site")!: "cross-site"],
                body: ByteBuffer(string: #"{"message": "m"}"#))
            expectError(reply(other), .crossOriginRequest)
            #expect(other.headers[HTTPField.Name("Access-Control-Allow-Origin")!] == nil)
        }
    }

    @Test func corsOff_byDefault_noCORSHeaders() async throws {
        let f = try await ServerFixture()
        try await withRouter(f) { client in
            let response = try await client.executeRequest(uri: "/health", method: .get,
                                                           headers: [HTTPField.Name("Origin")!: "https://app.example"], body: nil)
            #expect(response.headers[HTTPField.Name("Access-Control-Allow-Origin")!] == nil)
        }
    }

    @Test func foreignHost_onALoopbackListener_isRefused_loopbackAndAllowedHostsPass() async throws {
        let f = try await ServerFixture()
        var settings = HTTPAPI.Settings()
        settings.enforceAllowedHosts = true
        settings.allowedHosts = ["tern.internal"]
        try await withGuardedServer(f, api: settings) { port, _ in
            let foreign = try await RawHTTP.exchange(port: port, "PUT /queues/rebound HTTP/1.1\r\nHost: attacker.example:\(port)\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            #expect(RawHTTP.status(foreign.response) == 403, "\(foreign.response)")
            #expect(foreign.response.contains("HostNotAllowed"))
            for host in ["localhost:\(port)", "127.0.0.1:\(port)", "[::1]:\(port)", "tern.internal", "TERN.internal:\(port)"] {
                let ok = try await RawHTTP.exchange(port: port, "GET /health HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n")
                #expect(RawHTTP.status(ok.response) == 200, "Host: \(host): \(ok.response)")
            }
            #expect(f.broker.listQueuesOrEmpty.isEmpty, "the rebinding request created nothing")
        }
    }

    @Test func loopbackNames() {
        #expect(HTTPAPI.isLoopbackAddress("127.0.0.1") && HTTPAPI.isLoopbackAddress("::1") && HTTPAPI.isLoopbackAddress("localhost"))
        #expect(!HTTPAPI.isLoopbackAddress("0.0.0.0") && !HTTPAPI.isLoopbackAddress("10.0.0.1") && !HTTPAPI.isLoopbackAddress("example.com"))
    }

    // MARK: 405 and Allow

    @Test func unsupportedMethodOnAnExistingPath_is405WithAllow_unknownPathIs404() async throws {
        let f = try await ServerFixture()
        try await withRouter(f) { client in
            let health = try await client.executeRequest(uri: "/health", method: .delete, headers: [:], body: nil)
            expectError(reply(health), .methodNotAllowed)
            #expect(health.headers[.allow] == "GET")
            let queue = try await client.executeRequest(uri: "/queues/q", method: .patch, headers: [:], body: nil)
            expectError(reply(queue), .methodNotAllowed)
            #expect(queue.headers[.allow] == "GET, PUT, DELETE")
            let missing = try await client.executeRequest(uri: "/nothing/here", method: .get, headers: [:], body: nil)
            expectError(reply(missing), .routeNotFound)
        }
    }

    // MARK: Strict JSON

    @Test func escapedDuplicateKey_isRefused() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            let r = try await api.request(.post, "/queues/q/messages", #"{"message": "a", "m\u0065ssage": "b"}"#)
            expectError(r, .invalidJSON)
            #expect(try await api.describe("q").messages.total == 0)
        }
    }

    // MARK: Console

    @Test func console_sendsSecurityHeaders_andNoTokenFromTheURL() async throws {
        let f = try await ServerFixture()
        try await withRouter(f) { client in
            for path in ["/console", "/console/console.js"] {
                let response = try await client.executeRequest(uri: path, method: .get, headers: [:], body: nil)
                #expect(response.status == .ok)
                let csp = response.headers[.contentSecurityPolicy] ?? ""
                #expect(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "\(path): \(csp)")
                #expect(response.headers[HTTPField.Name("X-Frame-Options")!] == "DENY")
                #expect(response.headers[HTTPField.Name("X-Content-Type-Options")!] == "nosniff")
            }
            let page = String(buffer: try await client.executeRequest(uri: "/console", method: .get, headers: [:], body: nil).body)
            #expect(!page.contains("<script>"), "no inline script")
            let script = String(buffer: try await client.executeRequest(uri: "/console/console.js", method: .get, headers: [:], body: nil).body)
            #expect(!script.contains("location.search"), "the token is never read from the URL")
        }
    }

    // MARK: Producers and transactions: per-queue permissions, as over the binary protocol

    @Test func producersAndTransactions_needPerQueuePermissions_notAdmin() async throws {
        let f = try await ServerFixture()
        var operations = HTTPAPI.Operations()
        operations.auth.enabled = true
        operations.auth.tokens = [
            Auth.Token(name: "operator", secret: "operator-token-0123456789", permissions: [.admin]),
            Auth.Token(name: "orders", secret: "orders-token-0123456789",
                       permissions: [.produce(NamePattern("orders-*")), .consume(NamePattern("orders-*"))]),
        ]
        try await withRouter(f, operations: operations) { client in
            func call(_ method: HTTPRequest.Method, _ path: String, _ body: String?, token: String) async throws -> Reply {
                reply(try await client.executeRequest(
                    uri: path, method: method, headers: [.authorization: "Bearer \(token)", .contentType: "application/json"],
                    body: body.map { ByteBuffer(string: $0) }))
            }
            #expect(try await call(.put, "/queues/orders-in", nil, token: "operator-token-0123456789").status == 201)
            #expect(try await call(.put, "/queues/audit", nil, token: "operator-token-0123456789").status == 201)
            let producer = try await call(.post, "/producers", nil, token: "orders-token-0123456789")
            #expect(producer.status == 201, "\(producer)")
            let object = try producer.object()
            let id = try #require(object["producer_id"] as? Int)
            let allowed = try await call(.post, "/transactions",
                                         #"{"producer_id": \#(id), "epoch": 0, "messages": [{"queue": "orders-in", "message": "m"}]}"#,
                                         token: "orders-token-0123456789")
            #expect(allowed.status == 200, "\(allowed)")
            let refused = try await call(.post, "/transactions",
                                         #"{"producer_id": \#(id), "epoch": 0, "messages": [{"queue": "audit", "message": "m"}]}"#,
                                         token: "orders-token-0123456789")
            expectError(refused, .forbidden)
            #expect(try await call(.get, "/queues/audit", nil, token: "operator-token-0123456789").object()["messages"]
                .flatMap { ($0 as? [String: Any])?["total"] as? Int } == 0)
        }
    }

    // MARK: The request-bytes budget

    @Test func requestBytesBudgetFull_is503WithRetryAfter_thenRecovers() async throws {
        let f = try await ServerFixture()
        var settings = HTTPAPI.Settings()
        let budget = RequestBytesBudget(limit: 1000)
        settings.requestBytes = budget
        try await withRouter(f, api: settings) { client in
            let api = API(client: client)
            try await api.createQueue("q")
            #expect(budget.tryReserve(1000), "another upload holds the whole budget")
            let busy = try await client.executeRequest(uri: "/queues/q/messages", method: .post, headers: [.contentType: "application/json"],
                                                       body: ByteBuffer(string: #"{"message": "m"}"#))
            expectError(reply(busy), .overloaded)
            #expect(busy.headers[.retryAfter] == "1")
            budget.release(1000)
            _ = try await api.send("q", "m")
            #expect(budget.reserved == 0, "released after the body was read")
        }
    }

    // MARK: HTTP/1.1 framing (over a real socket)

    @Test func framingErrors_areAnswered4xx_beforeAnyRoute() async throws {
        let f = try await ServerFixture()
        try await withGuardedServer(f, { $0.maxRequestBytes = 1 << 20 }) { port, api in
            try await api.createQueue("q")
            let noHost = try await RawHTTP.exchange(port: port, "GET /health HTTP/1.1\r\n\r\n")
            #expect(RawHTTP.status(noHost.response) == 400 && noHost.response.contains("MalformedRequest"), "\(noHost.response)")
            let http10 = try await RawHTTP.exchange(port: port, "GET /health HTTP/1.0\r\n\r\n")
            #expect(RawHTTP.status(http10.response) == 200, "HTTP/1.0 needs no Host: \(http10.response)")
            let gzip = try await RawHTTP.exchange(port: port,
                "POST /queues/q/messages HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
            #expect(RawHTTP.status(gzip.response) == 501 && gzip.response.contains("NotImplemented"), "\(gzip.response)")
            // Refused at the header: the client never sends the 100 MB.
            let large = try await RawHTTP.exchange(port: port,
                "POST /queues/q/messages HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n")
            #expect(RawHTTP.status(large.response) == 413 && large.closed, "\(large.response)")
            let chunked = try await RawHTTP.exchange(port: port,
                "POST /queues/q/messages HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
            #expect(RawHTTP.status(chunked.response) == 400 && chunked.response.contains("MalformedRequest"), "\(chunked.response)")
            #expect(try await api.describe("q").messages.total == 0)
        }
    }

    @Test func slowHeader_isClosedAfterTheHeaderTimeout_idleKeepAliveAfterTheIdleTimeout() async throws {
        let f = try await ServerFixture()
        // The header timeout alone (no idle timeout that would also close a silent connection).
        try await withGuardedServer(f, {
            $0.headerReadTimeout = .seconds(1)
            $0.idleTimeout = nil
        }) { port, _ in
            let slow = try await RawHTTP.exchange(port: port, "GET /health HTTP/1.1\r\nHo")
            #expect(slow.closed && slow.response.isEmpty, "closed without an answer: \(slow.response)")
        }
        // Keep-alive: answered, then closed after the idle timeout (not at once, not never).
        try await withGuardedServer(f, {
            $0.headerReadTimeout = nil
            $0.idleTimeout = .seconds(2)
        }) { port, _ in
            let idle = try await RawHTTP.exchange(port: port, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            #expect(idle.closed && RawHTTP.status(idle.response) == 200, "\(idle.response)")
        }
    }

    @Test func connectionCap_reserveServesHealthOnly_pastTheReserveConnectionsAreClosed() async throws {
        let f = try await ServerFixture()
        let limiter = ConnectionLimiter(maxConnections: 1, reserve: 1)
        try await withGuardedServer(f, { $0.connections = limiter }) { port, api in
            // The test client's own connection takes the one normal slot.
            try await api.createQueue("q")
            let health = try await RawHTTP.exchange(port: port, "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            #expect(RawHTTP.status(health.response) == 200, "\(health.response)")
            let other = try await RawHTTP.exchange(port: port, "GET /queues HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            #expect(RawHTTP.status(other.response) == 503 && other.response.contains("Overloaded"), "\(other.response)")
            #expect(other.response.lowercased().contains("retry-after: 1"))
            // Hold the reserve slot with an idle connection (once the two above are uncounted):
            // the next one is closed unanswered.
            var settled = limiter.openConnections
            for _ in 0..<500 where settled > 1 {
                try await Task.sleep(for: .milliseconds(10))
                settled = limiter.openConnections
            }
            let holder = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "localhost", port: port).get()
            var open = limiter.openConnections
            for _ in 0..<200 where open < 2 {
                try await Task.sleep(for: .milliseconds(10))
                open = limiter.openConnections
            }
            let refused = try await RawHTTP.exchange(port: port, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            #expect(refused.closed && refused.response.isEmpty, "\(refused.response)")
            try await holder.close()
        }
    }
}

extension Broker {
    /// The queue list, empty when it cannot be read.
    var listQueuesOrEmpty: [QueueInfo] { (try? listQueues()) ?? [] }
}
