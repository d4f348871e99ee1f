import Foundation
import Synchronization
import Testing
import TernStorage
import TernTestKit

/// Basic operations of the LMDB environment, run over both sync modes (`durable` true: every
/// commit is synced; false: `MDB_NOSYNC`).
@Suite struct StorageTests {
    @Test(arguments: [true, false])
    func put_thenGetInLaterRead_returnsValue(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable)
        defer { storage.close() }
        let main = storage.database("main")

        try await storage.write { txn in try txn.put(main, key(1), value(1)) }

        #expect(try storage.read { try $0.get(main, key(1)) } == value(1))
        #expect(try storage.read { try $0.get(main, key(2)) } == nil)
    }

    @Test(arguments: [true, false])
    func put_ofExistingKey_replacesValue(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable)
        defer { storage.close() }
        let main = storage.database("main")

        try await storage.write { txn in try txn.put(main, key(1), value(1)) }
        try await storage.write { txn in try txn.put(main, key(1), value(2)) }

        #expect(try storage.read { try $0.get(main, key(1)) } == value(2))
        #expect(try storage.read { try $0.statistics(main).entries } == 1)
    }

    @Test(arguments: [true, false])
    func put_ofEmptyValue_storesEmptyValueDistinctFromMissing(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable)
        defer { storage.close() }
        let main = storage.database("main")

        try await storage.write { txn in try txn.put(main, key(1), []) }

        #expect(try storage.read { try $0.get(main, key(1)) } == [])
        #expect(try storage.read { try $0.get(main, key(2)) } == nil)
    }

    @Test(arguments: [true, false])
    func delete_returnsWhetherKeyExisted_andRemovesIt(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable)
        defer { storage.close() }
        let main = storage.database("main")
        try await storage.write { txn in
            try txn.put(main, key(1), value(1))
            try txn.put(main, key(2), value(2))
        }

        let existed = try await storage.write { txn in try txn.delete(main, key(1)) }
        let missing = try await storage.write { txn in try txn.delete(main, key(99)) }

        #expect(existed)
        #expect(!missing)
        #expect(try storage.read { try $0.get(main, key(1)) } == nil)
        #expect(try storage.read { try $0.get(main, key(2)) } == value(2))
    }

    @Test(arguments: [true, false])
    func databases_withSameKey_holdIndependentValues(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable)
        defer { storage.close() }
        let main = storage.database("main"), other = storage.database("other")

        try await storage.write { txn in
            try txn.put(main, key(1), value(1))
            try txn.put(other, key(1), value(2))
        }
        try await storage.write { txn in _ = try txn.delete(other, key(1)) }

        #expect(try storage.read { try $0.get(main, key(1)) } == value(1))
        #expect(try storage.read { try $0.get(other, key(1)) } == nil)
    }

    @Test(arguments: [true, false])
    func write_body_seesItsOwnWritesBeforeCommit(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable)
        defer { storage.close() }
        let main = storage.database("main")

        let seen = try await storage.write { txn in
            try txn.put(main, key(1), value(1))
            return try txn.get(main, key(1))
        }

        #expect(seen == value(1))
    }

    @Test(arguments: [true, false])
    func write_returnsBodyResult(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable)
        defer { storage.close() }

        let result = try await storage.write { _ in "computed" }

        #expect(result == "computed")
    }

    // MARK: Cursors

    @Test(arguments: [true, false])
    func cursor_iteratesInKeyOrder_forwardAndBackward(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable)
        defer { storage.close() }
        let main = storage.database("main")
        var random = SeededGenerator(seed: 11)
        let numbers = (0..<500).map { $0 * 3 }.shuffled(using: &random)
        try await storage.write { txn in
            for n in numbers { try txn.put(main, key(n), value(n)) }
        }

        let (forward, backward) = try storage.read { txn in
            try txn.withCursor(main) { cursor in
                var forward = [Int](), backward = [Int]()
                var entry = try cursor.first()
                while let current = entry {
                    #expect(current.value == value(forward.count * 3))
                    forward.append(Int(try BigEndianReader(current.key).readUInt64Value()))
                    entry = try cursor.next()
                }
                entry = try cursor.last()
                while let current = entry {
                    backward.append(Int(try BigEndianReader(current.key).readUInt64Value()))
                    entry = try cursor.previous()
                }
                return (forward, backward)
            }
        }

        #expect(forward == numbers.sorted())
        #expect(backward == numbers.sorted().reversed())
    }

    @Test(arguments: [true, false])
    func cursor_seekAtOrAfter_findsExactOrNextKey(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable)
        defer { storage.close() }
        let main = storage.database("main")
        try await storage.write { txn in
            for n in [10, 20, 30] { try txn.put(main, key(n), value(n)) }
        }

        let found = try storage.read { txn in
            try txn.withCursor(main) { cursor in
                [0, 10, 11, 29, 30, 31].map { try? cursor.seek(atOrAfter: key($0))?.value }
            }
        }

        #expect(found == [value(10), value(10), value(20), value(30), value(30), nil])
    }

    @Test(arguments: [true, false])
    func cursor_seekByPrefix_findsFirstKeyWithThatPrefix(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable)
        defer { storage.close() }
        let main = storage.database("main")
        try await storage.write { txn in
            for n in [0x0100_0000_0000_0005, 0x0200_0000_0000_0001, 0x0200_0000_0000_0002] { try txn.put(main, key(n), []) }
        }

        let keys = try storage.read { txn in
            try txn.withCursor(main) { cursor in
                var keys = [[UInt8]]()
                var entry = try cursor.seek(atOrAfter: [0x02])
                while let current = entry, current.key.starts(with: [0x02]) {
                    keys.append(current.key)
                    entry = try cursor.next()
                }
                return keys
            }
        }

        #expect(keys == [key(0x0200_0000_0000_0001), key(0x0200_0000_0000_0002)])
    }

    @Test(arguments: [true, false])
    func cursor_onEmptyDatabase_returnsNil(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable)
        defer { storage.close() }
        let main = storage.database("main")

        let results = try storage.read { txn in
            try txn.withCursor(main) { cursor in
                [try cursor.first() == nil, try cursor.last() == nil, try cursor.seek(atOrAfter: [0]) == nil, try cursor.current() == nil]
            }
        }

        #expect(results == [true, true, true, true])
    }

    /// Deleting under a cursor and continuing with `current()`, as the doc comment of
    /// `deleteCurrent` prescribes, visits and deletes every entry (across page boundaries).
    @Test(arguments: [true, false])
    func cursor_deleteCurrentThenCurrent_deletesEveryMatchingEntry(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable)
        defer { storage.close() }
        let main = storage.database("main")
        try await storage.write { txn in
            for n in 0..<2_000 { try txn.put(main, key(n), value(n, size: 40)) }
        }

        let deleted = try await storage.write { txn in
            try txn.withCursor(main) { cursor in
                var deleted = 0
                var entry = try cursor.first()
                while let current = entry {
                    let n = Int(try BigEndianReader(current.key).readUInt64Value())
                    if n % 2 == 0 {
                        try cursor.deleteCurrent()
                        deleted += 1
                        entry = try cursor.current()
                    } else {
                        entry = try cursor.next()
                    }
                }
                return deleted
            }
        }

        #expect(deleted == 1_000)
        let remaining = try storage.read { txn in
            try txn.withCursor(main) { cursor in
                var keys = [Int]()
                var entry = try cursor.first()
                while let current = entry {
                    keys.append(Int(try BigEndianReader(current.key).readUInt64Value()))
                    entry = try cursor.next()
                }
                return keys
            }
        }
        #expect(remaining == Array(stride(from: 1, to: 2_000, by: 2)))
    }

    /// LMDB's `MDB_NEXT` right after `mdb_cursor_del` returns the entry that followed the deleted
    /// one (the cursor is flagged `C_DEL`): it does not skip an entry, on one page or across pages.
    @Test(arguments: [true, false])
    func cursor_deleteCurrentThenNext_continuesWithFollowingEntry(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable)
        defer { storage.close() }
        let main = storage.database("main")
        try await storage.write { txn in
            for n in 0..<2_000 { try txn.put(main, key(n), value(n, size: 40)) }
        }

        let visited = try await storage.write { txn in
            try txn.withCursor(main) { cursor in
                var visited = [Int]()
                var entry = try cursor.first()
                while let current = entry {
                    let n = Int(try BigEndianReader(current.key).readUInt64Value())
                    visited.append(n)
                    if n % 3 != 2 { try cursor.deleteCurrent() }
                    entry = try cursor.next()
                }
                return visited
            }
        }

        #expect(visited == Array(0..<2_000))
        let remaining = try storage.read { try $0.statistics(main).entries }
        #expect(remaining == (0..<2_000).filter { $0 % 3 == 2 }.count)
    }

    @Test(arguments: [true, false])
    func putWithAppend_ofIncreasingKeys_storesAll(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable)
        defer { storage.close() }
        let main = storage.database("main")

        try await storage.write { txn in
            for n in 0..<1_000 { try txn.put(main, key(n), value(n), append: true) }
        }

        #expect(try storage.read { try $0.statistics(main).entries } == 1_000)
        #expect(try storage.read { try $0.get(main, key(999)) } == value(999))
    }

    // MARK: Durability

    @Test(arguments: [true, false])
    func data_afterCloseAndReopen_isStillThere(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let first = try openStorage(directory, durable: durable)
        let main = first.database("main")
        for batch in 0..<10 {
            try await first.write { txn in
                for n in batch * 100..<(batch + 1) * 100 { try txn.put(main, key(n), value(n, size: 300)) }
            }
        }
        try await first.write { txn in _ = try txn.delete(main, key(500)) }
        let lastTransaction = try first.info().lastTransactionID
        first.close()

        let second = try openStorage(directory, durable: durable)
        defer { second.close() }
        let reopened = second.database("main")
        let (entries, allIntact) = try second.read { txn in
            (try txn.statistics(reopened).entries,
             try (0..<1_000).allSatisfy { n in try txn.get(reopened, key(n)) == (n == 500 ? nil : value(n, size: 300)) })
        }
        #expect(entries == 999)
        #expect(allIntact)
        #expect(try second.info().lastTransactionID == lastTransaction)
    }

    /// Bit rot inside a stored value (a byte flipped in `data.mdb` while the broker was down) is
    /// invisible to LMDB but caught by the record checksum on read; other values are unaffected.
    @Test(arguments: [true, false])
    func bitRot_inStoredValueOnDisk_isDetectedByRecordChecksum(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var random = SeededGenerator(seed: 0xB17_207)
        let marker = random.bytes(count: 200)
        let first = try openStorage(directory, durable: durable)
        let main = first.database("main")
        try await first.write { txn in
            try txn.put(main, key(1), RecordCodec.encode(marker, compression: .never))
            try txn.put(main, key(2), RecordCodec.encode(Array("healthy neighbour".utf8)))
        }
        first.close()

        let path = directory.appending("data/data.mdb")
        var file = try Data(contentsOf: URL(fileURLWithPath: path))
        var flipped = 0
        var searchFrom = file.startIndex
        while let range = file.range(of: Data(marker), in: searchFrom..<file.endIndex) {
            file[range.lowerBound + 100] ^= 0x04
            flipped += 1
            searchFrom = range.upperBound
        }
        try #require(flipped >= 1, "the value was not found in data.mdb")
        try file.write(to: URL(fileURLWithPath: path))

        let second = try openStorage(directory, durable: durable)
        defer { second.close() }
        let stored = try #require(try second.read { try $0.get(second.database("main"), key(1)) })
        expectCorruptRecord(mentioning: "checksum") { try RecordCodec.decode(stored) }
        let neighbour = try #require(try second.read { try $0.get(second.database("main"), key(2)) })
        #expect(try RecordCodec.decode(neighbour) == Array("healthy neighbour".utf8))
    }

    @Test(arguments: [true, false])
    func write_afterClose_throwsClosed(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable)
        let main = storage.database("main")
        storage.close()

        let error = await #expect(throws: StorageError.self) {
            try await storage.write { txn in try txn.put(main, key(1), value(1)) }
        }
        #expect(error?.code == .closed)
        storage.close()  // a second close is harmless
    }

    /// Writes submitted before `close()` commit before the environment closes.
    @Test(arguments: [true, false])
    func close_withWritesPending_commitsThemFirst(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable)
        let main = storage.database("main")
        let gate = WriterGate()
        async let held: Void = storage.write { _ in gate.hold() }
        try await gate.waitUntilHeld()
        let pending = Task { try await storage.write { txn in try txn.put(main, key(7), value(7)) } }
        try await Task.sleep(for: .milliseconds(100))
        gate.open()
        storage.close()
        try await held
        try await pending.value

        let reopened = try openStorage(directory, durable: durable)
        defer { reopened.close() }
        #expect(try reopened.read { try $0.get(reopened.database("main"), key(7)) } == value(7))
    }

    // MARK: Concurrent readers

    /// Readers on many tasks (hence many threads, `MDB_NOTLS`) always see whole transactions:
    /// two keys written together are never seen with different values.
    @Test(arguments: [true, false])
    func read_duringWrites_seesConsistentSnapshots(durable: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: durable)
        defer { storage.close() }
        let main = storage.database("main")
        try await storage.write { txn in
            try txn.put(main, key(1), value(0))
            try txn.put(main, key(2), value(0))
        }
        let done = Locked(false)

        let torn = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var torn = 0, reads = 0
                    while !done.value || reads < 10 {
                        let (a, b) = try storage.read { txn in (try txn.get(main, key(1)), try txn.get(main, key(2))) }
                        if a != b { torn += 1 }
                        reads += 1
                        await Task.yield()
                    }
                    return torn
                }
            }
            for round in 1...200 {
                try await storage.write { txn in
                    try txn.put(main, key(1), value(round))
                    try txn.put(main, key(2), value(round))
                }
            }
            done.value = true
            return try await group.reduce(0, +)
        }

        #expect(torn == 0)
        #expect(try storage.read { try $0.get(main, key(2)) } == value(200))
    }

    @Test func info_reportsMapSizeAndUsage() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStorage(directory, durable: false, maxMapBytes: 64 << 20)
        defer { storage.close() }
        let main = storage.database("main")
        let before = try storage.info()

        try await storage.write { txn in
            for n in 0..<100 { try txn.put(main, key(n), value(n, size: 10_000)) }
        }

        let after = try storage.info()
        #expect(after.mapSize == 64 << 20)
        #expect(after.pageSize > 0)
        #expect(after.lastTransactionID == before.lastTransactionID + 1)
        #expect(after.usedBytes >= 100 * 10_000)
        #expect(after.usedBytes <= (after.lastPage + 1) * after.pageSize)
    }
}

extension BigEndianReader {
    /// Reads one u64 from a copy of the reader (for one-line key decoding in tests).
    func readUInt64Value() throws -> UInt64 {
        var copy = self
        return try copy.readUInt64()
    }
}
