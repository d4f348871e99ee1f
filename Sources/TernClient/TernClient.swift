public import Logging
public import NIOCore
import NIOPosix
import Synchronization
public import NIOSSL
public import TernCore
public import TernWire

/// A client of Tern's binary protocol: queue administration, sends, receives and
/// acknowledgements, topics (`TernClient+Topics.swift`), and the entry point of ``Producer``,
/// ``TransactionalProducer``, ``QueueConsumer`` and ``GroupConsumer``.
///
/// ```swift
/// let client = TernClient(host: "127.0.0.1", port: 7081)
/// try await client.createQueue("jobs")
/// let sent = try await client.send([OutgoingMessage(body: Array("hello".utf8))], to: "jobs")
/// for message in try await client.receive(from: "jobs", maxMessages: 10, waitTime: 5) {
///     try await client.acknowledge(message.receiptHandle, on: "jobs")
/// }
/// await client.close()
/// ```
///
/// The client holds one connection, opened on first use and re-opened after it is lost (the
/// call that saw the loss fails with ``TernError`` `Unavailable`; the next call reconnects).
/// Calls may be made concurrently from many tasks: they are pipelined on the connection.
/// Failures are ``TernError``s with the broker's stable ``ErrorCode``.
public final class TernClient: Sendable {
    /// Settings of the client.
    public struct Settings: Sendable {
        /// The frame limit of this side; responses above it close the connection. Default 64 MiB.
        public var wire = WireSettings()
        /// Sent in `ApiVersions`, for the broker's logs.
        public var clientName = "tern-client/0.1"
        /// The first pause before retrying after a lost connection; doubled up to
        /// ``maxReconnectBackoff``. Default 50 ms.
        public var reconnectBackoff: Duration = .milliseconds(50)
        /// Default 2 s.
        public var maxReconnectBackoff: Duration = .seconds(2)
        /// The bearer token presented (`Authenticate`) on every connection; nil when the broker
        /// runs without authentication. Never logged.
        public var token: String?
        /// TLS towards the broker (swift-nio-ssl); nil = plain TCP. For a private CA:
        /// `var tls = TLSConfiguration.makeClientConfiguration()` and
        /// `tls.trustRoots = .file("/etc/tern/ca.pem")`.
        public var tls: TLSConfiguration?
        /// The host name checked against the broker's certificate; nil = ``TernClient/host``.
        public var tlsServerName: String?
        /// How long a call waits for its response, beyond the long-poll wait the request itself
        /// asks for: a `receive`, `fetch` or group `consume` with `waitTime` W waits up to
        /// W + `requestTimeout`. Default 30 s.
        ///
        /// A call that times out fails with ``TernError`` `Unavailable` ("the request to … timed
        /// out after N s; it may or may not have been applied"), and the connection is closed
        /// (as after a lost connection, other calls waiting on it fail with `Unavailable` too);
        /// the next call opens a new one. A response that arrives later is dropped. Also bounds
        /// the TLS handshake, `ApiVersions` and `Authenticate` of each new connection.
        public var requestTimeout: Duration = .seconds(30)
        /// How long opening the TCP connection may take before the call fails with
        /// `Unavailable`. Default 5 s.
        public var connectTimeout: Duration = .seconds(5)
        /// In a cluster, how many `NotLeader` answers a call follows to the leader they name
        /// before it fails with the last one. `NotLeader` means nothing was applied, so the
        /// request is sent again unchanged. Default 3; 0 = never follow.
        public var maxLeaderRedirects = 3
        /// Further nodes of the cluster, as `HOST:PORT` of their binary listeners (Kafka's
        /// `bootstrap.servers`): when the node calls go to cannot be reached, a new connection
        /// tries these, and every node learned from `Metadata`, in order. Only opening a
        /// connection moves on this way (nothing has been sent yet); a call whose connection
        /// breaks still fails with `Unavailable`. Entries that do not parse are ignored.
        public var bootstrapServers: [String] = []
        /// In a cluster, whether each new connection asks the node it reached for `Metadata`
        /// (one round trip), remembers the other nodes, and moves to the data group's leader,
        /// so that calls go straight there instead of being answered `NotLeader`. Default true.
        public var discoverLeader = true
        public init() {}
    }

