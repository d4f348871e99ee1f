import Foundation
import Logging
import Synchronization
import Testing
@_spi(Testing) @testable import TernCluster
import TernBroker
import TernCore
import TernReplication
import TernStorage
import TernTestKit

/// Log compaction and snapshot transfer (decisions 116, 117) with three replicas of one group
/// in one process over ``LocalNetwork``, each with its own LMDB environment and
/// ``SnapshotServer``; snapshot chunks go straight to the peer's server (``LocalSnapshots``),
/// with faults planted where a test asks.
@Suite(.serialized) struct SnapshotTransferTests {
    static let logger = Logger(label: "test")
    static let names = ["n1", "n2", "n3"]
    /// A small bound, so that a few hundred commands compact the logs.
    static let logEntries = 100

    static var settings: ReplicaGroup<BrokerStateMachine>.Settings {
        var settings = ReplicatedBrokerTests.raftSettings
        settings.compaction = .init(logEntries: logEntries)
        return settings
    }

    /// Chunks fetched from the peer's server in process; `corruptNext` flips one byte of the
    /// next chunk served (a transfer damaged on the way).
    final class LocalSnapshots: SnapshotSource, @unchecked Sendable {
        let servers = Mutex<[Raft.NodeID: SnapshotServer]>([:])
        let corruptNext = Mutex(false)
        /// Every peer answers `Unavailable` (none has applied far enough, say).
        let refuseAll = Mutex(false)

        func chunk(_ request: SnapshotChunkRequest, from peer: Raft.NodeID) async throws -> SnapshotChunk {
            if refuseAll.withLock({ $0 }) { throw TernError(.unavailable, "planted: this node has not applied that far") }
            guard let server = servers.withLock({ $0[peer] }) else { throw TernError(.unavailable, "peer \(peer) is down") }
            var chunk = try await server.chunk(request)
            if !chunk.data.isEmpty, corruptNext.withLock({ let c = $0; $0 = false; return c }) {
                chunk.data[chunk.data.count / 2] ^= 0x40
            }
            return chunk
        }
    }

    final class Node: @unchecked Sendable {
        let name: String
        let directory: TemporaryDirectory
        let network: LocalNetwork
        let snapshots: LocalSnapshots
        var storage: Storage
        var replica: ReplicatedBroker
        var server: SnapshotServer

        init(name: String, network: LocalNetwork, snapshots: LocalSnapshots) throws {
            self.name = name
            self.network = network
            self.snapshots = snapshots
            directory = try TemporaryDirectory(prefix: "tern-snapshot-\(name)")
            (storage, replica, server) = try Self.open(name, directory, network, snapshots, planted: nil)
        }

        static func openStorage(_ directory: TemporaryDirectory) throws -> Storage {
            try Storage(directory: directory.path + "/data", databases: Broker.databaseNames + RaftLogStore.databaseNames,
                        settings: ReplicatedBrokerTests.storageSettings, logger: SnapshotTransferTests.logger)
        }

        static func open(_ name: String, _ directory: TemporaryDirectory, _ network: LocalNetwork, _ snapshots: LocalSnapshots,
                         planted: (@Sendable (Int) throws -> Void)?) throws -> (Storage, ReplicatedBroker, SnapshotServer) {
            try FileManager.default.createDirectory(atPath: directory.path + "/data", withIntermediateDirectories: true)
            let storage = try openStorage(directory)
            let id = RaftNodeID.of(name)
            let server = try SnapshotServer(storage: storage, settings: .init(directory: directory.path + "/snapshots"), logger: SnapshotTransferTests.logger)
            server.register(group: 1, databases: Broker.databaseNames)
            var installer = SnapshotInstaller(source: snapshots, directory: directory.path + "/snapshots")
            installer.chunkBytes = 4096  // many chunks per transfer
            installer.retryBackoff = .milliseconds(50)
            installer.planted = planted
            let replica = try ReplicatedBroker(group: 1, node: name, voters: SnapshotTransferTests.names, storage: storage,
                                               transport: network.transport(for: id), clock: ManualClock(),
                                               settings: SnapshotTransferTests.settings, installer: installer, logger: SnapshotTransferTests.logger)
            let group = replica.group
            network.register(id) { envelope in group.step(envelope.message) }
            snapshots.servers.withLock { $0[id] = server }
            replica.start()
            return (storage, replica, server)
        }

