import Foundation
public import CoreMetrics
public import Prometheus
import Synchronization
public import TernBroker
public import TernCore
public import TernStorage
#if canImport(Glibc)
import Glibc
#endif

/// The broker's metrics (BRIEF §6), recorded through swift-metrics and exported in the
/// Prometheus text format at `GET /metrics`.
///
/// Counters and histograms are updated as the broker works (``attach(broker:)``,
/// ``attach(storage:)``); gauges that describe state (depths, ages, storage use) are read from
/// LMDB when scraped (``collect()``), so they are never stale and cost nothing between scrapes.
/// Names carry their unit (`_seconds`, `_bytes`, `_total`); `docs/operations.md` lists them all.
///
/// ```swift
/// let registry = PrometheusCollectorRegistry()
/// let factory = TernMetrics.makeFactory(registry: registry)
/// MetricsSystem.bootstrap(factory)                        // executables only, once
/// let metrics = TernMetrics(registry: registry, factory: factory)
/// metrics.attach(broker: broker)
/// metrics.attach(storage: storage)
/// ```
///
/// The library bootstraps nothing: tests pass a factory over a registry of their own.
public final class TernMetrics: Sendable {
    /// The registry `GET /metrics` renders.
    public let registry: PrometheusCollectorRegistry
    let factory: any MetricsFactory

    private struct QueueCounters {
        var sent: CoreMetrics.Counter
        var sentBytes: CoreMetrics.Counter
        var received: CoreMetrics.Counter
        var acknowledged: CoreMetrics.Counter
        var deadLettered: CoreMetrics.Counter
        var expired: CoreMetrics.Counter
        var purged: CoreMetrics.Counter
        var redriven: CoreMetrics.Counter
        var timeInQueue: CoreMetrics.Timer
    }

    private struct QueueGauges {
        var ready: CoreMetrics.Gauge
        var inFlight: CoreMetrics.Gauge
        var delayed: CoreMetrics.Gauge
        var bytes: CoreMetrics.Gauge
        var oldestAge: CoreMetrics.Gauge

        func destroy() {
            for gauge in [ready, inFlight, delayed, bytes, oldestAge] { gauge.destroy() }
        }
    }

    private struct State {
        var queueCounters: [String: QueueCounters] = [:]
        /// Produced messages and bytes per "topic/partition".
        var topicCounters: [String: (messages: CoreMetrics.Counter, bytes: CoreMetrics.Counter)] = [:]
        var queueGauges: [String: QueueGauges] = [:]
        var errors: [String: CoreMetrics.Counter] = [:]
        var databaseGauges: [String: CoreMetrics.Gauge] = [:]
        /// Gauges of topic partitions and consumer groups, by name and labels, for removal when
        /// their topic or group disappears.
        var topicGauges: [String: CoreMetrics.Gauge] = [:]
        var brokers: [Broker] = []
        var storages: [Storage] = []
        var collectors: [@Sendable (TernMetrics) -> Void] = []
    }

    private let state = Mutex(State())
    private let openConnections = Atomic<Int>(0)
    private let openBinaryConnections = Atomic<Int>(0)

    // Storage
    private let commitDuration: CoreMetrics.Timer
    private let commitOperations: CoreMetrics.Recorder
    private let commitFailures: CoreMetrics.Counter

