import Foundation
public import Logging
import Synchronization
public import TernCore
public import TernReplication
public import TernStorage

/// One request of a snapshot transfer (`SnapshotChunk`, API key 63): a follower asks a peer
/// for the bytes of a snapshot file of `group` from `offset` on.
public struct SnapshotChunkRequest: Sendable, Hashable {
    public var group: UInt64
    /// The snapshot being read; 0 to start: the peer then serves a file whose applied index is
    /// at least ``minApplied`` (one it has, or one it makes now).
    public var snapshotID: UInt64
    /// The least applied index the state must be at (the Raft snapshot's index).
    public var minApplied: UInt64
    /// The first byte wanted.
    public var offset: UInt64
    /// The most bytes wanted (1 to ``SnapshotChunk/maxBytes``).
    public var maxBytes: UInt32

    public init(group: UInt64, snapshotID: UInt64, minApplied: UInt64, offset: UInt64, maxBytes: UInt32) {
        self.group = group
        self.snapshotID = snapshotID
        self.minApplied = minApplied
        self.offset = offset
        self.maxBytes = maxBytes
    }
}

/// The answer to a ``SnapshotChunkRequest``: which file, its size and checksum, and the bytes
/// from the requested offset on (empty only at the end of the file).
public struct SnapshotChunk: Sendable, Hashable {
    public var snapshotID: UInt64
    /// The file: group, applied index, size, CRC32C.
    public var info: SnapshotFile.Info
    public var offset: UInt64
    public var data: [UInt8]

    /// The most bytes one chunk carries: 4 MiB (a chunk travels in one frame; the peers'
    /// frames are at most 64 MiB).
    public static let maxBytes = 4 << 20

    public init(snapshotID: UInt64, info: SnapshotFile.Info, offset: UInt64, data: [UInt8]) {
        self.snapshotID = snapshotID
        self.info = info
        self.offset = offset
        self.data = data
    }
}

/// Where a follower's ``ReplicaGroup`` fetches snapshot chunks: the peer links between
/// `ternd` nodes (`PeerSnapshotClient`, TernServer), or an in-process source in tests.
public protocol SnapshotSource: Sendable {
    /// Asks `peer` for one chunk.
    /// - Throws: ``TernError`` from the peer (`Unavailable`: it has not applied far enough or
    ///   cannot make a file now; `Conflict`: the snapshot is no longer served), or a transport
    ///   error; the caller retries from the start.
    func chunk(_ request: SnapshotChunkRequest, from peer: Raft.NodeID) async throws -> SnapshotChunk
}