    /// The address the client was made with.
    public let host: String
    public let port: Int
    public let settings: Settings
    /// Where calls go now: `host:port` until a cluster node answered `NotLeader` naming another,
    /// `Metadata` named the leader, or the node could not be reached and another was.
    private let target: Mutex<(host: String, port: Int)>
    /// Every node a new connection may try: `host:port`, ``Settings/bootstrapServers``, and the
    /// nodes `Metadata` named (at most ``maxKnownNodes``), in that order.
    private let known: Mutex<[Endpoint]>
    /// The most nodes ``known`` keeps.
    static let maxKnownNodes = 64

    struct Endpoint: Hashable, Sendable {
        var host: String
        var port: Int
    }
    let logger: Logger
    private let group: any EventLoopGroup
    private let connector: Connector
    /// Set while the current connection goes to a node that does not lead the data group
    /// (the leader was unknown or unreachable when it opened; a follower forwards its calls,
    /// decision 133): each call first asks that node's `Metadata` and moves to the leader once
    /// one is known and reachable. nil: on the leader, alone, or ``Settings/discoverLeader`` off.
    private let offLeader = Mutex<OffLeader?>(nil)
    /// Set when a call follows `NotLeader`: the connection opened next stays on the node it
    /// names, without asking `Metadata` (which names the data group's leader; a queue in a
    /// queue group of its own is led elsewhere, decision 140).
    private let followingNotLeader = Mutex(false)

    struct OffLeader: Sendable {
        /// The leader last found unreachable, and when: tried again after a second, not on
        /// every call (a leader named anew is tried at once).
        var failed: Endpoint?
        var failedAt: ContinuousClock.Instant?
    }

    /// A client of the broker at `host:port` (no connection is made until the first call).
    /// - Parameter eventLoopGroup: nil = NIO's shared singleton group.
    public init(host: String = "127.0.0.1", port: Int = 7081, settings: Settings = Settings(),
                eventLoopGroup: (any EventLoopGroup)? = nil,
                logger: Logger = Logger(label: "tern.client")) {
        self.host = host
        self.port = port
        self.settings = settings
        self.group = eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
        self.logger = logger
        self.connector = Connector()
        self.target = Mutex((host, port))
        var known = [Endpoint(host: host, port: port)]
        for server in settings.bootstrapServers {
            guard let address = Self.address(from: server) else { continue }
            let endpoint = Endpoint(host: address.host, port: address.port)
            if !known.contains(endpoint) { known.append(endpoint) }
        }
        self.known = Mutex(known)
    }

    /// The nodes a new connection may try, in order (see ``Settings/bootstrapServers``).
    public var knownNodes: [(host: String, port: Int)] { known.withLock { $0.map { ($0.host, $0.port) } } }

    /// The address calls go to now (the leader the client was redirected to, in a cluster).
    public var currentAddress: (host: String, port: Int) { target.withLock { $0 } }

