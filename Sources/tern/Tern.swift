import ArgumentParser
import Foundation

/// `tern`: the command-line client of ternd's HTTP API.
///
/// ```
/// tern queue create jobs --visibility-timeout 60
/// printf 'a\nb\n' | tern send jobs
/// tern receive jobs --max 100 --wait 5 --ack
/// ```
@main
struct Tern: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tern",
        abstract: "Command-line client of the Tern message broker (talks to ternd over HTTP).",
        discussion: "The server defaults to \(ServerOptions.defaultServer); set --server or TERN_SERVER to change it.",
        subcommands: [QueueCommand.self, TopicCommand.self, Send.self, Receive.self, Ack.self, ChangeVisibility.self]
    )

    /// Declared here too so that `tern --server URL queue list` works as well as `tern queue list --server URL`.
    @OptionGroup var options: ServerOptions
}

/// Options every command that talks to the server takes.
struct ServerOptions: ParsableArguments {
    static let defaultServer = "http://127.0.0.1:7080"

    @Option(name: .long, help: ArgumentHelp("Base URL of ternd's HTTP API (env TERN_SERVER).", valueName: "url"))
    var server: String = ProcessInfo.processInfo.environment["TERN_SERVER"].flatMap { $0.isEmpty ? nil : $0 }
        ?? ServerOptions.defaultServer

    /// Runs `body` with a connected client, reports any ``ClientError`` as `error: …` on standard
    /// error and exits with status 1; the client is shut down in every case.
    func run<T>(_ body: (BrokerClient) async throws -> T) async throws -> T {
        let client = BrokerClient(server: server)
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
