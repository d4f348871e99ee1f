import ArgumentParser
import Hummingbird
import Logging
import ServiceLifecycle
import TernBroker
import TernCore
import TernServer
import TernStorage

/// `ternd`: the Tern broker daemon.
@main
struct Ternd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ternd",
        abstract: "The Tern message broker daemon.",
        discussion: "Serves the HTTP API on --http, stores messages in LMDB under --data-dir, and stops cleanly on SIGTERM or SIGINT.")

    @Option(name: .long, help: "The data directory (created if missing).")
    var dataDir: String = "./data"

    @Option(name: .long, help: "Address of the HTTP API, HOST:PORT.")
    var http: String = "127.0.0.1:7080"

    @Option(name: .long, help: "The largest the data file may grow, in bytes (LMDB map size).")
    var maxMapBytes: Int = Storage.Settings().maxMapBytes

    @Option(name: .long, help: "The largest accepted HTTP request body, in bytes.")
    var maxRequestBytes: Int = HTTPAPI.Settings().maxRequestBytes

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Flag(name: .long, help: "Do not sync commits to disk (benchmarks and tests only: a crash of the OS may lose acknowledged writes).")
    var noSync = false

    func validate() throws {
        guard parseAddress(http) != nil else { throw ValidationError("--http must be HOST:PORT, got \(http)") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
        guard maxMapBytes >= 1 << 20 else { throw ValidationError("--max-map-bytes must be at least 1 MiB") }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "ternd")
        let (host, port) = parseAddress(http)!

        var storageSettings = Storage.Settings()
        storageSettings.maxMapBytes = maxMapBytes
        storageSettings.durable = !noSync
        let storage = try Storage(directory: dataDir, databases: Broker.databaseNames, settings: storageSettings, logger: logger)
        let broker = try await Broker.open(storage: storage, clock: SystemClock(), logger: logger)

        var apiSettings = HTTPAPI.Settings()
        apiSettings.maxRequestBytes = maxRequestBytes
        let app = Application(
            router: HTTPAPI.router(broker: broker, settings: apiSettings),
            configuration: .init(address: .hostname(host, port: port), serverName: "ternd"),
            logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: MaintenanceService(broker: broker)), .init(service: app)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        logger.info("ternd starting", metadata: ["tern.data_dir": "\(dataDir)", "tern.http": "\(http)"])
        try await group.run()
        storage.close()
        logger.info("ternd stopped")
    }
}

func parseAddress(_ text: String) -> (String, Int)? {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port)
    else { return nil }
    let host = String(text[..<colon])
    return host.isEmpty ? nil : (host, port)
}
