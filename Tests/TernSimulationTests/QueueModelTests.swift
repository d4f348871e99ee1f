import Testing
import TernReplication
import TernSimulation

@Suite struct QueueModelTests {
    static func id(_ result: [UInt8]) -> UInt64? {
        guard result.first == 1, result.count == 13 else { return nil }
        return result[1..<9].reduce(0) { $0 << 8 | UInt64($1) }
    }

    static func count(_ result: [UInt8]) -> UInt32 {
        result[9..<13].reduce(0) { $0 << 8 | UInt32($1) }
    }

    @Test func receive_deliversInSendOrder_andCountsReceives() {
        var q = QueueModel()
        _ = q.apply(QueueModel.send(7), at: 1)
        _ = q.apply(QueueModel.send(8), at: 2)
        let first = q.apply(QueueModel.receive, at: 3)
        #expect(Self.id(first) == 7 && Self.count(first) == 1)
        _ = q.apply(QueueModel.expire, at: 4)
        let again = q.apply(QueueModel.receive, at: 5)
        #expect(Self.id(again) == 7 && Self.count(again) == 2, "redelivered first, in send order")
        #expect(q.apply(QueueModel.receive, at: 6).first == 1)
        #expect(q.apply(QueueModel.receive, at: 7) == [0])
    }

    /// Regression (tern-sim seeds 1–3 with `--faults none`, 50,000 events, before the fix): an
    /// ack of a message that had expired back into the queue was answered as if it deleted
    /// it, and the checker reported the acknowledged ack as undone. An ack now deletes the
    /// message wherever it is and says whether it did.
    @Test func ack_ofAMessageThatExpiredBackIntoTheQueue_deletesIt() {
        var q = QueueModel()
        _ = q.apply(QueueModel.send(1), at: 1)
        _ = q.apply(QueueModel.receive, at: 2)
        _ = q.apply(QueueModel.expire, at: 3)
        #expect(q.apply(QueueModel.ack(1), at: 4) == [1])
        #expect(!q.holds(1) && q.isAcknowledged(1))
        #expect(q.apply(QueueModel.ack(1), at: 5) == [2], "a repeated ack reports the earlier deletion")
        #expect(q.apply(QueueModel.ack(99), at: 6) == [0])
    }

    @Test func snapshot_restoresTheSameState() throws {
        var q = QueueModel()
        for k: UInt64 in 1...5 { _ = q.apply(QueueModel.send(k), at: k) }
        _ = q.apply(QueueModel.receive, at: 6)
        _ = q.apply(QueueModel.ack(1), at: 7)
        _ = q.apply(QueueModel.receive, at: 8)
        let restored = try QueueModel(snapshot: q.snapshot())
        #expect(restored.digest == q.digest)
        #expect(throws: (any Error).self) { try QueueModel(snapshot: [1, 2, 3]) }
    }

    @Test func workload_flagsAResultThatDiffersFromTheModel() {
        var workload = QueueWorkload()
        #expect(workload.committed(QueueModel.send(1), result: [0], at: 1).isEmpty)
        let violations = workload.committed(QueueModel.receive, result: [0], at: 2)
        #expect(violations.first?.contains("differs") == true, "the model delivers message 1 here")
    }
}
