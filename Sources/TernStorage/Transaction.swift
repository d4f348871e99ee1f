internal import CLMDB
#if canImport(Glibc)
import Glibc
#endif

/// A named LMDB database (B-tree) inside the environment. Cheap to copy; valid for the life
/// of the ``Storage`` that opened it.
public struct Database: Hashable, Sendable, CustomStringConvertible {
    let dbi: UInt32
    /// The name given at open.
    public let name: String
    public var description: String { name }
}

/// Entries, pages and depth of one database (`mdb_stat`).
public struct DatabaseStatistics: Sendable, Hashable {
    public var entries: Int
    public var depth: Int
    public var branchPages: Int
    public var leafPages: Int
    public var overflowPages: Int
    public var pageSize: Int
}

/// A read-only view of the environment at one point in time (an LMDB MVCC snapshot).
///
/// Valid only inside the closure that received it, on the thread that called
/// ``Storage/read(_:)``; never stored, never held across an `await`. Bytes returned by its
/// methods are copies and outlive the transaction.
public class Transaction {
    let txn: OpaquePointer

    init(txn: OpaquePointer) { self.txn = txn }

    /// The value stored under `key`, or nil when there is none.
    /// - Throws: ``StorageError`` when LMDB fails (not for a missing key).
    public final func get(_ database: Database, _ key: [UInt8]) throws(StorageError) -> [UInt8]? {
        var value = MDB_val()
        let rc = key.withUnsafeBytes { keyBytes in
            var keyValue = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
            return mdb_get(txn, database.dbi, &keyValue, &value)
        }
        if rc == MDB_NOTFOUND { return nil }
        try check(rc, "get from \(database)")
        return copy(value)
    }

    /// Calls `body` with the value stored under `key`, in place in LMDB's map (no copy).
    ///
    /// The bytes are valid only during `body` (LMDB: until the transaction ends or writes
    /// to that page); `body` must copy what it keeps and must not write in this transaction.
    /// - Returns: what `body` returned, or nil when there is no value under `key`.
    /// - Throws: ``StorageError`` when LMDB fails (not for a missing key), or what `body` throws.
    public final func withValue<T>(_ database: Database, _ key: [UInt8],
                                   _ body: (UnsafeRawBufferPointer) throws(StorageError) -> T) throws(StorageError) -> T? {
        var value = MDB_val()
        let rc = key.withUnsafeBytes { keyBytes in
            var keyValue = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
            return mdb_get(txn, database.dbi, &keyValue, &value)
        }
        if rc == MDB_NOTFOUND { return nil }
        try check(rc, "get from \(database)")
        return try body(UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size))
    }

    /// Opens a cursor on `database` for the duration of `body`.
    public final func withCursor<T>(_ database: Database, _ body: (Cursor) throws -> T) throws -> T {
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(txn, database.dbi, &cursor), "open cursor on \(database)")
        let wrapper = Cursor(cursor: cursor!, owner: self)
        defer { mdb_cursor_close(cursor) }
        return try body(wrapper)
    }

    /// Entries, pages and depth of `database` as seen by this transaction.
    public final func statistics(_ database: Database) throws(StorageError) -> DatabaseStatistics {
        var stat = MDB_stat()
        try check(mdb_stat(txn, database.dbi, &stat), "stat \(database)")
        return DatabaseStatistics(
            entries: Int(stat.ms_entries), depth: Int(stat.ms_depth), branchPages: Int(stat.ms_branch_pages),
            leafPages: Int(stat.ms_leaf_pages), overflowPages: Int(stat.ms_overflow_pages), pageSize: Int(stat.ms_psize))
    }

    /// The id of this transaction's snapshot (`mdb_txn_id`).
    public final var id: Int { Int(mdb_txn_id(txn)) }

    func noteWrite() {}
}

/// A cursor over one database, valid inside the closure that received it.
public final class Cursor {
    let cursor: OpaquePointer
    unowned let owner: Transaction

    init(cursor: OpaquePointer, owner: Transaction) {
        self.cursor = cursor
        self.owner = owner
    }

    /// A key and its value, both copied out of the map.
    public typealias Entry = (key: [UInt8], value: [UInt8])

    /// Positions at the first key ≥ `key` (`MDB_SET_RANGE`); nil when there is none.
    public func seek(atOrAfter key: [UInt8]) throws(StorageError) -> Entry? {
        var keyCopy = key
        let result: Result<Entry?, StorageError> = keyCopy.withUnsafeMutableBytes { bytes in
            var keyValue = MDB_val(mv_size: bytes.count, mv_data: bytes.baseAddress)
            return Result { () throws(StorageError) in try fetch(&keyValue, MDB_SET_RANGE) }
        }
        return try result.get()
    }

