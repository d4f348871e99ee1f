import Foundation
import Logging
import TernServer
import TernStorage
import Yams

/// The effective configuration of `ternd`, from four layers in this order of precedence:
/// **flags > environment variables (`TERN_*`) > configuration file (`--config FILE`, YAML) >
/// defaults**. `ternd --print-config` prints the result as YAML (secrets redacted).
///
/// ```yaml
/// data_dir: /var/lib/tern
/// http: 0.0.0.0:7080
/// binary: 0.0.0.0:7081
/// max_map_bytes: 68719476736
/// max_storage_bytes: auto
/// max_request_bytes: 67108864
/// sync: true
/// log_level: info
/// log_format: json
/// tls: {certificate: /etc/tern/cert.pem, key: /etc/tern/key.pem}
/// auth:
///   enabled: true
///   tokens:
///     - {name: operator, token: "…", permissions: [admin]}
/// max_connections: 10000
/// header_read_timeout: 10
/// http_idle_timeout: 60
/// binary_idle_timeout: 600
/// max_in_flight_request_bytes: 268435456
/// memory_trim_interval: 10
/// cors_origins: [https://app.example.com]
/// allowed_hosts: [tern.internal]
/// alerts:
///   interval: 10
///   rules:
///     - {name: orders-backlog, queues: "orders*", depth_above: 1000, for: 60}
/// ```
struct Configuration: Equatable {
    var dataDir = "./data"
    var http = "127.0.0.1:7080"
    var binary = "127.0.0.1:7081"
    var maxMapBytes = Storage.Settings().maxMapBytes
    var maxRequestBytes = HTTPAPI.Settings().maxRequestBytes
    /// Bytes of applied commands the command log keeps (0 = off; decision 36).
    var commandLogBytes = 0
    /// The logical space quota in accounted bytes (decision 111): nil = `auto`, half of the map
    /// size less the delete reserve; 0 = no logical quota (only the map's physical check).
    var maxStorageBytes: Int?
    var sync = true
    var logLevel = "info"
    var logFormat = "text"
    var metrics = true
    var console = true
    var tlsCertificate: String?
    var tlsKey: String?
    /// `tls.ca`: trust roots for connections to the other cluster nodes (nil = the system's).
    var tlsTrustRoots: String?
    var auth = Auth.Settings()
    /// Seconds between alert evaluations.
    var alertInterval = 10
    var alertRules: [Alerts.Rule] = []
    /// Gossip membership (`cluster:`); off unless a gossip address is set.
    var cluster = ClusterConfiguration()
    /// Open client connections (HTTP and binary together) served normally; 64 more are kept
    /// for `/health`, metrics and admin (see `ConnectionLimiter`).
    var maxConnections = ConnectionLimiter().maxConnections
    /// Seconds from a request's first byte to the end of its header (HTTP); 0 = no limit.
    var headerReadTimeout: Double = 10
    /// Seconds an idle HTTP keep-alive connection stays open; 0 = forever.
    var httpIdleTimeout: Double = 60
    /// Seconds an idle binary connection stays open; 0 = forever.
    var binaryIdleTimeout: Double = 600
    /// Bytes of HTTP bodies and binary frames being received, across all connections.
    var maxInFlightRequestBytes = RequestBytesBudget().limit
    /// Seconds between checks for freed heap memory to give back to the system (decision 121);
    /// 0 = never.
    var memoryTrimInterval: Double = 10
    /// Origins allowed to call the HTTP API from a browser (CORS); empty = CORS off.
    var corsOrigins: [String] = []
    /// Host names accepted in `Host` besides loopback ones (the check is on when the HTTP
    /// listener is bound to loopback, or when this list is not empty).
    var allowedHosts: [String] = []
    /// The SQS-compatible endpoint (`sqs:`; see `Configuration+SQS.swift`).
    var sqs = SQSConfiguration()

