/// The JSON bodies of ternd's HTTP API, as the command-line client sends and reads them (the binary
/// transport converts its answers to these shapes, so commands print the same either way).
///
/// Field names on the wire are snake_case; every type spells its `CodingKeys` out rather than
/// relying on a key strategy, so that a reader can match each field against `docs/openapi.yaml`.
/// Durations are whole seconds, times are milliseconds since the Unix epoch, sizes are bytes.
enum API {
    // MARK: Queues

    /// Queue attributes as sent by `PUT /queues/{name}` and returned in a queue description.
    ///
    /// Every field is optional: in a request, an absent field leaves the attribute as it is (or at
    /// its default for a new queue); in a response, `null` means "off".
    struct QueueAttributes: Codable, Sendable {
        /// In seconds.
        var visibilityTimeout: Int?
        /// In seconds.
        var retention: Int?
        /// In UTF-8 bytes.
        var maxMessageBytes: Int?
        /// In seconds.
        var delay: Int?
        var maxReceiveCount: Int?
        var deadLetterQueue: String?
        var fifo: Bool?
        var maxMessages: Int?
        /// In bytes.
        var maxBytes: Int?

        init() {}

        enum CodingKeys: String, CodingKey {
            case visibilityTimeout = "visibility_timeout"
            case retention
            case maxMessageBytes = "max_message_bytes"
            case delay
            case maxReceiveCount = "max_receive_count"
            case deadLetterQueue = "dead_letter_queue"
            case fifo
            case maxMessages = "max_messages"
            case maxBytes = "max_bytes"
        }

        /// Whether no attribute is set (the request body is then `{}`).
        var isEmpty: Bool {
            visibilityTimeout == nil && retention == nil && maxMessageBytes == nil && delay == nil
                && maxReceiveCount == nil && deadLetterQueue == nil && fifo == nil && maxMessages == nil
                && maxBytes == nil
        }
    }

    /// Message counts of a queue by state.
    struct MessageCounts: Codable, Sendable {
        var ready: UInt64
        var inFlight: UInt64
        var delayed: UInt64
        var total: UInt64

        enum CodingKeys: String, CodingKey {
            case ready
            case inFlight = "in_flight"
            case delayed
            case total
        }
    }

    /// The answer of `GET /queues/{name}` and `PUT /queues/{name}`, and one entry of `GET /queues`.
    struct QueueDescription: Codable, Sendable {
        var name: String
        var attributes: QueueAttributes
        var messages: MessageCounts
        /// Uncompressed body bytes of all messages in the queue.
        var bytes: UInt64
        /// Milliseconds since the Unix epoch.
        var createdAt: Int64
        /// Age of the oldest message in seconds; nil when the queue is empty.
        var oldestMessageAge: Double?

        enum CodingKeys: String, CodingKey {
            case name
            case attributes
            case messages
            case bytes
            case createdAt = "created_at"
            case oldestMessageAge = "oldest_message_age"
        }
    }

    /// The answer of `GET /queues`.
    struct QueueList: Codable, Sendable {
        var queues: [QueueDescription]
    }

    /// The answer of `POST /queues/{name}/purge`.
    struct PurgeResult: Codable, Sendable {
        var purged: Int
    }

    /// The answer of `POST /queues/{dlq}/redrive`.
    struct RedriveResult: Codable, Sendable {
        var moved: Int
    }

    // MARK: Messages

    /// One message of `POST /queues/{name}/messages`, alone or as an element of a batch.
    struct SendRequest: Codable, Sendable {
        /// The body; must be 1 to `max_message_bytes` UTF-8 bytes.
        var message: String
        /// 0–9, higher first; absent = 0.
        var priority: Int?
        /// In seconds; absent = the queue's `delay`.
        var delay: Int?
    }

    /// The batch form of `POST /queues/{name}/messages`: 1–1,000 messages.
    struct SendBatchRequest: Codable, Sendable {
        var messages: [SendRequest]
    }

    /// The answer to one sent message.
    struct SendResult: Codable, Sendable {
        var id: String
        var sequence: UInt64
        /// Milliseconds since the Unix epoch.
        var visibleAt: Int64

        enum CodingKeys: String, CodingKey {
            case id
            case sequence
            case visibleAt = "visible_at"
        }
    }

    /// The answer to a batch send, in request order.
    struct SendBatchResult: Codable, Sendable {
        var messages: [SendResult]
    }

    /// One delivered message of `GET /queues/{name}/messages`.
    struct ReceivedMessage: Codable, Sendable {
        var id: String
        var body: String
        var receiptHandle: String
        var receiveCount: Int
        var priority: Int
        /// Milliseconds since the Unix epoch.
        var sentAt: Int64

        enum CodingKeys: String, CodingKey {
            case id
            case body
            case receiptHandle = "receipt_handle"
            case receiveCount = "receive_count"
            case priority
            case sentAt = "sent_at"
        }
    }

    /// The answer of `GET /queues/{name}/messages`; empty when nothing arrived within `wait_time`.
    struct ReceiveResult: Codable, Sendable {
        var messages: [ReceivedMessage]
    }

    /// The body of `PATCH /queues/{name}/messages/{receipt_handle}`.
    struct ChangeVisibilityRequest: Codable, Sendable {
        /// In seconds from now; 0 releases the message at once.
        var visibilityTimeout: Int

        enum CodingKeys: String, CodingKey {
            case visibilityTimeout = "visibility_timeout"
        }
    }

    // MARK: Errors

    /// Every non-2xx answer: `{"error": {"code": "QueueNotFound", "message": "…"}}`.
    struct ErrorResponse: Codable, Sendable {
        struct Detail: Codable, Sendable {
            /// A stable code from the registry in `TernCore.ErrorCode`.
            var code: String
            var message: String
        }

        var error: Detail
    }
}

/// Any JSON value, to pretty-print a server answer without dropping fields this client does not know.
enum JSONValue: Codable, Sendable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}
