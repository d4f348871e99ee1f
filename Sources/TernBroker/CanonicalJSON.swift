/// A JSON value with exactly one serialization, for outputs that are compared byte for byte
/// (``StateDump``).
///
/// The rendering follows the JSON Canonicalization Scheme (RFC 8785) for the values it
/// allows: no whitespace; object members sorted by key (by UTF-16 code units, RFC 8785
/// §3.2.3, which for the ASCII keys Tern uses is byte order); strings escape only `"`, `\`
/// and the control characters U+0000–U+001F (as `\b`, `\t`, `\n`, `\f`, `\r`, or `\u00xx`
/// with lowercase hex), everything else — `/`, DEL, non-ASCII, U+2028/U+2029 — is written as
/// its UTF-8 bytes (RFC 8785 §3.2.2.2). Numbers are integers only (no floats, so no
/// shortest-round-trip question): signed and unsigned 64-bit, in decimal without a sign for
/// non-negative values, leading zeros or exponent. Duplicate keys cannot occur (members are a
/// dictionary).
///
/// ```swift
/// let line = CanonicalJSON.object(["b": .unsigned(1), "a": .string("x\n")]).rendered
/// // {"a":"x\n","b":1}
/// ```
public indirect enum CanonicalJSON: Sendable, Hashable {
    case null
    case bool(Bool)
    case signed(Int64)
    case unsigned(UInt64)
    case string(String)
    case array([CanonicalJSON])
    case object([String: CanonicalJSON])

    /// The canonical text (one line: a string never holds a raw newline).
    public var rendered: String {
        var bytes = [UInt8]()
        write(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends the canonical UTF-8 encoding to `bytes`.
    public func write(to bytes: inout [UInt8]) {
        switch self {
        case .null: bytes.append(contentsOf: "null".utf8)
        case .bool(let value): bytes.append(contentsOf: (value ? "true" : "false").utf8)
        case .signed(let value): bytes.append(contentsOf: String(value).utf8)
        case .unsigned(let value): bytes.append(contentsOf: String(value).utf8)
        case .string(let value): Self.writeString(value, to: &bytes)
        case .array(let values):
            bytes.append(UInt8(ascii: "["))
            for (index, value) in values.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                value.write(to: &bytes)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let members):
            bytes.append(UInt8(ascii: "{"))
            let keys = members.keys.sorted { $0.utf16.lexicographicallyPrecedes($1.utf16) }
            for (index, key) in keys.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                Self.writeString(key, to: &bytes)
                bytes.append(UInt8(ascii: ":"))
                members[key]!.write(to: &bytes)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    static func writeString(_ value: String, to bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x08: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0C: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x00..<0x20:
                bytes.append(contentsOf: Array("\\u00".utf8))
                bytes.append(hexDigits[Int(byte >> 4)])
                bytes.append(hexDigits[Int(byte & 0x0F)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// `bytes` as lowercase hex, two digits a byte.
    public static func hex(_ bytes: some Sequence<UInt8>) -> String {
        var text = [UInt8]()
        for byte in bytes {
            text.append(hexDigits[Int(byte >> 4)])
            text.append(hexDigits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// Stored bytes as a member: `name` with the string when they are valid UTF-8, else
    /// `name_hex` with their hex (so arbitrary keys and ids stay exact and printable).
    static func bytesMember(_ name: String, _ bytes: [UInt8], into object: inout [String: CanonicalJSON]) {
        if let text = String(validating: bytes, as: UTF8.self) {
            object[name] = .string(text)
        } else {
            object[name + "_hex"] = .string(hex(bytes))
        }
    }
}

extension CanonicalJSON: ExpressibleByStringLiteral, ExpressibleByBooleanLiteral, ExpressibleByNilLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(nilLiteral: ()) { self = .null }
}

extension CanonicalJSON {
    /// An unsigned integer of any width.
    static func int(_ value: some UnsignedInteger) -> CanonicalJSON { .unsigned(UInt64(value)) }
    /// A signed integer of any width.
    static func int(_ value: some SignedInteger) -> CanonicalJSON { .signed(Int64(value)) }
    /// An optional value: null when absent.
    static func optional<T>(_ value: T?, _ transform: (T) -> CanonicalJSON) -> CanonicalJSON {
        value.map(transform) ?? .null
    }
}
