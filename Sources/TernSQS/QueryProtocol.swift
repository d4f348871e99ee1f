/// The AWS Query protocol of SQS (API version 2012-11-05), as older SDKs speak it: a
/// form-encoded `Action=SendMessage&QueueUrl=…&MessageAttribute.1.Name=…` (in the body of a
/// `POST`, or the query string of a `GET`) and XML responses.
///
/// The flattened parameters are folded into the shape the JSON protocol sends, so one handler
/// serves both: `Attribute.N.Name`/`.Value` become the map `Attributes`, `AttributeName.N` the
/// list `AttributeNames`, `SendMessageBatchRequestEntry.N` the list `Entries`, and so on.
enum QueryProtocol {
    /// The XML namespace of SQS responses.
    static let namespace = "http://queue.amazonaws.com/doc/2012-11-05/"
    /// The most parameters one request may carry (10 batch entries × 10 attributes × 4 fields,
    /// with room to spare); more is `InvalidParameterValue`.
    static let maxParameters = 2000

    /// Decodes `application/x-www-form-urlencoded` text into its pairs, in order.
    /// - Throws: ``SQSError`` `InvalidParameterValue` (MalformedQueryString in SQS's words)
    ///   for a bad percent escape or invalid UTF-8, or more than ``maxParameters`` pairs.
    static func decodeForm(_ bytes: [UInt8]) throws(SQSError) -> [(String, String)] {
        var pairs = [(String, String)]()
        for part in bytes.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            guard pairs.count < maxParameters else {
                throw SQSError(.invalidParameterValue, "The request has more than \(maxParameters) parameters.")
            }
            let pieces = part.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            let key = try percentDecode(pieces[0])
            let value = pieces.count > 1 ? try percentDecode(pieces[1]) : ""
            pairs.append((key, value))
        }
        return pairs
    }

    static func percentDecode(_ bytes: some Collection<UInt8>) throws(SQSError) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count)
        var iterator = bytes.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"): out.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    throw SQSError(.invalidParameterValue, "The query string is malformed: bad percent escape.")
                }
                out.append(high << 4 | low)
            default: out.append(byte)
            }
        }
        guard let text = String(validating: out, as: UTF8.self) else {
            throw SQSError(.invalidParameterValue, "The query string is malformed: invalid UTF-8.")
        }
        return text
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    // MARK: Folding flattened parameters

    /// Flattened list names and the JSON member they become.
    static let lists: [String: String] = [
        "AttributeName": "AttributeNames", "MessageAttributeName": "MessageAttributeNames",
        "MessageSystemAttributeName": "MessageSystemAttributeNames", "TagKey": "TagKeys",
        "SendMessageBatchRequestEntry": "Entries", "DeleteMessageBatchRequestEntry": "Entries",
        "ChangeMessageVisibilityBatchRequestEntry": "Entries", "AWSAccountId": "AWSAccountIds", "ActionName": "Actions",
    ]
    /// Flattened maps: the element name, the JSON member, and the names of key and value.
    static let maps: [String: (member: String, key: String, value: String)] = [
        "Attribute": ("Attributes", "Name", "Value"), "Tag": ("Tags", "Key", "Value"),
        "MessageAttribute": ("MessageAttributes", "Name", "Value"),
        "MessageSystemAttribute": ("MessageSystemAttributes", "Name", "Value"),
    ]

    /// A node of the tree built from dotted names.
    private final class Node {
        var value: String?
        var children: [String: Node] = [:]
    }

    /// Folds the pairs (without `Action` and `Version`) into the JSON protocol's shape.
    /// - Throws: ``SQSError`` `InvalidParameterValue` when a name is used both as a value and
    ///   as a prefix, or a list index is not a positive integer.
    static func fold(_ pairs: [(String, String)]) throws(SQSError) -> SQSValue {
        // No parameters (besides Action): an empty structure, which a queue URL's path may fill.
        guard !pairs.isEmpty else { return .object([:]) }
        let root = Node()
        for (key, value) in pairs {
            var node = root
            for segment in key.split(separator: ".", omittingEmptySubsequences: false) {
                let name = String(segment)
                if let child = node.children[name] {
                    node = child
                } else {
                    let child = Node()
                    node.children[name] = child
                    node = child
                }
            }
            guard node.value == nil else { throw SQSError(.invalidParameterValue, "Parameter \(key) is given twice.") }
            node.value = value
        }
        return try convert(root, name: "")
    }

    private static func convert(_ node: Node, name: String) throws(SQSError) -> SQSValue {
        if node.children.isEmpty { return .string(node.value ?? "") }
        guard node.value == nil else { throw SQSError(.invalidParameterValue, "Parameter \(name) is both a value and a structure.") }
        var members = [String: SQSValue]()
        for (key, child) in node.children {
            if let target = lists[key] {
                members[target] = .list(try items(child, name: key).map { item throws(SQSError) in try convert(item, name: key) })
            } else if let map = maps[key] {
                var entries = [String: SQSValue]()
                for item in try items(child, name: key) {
                    guard let keyNode = item.children[map.key], let keyText = keyNode.value else {
                        throw SQSError.missing("\(key).N.\(map.key)")
                    }
                    let valueNode = item.children[map.value]
                    entries[keyText] = try valueNode.map { node throws(SQSError) in try convert(node, name: key) } ?? .string("")
                }
                members[map.member] = .object(entries)
            } else {
                members[key] = try convert(child, name: key)
            }
        }
        return .object(members)
    }

    /// The items of a flattened list `Name.1`, `Name.2`, … in index order (a single `Name=value`
    /// without an index is a list of one).
    private static func items(_ node: Node, name: String) throws(SQSError) -> [Node] {
        if node.children.isEmpty { return [node] }
        var indexed = [(Int, Node)]()
        for (key, child) in node.children {
            guard let index = Int(key), index >= 1 else {
                throw SQSError(.invalidParameterValue, "Parameter \(name).\(key) is not a valid list index.")
            }
            indexed.append((index, child))
        }
        return indexed.sorted { $0.0 < $1.0 }.map(\.1)
    }

    // MARK: XML

    /// The XML document of a successful `action` with `result` (nil for actions without output).
    static func response(action: String, result: SQSOutput?, requestID: String) -> [UInt8] {
        var out = "<?xml version=\"1.0\"?><\(action)Response xmlns=\"\(namespace)\">"
        if let result {
            out += "<\(action)Result>"
            if case .structure(let members) = result {
                for member in members { element(member.name, member.value, into: &out) }
            }
            out += "</\(action)Result>"
        }
        out += "<ResponseMetadata><RequestId>\(requestID)</RequestId></ResponseMetadata></\(action)Response>"
        return Array(out.utf8)
    }

    /// The XML error document SQS answers.
    static func error(_ error: SQSError, requestID: String) -> [UInt8] {
        let type = error.code.senderFault ? "Sender" : "Receiver"
        let out = "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"\(namespace)\"><Error><Type>\(type)</Type><Code>"
            + escape(error.code.queryCode) + "</Code><Message>" + escape(error.message) + "</Message><Detail/></Error><RequestId>"
            + requestID + "</RequestId></ErrorResponse>"
        return Array(out.utf8)
    }

    private static func element(_ name: String, _ value: SQSOutput, into out: inout String) {
        switch value {
        case .string(let text): out += "<\(name)>" + escape(text) + "</\(name)>"
        case .int(let number): out += "<\(name)>\(number)</\(name)>"
        case .bool(let flag): out += "<\(name)>\(flag)</\(name)>"
        case .structure(let members):
            out += "<\(name)>"
            for member in members { element(member.name, member.value, into: &out) }
            out += "</\(name)>"
        case .list(let items, let member):
            for item in items { element(member, item, into: &out) }
        case .map(let entries, let names):
            for entry in entries {
                out += "<\(names.entry)><\(names.key)>" + escape(entry.key) + "</\(names.key)>"
                element(names.value, entry.value, into: &out)
                out += "</\(names.entry)>"
            }
        }
    }

    /// XML-escapes `text`; characters XML 1.0 cannot carry literally (`\r`) become references.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\r": out += "&#xD;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
