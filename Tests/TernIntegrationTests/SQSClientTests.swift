import Foundation
import TernTestKit
import Testing

/// The Python virtual environments `make test` prepares (see the Makefile's `sqs-venv`): one with
/// current boto3, awscli and moto, one with boto3 1.26 (the Query protocol).
enum SQSPython {
    static var current: String? { ProcessInfo.processInfo.environment["TERN_SQS_VENV"].flatMap { $0.isEmpty ? nil : $0 } }
    static var query: String? { ProcessInfo.processInfo.environment["TERN_SQS_QUERY_VENV"].flatMap { $0.isEmpty ? nil : $0 } }
    /// `Tests/sqs`, next to this file's directory.
    static let scripts = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("sqs").path

    /// Runs `python script` of the environment `venv` to completion with `environment` added.
    /// - Returns: the exit status and everything the script printed.
    static func run(_ script: String, venv: String, environment: [String: String], scratch: TemporaryDirectory,
                    timeout: Duration = .seconds(600)) async throws -> (status: Int32, output: String) {
        let python = venv + "/bin/python"
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw TernProcess.Failure("no Python at \(python): run `make sqs-venv` (make test does)")
        }
        let logPath = scratch.appending(script + ".log")
        // `env -C` runs the script from its directory (posix_spawn has no portable chdir).
        let process = try ChildProcess(
            executable: "/usr/bin/env", arguments: ["-C", scripts, python, scripts + "/" + script],
            environment: ProcessInfo.processInfo.environment.merging(environment) { $1 }
                .merging(["PYTHONPATH": scripts, "PYTHONUNBUFFERED": "1", "AWS_EC2_METADATA_DISABLED": "true"]) { $1 },
            standardOutput: logPath, standardError: logPath)
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        if process.isRunning {
            process.send(SIGTERM)
            _ = await process.waitForExit()
        }
        let output = String(decoding: FileManager.default.contents(atPath: logPath) ?? Data(), as: UTF8.self)
        return (process.terminationStatus ?? -1, output)
    }
}

extension IntegrationTests {
    /// Real SQS clients (boto3, awscli, an older boto3 speaking the Query protocol, moto as a
    /// differential reference) against a real `ternd --sqs`. The Python suites live in
    /// `Tests/sqs/`; a failure prints the suite's whole output.
    @Suite struct SQSClientTests {
        static let environmentNote = "needs TERN_SQS_VENV (make test creates it with `make sqs-venv`)"

        func launch(_ root: TemporaryDirectory, extra: [String] = []) async throws -> (TernProcess, String) {
            let port = try TernProcess.freePort()
            let server = try TernProcess(dataDirectory: root.appending("data"), logFile: root.appending("ternd.log"),
                                         extraArguments: ["--no-sync", "--sqs", "127.0.0.1:\(port)"] + extra)
            try await server.start()
            return (server, "http://127.0.0.1:\(port)")
        }

        func expectSuccess(_ result: (status: Int32, output: String), _ script: String, _ server: TernProcess) {
            #expect(result.status == 0, "\(script) failed:\n\(result.output)\n--- ternd log ---\n\(server.logTail())")
        }

        @Test(.enabled(if: SQSPython.current != nil, Comment(rawValue: environmentNote)))
        func boto3_awscli_badInput_andDifferentialAgainstMoto() async throws {
            let root = try TemporaryDirectory(prefix: "tern-sqs")
            defer { root.remove() }
            let (server, endpoint) = try await launch(root)
            let environment = ["SQS_ENDPOINT": endpoint, "TERN_HTTP": server.baseURL, "MOTO_LOG": root.appending("moto.log")]
            for script in ["test_boto3.py", "test_bad_input.py", "test_differential.py"] {
                let result = try await SQSPython.run(script, venv: SQSPython.current!, environment: environment, scratch: root)
                expectSuccess(result, script, server)
            }
            // The startup log says that signatures are not checked.
            #expect(server.logTail(bytes: 1 << 20).contains("any signature is accepted"))
            await server.terminate()
        }

        @Test(.enabled(if: SQSPython.query != nil, "needs TERN_SQS_QUERY_VENV (make sqs-venv)"))
        func olderBoto3_speaksTheQueryProtocol() async throws {
            let root = try TemporaryDirectory(prefix: "tern-sqs-query")
            defer { root.remove() }
            let (server, endpoint) = try await launch(root)
            let result = try await SQSPython.run("test_query.py", venv: SQSPython.query!, environment: ["SQS_ENDPOINT": endpoint],
                                                 scratch: root)
            expectSuccess(result, "test_query.py", server)
            await server.terminate()
        }

        @Test(.enabled(if: SQSPython.current != nil, Comment(rawValue: environmentNote)))
        func sigV4_withAuthenticationConfigured() async throws {
            let root = try TemporaryDirectory(prefix: "tern-sqs-auth")
            defer { root.remove() }
            let config = root.appending("ternd.yaml")
            try """
                auth:
                  enabled: true
                  tokens:
                    - {name: operator, token: "operator-secret-0123456789", permissions: [admin]}
                    - {name: orders-service, token: "orders-secret-0123456789", permissions: ["produce:orders-*", "consume:orders-*"]}
                """.write(toFile: config, atomically: true, encoding: .utf8)
            let (server, endpoint) = try await launch(root, extra: ["--config", config])
            let result = try await SQSPython.run("test_auth.py", venv: SQSPython.current!, environment: ["SQS_ENDPOINT": endpoint],
                                                 scratch: root)
            expectSuccess(result, "test_auth.py", server)
            // The Query protocol signs too (SigV4 over the form body): the older boto3, with a configured key.
            if let query = SQSPython.query {
                let signed = try await SQSPython.run("test_query.py", venv: query, environment: [
                    "SQS_ENDPOINT": endpoint, "SQS_ACCESS_KEY": "operator", "SQS_SECRET_KEY": "operator-secret-0123456789",
                ], scratch: root)
                expectSuccess(signed, "test_query.py (signed)", server)
            }
            #expect(server.logTail(bytes: 1 << 20).contains("SigV4 required"))
            await server.terminate()
        }
    }
}
