import Foundation
import Logging
import Testing
import TernStorage
import TernTestKit

@Suite struct RaftLogStoreTests {
    typealias Entry = RaftLogStore.Entry

    static func open(_ directory: TemporaryDirectory, durable: Bool) throws -> (Storage, RaftLogStore) {
        var settings = Storage.Settings()
        settings.durable = durable
        settings.maxMapBytes = 1 << 30
        let storage = try Storage(directory: directory.appending("data"), databases: testDatabases + RaftLogStore.databaseNames,
                                  settings: settings, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        return (storage, RaftLogStore(storage: storage))
    }

    static func entries(_ range: ClosedRange<UInt64>, term: UInt64, tag: String = "") -> [Entry] {
        range.map { Entry(index: $0, term: term, kind: 0, payload: Array("cmd\($0)\(tag)".utf8)) }
    }

    @Test(arguments: [true, false])
    func hardStateAndLog_surviveCloseAndReopen(durable: Bool) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        var (storage, store) = try Self.open(dir, durable: durable)
        let written = Self.entries(1...50, term: 3)
        try await storage.write { [store] txn in
            try store.append(group: 7, written, in: txn)
            try store.saveHardState(group: 7, .init(term: 3, vote: 2, commit: 40), in: txn)
        }
        storage.close()
        (storage, store) = try Self.open(dir, durable: durable)
        defer { storage.close() }
        let state = try storage.read { txn in try store.load(group: 7, in: txn) }
        #expect(state.hardState == .init(term: 3, vote: 2, commit: 40))
        #expect(state.entries == written)
        #expect(state.snapshot == nil)
    }

    @Test func append_overAConflictingSuffix_replacesIt() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (storage, store) = try Self.open(dir, durable: false)
        defer { storage.close() }
        try await storage.write { [store] txn in try store.append(group: 1, Self.entries(1...10, term: 1), in: txn) }
        // A new leader's entries from index 6 on: 6…10 of term 1 go, 6…7 of term 2 stay.
        try await storage.write { [store] txn in try store.append(group: 1, Self.entries(6...7, term: 2, tag: "new"), in: txn) }
        let state = try storage.read { txn in try store.load(group: 1, in: txn) }
        #expect(state.entries.map(\.index) == Array(1...7))
        #expect(state.entries.map(\.term) == [1, 1, 1, 1, 1, 2, 2])
        #expect(state.entries.last?.payload == Array("cmd7new".utf8))
        #expect(try storage.read { txn in try store.lastIndex(group: 1, in: txn) } == 7)
    }

    @Test func compaction_dropsEntriesThroughTheSnapshotPoint_andReloadStartsAfterIt() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        var (storage, store) = try Self.open(dir, durable: true)
        try await storage.write { [store] txn in try store.append(group: 9, Self.entries(1...20, term: 2), in: txn) }
        let point = RaftLogStore.SnapshotPoint(index: 12, term: 2, configuration: [1, 0, 0, 0, 3])
        let deleted = try await storage.write { [store] txn in try store.compact(group: 9, through: point, in: txn) }
        #expect(deleted == 12)
        storage.close()
        (storage, store) = try Self.open(dir, durable: true)
        defer { storage.close() }
        let state = try storage.read { txn in try store.load(group: 9, in: txn) }
        #expect(state.snapshot == point)
        #expect(state.entries.map(\.index) == Array(13...20))
    }

    @Test func installSnapshot_replacesTheWholeLog() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (storage, store) = try Self.open(dir, durable: false)
        defer { storage.close() }
        try await storage.write { [store] txn in try store.append(group: 4, Self.entries(1...5, term: 1), in: txn) }
        let point = RaftLogStore.SnapshotPoint(index: 100, term: 6, configuration: [])
        try await storage.write { [store] txn in
            try store.installSnapshot(group: 4, point, in: txn)
            try store.append(group: 4, Self.entries(101...102, term: 6), in: txn)
        }
        let state = try storage.read { txn in try store.load(group: 4, in: txn) }
        #expect(state.snapshot == point)
        #expect(state.entries.map(\.index) == [101, 102])
    }

    @Test func manyGroups_inOneEnvironment_areIndependent() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (storage, store) = try Self.open(dir, durable: false)
        defer { storage.close() }
        let groups: [UInt64] = [0, 1, 2, 1 << 40, .max]
        try await storage.write { [store] txn in
            for (k, group) in groups.enumerated() {
                try store.append(group: group, Self.entries(1...UInt64(3 + k), term: UInt64(k + 1)), in: txn)
                try store.saveHardState(group: group, .init(term: UInt64(k + 1), vote: 0, commit: 1), in: txn)
            }
        }
        try await storage.write { [store] txn in _ = try store.truncate(group: 1, from: 2, in: txn) }
        try storage.read { txn throws in
            #expect(try store.groups(in: txn) == groups)
            for (k, group) in groups.enumerated() {
                let state = try store.load(group: group, in: txn)
                let expectedCount = group == 1 ? 1 : 3 + k
                #expect(state.entries.count == expectedCount, "group \(group)")
                #expect(state.entries.allSatisfy { $0.term == UInt64(k + 1) })
                #expect(try store.lastIndex(group: group, in: txn) == UInt64(expectedCount))
            }
            #expect(try store.lastIndex(group: 3, in: txn) == nil)
            #expect(try store.entries(group: 2, from: 2, through: 4, maxBytes: 1, in: txn).map(\.index) == [2])
        }
        try await storage.write { [store] txn in try store.deleteGroup(2, in: txn) }
        try storage.read { txn throws in
            #expect(try store.load(group: 2, in: txn) == RaftLogStore.GroupState(hardState: nil, snapshot: nil, entries: []))
            #expect(try store.load(group: 1 << 40, in: txn).entries.count == 6)
        }
    }

    @Test func appendInTheSameTransaction_asOtherWrites_commitsOrFailsTogether() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (storage, store) = try Self.open(dir, durable: false)
        defer { storage.close() }
        let main = storage.database("main")
        struct Refused: Error {}
        await #expect(throws: Refused.self) {
            try await storage.write { [store] txn in
                try store.append(group: 5, Self.entries(1...3, term: 1), in: txn)
                try txn.put(main, key(1), value(1))
                throw Refused()
            }
        }
        try storage.read { txn throws in
            #expect(try store.load(group: 5, in: txn).entries.isEmpty)
            #expect(try txn.get(main, key(1)) == nil)
        }
    }

    @Test func bitRot_inAStoredEntry_isReportedAsCorrupt() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        var (storage, store) = try Self.open(dir, durable: true)
        let marker = Array("MARKER-PAYLOAD-0123456789".utf8)
        try await storage.write { [store] txn in
            try store.append(group: 3, [Entry(index: 1, term: 1, kind: 0, payload: marker)], in: txn)
        }
        storage.close()
        let path = dir.appending("data/data.mdb")
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let at = try #require(bytes.indices.first { bytes[$0...].starts(with: marker) })
        bytes[at + 3] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        (storage, store) = try Self.open(dir, durable: true)
        defer { storage.close() }
        #expect {
            try storage.read { txn in try store.load(group: 3, in: txn) }
        } throws: { ($0 as? StorageError)?.code == .corruptRecord }
    }
}
