internal import CLMDB
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import Logging

/// The LMDB environment of one node's data directory, with one writer thread that batches
/// concurrent write operations into shared transactions (group commit).
///
/// ```swift
/// let storage = try Storage(directory: "./data", databases: ["messages"], logger: logger)
/// let messages = storage.database("messages")
/// try await storage.write { txn in try txn.put(messages, key, value) }   // durable on return
/// let value = try storage.read { txn in try txn.get(messages, key) }
/// ```
///
/// Threading (LMDB discipline): the environment is opened with `MDB_NOTLS`, so read
/// transactions may run on any thread; write transactions run only on the writer thread.
/// No transaction outlives the closure it was given to, and none is held across an `await`.
public final class Storage: @unchecked Sendable {
    /// Settings of the storage engine.
    public struct Settings: Sendable {
        /// The largest the data file may grow, in bytes (the LMDB map size). The file grows on
        /// demand up to this limit. Default 64 GiB.
        public var maxMapBytes: Int = 64 << 30
        /// Bytes kept free for deletes, acks and purges once sends are refused, in bytes.
        /// nil (the default) means one eighth of ``maxMapBytes``, clamped to 1 MiB…512 MiB.
        public var reservedBytes: Int? = nil
        /// The most operations one group-commit transaction carries. Default 4,096.
        public var maxBatchOperations: Int = 4096
        /// Whether each commit is synced to disk before writers are answered (default true).
        /// false (`MDB_NOSYNC`) is for throw-away benchmarks and tests only: a crash of the OS
        /// may lose acknowledged writes.
        public var durable: Bool = true
        /// The most concurrent read transactions (`mdb_env_set_maxreaders`). Default 510.
        public var maxReaders: Int = 510
        /// Open the environment read-only (`MDB_RDONLY`): for inspection tools such as `tern-lmdb`,
        /// safe beside a running broker. No writer thread is started, no database is created
        /// (names that do not exist are skipped; see ``Storage/hasDatabase(_:)``), and
        /// ``Storage/write(grows:_:)`` fails with ``StorageError/Code/closed``. Default false.
        public var readOnly: Bool = false

        public init() {}

        /// The headroom in bytes actually reserved.
        public var effectiveReservedBytes: Int {
            reservedBytes ?? min(max(maxMapBytes / 8, 1 << 20), 512 << 20)
        }
    }

    /// Facts about the environment (`mdb_env_info`, `mdb_env_stat`).
    public struct EnvironmentInfo: Sendable, Hashable {
        /// The map size (the file's size limit), in bytes.
        public var mapSize: Int
        /// The page size, in bytes.
        public var pageSize: Int
        /// The highest page number in use (pages 0…lastPage are allocated in the file).
        public var lastPage: Int
        /// The id of the last committed transaction.
        public var lastTransactionID: Int
        /// Reader slots configured.
        public var maxReaders: Int
        /// Reader slots in use.
        public var readersInUse: Int
        /// Bytes of the file in use: allocated pages minus free-listed pages.
        public var usedBytes: Int
        /// Pages on LMDB's free list, reusable by later writes.
        public var freePages: Int
    }

    public let directory: String
    public let settings: Settings
    let env: OpaquePointer
    private var databases: [String: Database] = [:]
    private let writer: GroupCommitWriter?
    private let logger: Logger
    private let readOnlyClosed = NSLock()
    private var readOnlyIsClosed = false

