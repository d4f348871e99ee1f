/// A stable error code shared by the HTTP API, the binary protocol and the client library.
///
/// Codes are part of the public contract: their `name` appears in HTTP error bodies
/// (`{"error": {"code": "QueueNotFound", "message": "…"}}`), their `number` in binary error
/// frames. New codes may be added; existing ones never change meaning. The registry is
/// modelled on NATS' API error table (a stable numeric code plus an HTTP-like status).
public struct ErrorCode: Hashable, Sendable, CustomStringConvertible {
    /// The stable, human-readable name, e.g. `"QueueNotFound"`.
    public let name: String
    /// The HTTP status this code is reported with.
    public let httpStatus: Int
    /// The stable numeric code used by the binary protocol.
    public let number: UInt16

    private init(_ name: String, _ httpStatus: Int, _ number: UInt16) {
        self.name = name
        self.httpStatus = httpStatus
        self.number = number
    }

    public var description: String { name }

    // 400: the request is malformed; nothing was changed.
    /// The request body is not valid JSON, or not valid UTF-8/Unicode.
    public static let invalidJSON = ErrorCode("InvalidJSON", 400, 1)
    /// A queue or topic name breaks the naming rules (1–80 of `[A-Za-z0-9_-]`, `.fifo` suffix for FIFO queues).
    public static let invalidName = ErrorCode("InvalidName", 400, 2)
    /// A queue attribute is unknown, of the wrong type or out of range.
    public static let invalidAttribute = ErrorCode("InvalidAttribute", 400, 3)
    /// A request parameter (query or body field) is missing, of the wrong type or out of range.
    public static let invalidParameter = ErrorCode("InvalidParameter", 400, 4)
    /// A message body is empty or not a string.
    public static let invalidMessage = ErrorCode("InvalidMessage", 400, 5)
    /// A malformed receipt handle (not one Tern could have issued). A well-formed handle of
    /// another queue, or of an earlier queue of the same name, is ``receiptHandleStale``.
    public static let invalidReceiptHandle = ErrorCode("InvalidReceiptHandle", 400, 6)
    /// The operation is not supported by this version of Tern.
    public static let unsupported = ErrorCode("Unsupported", 400, 7)
    /// The HTTP request's framing is wrong: an HTTP/1.1 request without `Host`, a malformed
    /// chunked body, a bad `Content-Length` (the connection is closed after the answer).
    public static let malformedRequest = ErrorCode("MalformedRequest", 400, 8)

    // 404
    /// The named queue does not exist.
    public static let queueNotFound = ErrorCode("QueueNotFound", 404, 20)
    /// No route matches the request path.
    public static let routeNotFound = ErrorCode("NotFound", 404, 21)
    /// The method is not allowed on this path.
    public static let methodNotAllowed = ErrorCode("MethodNotAllowed", 405, 22)

    // 409
    /// The request conflicts with the current state (for example, changing a queue's `fifo` attribute).
    public static let conflict = ErrorCode("Conflict", 409, 30)
    /// The queue is at its `max_messages`/`max_bytes` limit and its overflow policy is `reject`.
    public static let queueFull = ErrorCode("QueueFull", 409, 31)

    // 410
    /// The receipt handle was superseded by a later receive, or its message is gone (acknowledged, purged, deleted).
    public static let receiptHandleStale = ErrorCode("ReceiptHandleStale", 410, 40)

    // 413
    /// A message body exceeds the queue's `max_message_bytes`.
    public static let messageTooLarge = ErrorCode("MessageTooLarge", 413, 50)
    /// The request body exceeds the server's request size limit.
    public static let requestTooLarge = ErrorCode("RequestTooLarge", 413, 51)

    // 5xx
    /// Internal failure; the message says what failed. Never used for bad input.
    public static let internalError = ErrorCode("InternalError", 500, 60)
    /// The request uses an HTTP feature the server does not implement, such as a transfer
    /// coding other than `chunked` (RFC 9112 §6.1).
    public static let notImplemented = ErrorCode("NotImplemented", 501, 63)
    /// The broker is at a limit that frees up by itself (too many connections, the budget for
    /// request bodies being received): retry after the `Retry-After` seconds.
    public static let overloaded = ErrorCode("Overloaded", 503, 64)
    /// The broker is shutting down or not yet ready.
    public static let unavailable = ErrorCode("Unavailable", 503, 61)
    /// This node does not lead the replication group that owns the queue or topic; the
    /// message names the leader (binary clients retry there; HTTP requests are forwarded).
    public static let notLeader = ErrorCode("NotLeader", 503, 65)
    /// The storage map reached its configured maximum; sends are refused, acks and deletes still work.
    public static let storageFull = ErrorCode("StorageFull", 507, 62)

