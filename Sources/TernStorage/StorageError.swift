/// A failure of the storage engine.
public struct StorageError: Error, Sendable, CustomStringConvertible {
    /// What went wrong; extensible (new codes may be added).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case mapFull, corruptRecord, lmdb, closed
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

    static func truncated(needed: Int, remaining: Int) -> StorageError {
        StorageError(.corruptRecord, "record truncated: needed \(needed) more bytes, \(remaining) left")
    }
}
