import Foundation
import NIOHTTP1
import Testing
import TernTestKit

extension IntegrationTests.ClusterProcessTests {
    /// The 16 loghub samples through a 3-node cluster, one FIFO queue per file, sent to every node in turn, with the leader killed (`kill -9`) halfway through the
    /// sends and restarted: the multiset of lines received equals the multiset sent, and each
    /// file's lines arrive in order. A batch whose answer was lost is sent again with the same
    /// deduplication ids, so it is stored once (SQS FIFO semantics).
    @Test(.enabled(if: loghubTestsEnabled, Comment(rawValue: loghubMissingMessage)))
    func loghubLinesSurviveTheLeaderKilledMidway() async throws {
        let logs = try IntegrationTests.LoghubTests.loadLogs().map { log in
            (group: log.queue, lines: log.lines.compactMap { String(data: $0, encoding: .utf8) })
        }
        try #require(logs.count == 16)
        let total = logs.reduce(0) { $0 + $1.lines.count }
        try #require(total == 32_000, "every loghub line is valid UTF-8")

        let root = try TemporaryDirectory(prefix: "tern-cluster-loghub")
        defer { root.remove() }
        let nodes = try await Self.startCluster(root)
        try await Self.killing(nodes) {
            for log in logs {
                let created = try await Self.retrying {
                    try await Self.call(.PUT, nodes[0].process.baseURL + "/queues/\(log.group).fifo", json: ["fifo": true, "visibility_timeout": 10])
                }
                try #require(created.status == 201, "\(String(decoding: created.body, as: UTF8.self))")
            }

            // Batches of 100 lines, each file's batches in order; four senders at a time.
            let batches: [(group: String, first: Int, lines: ArraySlice<String>)] = logs.flatMap { log in
                stride(from: 0, to: log.lines.count, by: 100).map { first in
                    (log.group, first, log.lines[first..<min(first + 100, log.lines.count)])
                }
            }
            let byGroup = Dictionary(grouping: batches.indices, by: { batches[$0].group })
            let sentBatches = Counter()
            let killer = Task {
                while sentBatches.value < batches.count / 2 { try await Task.sleep(for: .milliseconds(20)) }
                let leader = try await Self.leader(of: nodes)
                await leader.process.kill9()
                _ = try await Self.leader(of: nodes, excluding: [leader.id])
                try await leader.process.start(timeout: .seconds(60))
                return leader.id
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (slot, groups) in byGroup.keys.sorted().chunked(into: 4).enumerated() {
                    group.addTask {
                        var attempt = slot
                        for name in groups {
                            for index in byGroup[name]! {
                                let batch = batches[index]
                                let messages: [[String: Any]] = batch.lines.enumerated().map { offset, line in
                                    ["message": line, "group_id": "lines", "deduplication_id": "\(batch.first + offset)"]
                                }
                                let deadline = ContinuousClock.now + .seconds(120)
                                while true {
                                    attempt += 1
                                    let node = nodes[attempt % nodes.count]
                                    if let answer = try? await Self.call(.POST, node.process.baseURL + "/queues/\(name).fifo/messages",
                                                                         json: ["messages": messages], timeout: 20),
                                       answer.status == 201 || answer.status == 200 {
                                        break
                                    }
                                    guard ContinuousClock.now < deadline else { throw TernProcess.Failure("batch \(name)@\(batch.first) not stored within 120 s") }
                                    try await Task.sleep(for: .milliseconds(200))
                                }
                                sentBatches.add()
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let killed = try await killer.value

            // Drain through every node, queue after queue: the first delivery of each message id counts.
            var firstDelivery: [String: String] = [:]
            var order: [String: [String]] = [:]
            var k = 0
            for log in logs {
                var idle = 0
                while (order[log.group]?.count ?? 0) < log.lines.count && idle < 30 {
                    k += 1
                    let node = nodes[k % nodes.count]
                    let queue = node.process.baseURL + "/queues/\(log.group).fifo/messages"
                    guard let answer = try? await Self.call(.GET, queue + "?batch_size=100&wait_time=1", timeout: 20),
                          answer.status == 200 else { idle += 1; continue }
                    let messages = answer.json["messages"] as? [[String: Any]] ?? []
                    if messages.isEmpty { idle += 1; continue }
                    idle = 0
                    var handles: [String] = []
                    for message in messages {
                        guard let id = message["id"] as? String, let body = message["body"] as? String,
                              let handle = message["receipt_handle"] as? String else { continue }
                        handles.append(handle)
                        if firstDelivery[id] == nil {
                            firstDelivery[id] = body
                            order[log.group, default: []].append(body)
                        }
                    }
                    _ = try? await Self.call(.POST, queue + "/acknowledge", json: ["receipt_handles": handles], timeout: 20)
                }
            }

            let received = firstDelivery.values.reduce(into: [String: Int]()) { $0[$1, default: 0] += 1 }
            let sent = logs.flatMap(\.lines).reduce(into: [String: Int]()) { $0[$1, default: 0] += 1 }
            #expect(firstDelivery.count == total, "received \(firstDelivery.count) distinct messages of \(total) (leader \(killed) was killed midway)")
            #expect(received == sent, "the multiset received equals the multiset sent")
            for log in logs {
                #expect(order[log.group] == log.lines, "\(log.group): lines arrive in the order sent (FIFO group order)")
            }
        }
    }
}

/// A counter shared between tasks.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    var value: Int { lock.withLock { count } }
    func add() { lock.withLock { count += 1 } }
}

extension Array {
    func chunked(into parts: Int) -> [[Element]] {
        var result = Array<[Element]>(repeating: [], count: Swift.min(parts, count))
        for (index, element) in enumerated() { result[index % result.count].append(element) }
        return result
    }
}