    /// Parses `tern://host:port` (or `host:port`).
    /// - Returns: nil when `url` has another scheme or no valid port.
    public static func address(from url: String) -> (host: String, port: Int)? {
        var rest = Substring(url)
        if rest.hasPrefix("tern://") {
            rest = rest.dropFirst("tern://".count)
        } else if rest.contains("/") {
            return nil
        }
        while rest.hasSuffix("/") { rest = rest.dropLast() }
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port) else {
            return nil
        }
        let host = String(rest[..<colon])
        return host.isEmpty ? nil : (host, port)
    }

    /// Closes the connection. Calls made afterwards open a new one.
    public func close() async {
        await connector.close()
    }

    /// Opens the connection now (TCP, TLS, `ApiVersions`, `Authenticate` when a token is set)
    /// instead of on the first call; does nothing when it is open.
    /// - Throws: ``TernError`` `Unavailable` when the broker cannot be reached or closes the
    ///   connection (for example at its `max_connections`), `UnsupportedVersion`, or the
    ///   broker's answer to `Authenticate`.
    public func connect() async throws(TernError) {
        let (host, port) = currentAddress
        _ = try await connector.connection { () async throws(TernError) -> ClientConnection in
            try await ClientConnection.connect(host: host, port: port, group: self.group, settings: self.settings)
        }
    }

    // MARK: Raw requests

    /// Sends one request and returns its response (an error response is thrown).
    /// - Throws: ``TernError``: the broker's error, or `Unavailable` when the connection failed
    ///   or the response did not come within ``Settings/requestTimeout`` (the request may or
    ///   may not have been applied).
    public func call(_ request: WireRequest) async throws(TernError) -> WireResponse {
        var redirects = 0
        while true {
            var connection = try await connector.connection { () async throws(TernError) -> ClientConnection in
                try await self.openConnection()
            }
            if offLeader.withLock({ $0 != nil }) { connection = await moveToLeader(from: connection) }
            // Read after connecting: opening may have moved the calls to the leader or another node.
            let (host, port) = currentAddress
            let response = try await connection.call(request, timeout: settings.requestTimeout)
            guard case .error(let error) = response else { return response }
            guard error.code == .notLeader, redirects < settings.maxLeaderRedirects,
                  let leader = Self.leaderAddress(in: error.message) else { throw error }
            redirects += 1
            if leader == (host, port) {
                // The node this connection reaches leads it (a queue group's leader that sent a
                // new queue's create on to the data group's leader before it knew the queue,
                // decision 140): ask again once it has caught up.
                try? await Task.sleep(for: .milliseconds(50))
                continue
            }
            logger.debug("following NotLeader", metadata: ["tern.leader": "\(leader.host):\(leader.port)"])
            target.withLock { $0 = leader }
            followingNotLeader.withLock { $0 = true }
            await connector.replace(ifCurrent: connection)
        }
    }

    /// Who leads what in the cluster and where its nodes listen, as the node calls go to knows it
    /// (``WireMetadata/alone`` from a node that runs alone). Also remembers the nodes it names.
    /// - Throws: ``TernError`` as ``call(_:)``.
    public func metadata() async throws(TernError) -> WireMetadata {
        guard case .metadata(let metadata) = try await call(.metadata) else { throw unexpected() }
        learn(metadata)
        return metadata
    }

    /// Opens the connection calls use: to ``currentAddress``, else to the other ``knownNodes`` in
    /// order (nothing was sent on a connection that failed to open, so trying the next is safe).
    /// In a cluster, with ``Settings/discoverLeader``, the node reached is asked `Metadata` and
    /// the connection moves to the data group's leader when another node leads.
    /// - Throws: ``TernError`` `Unavailable` (or the handshake's error) of the last node tried.
    private func openConnection() async throws(TernError) -> ClientConnection {
        let first = currentAddress
        var candidates = [Endpoint(host: first.host, port: first.port)]
        for endpoint in known.withLock({ $0 }) where !candidates.contains(endpoint) { candidates.append(endpoint) }
        var lastError: TernError?
        for endpoint in candidates {
            let connection: ClientConnection
            do {
                connection = try await ClientConnection.connect(host: endpoint.host, port: endpoint.port, group: group, settings: settings)
            } catch {
                lastError = error
                continue
            }
            if endpoint != candidates[0] {
                logger.info("node unreachable; calls go to another", metadata: [
                    "tern.unreachable": "\(first.host):\(first.port)", "tern.node": "\(endpoint.host):\(endpoint.port)",
                ])
            }
            target.withLock { $0 = (endpoint.host, endpoint.port) }
            offLeader.withLock { $0 = nil }
            let followed = followingNotLeader.withLock { value in
                defer { value = false }
                return value
            }
            guard settings.discoverLeader, !followed else { return connection }
            let leadership = try await leaderAddress(askingOn: connection)
            guard case .leader(let leader) = leadership else {
                // In a cluster with no leader now: calls go here (forwarded, or refused until
                // one is elected) and move once one is known.
                if case .unknown = leadership { offLeader.withLock { $0 = OffLeader() } }
                return connection
            }
            guard leader != endpoint else { return connection }
            do {
                let direct = try await ClientConnection.connect(host: leader.host, port: leader.port, group: group, settings: settings)
                connection.close()
                target.withLock { $0 = (leader.host, leader.port) }
                logger.debug("connected to the leader", metadata: ["tern.leader": "\(leader.host):\(leader.port)"])
                return direct
            } catch {
                // The node reached still answers (it forwards, or NotLeader names the leader).
                offLeader.withLock { $0 = OffLeader(failed: leader, failedAt: .now) }
                return connection
            }
        }
        throw lastError ?? TernError(.unavailable, "no node of the cluster could be reached")
    }

    /// What `Metadata` says of the data group's leader.
    enum Leadership: Equatable {
        /// Outside a cluster, or a broker that does not know `Metadata`.
        case alone
        /// In a cluster with no leader now (or the answer did not come).
        case unknown
        /// The leader's binary address.
        case leader(Endpoint)
    }

    /// Asks `connection` for `Metadata`; remembers the nodes it names and returns where the
    /// data group's leader listens.
    /// - Throws: the broker's `Overloaded` (past its connection cap it closes the connection
    ///   after the answer, so calls could not go on it).
    private func leaderAddress(askingOn connection: ClientConnection) async throws(TernError) -> Leadership {
        guard connection.serves(.metadata) else { return .alone }
        let answer = try? await connection.call(.metadata, timeout: settings.requestTimeout)
        if case .error(let error)? = answer, error.code == .overloaded {
            connection.close()
            throw error
        }
        guard case .metadata(let metadata)? = answer else { return .unknown }
        guard metadata.clustered else { return .alone }
        learn(metadata)
        guard let leader = metadata.groups.first?.leaderBinary.flatMap(Self.address(from:)) else { return .unknown }
        return .leader(Endpoint(host: leader.host, port: leader.port))
    }

    /// While the current connection goes to a node that does not lead (``offLeader``): asks it
    /// `Metadata` and, once it names a leader this client can reach, moves calls there — before
    /// this call is sent, the old connection closing once its calls in flight are answered.
    /// - Returns: the connection this call goes on.
    private func moveToLeader(from connection: ClientConnection) async -> ClientConnection {
        guard let leadership = try? await leaderAddress(askingOn: connection) else { return connection }
        let current = currentAddress
        switch leadership {
        case .alone:
            offLeader.withLock { $0 = nil }
            return connection
        case .unknown:
            return connection
        case .leader(let leader):
            if leader == Endpoint(host: current.host, port: current.port) {
                offLeader.withLock { $0 = nil }
                return connection
            }
            // A leader that could not be reached is tried again after a second, not on every call.
            let due = offLeader.withLock { state -> Bool in
                guard let failedAt = state?.failedAt, state?.failed == leader else { return true }
                return ContinuousClock.now - failedAt >= .seconds(1)
            }
            guard due else { return connection }
            // The call waits for this attempt: a short connect timeout (as a follower's own
            // forwarding connections), since the node reached serves meanwhile.
            var quick = settings
            quick.connectTimeout = min(settings.connectTimeout, .milliseconds(500))
            let direct: ClientConnection
            do {
                direct = try await ClientConnection.connect(host: leader.host, port: leader.port, group: group, settings: quick)
            } catch {
                offLeader.withLock { $0 = OffLeader(failed: leader, failedAt: .now) }
                return connection
            }
            guard await connector.move(from: connection, to: direct) else { return connection }
            target.withLock { $0 = (leader.host, leader.port) }
            offLeader.withLock { $0 = nil }
            logger.debug("moved to the leader", metadata: ["tern.leader": "\(leader.host):\(leader.port)"])
            return direct
        }
    }

    /// Adds the binary addresses of the nodes `metadata` names to ``knownNodes``.
    private func learn(_ metadata: WireMetadata) {
        let learned = metadata.nodes.compactMap { $0.binary.flatMap(Self.address(from:)) }.map { Endpoint(host: $0.host, port: $0.port) }
        known.withLock { known in
            for endpoint in learned where !known.contains(endpoint) && known.count < Self.maxKnownNodes { known.append(endpoint) }
        }
    }

    /// The `HOST:PORT` after " at " at the end of a `NotLeader` message
    /// (`… leader node-2 at 10.0.0.2:7081`), nil when it names none.
    static func leaderAddress(in message: String) -> (host: String, port: Int)? {
        let marker = Array(" at ".utf8), bytes = Array(message.utf8)
        guard bytes.count > marker.count else { return nil }
        for start in stride(from: bytes.count - marker.count, through: 0, by: -1) where Array(bytes[start..<start + marker.count]) == marker {
            return address(from: String(decoding: bytes[(start + marker.count)...], as: UTF8.self))
        }
        return nil
    }

    // MARK: Queues

    /// Creates `name` or changes the attributes `patch` names.
    /// - Returns: whether the queue was created, and its description.
    @discardableResult
    public func createQueue(_ name: String, patch: QueueAttributes.Patch = .init()) async throws(TernError) -> (created: Bool, queue: QueueInfo) {
        guard case .queue(let created, let info) = try await call(.createQueue(name: name, patch: patch)) else { throw unexpected() }
        return (created, info)
    }

    public func describeQueue(_ name: String) async throws(TernError) -> QueueInfo {
        guard case .queue(_, let info) = try await call(.describeQueue(name: name)) else { throw unexpected() }
        return info
    }

    public func listQueues() async throws(TernError) -> [QueueInfo] {
        guard case .queues(let infos) = try await call(.listQueues) else { throw unexpected() }
        return infos
    }

    /// The answering node's gossip membership view (`DescribeCluster`).
    public func describeCluster() async throws(TernError) -> WireClusterView {
        guard case .cluster(let view) = try await call(.describeCluster) else { throw unexpected() }
        return view
    }

    public func deleteQueue(_ name: String) async throws(TernError) {
        _ = try await call(.deleteQueue(name: name))
    }

    /// - Returns: how many messages were removed.
    @discardableResult
    public func purgeQueue(_ name: String) async throws(TernError) -> UInt64 {
        guard case .count(let count) = try await call(.purgeQueue(name: name)) else { throw unexpected() }
        return count
    }

    /// - Returns: how many messages moved back to their source queues.
    @discardableResult
    public func redrive(_ name: String) async throws(TernError) -> UInt64 {
        guard case .count(let count) = try await call(.redrive(name: name)) else { throw unexpected() }
        return count
    }

    // MARK: Messages

    /// Stores `messages` in `queue`, all or nothing; returns once the commit is durable.
    ///
    /// Not idempotent: a retry after `Unavailable` may store the batch twice. Use ``Producer``
    /// for retries without duplicates.
    public func send(_ messages: [OutgoingMessage], to queue: String) async throws(TernError) -> [SentMessage] {
        guard case .sent(let sent, _) = try await call(.send(queue: queue, producer: nil, messages: messages)) else { throw unexpected() }
        return sent
    }

    /// Receives up to `maxMessages` (1–1,000), waiting up to `waitTime` seconds (0–20) for the first.
    /// - Parameter visibilityTimeout: seconds; nil = the queue's.
    public func receive(from queue: String, maxMessages: Int = 1, visibilityTimeout: Int? = nil, waitTime: Int = 0,
                        autoAcknowledge: Bool = false) async throws(TernError) -> [ReceivedMessage] {
        guard (0...Int(UInt16.max)).contains(maxMessages), (0...255).contains(waitTime) else {
            throw TernError(.invalidParameter, "batch size must be 1–1000 and wait time 0–20 seconds")
        }
        let request = WireRequest.receive(queue: queue, maxMessages: UInt16(maxMessages),
                                          visibilityTimeout: visibilityTimeout.map { UInt32(clamping: $0) },
                                          waitTime: UInt8(waitTime), autoAcknowledge: autoAcknowledge)
        guard case .received(let messages) = try await call(request) else { throw unexpected() }
        return messages
    }

    /// Acknowledges one delivery.
    /// - Throws: ``TernError`` `ReceiptHandleStale` when a later receive superseded the handle or the message is gone.
    public func acknowledge(_ receiptHandle: String, on queue: String) async throws(TernError) {
        let results = try await acknowledge([receiptHandle], on: queue)
        if let error = results.first ?? nil { throw error }
    }

    /// Acknowledges many deliveries in one request; each succeeds or fails on its own.
    /// - Returns: per handle, nil on success or its error.
    public func acknowledge(_ receiptHandles: [String], on queue: String) async throws(TernError) -> [TernError?] {
        guard case .acknowledged(let results) = try await call(.acknowledge(queue: queue, receiptHandles: receiptHandles)) else {
            throw unexpected()
        }
        return results
    }

    /// Makes the delivery visible again `seconds` from now (0 releases it at once).
    public func changeVisibility(_ receiptHandle: String, on queue: String, to seconds: Int) async throws(TernError) {
        _ = try await call(.changeVisibility(queue: queue, receiptHandle: receiptHandle, visibilityTimeout: UInt32(clamping: max(0, seconds))))
    }

    func unexpected() -> TernError { TernError(.invalidFrame, "the broker answered with an unexpected response type") }

    /// Sleeps the backoff for `attempt` (0-based): ``Settings/reconnectBackoff`` doubled per attempt, capped.
    func backoff(attempt: Int) async throws {
        var pause = settings.reconnectBackoff
        for _ in 0..<min(attempt, 10) { pause = pause * 2 }
        try await Task.sleep(for: min(pause, settings.maxReconnectBackoff))
    }
}

