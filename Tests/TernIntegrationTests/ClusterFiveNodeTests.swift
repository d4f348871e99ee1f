import Foundation
import NIOHTTP1
import Testing
import TernTestKit

extension IntegrationTests {
    /// Issue 11, five real `ternd` under the producers and consumers of
    /// ``ClusterProcessTests/workload(_:history:running:)`` with two faults at once, and the
    /// checker (``QueueHistory``) over everything; then three of five down, where no write may
    /// be acknowledged until one comes back.
    @Suite(.serialized) struct ClusterFiveNodeTests {
        typealias Cluster = ClusterProcessTests

        /// Rounds of two simultaneous faults: kill -9 of the leader and a follower; or the leader
        /// paused (SIGSTOP) past the election timeout while a follower is killed. Default 4
        /// rounds (8 faults); `TERN_CLUSTER_FIVE_ROUNDS` for a soak.
        @Test func fiveNodesKeepEveryAcknowledgedWriteThroughTwoFaultsAtOnce() async throws {
            try await Cluster.withCluster("tern-cluster-five", count: 5) { nodes, _ in
                let rounds = ProcessInfo.processInfo.environment["TERN_CLUSTER_FIVE_ROUNDS"].flatMap(Int.init) ?? 4
                let history = QueueHistory()
                let created = try await Cluster.retrying { try await Cluster.call(.PUT, nodes[0].process.baseURL + "/queues/jobs", json: ["visibility_timeout": 5]) }
                #expect(created.status == 201)

                let running = ManagedFlag()
                let workers = Cluster.workload(nodes, history: history, running: running)
                for round in 0..<rounds {
                    let leader = try await Cluster.leader(of: nodes)
                    let followers = nodes.filter { $0.id != leader.id }
                    let other = followers[round % followers.count]
                    if round % 2 == 0 {
                        history.fault("kill -9 \(leader.id) (leader)")
                        history.fault("kill -9 \(other.id)")
                        await leader.process.kill9()
                        await other.process.kill9()
                        _ = try await Cluster.leader(of: nodes, excluding: [leader.id, other.id])
                        try await Task.sleep(for: .seconds(1))
                        try await leader.process.start(timeout: .seconds(60))
                        try await other.process.start(timeout: .seconds(60))
                    } else {
                        history.fault("SIGSTOP \(leader.id) (leader) for 4 s")
                        history.fault("kill -9 \(other.id)")
                        await leader.process.pause()
                        await other.process.kill9()
                        try await Task.sleep(for: .seconds(4))
                        await leader.process.resume()
                        try await other.process.start(timeout: .seconds(60))
                    }
                    try await Task.sleep(for: .milliseconds(500))
                }
                running.value = false
                await workers.value

                // Three of five down, the leader not among them: it keeps believing it leads until
                // check-quorum, but it cannot commit, so no write may be acknowledged.
                let leader = try await Cluster.leader(of: nodes)
                let down = Array(nodes.filter { $0.id != leader.id }.prefix(3))
                for node in down { await node.process.kill9() }
                history.fault("kill -9 \(down.map(\.id).joined(separator: ", ")) (3 of 5, the leader \(leader.id) stays)")
                let up = nodes.filter { node in !down.contains { $0.id == node.id } }
                var refused: [Int] = []
                for wave in 0..<2 {
                    // At once on both survivors; the second wave after the election timeout.
                    if wave == 1 { try await Task.sleep(for: .seconds(4)) }
                    let answers = await withTaskGroup(of: (String, Cluster.Answer?).self) { group in
                        for (k, node) in up.enumerated() {
                            let body = "minority-\(wave)-\(k)"
                            group.addTask {
                                (body, try? await Cluster.call(.POST, node.process.baseURL + "/queues/jobs/messages", json: ["message": body], timeout: 30))
                            }
                        }
                        var all: [(String, Cluster.Answer?)] = []
                        for await answer in group { all.append(answer) }
                        return all
                    }
                    for (body, answer) in answers {
                        let status = answer?.status ?? -1
                        refused.append(status)
                        if status == 201 { history.sendAcknowledged(body) } else { history.sendIndeterminate(body) }
                        if let answer, status == 503 {
                            #expect(HTTP.errorCode(answer.body) == "Unavailable", "\(String(decoding: answer.body, as: UTF8.self))")
                        }
                    }
                }
                #expect(refused.allSatisfy { $0 == 503 }, "writes with 3 of 5 down answered \(refused), not 503")

                // One comes back: a majority again, and writes resume.
                try await down[0].process.start(timeout: .seconds(60))
                let resumed = try await Cluster.retrying {
                    try await Cluster.call(.POST, up[0].process.baseURL + "/queues/jobs/messages", json: ["message": "resumed"])
                }
                #expect(resumed.status == 201, "a write once 3 of 5 are up: \(resumed.status)")
                if resumed.status == 201 { history.sendAcknowledged("resumed") } else { history.sendIndeterminate("resumed") }
                if let by = resumed.servedBy, let term = resumed.term { history.served(by: by, term: term) }
                for node in down.dropFirst() { try await node.process.start(timeout: .seconds(60)) }

                await Cluster.drain(nodes, history: history)
                let violations = history.check()
                #expect(violations.isEmpty, "\(violations.prefix(20)) after faults \(history.faults)")
                #expect(history.faults.count >= 2 * min(rounds, 4) + 1, "faults injected: \(history.faults)")
                #expect(history.acknowledgedSendCount > 0)
                #expect(history.termsServed >= 2, "leadership moved during the run")
            }
        }
    }
}
