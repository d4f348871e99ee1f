import Testing
import TernBroker
import TernCore
import TernStorage
import TernTestKit

extension BrokerFixture {
    @discardableResult
    func createTopic(_ name: String, partitions: Int = 1, retention: Int? = nil, maxBytes: Int? = nil) async throws -> TopicInfo {
        try await broker.createOrUpdateTopic(try QueueName(name), patch: .init(partitions: partitions, retention: retention, maxBytes: maxBytes)).topic
    }

    @discardableResult
    func produce(_ topic: String, _ values: [String], key: String? = nil, partition: Int? = nil) async throws -> [TopicOffset] {
        try await broker.produce(try QueueName(topic), values.map {
            TopicMessage(key: key.map { Array($0.utf8) }, value: Array($0.utf8), partition: partition)
        })
    }

    func fetch(_ topic: String, partition: Int = 0, offset: UInt64, max: Int = 100) async throws -> FetchResult {
        try await broker.fetch(try QueueName(topic), partition: partition, offset: offset, max: max)
    }

    func partitions(_ topic: String) throws -> [PartitionInfo] {
        try broker.describeTopic(try QueueName(topic)).partitions
    }
}

extension FetchedMessage {
    var text: String { String(decoding: value, as: UTF8.self) }
}

/// Kafka's `Utils.murmur2`, written again from the algorithm's description (MurmurHash2 by
/// Austin Appleby, 32-bit, seed 0x9747b28c, little-endian blocks) in a deliberately different
/// style from ``TopicPartitioner`` (wide integers with explicit masking, as a Python port
/// would), to serve as an independent reference.
private func referenceMurmur2(_ bytes: [UInt8]) -> Int64 {
    let mask: UInt64 = 0xFFFF_FFFF
    let m: UInt64 = 0x5BD1_E995
    var h: UInt64 = (0x9747_B28C ^ UInt64(bytes.count)) & mask
    var i = 0
    while i + 4 <= bytes.count {
        var k = UInt64(bytes[i]) + (UInt64(bytes[i + 1]) << 8) + (UInt64(bytes[i + 2]) << 16) + (UInt64(bytes[i + 3]) << 24)
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
        i += 4
    }
    let rest = bytes.count - i
    if rest == 3 { h ^= UInt64(bytes[i + 2]) << 16 }
    if rest >= 2 { h ^= UInt64(bytes[i + 1]) << 8 }
    if rest >= 1 {
        h ^= UInt64(bytes[i])
        h = (h * m) & mask
    }
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h >= 1 << 31 ? Int64(h) - (1 << 32) : Int64(h)
}

@Suite struct TopicPartitionerTests {
    /// Values from Kafka's own `UtilsTest.testMurmur2`.
    @Test(arguments: [
        ("21", Int32(-973_932_308)), ("foobar", -790_332_482), ("a-little-bit-long-string", -985_981_536),
        ("a-little-bit-longer-string", -1_486_304_829), ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
        ("abc", 479_470_107),
    ])
    func murmur2_matchesKafkasPublishedValues(key: String, expected: Int32) {
        #expect(TopicPartitioner.murmur2(Array(key.utf8)) == expected)
        #expect(referenceMurmur2(Array(key.utf8)) == Int64(expected))
    }

    @Test func keyToPartition_matchesTheIndependentReference_forATableOfKeys() {
        var keys: [[UInt8]] = ["", "a", "ab", "abc", "abcd", "abcde", "user-42", "Android_2k", "HDFS_2k", "ünïcode", "🦅"].map { Array($0.utf8) }
        var generator = SeededGenerator(seed: 7)
        for length in 0..<64 { keys.append((0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }) }
        for key in keys {
            let reference = Int(referenceMurmur2(key) & 0x7FFF_FFFF)
            for partitions in [1, 2, 3, 7, 16, 1024] {
                #expect(TopicPartitioner.partition(forKey: key, partitions: partitions) == reference % partitions, "key \(key)")
            }
        }
        // Hand-checked: "" hashes to 275646681 (positive), so it lands in 275646681 % 16 == 9.
        #expect(TopicPartitioner.partition(forKey: [], partitions: 16) == 9)
    }
}

