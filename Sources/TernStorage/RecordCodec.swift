/// The envelope of every value Tern stores: a checksum, a format version and flags, then the
/// payload, snappy-compressed when that pays.
///
/// Layout (all integers big-endian):
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | CRC-32C of bytes 4..<end |
/// | 4 | 1 | format version (currently 1) |
/// | 5 | 1 | flags: bit 0 = payload is one snappy block |
/// | 6 | n | payload |
public enum RecordCodec {
    /// The format version written by this build.
    public static let currentVersion: UInt8 = 1
    /// Bytes before the payload.
    public static let headerSize = 6
    static let compressedFlag: UInt8 = 0x01

    /// When to try snappy on a payload.
    public enum Compression: Sendable {
        /// Store the payload as it is.
        case never
        /// Compress payloads of at least `minimumBytes` and keep the result only when it saves
        /// at least one eighth (snappy on single 1 KiB log lines saves ~10 %, so most small
        /// bodies are stored raw; batches compress ~2.4×).
        case whenSmaller(minimumBytes: Int)

        public static let `default` = Compression.whenSmaller(minimumBytes: 256)
    }

    /// Wraps `payload` in the envelope.
    public static func encode(_ payload: [UInt8], compression: Compression = .default) -> [UInt8] {
        var flags: UInt8 = 0
        var stored = payload
        if case .whenSmaller(let minimum) = compression, payload.count >= minimum {
            let compressed = Snappy.compress(payload)
            if compressed.count <= payload.count - payload.count / 8 {
                stored = compressed
                flags |= compressedFlag
            }
        }
        var record = [UInt8](repeating: 0, count: headerSize)
        record.reserveCapacity(headerSize + stored.count)
        record[4] = currentVersion
        record[5] = flags
        record.append(contentsOf: stored)
        let crc = record.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[4...])) }
        record[0] = UInt8(truncatingIfNeeded: crc >> 24)
        record[1] = UInt8(truncatingIfNeeded: crc >> 16)
        record[2] = UInt8(truncatingIfNeeded: crc >> 8)
        record[3] = UInt8(truncatingIfNeeded: crc)
        return record
    }

    /// Checks the envelope and returns the (decompressed) payload.
    /// - Throws: ``StorageError/Code/corruptRecord`` when the record is shorter than its header,
    ///   its checksum does not match, its version is unknown, or its snappy block is invalid.
    public static func decode(_ record: [UInt8]) throws(StorageError) -> [UInt8] {
        try record.withUnsafeBufferPointer { (bytes) throws(StorageError) in try decode(UnsafeRawBufferPointer(bytes)) }
    }

    /// ``decode(_:)`` of a record in place (``Transaction/withValue(_:_:_:)``): the payload is
    /// copied (or decompressed) once, straight out of `record`.
    /// - Throws: as ``decode(_:)``.
    public static func decode(_ record: UnsafeRawBufferPointer) throws(StorageError) -> [UInt8] {
        guard record.count >= headerSize else {
            throw StorageError.truncated(needed: headerSize, remaining: record.count)
        }
        let stored = UInt32(record[0]) << 24 | UInt32(record[1]) << 16 | UInt32(record[2]) << 8 | UInt32(record[3])
        let actual = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: record[4...]))
        guard stored == actual else {
            throw StorageError(.corruptRecord, "checksum mismatch: stored \(hex(stored)), computed \(hex(actual))")
        }
        guard record[4] == currentVersion else {
            throw StorageError(.corruptRecord, "unknown record format version \(record[4])")
        }
        let flags = record[5]
        guard flags & ~compressedFlag == 0 else {
            throw StorageError(.corruptRecord, "unknown record flags \(flags)")
        }
        let payload = UnsafeRawBufferPointer(rebasing: record[headerSize...])
        return flags & compressedFlag != 0 ? try Snappy.decompress(payload) : Array(payload)
    }

    private static func hex(_ value: UInt32) -> String { "0x" + String(value, radix: 16) }
}
