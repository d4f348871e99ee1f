import Foundation
import Hummingbird
import HummingbirdTesting
import Prometheus
import TernBroker
import TernCore
import TernServer
import TernStorage
import TernTestKit
import Testing

/// The Prometheus text of `GET /metrics`, parsed into `series → value` where a series is the
/// metric name with its labels as printed (`tern_queue_messages{queue="q",state="ready"}`).
struct Exposition {
    var values: [String: Double] = [:]
    var text: String

    init(_ text: String) {
        self.text = text
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            values[String(line[..<space])] = value
        }
    }

    subscript(_ series: String) -> Double? { values[series] }

    /// Every series of metric `name` (with any labels).
    func series(_ name: String) -> [String: Double] {
        values.filter { $0.key == name || $0.key.hasPrefix(name + "{") }
    }
}

/// A server fixture with metrics on a registry of its own (the global `MetricsSystem` is never
/// touched, so tests run side by side).
func withMetricsServer(_ f: ServerFixture, alerts: AlertMonitor? = nil, metrics: TernMetrics? = nil,
                       _ body: @Sendable (API, TernMetrics) async throws -> Void) async throws {
    let metrics = metrics ?? TernMetrics(registry: PrometheusCollectorRegistry())
    metrics.attach(broker: f.broker)
    metrics.attach(storage: f.storage)
    let operations = HTTPAPI.Operations(metrics: metrics, alerts: alerts)
    let app = Application(router: HTTPAPI.router(broker: f.broker, settings: f.settings, operations: operations),
                          logger: ServerFixture.logger)
    try await app.test(.router) { client in try await body(API(client: client), metrics) }
}

extension API {
    func metrics(sourceLocation: SourceLocation = #_sourceLocation) async throws -> Exposition {
        let reply = try await request(.get, "/metrics")
        try #require(reply.status == 200, "GET /metrics: \(reply)", sourceLocation: sourceLocation)
        #expect(reply.contentType?.hasPrefix("text/plain; version=0.0.4") == true, sourceLocation: sourceLocation)
        return Exposition(reply.text)
    }
}