    /// Positions at the first entry; nil when the database is empty.
    public func first() throws(StorageError) -> Entry? { var k = MDB_val(); return try fetch(&k, MDB_FIRST) }
    /// Positions at the last entry; nil when the database is empty.
    public func last() throws(StorageError) -> Entry? { var k = MDB_val(); return try fetch(&k, MDB_LAST) }
    /// Moves to the next entry; nil at the end.
    public func next() throws(StorageError) -> Entry? { var k = MDB_val(); return try fetch(&k, MDB_NEXT) }
    /// Moves to the previous entry; nil at the start.
    public func previous() throws(StorageError) -> Entry? { var k = MDB_val(); return try fetch(&k, MDB_PREV) }

    /// Deletes the entry under the cursor (write transactions only); ``next()`` (or
    /// ``current()``) then returns the entry that followed it.
    public func deleteCurrent() throws(StorageError) {
        precondition(owner is WriteTransaction, "deleteCurrent on a read-only cursor")
        try check(mdb_cursor_del(cursor, 0), "cursor delete")
        (owner as! WriteTransaction).didWrite = true
    }

    /// The entry under the cursor, or nil when it is past the end.
    public func current() throws(StorageError) -> Entry? { var k = MDB_val(); return try fetch(&k, MDB_GET_CURRENT) }

    private func fetch(_ key: inout MDB_val, _ op: MDB_cursor_op) throws(StorageError) -> Entry? {
        var value = MDB_val()
        let rc = mdb_cursor_get(cursor, &key, &value, op)
        if rc == MDB_NOTFOUND || rc == 22 /* EINVAL */ && op == MDB_GET_CURRENT { return nil }
        try check(rc, "cursor get")
        return (copy(key), copy(value))
    }
}

/// A read-only transaction (see ``Transaction``).
public final class ReadTransaction: Transaction {}

/// The single write transaction of a group-commit batch. Only the writer thread holds one.
///
/// Operations run inside it through ``Storage/write(grows:_:)``; the batch commits (and syncs)
/// once for all of them.
public final class WriteTransaction: Transaction {
    /// Whether the current operation has modified the database (used to decide whether a
    /// failing operation can be dropped from the batch or forces a retry).
    var didWrite = false
    /// Key and value bytes put by this transaction so far (an estimate of the pages it dirties).
    var bytesWritten = 0

    /// Stores `value` under `key`, replacing any previous value.
    /// - Parameter append: the key is greater than every key in the database (`MDB_APPEND`,
    ///   a fast path for increasing sequences); LMDB fails with `MDB_KEYEXIST` otherwise.
    /// - Throws: ``StorageError/Code/mapFull`` when the map is full; the batch is then retried
    ///   without this operation.
    public func put(_ database: Database, _ key: [UInt8], _ value: [UInt8], append: Bool = false) throws(StorageError) {
        didWrite = true
        bytesWritten += key.count + value.count
        let rc = key.withUnsafeBytes { keyBytes in
            value.withUnsafeBytes { valueBytes in
                var k = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
                var v = MDB_val(mv_size: valueBytes.count, mv_data: UnsafeMutableRawPointer(mutating: valueBytes.baseAddress))
                return mdb_put(txn, database.dbi, &k, &v, append ? UInt32(MDB_APPEND) : 0)
            }
        }
        try check(rc, "put into \(database)")
    }

    /// Deletes `key`; returns whether it existed.
    @discardableResult
    public func delete(_ database: Database, _ key: [UInt8]) throws(StorageError) -> Bool {
        let rc = key.withUnsafeBytes { keyBytes in
            var k = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
            return mdb_del(txn, database.dbi, &k, nil)
        }
        if rc == MDB_NOTFOUND { return false }
        didWrite = true
        try check(rc, "delete from \(database)")
        return true
    }

    /// Deletes every entry of `database`, keeping the database itself (`mdb_drop` with
    /// `del = 0`): its pages go back to the free list when this transaction commits.
    /// - Throws: ``StorageError`` from LMDB.
    public func clear(_ database: Database) throws(StorageError) {
        didWrite = true
        try check(mdb_drop(txn, database.dbi, 0), "clear \(database)")
    }
}

func copy(_ value: MDB_val) -> [UInt8] {
    guard value.mv_size > 0, let data = value.mv_data else { return [] }
    return Array(UnsafeRawBufferPointer(start: data, count: value.mv_size))
}

/// `MDB_MAP_FULL`, for ``StorageError/lmdb(_:_:text:)`` (which cannot see the C module).
let lmdbMapFullCode = MDB_MAP_FULL

func check(_ rc: Int32, _ what: @autoclosure () -> String) throws(StorageError) {
    guard rc != MDB_SUCCESS else { return }
    throw StorageError.lmdb(rc, what(), text: String(cString: mdb_strerror(rc)))
}
