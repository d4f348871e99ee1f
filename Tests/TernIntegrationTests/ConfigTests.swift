import AsyncHTTPClient
import Foundation
import TernTestKit
import Testing

/// Runs `ternd arguments…` to completion (for `--print-config` and bad configurations) with
/// `environment` added to a clean environment.
func runTernd(_ arguments: [String], environment: [String: String] = [:]) async throws -> (status: Int32, output: String, error: String) {
    let scratch = try TemporaryDirectory(prefix: "ternd-run")
    defer { scratch.remove() }
    let result = try await TernCLI.run(arguments, executable: "ternd", environment: environment, scratch: scratch)
    return (result.status, String(decoding: result.standardOutput, as: UTF8.self), result.errorText)
}

extension IntegrationTests {
    @Suite struct ConfigTests {
        static let secret = "file-secret-token-0123456789"

        func configFile(_ root: TemporaryDirectory, _ text: String) throws -> String {
            let path = root.appending("ternd.yaml")
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }

        @Test func precedence_isFlagsThenEnvironmentThenFileThenDefaults() async throws {
            let root = try TemporaryDirectory(prefix: "tern-config")
            defer { root.remove() }
            let path = try configFile(root, """
                data_dir: /srv/from-file
                http: 127.0.0.1:1001
                log_level: debug
                max_request_bytes: 4096
                auth:
                  enabled: true
                  tokens:
                    - name: ops
                      token: "\(Self.secret)"
                      permissions: [admin, "produce:orders-*"]
                alerts:
                  interval: 5
                  rules:
                    - {name: backlog, queues: "orders*", depth_above: 100, for: 30}
                    - {name: disk, storage_above_percent: 85}
                """)
            let result = try await runTernd(["--config", path, "--http", "127.0.0.1:3003", "--print-config"],
                                            environment: ["TERN_HTTP": "127.0.0.1:2002", "TERN_LOG_LEVEL": "warning",
                                                          "TERN_MAX_MAP_BYTES": "1073741824"])
            #expect(result.status == 0, "\(result.error)")
            let lines = Set(result.output.split(separator: "\n").map(String.init))
            #expect(lines.contains(#"http: "127.0.0.1:3003""#), "flag beats environment and file")
            #expect(lines.contains("log_level: warning"), "environment beats file")
            #expect(lines.contains("max_map_bytes: 1073741824"), "environment beats default")
            #expect(lines.contains(#"data_dir: "/srv/from-file""#), "file beats default")
            #expect(lines.contains("max_request_bytes: 4096"))
            #expect(lines.contains("log_format: text"), "default")
            #expect(lines.contains("  interval: 5"))
            #expect(lines.contains(#"      depth_above: 100"#) && lines.contains("      for: 30"))
            #expect(lines.contains(#"      permissions: ["admin", "produce:orders-*"]"#))
            #expect(!result.output.contains(Self.secret), "secrets are redacted")
            #expect(result.output.contains("<redacted>"))
        }

        @Test(arguments: [
            ("unknown_key: 1\n", "unknown setting \"unknown_key\""),
            ("auth:\n  enabled: true\n", "auth.enabled needs at least one token"),
            ("alerts:\n  rules:\n    - {name: x, depth_above: 1, lag_above: 2}\n", "needs exactly one of"),
            ("log_format: xml\n", "log_format must be text or json"),
            ("tls:\n  certificate: /a.pem\n", "tls needs both certificate and key"),
            ("tls:\n  ca: /ca.pem\n", "tls.ca is for the nodes of a TLS cluster"),
            ("http: nowhere\n", "http must be HOST:PORT"),
            ("cluster:\n  gossip: 0.0.0.0:7946\n", "gossip must name an address the other nodes can reach"),
            ("cluster:\n  seeds: [127.0.0.1:7946]\n", "seeds need a gossip address"),
            ("cluster:\n  gossip: 127.0.0.1:7946\n  node_id: \"a b\"\n", "node_id must be"),
            ("binary: 127.0.0.1:7081\nsqs:\n  listen: 127.0.0.1:0\ncluster:\n  node_id: n1\n  gossip: 127.0.0.1:7946\n  controllers: [n1]\n",
             "the SQS listener needs a fixed port"),
            ("binary: 127.0.0.1:7081\ncluster:\n  node_id: n1\n  gossip: 127.0.0.1:7946\n  controllers: [n1]\n  queue_groups: true\n  max_queue_groups: 4096\n",
             "lower max_queue_groups or max_map_bytes"),
        ])
        func invalidConfiguration_exitsWithAMessageNamingTheSetting(text: String, message: String) async throws {
            let root = try TemporaryDirectory(prefix: "tern-config")
            defer { root.remove() }
            let result = try await runTernd(["--config", try configFile(root, text), "--print-config"])
            #expect(result.status != 0)
            #expect(result.error.contains(message), "\(result.error)")
        }

