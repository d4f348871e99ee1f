import Crypto
public import TernCore

/// The MD5 digests SQS returns with sent and received messages, which the Java, .NET and PHP
/// SDKs check (botocore does not).
///
/// Source: Amazon SQS Developer Guide, "Calculating the MD5 message digest for message
/// attributes": the attributes sorted by name, each encoded as name (4-byte big-endian length +
/// UTF-8), data type (length + UTF-8), one transport byte (1 for String and Number, 2 for
/// Binary), value (length + bytes); the MD5 of the concatenation, as 32 lowercase hex digits.
public enum MessageDigests {
    /// MD5 of the UTF-8 body (`MD5OfMessageBody`, `MD5OfBody`).
    public static func body(_ body: [UInt8]) -> String {
        SigV4.hex(Insecure.MD5.hash(data: body))
    }

    /// MD5 over `attributes` in SQS's encoding (`MD5OfMessageAttributes`,
    /// `MD5OfMessageSystemAttributes`); nil when there are none (SQS then omits the field).
    public static func attributes(_ attributes: [MessageAttribute]) -> String? {
        guard !attributes.isEmpty else { return nil }
        var bytes = [UInt8]()
        func append(_ field: [UInt8]) {
            let count = UInt32(field.count)
            bytes.append(contentsOf: [UInt8(count >> 24), UInt8(count >> 16 & 0xFF), UInt8(count >> 8 & 0xFF), UInt8(count & 0xFF)])
            bytes.append(contentsOf: field)
        }
        // Sorted by name as byte strings (SQS sorts by the name's code units).
        for attribute in attributes.sorted(by: { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }) {
            append(Array(attribute.name.utf8))
            append(Array(attribute.dataType.utf8))
            bytes.append(attribute.isBinary ? 2 : 1)
            append(attribute.value)
        }
        return SigV4.hex(Insecure.MD5.hash(data: bytes))
    }
}
