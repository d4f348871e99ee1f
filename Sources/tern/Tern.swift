import ArgumentParser
import Foundation
import NIOSSL

/// `tern`: the command-line client of ternd, over its binary protocol or its HTTP API.
///
/// ```
/// tern queue create jobs --visibility-timeout 60
/// printf 'a\nb\n' | tern send jobs
/// tern receive jobs --max 100 --wait 5 --ack
/// tern --server http://127.0.0.1:7080 queue list
/// ```
@main
struct Tern: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tern",
        abstract: "Command-line client of the Tern message broker (talks to ternd over its binary protocol or over HTTP).",
        discussion: """
            The server defaults to \(ServerOptions.defaultServer) (the binary protocol); set --server or \
            TERN_SERVER to change it: tern://host:port or host:port for the binary protocol, \
            tern+tls://host:port (or --tls) for it over TLS, http://host:port or https://host:port for the \
            HTTP API (ternd serves it on 127.0.0.1:7080 by default). Output is the same over both. \
            --token (TERN_TOKEN) authenticates, --ca-file (TERN_CA_FILE) names the CA certificates a TLS \
            server's certificate must chain to.
            """,
        subcommands: [QueueCommand.self, TopicCommand.self, Send.self, Receive.self, Ack.self, ChangeVisibility.self,
                      ClusterCommand.self]
    )

    /// Declared here too so that `tern --server URL queue list` works as well as `tern queue list --server URL`.
    @OptionGroup var options: ServerOptions
}

/// Options every command that talks to the server takes.
struct ServerOptions: ParsableArguments {
    static let defaultServer = "tern://127.0.0.1:7081"

    @Option(name: .long, help: ArgumentHelp(
        "ternd's address: tern://host:port or host:port (binary protocol), tern+tls://host:port, http://… or https://… (HTTP API) (env TERN_SERVER).",
        valueName: "url"))
    var server: String = ProcessInfo.processInfo.environment["TERN_SERVER"].flatMap { $0.isEmpty ? nil : $0 }
        ?? ServerOptions.defaultServer

    // No default value is declared for --token: `--help` prints defaults, and the token is secret.
    @Option(name: .long, help: ArgumentHelp(
        "Bearer token: Authorization: Bearer over HTTP, Authenticate over the binary protocol (env TERN_TOKEN).",
        valueName: "token"))
    var token: String?

    @Flag(name: .long, help: "Use TLS for the binary protocol (as a tern+tls:// server does); for HTTP use an https:// URL.")
    var tls = false

    @Option(name: .long, help: ArgumentHelp(
        "PEM file of the CA certificates a TLS server's certificate must chain to (default: the system's) (env TERN_CA_FILE).",
        valueName: "pem"))
    var caFile: String?

    /// `--token`, else `TERN_TOKEN`; nil when neither is set or empty.
    var effectiveToken: String? {
        if let token, !token.isEmpty { return token }
        return ProcessInfo.processInfo.environment["TERN_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// `--ca-file`, else `TERN_CA_FILE`.
    var effectiveCAFile: String? {
        if let caFile, !caFile.isEmpty { return caFile }
        return ProcessInfo.processInfo.environment["TERN_CA_FILE"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The client for ``server``: ``BinaryBrokerClient`` for `tern://`, `tern+tls://` and bare
    /// `host:port`, ``BrokerClient`` for `http://` and `https://`.
    /// - Throws: ``ClientError/input(_:)`` for an address that cannot be used or a CA file that
    ///   cannot be read.
    func makeClient() throws(ClientError) -> any BrokerTransport {
        let address = try ServerAddress.parse(server, tls: tls)
        switch address {
        case .http(let baseURL):
            let secure = baseURL.lowercased().hasPrefix("https://")
            return BrokerClient(server: baseURL, token: effectiveToken, trustRoots: secure ? try trustRoots() : nil)
        case .binary(let host, let port, let secure):
            return BinaryBrokerClient(host: host, port: port, token: effectiveToken, tls: secure,
                                      trustRoots: secure ? try trustRoots() : nil)
        }
    }

    /// The certificates of ``effectiveCAFile``; nil when none is given (then the system's roots apply).
    private func trustRoots() throws(ClientError) -> [NIOSSLCertificate]? {
        guard let path = effectiveCAFile else { return nil }
        do {
            let certificates = try NIOSSLCertificate.fromPEMFile(path)
            guard !certificates.isEmpty else { throw ClientError.input("the CA file \(path) holds no PEM certificate") }
            return certificates
        } catch let error as ClientError {
            throw error
        } catch {
            throw .input("cannot read the CA file \(path): \(error)")
        }
    }

    /// Runs `body` with a client for ``server``, reports any ``ClientError`` as `error: …` on
    /// standard error and exits with status 1; the client is shut down in every case.
    func run<T>(_ body: (any BrokerTransport) async throws -> T) async throws -> T {
        let client: any BrokerTransport
        do {
            client = try makeClient()
        } catch {
            StandardError.print("error: \(error)")
            throw ExitCode.failure
        }
        do {
            let result = try await body(client)
            await client.shutdown()
            return result
        } catch let error as ClientError {
            await client.shutdown()
            StandardError.print("error: \(error)")
            throw ExitCode.failure
        } catch {
            await client.shutdown()
            throw error
        }
    }
}

/// Unbuffered writes to standard error.
enum StandardError {
    static func print(_ line: String) {
        var text = line
        text += "\n"
        text.withUTF8 { bytes in
            _ = try? StandardOutput.writeAll(bytes, to: 2)
        }
    }
}