        /// `cluster.binary_forwarding` (decision 133): on by default; the file, the environment
        /// and `--[no-]binary-forwarding` set it, in that order of precedence; anything but a
        /// boolean is refused.
        @Test func binaryForwarding_isOnByDefault_andEveryLayerSetsIt() async throws {
            let root = try TemporaryDirectory(prefix: "tern-config")
            defer { root.remove() }
            func setting(_ arguments: [String], _ environment: [String: String] = [:]) async throws -> String? {
                let result = try await runTernd(arguments + ["--print-config"], environment: environment)
                #expect(result.status == 0, "\(result.error)")
                return result.output.split(separator: "\n").first { $0.hasPrefix("  binary_forwarding: ") }.map(String.init)
            }
            #expect(try await setting(["--gossip", "127.0.0.1:7946"]) == "  binary_forwarding: true")
            let path = try configFile(root, "cluster:\n  gossip: 127.0.0.1:7946\n  binary_forwarding: false\n")
            #expect(try await setting(["--config", path]) == "  binary_forwarding: false", "the file")
            #expect(try await setting(["--config", path], ["TERN_BINARY_FORWARDING": "true"]) == "  binary_forwarding: true", "the environment")
            #expect(try await setting(["--config", path, "--no-binary-forwarding"], ["TERN_BINARY_FORWARDING": "true"])
                    == "  binary_forwarding: false", "the flag")
            #expect(try await setting(["--config", path, "--binary-forwarding"]) == "  binary_forwarding: true", "the flag")
            let bad = try await runTernd(["--config", try configFile(root, "cluster:\n  gossip: 127.0.0.1:7946\n  binary_forwarding: maybe\n"),
                                          "--print-config"])
            #expect(bad.status != 0 && bad.error.contains("cluster.binary_forwarding must be true or false"), "\(bad.error)")
        }