/// Opens the client's connection once, even when many calls need it at the same moment.
actor Connector {
    private var current: ClientConnection?
    private var connecting: Task<ClientConnection, any Error>?

    func connection(_ open: @escaping @Sendable () async throws(TernError) -> ClientConnection) async throws(TernError) -> ClientConnection {
        if let current, current.isOpen { return current }
        if connecting == nil {
            connecting = Task { try await open() }
        }
        let task = connecting!
        do {
            let connection = try await task.value
            if connecting == task { connecting = nil }
            current = connection
            return connection
        } catch {
            if connecting == task { connecting = nil }
            throw (error as? TernError) ?? TernError(.unavailable, "\(error)")
        }
    }

    func close() {
        current?.close()
        current = nil
    }

    /// Makes `new` the current connection in place of `old`, which closes once its calls in
    /// flight are answered; when `old` is no longer current, `new` is closed instead.
    /// - Returns: whether `new` is now current.
    func move(from old: ClientConnection, to new: ClientConnection) -> Bool {
        guard current === old else {
            new.close()
            return false
        }
        current = new
        old.closeWhenIdle()
        return true
    }

    /// Closes `connection` if it is still the current one (the next call opens a new one).
    func replace(ifCurrent connection: ClientConnection) {
        guard current === connection else { return }
        current?.close()
        current = nil
    }
}