    /// The environment variables read, with the setting each sets.
    static let environmentVariables: [(String, String)] = [
        ("TERN_DATA_DIR", "data_dir"), ("TERN_HTTP", "http"), ("TERN_BINARY", "binary"),
        ("TERN_MAX_MAP_BYTES", "max_map_bytes"), ("TERN_MAX_REQUEST_BYTES", "max_request_bytes"), ("TERN_SYNC", "sync"),
        ("TERN_COMMAND_LOG_BYTES", "command_log_bytes"), ("TERN_MAX_STORAGE_BYTES", "max_storage_bytes"),
        ("TERN_LOG_LEVEL", "log_level"), ("TERN_LOG_FORMAT", "log_format"), ("TERN_METRICS", "metrics"),
        ("TERN_CONSOLE", "console"), ("TERN_TLS_CERTIFICATE", "tls.certificate"), ("TERN_TLS_KEY", "tls.key"), ("TERN_TLS_CA", "tls.ca"),
        ("TERN_AUTH_ENABLED", "auth.enabled"), ("TERN_ALERTS_INTERVAL", "alerts.interval"),
        ("TERN_MAX_CONNECTIONS", "max_connections"), ("TERN_HEADER_READ_TIMEOUT", "header_read_timeout"),
        ("TERN_HTTP_IDLE_TIMEOUT", "http_idle_timeout"), ("TERN_BINARY_IDLE_TIMEOUT", "binary_idle_timeout"),
        ("TERN_MAX_IN_FLIGHT_REQUEST_BYTES", "max_in_flight_request_bytes"), ("TERN_MEMORY_TRIM_INTERVAL", "memory_trim_interval"),
        ("TERN_CORS_ORIGINS", "cors_origins"),
        ("TERN_ALLOWED_HOSTS", "allowed_hosts"),
    ]

    static let topLevelKeys: Set<String> = [
        "data_dir", "http", "binary", "max_map_bytes", "max_request_bytes", "command_log_bytes", "max_storage_bytes", "sync", "log_level", "log_format", "metrics",
        "console", "tls", "auth", "alerts",
        "cluster",
        "max_connections", "header_read_timeout", "http_idle_timeout", "binary_idle_timeout", "max_in_flight_request_bytes",
        "memory_trim_interval", "cors_origins", "allowed_hosts",
        "sqs",
    ]

    // MARK: Layers

    /// Applies the YAML document `text` (the configuration file) over `self`.
    /// - Throws: ``ConfigurationError`` naming the bad key or value.
    mutating func apply(yaml text: String, source: String) throws {
        let loaded: Any?
        do { loaded = try Yams.load(yaml: text) } catch { throw ConfigurationError("\(source): not valid YAML: \(error)") }
        guard let loaded else { return }
        guard let root = loaded as? [String: Any] else { throw ConfigurationError("\(source): the top level must be a mapping") }
        for key in root.keys where !Self.topLevelKeys.contains(key) {
            throw ConfigurationError("\(source): unknown setting \"\(key)\"; known: \(Self.topLevelKeys.sorted().joined(separator: ", "))")
        }
        for (key, value) in root {
            switch key {
            case "sqs":
                try sqs.apply(yaml: value)
            case "tls":
                let tls = try Self.mapping(value, "tls", allowed: ["certificate", "key", "ca"])
                if let v = tls["certificate"] { tlsCertificate = try Self.string(v, "tls.certificate") }
                if let v = tls["key"] { tlsKey = try Self.string(v, "tls.key") }
                if let v = tls["ca"] { tlsTrustRoots = try Self.string(v, "tls.ca") }
            case "auth":
                let auth = try Self.mapping(value, "auth", allowed: ["enabled", "tokens"])
                if let v = auth["enabled"] { self.auth.enabled = try Self.bool(v, "auth.enabled") }
                if let v = auth["tokens"] {
                    guard let list = v as? [Any] else { throw ConfigurationError("auth.tokens must be a list") }
                    self.auth.tokens = try list.enumerated().map { index, item in
                        let t = try Self.mapping(item, "auth.tokens[\(index)]", allowed: ["name", "token", "permissions"])
                        guard let name = t["name"], let secret = t["token"], let permissions = t["permissions"] as? [Any] else {
                            throw ConfigurationError("auth.tokens[\(index)] needs name, token and permissions (a list)")
                        }
                        let secretText = try Self.string(secret, "auth.tokens[\(index)].token")
                        guard secretText.count >= 16 else {
                            throw ConfigurationError("auth.tokens[\(index)].token must be at least 16 characters")
                        }
                        return Auth.Token(
                            name: try Self.string(name, "auth.tokens[\(index)].name"), secret: secretText,
                            permissions: try permissions.map { try Auth.Permission(parsing: try Self.string($0, "auth.tokens[\(index)].permissions")) })
                    }
                }
            case "alerts":
                let alerts = try Self.mapping(value, "alerts", allowed: ["interval", "rules"])
                if let v = alerts["interval"] { alertInterval = try Self.int(v, "alerts.interval") }
                if let v = alerts["rules"] {
                    guard let list = v as? [Any] else { throw ConfigurationError("alerts.rules must be a list") }
                    alertRules = try list.enumerated().map { try Self.rule($1, index: $0) }
                }
            case "cluster":
                try cluster.apply(yaml: value)
            default:
                try set(key, value, source: source)
            }
        }
    }

