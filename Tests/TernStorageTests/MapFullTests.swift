import Testing
import TernStorage
import TernTestKit

/// A small map (4 MiB) filled until sends are refused: operations that free space keep working
/// in the reserved headroom, and freed space is reused.
@Suite struct MapFullTests {
    static let mapBytes = 4 << 20
    static let valueBytes = 16 << 10

    /// Grows-writes of 16 KiB values until one throws; returns how many succeeded and the error.
    static func fill(_ storage: Storage, from start: Int = 0, limit: Int = 2_000) async -> (written: Int, error: StorageError?) {
        let main = storage.database("main")
        for n in start..<start + limit {
            do {
                try await storage.write(grows: true) { txn in try txn.put(main, key(n), value(n, size: valueBytes)) }
            } catch {
                return (n - start, error as? StorageError)
            }
        }
        return (limit, nil)
    }

    @Test(arguments: [true, false])
    func growingWrite_pastReservedHeadroom_throwsMapFull(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable, maxMapBytes: Self.mapBytes)
        defer { storage.close() }

        let (written, error) = await Self.fill(storage)

        #expect(error?.code == .mapFull, "after \(written) writes: \(String(describing: error))")
        #expect(error?.lmdbCode == nil, "refused by the headroom check, not by LMDB running out of pages")
        // 4 MiB minus the 1 MiB headroom holds well over a hundred 16 KiB values, and not 256.
        #expect(written > 100)
        #expect(written < 4 * 64)
        // Refusal is stable: the next send is refused too, and nothing of it is stored.
        let again = await Self.fill(storage, from: 10_000, limit: 1)
        #expect(again.written == 0)
        #expect(again.error?.code == .mapFull)
        #expect(try storage.read { try $0.get(storage.database("main"), key(10_000)) } == nil)
    }

    @Test(arguments: [true, false])
    func mapFull_storedDataStaysReadableAndIntact(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable, maxMapBytes: Self.mapBytes)
        defer { storage.close() }
        let main = storage.database("main")

        let (written, error) = await Self.fill(storage)
        try #require(error?.code == .mapFull)

        let intact = try storage.read { txn in
            try (0..<written).allSatisfy { try txn.get(main, key($0)) == value($0, size: Self.valueBytes) }
        }
        #expect(intact)
        #expect(try storage.read { try $0.statistics(main).entries } == written)
    }

    @Test(arguments: [true, false])
    func mapFull_deletesStillSucceed_andAfterEnoughDeletesGrowingWritesSucceedAgain(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable, maxMapBytes: Self.mapBytes)
        defer { storage.close() }
        let main = storage.database("main")
        let (written, error) = await Self.fill(storage)
        try #require(error?.code == .mapFull)

        // One delete, in its own transaction, while sends are refused.
        let deletedOne = try await storage.write { txn in try txn.delete(main, key(0)) }
        #expect(deletedOne)
        // Half of everything, one transaction per delete (as acks arrive).
        for n in 1..<written / 2 {
            try await storage.write { txn in _ = try txn.delete(main, key(n)) }
        }

        #expect(!storage.isNearlyFull)
        try await storage.write(grows: true) { txn in try txn.put(main, key(50_000), value(50_000, size: Self.valueBytes)) }
        #expect(try storage.read { try $0.get(main, key(50_000)) } == value(50_000, size: Self.valueBytes))
        // Freed pages are reused: refilling stores about as many values as were deleted, and
        // the map still refuses at the limit rather than failing in LMDB.
        let refill = await Self.fill(storage, from: 100_000)
        #expect(refill.error?.code == .mapFull)
        #expect(refill.written >= written / 2 - 10)
        #expect(try storage.read { try $0.statistics(main).entries } == written - written / 2 + 1 + refill.written)
    }

    /// Deleting everything in one transaction also works while full (the headroom covers the
    /// pages LMDB needs to record the freed ones).
    @Test(arguments: [true, false])
    func mapFull_deletingEverythingInOneTransaction_succeeds(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable, maxMapBytes: Self.mapBytes)
        defer { storage.close() }
        let main = storage.database("main")
        let (written, error) = await Self.fill(storage)
        try #require(error?.code == .mapFull)

        let deleted = try await storage.write { txn in
            try (0..<written).filter { try txn.delete(main, key($0)) }.count
        }

        #expect(deleted == written)
        #expect(try storage.read { try $0.statistics(main).entries } == 0)
        #expect(!storage.isNearlyFull)
    }

    /// A grows-write refused for space fails alone: a delete submitted in the same batch commits.
    @Test(arguments: [true, false])
    func mapFull_refusedWriteAndDeleteInOneBatch_deleteCommits(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable, maxMapBytes: Self.mapBytes)
        defer { storage.close() }
        let main = storage.database("main")
        let (_, error) = await Self.fill(storage)
        try #require(error?.code == .mapFull)

        let (send, delete) = try await GroupCommitTests.batched(storage, expected: 2) { submitted in
            async let send = await asyncResult { submitted.increment(); return try await storage.write(grows: true) { txn in
                try txn.put(main, key(70_000), value(70_000, size: Self.valueBytes)); return txn.id } }
            async let delete = await asyncResult { submitted.increment(); return try await storage.write { txn in
                _ = try txn.delete(main, key(3)); return txn.id } }
            return await (send, delete)
        }

        let sendError = #expect(throws: StorageError.self) { try send.get() }
        #expect(sendError?.code == .mapFull)
        _ = try delete.get()
        #expect(try storage.read { try $0.get(main, key(3)) } == nil)
        #expect(try storage.read { try $0.get(main, key(70_000)) } == nil)
    }

    /// Without headroom LMDB itself runs out of pages (`MDB_MAP_FULL`): the write is reported as
    /// `mapFull` and the data committed before stays intact and survives a reopen.
    @Test(arguments: [true, false])
    func mapFull_withoutHeadroom_lmdbMapFullIsReportedAndEarlierDataSurvives(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable, maxMapBytes: Self.mapBytes, reservedBytes: 0)
        let main = storage.database("main")

        let (written, error) = await Self.fill(storage)
        #expect(error?.code == .mapFull)
        #expect(error?.lmdbCode != nil, "LMDB's own MDB_MAP_FULL")
        #expect(written > 180, "without headroom nearly all 4 MiB is usable, got \(written) values")
        storage.close()

        let reopened = try openStorage(directory, durable: durable, maxMapBytes: Self.mapBytes, reservedBytes: 0)
        defer { reopened.close() }
        let intact = try reopened.read { txn in
            try (0..<written).allSatisfy { try txn.get(reopened.database("main"), key($0)) == value($0, size: Self.valueBytes) }
        }
        #expect(intact)
        _ = main
    }

    /// Many sends in one batch while the map is nearly empty: the headroom check passes at the
    /// start of the batch, and the batch must still leave the headroom free so that deletes work.
    ///
    /// Here 300 grows-writes of 16 KiB (4.7 MiB) meet in one batch on an empty 4 MiB map. The
    /// writer counts the bytes the batch has written against the limit, so the batch stops
    /// short of the reserved headroom instead of filling the map (which once wedged it: every
    /// delete failed with `MDB_MAP_FULL`).
    @Test(arguments: [true, false])
    func batchOfGrowingWrites_largerThanHeadroom_stillLeavesRoomForDeletes(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable, maxMapBytes: Self.mapBytes)
        defer { storage.close() }
        let main = storage.database("main")

        let results = try await GroupCommitTests.batched(storage, expected: 300) { submitted in
            await withTaskGroup(of: Result<Void, any Error>.self) { group in
                for n in 0..<300 {
                    group.addTask {
                        submitted.increment()
                        return await asyncResult { try await storage.write(grows: true) { txn in
                            try txn.put(main, key(n), value(n, size: Self.valueBytes)) } }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
        }

        let refused = results.filter { if case .failure(let error) = $0 { (error as? StorageError)?.code == .mapFull } else { false } }
        #expect(refused.count >= 300 - 4 * 64, "4 MiB cannot hold 300 values of 16 KiB")
        let info = try storage.info()
        #expect(info.usedBytes <= Self.mapBytes - storage.settings.effectiveReservedBytes + Self.valueBytes + 8_192,
                "the batch ate into the headroom: \(info.usedBytes) of \(Self.mapBytes) bytes used")
        let stored = try storage.read { txn in try txn.withCursor(main) { try $0.first()?.key } }
        let victim = try #require(stored, "some of the 300 writes were stored")
        let deleted = try await storage.write { txn in try txn.delete(main, victim) }
        #expect(deleted)
    }
}
