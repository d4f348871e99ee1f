import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import TernBroker
import TernCluster
import TernCore
import TernServer
import TernSQS
import TernStorage

/// `ternd`: the Tern broker daemon.
///
/// Settings come from flags, then `TERN_*` environment variables, then the `--config` file,
/// then defaults (the first that sets a value wins); see ``Configuration``.
@main
struct Ternd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ternd",
        abstract: "The Tern message broker daemon.",
        discussion: """
            Serves the HTTP API on --http and the binary protocol on --binary, stores messages in LMDB under \
            --data-dir, and stops cleanly on SIGTERM or SIGINT (stop accepting, finish in-flight requests, \
            final commit, close). Precedence: flags > TERN_* environment variables > --config file > defaults; \
            --print-config shows the result. See docs/operations.md.
            """)

    @Option(name: .long, help: "A YAML configuration file (see docs/operations.md).")
    var config: String?

    @Option(name: .long, help: "The data directory (created if missing). Default ./data.")
    var dataDir: String?

    @Option(name: .long, help: "Address of the HTTP API, HOST:PORT. Default 127.0.0.1:7080.")
    var http: String?

    @Option(name: .long, help: "Address of the binary protocol, HOST:PORT (port 0 picks a free one). Default 127.0.0.1:7081.")
    var binary: String?

    @Option(name: .long, help: "The largest the data file may grow, in bytes (LMDB map size). Default 64 GiB.")
    var maxMapBytes: Int?

    @Option(name: .long, help: "The largest accepted HTTP request body and binary-protocol frame, in bytes. Default 64 MiB.")
    var maxRequestBytes: Int?

    @Option(name: .long, help: "Bytes of applied commands kept in the command log (the log database; the oldest are trimmed beyond it). 0 = off (the default).")
    var commandLogBytes: Int?

    @Option(name: .long, help: "The logical space quota: bytes of stored messages (bodies + 128 B each, topic batches + 64 B) past which sends answer 507 StorageFull, decided as broker state so replicas agree. 'auto' (the default) = half of max-map-bytes less the delete reserve; 0 = off.")
    var maxStorageBytes: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical. Default info.")
    var logLevel: String?

    @Option(name: .long, help: "Log format: text or json (one JSON object per line). Default text.")
    var logFormat: String?

    @Option(name: .long, help: "PEM certificate for TLS on the HTTP and binary listeners (with --tls-key).")
    var tlsCertificate: String?

    @Option(name: .long, help: "PEM private key for TLS on the HTTP and binary listeners (with --tls-certificate).")
    var tlsKey: String?

    @Option(name: .long, help: "In a cluster with TLS: PEM certificates (a CA, or the nodes' own) the other nodes' certificates are checked against. Default: the system's trust roots.")
    var tlsCa: String?

    @Option(name: .long, help: "Open client connections (HTTP and binary) served normally; 64 more serve only /health, metrics and admin. Default 10000.")
    var maxConnections: Int?

    @Option(name: .long, help: "Seconds from a request's first byte to the end of its HTTP header; 0 = no limit. Default 10.")
    var headerReadTimeout: Double?

    @Option(name: .long, help: "Seconds an idle HTTP keep-alive connection stays open; 0 = forever. Default 60.")
    var httpIdleTimeout: Double?

    @Option(name: .long, help: "Seconds an idle binary-protocol connection stays open; 0 = forever. Default 600.")
    var binaryIdleTimeout: Double?

    @Option(name: .long, help: "Bytes of request bodies and binary frames being received, all connections together; past it HTTP answers 503 and binary connections wait. Default 256 MiB.")
    var maxInFlightRequestBytes: Int?

    @Option(name: .long, help: "Seconds between checks for heap memory freed after a burst, which is then given back to the system (malloc_trim); 0 = never. Default 10.")
    var memoryTrimInterval: Double?

    @Option(name: .long, help: "Comma-separated origins (scheme://host[:port]) allowed to call the HTTP API from a browser (CORS). Default none.")
    var corsOrigins: String?

    @Option(name: .long, help: "Comma-separated host names accepted in Host besides loopback (checked when --http is loopback or this is set).")
    var allowedHosts: String?
    @Option(name: .long, help: "Address of the SQS-compatible endpoint, HOST:PORT (off unless set; see docs/sqs.md).")
    var sqs: String?

    @Option(name: .long, help: "The account id in SQS queue URLs and ARNs (12 digits). Default 000000000000.")
    var sqsAccountId: String?

    @Option(name: .long, help: "The region in SQS ARNs. Default us-east-1.")
    var sqsRegion: String?

    @Option(name: .long, help: "The base of SQS queue URLs for clients behind a proxy (https://HOST[:PORT]). Default: from the Host header.")
    var sqsAdvertisedUrl: String?

    @Flag(name: .long, help: "Do not sync commits to disk (benchmarks and tests only: a crash of the OS may lose acknowledged writes).")
    var noSync = false

    @Flag(name: .long, help: "Print the effective configuration as YAML (secrets redacted) and exit.")
    var printConfig = false

    @OptionGroup(title: "Cluster (gossip membership; see docs/gossip.md)")
    var cluster: ClusterOptions

    /// The effective configuration: defaults, then the file, then the environment, then flags.
    func effectiveConfiguration(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Configuration {
        var configuration = Configuration()
        if let path = config ?? environment["TERN_CONFIG"] {
            guard let data = FileManager.default.contents(atPath: path) else { throw ConfigurationError("cannot read --config \(path)") }
            try configuration.apply(yaml: String(decoding: data, as: UTF8.self), source: path)
        }
        try configuration.apply(environment: environment)
        if let dataDir { configuration.dataDir = dataDir }
        if let http { configuration.http = http }
        if let binary { configuration.binary = binary }
        if let maxMapBytes { configuration.maxMapBytes = maxMapBytes }
        if let maxRequestBytes { configuration.maxRequestBytes = maxRequestBytes }
        if let commandLogBytes { configuration.commandLogBytes = commandLogBytes }
        if let maxStorageBytes { try configuration.set("max_storage_bytes", maxStorageBytes, source: "--max-storage-bytes") }
        if let logLevel { configuration.logLevel = logLevel }
        if let logFormat { configuration.logFormat = logFormat }
        if let tlsCertificate { configuration.tlsCertificate = tlsCertificate }
        if let tlsKey { configuration.tlsKey = tlsKey }
        if let tlsCa { configuration.tlsTrustRoots = tlsCa }
        if noSync { configuration.sync = false }
        cluster.apply(to: &configuration.cluster)
        if let maxConnections { configuration.maxConnections = maxConnections }
        if let headerReadTimeout { configuration.headerReadTimeout = headerReadTimeout }
        if let httpIdleTimeout { configuration.httpIdleTimeout = httpIdleTimeout }
        if let binaryIdleTimeout { configuration.binaryIdleTimeout = binaryIdleTimeout }
        if let maxInFlightRequestBytes { configuration.maxInFlightRequestBytes = maxInFlightRequestBytes }
        if let memoryTrimInterval { configuration.memoryTrimInterval = memoryTrimInterval }
        if let corsOrigins { configuration.corsOrigins = try Configuration.list(corsOrigins, "--cors-origins") }
        if let allowedHosts { configuration.allowedHosts = try Configuration.list(allowedHosts, "--allowed-hosts") }
        if let sqs { configuration.sqs.listen = sqs }
        if let sqsAccountId { configuration.sqs.accountID = sqsAccountId }
        if let sqsRegion { configuration.sqs.region = sqsRegion }
        if let sqsAdvertisedUrl { configuration.sqs.advertisedURL = sqsAdvertisedUrl }
        try configuration.validate()
        return configuration
    }

    func run() async throws {
        let configuration: Configuration
        do {
            configuration = try effectiveConfiguration()
        } catch let error as ConfigurationError {
            throw ValidationError(error.message)
        }
        if printConfig {
            print(configuration.yaml(), terminator: "")
            return
        }
        let level = Logger.Level(rawValue: configuration.logLevel) ?? .info
        let json = configuration.logFormat == "json"
        LoggingSystem.bootstrap { label in
            if json {
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "ternd")
        let descriptors = DescriptorLimit.raiseToHardLimit()
        logger.info("open-file limit", metadata: [
            "tern.nofile": "\(descriptors.soft)", "tern.nofile_before": "\(descriptors.before)", "tern.nofile_hard": "\(descriptors.hard)",
        ])
        let connectionReserve = ConnectionLimiter().reserve
        // With queue groups each group this node holds keeps three descriptors open (its LMDB files).
        let groupDescriptors = configuration.cluster.queueGroups ? 3 * configuration.cluster.maxQueueGroups : 0
        if descriptors.soft < UInt64(configuration.maxConnections + connectionReserve + DescriptorLimit.headroom + groupDescriptors) {
            logger.warning("the open-file limit is below max_connections + reserve + headroom (+ 3 per queue group): connections may fail with EMFILE", metadata: [
                "tern.nofile": "\(descriptors.soft)", "tern.max_connections": "\(configuration.maxConnections)",
                "tern.max_queue_groups": "\(configuration.cluster.queueGroups ? configuration.cluster.maxQueueGroups : 0)",
            ])
        }
        let connections = ConnectionLimiter(maxConnections: configuration.maxConnections, reserve: connectionReserve)
        let requestBytes = RequestBytesBudget(limit: configuration.maxInFlightRequestBytes)

        var metrics: TernMetrics?
        if configuration.metrics {
            let registry = PrometheusCollectorRegistry()
            let factory = TernMetrics.makeFactory(registry: registry)
            MetricsSystem.bootstrap(factory)
            metrics = TernMetrics(registry: registry, factory: factory)
        }

        var storageSettings = Storage.Settings()
        storageSettings.maxMapBytes = configuration.maxMapBytes
        storageSettings.durable = configuration.sync
        let storage: Storage
        let replicates = configuration.cluster.replicates
        do {
            storage = try Storage(directory: configuration.dataDir,
                                  databases: Broker.databaseNames + SQS.databaseNames
                                      + (replicates ? RaftLogStore.databaseNames + [CatalogueStore.databaseName] : []),
                                  settings: storageSettings, logger: logger)
        } catch let error as StorageError {
            // One line naming the path and the reason, not a dump of the underlying error.
            logger.critical("cannot open the data directory", metadata: ["tern.data_dir": "\(configuration.dataDir)", "tern.error": "\(error.message)"])
            throw ExitMessage("ternd: cannot open the data directory \(configuration.dataDir): \(error.message)")
        }
        // Steady while running: wall-clock jumps move no deadline (decision 40); reported once each.
        let clock = SteadyClock(onJump: { offset in
            logger.warning("the wall clock jumped; broker time keeps advancing steadily until the next restart",
                           metadata: ["tern.clock_offset_ms": "\(offset)"])
        })
        let gossip = try makeGossipService(configuration, metrics: metrics, logger: logger)
        let broker: Broker
        var cluster: (node: ClusterNode, links: PeerLinks)?
        let tls = configuration.tlsCertificate.map {
            TLSSettings(certificatePath: $0, keyPath: configuration.tlsKey!, trustRootsPath: configuration.tlsTrustRoots)
        }
        if replicates, let gossip {
            cluster = try makeClusterNode(configuration, storage: storage, storageSettings: storageSettings, gossip: gossip, clock: clock,
                                          tls: tls, logger: logger)
            broker = cluster!.node.data.broker
        } else {
            broker = try await Broker.open(storage: storage, clock: clock, commandLogBytes: configuration.commandLogBytes, logger: logger)
            // Queue metadata the SQS endpoint kept outside broker state before decision 110.
            try await SQS.migrateLegacyMetadata(storage: storage, broker: broker, logger: logger)
            // The logical quota is state: set by a command (logged, replicated), only when it changed.
            let usage = try await broker.setStorageLimit(configuration.effectiveStorageLimit)
            logger.info("storage quota", metadata: [
                "tern.stored_bytes": "\(usage.storedBytes)", "tern.max_storage_bytes": "\(usage.limitBytes.map(String.init) ?? "off")",
            ])
        }
        metrics?.attach(broker: broker)
        if let cluster { metrics?.attach(cluster: cluster.node, links: cluster.links) }
        metrics?.attach(storage: storage)
        let alerts = AlertMonitor(rules: configuration.alertRules, broker: broker, storage: storage, metrics: metrics, clock: clock,
                                  interval: .seconds(configuration.alertInterval), logger: logger)

        var apiSettings = HTTPAPI.Settings()
        apiSettings.maxRequestBytes = configuration.maxRequestBytes
        apiSettings.corsOrigins = configuration.corsOrigins
        apiSettings.allowedHosts = configuration.allowedHosts
        apiSettings.requestBytes = requestBytes
        var operations = HTTPAPI.Operations(metrics: metrics, alerts: alerts, auth: configuration.auth)
        operations.console = configuration.console
        operations.cluster = gossip
        operations.clusterNode = cluster?.node
        let (host, port) = parseAddress(configuration.http)!
        apiSettings.enforceAllowedHosts = HTTPAPI.isLoopbackAddress(host) || !configuration.allowedHosts.isEmpty
        var serverSettings = HTTPAPI.ServerSettings()
        serverSettings.tls = tls
        serverSettings.metrics = metrics
        serverSettings.maxRequestBytes = configuration.maxRequestBytes
        serverSettings.headerReadTimeout = Configuration.duration(configuration.headerReadTimeout)
        serverSettings.idleTimeout = Configuration.duration(configuration.httpIdleTimeout)
        serverSettings.connections = connections
        let app = Application(
            router: HTTPAPI.router(broker: broker, settings: apiSettings, operations: operations),
            server: try HTTPAPI.serverBuilder(settings: serverSettings),
            configuration: .init(address: .hostname(host, port: port), serverName: "ternd"),
            logger: logger)
        // Services stop in reverse order: listeners first (stop accepting, finish in-flight
        // requests), then alerts and maintenance; the storage closes after its last commit.
        var wireSettings = WireServer.Settings(address: parseAddress(configuration.binary)!)
        wireSettings.wire.maxFrameBytes = configuration.maxRequestBytes
        wireSettings.auth = configuration.auth
        wireSettings.tls = tls
        wireSettings.metrics = metrics
        wireSettings.cluster = gossip
        wireSettings.idleTimeout = Configuration.duration(configuration.binaryIdleTimeout)
        wireSettings.connections = connections
        wireSettings.requestBytes = requestBytes
        if let cluster {
            wireSettings.clusterNode = cluster.node
            wireSettings.peers.nodeID = cluster.node.nodeID
            wireSettings.peers.clusterKey = cluster.links.settings.clusterKey
            let node = cluster.node
            wireSettings.peers.onRaft = { _, envelopes in node.receive(envelopes) }
            wireSettings.peers.onSnapshotChunk = { _, request throws(TernError) in try await node.snapshotChunk(request) }
            if configuration.cluster.binaryForwarding {
                let forwarding = WireForwarder.Settings().with {
                    $0.maxFrameBytes = configuration.maxRequestBytes
                    // Well inside the leader's idle timeout (the same setting on every node).
                    if let idle = Configuration.duration(configuration.binaryIdleTimeout) { $0.idleTimeout = min($0.idleTimeout, idle / 2) }
                }
                let forwarder = WireForwarder(links: cluster.links, settings: forwarding, logger: logger) { node.countForwarded() }
                wireSettings.forwarder = forwarder
                metrics?.attach(binaryForwarding: forwarder)
            }
        }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: MaintenanceService(broker: broker)), .init(service: alerts), .init(service: app),
            .init(service: WireServer(broker: broker, settings: wireSettings, logger: logger)),
        ]
        if let host = cluster?.node.queueGroups { services.append(.init(service: QueueGroupService(host: host))) }
        var trimSettings = MemoryTrimmer.Settings()
        trimSettings.interval = Configuration.duration(configuration.memoryTrimInterval)
        services.insert(.init(service: MemoryTrimmer(settings: trimSettings, logger: logger)), at: 0)
        let sqs = try sqsApplication(configuration, broker: broker, storage: storage, cluster: cluster?.node, tls: tls,
                                     metrics: metrics, logger: logger)
        if let sqs { services.append(.init(service: sqs.service)) }
        // Gossip stops first: the node leaves (members see "left") while it still serves.
        if let gossip { services.append(.init(service: gossip)) }
        if let cluster, configuration.cluster.replaceAfter > 0 {
            let settings = DataGroupReconciler.Settings(
                replicationFactor: configuration.cluster.replicationFactor ?? configuration.cluster.controllers.count,
                replaceAfter: .seconds(configuration.cluster.replaceAfter))
            services.append(.init(service: MembershipReconcilerService(node: cluster.node, settings: settings, logger: logger)))
        }
        // A leader hands its leadership over before even gossip stops (decision 125).
        if let cluster { services.append(.init(service: LeadershipHandOffService(node: cluster.node, logger: logger))) }
        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        logger.info("ternd starting", metadata: [
            "tern.data_dir": "\(configuration.dataDir)", "tern.http": "\(configuration.http)",
            "tern.binary": "\(configuration.binary)", "tern.tls": "\(tls != nil)", "tern.auth": "\(configuration.auth.enabled)",
            "tern.auth_tokens": "\(configuration.auth.tokens.map(\.name))", "tern.alert_rules": "\(configuration.alertRules.count)",
            "tern.sync": "\(configuration.sync)",
        ])
        cluster?.node.data.start()
        // In a cluster the quota is the group's state: whichever node leads sets its configured
        // limit (keep --max-storage-bytes the same on every node).
        let quota = cluster.map { cluster in
            Task {
                let limit = configuration.effectiveStorageLimit
                while !Task.isCancelled {
                    if cluster.node.data.group.status.isServing { _ = try? await broker.setStorageLimit(limit) }
                    try? await Task.sleep(for: .seconds(2))
                }
            }
        }
        // Message-move tasks are replicated state (decision 139): the node that serves moves
        // them, so each time this node starts to serve it resumes those recorded as running.
        let clusterNode = cluster?.node
        let moveTasks = sqs.map { sqs in
            Task {
                var serving = false
                while !Task.isCancelled {
                    let now = clusterNode?.data.group.status.isServing ?? true
                    if now && !serving { sqs.endpoint.resumeMessageMoveTasks() }
                    serving = now
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
        try await group.run()
        quota?.cancel()
        moveTasks?.cancel()
        if let cluster {
            cluster.node.data.stop()
            await cluster.links.shutdown()
            await wireSettings.forwarder?.shutdown()
            await cluster.node.shutdown()
            await cluster.node.snapshots?.close()
        }
        storage.close()
        logger.info("ternd stopped")
    }
}

/// A fatal start-up failure printed as one line (ArgumentParser prints the description).
struct ExitMessage: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The process's open-file limit (`RLIMIT_NOFILE`): every connection holds a descriptor.
enum DescriptorLimit {
    /// Descriptors kept besides connections: LMDB's files, listeners, logs, the runtime.
    static let headroom = 256

    /// Raises the soft limit to the hard limit (as nginx's `worker_rlimit_nofile` and
    /// systemd's `LimitNOFILE` advise), and returns the limits before and after.
    static func raiseToHardLimit() -> (before: UInt64, soft: UInt64, hard: UInt64) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return (0, 0, 0) }
        let before = UInt64(limit.rlim_cur)
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return (before, UInt64(limit.rlim_cur), UInt64(limit.rlim_max))
    }
}

