/// The envelope of every value Tern stores: a checksum, a format version and flags, then the
/// payload, snappy-compressed when that pays.
///
/// Layout (all integers big-endian):
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | CRC-32C of bytes 4..<end |
/// | 4 | 1 | format version: 1 for every record; 2 for a message body record that carries
/// attributes (its payload layout is the owner's, see `MessageBody` in TernBroker) |
/// | 5 | 1 | flags: bit 0 = payload is one snappy block |
/// | 6 | n | payload |
public enum RecordCodec {
    /// The format version written by this build unless a caller asks for another.
    public static let currentVersion: UInt8 = 1
    /// The versions ``decodeVersioned(_:)`` accepts. Version 2 changes no envelope field: it
    /// tells the record's owner that the payload has a newer layout (message bodies with attributes).
    public static let supportedVersions: ClosedRange<UInt8> = 1...2
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

    /// Wraps `payload` in the envelope, marked with `version` (one of ``supportedVersions``).
    public static func encode(_ payload: [UInt8], compression: Compression = .default, version: UInt8 = currentVersion) -> [UInt8] {
        precondition(supportedVersions.contains(version), "unknown record format version \(version)")
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
        record[4] = version
        record[5] = flags
        record.append(contentsOf: stored)
        let crc = record.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[4...])) }
        record[0] = UInt8(truncatingIfNeeded: crc >> 24)
        record[1] = UInt8(truncatingIfNeeded: crc >> 16)
        record[2] = UInt8(truncatingIfNeeded: crc >> 8)
        record[3] = UInt8(truncatingIfNeeded: crc)
        return record
    }

    /// Checks the envelope of a version-1 record and returns the (decompressed) payload.
    /// - Throws: ``StorageError/Code/corruptRecord`` when the record is shorter than its header,
    ///   its checksum does not match, its version is not 1, or its snappy block is invalid.
    public static func decode(_ record: [UInt8]) throws(StorageError) -> [UInt8] {
        try record.withUnsafeBufferPointer { (bytes) throws(StorageError) in try decode(UnsafeRawBufferPointer(bytes)) }
    }

    /// ``decode(_:)`` of a record in place (``Transaction/withValue(_:_:_:)``): the payload is
    /// copied (or decompressed) once, straight out of `record`.
    /// - Throws: as ``decode(_:)``.
    public static func decode(_ record: UnsafeRawBufferPointer) throws(StorageError) -> [UInt8] {
        let (version, payload) = try decodeVersioned(record)
        guard version == currentVersion else {
            throw StorageError(.corruptRecord, "unexpected record format version \(version) (expected \(currentVersion))")
        }
        return payload
    }

    /// Checks the envelope and returns its version and the (decompressed) payload, for owners
    /// whose records have more than one payload layout.
    /// - Returns: the version (one of ``supportedVersions``) and the payload.
    /// - Throws: ``StorageError/Code/corruptRecord`` when the record is shorter than its header,
    ///   its checksum does not match, its version is unknown, or its snappy block is invalid.
    public static func decodeVersioned(_ record: [UInt8]) throws(StorageError) -> (version: UInt8, payload: [UInt8]) {
        try record.withUnsafeBufferPointer { (bytes) throws(StorageError) in try decodeVersioned(UnsafeRawBufferPointer(bytes)) }
    }

    /// ``decodeVersioned(_:)`` of a record in place: the payload is copied (or decompressed) once.
    /// - Throws: as ``decodeVersioned(_:)``.
    public static func decodeVersioned(_ record: UnsafeRawBufferPointer) throws(StorageError) -> (version: UInt8, payload: [UInt8]) {
        guard record.count >= headerSize else {
            throw StorageError.truncated(needed: headerSize, remaining: record.count)
        }
        let stored = UInt32(record[0]) << 24 | UInt32(record[1]) << 16 | UInt32(record[2]) << 8 | UInt32(record[3])
        let actual = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: record[4...]))
        guard stored == actual else {
            throw StorageError(.corruptRecord, "checksum mismatch: stored \(hex(stored)), computed \(hex(actual))")
        }
        guard supportedVersions.contains(record[4]) else {
            throw StorageError(.corruptRecord, "unknown record format version \(record[4])")
        }
        let flags = record[5]
        guard flags & ~compressedFlag == 0 else {
            throw StorageError(.corruptRecord, "unknown record flags \(flags)")
        }
        let payload = UnsafeRawBufferPointer(rebasing: record[headerSize...])
        return (record[4], flags & compressedFlag != 0 ? try Snappy.decompress(payload) : Array(payload))
    }

    private static func hex(_ value: UInt32) -> String { "0x" + String(value, radix: 16) }
}