        /// The limits of issue 14 in every layer: a list in the file, a comma-separated flag and
        /// variable, seconds as decimals; `--print-config` shows them.
        @Test func hardeningLimits_comeFromEveryLayer_andArePrinted() async throws {
            let root = try TemporaryDirectory(prefix: "tern-config")
            defer { root.remove() }
            let path = try configFile(root, """
                cors_origins: [https://app.example, "http://localhost:3000"]
                max_connections: 500
                binary_idle_timeout: 120
                memory_trim_interval: 30
                """)
            let result = try await runTernd(["--config", path, "--allowed-hosts", "tern.internal, tern.local", "--http-idle-timeout", "0",
                                             "--print-config"],
                                            environment: ["TERN_HEADER_READ_TIMEOUT": "2.5", "TERN_MAX_IN_FLIGHT_REQUEST_BYTES": "134217728"])
            #expect(result.status == 0, "\(result.error)")
            let lines = Set(result.output.split(separator: "\n").map(String.init))
            #expect(lines.contains(#"cors_origins: ["https://app.example", "http://localhost:3000"]"#), "\(result.output)")
            #expect(lines.contains(#"allowed_hosts: ["tern.internal", "tern.local"]"#))
            #expect(lines.contains("max_connections: 500") && lines.contains("binary_idle_timeout: 120"))
            #expect(lines.contains("header_read_timeout: 2.5") && lines.contains("http_idle_timeout: 0"))
            #expect(lines.contains("max_in_flight_request_bytes: 134217728"))
            #expect(lines.contains("memory_trim_interval: 30"))

            let defaults = try await runTernd(["--print-config"])
            let defaultLines = Set(defaults.output.split(separator: "\n").map(String.init))
            #expect(defaultLines.isSuperset(of: ["max_connections: 10000", "header_read_timeout: 10", "http_idle_timeout: 60",
                                                 "binary_idle_timeout: 600", "max_in_flight_request_bytes: 268435456", "memory_trim_interval: 10",
                                                 "cors_origins: []", "allowed_hosts: []"]), "\(defaults.output)")
            let bad = try await runTernd(["--cors-origins", "https://app.example/path", "--print-config"])
            #expect(bad.status != 0 && bad.error.contains("cors_origins"), "\(bad.error)")
        }

        @Test func dataDirectoryThatCannotBeCreated_failsWithOneLineNamingThePath() async throws {
            let root = try TemporaryDirectory(prefix: "tern-config")
            defer { root.remove() }
            let blocker = root.appending("file")
            try "not a directory".write(toFile: blocker, atomically: true, encoding: .utf8)
            let result = try await runTernd(["--data-dir", blocker + "/data", "--http", "127.0.0.1:0", "--binary", "127.0.0.1:0"])
            #expect(result.status != 0)
            let line = try #require(result.error.split(separator: "\n").first { $0.contains("cannot create the data directory") },
                                    "\(result.error)")
            #expect(line.contains(blocker + "/data") && line.contains("Not a directory"), "\(line)")
            #expect(!result.error.contains("NSError") && !result.error.contains("Domain="), "\(result.error)")
        }

        @Test func jsonLogs_areOneObjectPerLine_withStructuredMetadata_andNoSecrets() async throws {
            let root = try TemporaryDirectory(prefix: "tern-config")
            let path = try configFile(root, """
                auth:
                  enabled: true
                  tokens: [{name: ops, token: "\(Self.secret)", permissions: [admin]}]
                """)
            try await withServer(["--binary", "127.0.0.1:0", "--log-format", "json", "--config", path]) { server, _ in
                let (status, _) = try await HTTP().request(.GET, server.baseURL + "/queues")
                #expect(status == 401)
                await server.terminate()
                let log = server.logTail(bytes: 100_000)
                let lines = log.split(separator: "\n").filter { $0.hasPrefix("{") }
                #expect(!lines.isEmpty, "\(log)")
                let objects = try lines.map { try HTTP.object(Data($0.utf8)) }
                let starting = try #require(objects.first { $0["message"] as? String == "ternd starting" })
                #expect(starting["level"] as? String == "info")
                #expect(starting["tern.auth"] as? String == "true")
                #expect(starting["tern.data_dir"] as? String == server.dataDirectory)
                #expect(objects.contains { $0["message"] as? String == "ternd stopped" })
                #expect(!log.contains(Self.secret))
            }
            root.remove()
        }

        /// SIGTERM while many clients send: every send that was answered 201 is stored, the
        /// process exits 0, and nothing is lost across the restart.
        @Test func sigterm_duringTraffic_losesNoAcknowledgedSend() async throws {
            try await withServer(["--binary", "127.0.0.1:0"]) { server, _ in
                let api = QueueAPI(baseURL: server.baseURL)
                _ = try await api.createQueue("drain")
                let acknowledged = try await HTTP.withClient(connectionsPerHost: 16) { client in
                    try await withThrowingTaskGroup(of: [String].self) { group in
                        for sender in 0..<16 {
                            group.addTask {
                                let http = HTTP(client: client)
                                var ids = [String]()
                                for n in 0..<10_000 {
                                    guard let (status, body) = try? await http.request(
                                        .POST, "\(server.baseURL)/queues/drain/messages", json: ["message": "s\(sender) n\(n)"],
                                        timeout: .seconds(10))
                                    else { break }
                                    if status == 201, let id = try? HTTP.object(body)["id"] as? String { ids.append(id) } else { break }
                                }
                                return ids
                            }
                        }
                        group.addTask {
                            while (try await api.total("drain") ?? 0) < 300 { try await Task.sleep(for: .milliseconds(10)) }
                            let status = await server.terminate(gracePeriod: .seconds(30))
                            #expect(status == 0, "graceful exit status")
                            return []
                        }
                        return try await group.reduce(into: [String]()) { $0 += $1 }
                    }
                }
                #expect(acknowledged.count >= 300)
                try await server.start()
                var stored = Set<String>()
                while true {
                    let batch = try await api.receive("drain", batchSize: 1000).messages
                    if batch.isEmpty { break }
                    stored.formUnion(batch.map(\.id))
                }
                let lost = Set(acknowledged).subtracting(stored)
                #expect(lost.isEmpty, "\(lost.count) acknowledged sends lost, e.g. \(lost.prefix(3))")
            }
        }
    }
}
