import Foundation
import Synchronization
import Testing
import TernStorage
import TernTestKit

/// The writer thread batches concurrent operations into shared transactions, and one failing
/// operation never takes the rest of its batch down.
///
/// Most tests hold the writer inside a first operation (``WriterGate``) while the operations
/// under test are submitted, so that they are certain to meet in one batch; every operation
/// returns its transaction id (`mdb_txn_id`), which shows which batch it ran in.
@Suite struct GroupCommitTests {
    final class Counter: Sendable {
        let value = Atomic<Int>(0)
        func increment() { value.add(1, ordering: .relaxed) }
        var current: Int { value.load(ordering: .relaxed) }
    }

    /// Holds the writer, runs `submit` (which starts the operations under test), waits until
    /// `expected` of them have been submitted (plus 100 ms for the last ones to enqueue), then
    /// releases the writer.
    static func batched<T: Sendable>(
        _ storage: Storage, expected: Int,
        _ submit: @escaping @Sendable (Counter) async -> T
    ) async throws -> T {
        let gate = WriterGate()
        async let held: Void = storage.write { _ in gate.hold() }
        try await gate.waitUntilHeld()
        let submitted = Counter()
        let work = Task { await submit(submitted) }
        while submitted.current < expected { try await Task.sleep(for: .milliseconds(1)) }
        try await Task.sleep(for: .milliseconds(100))
        gate.open()
        try await held
        return await work.value
    }

    @Test(arguments: [true, false])
    func write_from200ConcurrentTasks_allCommitInFewerTransactionsThanWrites(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable)
        defer { storage.close() }
        let main = storage.database("main")
        let before = try storage.info().lastTransactionID

        let results = try await Self.batched(storage, expected: 200) { submitted in
            await withTaskGroup(of: Result<Int, any Error>.self) { group in
                for n in 0..<200 {
                    group.addTask {
                        submitted.increment()
                        return await asyncResult { try await storage.write { txn in
                            try txn.put(main, key(n), value(n))
                            return txn.id
                        } }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
        }

        let ids = try results.map { try $0.get() }
        #expect(ids.count == 200)
        let used = try storage.info().lastTransactionID - before
        #expect(used < 200, "200 writes (and the gate) used \(used) transactions")
        #expect(Set(ids).count < 200)
        let visible = try storage.read { txn in try (0..<200).filter { try txn.get(main, key($0)) == value($0) }.count }
        #expect(visible == 200)
    }

    /// Without any coordination, durable commits are slow enough (one sync each) that writes
    /// arriving meanwhile share the next transaction.
    @Test func write_from200ConcurrentTasks_durable_sharesTransactionsWithoutCoordination() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: true)
        defer { storage.close() }
        let main = storage.database("main")
        let before = try storage.info().lastTransactionID

        try await withThrowingTaskGroup(of: Void.self) { group in
            for n in 0..<200 {
                group.addTask { try await storage.write { txn in try txn.put(main, key(n), value(n)) } }
            }
            try await group.waitForAll()
        }

        let used = try storage.info().lastTransactionID - before
        #expect(used < 200, "200 concurrent writes used \(used) transactions")
        #expect(try storage.read { try $0.statistics(main).entries } == 200)
    }

    /// An operation that throws before writing anything fails alone; the others of its batch
    /// commit in the same transaction.
    @Test(arguments: [true, false])
    func write_throwingBeforeWriting_failsAloneWhileBatchCommits(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable)
        defer { storage.close() }
        let main = storage.database("main")
        let failingTransaction = Locked<Int?>(nil)

        let (a, b, c) = try await Self.batched(storage, expected: 3) { submitted in
            async let a = await asyncResult { submitted.increment(); return try await storage.write { txn in
                try txn.put(main, key(1), value(1)); return txn.id } }
            async let b = await asyncResult { submitted.increment(); return try await storage.write { txn -> Int in
                _ = try txn.get(main, key(1))
                failingTransaction.value = txn.id
                throw PlannedFailure(tag: 2) } }
            async let c = await asyncResult { submitted.increment(); return try await storage.write { txn in
                try txn.put(main, key(3), value(3)); return txn.id } }
            return await (a, b, c)
        }

