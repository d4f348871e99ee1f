import Foundation
import TernCore

/// A single-pass syntax check of a request body against RFC 8259, run before decoding.
///
/// Foundation's `JSONDecoder` is lenient (it accepts trailing commas and keeps the first of
/// duplicate keys); Tern's API promises that malformed input is rejected. This check rejects:
/// anything that is not exactly one JSON value with optional whitespace around it, trailing
/// commas, duplicate keys in an object (compared after unescaping), invalid UTF-8, control characters
/// in strings, invalid escapes, lone or reversed UTF-16 surrogate escapes, and nesting deeper
/// than ``maxDepth``.
enum StrictJSON {
    /// The deepest nesting of arrays and objects accepted.
    static let maxDepth = 64

    /// - Throws: ``TernError`` with ``ErrorCode/invalidJSON`` naming the byte offset of the first problem.
    static func validate(_ bytes: [UInt8]) throws(TernError) {
        var parser = Parser(bytes: bytes)
        try parser.skipWhitespace()
        try parser.value(depth: 0)
        try parser.skipWhitespace()
        guard parser.index == bytes.count else { throw parser.error("unexpected data after the JSON value") }
    }

    private struct Parser {
        let bytes: [UInt8]
        var index = 0

        func error(_ what: String) -> TernError {
            TernError(.invalidJSON, "the request body is not valid JSON: \(what) at byte \(index)")
        }

        var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipWhitespace() throws(TernError) {
            while let c = current, c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D { index += 1 }
        }

        mutating func expect(_ byte: UInt8) throws(TernError) {
            guard current == byte else { throw error("expected '\(Character(Unicode.Scalar(byte)))'") }
            index += 1
        }

        mutating func value(depth: Int) throws(TernError) {
            guard depth <= StrictJSON.maxDepth else { throw error("nesting deeper than \(StrictJSON.maxDepth)") }
            guard let c = current else { throw error("unexpected end of input") }
            switch c {
            case UInt8(ascii: "{"): try object(depth: depth + 1)
            case UInt8(ascii: "["): try array(depth: depth + 1)
            case UInt8(ascii: "\""): _ = try string()
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try number()
            default: throw error("unexpected character")
            }
        }

        mutating func literal(_ word: StaticString) throws(TernError) {
            let expected = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
            guard bytes.count - index >= expected.count, bytes[index..<index + expected.count].elementsEqual(expected) else {
                throw error("invalid literal")
            }
            index += expected.count
        }

        mutating func object(depth: Int) throws(TernError) {
            index += 1
            try skipWhitespace()
            if current == UInt8(ascii: "}") {
                index += 1
                return
            }
            var keys = Set<[UInt8]>()
            while true {
                guard current == UInt8(ascii: "\"") else { throw error("expected a string key") }
                let raw = try string()
                // Compared after unescaping: `"m\u0065ssage"` is `"message"`.
                let key = raw.contains(UInt8(ascii: "\\")) ? Self.unescaped(raw) : Array(raw)
                guard keys.insert(key).inserted else { throw error("duplicate key") }
                try skipWhitespace()
                try expect(UInt8(ascii: ":"))
                try skipWhitespace()
                try value(depth: depth)
                try skipWhitespace()
                if current == UInt8(ascii: ",") {
                    index += 1
                    try skipWhitespace()
                    continue
                }
                try expect(UInt8(ascii: "}"))
                return
            }
        }

        mutating func array(depth: Int) throws(TernError) {
            index += 1
            try skipWhitespace()
            if current == UInt8(ascii: "]") {
                index += 1
                return
            }
            while true {
                try value(depth: depth)
                try skipWhitespace()
                if current == UInt8(ascii: ",") {
                    index += 1
                    try skipWhitespace()
                    continue
                }
                try expect(UInt8(ascii: "]"))
                return
            }
        }

        /// Checks a string and returns its raw bytes between the quotes.
        mutating func string() throws(TernError) -> ArraySlice<UInt8> {
            index += 1
            let start = index
            while true {
                guard let c = current else { throw error("unterminated string") }
                switch c {
                case UInt8(ascii: "\""):
                    defer { index += 1 }
                    return bytes[start..<index]
                case UInt8(ascii: "\\"):
                    index += 1
                    try escape()
                case 0x00..<0x20:
                    throw error("control character in a string")
                case 0x80...:
                    try utf8Sequence()
                default:
                    index += 1
                }
            }
        }

        /// The UTF-8 of the already validated string body `raw` (between the quotes) with its
        /// escapes resolved.
        static func unescaped(_ raw: ArraySlice<UInt8>) -> [UInt8] {
            let quoted = Data([UInt8(ascii: "\"")] + raw + [UInt8(ascii: "\"")])
            guard let text = try? JSONSerialization.jsonObject(with: quoted, options: .fragmentsAllowed) as? String else {
                return Array(raw)
            }
            return Array(text.utf8)
        }

        mutating func escape() throws(TernError) {
            guard let c = current else { throw error("unterminated escape") }
            switch c {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                index += 1
            case UInt8(ascii: "u"):
                index += 1
                let unit = try hex4()
                if (0xD800...0xDBFF).contains(unit) {
                    guard current == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u") else {
                        throw error("lone high surrogate escape")
                    }
                    index += 2
                    guard (0xDC00...0xDFFF).contains(try hex4()) else { throw error("high surrogate not followed by a low surrogate") }
                } else if (0xDC00...0xDFFF).contains(unit) {
                    throw error("lone low surrogate escape")
                }
            default:
                throw error("invalid escape")
            }
        }

        mutating func hex4() throws(TernError) -> UInt32 {
            guard bytes.count - index >= 4 else { throw error("truncated \\u escape") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[index]
                let digit: UInt32
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(c - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(c - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(c - UInt8(ascii: "A") + 10)
                default: throw error("invalid \\u escape")
                }
                value = value << 4 | digit
                index += 1
            }
            return value
        }

        /// One multi-byte UTF-8 sequence (RFC 3629: no overlongs, no surrogates, ≤ U+10FFFF).
        mutating func utf8Sequence() throws(TernError) {
            let lead = bytes[index]
            let length: Int
            var lower: UInt8 = 0x80, upper: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; lower = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; upper = 0x9F
            case 0xF0: length = 4; lower = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; upper = 0x8F
            default: throw error("invalid UTF-8")
            }
            guard bytes.count - index >= length else { throw error("truncated UTF-8") }
            for offset in 1..<length {
                let byte = bytes[index + offset]
                let (low, high) = offset == 1 ? (lower, upper) : (UInt8(0x80), UInt8(0xBF))
                guard (low...high).contains(byte) else { throw error("invalid UTF-8") }
            }
            index += length
        }

        mutating func number() throws(TernError) {
            if current == UInt8(ascii: "-") { index += 1 }
            guard let first = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { throw error("invalid number") }
            index += 1
            if first != UInt8(ascii: "0") { skipDigits() }
            if current == UInt8(ascii: ".") {
                index += 1
                guard try requireDigit() else { throw error("invalid number") }
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                index += 1
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
                guard try requireDigit() else { throw error("invalid number") }
            }
        }

        mutating func skipDigits() {
            while let c = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) { index += 1 }
        }

        mutating func requireDigit() throws(TernError) -> Bool {
            guard let c = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) else { return false }
            skipDigits()
            return true
        }
    }
}
