import Foundation
import Logging
import Prometheus
import TernBroker
import TernCore
import TernServer
import TernStorage
import TernTestKit
import Testing

/// The pure state machine, driven sample by sample.
@Suite struct AlertsInstanceTests {
    static let t0 = Timestamp(milliseconds: 1_000_000)

    func queue(_ name: String, depth: UInt64, age: Double? = nil, dlq: Bool = false) -> Alerts.Sample.Queue {
        .init(name: name, depth: depth, oldestMessageAge: age, isDeadLetterQueue: dlq)
    }

    @Test func depthAbove_firesOnceAboveTheThreshold_andResolvesAtOrBelow() {
        var alerts = Alerts.Instance(rules: [.init(name: "backlog", condition: .depthAbove(10), pattern: NamePattern("orders*"))])
        #expect(alerts.onSample(.init(queues: [queue("orders", depth: 10), queue("other", depth: 99)]), at: Self.t0).isEmpty)
        let fired = alerts.onSample(.init(queues: [queue("orders", depth: 11)]), at: Self.t0.adding(seconds: 1))
        #expect(fired.count == 1)
        guard case .fire(let alert) = fired.first else { Issue.record("expected a fire, got \(fired)"); return }
        #expect(alert.name == "backlog" && alert.subject == "orders" && alert.value == 11)
        #expect(alerts.onSample(.init(queues: [queue("orders", depth: 50)]), at: Self.t0.adding(seconds: 2)).isEmpty, "fires once")
        #expect(alerts.firing.map(\.subject) == ["orders"])
        let resolved = alerts.onSample(.init(queues: [queue("orders", depth: 10)]), at: Self.t0.adding(seconds: 3))
        #expect(resolved == [.resolve(alert, value: 10)])
        #expect(alerts.firing.isEmpty)
    }

    @Test func holdFor_delaysFiring_andAnInterruptionRestartsTheWait() {
        var alerts = Alerts.Instance(rules: [.init(name: "old", condition: .oldestMessageAgeAbove(seconds: 60), holdFor: .seconds(30))])
        let old = Alerts.Sample(queues: [queue("q", depth: 1, age: 61)])
        #expect(alerts.onSample(old, at: Self.t0).isEmpty)
        #expect(alerts.onSample(old, at: Self.t0.adding(seconds: 29)).isEmpty)
        #expect(alerts.onSample(.init(queues: [queue("q", depth: 1, age: 5)]), at: Self.t0.adding(seconds: 29)).isEmpty)
        #expect(alerts.onSample(old, at: Self.t0.adding(seconds: 40)).isEmpty)
        #expect(alerts.onSample(old, at: Self.t0.adding(seconds: 70)).count == 1)
    }

    @Test func deadLetterQueueNotEmpty_watchesOnlyDeadLetterQueues() {
        var alerts = Alerts.Instance(rules: [.init(name: "dlq", condition: .deadLetterQueueNotEmpty)])
        let directives = alerts.onSample(.init(queues: [queue("work", depth: 5), queue("work-dlq", depth: 1, dlq: true)]), at: Self.t0)
        #expect(directives.count == 1)
        #expect(alerts.firing.map(\.subject) == ["work-dlq"])
        #expect(alerts.onSample(.init(queues: [queue("work-dlq", depth: 0, dlq: true)]), at: Self.t0).count == 1)
        #expect(alerts.firing.isEmpty)
    }

    @Test func lagAbove_andLagGrowing_fireAndResolve() {
        var alerts = Alerts.Instance(rules: [
            .init(name: "lag", condition: .lagAbove(100), pattern: NamePattern("clicks")),
            .init(name: "growing", condition: .lagGrowing(seconds: 60)),
        ])
        func lag(_ n: UInt64) -> Alerts.Sample { .init(groupLags: [.init(topic: "clicks", group: "g", lag: n)]) }
        #expect(alerts.onSample(lag(10), at: Self.t0).isEmpty)
        #expect(alerts.onSample(lag(20), at: Self.t0.adding(seconds: 30)).isEmpty)
        #expect(alerts.onSample(lag(20), at: Self.t0.adding(seconds: 60)).isEmpty, "a plateau keeps the growth running")
        let growing = alerts.onSample(lag(30), at: Self.t0.adding(seconds: 90))
        #expect(growing.map { if case .fire(let a) = $0 { a.name } else { "" } } == ["growing"])
        let both = alerts.onSample(lag(101), at: Self.t0.adding(seconds: 100))
        #expect(both.count == 1)
        #expect(Set(alerts.firing.map(\.name)) == ["lag", "growing"])
        #expect(alerts.firing.allSatisfy { $0.subject == "clicks/g" })
        #expect(alerts.onSample(lag(50), at: Self.t0.adding(seconds: 110)).count == 2, "lag fell: both resolve")
        #expect(alerts.firing.isEmpty)
    }