    /// Applies `TERN_*` variables of `environment` over `self`.
    mutating func apply(environment: [String: String]) throws {
        try sqs.apply(environment: environment)
        for (variable, key) in Self.environmentVariables {
            guard let value = environment[variable] else { continue }
            switch key {
            case "tls.certificate": tlsCertificate = value
            case "tls.key": tlsKey = value
            case "tls.ca": tlsTrustRoots = value
            case "auth.enabled": auth.enabled = try Self.bool(value, variable)
            case "alerts.interval": alertInterval = try Self.int(value, variable)
            default: try set(key, value, source: variable)
            }
        }
        try cluster.apply(environment: environment)
    }

    /// Sets one scalar setting from a YAML value or an environment string.
    mutating func set(_ key: String, _ value: Any, source: String) throws {
        let name = "\(key) (\(source))"
        switch key {
        case "data_dir": dataDir = try Self.string(value, name)
        case "http": http = try Self.string(value, name)
        case "binary": binary = try Self.string(value, name)
        case "max_map_bytes": maxMapBytes = try Self.int(value, name)
        case "max_request_bytes": maxRequestBytes = try Self.int(value, name)
        case "command_log_bytes": commandLogBytes = try Self.int(value, name)
        case "max_storage_bytes":
            maxStorageBytes = (value as? String)?.lowercased() == "auto" ? nil : try Self.int(value, name)
        case "sync": sync = try Self.bool(value, name)
        case "log_level": logLevel = try Self.string(value, name)
        case "log_format": logFormat = try Self.string(value, name)
        case "metrics": metrics = try Self.bool(value, name)
        case "console": console = try Self.bool(value, name)
        case "max_connections": maxConnections = try Self.int(value, name)
        case "header_read_timeout": headerReadTimeout = try Self.double(value, name)
        case "http_idle_timeout": httpIdleTimeout = try Self.double(value, name)
        case "binary_idle_timeout": binaryIdleTimeout = try Self.double(value, name)
        case "max_in_flight_request_bytes": maxInFlightRequestBytes = try Self.int(value, name)
        case "memory_trim_interval": memoryTrimInterval = try Self.double(value, name)
        case "cors_origins": corsOrigins = try Self.list(value, name)
        case "allowed_hosts": allowedHosts = try Self.list(value, name)
        default: throw ConfigurationError("unknown setting \(name)")
        }
    }

