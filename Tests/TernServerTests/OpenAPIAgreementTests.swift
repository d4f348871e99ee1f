import Foundation
import Hummingbird
import TernCore
import TernServer
import Testing

/// What `docs/openapi.yaml` documents, read with a line-based parse of the layout that file
/// keeps (two-space indentation; paths at 2, methods at 4, response statuses at 8).
struct OpenAPIDocument {
    /// `"METHOD /path"` → documented response statuses.
    var operations: [String: Set<Int>] = [:]
    /// The `ErrorCode` schema's enum, in file order.
    var errorCodes: [String] = []

    static let fileURL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/openapi.yaml")

    static func load() throws -> OpenAPIDocument {
        try OpenAPIDocument(text: String(contentsOf: fileURL, encoding: .utf8))
    }

    init(text: String) {
        let methods: Set<String> = ["get", "put", "post", "delete", "patch", "head", "options", "trace"]
        var section = ""
        var path: String?
        var operation: String?
        var inErrorCode = false
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = String(raw)
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let indent = line.prefix(while: { $0 == " " }).count
            if indent == 0 {
                section = String(trimmed.dropLast(trimmed.hasSuffix(":") ? 1 : 0))
                path = nil
                operation = nil
                continue
            }
            if section == "paths" {
                if indent == 2, trimmed.hasPrefix("/"), trimmed.hasSuffix(":") {
                    path = String(trimmed.dropLast())
                    operation = nil
                } else if indent == 4, let path {
                    let key = String(trimmed.prefix(while: { $0 != ":" }))
                    operation = methods.contains(key) ? "\(key.uppercased()) \(path)" : nil
                    if let operation { operations[operation, default: []] = [] }
                } else if indent == 8, let operation, trimmed.hasPrefix("\""),
                    let status = Int(trimmed.dropFirst().prefix(3)), trimmed.dropFirst(4).hasPrefix("\":") {
                    operations[operation, default: []].insert(status)
                }
            } else if section == "components" {
                if indent == 4 { inErrorCode = trimmed == "ErrorCode:" }
                if inErrorCode, indent == 8, trimmed.hasPrefix("- ") {
                    errorCodes.append(String(trimmed.dropFirst(2)))
                }
            }
        }
    }
}

@Suite struct OpenAPIAgreementTests {
    @Test func documentedRoutes_equalTheServersRoutes_inBothDirections() throws {
        let document = try OpenAPIDocument.load()
        let documented = Set(document.operations.keys)
        let served = Set(HTTPAPI.routes)
        #expect(served.count == HTTPAPI.routes.count, "HTTPAPI.routes has duplicates")
        #expect(!documented.isEmpty, "no paths parsed from \(OpenAPIDocument.fileURL.path)")
        for route in served.subtracting(documented).sorted() {
            Issue.record("served but not documented in docs/openapi.yaml: \(route)")
        }
        for route in documented.subtracting(served).sorted() {
            Issue.record("documented in docs/openapi.yaml but not in HTTPAPI.routes: \(route)")
        }
        #expect(documented == served)
    }

    @Test func errorCodeEnum_equalsTheRegistry() throws {
        let document = try OpenAPIDocument.load()
        #expect(document.errorCodes == ErrorCode.all.map { $0.name })
    }

