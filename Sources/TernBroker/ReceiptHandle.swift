public import TernCore

/// Identifies one delivery of one message: the queue id, the message's sequence and the
/// 128-bit random nonce drawn for this delivery (each message of each receive gets its own).
///
/// Rendered as 58 lowercase hex digits: version (1 byte, currently 1), queue id (4 bytes),
/// sequence (8 bytes), nonce (16 bytes), all big-endian. Unguessable because of the nonce;
/// superseded by the next receive, which stores a new nonce.
public struct ReceiptHandle: Hashable, Sendable, CustomStringConvertible {
    public var queue: UInt32
    public var sequence: UInt64
    public var nonce: ReceiptNonce

    static let version: UInt8 = 1
    static let hexLength = 58

    public init(queue: UInt32, sequence: UInt64, nonce: ReceiptNonce) {
        self.queue = queue
        self.sequence = sequence
        self.nonce = nonce
    }

    /// Parses the hex form.
    /// - Throws: ``TernError`` with ``ErrorCode/invalidReceiptHandle`` when `string` is not a
    ///   handle Tern could have issued.
    public init(parsing string: String) throws(TernError) {
        let utf8 = Array(string.utf8)
        guard utf8.count == Self.hexLength else {
            throw TernError(.invalidReceiptHandle, "receipt handle must be \(Self.hexLength) hex digits")
        }
        var bytes = [UInt8]()
        bytes.reserveCapacity(29)
        var index = 0
        while index < utf8.count {
            guard let high = Self.nibble(utf8[index]), let low = Self.nibble(utf8[index + 1]) else {
                throw TernError(.invalidReceiptHandle, "receipt handle must be hex digits")
            }
            bytes.append(high << 4 | low)
            index += 2
        }
        guard bytes[0] == Self.version else {
            throw TernError(.invalidReceiptHandle, "unknown receipt handle version \(bytes[0])")
        }
        func integer(_ range: Range<Int>) -> UInt64 { range.reduce(0) { $0 << 8 | UInt64(bytes[$1]) } }
        queue = UInt32(integer(1..<5))
        sequence = integer(5..<13)
        nonce = ReceiptNonce(high: integer(13..<21), low: integer(21..<29))
        guard nonce != .none else { throw TernError(.invalidReceiptHandle, "receipt handle has an empty nonce") }
    }

    /// 58 lowercase hex digits: version (2), queue (8), sequence (16), nonce (32).
    public var description: String {
        // Written digit by digit into one buffer: this runs once per delivered message.
        String(unsafeUninitializedCapacity: 58) { buffer in
            var index = 0
            func put(_ value: UInt64, digits: Int) {
                for shift in stride(from: (digits - 1) * 4, through: 0, by: -4) {
                    buffer[index] = Self.hexDigits[Int((value >> UInt64(shift)) & 0xF)]
                    index += 1
                }
            }
            put(UInt64(Self.version), digits: 2)
            put(UInt64(queue), digits: 8)
            put(sequence, digits: 16)
            put(nonce.high, digits: 16)
            put(nonce.low, digits: 16)
            return index
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