@Suite struct TopicTests {
    @Test func produce_assignsDenseOffsetsPerPartition_inRequestOrder() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t", partitions: 4)
        let first = try await f.produce("t", ["a", "b", "c"], partition: 2)
        let second = try await f.produce("t", ["d"], partition: 2)
        let other = try await f.produce("t", ["x", "y"], partition: 1)
        #expect(first.map(\.offset) == [0, 1, 2])
        #expect(second.map(\.offset) == [3])
        #expect(other.map(\.offset) == [0, 1])
        let fetched = try await f.fetch("t", partition: 2, offset: 0)
        #expect(fetched.messages.map(\.offset) == [0, 1, 2, 3])
        #expect(fetched.messages.map(\.text) == ["a", "b", "c", "d"])
        #expect(fetched.highWatermark == 4)
        #expect(fetched.logStart == 0)
    }

    @Test func keyedMessages_landInKafkasPartition_andKeepTheirKey() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t", partitions: 16)
        for key in ["user-42", "Android_2k", "HDFS_2k", "key"] {
            let offsets = try await f.produce("t", ["v"], key: key)
            let expected = Int(referenceMurmur2(Array(key.utf8)) & 0x7FFF_FFFF) % 16
            #expect(offsets.map(\.partition) == [expected], "\(key)")
            let fetched = try await f.fetch("t", partition: expected, offset: offsets[0].offset)
            #expect(fetched.messages.first?.key == Array(key.utf8))
        }
    }

    @Test func keylessRequests_stickToOnePartitionEach_andMoveRoundRobin() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t", partitions: 3)
        var used = [Int]()
        for _ in 0..<6 {
            let offsets = try await f.produce("t", ["a", "b", "c"])
            #expect(Set(offsets.map(\.partition)).count == 1, "one request, one partition")
            used.append(offsets[0].partition)
        }
        #expect(used[0..<3].sorted() == [0, 1, 2])
        #expect(Array(used[3..<6]) == Array(used[0..<3]))
    }

    @Test func fetch_fromTheMiddleOfABatch_skipsEarlierMessages_andHonoursMax() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t")
        try await f.produce("t", (0..<10).map { "m\($0)" })
        try await f.produce("t", (10..<20).map { "m\($0)" })
        let page = try await f.fetch("t", offset: 7, max: 5)
        #expect(page.messages.map(\.offset) == [7, 8, 9, 10, 11])
        #expect(page.messages.map(\.text) == ["m7", "m8", "m9", "m10", "m11"])
        #expect(try await f.fetch("t", offset: 20).messages.isEmpty)
    }

    @Test(arguments: [UInt64(21), 1000])
    func fetch_aboveTheHighWatermark_isOffsetOutOfRange_withTheRange(offset: UInt64) async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t")
        try await f.produce("t", (0..<20).map { "m\($0)" })
        do {
            _ = try await f.fetch("t", offset: offset)
            Issue.record("expected OffsetOutOfRange")
        } catch let error as TernError {
            #expect(error.code == .offsetOutOfRange)
            #expect(error.message.contains("0–20"), "\(error.message)")
        }
    }

    @Test func fetch_belowTheLogStart_isOffsetOutOfRange() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t", retention: 60)
        try await f.produce("t", ["old-1", "old-2"])
        f.clock.advance(bySeconds: 61)
        try await f.produce("t", ["new"])
        _ = try await f.broker.runDueWork()
        #expect(try f.partitions("t")[0].logStart == 2)
        await #expect(throws: TernError(.offsetOutOfRange, "offset 1 is outside partition 0's range 2–3 (log start–high watermark)")) {
            _ = try await f.fetch("t", offset: 1)
        }
        #expect(try await f.fetch("t", offset: 2).messages.map(\.text) == ["new"])
    }

    @Test func longPollingFetch_isWokenByAProduce_beforeItsWaitTimeEnds() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t", partitions: 2)
        let broker = f.broker
        let waiter = Task { try await broker.fetch(try QueueName("t"), partition: 1, offset: 0, waitTime: 20) }
        await f.clock.waitForSleepers(count: 1)
        try await f.produce("t", ["other partition"], partition: 0)
        try await f.produce("t", ["wake"], partition: 1)
        let result = try await waiter.value
        #expect(result.messages.map(\.text) == ["wake"])
        #expect(f.clock.now == ManualClock().now, "no time passed: the produce woke the fetch")
    }

    @Test func longPollingFetch_returnsEmpty_whenTheWaitTimeEnds() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t")
        let broker = f.broker
        let waiter = Task { try await broker.fetch(try QueueName("t"), partition: 0, offset: 0, waitTime: 5) }
        await f.clock.waitForSleepers(count: 1)
        f.clock.advance(bySeconds: 5)
        let result = try await waiter.value
        #expect(result.messages.isEmpty)
        #expect(result.highWatermark == 0)
    }

    @Test func topicData_survivesARestart_andOffsetsContinue() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t", partitions: 2)
        try await f.produce("t", ["a", "b"], partition: 1)
        try await f.reopen()
        #expect(try await f.produce("t", ["c"], partition: 1).map(\.offset) == [2])
        #expect(try await f.fetch("t", partition: 1, offset: 0).messages.map(\.text) == ["a", "b", "c"])
    }

    @Test func topicAttributes_areValidated_andPartitionsCannotChange() async throws {
        let f = try await BrokerFixture()
        for partitions in [0, 1025] {
            await #expect(throws: TernError.self) { try await f.createTopic("bad", partitions: partitions) }
        }
        await #expect(throws: TernError.self) { try await f.createTopic("x.fifo") }
        #expect(try f.broker.listTopics().isEmpty)
        try await f.createTopic("t", partitions: 1024)
        do {
            try await f.createTopic("t", partitions: 8)
            Issue.record("expected Conflict")
        } catch let error as TernError {
            #expect(error.code == .conflict)
        }
        let updated = try await f.broker.createOrUpdateTopic(try QueueName("t"), patch: .init(retention: 3600))
        #expect(!updated.created)
        #expect(updated.topic.attributes.retention == 3600)
        #expect(updated.topic.attributes.partitions == 1024)
    }

    @Test func deletedTopic_isGone_andARecreatedOneStartsEmpty() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t", partitions: 2)
        try await f.produce("t", ["a", "b"], partition: 0)
        try await f.broker.deleteTopic(try QueueName("t"))
        await #expect(throws: TernError.self) { try await f.fetch("t", offset: 0) }
        _ = try await f.broker.runDueWork()
        try await f.createTopic("t", partitions: 2)
        #expect(try f.partitions("t").map(\.highWatermark) == [0, 0])
        let entries = try f.storage.read { txn in try txn.statistics(f.storage.database("topic_batches")).entries }
        #expect(entries == 0, "the deleted topic's batches were swept")
    }

    @Test func batches_areStoredOneRecordPerProducePartition_compressedWhenItPays() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t")
        let line = "2025-01-01T00:00:00Z INFO dfs.DataNode: Receiving block blk_-1608999687919862906 src: /10.250.19.102:54106"
        try await f.produce("t", (0..<64).map { "\(line) #\($0)" })
        let info = try f.partitions("t")[0]
        #expect(info.batches == 1)
        let raw = 64 * (line.utf8.count + 4)
        #expect(info.bytes < UInt64(raw / 2), "64 similar log lines compress as one block: \(info.bytes) of \(raw) bytes")
    }
}
