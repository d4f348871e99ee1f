internal import CLMDB
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The one thread that owns LMDB write transactions. Operations submitted while a
/// transaction commits wait in `pending` and are applied together in the next transaction,
/// so one sync carries many requests (group commit).
final class GroupCommitWriter: @unchecked Sendable {
    struct Job {
        var grows: Bool
        /// Whether the job needs its commit synced; a batch of jobs that all say no commits
        /// without a sync (the next synced commit makes it durable with everything before it).
        var durable = true
        /// Whether the job may commit before durable jobs submitted earlier (see
        /// ``Storage/submit(grows:durable:overtakesSyncs:_:completion:)``); never durable.
        var overtakesSyncs = false
        var run: (WriteTransaction) throws -> Void
        var complete: (Result<Void, any Error>) -> Void
    }

    private let env: OpaquePointer
    /// The data directory, whose file system's free space caps the map (``SpaceCheck``).
    private let directory: String
    private let settings: Storage.Settings
    private let logger: Logger
    private let condition = NSCondition()
    private var pending: [Job] = []
    private var running = true
    private var stopped = false
    private let exited = DispatchSemaphore(value: 0)
    private let observerLock = NSLock()
    private var observer: (@Sendable (CommitReport) -> Void)?

    func setObserver(_ observer: (@Sendable (CommitReport) -> Void)?) {
        observerLock.withLock { self.observer = observer }
    }

    init(env: OpaquePointer, directory: String, settings: Storage.Settings, logger: Logger) {
        self.env = env
        self.directory = directory
        self.settings = settings
        self.logger = logger
        let thread = Thread { [self] in loop() }
        thread.name = "tern-writer"
        thread.start()
    }

    func submit(_ job: Job) {
        condition.lock()
        guard running else {
            condition.unlock()
            job.complete(.failure(StorageError(.closed, "storage is closed")))
            return
        }
        pending.append(job)
        if pending.count == 1 { condition.signal() }
        condition.unlock()
    }

    /// Returns true the first time (the caller then closes the environment).
    func stop() -> Bool {
        condition.lock()
        if stopped {
            condition.unlock()
            return false
        }
        stopped = true
        running = false
        condition.signal()
        condition.unlock()
        exited.wait()
        return true
    }

    private func loop() {
        while true {
            condition.lock()
            while pending.isEmpty && running { condition.wait() }
            if pending.isEmpty && !running {
                condition.unlock()
                break
            }
            let take = min(pending.count, settings.maxBatchOperations)
            let batch = Array(pending.prefix(take))
            pending.removeFirst(take)
            condition.unlock()
            // Jobs that may overtake syncs commit first, in a transaction of their own without a
            // sync, rather than wait for the durable jobs' sync (a replica's apply of entries
            // already durable in its log, behind the next entries' append).
            if settings.durable, batch.contains(where: \.overtakesSyncs), batch.contains(where: \.durable) {
                process(batch.filter(\.overtakesSyncs))
                process(batch.filter { !$0.overtakesSyncs })
            } else {
                process(batch)
            }
        }
        exited.signal()
    }

    /// Applies `batch` in one transaction. An operation that throws before writing is simply
    /// failed; one that throws after writing (or hits `MDB_MAP_FULL`, which poisons the
    /// transaction) makes the writer abort and retry the batch without it.
    private func process(_ batch: [Job]) {
        let started = ContinuousClock.now
        // Reported before the writers are answered, so that a writer that returned sees its
        // commit in the statistics.
        func notify(committed: Bool) {
            if let observer = observerLock.withLock({ self.observer }) {
                observer(CommitReport(duration: ContinuousClock.now - started, operations: batch.count, committed: committed))
            }
        }
        var failures = [Int: any Error]()
        var space = SpaceCheck(env: env, limit: Self.growthLimit(env: env, directory: directory, settings: settings))
        attempts: while true {
            var txnPointer: OpaquePointer?
            let rc = mdb_txn_begin(env, nil, 0, &txnPointer)
            guard rc == MDB_SUCCESS, let txnPointer else {
                let error = StorageError(.lmdb, "begin write transaction failed: \(String(cString: mdb_strerror(rc)))", lmdbCode: rc)
                notify(committed: false)
                for job in batch { job.complete(.failure(error)) }
                return
            }
            let txn = WriteTransaction(txn: txnPointer)
            for (index, job) in batch.enumerated() where failures[index] == nil {
                txn.didWrite = false
                do {
                    let refused = StorageError(.mapFull, "storage is full: sends are refused until space is freed")
                    if job.grows && (space.isExhausted(before: index) || space.wouldExceed(writtenBytes: txn.bytesWritten)) {
                        space.exhausted(at: index)
                        throw refused
                    }
                    try job.run(txn)
                    // Pages written by this transaction count against the limit too: a batch of
                    // many sends must not eat the headroom reserved for deletes.
                    if job.grows && space.wouldExceed(writtenBytes: txn.bytesWritten) {
                        space.exhausted(at: index)
                        txn.didWrite = true
                        throw refused
                    }
                } catch {
                    if (error as? StorageError)?.code == .mapFull { space.exhausted(at: index) }
                    failures[index] = error
                    let poisoned = (error as? StorageError)?.lmdbCode != nil
                    if txn.didWrite || poisoned {
                        mdb_txn_abort(txnPointer)
                        continue attempts
                    }
                }
            }
            // A batch of nothing but non-durable jobs (state a replication log can rebuild)
            // commits without a sync; LMDB stays consistent and rolls back to the last synced
            // commit after a crash.
            let skipSync = settings.durable && !batch.contains { $0.durable }
            if skipSync { mdb_env_set_flags(env, UInt32(MDB_NOSYNC), 1) }
            let commit = mdb_txn_commit(txnPointer)
            if skipSync { mdb_env_set_flags(env, UInt32(MDB_NOSYNC), 0) }
            if commit != MDB_SUCCESS {
                let error: StorageError
                do { try check(commit, "commit"); error = StorageError(.lmdb, "commit") } catch let e { error = e }
                logger.error("group commit failed", metadata: ["tern.error": "\(error)"])
                notify(committed: false)
                for job in batch { job.complete(.failure(error)) }
                return
            }
            notify(committed: true)
            break
        }
        for (index, job) in batch.enumerated() {
            if let failure = failures[index] {
                job.complete(.failure(failure))
            } else {
                job.complete(.success(()))
            }
        }
    }

