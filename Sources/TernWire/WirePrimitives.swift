public import NIOCore
public import TernCore

/// Reads payload fields; every read checks bounds and throws ``TernError`` with
/// ``ErrorCode/invalidFrame`` on truncated or malformed input, never traps.
///
/// Encodings (big-endian): integers fixed width; `string` = u16 length + UTF-8 (valid UTF-8
/// required); `bytes` = u32 length + bytes; `optional` = u8 presence (0 absent, 1 present) +
/// value; arrays = u32 count + elements.
public struct WireReader {
    public var buffer: ByteBuffer
    /// The largest element count an array may announce (each element needs at least one byte,
    /// so a count above the remaining bytes is garbage and is rejected before allocating).
    public init(_ buffer: ByteBuffer) { self.buffer = buffer }

    public var remaining: Int { buffer.readableBytes }

    public mutating func read<T: FixedWidthInteger>(_: T.Type = T.self, _ field: StaticString = "integer") throws(TernError) -> T {
        guard let value = buffer.readInteger(as: T.self) else { throw truncated(field) }
        return value
    }

    public mutating func readBool(_ field: StaticString = "flag") throws(TernError) -> Bool {
        let raw: UInt8 = try read(UInt8.self, field)
        guard raw <= 1 else { throw TernError(.invalidFrame, "\(field) must be 0 or 1, got \(raw)") }
        return raw == 1
    }

    public mutating func readString(_ field: StaticString = "string") throws(TernError) -> String {
        let length: UInt16 = try read(UInt16.self, field)
        guard let bytes = buffer.readBytes(length: Int(length)) else { throw truncated(field) }
        guard let string = String(validating: bytes, as: UTF8.self) else {
            throw TernError(.invalidFrame, "\(field) is not valid UTF-8")
        }
        return string
    }

    public mutating func readBytes(_ field: StaticString = "bytes") throws(TernError) -> [UInt8] {
        let length: UInt32 = try read(UInt32.self, field)
        guard let bytes = buffer.readBytes(length: Int(length)) else { throw truncated(field) }
        return bytes
    }

    /// Reads a u32 count and checks it against the bytes left (`minimumElementBytes` each).
    public mutating func readCount(_ field: StaticString = "count", minimumElementBytes: Int = 1) throws(TernError) -> Int {
        let count = Int(try read(UInt32.self, field))
        guard count * max(minimumElementBytes, 1) <= remaining else {
            throw TernError(.invalidFrame, "\(field) announces \(count) elements but only \(remaining) bytes follow")
        }
        return count
    }

    public mutating func readOptional<T>(_ field: StaticString = "optional", _ body: (inout WireReader) throws(TernError) -> T) throws(TernError) -> T? {
        try readBool(field) ? try body(&self) : nil
    }

    /// Throws unless every byte was consumed (trailing garbage is a malformed frame).
    public func expectEnd(_ what: @autoclosure () -> String) throws(TernError) {
        guard remaining == 0 else { throw TernError(.invalidFrame, "\(remaining) trailing bytes after \(what())") }
    }

    private func truncated(_ field: StaticString) -> TernError {
        TernError(.invalidFrame, "payload truncated while reading \(field)")
    }
}

extension ByteBuffer {
    /// Writes a string as u16 length + UTF-8. Traps on strings over 65,535 bytes (a programmer
    /// error: names and handles are short; bodies use ``writeWireBytes(_:)``).
    public mutating func writeWireString(_ string: String) {
        let utf8 = string.utf8
        precondition(utf8.count <= Int(UInt16.max), "wire strings are at most 65,535 bytes")
        writeInteger(UInt16(utf8.count))
        writeString(string)
    }

    /// Writes u32 length + bytes.
    public mutating func writeWireBytes(_ bytes: [UInt8]) {
        writeInteger(UInt32(bytes.count))
        writeBytes(bytes)
    }

    public mutating func writeWireBool(_ value: Bool) { writeInteger(UInt8(value ? 1 : 0)) }

    public mutating func writeWireOptional<T>(_ value: T?, _ body: (inout ByteBuffer, T) -> Void) {
        if let value {
            writeInteger(UInt8(1))
            body(&self, value)
        } else {
            writeInteger(UInt8(0))
        }
    }
}

extension ErrorCode {
    /// The registered code with binary number `number`, nil when this build does not know it.
    public static func registered(number: UInt16) -> ErrorCode? {
        all.first { $0.number == number }
    }
}
