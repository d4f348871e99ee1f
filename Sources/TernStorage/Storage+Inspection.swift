internal import CLMDB
import Foundation

/// Inspection and backup of an environment, for `tern-lmdb` and the broker's metrics.
extension Storage {
    /// One slot of LMDB's reader table (`mdb_reader_list`).
    public struct ReaderSlot: Sendable, Hashable {
        /// The process holding the slot.
        public var processID: Int
        /// The thread (or, with `MDB_NOTLS`, the transaction object) holding it, as LMDB prints it.
        public var thread: String
        /// The snapshot (transaction id) the reader pins; nil when the slot is idle ("-").
        public var transactionID: Int?
    }

    /// The names of every named database in the environment (the keys of LMDB's main
    /// database), in byte order, whether or not this ``Storage`` opened them.
    /// - Throws: ``StorageError`` when LMDB fails.
    public func namedDatabases() throws -> [String] {
        try read { txn in
            var cursor: OpaquePointer?
            try check(mdb_cursor_open(txn.txn, 1 /* MAIN_DBI */, &cursor), "open main-database cursor")
            defer { mdb_cursor_close(cursor) }
            var key = MDB_val(), value = MDB_val()
            var names = [String]()
            var op = MDB_FIRST
            while mdb_cursor_get(cursor, &key, &value, op) == MDB_SUCCESS {
                names.append(String(decoding: TernStorage.copy(key), as: UTF8.self))
                op = MDB_NEXT
            }
            return names
        }
    }

    /// Entries, pages and depth of the main database (`mdb_env_stat`): the B-tree that holds
    /// the names of the named databases.
    public func mainStatistics() throws(StorageError) -> DatabaseStatistics {
        var stat = MDB_stat()
        try check(mdb_env_stat(env, &stat), "env stat")
        return DatabaseStatistics(
            entries: Int(stat.ms_entries), depth: Int(stat.ms_depth), branchPages: Int(stat.ms_branch_pages),
            leafPages: Int(stat.ms_leaf_pages), overflowPages: Int(stat.ms_overflow_pages), pageSize: Int(stat.ms_psize))
    }

    /// Writes a consistent copy of the environment to the existing, empty directory `path`
    /// (`mdb_env_copy2`), from one read snapshot: safe while the broker writes (a hot backup).
    ///
    /// Runs on the calling thread and blocks it for the length of the copy; the snapshot is
    /// held (pinning its pages) until the copy ends.
    /// - Parameters:
    ///   - compact: omit free pages and renumber (`MDB_CP_COMPACT`); slower, smaller.
    /// - Throws: ``StorageError`` when the directory is missing or not empty, or the copy fails.
    public func copy(to path: String, compact: Bool) throws(StorageError) {
        try check(mdb_env_copy2(env, path, compact ? UInt32(MDB_CP_COMPACT) : 0), "copy environment to \(path)")
    }

    /// The slots of LMDB's reader table that are in use.
    /// - Throws: ``StorageError`` when LMDB fails.
    public func readerSlots() throws(StorageError) -> [ReaderSlot] {
        let box = LineBox()
        let context = Unmanaged.passRetained(box)
        defer { context.release() }
        let rc = mdb_reader_list(env, { message, context in
            guard let message, let context else { return 0 }
            Unmanaged<LineBox>.fromOpaque(context).takeUnretainedValue().lines.append(String(cString: message))
            return 0
        }, context.toOpaque())
        if rc < 0 { try check(rc, "list readers") }
        // Lines look like "    pid     thread     txnid" (header) then "%10d %zx %-20s".
        return box.lines.dropFirst().compactMap { line in
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\n" })
            guard fields.count >= 3, let pid = Int(fields[0]) else { return nil }
            return ReaderSlot(processID: pid, thread: String(fields[1]), transactionID: Int(fields[2]))
        }
    }

    /// Clears reader slots left by processes that no longer exist (`mdb_reader_check`).
    /// - Returns: the number of slots cleared.
    public func clearStaleReaders() throws(StorageError) -> Int {
        var dead: Int32 = 0
        try check(mdb_reader_check(env, &dead), "reader check")
        return Int(dead)
    }
}

private final class LineBox {
    var lines: [String] = []
}