        let idA = try a.get(), idC = try c.get()
        #expect(throws: PlannedFailure(tag: 2)) { try b.get() }
        #expect(idA == idC)
        #expect(failingTransaction.value == idA)
        #expect(try storage.read { try $0.get(main, key(1)) } == value(1))
        #expect(try storage.read { try $0.get(main, key(3)) } == value(3))
    }

    /// An operation that writes and then throws is rolled back (the batch is retried without
    /// it); the others of its batch commit.
    @Test(arguments: [true, false])
    func write_throwingAfterWriting_isRolledBackWhileBatchCommits(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable)
        defer { storage.close() }
        let main = storage.database("main")
        try await storage.write { txn in try txn.put(main, key(100), value(100)) }

        let results = try await Self.batched(storage, expected: 9) { submitted in
            await withTaskGroup(of: (Int, Result<Int, any Error>).self) { group in
                for n in 0..<9 {
                    group.addTask {
                        submitted.increment()
                        return (n, await asyncResult { try await storage.write { txn in
                            if n == 4 {
                                try txn.put(main, key(4), value(4))
                                try txn.delete(main, key(100))
                                throw PlannedFailure(tag: 4)
                            }
                            try txn.put(main, key(n), value(n))
                            return txn.id
                        } })
                    }
                }
                return await group.reduce(into: [Int: Result<Int, any Error>]()) { $0[$1.0] = $1.1 }
            }
        }

        #expect(throws: PlannedFailure(tag: 4)) { try results[4]!.get() }
        let ids = try (0..<9).filter { $0 != 4 }.map { try results[$0]!.get() }
        #expect(Set(ids).count == 1, "the other operations share one transaction: \(ids)")
        let stored = try storage.read { txn in try (0..<9).map { try txn.get(main, key($0)) } }
        #expect(stored == (0..<9).map { $0 == 4 ? nil : value($0) })
        #expect(try storage.read { try $0.get(main, key(100)) } == value(100), "the failed operation's delete is rolled back")
    }

    /// An LMDB error inside one operation (`MDB_KEYEXIST` from an out-of-order `MDB_APPEND`)
    /// fails that operation with the LMDB code; the rest of the batch commits.
    @Test(arguments: [true, false])
    func write_failingInLMDB_failsAloneWithLMDBCode(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable)
        defer { storage.close() }
        let main = storage.database("main")
        try await storage.write { txn in try txn.put(main, key(50), value(50)) }

        let (good, bad) = try await Self.batched(storage, expected: 2) { submitted in
            async let good = await asyncResult { submitted.increment(); return try await storage.write { txn in
                try txn.put(main, key(60), value(60)) } }
            async let bad = await asyncResult { submitted.increment(); return try await storage.write { txn in
                try txn.put(main, key(10), value(10), append: true) } }
            return await (good, bad)
        }

        try good.get()
        let error = #expect(throws: StorageError.self) { try bad.get() }
        #expect(error?.code == .lmdb)
        #expect(error?.lmdbCode != nil)
        #expect(try storage.read { try $0.get(main, key(60)) } == value(60))
        #expect(try storage.read { try $0.get(main, key(10)) } == nil)
    }

    /// Operations of one batch run in one transaction, so a later one sees an earlier one's
    /// writes (whatever order the writer picked, exactly one of the two sees the other's key).
    @Test(arguments: [true, false])
    func write_inSameBatch_seesEarlierOperationsWrites(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable)
        defer { storage.close() }
        let main = storage.database("main")

        let (first, second) = try await Self.batched(storage, expected: 2) { submitted in
            async let first = await asyncResult { submitted.increment(); return try await storage.write { txn in
                let seen = try txn.get(main, key(2)) != nil
                try txn.put(main, key(1), value(1))
                return (txn.id, seen) } }
            async let second = await asyncResult { submitted.increment(); return try await storage.write { txn in
                let seen = try txn.get(main, key(1)) != nil
                try txn.put(main, key(2), value(2))
                return (txn.id, seen) } }
            return await (first, second)
        }

        let (idFirst, firstSaw) = try first.get(), (idSecond, secondSaw) = try second.get()
        #expect(idFirst == idSecond)
        #expect(firstSaw != secondSaw)
    }

    /// Jobs that may overtake syncs (a replica's applies) commit ahead of the durable jobs of
    /// their batch, in a transaction of their own, in their order; every other job keeps its
    /// place behind the durable ones (a replica's answers wait for the appends they rest on).
    @Test func submit_overtakingJobs_commitBeforeTheDurableJobsOfTheirBatch_othersKeepTheirOrder() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: true)
        defer { storage.close() }
        let main = storage.database("main")
        let order = Locked<[String]>([])
        let ids = Locked<[String: Int]>([:])
        let done = Counter()

        try await Self.batched(storage, expected: 4) { submitted in
            func job(_ name: String, durable: Bool, overtakes: Bool) {
                storage.submit(durable: durable, overtakesSyncs: overtakes, { txn -> Int in
                    try txn.put(main, Array(name.utf8), value(1))
                    return txn.id
                }, completion: { result in
                    order.value.append(name)
                    if case .success(let id) = result { ids.value[name] = id }
                    done.increment()
                })
                submitted.increment()
            }
            job("append", durable: true, overtakes: false)
            job("apply 1", durable: false, overtakes: true)
            job("answer", durable: false, overtakes: false)
            job("apply 2", durable: false, overtakes: true)
        }
        while done.current < 4 { try await Task.sleep(for: .milliseconds(1)) }

        #expect(order.value == ["apply 1", "apply 2", "append", "answer"])
        let id = ids.value
        #expect(id["apply 1"] == id["apply 2"] && id["append"] == id["answer"], "\(id)")
        #expect(id["apply 1"]! < id["append"]!, "the applies committed first, in a transaction of their own")
    }

    /// Without a durable job in the batch, overtaking jobs share the batch's one transaction.
    @Test func submit_overtakingJobs_withoutDurableOnes_shareOneTransaction() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: true)
        defer { storage.close() }
        let main = storage.database("main")
        let ids = Locked<[Int]>([])

        try await Self.batched(storage, expected: 2) { submitted in
            for n in 0..<2 {
                storage.submit(durable: false, overtakesSyncs: n == 0, { txn -> Int in
                    try txn.put(main, key(n), value(n))
                    return txn.id
                }, completion: { result in if case .success(let id) = result { ids.value.append(id) } })
                submitted.increment()
            }
        }
        while ids.value.count < 2 { try await Task.sleep(for: .milliseconds(1)) }
        #expect(Set(ids.value).count == 1)
    }
}