    @Test func storageAbove_usesThePercentOfTheMap() {
        var alerts = Alerts.Instance(rules: [.init(name: "disk", condition: .storageAbove(percent: 80))])
        #expect(alerts.onSample(.init(storageUsedPercent: 80), at: Self.t0).isEmpty)
        #expect(alerts.onSample(.init(storageUsedPercent: 80.5), at: Self.t0).count == 1)
        #expect(alerts.firing.first?.subject == "storage")
        #expect(alerts.onSample(.init(storageUsedPercent: 10), at: Self.t0).count == 1)
    }

    @Test func deletedQueue_resolvesItsAlert() {
        var alerts = Alerts.Instance(rules: [.init(name: "backlog", condition: .depthAbove(0))])
        #expect(alerts.onSample(.init(queues: [queue("gone", depth: 3)]), at: Self.t0).count == 1)
        let directives = alerts.onSample(.init(queues: []), at: Self.t0)
        #expect(directives.count == 1)
        if case .resolve(let alert, _) = directives.first { #expect(alert.subject == "gone") } else { Issue.record("\(directives)") }
    }
}

/// The shell on a real broker with a manual clock: logs, `tern_alert_firing`, `GET /alerts`.
@Suite struct AlertMonitorTests {
    @Test func eachQueueAlert_firesAndResolves_withLogsMetricAndList() async throws {
        let f = try await ServerFixture()
        let capture = LogCapture()
        let metrics = TernMetrics(registry: PrometheusCollectorRegistry())
        let monitor = AlertMonitor(
            rules: [
                .init(name: "backlog", condition: .depthAbove(2), pattern: NamePattern("jobs")),
                .init(name: "stale", condition: .oldestMessageAgeAbove(seconds: 60), pattern: NamePattern("jobs")),
                .init(name: "dead-letters", condition: .deadLetterQueueNotEmpty),
                .init(name: "disk", condition: .storageAbove(percent: 90)),
            ],
            broker: f.broker, storage: f.storage, metrics: metrics, clock: f.clock, logger: capture.logger)
        try await withMetricsServer(f, alerts: monitor, metrics: metrics) { api, _ in
            try await api.createQueue("jobs-dlq")
            try await api.createQueue("jobs", #"{"max_receive_count": 1, "dead_letter_queue": "jobs-dlq"}"#)
            for n in 1...3 { try await api.send("jobs", "job \(n)") }
            #expect(monitor.evaluate().count == 1, "backlog fires (3 > 2)")
            f.clock.advance(bySeconds: 61)
            #expect(monitor.evaluate().count == 1, "stale fires")
            var m = try await api.metrics()
            #expect(m[#"tern_alert_firing{alert="backlog",subject="jobs"}"#] == 1)
            #expect(m[#"tern_alert_firing{alert="stale",subject="jobs"}"#] == 1)
            let listed = try await api.request(.get, "/alerts")
            #expect(listed.status == 200)
            let alerts = try #require(try listed.object()["alerts"] as? [[String: Any]])
            #expect(alerts.map { $0["name"] as? String } == ["backlog", "stale"])
            #expect(alerts.first?["value"] as? Double == 3)

            // One message is received and dead-lettered; the other two are acknowledged.
            let received = try await api.receive("jobs", "batch_size=3&visibility_timeout=1")
            #expect(received.count == 3)
            for message in received.prefix(2) { _ = try await api.acknowledge("jobs", message.receiptHandle) }
            f.clock.advance(bySeconds: 2)
            _ = try await f.broker.runDueWork()
            let changes = monitor.evaluate()
            #expect(changes.count == 3, "backlog and stale resolve, dead-letters fires: \(changes)")
            #expect(monitor.firing.map(\.name) == ["dead-letters"])
            m = try await api.metrics()
            #expect(m[#"tern_alert_firing{alert="backlog",subject="jobs"}"#] == nil)
            #expect(m[#"tern_alert_firing{alert="dead-letters",subject="jobs-dlq"}"#] == 1)

            #expect(try await api.request(.post, "/queues/jobs-dlq/purge").status == 200)
            #expect(monitor.evaluate().count == 1)
            #expect(monitor.firing.isEmpty)
        }
        let records = capture.records
        let fired = records.filter { $0.message == "alert firing" }
        let resolved = records.filter { $0.message == "alert resolved" }
        #expect(fired.map(\.level) == [.warning, .warning, .warning])
        #expect(resolved.map(\.level) == [.info, .info, .info])
        #expect(fired.map { $0.metadata["tern.alert"] } == ["backlog", "stale", "dead-letters"])
        #expect(fired.first?.metadata["tern.subject"] == "jobs")
        #expect(fired.first?.metadata["tern.value"] == "3.0")
    }

    @Test func storageAlert_firesWhenTheMapFillsPastThePercent_andResolvesWhenSpaceIsFreed() async throws {
        let f = try await ServerFixture()
        func usedPercent() throws -> Double {
            let info = try f.storage.info()
            return Double(info.usedBytes) / Double(info.mapSize) * 100
        }
        let baseline = try usedPercent()
        try await f.broker.createOrUpdateQueue(try QueueName("big"), patch: .init())
        _ = try await f.broker.send(try QueueName("big"), (0..<200).map { _ in OutgoingMessage(body: Array(repeating: 65, count: 8000)) })
        let filled = try usedPercent()
        #expect(filled > baseline)
        let threshold = (baseline + filled) / 2
        let monitor = AlertMonitor(rules: [.init(name: "disk", condition: .storageAbove(percent: threshold))],
                                   broker: f.broker, storage: f.storage, metrics: nil, clock: f.clock, logger: LogCapture().logger)
        #expect(monitor.evaluate().count == 1)
        #expect(monitor.firing.first?.subject == "storage")
        _ = try await f.broker.purgeQueue(try QueueName("big"))
        while try await f.broker.runDueWork().more {}   // the purge's records are swept by due work (decision 112)
        #expect(try usedPercent() < threshold, "freed pages are on LMDB's free list")
        #expect(monitor.evaluate().count == 1)
        #expect(monitor.firing.isEmpty)
    }

    /// The service loop evaluates at each interval of the injected clock.
    @Test func run_evaluatesEveryInterval_byTheInjectedClock() async throws {
        let f = try await ServerFixture()
        let monitor = AlertMonitor(rules: [.init(name: "backlog", condition: .depthAbove(0))], broker: f.broker, storage: f.storage,
                                   metrics: nil, clock: f.clock, interval: .seconds(10), logger: LogCapture().logger)
        let task = Task { try await monitor.run() }
        await f.clock.waitForSleepers(count: 1)
        try await f.broker.createOrUpdateQueue(try QueueName("q"), patch: .init())
        _ = try await f.broker.send(try QueueName("q"), [OutgoingMessage(body: [1])])
        #expect(monitor.firing.isEmpty, "not evaluated before the interval passes")
        f.clock.advance(bySeconds: 10)
        while monitor.firing.isEmpty { await Task.yield() }
        #expect(monitor.firing.map(\.subject) == ["q"])
        task.cancel()
        _ = try? await task.value
    }
}

/// Collects log records in memory.
final class LogCapture: @unchecked Sendable {
    struct Record: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let lock = NSLock()
    private var stored: [Record] = []

    var records: [Record] { lock.withLock { stored } }

    var logger: Logger {
        Logger(label: "capture") { _ in Handler(capture: self) }
    }

    func append(_ record: Record) { lock.withLock { stored.append(record) } }

    struct Handler: LogHandler {
        let capture: LogCapture
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String,
                 file: String, function: String, line: UInt) {
            var all = [String: String]()
            for (key, value) in metadata.merging(explicit ?? [:], uniquingKeysWith: { $1 }) { all[key] = "\(value)" }
            capture.append(Record(level: level, message: message.description, metadata: all))
        }
    }
}