    /// The most bytes the environment may use before operations that add data are refused: the
    /// map size less the delete reserve, or — when the data directory's file system cannot hold
    /// that much — what the file already takes plus the file system's free bytes, less a reserve
    /// of an eighth of that (2 MiB–512 MiB), so that deletes, acks and a restart (which needs
    /// ``Storage/minimumFreeBytes``) still find room on a full disk (issue 14, item 5).
    static func growthLimit(env: OpaquePointer, directory: String, settings: Storage.Settings) -> Int {
        let mapLimit = settings.maxMapBytes - settings.effectiveReservedBytes
        var fs = statvfs()
        var info = MDB_envinfo()
        var stat = MDB_stat()
        guard statvfs(directory, &fs) == 0, mdb_env_info(env, &info) == MDB_SUCCESS, mdb_env_stat(env, &stat) == MDB_SUCCESS else {
            return mapLimit
        }
        let free = Int(fs.f_bavail) * Int(fs.f_frsize)
        let capacity = (info.me_last_pgno + 1) * Int(stat.ms_psize) + free
        guard capacity < settings.maxMapBytes else { return mapLimit }
        let reserve = max(2 * Storage.minimumFreeBytes, min(capacity / 8, 512 << 20))
        return min(mapLimit, capacity - reserve)
    }

    /// Whether the space in use — allocated pages minus free-listed pages as of the last commit,
    /// plus twice the key and value bytes this batch has written (B-tree page overhead) — reaches
    /// the map limit minus the reserved headroom. Reads the free list only near the limit.
    struct SpaceCheck {
        let env: OpaquePointer
        let limit: Int
        /// The first operation of the batch that was refused for space; later sends are refused
        /// at once (earlier ones, re-run after an abort, still fit).
        private var exhaustedAt: Int?
        private var committedUse: Int?
        private var allocated = 0
        private var pageSize = 4096

        init(env: OpaquePointer, limit: Int) {
            self.env = env
            self.limit = limit
            var info = MDB_envinfo()
            var stat = MDB_stat()
            if mdb_env_info(env, &info) == MDB_SUCCESS, mdb_env_stat(env, &stat) == MDB_SUCCESS {
                pageSize = Int(stat.ms_psize)
                allocated = (info.me_last_pgno + 1) * pageSize
            }
        }

        func isExhausted(before index: Int) -> Bool { exhaustedAt.map { $0 < index } ?? false }

        mutating func exhausted(at index: Int) { exhaustedAt = min(exhaustedAt ?? index, index) }

        mutating func wouldExceed(writtenBytes: Int) -> Bool {
            let pending = writtenBytes * 2
            if allocated + pending < limit { return false }
            if committedUse == nil {
                var txn: OpaquePointer?
                var free = 0
                if mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn) == MDB_SUCCESS {
                    free = (try? countFreePages(txn!)) ?? 0
                    mdb_txn_abort(txn)
                }
                committedUse = allocated - free * pageSize
            }
            return committedUse! + pending >= limit
        }
    }

    /// Whether used space (allocated pages minus free-listed pages) has reached the map limit
    /// minus the reserved headroom. Cheap unless the file is near its limit.
    func nearlyFull(env: OpaquePointer) -> Bool {
        var info = MDB_envinfo()
        var stat = MDB_stat()
        guard mdb_env_info(env, &info) == MDB_SUCCESS, mdb_env_stat(env, &stat) == MDB_SUCCESS else { return false }
        let pageSize = Int(stat.ms_psize)
        let limit = Self.growthLimit(env: env, directory: directory, settings: settings)
        let allocated = (info.me_last_pgno + 1) * pageSize
        if allocated < limit { return false }
        var txn: OpaquePointer?
        guard mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn) == MDB_SUCCESS else { return true }
        defer { mdb_txn_abort(txn) }
        let free = (try? countFreePages(txn!)) ?? 0
        return allocated - free * pageSize >= limit
    }
}

/// What one group commit did, reported to ``Storage/setCommitObserver(_:)``.
public struct CommitReport: Sendable {
    /// From the start of the write transaction to the end of its commit (and sync when durable).
    public var duration: Duration
    /// Operations (``Storage/write(grows:_:)`` calls) the batch carried, failed ones included.
    public var operations: Int
    /// Whether the transaction committed (false when LMDB failed to begin or commit it).
    public var committed: Bool
}
