import Testing
import TernBroker
import TernCore
import TernStorage
import TernTestKit

@Suite struct TopicRetentionTests {
    @Test func batchesOlderThanRetention_areDropped_andTheLogStartMoves() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t", retention: 60)
        try await f.produce("t", ["a", "b"])
        f.clock.advance(bySeconds: 30)
        try await f.produce("t", ["c"])
        f.clock.advance(bySeconds: 29)
        _ = try await f.broker.runDueWork()
        #expect(try f.partitions("t")[0].logStart == 0, "59 s: nothing is old enough")
        f.clock.advance(bySeconds: 1)
        _ = try await f.broker.runDueWork()
        var info = try f.partitions("t")[0]
        #expect(info.logStart == 2)
        #expect(info.batches == 1)
        #expect(info.highWatermark == 3)
        f.clock.advance(bySeconds: 30)
        _ = try await f.broker.runDueWork()
        info = try f.partitions("t")[0]
        #expect(info.logStart == 3)
        #expect(info.batches == 0)
        #expect(info.bytes == 0)
        #expect(try await f.fetch("t", offset: 3).messages.isEmpty)
        #expect(try await f.produce("t", ["d"]).map(\.offset) == [3], "offsets continue after the log emptied")
    }

    @Test func retentionCountsDowntime_afterARestart() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t", retention: 60)
        try await f.produce("t", ["a"])
        f.clock.advance(bySeconds: 3600)
        try await f.reopen()  // open() runs due work
        #expect(try f.partitions("t")[0].logStart == 1)
    }

    @Test func maxBytes_dropsTheOldestBatches_untilThePartitionFits() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t", maxBytes: 1000)
        var generator = SeededGenerator(seed: 3)
        let values = (0..<10).map { _ in String((0..<150).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789".randomElement(using: &generator)! }) }
        for value in values { try await f.produce("t", [value]) }  // incompressible: ~180 stored bytes each
        _ = try await f.broker.runDueWork()
        let info = try f.partitions("t")[0]
        #expect(info.bytes <= 1000)
        #expect(info.bytes > 1000 - 200, "only as many batches as needed were dropped")
        #expect(info.highWatermark == 10)
        let kept = try await f.fetch("t", offset: info.logStart).messages
        #expect(kept.map(\.offset) == Array(info.logStart..<10))
        #expect(kept.last?.text == values[9])
    }

    /// LMDB reuses pages freed by earlier transactions once no reader holds them: under a steady
    /// produce/expire workload the data file reaches a plateau.
    @Test func dataFile_stopsGrowing_underSteadyProduceAndExpireChurn() async throws {
        let f = try await BrokerFixture()
        try await f.createTopic("t", partitions: 4, retention: 60)
        try await f.createQueue("q") { $0.retention = 60 }
        let value = String(repeating: "x", count: 900)
        func round() async throws {
            for p in 0..<4 { try await f.produce("t", Array(repeating: value, count: 50), partition: p) }
            try await f.send("q", Array(repeating: value, count: 100))
            f.clock.advance(bySeconds: 20)
            while try await f.broker.runDueWork().more {}
        }
        for _ in 0..<30 { try await round() }  // warm up: retention reaches its steady state
        let plateau = try f.storage.info().lastPage
        for _ in 0..<60 { try await round() }
        let after = try f.storage.info().lastPage
        #expect(after <= plateau + plateau / 20, "the file grew from \(plateau) to \(after) pages under churn")
        #expect(try f.partitions("t").allSatisfy { $0.batches <= 4 })
    }
}
