/// Appends fixed-width big-endian integers to a byte array, so that the byte order of keys is
/// their numeric order (and appends of increasing keys can use `MDB_APPEND`).
public struct BigEndianWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 32) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func write(_ value: UInt8) { bytes.append(value) }
    public mutating func write(_ value: UInt16) { writeInteger(value) }
    public mutating func write(_ value: UInt32) { writeInteger(value) }
    public mutating func write(_ value: UInt64) { writeInteger(value) }
    public mutating func write(_ raw: some Sequence<UInt8>) { bytes.append(contentsOf: raw) }

    /// Writes a length (u32) followed by the bytes.
    public mutating func writeLengthPrefixed(_ raw: [UInt8]) {
        write(UInt32(raw.count))
        bytes.append(contentsOf: raw)
    }

    private mutating func writeInteger<T: FixedWidthInteger>(_ value: T) {
        var big = value.bigEndian
        withUnsafeBytes(of: &big) { bytes.append(contentsOf: $0) }
    }
}

/// Reads fixed-width big-endian integers from a byte array; every read checks bounds and
/// throws ``StorageError/Code/corruptRecord`` when the input is truncated.
public struct BigEndianReader {
    public let bytes: [UInt8]
    public private(set) var offset: Int

    public init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    /// Bytes left to read.
    public var remaining: Int { bytes.count - offset }

    public mutating func readUInt8() throws(StorageError) -> UInt8 { try readInteger() }
    public mutating func readUInt16() throws(StorageError) -> UInt16 { try readInteger() }
    public mutating func readUInt32() throws(StorageError) -> UInt32 { try readInteger() }
    public mutating func readUInt64() throws(StorageError) -> UInt64 { try readInteger() }

    /// Reads exactly `count` bytes.
    public mutating func readBytes(_ count: Int) throws(StorageError) -> [UInt8] {
        guard count >= 0, remaining >= count else { throw StorageError.truncated(needed: count, remaining: remaining) }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    /// Reads a u32 length and that many bytes.
    public mutating func readLengthPrefixed() throws(StorageError) -> [UInt8] {
        try readBytes(Int(try readUInt32()))
    }

    private mutating func readInteger<T: FixedWidthInteger>() throws(StorageError) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw StorageError.truncated(needed: size, remaining: remaining) }
        var value: T = 0
        for i in 0..<size { value = value << 8 | T(bytes[offset + i]) }
        offset += size
        return value
    }
}