    /// Metric names (labels in comments), for documentation and tests.
    public enum Name {
        public static let queueSent = "tern_queue_messages_sent_total"  // queue
        public static let queueSentBytes = "tern_queue_sent_bytes_total"  // queue
        public static let queueReceived = "tern_queue_messages_received_total"  // queue
        public static let queueAcknowledged = "tern_queue_messages_acknowledged_total"  // queue
        public static let queueDeadLettered = "tern_queue_messages_dead_lettered_total"  // queue
        public static let queueExpired = "tern_queue_messages_expired_total"  // queue
        public static let queuePurged = "tern_queue_messages_purged_total"  // queue
        public static let queueRedriven = "tern_queue_messages_redriven_total"  // queue
        public static let queueTimeInQueue = "tern_queue_time_in_queue_seconds"  // queue (histogram)
        public static let queueMessages = "tern_queue_messages"  // queue, state = ready | in_flight | delayed
        public static let queueBytes = "tern_queue_bytes"  // queue
        public static let queueOldestAge = "tern_queue_oldest_message_age_seconds"  // queue
        public static let errors = "tern_errors_total"  // code
        public static let storageMapSize = "tern_storage_map_size_bytes"
        public static let storageUsed = "tern_storage_used_bytes"
        public static let storageFile = "tern_storage_allocated_bytes"
        public static let storageUsedRatio = "tern_storage_used_ratio"
        public static let storagePages = "tern_storage_pages"  // type = branch | leaf | overflow | free
        public static let storageEntries = "tern_storage_database_entries"  // database
        public static let storageReadersInUse = "tern_storage_readers_in_use"
        public static let storageReadersMax = "tern_storage_readers_max"
        public static let storageDurable = "tern_storage_durable"
        public static let storageLastTransaction = "tern_storage_last_transaction_id"
        public static let storageCommitDuration = "tern_storage_commit_duration_seconds"  // histogram
        public static let storageCommitOperations = "tern_storage_commit_batch_operations"  // histogram
        public static let storageCommitFailures = "tern_storage_commit_failures_total"
        public static let processResidentMemory = "tern_process_resident_memory_bytes"
        public static let processOpenFileDescriptors = "tern_process_open_fds"
        public static let httpOpenConnections = "tern_http_open_connections"
        public static let binaryOpenConnections = "tern_binary_open_connections"
        public static let topicProduced = "tern_topic_messages_produced_total"  // topic, partition
        public static let topicProducedBytes = "tern_topic_produced_bytes_total"  // topic, partition
        public static let topicHighWatermark = "tern_topic_partition_high_watermark"  // topic, partition
        public static let topicLogStart = "tern_topic_partition_log_start"  // topic, partition
        public static let topicBytes = "tern_topic_partition_bytes"  // topic, partition
        public static let groupCommitted = "tern_consumer_group_committed_offset"  // topic, group, partition
        public static let groupLag = "tern_consumer_group_lag"  // topic, group, partition
    }

