/// One typed attribute carried with a message next to its body (SQS's message attributes,
/// AMQP's headers, Kafka's record headers), stored durably with the message and delivered with it.
///
/// The broker treats attributes as opaque: it stores them, moves them with the message (to a
/// dead-letter queue and back) and hands them out on receive. Protocol front ends (the SQS
/// endpoint) validate and interpret them.
public struct MessageAttribute: Sendable, Hashable {
    /// Who set the attribute.
    public enum Kind: UInt8, Sendable, Hashable {
        /// Set by the sender (SQS `MessageAttributes`).
        case user = 0
        /// Set by the system or a front end on the sender's behalf (SQS `MessageSystemAttributes`
        /// such as `AWSTraceHeader`, or `SenderId`).
        case system = 1
    }

    public var kind: Kind
    /// The attribute's name (1–256 bytes of UTF-8 for SQS).
    public var name: String
    /// The data type as the sender gave it: `String`, `Number`, `Binary`, optionally with a
    /// custom suffix (`Number.int`, `Binary.png`).
    public var dataType: String
    /// The value: UTF-8 text for `String` and `Number` types, raw bytes for `Binary`.
    public var value: [UInt8]

    public init(kind: Kind = .user, name: String, dataType: String, value: [UInt8]) {
        self.kind = kind
        self.name = name
        self.dataType = dataType
        self.value = value
    }

    /// Whether the value is binary (the data type is `Binary` or `Binary.…`).
    public var isBinary: Bool { dataType == "Binary" || dataType.hasPrefix("Binary.") }

    /// Bytes the attribute adds to a message's size as SQS counts it: name, data type and value.
    public var countedBytes: Int { name.utf8.count + dataType.utf8.count + value.count }
}
