import ArgumentParser
import AsyncHTTPClient
import NIOHTTP1
import Foundation
import NIOCore
import TernClient
import TernCore
import TernWire

/// What a benchmark worker needs from a connection, over the binary protocol or HTTP.
protocol BenchTransport: Sendable {
    func createQueue(_ name: String) async throws
    func send(_ bodies: [[UInt8]], to queue: String) async throws
    func receive(from queue: String, max: Int, waitTime: Int) async throws -> [(handle: String, body: [UInt8])]
    func acknowledge(_ handles: [String], on queue: String) async throws
    func createTopic(_ name: String, partitions: Int) async throws
    /// Appends `values` to `topic` (keyless: the broker's sticky partition).
    func produce(_ values: [[UInt8]], to topic: String) async throws
    /// Up to `max` records of one partition from `offset`, waiting up to `waitTime` seconds.
    /// - Returns: the values read and the offset after the last one.
    func fetch(_ topic: String, partition: Int, offset: UInt64, max: Int, waitTime: Int) async throws -> (values: [[UInt8]], next: UInt64)
    func close() async
}

func makeTransport(_ options: LoadOptions) throws -> any BenchTransport {
    if options.isHTTP { return HTTPTransport(base: options.server) }
    guard let (host, port) = TernClient.address(from: options.server) else {
        throw ValidationError("--server must be tern://HOST:PORT or http://HOST:PORT, got \(options.server)")
    }
    var settings = TernClient.Settings()
    if options.stayOnNode {
        settings.discoverLeader = false
        settings.maxLeaderRedirects = 0
    }
    return BinaryTransport(client: TernClient(host: host, port: port, settings: settings))
}

struct BinaryTransport: BenchTransport {
    let client: TernClient

    func createQueue(_ name: String) async throws { try await client.createQueue(name) }

    func send(_ bodies: [[UInt8]], to queue: String) async throws {
        _ = try await client.send(bodies.map { OutgoingMessage(body: $0) }, to: queue)
    }

    func receive(from queue: String, max: Int, waitTime: Int) async throws -> [(handle: String, body: [UInt8])] {
        try await client.receive(from: queue, maxMessages: max, waitTime: waitTime).map { ($0.receiptHandle, $0.body) }
    }

    func acknowledge(_ handles: [String], on queue: String) async throws {
        for result in try await client.acknowledge(handles, on: queue) {
            if let result { throw result }
        }
    }

    func createTopic(_ name: String, partitions: Int) async throws {
        _ = try await client.createTopic(name, patch: TopicAttributes.Patch(partitions: partitions))
    }

    func produce(_ values: [[UInt8]], to topic: String) async throws {
        _ = try await client.produce(values.map { TopicMessage(value: $0) }, to: topic)
    }

    func fetch(_ topic: String, partition: Int, offset: UInt64, max: Int, waitTime: Int) async throws -> (values: [[UInt8]], next: UInt64) {
        let result = try await client.fetch(topic: topic, partition: partition, offset: offset, max: max, wait: waitTime)
        return (result.messages.map(\.value), result.messages.last.map { $0.offset + 1 } ?? offset)
    }

    func close() async { await client.close() }
}

/// The HTTP API with JSON bodies: batch sends, batch receives, batch acknowledgements. Bodies must
/// be valid UTF-8 (the benchmark bodies are ASCII).
struct HTTPTransport: BenchTransport {
    let base: String
    let http: HTTPClient

    init(base: String) {
        var base = base
        while base.hasSuffix("/") { base.removeLast() }
        self.base = base
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    func exchange(_ method: HTTPMethod, _ path: String, body: Data? = nil) async throws -> (Int, ByteBuffer) {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(body)
        }
        let response = try await http.execute(request, timeout: .seconds(60))
        return (Int(response.status.code), try await response.body.collect(upTo: 256 << 20))
    }

