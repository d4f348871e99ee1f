import Foundation
import TernTestKit

extension IntegrationTests.ClusterProcessTests {
    /// Runs `body` on a fresh cluster of `count` nodes (``startCluster(_:count:namespaces:)``)
    /// in a temporary directory named `prefix`, then kills every node (`kill -9`) and removes
    /// the directory, whether `body` returned or threw. Waiting for the kills keeps a test run
    /// from leaving `ternd` processes behind (a `defer { Task { … } }` may never run before the
    /// test process exits).
    static func withCluster<T>(_ prefix: String, count: Int = 3, spares: Int = 0, arguments: [String] = [],
                               _ body: ([Node], TemporaryDirectory) async throws -> T) async throws -> T {
        let root = try TemporaryDirectory(prefix: prefix)
        defer { root.remove() }
        let nodes = try await startCluster(root, count: count, spares: spares, arguments: arguments)
        do {
            let result = try await body(nodes, root)
            for node in nodes { await node.process.kill9() }
            return result
        } catch {
            for node in nodes { await node.process.kill9() }
            throw error
        }
    }
}