extension Ternd {
    /// The SQS-compatible listener (`--sqs`), nil when not configured. Without authentication
    /// it accepts any signature, and says so in the log. In a cluster (`cluster`) it serves
    /// requests when this node leads and forwards them to the leader otherwise (decision 136).
    func sqsApplication(_ configuration: Configuration, broker: Broker, storage: Storage, cluster: ClusterNode?, tls: TLSSettings?,
                        metrics: TernMetrics?, logger: Logger) throws -> (service: any Service, endpoint: SQSEndpoint)? {
        guard let listen = configuration.sqs.listen, let (host, port) = parseAddress(listen) else { return nil }
        var settings = SQS.Settings()
        settings.accountID = configuration.sqs.accountID
        settings.region = configuration.sqs.region
        settings.advertisedBaseURL = configuration.sqs.advertisedURL
        settings.maxRequestBytes = min(configuration.maxRequestBytes, settings.maxRequestBytes)
        settings.auth = configuration.auth
        let endpoint = SQSEndpoint(broker: broker, storage: storage, settings: settings, cluster: cluster, logger: logger)
        logger.info("sqs endpoint starting", metadata: [
            "tern.sqs": "\(listen)", "tern.sqs.account_id": "\(settings.accountID)", "tern.sqs.region": "\(settings.region)",
            "tern.sqs.signatures": "\(settings.auth.enabled ? "SigV4 required (access key id = token name)" : "not checked: authentication is off, any signature is accepted")",
        ])
        let service = Application(
            responder: endpoint.responder(),
            server: try HTTPAPI.serverBuilder(tls: tls, metrics: nil),
            configuration: .init(address: .hostname(host, port: port), serverName: "ternd-sqs"),
            logger: logger)
        return (service, endpoint)
    }
}