        var id: Raft.NodeID { RaftNodeID.of(name) }

        /// Stops the replica and closes its environment, as a crash would.
        func crash() async {
            network.isolate(id)
            snapshots.servers.withLock { _ = $0.removeValue(forKey: id) }
            replica.stop()
            await server.close()
            try? await Task.sleep(for: .milliseconds(300))  // let writes handed to the writer finish
            storage.close()
        }

        func restart(planted: (@Sendable (Int) throws -> Void)? = nil) async throws {
            (storage, replica, server) = try Self.open(name, directory, network, snapshots, planted: planted)
            network.heal(id)
        }

        deinit { directory.remove() }
    }

    static func makeCluster() async throws -> [Node] {
        let network = LocalNetwork()
        let snapshots = LocalSnapshots()
        let nodes = try names.map { try Node(name: $0, network: network, snapshots: snapshots) }
        return nodes
    }

    static func send(_ count: Int, to queue: QueueName, via nodes: [Node], tag: String) async throws {
        var sent = 0
        while sent < count {
            let serving = try await servingLeader(nodes)
            let batch = min(25, count - sent)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for k in 0..<batch {
                    let body = Array("\(tag)-\(sent + k)".utf8)
                    group.addTask { _ = try await serving.replica.broker.send(queue, [OutgoingMessage(body: body)]) }
                }
                try await group.waitForAll()
            }
            sent += batch
        }
    }

    static func servingLeader(_ nodes: [Node]) async throws -> Node {
        var found: Node?
        try await ReplicatedBrokerTests.eventually("a serving leader") {
            found = nodes.first { $0.replica.group.status.isServing }
            return found != nil
        }
        return found!
    }

    /// Waits until every node has applied the leader's commit index, then returns the dumps.
    static func convergedDumps(_ nodes: [Node]) async throws -> [[String]] {
        try await ReplicatedBrokerTests.eventually("replicas to apply everything") {
            let statuses = nodes.map { $0.replica.group.status }
            guard let commit = statuses.first(where: { $0.role == .leader })?.commitIndex else { return false }
            return statuses.allSatisfy { $0.appliedIndex >= commit && !$0.installingSnapshot }
        }
        return try nodes.map { try StateDump.lines(storage: $0.storage) }
    }

    static func storedEntries(_ node: Node) throws -> Int {
        let logStore = RaftLogStore(storage: node.storage)
        return try node.storage.read { txn in try logStore.entries(group: 1, from: 0, through: .max, in: txn).count }
    }

    @Test func theLogStaysBoundedInMemoryAndInLMDBOverALongRun() async throws {
        let nodes = try await Self.makeCluster()
        let queue = try QueueName("bounded")
        _ = try await Self.servingLeader(nodes).replica.broker.createOrUpdateQueue(queue, patch: .init())
        // Sampled all along the run, on every replica.
        let peaks = Mutex((entries: 0, applied: 0))
        let sampling = Task {
            while !Task.isCancelled {
                for node in nodes {
                    let status = node.replica.group.status
                    peaks.withLock {
                        $0.entries = max($0.entries, status.entriesInMemory)
                        $0.applied = max($0.applied, Int(status.appliedIndex - status.snapshotIndex))
                    }
                }
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
        for round in 0..<20 { try await Self.send(100, to: queue, via: nodes, tag: "r\(round)") }
        sampling.cancel()
        _ = try await Self.convergedDumps(nodes)
        for node in nodes {
            let status = node.replica.group.status
            #expect(status.snapshotIndex >= 1_900, "\(node.name) compacted its log (snapshot index \(status.snapshotIndex))")
            #expect(status.entriesInMemory < Self.logEntries, "\(node.name) holds \(status.entriesInMemory) entries in memory")
            #expect(try Self.storedEntries(node) < Self.logEntries, "\(node.name)'s LMDB log is bounded too")
        }
        let peak = peaks.withLock { $0 }
        // Applied entries past the snapshot point never reach the bound; the log may hold, on
        // top, entries not applied yet (a follower receives up to 64 appends ahead), but it
        // does not grow with the run (2,000 entries, 20 times the bound).
        #expect(peak.applied < Self.logEntries, "at most \(peak.applied) applied entries were kept")
        #expect(peak.entries < 5 * Self.logEntries, "at most \(peak.entries) entries were in memory during the run")
        let serving = try await Self.servingLeader(nodes)
        #expect(try serving.replica.broker.describeQueue(queue).counts.total == 2_000)
    }

    @Test func aFollowerStoppedWhileTheOthersCompactedCatchesUpBySnapshot() async throws {
        let nodes = try await Self.makeCluster()
        let queue = try QueueName("catch-up")
        let leader = try await Self.servingLeader(nodes)
        _ = try await leader.replica.broker.createOrUpdateQueue(queue, patch: .init())
        try await Self.send(50, to: queue, via: nodes, tag: "before")
        let follower = nodes.first { $0 !== leader }!
        await follower.crash()
        try await Self.send(400, to: queue, via: nodes, tag: "after")
        let received = try await Self.servingLeader(nodes).replica.broker.receive(queue, maxMessages: 7)
        #expect(received.count == 7)
        let lastIndexBefore = follower.replica.group.status.lastIndex
        let current = try await Self.servingLeader(nodes)
        #expect(current.replica.group.status.snapshotIndex > lastIndexBefore,
                "the others compacted past the stopped follower's log")

        try await follower.restart()
        let dumps = try await Self.convergedDumps(nodes)
        #expect(dumps[0] == dumps[1] && dumps[1] == dumps[2], "the follower reached the leader's state")
        #expect(follower.replica.group.snapshotCounts.installed == 1)
        #expect(follower.replica.group.snapshotCounts.bytesReceived > 0)
        #expect(!FileManager.default.fileExists(atPath: follower.directory.path + "/snapshots/incoming-group-1.snap"))

        // It goes on replicating from the log after the snapshot.
        try await Self.send(20, to: queue, via: nodes, tag: "later")
        let later = try await Self.convergedDumps(nodes)
        #expect(later[0] == later[1] && later[1] == later[2])
        #expect(follower.replica.group.snapshotCounts.installed == 1)
    }

    @Test func aCrashDuringAnInstallLeavesTheOldStateAndARestartInstalls() async throws {
        let nodes = try await Self.makeCluster()
        let queue = try QueueName("crash-install")
        let leader = try await Self.servingLeader(nodes)
        _ = try await leader.replica.broker.createOrUpdateQueue(queue, patch: .init())
        try await Self.send(60, to: queue, via: nodes, tag: "before")
        let before = try await Self.convergedDumps(nodes)
        let follower = nodes.first { $0 !== leader }!
        let oldDump = before[nodes.firstIndex { $0 === follower }!]
        let oldPoint = try follower.storage.read { txn in try RaftLogStore(storage: follower.storage).load(group: 1, in: txn).snapshot }
        await follower.crash()
        try await Self.send(400, to: queue, via: nodes, tag: "after")

        // The install fails half-way through its transaction, every time, until the node "crashes".
        let failed = Atomic<Int>(0)
        try await follower.restart(planted: { written in
            if written == 200 {
                failed.add(1, ordering: .relaxed)
                throw StorageError(.fileSystem, "planted crash in the middle of an install")
            }
        })
        try await ReplicatedBrokerTests.eventually("an install to fail") { failed.load(ordering: .relaxed) >= 1 }
        await follower.crash()

        let reopened = try Node.openStorage(follower.directory)
        #expect(try StateDump.lines(storage: reopened) == oldDump, "the old state is intact")
        #expect(try reopened.read { txn in try RaftLogStore(storage: reopened).load(group: 1, in: txn).snapshot } == oldPoint)
        reopened.close()

        try await follower.restart()
        let dumps = try await Self.convergedDumps(nodes)
        #expect(dumps[0] == dumps[1] && dumps[1] == dumps[2], "the retried install reached the leader's state")
        #expect(follower.replica.group.snapshotCounts.installed == 1)
    }

    @Test func aSnapshotDamagedInTransitIsRefusedAndFetchedAgain() async throws {
        let nodes = try await Self.makeCluster()
        let queue = try QueueName("checksum")
        let leader = try await Self.servingLeader(nodes)
        _ = try await leader.replica.broker.createOrUpdateQueue(queue, patch: .init())
        let follower = nodes.first { $0 !== leader }!
        await follower.crash()
        try await Self.send(300, to: queue, via: nodes, tag: "m")
        follower.snapshots.corruptNext.withLock { $0 = true }
        try await follower.restart()
        let dumps = try await Self.convergedDumps(nodes)
        #expect(dumps[0] == dumps[1] && dumps[1] == dumps[2])
        let counts = follower.replica.group.snapshotCounts
        #expect(counts.failures >= 1, "the damaged transfer was refused")
        #expect(counts.installed == 1)
    }

    /// The installing node takes no Raft messages; if no member can serve the snapshot (here:
    /// all refuse) and the leader is gone, the last follower needs its vote. It gives the
    /// install up after every member failed twice, goes back to its stored state and votes, a
    /// leader is elected, and the install succeeds once a member can serve.
    @Test func aFollowerThatCannotGetItsSnapshotGivesItUpSoTheOthersCanElectALeader() async throws {
        let nodes = try await Self.makeCluster()
        let queue = try QueueName("abandon")
        let leader = try await Self.servingLeader(nodes)
        _ = try await leader.replica.broker.createOrUpdateQueue(queue, patch: .init())
        let follower = nodes.first { $0 !== leader }!
        await follower.crash()
        try await Self.send(300, to: queue, via: nodes, tag: "m")
        follower.snapshots.refuseAll.withLock { $0 = true }
        try await follower.restart()
        try await ReplicatedBrokerTests.eventually("the follower to try to install") {
            follower.replica.group.snapshotCounts.failures >= 1
        }
        await leader.crash()
        let survivors = nodes.filter { $0 !== leader }
        // Still refused: a leader can be elected only with the follower's vote (2 of 3), which a
        // follower that kept waiting for its snapshot would never give.
        try await ReplicatedBrokerTests.eventually("a leader among the survivors") {
            survivors.contains { $0.replica.group.status.role == .leader }
        }
        follower.snapshots.refuseAll.withLock { $0 = false }
        try await Self.send(20, to: queue, via: survivors, tag: "after")
        let dumps = try await Self.convergedDumps(survivors)
        #expect(dumps[0] == dumps[1], "the follower installed a snapshot once one was served")
        #expect(follower.replica.group.snapshotCounts.installed >= 1)
    }

    /// The file reader under flipped bits, changed, removed and inserted bytes: an install
    /// either succeeds (a value changed) or throws a ``StorageError``, and a throw leaves the
    /// databases as they were (the transaction rolls back). Never a crash.
    @Test func mutatedSnapshotFiles_installOrAreRefused_neverCrash() async throws {
        let directory = try TemporaryDirectory(prefix: "tern-snapshot-fuzz")
        defer { directory.remove() }
        let source = try Storage(directory: directory.path, databases: Broker.databaseNames + RaftLogStore.databaseNames,
                                 settings: ReplicatedBrokerTests.storageSettings, logger: Self.logger)
        defer { source.close() }
        try await source.write { txn in
            for k in 0..<20 {
                try txn.put(source.database("messages"), [0, 0, 0, 1] + [UInt8(k)], Array(repeating: UInt8(k), count: k + 1))
            }
            try txn.put(source.database("queue_names"), Array("q".utf8), [0, 0, 0, 1])
            try RaftLogStore(storage: source).saveApplied(group: 1, 42, in: txn)
        }
        let path = directory.path + "/seed.snap"
        _ = try SnapshotFile.write(storage: source, group: 1, databases: Broker.databaseNames, to: path)
        let seed = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        func contents() throws -> [[UInt8]] {
            try source.read { txn in
                try (Broker.databaseNames + ["raft_state"]).flatMap { name in
                    try txn.withCursor(source.database(name)) { cursor in
                        var all: [[UInt8]] = []
                        var item = try cursor.first()
                        while let (key, value) = item { all.append(Array(name.utf8) + key + [0xFF] + value); item = try cursor.next() }
                        return all
                    }
                }
            }
        }
        let before = try contents()
        var random = SeededGenerator(seed: 0x5A_0117)
        var installed = 0, refused = 0
        for iteration in 0..<300 {
            var bytes = seed
            for _ in 0...(random.next() % 3) {
                let position = Int(random.next() % UInt64(bytes.count))
                switch random.next() % 4 {
                case 0: bytes[position] ^= 1 << (random.next() % 8)
                case 1: bytes[position] = UInt8(truncatingIfNeeded: random.next())
                case 2: bytes.remove(at: position)
                default: bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: position)
                }
            }
            let mutated = directory.path + "/mutated.snap"
            try Data(bytes).write(to: URL(fileURLWithPath: mutated))
            do {
                // Installed and then rolled back by the planted throw at the end, so each
                // iteration starts from the same state.
                _ = try await source.write { txn -> UInt64 in
                    _ = try SnapshotFile.install(path: mutated, group: 1, databases: Broker.databaseNames, storage: source, in: txn)
                    throw CancellationError()
                }
            } catch is CancellationError {
                installed += 1
            } catch {
                refused += 1
                #expect(error is StorageError, "iteration \(iteration): \(error)")
            }
        }
        #expect(installed > 0 && refused > 0, "installed \(installed), refused \(refused)")
        #expect(try contents() == before, "every transaction rolled back")
    }

    /// The serving side: one file at a time, reused for later requests it satisfies, replaced
    /// for a newer state (the old id is then `Conflict`), refused past this node's applied index.
    @Test func theSnapshotServerServesOneFileAtATime() async throws {
        let directory = try TemporaryDirectory(prefix: "tern-snapshot-server")
        defer { directory.remove() }
        let storage = try Storage(directory: directory.path + "/data", databases: Broker.databaseNames + RaftLogStore.databaseNames,
                                  settings: ReplicatedBrokerTests.storageSettings, logger: Self.logger)
        defer { storage.close() }
        let server = try SnapshotServer(storage: storage, settings: .init(directory: directory.path + "/snapshots"), logger: Self.logger)
        server.register(group: 1, databases: Broker.databaseNames)
        try await storage.write { txn in try RaftLogStore(storage: storage).saveApplied(group: 1, 10, in: txn) }
        let first = try await server.chunk(SnapshotChunkRequest(group: 1, snapshotID: 0, minApplied: 5, offset: 0, maxBytes: 8))
        #expect(first.info.applied == 10 && first.data.count == 8 && first.data == Array("TSNP".utf8) + [1, 0, 0, 0])
        let again = try await server.chunk(SnapshotChunkRequest(group: 1, snapshotID: 0, minApplied: 10, offset: 0, maxBytes: 8))
        #expect(again.snapshotID == first.snapshotID, "a request the file satisfies reuses it")
        await #expect(throws: TernError.self) {
            _ = try await server.chunk(SnapshotChunkRequest(group: 1, snapshotID: 0, minApplied: 11, offset: 0, maxBytes: 8))
        }
        try await storage.write { txn in try RaftLogStore(storage: storage).saveApplied(group: 1, 20, in: txn) }
        let newer = try await server.chunk(SnapshotChunkRequest(group: 1, snapshotID: 0, minApplied: 15, offset: 0, maxBytes: 8))
        #expect(newer.snapshotID != first.snapshotID && newer.info.applied == 20)
        do {
            _ = try await server.chunk(SnapshotChunkRequest(group: 1, snapshotID: first.snapshotID, minApplied: 5, offset: 8, maxBytes: 8))
            Issue.record("the replaced file was served")
        } catch {
            #expect(error.code == .conflict)
        }
        await #expect(throws: TernError.self) {
            _ = try await server.chunk(SnapshotChunkRequest(group: 1, snapshotID: newer.snapshotID, minApplied: 0, offset: newer.info.bytes + 1, maxBytes: 8))
        }
        await #expect(throws: TernError.self) {
            _ = try await server.chunk(SnapshotChunkRequest(group: 9, snapshotID: 0, minApplied: 0, offset: 0, maxBytes: 8))
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path + "/snapshots")
        #expect(files.count == 1, "one file at a time: \(files)")
        await server.close()
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path + "/snapshots").isEmpty)
    }

    @Test func verifyRefusesAFileWhoseChecksumDoesNotMatch() async throws {
        let directory = try TemporaryDirectory(prefix: "tern-snapshot-file")
        defer { directory.remove() }
        let storage = try Storage(directory: directory.path, databases: Broker.databaseNames + RaftLogStore.databaseNames,
                                  settings: ReplicatedBrokerTests.storageSettings, logger: Self.logger)
        defer { storage.close() }
        try await storage.write { txn in
            try txn.put(storage.database("queue_names"), Array("q".utf8), [0, 0, 0, 1])
            try RaftLogStore(storage: storage).saveApplied(group: 1, 42, in: txn)
        }
        let path = directory.path + "/s.snap"
        let info = try SnapshotFile.write(storage: storage, group: 1, databases: Broker.databaseNames, to: path)
        #expect(info.applied == 42)
        try SnapshotFile.verify(path: path, expected: info)
        let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        var bytes = original
        bytes[bytes.count - 2] ^= 1
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect {
            try SnapshotFile.verify(path: path, expected: info)
        } throws: { error in
            (error as? StorageError)?.code == .corruptRecord && "\(error)".contains("checksum mismatch")
        }
        // A file of another group is refused too, even with the right checksum.
        var other = info
        other.group = 2
        try Data(original).write(to: URL(fileURLWithPath: path))
        #expect(throws: StorageError.self) { try SnapshotFile.verify(path: path, expected: other) }
    }
}