@Suite struct MetricsTests {
    /// Known traffic on a manual clock, then every per-queue figure checked exactly.
    @Test func knownTraffic_isExportedWithExactValues() async throws {
        let f = try await ServerFixture()
        try await withMetricsServer(f) { api, _ in
            try await api.createQueue("orders-dlq")
            try await api.createQueue("orders", #"{"max_receive_count": 1, "dead_letter_queue": "orders-dlq", "visibility_timeout": 30}"#)
            try await api.createQueue("short", #"{"retention": 60}"#)
            let start = f.clock.now
            for n in 1...5 { try await api.send("orders", "m\(n)") }  // 5 × 2 bytes
            try await api.send("short", "gone")

            f.clock.advance(bySeconds: 10)
            let received = try await api.receive("orders", "batch_size=3")
            #expect(received.count == 3)
            for message in received.prefix(2) {
                #expect(try await api.acknowledge("orders", message.receiptHandle).status == 204)
            }
            // The third delivery times out; with max_receive_count 1 it is dead-lettered. The
            // message in "short" passes its 60 s retention.
            f.clock.advance(bySeconds: 61)
            _ = try await f.broker.runDueWork()
            try await api.send("orders", "later", delay: 100)
            expectError(try await api.request(.get, "/queues/missing/messages"), .queueNotFound)
            expectError(try await api.request(.get, "/queues/bad%20name"), .invalidName)

            let m = try await api.metrics()
            let q = #"{queue="orders"}"#
            #expect(m["tern_queue_messages_sent_total\(q)"] == 6)
            #expect(m["tern_queue_sent_bytes_total\(q)"] == 15)
            #expect(m["tern_queue_messages_received_total\(q)"] == 3)
            #expect(m["tern_queue_messages_acknowledged_total\(q)"] == 2)
            #expect(m["tern_queue_messages_dead_lettered_total\(q)"] == 1)
            #expect(m[#"tern_queue_messages_expired_total{queue="short"}"#] == 1)
            #expect(m[#"tern_queue_messages{queue="orders",state="ready"}"#] == 2)
            #expect(m[#"tern_queue_messages{queue="orders",state="in_flight"}"#] == 0)
            #expect(m[#"tern_queue_messages{queue="orders",state="delayed"}"#] == 1)
            #expect(m[#"tern_queue_messages{queue="orders-dlq",state="ready"}"#] == 1)
            #expect(m[#"tern_queue_messages{queue="short",state="ready"}"#] == 0)
            #expect(m["tern_queue_bytes\(q)"] == 9)  // m4, m5 and "later"
            // The oldest ready message (m4) was sent at the start; 71 s have passed.
            #expect(m["tern_queue_oldest_message_age_seconds\(q)"] == start.seconds(until: f.clock.now))
            #expect(m["tern_queue_oldest_message_age_seconds\(q)"] == 71)
            #expect(m[#"tern_queue_oldest_message_age_seconds{queue="short"}"#] == 0)
            // Two acknowledgements, each 10 s after its send.
            #expect(m["tern_queue_time_in_queue_seconds_count\(q)"] == 2)
            #expect(m["tern_queue_time_in_queue_seconds_sum\(q)"] == 20)
            #expect(m[#"tern_queue_time_in_queue_seconds_bucket{queue="orders",le="5.0"}"#] == 0)
            #expect(m[#"tern_queue_time_in_queue_seconds_bucket{queue="orders",le="10.0"}"#] == 2)
            #expect(m[#"tern_errors_total{code="QueueNotFound"}"#] == 1)
            #expect(m[#"tern_errors_total{code="InvalidName"}"#] == 1)
        }
    }

    /// Storage figures come from LMDB itself; every commit of a sequential client carries one operation.
    @Test func storageFigures_matchTheEnvironment() async throws {
        let f = try await ServerFixture()
        try await withMetricsServer(f) { api, _ in
            try await api.createQueue("q")
            for n in 1...4 { try await api.send("q", "message \(n)") }
            let m = try await api.metrics()
            let info = try f.storage.info()
            #expect(m["tern_storage_map_size_bytes"] == Double(256 << 20))
            #expect(m["tern_storage_durable"] == 0)
            #expect(m["tern_storage_readers_max"] == Double(info.maxReaders))
            #expect(m["tern_storage_used_bytes"] == Double(info.usedBytes))
            #expect(m[#"tern_storage_pages{type="free"}"#] == Double(info.freePages))
            #expect(m[#"tern_storage_database_entries{database="messages"}"#] == 4)
            #expect(m[#"tern_storage_database_entries{database="bodies"}"#] == 4)
            #expect(m[#"tern_storage_database_entries{database="ready"}"#] == 4)
            // One create and four sends, each its own group commit of one operation.
            #expect(m["tern_storage_commit_batch_operations_count"] == 5)
            #expect(m["tern_storage_commit_batch_operations_sum"] == 5)
            #expect(m["tern_storage_commit_duration_seconds_count"] == 5)
            #expect(m["tern_storage_commit_failures_total"] == 0)
            #expect((m["tern_process_resident_memory_bytes"] ?? 0) > 0)
            #expect(m["tern_http_open_connections"] == 0)  // the in-process router has no connections
        }
    }

    @Test func deletedQueue_disappearsFromTheGauges() async throws {
        let f = try await ServerFixture()
        try await withMetricsServer(f) { api, _ in
            try await api.createQueue("kept")
            try await api.createQueue("dropped")
            try await api.send("dropped", "x")
            #expect(try await api.metrics()[#"tern_queue_messages{queue="dropped",state="ready"}"#] == 1)
            #expect(try await api.request(.delete, "/queues/dropped").status == 204)
            let m = try await api.metrics()
            #expect(m.values.keys.filter { $0.hasPrefix("tern_queue_messages{") && $0.contains(#"queue="dropped""#) }.isEmpty)
            #expect(m[#"tern_queue_messages{queue="kept",state="ready"}"#] == 0)
            // Counters stay (Prometheus counters never go back).
            #expect(m[#"tern_queue_messages_sent_total{queue="dropped"}"#] == 1)
        }
    }

    @Test func purgeAndRedrive_areCounted() async throws {
        let f = try await ServerFixture()
        try await withMetricsServer(f) { api, _ in
            try await api.createQueue("dlq")
            try await api.createQueue("src", #"{"max_receive_count": 1, "dead_letter_queue": "dlq"}"#)
            try await api.send("src", "a")
            try await api.send("src", "b")
            _ = try await api.receive("src", "batch_size=2&visibility_timeout=0")
            _ = try await api.receive("src", "batch_size=2")  // catch-up inside receive dead-letters both
            #expect(try await api.request(.post, "/queues/dlq/redrive").status == 200)
            #expect(try await api.request(.post, "/queues/src/purge").status == 200)
            let m = try await api.metrics()
            #expect(m[#"tern_queue_messages_dead_lettered_total{queue="src"}"#] == 2)
            #expect(m[#"tern_queue_messages_redriven_total{queue="dlq"}"#] == 2)
            #expect(m[#"tern_queue_messages_purged_total{queue="src"}"#] == 2)
            #expect(m[#"tern_queue_messages{queue="src",state="ready"}"#] == 0)
        }
    }

    @Test func autoAcknowledgedReceive_countsAsAcknowledged() async throws {
        let f = try await ServerFixture()
        try await withMetricsServer(f) { api, _ in
            try await api.createQueue("q")
            try await api.send("q", "a")
            f.clock.advance(bySeconds: 3)
            #expect(try await api.receive("q", "auto_ack=true").count == 1)
            let m = try await api.metrics()
            #expect(m[#"tern_queue_messages_received_total{queue="q"}"#] == 1)
            #expect(m[#"tern_queue_messages_acknowledged_total{queue="q"}"#] == 1)
            #expect(m[#"tern_queue_time_in_queue_seconds_sum{queue="q"}"#] == 3)
        }
    }

    /// Idempotent and transactional sends and transactional acknowledgements count like the
    /// plain ones (they take other paths through the broker).
    @Test func idempotentAndTransactionalTraffic_isCounted() async throws {
        let f = try await ServerFixture()
        try await withMetricsServer(f) { api, _ in
            try await api.createQueue("in")
            try await api.createQueue("out")
            let producer = try await f.broker.initProducer(transactionalID: "upper")
            _ = try await f.broker.send(try QueueName("in"), [OutgoingMessage(body: Array("abc".utf8))],
                                        producer: ProducerStamp(producer: producer, firstSequence: 0))
            f.clock.advance(bySeconds: 4)
            let message = try #require(try await api.receive("in").first)
            var transaction = ProducerTransaction(producer: producer, sequence: 1)
            transaction.acknowledge(try QueueName("in"), receiptHandle: message.receiptHandle)
            transaction.send(try QueueName("out"), [OutgoingMessage(body: Array("ABC".utf8)), OutgoingMessage(body: Array("!".utf8))])
            _ = try await f.broker.commit(transaction)
            _ = try await f.broker.commit(transaction)  // a retry: applied once, counted once
            let m = try await api.metrics()
            #expect(m[#"tern_queue_messages_sent_total{queue="in"}"#] == 1)
            #expect(m[#"tern_queue_sent_bytes_total{queue="in"}"#] == 3)
            #expect(m[#"tern_queue_messages_acknowledged_total{queue="in"}"#] == 1)
            #expect(m[#"tern_queue_time_in_queue_seconds_sum{queue="in"}"#] == 4)
            #expect(m[#"tern_queue_messages_sent_total{queue="out"}"#] == 2)
            #expect(m[#"tern_queue_sent_bytes_total{queue="out"}"#] == 4)
        }
    }

    @Test func topicProduce_countsMessagesAndBytesPerPartition() async throws {
        let f = try await ServerFixture()
        try await withMetricsServer(f) { api, _ in
            _ = try await api.json(.put, "/topics/clicks", #"{"partitions": 2}"#, expect: 201)
            _ = try await api.json(.post, "/topics/clicks/messages", #"""
                {"messages": [{"value": "v0", "partition": 0}, {"key": "k", "value": "v1", "partition": 1},
                              {"value": "v2", "partition": 0}, {"value": "v3", "partition": 0}]}
                """#, expect: 201)
            let m = try await api.metrics()
            #expect(m[#"tern_topic_messages_produced_total{topic="clicks",partition="0"}"#] == 3)
            #expect(m[#"tern_topic_messages_produced_total{topic="clicks",partition="1"}"#] == 1)
            #expect(m[#"tern_topic_produced_bytes_total{topic="clicks",partition="0"}"#] == 6)
            #expect(m[#"tern_topic_produced_bytes_total{topic="clicks",partition="1"}"#] == 3, "key and value")
        }
    }

    /// Topic partitions and consumer-group positions, and the lag alert fed from them.
    @Test func topicsAndGroups_exportHighWatermarksAndLag() async throws {
        let f = try await ServerFixture()
        let topic = try QueueName("clicks"), group = try QueueName("g1")
        var patch = TopicAttributes.Patch()
        patch.partitions = 2
        _ = try await f.broker.createOrUpdateTopic(topic, patch: patch)
        _ = try await f.broker.produce(topic, (0..<7).map { TopicMessage(key: nil, value: Array("v\($0)".utf8), partition: $0 % 2) })
        let (member, assignment) = try await f.broker.joinGroup(topic, group: group)
        try await f.broker.commitOffsets(topic, group: group, memberID: member, generation: assignment.generation, offsets: [0: 1])
        let monitor = AlertMonitor(rules: [.init(name: "lag", condition: .lagAbove(5), pattern: NamePattern("clicks"))],
                                   broker: f.broker, storage: f.storage, metrics: nil, clock: f.clock, logger: LogCapture().logger)
        try await withMetricsServer(f) { api, _ in
            let m = try await api.metrics()
            #expect(m[#"tern_topic_partition_high_watermark{topic="clicks",partition="0"}"#] == 4)
            #expect(m[#"tern_topic_partition_high_watermark{topic="clicks",partition="1"}"#] == 3)
            #expect(m[#"tern_consumer_group_committed_offset{topic="clicks",group="g1",partition="0"}"#] == 1)
            #expect(m[#"tern_consumer_group_committed_offset{topic="clicks",group="g1",partition="1"}"#] == nil)
            #expect(m[#"tern_consumer_group_lag{topic="clicks",group="g1",partition="0"}"#] == 3)
            #expect(m[#"tern_consumer_group_lag{topic="clicks",group="g1",partition="1"}"#] == 3)
        }
        #expect(monitor.evaluate().count == 1, "lag 6 > 5")
        #expect(monitor.firing.first?.subject == "clicks/g1")
        try await f.broker.commitOffsets(topic, group: group, memberID: member, generation: assignment.generation, offsets: [0: 4, 1: 3])
        #expect(monitor.evaluate().count == 1, "caught up: resolved")
    }
}
