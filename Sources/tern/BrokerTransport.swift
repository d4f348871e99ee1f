import Foundation

/// What the commands need from ternd, whichever protocol carries it.
///
/// Two implementations: ``BrokerClient`` speaks the HTTP API (`http://` and `https://` servers),
/// ``BinaryBrokerClient`` speaks the binary protocol through `TernClient` (`tern://host:port`,
/// `tern+tls://host:port`, or a bare `host:port`). ``ServerOptions/run(_:)`` picks one from the
/// server address.
///
/// ## Implementing it
/// Answers come back in the HTTP API's shapes (``API`` and ``TopicAPI``), so that every command
/// prints the same bytes whichever transport ran. Every broker failure is a
/// ``ClientError/server(status:code:message:)`` with the broker's stable error code and the HTTP
/// status of that code; a failure to reach the broker is ``ClientError/unreachable(server:cause:)``,
/// a connection lost mid-request ``ClientError/transport(server:cause:)``. Implementations are
/// `Sendable`: commands call them from many tasks at once (concurrent batches and acks).
protocol BrokerTransport: Sendable {
    /// The server as the user named it, normalized (for messages).
    var server: String { get }

    /// Closes connections. Call once, after the last request.
    func shutdown() async

    // MARK: Queues

    /// Creates `name` or changes the attributes that are set.
    /// - Returns: whether the queue was created (false: it existed and was updated).
    func createQueue(_ name: String, attributes: API.QueueAttributes) async throws -> Bool
    /// Every queue (in any order; the command sorts).
    func listQueues() async throws -> [API.QueueDescription]
    /// One queue's description as the HTTP API's JSON object.
    func describeQueue(_ name: String) async throws -> JSONValue
    func deleteQueue(_ name: String) async throws
    /// - Returns: how many messages were removed.
    func purgeQueue(_ name: String) async throws -> Int
    /// - Returns: how many messages moved back to their source queues.
    func redrive(_ deadLetterQueue: String) async throws -> Int

    // MARK: Messages

    /// Sends one message.
    func send(_ message: API.SendRequest, to queue: String) async throws -> API.SendResult
    /// Sends 1–1,000 messages, all or nothing.
    /// - Returns: how many messages the broker accepted.
    func send(batch messages: [API.SendRequest], to queue: String) async throws -> Int
    /// Receives up to `maxMessages` (1–1,000), waiting up to `waitTime` seconds (nil: no wait).
    /// - Parameter visibilityTimeout: in seconds; nil = the queue's.
    func receive(from queue: String, maxMessages: Int, visibilityTimeout: Int?, waitTime: Int?,
                 autoAcknowledge: Bool) async throws -> [API.ReceivedMessage]
    /// Acknowledges every handle.
    /// - Throws: the first failure; the deliveries not acknowledged come back after their
    ///   visibility timeout.
    func acknowledge(_ receiptHandles: [String], on queue: String) async throws
    /// Makes the delivery visible again `seconds` from now (0 releases it at once).
    func changeVisibility(_ receiptHandle: String, on queue: String, to seconds: Int) async throws

    // MARK: Topics

    /// Creates `name` or updates its retention and max bytes.
    /// - Returns: whether the topic was created.
    func createTopic(_ name: String, attributes: TopicAPI.Attributes) async throws -> Bool
    func listTopics() async throws -> [TopicAPI.Description]
    /// One topic's description as the HTTP API's JSON object.
    func describeTopic(_ name: String) async throws -> JSONValue
    /// Appends 1–1,000 messages, all or nothing.
    /// - Returns: how many messages were stored.
    func produce(_ messages: [TopicAPI.Message], to topic: String) async throws -> Int
    /// Joins `group` as a new member.
    /// - Parameter sessionTimeout: in seconds.
    func joinGroup(topic: String, group: String, sessionTimeout: Int) async throws -> TopicAPI.Join
    /// Up to `max` messages of the member's partitions, waiting up to `waitTime` seconds.
    func consume(topic: String, group: String, memberID: String, max: Int, waitTime: Int) async throws -> TopicAPI.Batch
    /// Commits, per partition, the next offset to consume.
    /// - Throws: a server error with status 409 (`StaleGeneration`, `Conflict`) when the group
    ///   rebalanced meanwhile.
    func commitOffsets(_ offsets: [Int: UInt64], topic: String, group: String, memberID: String, generation: Int) async throws
    func leaveGroup(topic: String, group: String, memberID: String) async throws