    /// Checks every value; the message names the setting.
    func validate() throws {
        guard parseAddress(http) != nil else { throw ConfigurationError("http must be HOST:PORT, got \(http)") }
        guard parseAddress(binary) != nil else { throw ConfigurationError("binary must be HOST:PORT, got \(binary)") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ConfigurationError("unknown log_level \(logLevel)") }
        guard ["text", "json"].contains(logFormat) else { throw ConfigurationError("log_format must be text or json, got \(logFormat)") }
        guard maxMapBytes >= 1 << 20 else { throw ConfigurationError("max_map_bytes must be at least 1 MiB") }
        guard maxRequestBytes >= 1024 else { throw ConfigurationError("max_request_bytes must be at least 1 KiB") }
        guard commandLogBytes >= 0 else { throw ConfigurationError("command_log_bytes must be 0 (off) or more") }
        if let maxStorageBytes, maxStorageBytes < 0 { throw ConfigurationError("max_storage_bytes must be auto, 0 (off) or more") }
        guard (tlsCertificate == nil) == (tlsKey == nil) else {
            throw ConfigurationError("tls needs both certificate and key")
        }
        guard tlsTrustRoots == nil || tlsCertificate != nil else {
            throw ConfigurationError("tls.ca is for the nodes of a TLS cluster: it needs tls.certificate and tls.key")
        }
        if auth.enabled && auth.tokens.isEmpty { throw ConfigurationError("auth.enabled needs at least one token in auth.tokens") }
        guard Set(auth.tokens.map(\.name)).count == auth.tokens.count else { throw ConfigurationError("auth.tokens names must be unique") }
        guard Set(auth.tokens.map(\.secret)).count == auth.tokens.count else { throw ConfigurationError("auth.tokens must differ") }
        try sqs.validate()
        guard alertInterval >= 1 else { throw ConfigurationError("alerts.interval must be at least 1 second") }
        guard maxConnections >= 1 else { throw ConfigurationError("max_connections must be at least 1") }
        for (name, value) in [("header_read_timeout", headerReadTimeout), ("http_idle_timeout", httpIdleTimeout),
                              ("binary_idle_timeout", binaryIdleTimeout), ("memory_trim_interval", memoryTrimInterval)] {
            guard value >= 0, value.isFinite else { throw ConfigurationError("\(name) must be 0 (off) or a positive number of seconds") }
        }
        guard maxInFlightRequestBytes >= maxRequestBytes else {
            throw ConfigurationError("max_in_flight_request_bytes (\(maxInFlightRequestBytes)) must be at least max_request_bytes (\(maxRequestBytes))")
        }
        for origin in corsOrigins {
            guard let scheme = origin.range(of: "://"), ["http", "https"].contains(origin[..<scheme.lowerBound]),
                  !origin[scheme.upperBound...].isEmpty, !origin[scheme.upperBound...].contains("/") else {
                throw ConfigurationError("cors_origins: \(origin) must be an origin, scheme://host[:port] (no path)")
            }
        }
        guard Set(alertRules.map(\.name)).count == alertRules.count else { throw ConfigurationError("alerts.rules names must be unique") }
        try cluster.validate()
        if cluster.queueGroups {
            // Every queue group maps its own environment of max_map_bytes (decision 140); the maps
            // must fit in the address space with room left (x86-64 gives a process 128 TiB).
            let mapped = (Double(cluster.maxQueueGroups) + 1) * Double(maxMapBytes)
            guard mapped <= Double(Self.maxMappedBytes) else {
                throw ConfigurationError("with queue groups each group maps max_map_bytes (\(maxMapBytes) bytes): max_queue_groups \(cluster.maxQueueGroups) + the data group would map \(Int64(mapped) >> 40) TiB, more than the \(Self.maxMappedBytes >> 40) TiB allowed; lower max_queue_groups or max_map_bytes")
            }
        }
        if cluster.replicates {
            // Followers forward SQS requests to the leader's SQS endpoint, found in gossip.
            if let listen = sqs.listen, let address = parseAddress(listen), address.1 == 0 {
                throw ConfigurationError("with controllers the SQS listener needs a fixed port (the others forward SQS requests to it), got \(listen)")
            }
            guard let binary = parseAddress(binary), binary.1 != 0 else {
                throw ConfigurationError("with controllers the binary listener needs a fixed port (the others send replication to it), got \(binary)")
            }
        }
    }

    /// The most address space the memory maps of the data directory and every queue group may
    /// take together: 96 TiB, three quarters of what x86-64 Linux gives a process (the default
    /// 1,024 queue groups of 64 GiB and the data directory's map take 64 TiB).
    static let maxMappedBytes: Int64 = 96 << 40

