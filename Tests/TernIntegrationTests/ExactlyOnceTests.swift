import Foundation
import Testing
import TernClient
import TernCore
import TernTestKit
#if canImport(Glibc)
import Glibc
#endif

extension IntegrationTests {
    /// The consume-transform-produce pipeline (`tern-bench pipeline`, a `TransactionalProducer`
    /// in its own process) moves every loghub line from `input` to `output` uppercased, while
    /// the test kills the broker and the pipeline with SIGKILL at random moments.
    @Suite struct ExactlyOnceTests {
        /// The non-empty lines of every loghub log.
        static func loghubLines() throws -> [String] {
            let directory = try #require(loghubDirectory, "the loghub data is missing (../shared/data/loghub)")
            let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".log") }.sorted()
            return try files.flatMap { file in
                // Split bytes, not Characters: in CRLF files "\r\n" is one Character and never equals "\n".
                try Data(contentsOf: URL(fileURLWithPath: directory + "/" + file))
                    .split(separator: 0x0A, omittingEmptySubsequences: true).map { String(decoding: $0, as: UTF8.self) }
            }
        }

        /// Launches the pipeline process against `port`.
        static func startPipeline(port: Int, log: String) throws -> ChildProcess {
            try ChildProcess(executable: try TernBinaries.path(of: "tern-bench"), arguments: [
                "pipeline", "--server", "tern://127.0.0.1:\(port)", "--input", "input", "--output", "output",
                "--transactional-id", "uppercase", "--batch", "50", "--visibility-timeout", "2",
            ], standardOutput: log, standardError: log)
        }

        static func kill9(_ process: ChildProcess) {
            guard process.isRunning else { return }
            process.send(SIGKILL)
            process.waitUntilExit()
        }

        @Test(.enabled(if: loghubTestsEnabled, Comment(rawValue: loghubMissingMessage)))
        func pipeline_underRepeatedSIGKILLs_writesEveryLineExactlyOnce() async throws {
            let lines = try Self.loghubLines()
            #expect(lines.count > 10_000)
            let binaryPort = try TernProcess.freePort()
            let root = try TemporaryDirectory(prefix: "tern-eos")
            let server = try TernProcess(dataDirectory: root.appending("data"), logFile: root.appending("ternd.log"),
                                         extraArguments: ["--binary", "127.0.0.1:\(binaryPort)"])
            try await server.start()
            let client = TernClient(host: "127.0.0.1", port: binaryPort)
            try await client.createQueue("input")
            try await client.createQueue("output")
            for start in stride(from: 0, to: lines.count, by: 500) {
                _ = try await client.send(lines[start..<min(start + 500, lines.count)].map { OutgoingMessage(body: Array($0.utf8)) }, to: "input")
            }

            let pipelineLog = root.appending("pipeline.log")
            var pipeline = try Self.startPipeline(port: binaryPort, log: pipelineLog)
            var random = SystemRandomNumberGenerator()
            var brokerKills = 0, pipelineKills = 0
            for round in 0..<12 {
                try await Task.sleep(for: .milliseconds(Int.random(in: 200...900, using: &random)))
                if round % 2 == 0 {
                    await server.kill9()
                    brokerKills += 1
                    try await server.start()
                } else {
                    Self.kill9(pipeline)
                    pipelineKills += 1
                    pipeline = try Self.startPipeline(port: binaryPort, log: pipelineLog)
                }
            }
            #expect(brokerKills >= 5 && pipelineKills >= 5)

            // Let the pipeline drain the input (messages of aborted transactions come back after 2 s).
            let deadline = ContinuousClock.now + .seconds(300)
            while ContinuousClock.now < deadline {
                if let info = try? await client.describeQueue("input"), info.counts.total == 0 { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            Self.kill9(pipeline)
            #expect(try await client.describeQueue("input").counts.total == 0, "input not drained; logs in \(root.path)")

            var output = [String: Int]()
            while true {
                let batch = try await client.receive(from: "output", maxMessages: 1000, autoAcknowledge: true)
                if batch.isEmpty { break }
                for message in batch { output[String(decoding: message.body, as: UTF8.self), default: 0] += 1 }
            }
            var expected = [String: Int]()
            for line in lines { expected[line.uppercased(), default: 0] += 1 }
            let missing = expected.filter { output[$0.key, default: 0] < $0.value }
            let duplicated = output.filter { $0.value > expected[$0.key, default: 0] }
            #expect(missing.isEmpty, "\(missing.count) lines missing, e.g. \(missing.first.map { $0.key } ?? "")")
            #expect(duplicated.isEmpty, "\(duplicated.count) lines duplicated, e.g. \(duplicated.first.map { $0.key } ?? "")")
            #expect(output.values.reduce(0, +) == lines.count)
            await client.close()
            await server.terminate()
            if missing.isEmpty && duplicated.isEmpty { root.remove() } else { print("kept \(root.path)") }
        }
    }
}