/// The compaction rule alone (decision 116), on figures.
@Suite struct CompactionRuleTests {
    typealias Compaction = ReplicaGroup<BrokerStateMachine>.Compaction

    static func sizes(_ range: ClosedRange<UInt64>, bytes: Int) -> ReplicaGroup<BrokerStateMachine>.AppliedSizes {
        var sizes = ReplicaGroup<BrokerStateMachine>.AppliedSizes()
        for index in range { sizes.append(index, bytes: bytes) }
        return sizes
    }

    @Test func smallEntries_compactByCount_keepingTheCatchUpEntries() {
        let rule = Compaction()
        let few = Self.sizes(1...9_999, bytes: 100)
        #expect(rule.target(applied: 9_999, snapshotIndex: 0, sizes: few, followerMatches: []) == nil, "not due yet")
        let due = Self.sizes(1...10_000, bytes: 100)
        #expect(rule.target(applied: 10_000, snapshotIndex: 0, sizes: due, followerMatches: []) == 5_000)
    }

    @Test func largeEntries_compactByBytes() {
        let rule = Compaction()  // 64 MiB, keeping 32 MiB
        let entries = Self.sizes(1...63, bytes: 1 << 20)
        #expect(rule.target(applied: 63, snapshotIndex: 0, sizes: entries, followerMatches: []) == nil)
        let due = Self.sizes(1...64, bytes: 1 << 20)
        #expect(rule.target(applied: 64, snapshotIndex: 0, sizes: due, followerMatches: []) == 32, "32 entries of 1 MiB stay")
    }