    /// The logical space quota to apply, in accounted bytes; nil = none. `auto` is half of
    /// what the map leaves beside the delete reserve: message data takes about twice its
    /// accounted bytes on disk when bodies fill overflow pages (decision 111).
    var effectiveStorageLimit: UInt64? {
        if let maxStorageBytes { return maxStorageBytes == 0 ? nil : UInt64(maxStorageBytes) }
        var settings = Storage.Settings()
        settings.maxMapBytes = maxMapBytes
        return UInt64(max(0, maxMapBytes - settings.effectiveReservedBytes) / 2)
    }

    // MARK: Printing

    /// The configuration as YAML, token secrets replaced by `<redacted>`.
    func yaml() -> String {
        func quoted(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
        var lines = [
            "data_dir: \(quoted(dataDir))", "http: \(quoted(http))", "binary: \(quoted(binary))",
            "max_map_bytes: \(maxMapBytes)", "max_request_bytes: \(maxRequestBytes)", "command_log_bytes: \(commandLogBytes)",
            "max_storage_bytes: \(maxStorageBytes.map(String.init) ?? "auto")",
            "sync: \(sync)",
            "log_level: \(logLevel)", "log_format: \(logFormat)", "metrics: \(metrics)", "console: \(console)",
            "max_connections: \(maxConnections)", "header_read_timeout: \(Self.seconds(headerReadTimeout))",
            "http_idle_timeout: \(Self.seconds(httpIdleTimeout))", "binary_idle_timeout: \(Self.seconds(binaryIdleTimeout))",
            "max_in_flight_request_bytes: \(maxInFlightRequestBytes)",
            "memory_trim_interval: \(Self.seconds(memoryTrimInterval))",
            "cors_origins: [\(corsOrigins.map(quoted).joined(separator: ", "))]",
            "allowed_hosts: [\(allowedHosts.map(quoted).joined(separator: ", "))]",
        ]
        if let tlsCertificate, let tlsKey {
            lines += ["tls:", "  certificate: \(quoted(tlsCertificate))", "  key: \(quoted(tlsKey))"]
            if let tlsTrustRoots { lines.append("  ca: \(quoted(tlsTrustRoots))") }
        } else {
            lines.append("tls: null")
        }
        lines += ["auth:", "  enabled: \(auth.enabled)"]
        if auth.tokens.isEmpty {
            lines.append("  tokens: []")
        } else {
            lines.append("  tokens:")
            for token in auth.tokens {
                lines.append("    - name: \(quoted(token.name))")
                lines.append("      token: \"<redacted>\"")
                lines.append("      permissions: [\(token.permissions.map { quoted($0.description) }.joined(separator: ", "))]")
            }
        }
        lines += ["alerts:", "  interval: \(alertInterval)"]
        if alertRules.isEmpty {
            lines.append("  rules: []")
        } else {
            lines.append("  rules:")
            for rule in alertRules {
                lines.append("    - name: \(quoted(rule.name))")
                switch rule.condition {
                case .depthAbove(let n): lines += ["      queues: \(quoted(rule.pattern.text))", "      depth_above: \(n)"]
                case .oldestMessageAgeAbove(let s): lines += ["      queues: \(quoted(rule.pattern.text))", "      oldest_age_above: \(s)"]
                case .deadLetterQueueNotEmpty: lines += ["      queues: \(quoted(rule.pattern.text))", "      dead_letter_not_empty: true"]
                case .lagAbove(let n): lines += ["      topics: \(quoted(rule.pattern.text))", "      lag_above: \(n)"]
                case .lagGrowing(let s): lines += ["      topics: \(quoted(rule.pattern.text))", "      lag_growing_for: \(s)"]
                case .storageAbove(let p): lines.append("      storage_above_percent: \(p)")
                }
                let seconds = rule.holdFor.components.seconds
                if seconds > 0 { lines.append("      for: \(seconds)") }
            }
        }
        lines += cluster.yaml(quoted: quoted)
        lines += sqs.yamlLines(quoted: quoted)
        return lines.joined(separator: "\n") + "\n"
    }

    // MARK: Value readers

    static func mapping(_ value: Any, _ name: String, allowed: Set<String>) throws -> [String: Any] {
        guard let mapping = value as? [String: Any] else { throw ConfigurationError("\(name) must be a mapping") }
        for key in mapping.keys where !allowed.contains(key) {
            throw ConfigurationError("unknown setting \(name).\(key); known: \(allowed.sorted().joined(separator: ", "))")
        }
        return mapping
    }

    static func string(_ value: Any, _ name: String) throws -> String {
        if let s = value as? String { return s }
        if let i = value as? Int { return String(i) }
        throw ConfigurationError("\(name) must be a string")
    }

    static func int(_ value: Any, _ name: String) throws -> Int {
        if let i = value as? Int { return i }
        if let s = value as? String, let i = Int(s) { return i }
        throw ConfigurationError("\(name) must be an integer, got \(value)")
    }

    static func double(_ value: Any, _ name: String) throws -> Double {
        if let d = value as? Double { return d }
        if let i = value as? Int { return Double(i) }
        if let s = value as? String, let d = Double(s) { return d }
        throw ConfigurationError("\(name) must be a number, got \(value)")
    }

    /// A list of strings: a YAML sequence, or one comma-separated string (flags, environment).
    static func list(_ value: Any, _ name: String) throws -> [String] {
        if let items = value as? [Any] { return try items.map { try string($0, name) } }
        let text = try string(value, name)
        return text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// Seconds as printed by `--print-config`: `10`, `0.5`.
    static func seconds(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }

    /// `seconds` as a `Duration`, nil for 0 (off).
    static func duration(_ seconds: Double) -> Duration? {
        seconds > 0 ? .milliseconds(Int64((seconds * 1000).rounded())) : nil
    }

    static func bool(_ value: Any, _ name: String) throws -> Bool {
        if let b = value as? Bool { return b }
        if let s = value as? String {
            switch s.lowercased() {
            case "true", "1", "yes", "on": return true
            case "false", "0", "no", "off": return false
            default: break
            }
        }
        throw ConfigurationError("\(name) must be true or false, got \(value)")
    }

    static func rule(_ value: Any, index: Int) throws -> Alerts.Rule {
        let where_ = "alerts.rules[\(index)]"
        let conditions = ["depth_above", "oldest_age_above", "lag_above", "lag_growing_for", "dead_letter_not_empty", "storage_above_percent"]
        let r = try mapping(value, where_, allowed: Set(conditions + ["name", "queues", "topics", "for"]))
        guard let nameValue = r["name"] else { throw ConfigurationError("\(where_) needs a name") }
        let name = try string(nameValue, "\(where_).name")
        let present = conditions.filter { r[$0] != nil }
        guard present.count == 1 else {
            throw ConfigurationError("\(where_) (\(name)) needs exactly one of \(conditions.joined(separator: ", "))")
        }
        let key = present[0], raw = r[key]!
        let condition: Alerts.Condition
        switch key {
        case "depth_above": condition = .depthAbove(try int(raw, "\(where_).\(key)"))
        case "oldest_age_above": condition = .oldestMessageAgeAbove(seconds: try double(raw, "\(where_).\(key)"))
        case "lag_above": condition = .lagAbove(try int(raw, "\(where_).\(key)"))
        case "lag_growing_for": condition = .lagGrowing(seconds: try double(raw, "\(where_).\(key)"))
        case "dead_letter_not_empty":
            guard try bool(raw, "\(where_).\(key)") else { throw ConfigurationError("\(where_).\(key) must be true") }
            condition = .deadLetterQueueNotEmpty
        default: condition = .storageAbove(percent: try double(raw, "\(where_).\(key)"))
        }
        let pattern = try (r["queues"] ?? r["topics"]).map { try string($0, "\(where_).queues") } ?? "*"
        let holdFor = try r["for"].map { try int($0, "\(where_).for") } ?? 0
        return Alerts.Rule(name: name, condition: condition, pattern: NamePattern(pattern), holdFor: .seconds(holdFor))
    }
}

func parseAddress(_ text: String) -> (String, Int)? {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port)
    else { return nil }
    let host = String(text[..<colon])
    return host.isEmpty ? nil : (host, port)
}
