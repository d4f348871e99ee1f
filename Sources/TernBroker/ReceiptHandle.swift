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
        var string = string
        // Read in place from the string's UTF-8 (native strings are contiguous): this runs
        // once per acknowledged message, on the request's thread.
        let parsed = string.withUTF8 { utf8 -> (queue: UInt64, sequence: UInt64, high: UInt64, low: UInt64)? in
            guard utf8.count == Self.hexLength else { return nil }
            func integer(_ digits: Range<Int>) -> UInt64? {
                var value: UInt64 = 0
                for index in digits {
                    guard let nibble = Self.nibble(utf8[index]) else { return nil }
                    value = value << 4 | UInt64(nibble)
                }
                return value
            }
            guard let version = integer(0..<2), version == UInt64(Self.version),
                  let queue = integer(2..<10), let sequence = integer(10..<26),
                  let high = integer(26..<42), let low = integer(42..<58) else { return nil }
            return (queue, sequence, high, low)
        }
        guard let parsed else {
            guard string.utf8.count == Self.hexLength else {
                throw TernError(.invalidReceiptHandle, "receipt handle must be \(Self.hexLength) hex digits")
            }
            let bytes = Array(string.utf8)
            if let high = Self.nibble(bytes[0]), let low = Self.nibble(bytes[1]), high << 4 | low != Self.version,
               bytes.allSatisfy({ Self.nibble($0) != nil }) {
                throw TernError(.invalidReceiptHandle, "unknown receipt handle version \(high << 4 | low)")
            }
            throw TernError(.invalidReceiptHandle, "receipt handle must be hex digits")
        }
        queue = UInt32(parsed.queue)
        sequence = parsed.sequence
        nonce = ReceiptNonce(high: parsed.high, low: parsed.low)
        guard nonce != .none else { throw TernError(.invalidReceiptHandle, "receipt handle has an empty nonce") }
    }

    public var description: String {
        // Written digit by digit into one buffer: this runs once per delivered message (in the
        // writer). The digits are ASCII, so the buffer is valid UTF-8 as written.
        String(unsafeUninitializedCapacity: Self.hexLength) { buffer in
            var index = 0
            func put(_ value: UInt64, digits: Int) {
                for shift in stride(from: (digits - 1) * 4, through: 0, by: -4) {
                    let digit = UInt8(truncatingIfNeeded: (value >> UInt64(shift)) & 0xF)
                    buffer[index] = digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10
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

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
