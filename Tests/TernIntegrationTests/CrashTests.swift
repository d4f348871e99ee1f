import AsyncHTTPClient
import Foundation
import Synchronization
import Testing
import TernTestKit

extension IntegrationTests {
    /// `kill -9` of a busy `ternd`, again and again: no acknowledged send is lost, no
    /// acknowledged message comes back, receive counts survive restarts.
    @Suite struct CrashTests {
        static let queue = "crash"
        static let visibilityTimeout = 2

        /// One delivery of a message as a consumer saw it, with when the receive request was
        /// sent and when its answer arrived (test-process monotonic time).
        struct Observation {
            var requestStart: ContinuousClock.Instant
            var answerEnd: ContinuousClock.Instant
            var receiveCount: Int
        }

        /// Tells the client tasks to stop.
        final class StopFlag: Sendable {
            private let value = Atomic<Bool>(false)
            var isSet: Bool { value.load(ordering: .relaxed) }
            func set() { value.store(true, ordering: .relaxed) }
        }

        /// Everything the clients learned, for the checks at the end.
        actor Ledger {
            /// Bodies of every send attempted (each body is used once).
            var attempted = Set<String>()
            /// Bodies whose send was answered 201.
            var sent = Set<String>()
            /// Bodies whose ack was answered 204, with when that answer arrived.
            var acknowledged = [String: ContinuousClock.Instant]()
            /// Bodies whose ack got no answer (connection lost): it may or may not have committed.
            var acknowledgementUncertain = Set<String>()
            /// Deliveries per message id.
            var observations = [String: [Observation]]()
            var bodyOfID = [String: String]()
            var violations = [String]()
            var receives = 0, connectionErrors = 0

            func attempt(_ body: String) { attempted.insert(body) }
            func sendAcknowledged(_ body: String) { sent.insert(body) }
            func ackAcknowledged(_ body: String, at time: ContinuousClock.Instant) { acknowledged[body] = time }
            func ackUncertain(_ body: String) { acknowledgementUncertain.insert(body) }
            func connectionError() { connectionErrors += 1 }
            func violation(_ text: String) { violations.append(text) }

            func received(_ messages: [QueueAPI.Received], requestStart: ContinuousClock.Instant, answerEnd: ContinuousClock.Instant) {
                receives += 1
                for message in messages {
                    if let ackedAt = acknowledged[message.body], requestStart > ackedAt {
                        violations.append("\(message.body) was received (count \(message.receiveCount)) by a receive sent after its ack was answered 204")
                    }
                    if !attempted.contains(message.body) {
                        violations.append("received a body that was never sent: \(message.body)")
                    }
                    if let known = bodyOfID[message.id], known != message.body {
                        violations.append("message \(message.id) was delivered with body \(known) and later \(message.body)")
                    }
                    bodyOfID[message.id] = message.body
                    observations[message.id, default: []].append(
                        Observation(requestStart: requestStart, answerEnd: answerEnd, receiveCount: message.receiveCount))
                }
            }

            /// Receive counts grow with every delivery: for two deliveries of one message where
            /// the first answer arrived before the second request was sent, the second count is
            /// higher. Returns the breaches.
            func receiveCountRegressions() -> [String] {
                var breaches = [String]()
                for (id, list) in observations {
                    let sorted = list.sorted { $0.requestStart < $1.requestStart }
                    for (i, earlier) in sorted.enumerated() {
                        for later in sorted[(i + 1)...] where earlier.answerEnd < later.requestStart {
                            if later.receiveCount <= earlier.receiveCount {
                                breaches.append("message \(id): receive count \(earlier.receiveCount) then \(later.receiveCount)")
                            }
                        }
                    }
                }
                return breaches
            }
        }