    // MARK: Cluster

    /// The server's gossip membership view (`tern cluster members`).
    func clusterMembers() async throws -> API.ClusterMembers
    /// The server's view of the cluster: leaders, terms, replicas and lag (`tern cluster status`).
    func clusterStatus() async throws -> API.ClusterStatus
    /// Adds a node to the data group's replicas (`tern cluster add`).
    func addReplica(_ node: String) async throws -> API.Replicas
    /// Removes a node from the data group's replicas (`tern cluster remove`).
    func removeReplica(_ node: String) async throws -> API.Replicas
}

/// Where the server is and how to talk to it, parsed from `--server` and `--tls`.
enum ServerAddress: Equatable {
    /// ternd's HTTP API; `baseURL` is `http://…` or `https://…` without a trailing slash.
    case http(baseURL: String)
    /// ternd's binary protocol.
    case binary(host: String, port: Int, tls: Bool)

    /// The binary protocol's default port.
    static let defaultBinaryPort = 7081

    /// Parses `http://…`, `https://…`, `tern://host[:port]`, `tern+tls://host[:port]` or a bare
    /// `host[:port]` (binary). A missing binary port is 7081; an IPv6 host is written `[::1]`.
    /// - Parameter tls: `--tls`: binary over TLS (an `https://` URL already is TLS).
    /// - Throws: ``ClientError/input(_:)`` for another scheme, a bad port, or `--tls` with `http://`.
    static func parse(_ server: String, tls: Bool) throws(ClientError) -> ServerAddress {
        let lowered = server.lowercased()
        if lowered.hasPrefix("http://") || lowered.hasPrefix("https://") {
            if tls && lowered.hasPrefix("http://") {
                throw .input("--tls is for the binary protocol; for TLS over HTTP use an https:// URL")
            }
            var base = server
            while base.hasSuffix("/") { base.removeLast() }
            return .http(baseURL: base)
        }
        var rest = Substring(server)
        var secure = tls
        if lowered.hasPrefix("tern+tls://") {
            rest = rest.dropFirst("tern+tls://".count)
            secure = true
        } else if lowered.hasPrefix("tern://") {
            rest = rest.dropFirst("tern://".count)
        } else if let scheme = server.range(of: "://") {
            throw .input("unsupported server \(server): use tern://host:port, tern+tls://host:port, http:// or https:// "
                + "(not \(server[..<scheme.lowerBound])://)")
        }
        while rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.contains("/") else { throw .input("server \(server) must be host:port, without a path") }
        var host = rest
        var port = defaultBinaryPort
        if rest.hasPrefix("[") {
            // [IPv6]:port
            guard let close = rest.firstIndex(of: "]") else { throw .input("server \(server): missing ] after the IPv6 address") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let number = Int(after.dropFirst()) else { throw .input("server \(server): bad port") }
                port = number
            }
        } else if let colon = rest.lastIndex(of: ":") {
            guard let number = Int(rest[rest.index(after: colon)...]) else { throw .input("server \(server): bad port") }
            host = rest[..<colon]
            port = number
        }
        guard !host.isEmpty else { throw .input("server \(server) has no host") }
        guard (1...65535).contains(port) else { throw .input("server \(server): port must be 1–65535") }
        return .binary(host: String(host), port: port, tls: secure)
    }
}