/// The serving side of snapshot transfers on one node: makes a snapshot file of a group's
/// state when a follower asks for one (``SnapshotFile/write(storage:group:databases:to:)``,
/// off the cooperative pool), serves it in chunks, and removes it once it has not been read
/// for ``Settings/maxIdle`` (decision 117).
///
/// One file at a time: a request for a newer state than the current file's replaces it (a
/// follower reading the old one is answered `Conflict` and starts again, on the new file);
/// followers that ask while a file is being made wait for it.
public actor SnapshotServer {
    public struct Settings: Sendable {
        /// Where snapshot files go (`DATA_DIR/snapshots`); emptied at start.
        public var directory: String
        /// How long a file stays after its last chunk was read. Default 60 s.
        public var maxIdle: Duration = .seconds(60)

        public init(directory: String) { self.directory = directory }
    }

    /// Counts since start, for metrics.
    public struct Counters: Sendable, Hashable {
        /// Snapshot files made, and chunk bytes sent.
        public var filesMade = 0
        public var bytesSent: UInt64 = 0
    }

    private struct Current {
        var id: UInt64
        var info: SnapshotFile.Info
        var path: String
        var lastUsed: ContinuousClock.Instant
    }

    let storage: Storage
    let settings: Settings
    let logger: Logger
    private nonisolated let databases = Mutex<[UInt64: [String]]>([:])
    private var current: Current?
    private var making: Task<Current, any Error>?
    private var sweeper: Task<Void, Never>?
    private nonisolated let counts = Mutex(Counters())

    /// - Throws: ``StorageError`` (`fileSystem`) when the directory cannot be made.
    public init(storage: Storage, settings: Settings, logger: Logger) throws {
        self.storage = storage
        self.settings = settings
        self.logger = logger
        try Self.prepare(directory: settings.directory)
    }

    /// Makes `directory` and removes what it holds (files of an earlier run).
    static func prepare(directory: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
                try FileManager.default.removeItem(atPath: directory + "/" + name)
            }
        } catch {
            throw StorageError(.fileSystem, "cannot prepare the snapshot directory \(directory): \(error)")
        }
    }

    /// Serves `group`, whose state machine keeps its state in `databases`.
    public nonisolated func register(group: UInt64, databases names: [String]) { databases.withLock { $0[group] = names } }

    public nonisolated var counters: Counters { counts.withLock { $0 } }

    /// Answers one chunk request.
    /// - Throws: ``TernError``: `InvalidParameter` (an unknown group, `maxBytes` out of range,
    ///   an offset past the end), `Conflict` (the snapshot id is no longer served),
    ///   `Unavailable` (this node has not applied `minApplied`, or the file cannot be made).
    public func chunk(_ request: SnapshotChunkRequest) async throws(TernError) -> SnapshotChunk {
        guard let names = databases.withLock({ $0[request.group] }) else {
            throw TernError(.invalidParameter, "this node serves no snapshots of group \(request.group)")
        }
        guard (1...UInt32(SnapshotChunk.maxBytes)).contains(request.maxBytes) else {
            throw TernError(.invalidParameter, "a snapshot chunk is 1–\(SnapshotChunk.maxBytes) bytes, \(request.maxBytes) were asked")
        }
        let file: Current
        if request.snapshotID != 0 {
            guard let current, current.id == request.snapshotID, current.info.group == request.group else {
                throw TernError(.conflict, "snapshot \(request.snapshotID) is no longer served; start again with snapshot id 0")
            }
            file = current
        } else if let current, current.info.group == request.group, current.info.applied >= request.minApplied {
            file = current
        } else {
            file = try await make(group: request.group, databases: names, minApplied: request.minApplied)
        }
        guard request.offset <= file.info.bytes else {
            throw TernError(.invalidParameter, "offset \(request.offset) is past the end of the snapshot (\(file.info.bytes) bytes)")
        }
        let count = Int(min(UInt64(request.maxBytes), file.info.bytes - request.offset))
        let data: [UInt8]
        do {
            let input = try InputFile(path: file.path)
            defer { input.close() }
            data = try input.read(count: count, at: request.offset)
        } catch {
            throw TernError(.unavailable, "cannot read the snapshot file: \(error)")
        }
        current?.lastUsed = .now
        counts.withLock { $0.bytesSent += UInt64(data.count) }
        return SnapshotChunk(snapshotID: file.id, info: file.info, offset: request.offset, data: data)
    }

    /// Makes a file of `group` at an applied index ≥ `minApplied`, or waits for the one being made.
    private func make(group: UInt64, databases names: [String], minApplied: UInt64) async throws(TernError) -> Current {
        if let making {
            if let made = try? await making.value, made.info.group == group, made.info.applied >= minApplied { return made }
        }
        let storage = self.storage
        let applied = (try? storage.read { txn in try RaftLogStore(storage: storage).loadApplied(group: group, in: txn) }) ?? 0
        guard applied >= minApplied else {
            throw TernError(.unavailable, "this node has applied \(applied) entries of group \(group), the snapshot needs \(minApplied)")
        }
        remove()
        let id = UInt64.random(in: 1...UInt64.max)
        let path = settings.directory + "/group-\(group)-\(id).snap"
        let task = Task.detached { () throws -> Current in
            let info = try SnapshotFile.write(storage: storage, group: group, databases: names, to: path)
            return Current(id: id, info: info, path: path, lastUsed: .now)
        }
        making = task
        let made: Current
        do {
            made = try await task.value
        } catch {
            if making == task { making = nil }
            try? FileManager.default.removeItem(atPath: path)
            throw TernError(.unavailable, "cannot make a snapshot of group \(group): \(error)")
        }
        if making == task { making = nil }
        remove()
        current = made
        counts.withLock { $0.filesMade += 1 }
        logger.info("snapshot file made", metadata: [
            "tern.group": "\(group)", "tern.applied": "\(made.info.applied)", "tern.bytes": "\(made.info.bytes)",
        ])
        startSweeper()
        return made
    }

    private func remove() {
        if let current { try? FileManager.default.removeItem(atPath: current.path) }
        current = nil
    }

    private func startSweeper() {
        guard sweeper == nil else { return }
        let interval = settings.maxIdle
        sweeper = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval / 4)
                guard let self else { return }
                if await self.sweep() { return }
            }
        }
    }

    /// Removes the current file when idle past ``Settings/maxIdle``.
    /// - Returns: whether no file remains (the sweeper stops).
    func sweep() -> Bool {
        if let current, ContinuousClock.now - current.lastUsed >= settings.maxIdle {
            logger.debug("snapshot file removed (idle)", metadata: ["tern.group": "\(current.info.group)"])
            remove()
        }
        if current == nil && making == nil {
            sweeper = nil
            return true
        }
        return false
    }

    /// Removes the current file, e.g. at shutdown.
    public func close() {
        sweeper?.cancel()
        sweeper = nil
        remove()
    }
}