    func createQueue(_ name: String) async throws {
        let (status, _) = try await exchange(.PUT, "/queues/\(name)", body: Data("{}".utf8))
        guard status == 200 || status == 201 else { throw BenchError("PUT /queues/\(name): \(status)") }
    }

    func send(_ bodies: [[UInt8]], to queue: String) async throws {
        let messages = bodies.map { ["message": String(decoding: $0, as: UTF8.self)] }
        let data: Data = bodies.count == 1 ? try JSONEncoder().encode(messages[0]) : try JSONEncoder().encode(["messages": messages])
        let (status, body) = try await exchange(.POST, "/queues/\(queue)/messages", body: data)
        guard status == 201 else { throw BenchError("send: \(status) \(String(buffer: body))") }
    }

    struct Received: Decodable {
        struct Message: Decodable {
            var body: String
            var receiptHandle: String
            enum CodingKeys: String, CodingKey { case body, receiptHandle = "receipt_handle" }
        }
        var messages: [Message]
    }

    func receive(from queue: String, max: Int, waitTime: Int) async throws -> [(handle: String, body: [UInt8])] {
        let (status, body) = try await exchange(.GET, "/queues/\(queue)/messages?batch_size=\(max)&wait_time=\(waitTime)")
        guard status == 200 else { throw BenchError("receive: \(status) \(String(buffer: body))") }
        return try JSONDecoder().decode(Received.self, from: Data(body.readableBytesView)).messages.map { ($0.receiptHandle, Array($0.body.utf8)) }
    }

    struct BatchResults: Decodable {
        var failed: Int
    }

    /// One `POST /queues/{name}/messages/acknowledge` per batch of up to 1,000 handles.
    func acknowledge(_ handles: [String], on queue: String) async throws {
        var start = 0
        while start < handles.count {
            let chunk = handles[start..<min(handles.count, start + 1000)]
            start += chunk.count
            let data = try JSONEncoder().encode(["receipt_handles": Array(chunk)])
            let (status, body) = try await exchange(.POST, "/queues/\(queue)/messages/acknowledge", body: data)
            guard status == 200 else { throw BenchError("ack: \(status) \(String(buffer: body))") }
            let failed = try JSONDecoder().decode(BatchResults.self, from: Data(body.readableBytesView)).failed
            guard failed == 0 else { throw BenchError("ack: \(failed) of \(chunk.count) handles failed: \(String(buffer: body).prefix(300))") }
        }
    }

    func createTopic(_ name: String, partitions: Int) async throws {
        let (status, body) = try await exchange(.PUT, "/topics/\(name)", body: Data("{\"partitions\": \(partitions)}".utf8))
        guard status == 200 || status == 201 else { throw BenchError("PUT /topics/\(name): \(status) \(String(buffer: body))") }
    }

    func produce(_ values: [[UInt8]], to topic: String) async throws {
        let data = try JSONEncoder().encode(["messages": values.map { ["value": String(decoding: $0, as: UTF8.self)] }])
        let (status, body) = try await exchange(.POST, "/topics/\(topic)/messages", body: data)
        guard status == 201 else { throw BenchError("produce: \(status) \(String(buffer: body))") }
    }

    struct Fetched: Decodable {
        struct Message: Decodable {
            var offset: UInt64
            var value: String
        }
        var messages: [Message]
    }

    func fetch(_ topic: String, partition: Int, offset: UInt64, max: Int, waitTime: Int) async throws -> (values: [[UInt8]], next: UInt64) {
        let (status, body) = try await exchange(.GET, "/topics/\(topic)/partitions/\(partition)/messages?offset=\(offset)&max=\(max)&wait_time=\(waitTime)")
        guard status == 200 else { throw BenchError("fetch: \(status) \(String(buffer: body))") }
        let messages = try JSONDecoder().decode(Fetched.self, from: Data(body.readableBytesView)).messages
        return (messages.map { Array($0.value.utf8) }, messages.last.map { $0.offset + 1 } ?? offset)
    }

    func close() async { try? await http.shutdown() }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
