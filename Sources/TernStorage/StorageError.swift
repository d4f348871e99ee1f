#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failure of the storage engine.
public struct StorageError: Error, Sendable, CustomStringConvertible {
    /// What went wrong; extensible (new codes may be added).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case mapFull, corruptRecord, lmdb, closed, fileSystem
        }
        private let value: Value
        /// The map reached its configured maximum (or the headroom reserved for deletes):
        /// writes that add data are refused; deletes still succeed.
        public static let mapFull = Code(value: .mapFull)
        /// A stored record failed its format or checksum check, or is truncated.
        public static let corruptRecord = Code(value: .corruptRecord)
        /// LMDB returned an unexpected error; `lmdbCode` holds its number.
        public static let lmdb = Code(value: .lmdb)
        /// The environment was closed.
        public static let closed = Code(value: .closed)
        /// The data directory cannot be created or opened, or its file system has too little
        /// free space to open the environment safely; the message names the path and reason.
        public static let fileSystem = Code(value: .fileSystem)
        public var description: String { "\(value)" }
    }

    public var code: Code
    public var message: String
    /// The LMDB (or errno) return code, when the failure came from LMDB.
    public var lmdbCode: Int32?

    public init(_ code: Code, _ message: String, lmdbCode: Int32? = nil) {
        self.code = code
        self.message = message
        self.lmdbCode = lmdbCode
    }

    public var description: String { "storage error (\(code)): \(message)" }

    /// The error for LMDB return code `rc` (not `MDB_SUCCESS`) of the call described by `what`.
    ///
    /// `MDB_MAP_FULL`, and `ENOSPC`/`EDQUOT` (the file system or the quota is full, so the
    /// file cannot grow: the same situation for clients), are ``Code/mapFull``: writes that add
    /// data are refused with `507`, the rest keeps its rules.
    static func lmdb(_ rc: Int32, _ what: String, text: String) -> StorageError {
        if rc == lmdbMapFullCode { return StorageError(.mapFull, "\(what): \(text)", lmdbCode: rc) }
        if rc == ENOSPC || rc == EDQUOT {
            return StorageError(.mapFull, "\(what): the file system is full (\(text))", lmdbCode: rc)
        }
        return StorageError(.lmdb, "\(what): \(text)", lmdbCode: rc)
    }

    static func truncated(needed: Int, remaining: Int) -> StorageError {
        StorageError(.corruptRecord, "record truncated: needed \(needed) more bytes, \(remaining) left")
    }
}
