/// The parameters of one SQS request, whichever protocol carried them: the AWS JSON 1.0 body
/// parses into this tree directly, and the Query protocol's flattened form (`Attribute.1.Name=…`)
/// is folded into the same shape (see ``QueryProtocol``), so every action reads one structure.
///
/// Leaves are strings or numbers as written (the Query protocol has only strings; a handler asks
/// for the type it needs and answers `InvalidParameterValue` when the text does not fit).
indirect enum SQSValue: Sendable, Hashable {
    case string(String)
    /// A JSON number, as written (SQS's inputs are integers; the handler parses).
    case number(String)
    case bool(Bool)
    case null
    case list([SQSValue])
    case object([String: SQSValue])

    subscript(key: String) -> SQSValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    var members: [String: SQSValue]? {
        if case .object(let members) = self { return members }
        return nil
    }
}

/// A strict JSON reader into ``SQSValue`` and a writer, for the AWS JSON 1.0 protocol (RFC 8259:
/// one value, no trailing data, no duplicate keys, valid escapes and UTF-8, bounded nesting).
enum JSON {
    /// The deepest nesting accepted (SQS requests nest at most four levels).
    static let maxDepth = 32

    /// Parses `bytes` into a value.
    /// - Throws: ``SQSError`` `SerializationException` naming the byte offset of the first problem.
    static func parse(_ bytes: [UInt8]) throws(SQSError) -> SQSValue {
        var parser = Parser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw parser.error("unexpected data after the JSON value") }
        return value
    }

    private struct Parser {
        let bytes: [UInt8]
        var index = 0

        func error(_ what: String) -> SQSError {
            SQSError(.serialization, "Malformed JSON request body: \(what) at byte \(index).")
        }

        var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipWhitespace() {
            while let c = current, c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D { index += 1 }
        }

        mutating func value(depth: Int) throws(SQSError) -> SQSValue {
            guard depth <= JSON.maxDepth else { throw error("nesting deeper than \(JSON.maxDepth)") }
            guard let c = current else { throw error("unexpected end of input") }
            switch c {
            case UInt8(ascii: "{"): return try object(depth: depth + 1)
            case UInt8(ascii: "["): return try array(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
            default: throw error("unexpected character")
            }
        }

        mutating func literal(_ word: String) throws(SQSError) {
            let expected = Array(word.utf8)
            guard bytes.count - index >= expected.count, bytes[index..<index + expected.count].elementsEqual(expected) else {
                throw error("invalid literal")
            }
            index += expected.count
        }

        mutating func object(depth: Int) throws(SQSError) -> SQSValue {
            index += 1
            var members = [String: SQSValue]()
            skipWhitespace()
            if current == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            }
            while true {
                skipWhitespace()
                guard current == UInt8(ascii: "\"") else { throw error("expected a member name") }
                let key = try string()
                guard members[key] == nil else { throw error("duplicate member \"\(key)\"") }
                skipWhitespace()
                guard current == UInt8(ascii: ":") else { throw error("expected ':'") }
                index += 1
                skipWhitespace()
                members[key] = try value(depth: depth)
                skipWhitespace()
                if current == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                guard current == UInt8(ascii: "}") else { throw error("expected ',' or '}'") }
                index += 1
                return .object(members)
            }
        }

        mutating func array(depth: Int) throws(SQSError) -> SQSValue {
            index += 1
            var items = [SQSValue]()
            skipWhitespace()
            if current == UInt8(ascii: "]") {
                index += 1
                return .list(items)
            }
            while true {
                skipWhitespace()
                items.append(try value(depth: depth))
                skipWhitespace()
                if current == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                guard current == UInt8(ascii: "]") else { throw error("expected ',' or ']'") }
                index += 1
                return .list(items)
            }
        }

        mutating func number() throws(SQSError) -> String {
            let start = index
            if current == UInt8(ascii: "-") { index += 1 }
            guard let first = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { throw error("invalid number") }
            if first == UInt8(ascii: "0") {
                index += 1
            } else {
                while let c = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) { index += 1 }
            }
            if current == UInt8(ascii: ".") {
                index += 1
                guard let c = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) else { throw error("invalid number") }
                while let c = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) { index += 1 }
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                index += 1
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
                guard let c = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) else { throw error("invalid number") }
                while let c = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) { index += 1 }
            }
            return String(decoding: bytes[start..<index], as: UTF8.self)
        }

        mutating func hex4() throws(SQSError) -> UInt32 {
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

        mutating func string() throws(SQSError) -> String {
            index += 1
            var scalars = String.UnicodeScalarView()
            var run = index
            var utf8 = [UInt8]()
            func flush(_ end: Int) throws(SQSError) {
                guard run < end else { return }
                utf8.removeAll(keepingCapacity: true)
                utf8.append(contentsOf: bytes[run..<end])
                guard let text = String(validating: utf8, as: UTF8.self) else { throw error("invalid UTF-8 in a string") }
                scalars.append(contentsOf: text.unicodeScalars)
            }
            while true {
                guard let c = current else { throw error("unterminated string") }
                if c == UInt8(ascii: "\"") {
                    try flush(index)
                    index += 1
                    return String(scalars)
                }
                if c < 0x20 { throw error("control character in a string") }
                if c == UInt8(ascii: "\\") {
                    try flush(index)
                    index += 1
                    guard let e = current else { throw error("unterminated escape") }
                    index += 1
                    switch e {
                    case UInt8(ascii: "\""): scalars.append("\"")
                    case UInt8(ascii: "\\"): scalars.append("\\")
                    case UInt8(ascii: "/"): scalars.append("/")
                    case UInt8(ascii: "b"): scalars.append("\u{08}")
                    case UInt8(ascii: "f"): scalars.append("\u{0C}")
                    case UInt8(ascii: "n"): scalars.append("\n")
                    case UInt8(ascii: "r"): scalars.append("\r")
                    case UInt8(ascii: "t"): scalars.append("\t")
                    case UInt8(ascii: "u"):
                        let first = try hex4()
                        var code = first
                        if (0xD800...0xDBFF).contains(first) {
                            guard bytes.count - index >= 2, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                                throw error("lone surrogate escape")
                            }
                            index += 2
                            let second = try hex4()
                            guard (0xDC00...0xDFFF).contains(second) else { throw error("invalid surrogate pair") }
                            code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                        } else if (0xDC00...0xDFFF).contains(first) {
                            throw error("lone surrogate escape")
                        }
                        guard let scalar = Unicode.Scalar(code) else { throw error("invalid \\u escape") }
                        scalars.append(scalar)
                    default:
                        throw error("invalid escape")
                    }
                    run = index
                    continue
                }
                index += 1
            }
        }
    }

    /// Serializes `value` (object keys sorted, so output is deterministic).
    static func serialize(_ value: SQSOutput) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(256)
        write(value, to: &out)
        return out
    }

    private static func write(_ value: SQSOutput, to out: inout [UInt8]) {
        switch value {
        case .string(let text): writeString(text, to: &out)
        case .int(let number): out.append(contentsOf: String(number).utf8)
        case .bool(let flag): out.append(contentsOf: (flag ? "true" : "false").utf8)
        case .structure(let members):
            out.append(UInt8(ascii: "{"))
            for (index, member) in members.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                writeString(member.name, to: &out)
                out.append(UInt8(ascii: ":"))
                write(member.value, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        case .list(let items, _):
            out.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                write(item, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .map(let entries, _):
            out.append(UInt8(ascii: "{"))
            for (index, entry) in entries.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                writeString(entry.key, to: &out)
                out.append(UInt8(ascii: ":"))
                write(entry.value, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    static func writeString(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                        hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// The result of an action, rendered as JSON (AWS JSON 1.0) or XML (Query protocol). The XML
/// names of flattened lists and maps are part of the value, because the two protocols name
/// them differently (`"Messages": [...]` in JSON, repeated `<Message>` elements in XML).
indirect enum SQSOutput: Sendable {
    case string(String)
    case int(Int)
    case bool(Bool)
    /// Members in order.
    case structure([(name: String, value: SQSOutput)])
    /// A list; in XML each item is an element named `member`, directly in the parent.
    case list([SQSOutput], member: String)
    /// A map; in XML each entry is `<entry><Name>key</Name><Value>value</Value></entry>` (the
    /// names given by `xml`), directly in the parent.
    case map([(key: String, value: SQSOutput)], xml: MapNames)

    struct MapNames: Sendable {
        var entry: String
        var key: String
        var value: String
        static let attribute = MapNames(entry: "Attribute", key: "Name", value: "Value")
        static let messageAttribute = MapNames(entry: "MessageAttribute", key: "Name", value: "Value")
        static let tag = MapNames(entry: "Tag", key: "Key", value: "Value")
    }
}