    /// The registry is a public contract: names, statuses and numbers never change meaning.
    @Test func errorRegistry_keepsItsStableNamesAndStatuses() {
        let expected: [(String, Int)] = [
            ("InvalidJSON", 400), ("InvalidName", 400), ("InvalidAttribute", 400), ("InvalidParameter", 400),
            ("InvalidMessage", 400), ("InvalidReceiptHandle", 400), ("Unsupported", 400), ("MalformedRequest", 400), ("QueueNotFound", 404),
            ("NotFound", 404), ("MethodNotAllowed", 405), ("Conflict", 409), ("QueueFull", 409),
            ("ReceiptHandleStale", 410), ("MessageTooLarge", 413), ("RequestTooLarge", 413), ("InternalError", 500),
            ("Unavailable", 503), ("StorageFull", 507), ("NotImplemented", 501), ("Overloaded", 503), ("NotLeader", 503),
            ("InvalidFrame", 400), ("UnsupportedVersion", 400), ("FrameTooLarge", 413), ("OutOfOrderSequence", 409),
            ("ProducerFenced", 409), ("UnknownProducer", 404), ("InvalidTransaction", 409),
            ("TopicNotFound", 404), ("MemberNotFound", 404), ("OffsetOutOfRange", 416), ("StaleGeneration", 409),
            ("Unauthorized", 401), ("Forbidden", 403), ("CrossOriginRequest", 403), ("HostNotAllowed", 403),
            ("NotInCluster", 409), ("NodeNotFound", 404), ("TransactionSpansGroups", 409),
        ]
        #expect(ErrorCode.all.map { $0.name } == expected.map(\.0))
        #expect(ErrorCode.all.map { $0.httpStatus } == expected.map(\.1))
        #expect(Set(ErrorCode.all.map { $0.number }).count == ErrorCode.all.count, "numbers must be unique")
    }

    /// Each documented route exists on the router (never `NotFound`), and the status a plain
    /// request gets (against an empty broker) is one the document lists for that operation.
    @Test func everyDocumentedRoute_isRouted_andAnswersADocumentedStatus() async throws {
        let document = try OpenAPIDocument.load()
        let f = try await ServerFixture()
        try await f.run { api in
            for (operation, statuses) in document.operations.sorted(by: { $0.key < $1.key }) {
                let parts = operation.split(separator: " ", maxSplits: 1)
                let method = HTTPRequest.Method(String(parts[0]))!
                let path = String(parts[1])
                    .replacingOccurrences(of: "{name}", with: "openapi-probe")
                    .replacingOccurrences(of: "{receipt_handle}", with: API.wellFormedHandle)
                let body: String? = switch method {
                case .put: "{}"
                case .post where path.hasSuffix("/messages"): "{\"message\": \"probe\"}"
                case .patch: "{\"visibility_timeout\": 5}"
                default: nil
                }
                let reply = try await api.request(method, path, body)
                #expect(reply.errorCode != ErrorCode.routeNotFound.name, "\(operation): \(reply)")
                #expect(reply.status != 405, "\(operation): \(reply)")
                #expect(statuses.contains(reply.status), "\(operation) answered \(reply), documented: \(statuses.sorted())")
            }
        }
    }

    @Test(arguments: [
        ("GET", "/"), ("GET", "/nope"), ("GET", "/queues/q/nope"), ("GET", "/queues/q/messages/h/x"),
        ("GET", "/queue/q"),
    ])
    func unknownPath_isNotFound(method: String, path: String) async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            let reply = try await api.request(HTTPRequest.Method(method)!, path)
            expectError(reply, .routeNotFound, "\(method) \(path)")
        }
    }

    /// A method the path does not serve: `405 MethodNotAllowed` with `Allow` listing the
    /// path's methods (from ``HTTPAPI/routes``), and nothing changes.
    @Test(arguments: [
        ("POST", "/queues"), ("PUT", "/health"), ("GET", "/queues/q/purge"), ("PATCH", "/queues/q"),
        ("GET", "/queues/q/messages/\(API.wellFormedHandle)"), ("PUT", "/queues/q/messages"), ("POST", "/topics/t"),
    ])
    func unservedMethod_is405_andChangesNothing(method: String, path: String) async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            try await api.send("q", "m")
            let before = try await api.snapshot()
            let reply = try await api.request(HTTPRequest.Method(method)!, path, "{}")
            expectError(reply, .methodNotAllowed, "\(method) \(path)")
            expectErrorShape(reply)
            #expect(try await api.snapshot() == before)
        }
    }
}