    // Binary protocol, idempotent producers and transactions (numbers 100–119).
    /// A binary frame is truncated, garbled, or breaks the protocol (the connection is closed).
    public static let invalidFrame = ErrorCode("InvalidFrame", 400, 100)
    /// A binary frame names an API key or version this broker does not serve (the connection is closed).
    public static let unsupportedVersion = ErrorCode("UnsupportedVersion", 400, 101)
    /// A binary frame exceeds the broker's maximum frame size (the connection is closed).
    public static let frameTooLarge = ErrorCode("FrameTooLarge", 413, 102)
    /// An idempotent send skipped sequence numbers: the broker expected a lower first sequence.
    public static let outOfOrderSequence = ErrorCode("OutOfOrderSequence", 409, 103)
    /// A newer producer with the same transactional id (a higher epoch) exists: this one may no longer write.
    public static let producerFenced = ErrorCode("ProducerFenced", 409, 104)
    /// The producer id is unknown: never issued, or expired after its idle time.
    public static let unknownProducer = ErrorCode("UnknownProducer", 404, 105)
    /// A transaction's sequence number is neither the next one nor the last committed one.
    public static let invalidTransaction = ErrorCode("InvalidTransaction", 409, 106)

    // Topics and consumer groups (numbers 120–139).
    /// The named topic does not exist.
    public static let topicNotFound = ErrorCode("TopicNotFound", 404, 120)
    /// The consumer-group member is unknown: it never joined, left, or missed its session timeout.
    public static let memberNotFound = ErrorCode("MemberNotFound", 404, 121)
    /// A fetch offset below the partition's log start or above its high watermark; the message names the valid range.
    public static let offsetOutOfRange = ErrorCode("OffsetOutOfRange", 416, 122)
    /// An offset commit names a generation other than the group's current one (a rebalance happened).
    public static let staleGeneration = ErrorCode("StaleGeneration", 409, 123)

    // Security (numbers 140–149).
    /// The request carries no bearer token, or one the broker does not know (authentication is on).
    public static let unauthorized = ErrorCode("Unauthorized", 401, 140)
    /// The bearer token is valid but lacks the permission the request needs (admin, or produce/consume on the name).
    public static let forbidden = ErrorCode("Forbidden", 403, 141)
    /// A browser sent a state-changing request from another origin (`Sec-Fetch-Site`
    /// `cross-site`/`same-site`, or an `Origin` that is neither the server's nor one of
    /// `--cors-origins`); nothing was changed.
    public static let crossOriginRequest = ErrorCode("CrossOriginRequest", 403, 142)
    /// The `Host` header names neither loopback nor one of `--allowed-hosts` on a listener
    /// bound to loopback (DNS-rebinding protection); nothing was changed.
    public static let hostNotAllowed = ErrorCode("HostNotAllowed", 403, 143)

    // Cluster (numbers 150–169).
    /// A node-to-node frame (`PeerHello`, `RaftBatch`) reached a node that does not run in a
    /// cluster (started without `--node-id`/`--controllers`); nothing was changed.
    public static let notInCluster = ErrorCode("NotInCluster", 409, 159)
    /// A membership change named a node that gossip does not know alive (to add it) or that is
    /// not a member of the group (to remove it); nothing was changed.
    public static let nodeNotFound = ErrorCode("NodeNotFound", 404, 160)
    /// A transaction names queues of more than one replication group (with queue groups: queues
    /// of two groups, or a queue group's queue and a topic), which no coordinator yet commits
    /// atomically (decisions 128, 140, 141); nothing was applied.
    public static let transactionSpansGroups = ErrorCode("TransactionSpansGroups", 409, 161)

    /// Every registered code, for documentation and tests.
    public static let all: [ErrorCode] = [
        .invalidJSON, .invalidName, .invalidAttribute, .invalidParameter, .invalidMessage,
        .invalidReceiptHandle, .unsupported, .malformedRequest, .queueNotFound, .routeNotFound, .methodNotAllowed,
        .conflict, .queueFull, .receiptHandleStale, .messageTooLarge, .requestTooLarge,
        .internalError, .unavailable, .storageFull, .notImplemented, .overloaded, .notLeader,
        .invalidFrame, .unsupportedVersion, .frameTooLarge, .outOfOrderSequence, .producerFenced,
        .unknownProducer, .invalidTransaction,
        .topicNotFound, .memberNotFound, .offsetOutOfRange, .staleGeneration,
        .unauthorized, .forbidden, .crossOriginRequest, .hostNotAllowed,
        .notInCluster, .nodeNotFound, .transactionSpansGroups,
    ]
}

/// An error reported to clients: a stable ``ErrorCode`` and a human message.
public struct TernError: Error, Sendable, CustomStringConvertible, Equatable {
    public var code: ErrorCode
    public var message: String

    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.name): \(message)" }
}