    /// Histogram buckets of the time a message spends in its queue, from send to acknowledgement.
    public static let timeInQueueBuckets: [Duration] = [
        .milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(1), .seconds(5),
        .seconds(10), .seconds(30), .seconds(60), .seconds(300), .seconds(900), .seconds(3600), .seconds(21600),
        .seconds(86400),
    ]
    /// Histogram buckets of group-commit durations (transaction start to synced commit).
    public static let commitDurationBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .microseconds(2500),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .seconds(1),
    ]
    /// Histogram buckets of the operations per group commit.
    public static let commitOperationsBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]

    /// A swift-prometheus factory over `registry` with Tern's histogram buckets; bootstrap
    /// `MetricsSystem` with it (executables) or pass it to ``init(registry:factory:)`` (tests).
    public static func makeFactory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets[Name.queueTimeInQueue] = timeInQueueBuckets
        factory.durationHistogramBuckets[Name.storageCommitDuration] = commitDurationBuckets
        factory.valueHistogramBuckets[Name.storageCommitOperations] = commitOperationsBuckets
        return factory
    }

    /// Metrics rendered from `registry`, recorded through `factory` (which must write into
    /// `registry`; default: ``makeFactory(registry:)``).
    public init(registry: PrometheusCollectorRegistry, factory: (any MetricsFactory)? = nil) {
        self.registry = registry
        let factory = factory ?? Self.makeFactory(registry: registry)
        self.factory = factory
        commitDuration = CoreMetrics.Timer(label: Name.storageCommitDuration, dimensions: [], factory: factory)
        commitOperations = CoreMetrics.Recorder(label: Name.storageCommitOperations, dimensions: [], aggregate: true, factory: factory)
        commitFailures = CoreMetrics.Counter(label: Name.storageCommitFailures, dimensions: [], factory: factory)
    }

    // MARK: Sources

    /// Counts `broker`'s operations and reads its queues at each ``collect()``.
    public func attach(broker: Broker) {
        state.withLock { $0.brokers.append(broker) }
        broker.addObserver { [weak self] event in self?.record(event) }
    }

    /// Stops reading `broker` at each ``collect()`` (a queue group this node no longer holds);
    /// its queues' gauges go at the next scrape. Its events stop when it is released.
    public func detach(broker: Broker) {
        state.withLock { $0.brokers.removeAll { $0 === broker } }
    }

    /// Records `storage`'s commits and reads its environment at each ``collect()``.
    public func attach(storage: Storage) {
        state.withLock { $0.storages.append(storage) }
        storage.setCommitObserver { [weak self] report in
            guard let self else { return }
            if report.committed {
                self.commitDuration.recordNanoseconds(Int64(report.duration.components.seconds) * 1_000_000_000
                    + report.duration.components.attoseconds / 1_000_000_000)
                self.commitOperations.record(report.operations)
            } else {
                self.commitFailures.increment()
            }
        }
    }

    /// Adds `collector`, run at each ``collect()`` (topics, alerts and other sources register
    /// their gauges this way).
    public func addCollector(_ collector: @escaping @Sendable (TernMetrics) -> Void) {
        state.withLock { $0.collectors.append(collector) }
    }

    /// Counts a failed request by its stable error code (HTTP and binary protocol).
    public func recordError(_ code: ErrorCode) {
        let counter = state.withLock { state in
            if let counter = state.errors[code.name] { return counter }
            let counter = CoreMetrics.Counter(label: Name.errors, dimensions: [("code", code.name)], factory: factory)
            state.errors[code.name] = counter
            return counter
        }
        counter.increment()
    }

    /// A client connection of the HTTP or the binary listener opened (+1) or closed (−1).
    func connectionsChanged(by delta: Int, binary: Bool = false) {
        if binary {
            openBinaryConnections.add(delta, ordering: .relaxed)
        } else {
            openConnections.add(delta, ordering: .relaxed)
        }
    }

    /// A gauge through this instance's factory (for collectors).
    public func gauge(_ label: String, _ dimensions: [(String, String)] = []) -> CoreMetrics.Gauge {
        CoreMetrics.Gauge(label: label, dimensions: dimensions, factory: factory)
    }

    // MARK: Events

    private func counters(_ queue: QueueName) -> QueueCounters {
        state.withLock { state in
            if let counters = state.queueCounters[queue.rawValue] { return counters }
            let labels = [("queue", queue.rawValue)]
            let counters = QueueCounters(
                sent: .init(label: Name.queueSent, dimensions: labels, factory: factory),
                sentBytes: .init(label: Name.queueSentBytes, dimensions: labels, factory: factory),
                received: .init(label: Name.queueReceived, dimensions: labels, factory: factory),
                acknowledged: .init(label: Name.queueAcknowledged, dimensions: labels, factory: factory),
                deadLettered: .init(label: Name.queueDeadLettered, dimensions: labels, factory: factory),
                expired: .init(label: Name.queueExpired, dimensions: labels, factory: factory),
                purged: .init(label: Name.queuePurged, dimensions: labels, factory: factory),
                redriven: .init(label: Name.queueRedriven, dimensions: labels, factory: factory),
                timeInQueue: .init(label: Name.queueTimeInQueue, dimensions: labels, factory: factory))
            state.queueCounters[queue.rawValue] = counters
            return counters
        }
    }

    func record(_ event: BrokerEvent) {
        switch event {
        case .sent(let queue, let count, let bytes):
            let c = counters(queue)
            c.sent.increment(by: Int64(count))
            c.sentBytes.increment(by: Int64(bytes))
        case .received(let queue, let count, _):
            counters(queue).received.increment(by: Int64(count))
        case .acknowledged(let queue, let seconds):
            let c = counters(queue)
            c.acknowledged.increment(by: Int64(seconds.count))
            for value in seconds { c.timeInQueue.recordNanoseconds(Int64((value * 1e9).rounded())) }
        case .deadLettered(let queue, let count):
            counters(queue).deadLettered.increment(by: Int64(count))
        case .expired(let queue, let count):
            counters(queue).expired.increment(by: Int64(count))
        case .purged(let queue, let count):
            counters(queue).purged.increment(by: Int64(count))
        case .redriven(let queue, let count):
            counters(queue).redriven.increment(by: Int64(count))
        case .produced(let topic, let partition, let count, let bytes):
            let key = "\(topic.rawValue)/\(partition)"
            let counters = state.withLock { state in
                if let counters = state.topicCounters[key] { return counters }
                let labels = [("topic", topic.rawValue), ("partition", String(partition))]
                let counters = (messages: CoreMetrics.Counter(label: Name.topicProduced, dimensions: labels, factory: factory),
                                bytes: CoreMetrics.Counter(label: Name.topicProducedBytes, dimensions: labels, factory: factory))
                state.topicCounters[key] = counters
                return counters
            }
            counters.messages.increment(by: Int64(count))
            counters.bytes.increment(by: Int64(bytes))
        }
    }

    // MARK: Scrape

    /// Reads the current state (queue depths and ages, storage use, process figures) into the
    /// gauges and runs the registered collectors. `GET /metrics` calls it before rendering.
    public func collect() {
        let (brokers, storages, collectors) = state.withLock { ($0.brokers, $0.storages, $0.collectors) }
        // Every broker's queues and topics at once: a node with queue groups holds several.
        collectQueues(brokers)
        collectTopics(brokers)
        for storage in storages { collectStorage(storage) }
        gauge(Name.httpOpenConnections).record(openConnections.load(ordering: .relaxed))
        gauge(Name.binaryOpenConnections).record(openBinaryConnections.load(ordering: .relaxed))
        collectProcess()
        for collector in collectors { collector(self) }
    }

    /// ``collect()``, then the registry in the Prometheus text format (version 0.0.4).
    public func render() -> [UInt8] {
        collect()
        return registry.emitToBuffer()
    }

    private func collectQueues(_ brokers: [Broker]) {
        var figures = [Broker.QueueFigures]()
        var now = Timestamp(milliseconds: 0)
        for broker in brokers {
            guard let found = try? broker.queueFigures() else { continue }
            figures += found
            now = max(now, broker.clock.now)
        }
        let live = Set(figures.map(\.name.rawValue))
        let stale: [QueueGauges] = state.withLock { state in
            let gone = state.queueGauges.keys.filter { !live.contains($0) }
            return gone.compactMap { state.queueGauges.removeValue(forKey: $0) }
        }
        for gauges in stale { gauges.destroy() }
        for queue in figures {
            let gauges = state.withLock { state in
                if let gauges = state.queueGauges[queue.name.rawValue] { return gauges }
                let name = queue.name.rawValue
                let gauges = QueueGauges(
                    ready: gauge(Name.queueMessages, [("queue", name), ("state", "ready")]),
                    inFlight: gauge(Name.queueMessages, [("queue", name), ("state", "in_flight")]),
                    delayed: gauge(Name.queueMessages, [("queue", name), ("state", "delayed")]),
                    bytes: gauge(Name.queueBytes, [("queue", name)]),
                    oldestAge: gauge(Name.queueOldestAge, [("queue", name)]))
                state.queueGauges[name] = gauges
                return gauges
            }
            gauges.ready.record(Int64(queue.counts.ready))
            gauges.inFlight.record(Int64(queue.counts.inFlight))
            gauges.delayed.record(Int64(queue.counts.delayed))
            gauges.bytes.record(Int64(queue.counts.bytes))
            gauges.oldestAge.record(queue.oldestReadySentAt.map { max(0, $0.seconds(until: now)) } ?? 0)
        }
    }

    private func collectTopics(_ brokers: [Broker]) {
        var values = [String: (String, [(String, String)], Double)]()
        func put(_ name: String, _ labels: [(String, String)], _ value: Double) {
            values[name + "|" + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")] = (name, labels, value)
        }
        for broker in brokers {
            guard let figures = try? broker.topicFigures() else { continue }
            for p in figures.partitions {
                let labels = [("topic", p.topic.rawValue), ("partition", String(p.partition))]
                put(Name.topicHighWatermark, labels, Double(p.highWatermark))
                put(Name.topicLogStart, labels, Double(p.logStart))
                put(Name.topicBytes, labels, Double(p.bytes))
            }
            for g in figures.groups {
                let labels = [("topic", g.topic.rawValue), ("group", g.group), ("partition", String(g.partition))]
                if let committed = g.committed { put(Name.groupCommitted, labels, Double(committed)) }
                put(Name.groupLag, labels, Double(g.lag))
            }
        }
        let (gauges, stale): ([String: CoreMetrics.Gauge], [CoreMetrics.Gauge]) = state.withLock { state in
            var stale = [CoreMetrics.Gauge]()
            for key in state.topicGauges.keys where values[key] == nil { stale.append(state.topicGauges.removeValue(forKey: key)!) }
            for (key, value) in values where state.topicGauges[key] == nil {
                state.topicGauges[key] = gauge(value.0, value.1)
            }
            return (state.topicGauges, stale)
        }
        for gauge in stale { gauge.destroy() }
        for (key, value) in values { gauges[key]?.record(value.2) }
    }

    private func collectStorage(_ storage: Storage) {
        guard let info = try? storage.info() else { return }
        gauge(Name.storageMapSize).record(Int64(info.mapSize))
        gauge(Name.storageUsed).record(Int64(info.usedBytes))
        gauge(Name.storageFile).record(Int64((info.lastPage + 1) * info.pageSize))
        gauge(Name.storageUsedRatio).record(Double(info.usedBytes) / Double(max(info.mapSize, 1)))
        gauge(Name.storageReadersInUse).record(Int64(info.readersInUse))
        gauge(Name.storageReadersMax).record(Int64(info.maxReaders))
        gauge(Name.storageDurable).record(Int64(storage.settings.durable ? 1 : 0))
        gauge(Name.storageLastTransaction).record(Int64(info.lastTransactionID))
        var branch = 0, leaf = 0, overflow = 0
        if let names = try? storage.namedDatabases() {
            let statistics: [(String, DatabaseStatistics)] = (try? storage.read { txn in
                try names.filter(storage.hasDatabase).map { ($0, try txn.statistics(storage.database($0))) }
            }) ?? []
            for (name, stat) in statistics {
                branch += stat.branchPages
                leaf += stat.leafPages
                overflow += stat.overflowPages
                gauge(Name.storageEntries, [("database", name)]).record(Int64(stat.entries))
            }
        }
        if let main = try? storage.mainStatistics() {
            branch += main.branchPages
            leaf += main.leafPages
            overflow += main.overflowPages
        }
        gauge(Name.storagePages, [("type", "branch")]).record(Int64(branch))
        gauge(Name.storagePages, [("type", "leaf")]).record(Int64(leaf))
        gauge(Name.storagePages, [("type", "overflow")]).record(Int64(overflow))
        gauge(Name.storagePages, [("type", "free")]).record(Int64(info.freePages))
    }

    private func collectProcess() {
        #if os(Linux)
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) {
            let fields = statm.split(separator: " ")
            if fields.count > 1, let pages = Int(fields[1]) {
                gauge(Name.processResidentMemory).record(Int64(pages * Int(sysconf(Int32(_SC_PAGESIZE)))))
            }
        }
        if let descriptors = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            gauge(Name.processOpenFileDescriptors).record(Int64(descriptors.count))
        }
        #endif
    }
}