        @Test(.timeLimit(.minutes(3)))
        func kill9WhileSendingAndReceiving_losesNoAcknowledgedSend_andResurrectsNoAcknowledgedMessage() async throws {
            let seed = ProcessInfo.processInfo.environment["TERN_CRASH_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64.max)
            print("CrashTests seed \(seed) (rerun with TERN_CRASH_SEED=\(seed))")
            let ledger = Ledger()
            let stop = StopFlag()
            let kills = 6

            try await withServer { server, _ in try await HTTP.withClient { client in
                let api = QueueAPI(baseURL: server.baseURL, client: client)
                let (status, body) = try await api.createQueue(Self.queue, attributes: ["visibility_timeout": Self.visibilityTimeout])
                try #require(status == 201, "PUT /queues/\(Self.queue): \(status) \(text(body))")

                try await withThrowingTaskGroup(of: Void.self) { group in
                    for sender in 0..<3 {
                        group.addTask { await Self.sender(sender, api: api, ledger: ledger, stop: stop) }
                    }
                    for consumer in 0..<3 {
                        group.addTask { await Self.consumer(consumer, seed: seed, api: api, ledger: ledger, stop: stop) }
                    }
                    // The killer: SIGKILL at random moments, restart on the same data directory and port.
                    var random = SeededGenerator(seed: seed)
                    for _ in 0..<kills {
                        try await Task.sleep(for: .milliseconds(Int.random(in: 300...1_500, using: &random)))
                        await server.kill9()
                        try await server.start()
                    }
                    try await Task.sleep(for: .milliseconds(500))
                    stop.set()
                    try await group.waitForAll()
                }
                #expect(await server.launches == kills + 1)

                // Let every visibility timeout run out, then drain what is left.
                try await Task.sleep(for: .seconds(Self.visibilityTimeout) + .milliseconds(500))
                var drained = Set<String>()
                while true {
                    let start = ContinuousClock.now
                    let (status, messages, body) = try await api.receive(Self.queue, batchSize: 100, visibilityTimeout: 60)
                    try #require(status == 200, "drain receive: \(status) \(text(body))")
                    await ledger.received(messages, requestStart: start, answerEnd: .now)
                    if messages.isEmpty { break }
                    for message in messages {
                        #expect(drained.insert(message.body).inserted, "drained \(message.body) twice")
                        let ack = try await api.acknowledge(Self.queue, message.receiptHandle)
                        #expect(ack == 204, "drain ack of \(message.body): \(ack)")
                    }
                }
                let remaining = try await api.total(Self.queue)
                #expect(remaining == 0, "the queue still holds \(String(describing: remaining)) messages after the drain")

                let sent = await ledger.sent, acknowledged = Set(await ledger.acknowledged.keys)
                let uncertain = await ledger.acknowledgementUncertain
                print("CrashTests: \(sent.count) sends answered 201 of \(await ledger.attempted.count) attempted, "
                    + "\(acknowledged.count) acks answered 204, \(uncertain.count) acks unanswered, \(drained.count) drained, "
                    + "\(await ledger.receives) receives, \(await ledger.connectionErrors) connection errors")
                #expect(sent.count >= 200, "too little traffic to mean anything")
                #expect(acknowledged.count >= 50, "too few acks to mean anything")

                let lost = sent.subtracting(acknowledged).subtracting(drained).subtracting(uncertain)
                #expect(lost.isEmpty, "\(lost.count) sends answered 201 were neither acknowledged nor drained: \(lost.sorted().prefix(20))")
                let resurrected = drained.intersection(acknowledged)
                #expect(resurrected.isEmpty, "\(resurrected.count) messages acknowledged with 204 were drained: \(resurrected.sorted().prefix(20))")
                let violations = await ledger.violations
                #expect(violations.isEmpty, "\(violations.count) violations, first: \(violations.prefix(10))")
                let regressions = await ledger.receiveCountRegressions()
                #expect(regressions.isEmpty, "\(regressions.count) receive counts did not grow, first: \(regressions.prefix(10))")
            } }
        }

        /// Sends unique bodies (`s<sender>-<n>`) about every 5 ms until `stop`; a body is never
        /// sent twice, whatever the outcome.
        static func sender(_ sender: Int, api: QueueAPI, ledger: Ledger, stop: StopFlag) async {
            var n = 0
            while !stop.isSet {
                let body = "s\(sender)-\(n)"
                n += 1
                await ledger.attempt(body)
                do {
                    let (status, answer) = try await api.send(queue, body, timeout: .seconds(5))
                    if status == 201 {
                        await ledger.sendAcknowledged(body)
                    } else if status < 500 {
                        await ledger.violation("send of \(body) answered \(status): \(text(answer))")
                    }
                    try? await Task.sleep(for: .milliseconds(5))
                } catch {
                    await ledger.connectionError()
                    try? await Task.sleep(for: .milliseconds(20))
                }
            }
        }

        /// Receives batches of 10 with a 2 s visibility timeout and acknowledges about 70 % of
        /// the messages, leaving the rest to time out and come back.
        static func consumer(_ consumer: Int, seed: UInt64, api: QueueAPI, ledger: Ledger, stop: StopFlag) async {
            var random = SeededGenerator(seed: seed &+ UInt64(consumer) &+ 1)
            while !stop.isSet {
                let start = ContinuousClock.now
                let messages: [QueueAPI.Received]
                do {
                    let (status, received, answer) = try await api.receive(queue, batchSize: 10, visibilityTimeout: visibilityTimeout, timeout: .seconds(5))
                    guard status == 200 else {
                        if status < 500 { await ledger.violation("receive answered \(status): \(text(answer))") }
                        try? await Task.sleep(for: .milliseconds(20))
                        continue
                    }
                    messages = received
                } catch {
                    await ledger.connectionError()
                    try? await Task.sleep(for: .milliseconds(20))
                    continue
                }
                await ledger.received(messages, requestStart: start, answerEnd: .now)
                if messages.isEmpty {
                    try? await Task.sleep(for: .milliseconds(20))
                    continue
                }
                for message in messages where Int.random(in: 0..<10, using: &random) < 7 {
                    do {
                        let status = try await api.acknowledge(queue, message.receiptHandle, timeout: .seconds(5))
                        switch status {
                        case 204: await ledger.ackAcknowledged(message.body, at: .now)
                        case 410: break  // superseded by a later receive after the timeout: allowed
                        case 500...: await ledger.ackUncertain(message.body)
                        default: await ledger.violation("ack of \(message.body) answered \(status)")
                        }
                    } catch {
                        await ledger.connectionError()
                        await ledger.ackUncertain(message.body)
                    }
                }
            }
        }
    }
}