    /// Opens (creating if needed) the environment in `directory` with the named databases.
    ///
    /// Clears reader slots left by dead processes (`mdb_reader_check`).
    /// - Parameters:
    ///   - directory: the data directory; created if missing. Holds `data.mdb` and `lock.mdb`.
    ///   - databases: names of the B-trees to open or create.
    /// - Throws: ``StorageError`` when the directory cannot be created or LMDB cannot open it
    ///   (for example another process holds it with incompatible settings).
    public init(directory: String, databases names: [String], settings: Settings = Settings(), logger: Logger) throws {
        self.directory = directory
        self.settings = settings
        self.logger = logger
        if !settings.readOnly {
            try Self.createDirectory(directory)
            try Self.checkFreeSpace(directory, settings: settings)
        }
        var env: OpaquePointer?
        try check(mdb_env_create(&env), "mdb_env_create")
        do {
            try check(mdb_env_set_mapsize(env, settings.maxMapBytes), "set map size")
            try check(mdb_env_set_maxdbs(env, MDB_dbi(max(names.count, 1) + 4)), "set max databases")
            try check(mdb_env_set_maxreaders(env, UInt32(settings.maxReaders)), "set max readers")
            var flags = UInt32(MDB_NOTLS | MDB_NORDAHEAD)
            if !settings.durable { flags |= UInt32(MDB_NOSYNC) }
            if settings.readOnly { flags |= UInt32(MDB_RDONLY) }
            try check(mdb_env_open(env, directory, flags, 0o644), "open environment at \(directory)")
        } catch {
            mdb_env_close(env)
            throw error
        }
        self.env = env!
        var dead: Int32 = 0
        mdb_reader_check(env, &dead)
        if dead > 0 { logger.info("cleared stale LMDB readers", metadata: ["tern.readers": "\(dead)"]) }

        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, settings.readOnly ? UInt32(MDB_RDONLY) : 0, &txn), "begin")
        for name in names {
            var dbi: MDB_dbi = 0
            let rc = mdb_dbi_open(txn, name, settings.readOnly ? 0 : UInt32(MDB_CREATE), &dbi)
            if rc == MDB_NOTFOUND && settings.readOnly { continue }
            if rc != MDB_SUCCESS {
                mdb_txn_abort(txn)
                mdb_env_close(env)
                try check(rc, "open database \(name)")
            }
            databases[name] = Database(dbi: dbi, name: name)
        }
        try check(mdb_txn_commit(txn), "commit database creation")
        writer = settings.readOnly ? nil : GroupCommitWriter(env: env!, directory: directory, settings: settings, logger: logger)
    }

    /// Free bytes the data directory's file system must have at open, in bytes: LMDB maps
    /// its lock file and touches its pages, and on a full tmpfs that is `SIGBUS`, not an error.
    static let minimumFreeBytes = 1 << 20

    /// Creates `directory` and its missing parents (mode 0755).
    /// - Throws: ``StorageError`` `fileSystem`, one line naming the path and the reason.
    static func createDirectory(_ directory: String) throws(StorageError) {
        var path = directory.hasPrefix("/") ? "" : "."
        for component in directory.split(separator: "/") {
            path += "/" + component
            if mkdir(path, 0o755) != 0 && errno != EEXIST {
                let reason = String(cString: strerror(errno))
                throw StorageError(.fileSystem, "cannot create the data directory \(directory): \(reason) (at \(path))")
            }
        }
        var status = stat()
        guard stat(directory, &status) == 0 else {
            throw StorageError(.fileSystem, "cannot open the data directory \(directory): \(String(cString: strerror(errno)))")
        }
        guard status.st_mode & S_IFMT == S_IFDIR else {
            throw StorageError(.fileSystem, "the data directory \(directory) exists and is not a directory")
        }
    }

    /// Checks the free space of `directory`'s file system and allocates LMDB's lock file in
    /// full, so that a full file system fails the open with a clear message.
    /// - Throws: ``StorageError`` `fileSystem` naming the path, the free bytes and the need.
    static func checkFreeSpace(_ directory: String, settings: Settings) throws(StorageError) {
        var info = statvfs()
        if statvfs(directory, &info) == 0 {
            let free = Int(info.f_bavail) * Int(info.f_frsize)
            guard free >= minimumFreeBytes else {
                throw StorageError(.fileSystem, "the file system of the data directory \(directory) is full: \(free) bytes free, "
                    + "at least \(minimumFreeBytes) needed to open it; free space and start again")
            }
        }
        // LMDB's lock file, mapped shared: a 192-byte header (`MDB_txninfo`, first reader
        // slot included) and a 64-byte slot per further reader, the size `mdb_env_open` gives it.
        let lockPath = directory + "/lock.mdb"
        let lockBytes = settings.maxReaders * 64 + 128
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw StorageError(.fileSystem, "cannot open \(lockPath): \(String(cString: strerror(errno)))")
        }
        defer { closeDescriptor(fd) }
        var status = stat()
        if fstat(fd, &status) == 0 && Int(status.st_size) >= lockBytes { return }
        let rc = posix_fallocate(fd, 0, off_t(lockBytes))
        if rc == ENOSPC || rc == EDQUOT {
            throw StorageError(.fileSystem, "the file system of the data directory \(directory) is full: cannot allocate \(lockPath)")
        }
    }

    /// Whether database `name` was opened (always true for names passed to `init` unless the
    /// environment is read-only and the database does not exist).
    public func hasDatabase(_ name: String) -> Bool { databases[name] != nil }

    /// Registers `observer`, called on the writer thread after every group commit (successful
    /// or not) with its duration and size; replaces any previous observer. Keep it cheap (it
    /// delays the next batch): record a metric, never block.
    public func setCommitObserver(_ observer: (@Sendable (CommitReport) -> Void)?) {
        writer?.setObserver(observer)
    }

    /// The database opened under `name`. Traps when `name` was not passed to `init`.
    public func database(_ name: String) -> Database {
        guard let database = databases[name] else { preconditionFailure("database \(name) was not opened") }
        return database
    }

    /// Runs `body` in a short read-only transaction on the calling thread.
    ///
    /// The snapshot is the state of the last commit. Do not call from the writer thread (inside a
    /// ``write(grows:_:)`` body use the write transaction instead).
    /// - Throws: what `body` throws, or ``StorageError`` when LMDB cannot start the transaction.
    public func read<T>(_ body: (ReadTransaction) throws -> T) throws -> T {
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn), "begin read")
        defer { mdb_txn_abort(txn) }
        return try body(ReadTransaction(txn: txn!))
    }

    /// Runs `body` on the writer thread inside the current group-commit transaction and returns
    /// its result once that transaction has committed (and, when durable, synced).
    ///
    /// `body` must be deterministic and free of side effects outside the transaction: the writer
    /// may run it more than once when another operation of the same batch fails after writing
    /// (the batch is then retried without the failing operation).
    /// - Parameters:
    ///   - grows: whether the operation adds data (a send). Such operations are refused with
    ///     ``StorageError/Code/mapFull`` once the map is within ``Settings/reservedBytes`` of
    ///     its limit, so that operations that free space keep working.
    /// - Throws: what `body` throws (nothing of it is committed), ``StorageError/Code/mapFull``,
    ///   or ``StorageError/Code/closed`` after ``close()``.
    public func write<T: Sendable>(grows: Bool = false, _ body: @escaping @Sendable (WriteTransaction) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let box = ResultBox<T>()
            let job = GroupCommitWriter.Job(
                grows: grows,
                run: { txn in box.value = try body(txn) },
                complete: { result in
                    switch result {
                    case .success: continuation.resume(returning: box.value!)
                    case .failure(let error): continuation.resume(throwing: error)
                    }
                })
            guard let writer else {
                job.complete(.failure(StorageError(.closed, "storage is open read-only")))
                return
            }
            writer.submit(job)
        }
    }

    /// Queues `body` for the writer thread like ``write(grows:_:)`` and returns at once;
    /// `completion` runs on the writer thread once the group-commit transaction holding `body`
    /// committed (and synced), or with the error `body` threw (nothing of it was committed).
    ///
    /// Bodies submitted one after another from one thread run in that order, in the same or
    /// in consecutive transactions: a caller that must persist, then apply, several records
    /// submits them all at once and pays one sync when they fit one batch.
    ///
    /// - Parameters:
    ///   - durable: false for state that can be rebuilt from something already durable (a
    ///     replica applying entries of its synced Raft log): a batch holding only such bodies
    ///     commits without a sync, and a crash may lose it (never partly).
    ///   - overtakesSyncs: true (with `durable` false) for a body that depends on none of the
    ///     durable bodies queued before it: when one batch would hold both, such bodies commit
    ///     first, in a transaction of their own without a sync, instead of waiting for the
    ///     others' sync; they keep their order among themselves. Default false.
    public func submit<T: Sendable>(grows: Bool = false, durable: Bool = true, overtakesSyncs: Bool = false,
                                    _ body: @escaping @Sendable (WriteTransaction) throws -> T,
                                    completion: @escaping @Sendable (Result<T, any Error>) -> Void) {
        precondition(!(durable && overtakesSyncs), "a durable body cannot overtake syncs")
        let box = ResultBox<T>()
        let job = GroupCommitWriter.Job(
            grows: grows,
            durable: durable,
            overtakesSyncs: overtakesSyncs,
            run: { txn in box.value = try body(txn) },
            complete: { result in
                switch result {
                case .success: completion(.success(box.value!))
                case .failure(let error): completion(.failure(error))
                }
            })
        guard let writer else {
            job.complete(.failure(StorageError(.closed, "storage is open read-only")))
            return
        }
        writer.submit(job)
    }

    /// Facts about the environment, including used and free pages.
    public func info() throws -> EnvironmentInfo {
        var info = MDB_envinfo()
        try check(mdb_env_info(env, &info), "env info")
        var stat = MDB_stat()
        try check(mdb_env_stat(env, &stat), "env stat")
        let free = try read { txn in try countFreePages(txn.txn) }
        let pageSize = Int(stat.ms_psize)
        return EnvironmentInfo(
            mapSize: info.me_mapsize, pageSize: pageSize, lastPage: info.me_last_pgno,
            lastTransactionID: info.me_last_txnid, maxReaders: Int(info.me_maxreaders),
            readersInUse: Int(info.me_numreaders), usedBytes: (info.me_last_pgno + 1 - free) * pageSize,
            freePages: free)
    }

    /// Whether the space used as of the last commit has reached the map limit minus the reserved
    /// headroom (sends are then refused; a batch may refuse sends earlier, counting its own writes).
    public var isNearlyFull: Bool { writer?.nearlyFull(env: env) ?? false }

    /// Stops the writer after the operations already submitted have committed, then closes the
    /// environment. Later ``write(grows:_:)`` calls fail with ``StorageError/Code/closed``.
    public func close() {
        if let writer {
            if writer.stop() { mdb_env_close(env) }
            return
        }
        let first = readOnlyClosed.withLock {
            defer { readOnlyIsClosed = true }
            return !readOnlyIsClosed
        }
        if first { mdb_env_close(env) }
    }
}

final class ResultBox<T>: @unchecked Sendable {
    var value: T?
}

/// Counts the pages on LMDB's free list (database 0, `FREE_DBI`): each value is an ID list
/// whose first word is its length (see `mdb_stat -f`).
func countFreePages(_ txn: OpaquePointer) throws(StorageError) -> Int {
    var cursor: OpaquePointer?
    try check(mdb_cursor_open(txn, 0, &cursor), "open free-list cursor")
    defer { mdb_cursor_close(cursor) }
    var key = MDB_val(), value = MDB_val()
    var total = 0
    var op = MDB_FIRST
    while mdb_cursor_get(cursor, &key, &value, op) == MDB_SUCCESS {
        if value.mv_size >= MemoryLayout<Int>.size, let data = value.mv_data {
            total += data.loadUnaligned(as: Int.self)
        }
        op = MDB_NEXT
    }
    return total
}

/// `close(2)`, named apart from ``Storage/close()``.
private func closeDescriptor(_ fd: Int32) {
    #if canImport(Glibc)
    _ = Glibc.close(fd)
    #elseif canImport(Darwin)
    _ = Darwin.close(fd)
    #endif
}
