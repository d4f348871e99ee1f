import CoreMetrics
public import Logging
public import ServiceLifecycle
import Synchronization
public import TernBroker
public import TernCore
public import TernStorage

/// The shell of ``Alerts/Instance``: samples the broker every `interval` by the injected clock,
/// logs alerts that fire (`warning`) and resolve (`info`) with structured metadata, exports
/// `tern_alert_firing{alert, subject} 1` while an alert fires, and answers `GET /alerts`.
public final class AlertMonitor: Service, Sendable {
    public let broker: Broker
    public let storage: Storage
    let metrics: TernMetrics?
    let logger: Logger
    let clock: any TernClock
    /// Time between evaluations.
    public let interval: Duration
    private let instance: Mutex<Alerts.Instance>
    private let gauges = Mutex<[String: CoreMetricsGaugeBox]>([:])
    private let lagSources = Mutex<[@Sendable () -> [Alerts.Sample.GroupLag]]>([])

    /// - Parameters:
    ///   - interval: time between evaluations by `clock`. Default 10 s.
    ///   - metrics: where `tern_alert_firing` is exported; nil exports nothing.
    public init(rules: [Alerts.Rule], broker: Broker, storage: Storage, metrics: TernMetrics?, clock: any TernClock,
                interval: Duration = .seconds(10), logger: Logger) {
        self.broker = broker
        self.storage = storage
        self.metrics = metrics
        self.clock = clock
        self.interval = interval
        self.logger = logger
        self.instance = Mutex(Alerts.Instance(rules: rules))
    }

    /// The rules evaluated.
    public var rules: [Alerts.Rule] { instance.withLock { $0.rules } }

    /// The alerts firing now.
    public var firing: [Alerts.Alert] { instance.withLock { $0.firing } }

    /// Adds a source of consumer-group lags (topics register one).
    public func addGroupLagSource(_ source: @escaping @Sendable () -> [Alerts.Sample.GroupLag]) {
        lagSources.withLock { $0.append(source) }
    }

    /// The broker's figures now.
    public func sample() -> Alerts.Sample {
        let now = clock.now
        let queues = ((try? broker.queueFigures()) ?? []).map { figures in
            Alerts.Sample.Queue(name: figures.name.rawValue, depth: figures.counts.total,
                                oldestMessageAge: figures.oldestReadySentAt.map { max(0, $0.seconds(until: now)) },
                                isDeadLetterQueue: figures.isDeadLetterQueue)
        }
        var lags = lagSources.withLock { $0 }.flatMap { $0() }
        if let groups = try? broker.topicFigures().groups {
            var total = [String: Alerts.Sample.GroupLag]()
            for g in groups {
                let key = g.topic.rawValue + "/" + g.group
                total[key, default: .init(topic: g.topic.rawValue, group: g.group, lag: 0)].lag += g.lag
            }
            lags += total.keys.sorted().map { total[$0]! }
        }
        let used = (try? storage.info()).map { Double($0.usedBytes) / Double(max($0.mapSize, 1)) * 100 }
        return Alerts.Sample(queues: queues, groupLags: lags, storageUsedPercent: used)
    }

    /// Takes a sample, evaluates the rules, and carries out the directives (logs, gauges).
    /// - Returns: the directives, for tests.
    @discardableResult
    public func evaluate() -> [Alerts.Directive] {
        guard !rules.isEmpty else { return [] }
        let sample = self.sample()
        let now = clock.now
        let directives = instance.withLock { $0.onSample(sample, at: now) }
        for directive in directives {
            switch directive {
            case .fire(let alert):
                logger.warning("alert firing", metadata: [
                    "tern.alert": "\(alert.name)", "tern.subject": "\(alert.subject)",
                    "tern.condition": "\(alert.condition)", "tern.value": "\(alert.value)",
                ])
                if let metrics {
                    let gauge = metrics.gauge("tern_alert_firing", [("alert", alert.name), ("subject", alert.subject)])
                    gauge.record(1)
                    gauges.withLock { $0[alert.name + "\u{0}" + alert.subject] = CoreMetricsGaugeBox(gauge: gauge) }
                }
            case .resolve(let alert, let value):
                logger.info("alert resolved", metadata: [
                    "tern.alert": "\(alert.name)", "tern.subject": "\(alert.subject)",
                    "tern.condition": "\(alert.condition)", "tern.value": "\(value)",
                    "tern.fired_at_ms": "\(alert.firedAt.milliseconds)",
                ])
                let box = gauges.withLock { $0.removeValue(forKey: alert.name + "\u{0}" + alert.subject) }
                box?.gauge.destroy()
            }
        }
        return directives
    }

    /// Evaluates every `interval` until graceful shutdown.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                self.evaluate()
                let milliseconds = self.interval.components.seconds * 1000 + self.interval.components.attoseconds / 1_000_000_000_000_000
                do {
                    try await self.clock.sleep(until: self.clock.now.adding(milliseconds: milliseconds))
                } catch {
                    return
                }
            }
        }
    }
}

struct CoreMetricsGaugeBox: Sendable {
    let gauge: CoreMetrics.Gauge
}