    @Test func aReplicatingFollowerKeepsItsEntries_aDeadOneDoesNot() {
        let rule = Compaction(logEntries: 100)
        let sizes = Self.sizes(1...100, bytes: 10)
        #expect(rule.target(applied: 100, snapshotIndex: 0, sizes: sizes, followerMatches: [30]) == 30, "a follower 70 behind")
        #expect(rule.target(applied: 100, snapshotIndex: 0, sizes: sizes, followerMatches: [0]) == 50, "one past the bound gets a snapshot")
        #expect(rule.target(applied: 100, snapshotIndex: 0, sizes: sizes, followerMatches: [90, 30]) == 30)
    }

    @Test func sizesCountAfterCompactionAndRestartAfterAGap() {
        var sizes = Self.sizes(1...10, bytes: 5)
        #expect(sizes.bytes(after: 0) == 50 && sizes.bytes(after: 4) == 30 && sizes.bytes(after: 10) == 0)
        #expect(sizes.lowestIndex(keepingAtMost: 12, applied: 10) == 8)
        sizes.drop(through: 4)
        #expect(sizes.total == 30 && sizes.bytes(after: 2) == 30 && sizes.bytes(after: 6) == 20)
        sizes.append(20, bytes: 7)  // a gap: counting starts again
        #expect(sizes.total == 7 && sizes.first == 20)
    }
}
