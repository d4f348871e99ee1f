/// A validated queue (or topic) name: 1–80 characters of `[A-Za-z0-9_-]`, optionally
/// ending in `.fifo` (counted in the 80), case-sensitive. The rules are SQS's.
public struct QueueName: Hashable, Sendable, CustomStringConvertible, Comparable {
    /// The name as given.
    public let rawValue: String

    /// The maximum length in characters, `.fifo` suffix included.
    public static let maxLength = 80
    /// The suffix that marks a FIFO queue.
    public static let fifoSuffix = ".fifo"

    /// Validates `rawValue`.
    /// - Throws: ``TernError`` with ``ErrorCode/invalidName`` when the name breaks the rules.
    public init(_ rawValue: String) throws(TernError) {
        let utf8 = rawValue.utf8
        guard !utf8.isEmpty, utf8.count <= Self.maxLength else {
            throw TernError(.invalidName, "name must be 1–\(Self.maxLength) characters, got \(utf8.count)")
        }
        var body = Substring(rawValue)
        if rawValue.hasSuffix(Self.fifoSuffix) { body = body.dropLast(Self.fifoSuffix.count) }
        guard !body.isEmpty, body.utf8.allSatisfy(Self.isAllowed) else {
            throw TernError(.invalidName, "name may only contain A–Z, a–z, 0–9, '_' and '-' (and a '.fifo' suffix)")
        }
        self.rawValue = rawValue
    }

    /// Whether the name ends in `.fifo`.
    public var isFIFO: Bool { rawValue.hasSuffix(Self.fifoSuffix) }

    public var description: String { rawValue }

    public static func < (lhs: QueueName, rhs: QueueName) -> Bool { lhs.rawValue < rhs.rawValue }

    private static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }
}

/// A message id: 16 bytes, rendered as a lowercase UUID string (`8-4-4-4-12` hex digits).
///
/// Ids are decided before a send is applied (time-ordered high bits, random low bits, in the
/// manner of UUIDv7), stored with the message and kept when it moves to a dead-letter queue.
public struct MessageID: Hashable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// A new id: 48 bits of `time` in milliseconds, version 7, 74 random bits.
    public static func generate(at time: Timestamp, using generator: inout some RandomNumberGenerator) -> MessageID {
        let random = generator.next() as UInt64
        let high = (time.milliseconds << 16) | 0x7000 | (random & 0x0FFF)
        let low = ((generator.next() as UInt64) & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
        return MessageID(high: high, low: low)
    }

    public var description: String {
        let hex = Self.hex(high, 16) + Self.hex(low, 16)
        let characters = Array(hex)
        return String(characters[0..<8]) + "-" + String(characters[8..<12]) + "-" + String(characters[12..<16])
            + "-" + String(characters[16..<20]) + "-" + String(characters[20..<32])
    }

    /// Parses the UUID form; returns nil when `string` is not 32 hex digits with optional dashes.
    public init?(_ string: String) {
        let digits = string.filter { $0 != "-" }
        guard digits.count == 32, let high = UInt64(digits.prefix(16), radix: 16),
            let low = UInt64(digits.suffix(16), radix: 16)
        else { return nil }
        self.init(high: high, low: low)
    }

    private static func hex(_ value: UInt64, _ width: Int) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: width - digits.count) + digits
    }
}
