import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import TernBroker
import TernCore
import TernServer
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

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical. Default info.")
    var logLevel: String?

    @Option(name: .long, help: "Log format: text or json (one JSON object per line). Default text.")
    var logFormat: String?

    @Option(name: .long, help: "PEM certificate for TLS on the HTTP and binary listeners (with --tls-key).")
    var tlsCertificate: String?

    @Option(name: .long, help: "PEM private key for TLS on the HTTP and binary listeners (with --tls-certificate).")
    var tlsKey: String?

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
        if let logLevel { configuration.logLevel = logLevel }
        if let logFormat { configuration.logFormat = logFormat }
        if let tlsCertificate { configuration.tlsCertificate = tlsCertificate }
        if let tlsKey { configuration.tlsKey = tlsKey }
        if noSync { configuration.sync = false }
        cluster.apply(to: &configuration.cluster)
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
        let storage = try Storage(directory: configuration.dataDir, databases: Broker.databaseNames, settings: storageSettings, logger: logger)
        // Steady while running: wall-clock jumps move no deadline (decision 40); reported once each.
        let clock = SteadyClock(onJump: { offset in
            logger.warning("the wall clock jumped; broker time keeps advancing steadily until the next restart",
                           metadata: ["tern.clock_offset_ms": "\(offset)"])
        })
        let broker = try await Broker.open(storage: storage, clock: clock, commandLogBytes: configuration.commandLogBytes, logger: logger)
        metrics?.attach(broker: broker)
        metrics?.attach(storage: storage)
        let alerts = AlertMonitor(rules: configuration.alertRules, broker: broker, storage: storage, metrics: metrics, clock: clock,
                                  interval: .seconds(configuration.alertInterval), logger: logger)

        var apiSettings = HTTPAPI.Settings()
        apiSettings.maxRequestBytes = configuration.maxRequestBytes
        var operations = HTTPAPI.Operations(metrics: metrics, alerts: alerts, auth: configuration.auth)
        operations.console = configuration.console
        let tls = configuration.tlsCertificate.map { TLSSettings(certificatePath: $0, keyPath: configuration.tlsKey!) }
        let gossip = try makeGossipService(configuration, metrics: metrics, logger: logger)
        operations.cluster = gossip
        let (host, port) = parseAddress(configuration.http)!
        let app = Application(
            router: HTTPAPI.router(broker: broker, settings: apiSettings, operations: operations),
            server: try HTTPAPI.serverBuilder(tls: tls, metrics: metrics),
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
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: MaintenanceService(broker: broker)), .init(service: alerts), .init(service: app),
                           .init(service: WireServer(broker: broker, settings: wireSettings, logger: logger))]
                    // Gossip stops first: the node leaves (members see "left") while it still serves.
                    + (gossip.map { [.init(service: $0)] } ?? []),
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        logger.info("ternd starting", metadata: [
            "tern.data_dir": "\(configuration.dataDir)", "tern.http": "\(configuration.http)",
            "tern.binary": "\(configuration.binary)", "tern.tls": "\(tls != nil)", "tern.auth": "\(configuration.auth.enabled)",
            "tern.auth_tokens": "\(configuration.auth.tokens.map(\.name))", "tern.alert_rules": "\(configuration.alertRules.count)",
            "tern.sync": "\(configuration.sync)",
        ])
        try await group.run()
        storage.close()
        logger.info("ternd stopped")
    }
}
