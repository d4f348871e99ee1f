public import TernCore

/// An SQS error: the code SQS uses (as the JSON `__type` suffix), the legacy Query-protocol code
/// that `x-amzn-query-error` and XML errors carry, the HTTP status, and who is at fault.
///
/// Codes and statuses are SQS's (API Reference, "Common Errors" and each action's "Errors");
/// botocore raises `client.exceptions.<name>` and sets `Error.Code` to ``Code/queryCode``.
public struct SQSError: Error, Sendable, CustomStringConvertible {
    public struct Code: Sendable, Hashable {
        /// The modeled name (`QueueDoesNotExist`).
        public let name: String
        /// The Query-protocol code (`AWS.SimpleQueueService.NonExistentQueue`).
        public let queryCode: String
        /// The HTTP status.
        public let status: Int
        /// Whether the sender is at fault (`Sender`) or the service (`Receiver`).
        public let senderFault: Bool

        init(_ name: String, _ queryCode: String? = nil, status: Int = 400, senderFault: Bool = true) {
            self.name = name
            self.queryCode = queryCode ?? name
            self.status = status
            self.senderFault = senderFault
        }

        static let sqsPrefix = "AWS.SimpleQueueService."

        // Modeled errors (botocore's service model).
        public static let queueDoesNotExist = Code("QueueDoesNotExist", sqsPrefix + "NonExistentQueue")
        public static let queueNameExists = Code("QueueNameExists", "QueueAlreadyExists")
        public static let queueDeletedRecently = Code("QueueDeletedRecently", sqsPrefix + "QueueDeletedRecently")
        public static let invalidAttributeName = Code("InvalidAttributeName")
        public static let invalidAttributeValue = Code("InvalidAttributeValue")
        public static let invalidBatchEntryId = Code("InvalidBatchEntryId", sqsPrefix + "InvalidBatchEntryId")
        public static let batchEntryIdsNotDistinct = Code("BatchEntryIdsNotDistinct", sqsPrefix + "BatchEntryIdsNotDistinct")
        public static let tooManyEntriesInBatchRequest = Code("TooManyEntriesInBatchRequest", sqsPrefix + "TooManyEntriesInBatchRequest")
        public static let emptyBatchRequest = Code("EmptyBatchRequest", sqsPrefix + "EmptyBatchRequest")
        public static let batchRequestTooLong = Code("BatchRequestTooLong", sqsPrefix + "BatchRequestTooLong")
        public static let invalidMessageContents = Code("InvalidMessageContents")
        public static let messageNotInflight = Code("MessageNotInflight", sqsPrefix + "MessageNotInflight")
        public static let receiptHandleIsInvalid = Code("ReceiptHandleIsInvalid")
        public static let purgeQueueInProgress = Code("PurgeQueueInProgress", sqsPrefix + "PurgeQueueInProgress", status: 403)
        public static let overLimit = Code("OverLimit", status: 403)
        public static let unsupportedOperation = Code("UnsupportedOperation", sqsPrefix + "UnsupportedOperation")
        public static let resourceNotFound = Code("ResourceNotFoundException", status: 404)
        public static let invalidAddress = Code("InvalidAddress", status: 404)
        public static let invalidSecurity = Code("InvalidSecurity", status: 403)
        public static let requestThrottled = Code("RequestThrottled", status: 403)
        // Common errors (every AWS query service).
        public static let invalidParameterValue = Code("InvalidParameterValue")
        public static let missingParameter = Code("MissingParameter")
        public static let invalidAction = Code("InvalidAction")
        public static let unknownOperation = Code("UnknownOperationException")
        public static let serialization = Code("SerializationException")
        public static let accessDenied = Code("AccessDenied", status: 403)
        public static let invalidClientTokenId = Code("InvalidClientTokenId", status: 403)
        public static let signatureDoesNotMatch = Code("SignatureDoesNotMatch", status: 403)
        public static let incompleteSignature = Code("IncompleteSignature")
        public static let missingAuthenticationToken = Code("MissingAuthenticationToken", status: 403)
        public static let requestEntityTooLarge = Code("RequestEntityTooLarge", status: 413)
        public static let internalFailure = Code("InternalFailure", status: 500, senderFault: false)
        public static let serviceUnavailable = Code("ServiceUnavailable", status: 503, senderFault: false)
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.name): \(message)" }

    /// `InvalidParameterValue` in SQS's wording: "Value X for parameter P is invalid. Reason: R."
    static func invalidValue(_ value: String, parameter: String, reason: String) -> SQSError {
        SQSError(.invalidParameterValue, "Value \(value) for parameter \(parameter) is invalid. Reason: \(reason)")
    }

    static func missing(_ parameter: String) -> SQSError {
        SQSError(.missingParameter, "The request must contain the parameter \(parameter).")
    }

    static func queueDoesNotExist() -> SQSError {
        SQSError(.queueDoesNotExist, "The specified queue does not exist.")
    }

    /// The SQS error for a broker failure.
    static func from(_ error: TernError) -> SQSError {
        switch error.code {
        case .queueNotFound: return .queueDoesNotExist()
        case .invalidReceiptHandle: return SQSError(.receiptHandleIsInvalid, "The input receipt handle is not a valid receipt handle.")
        case .receiptHandleStale: return SQSError(.receiptHandleIsInvalid, "The receipt handle has expired.")
        case .invalidAttribute: return SQSError(.invalidAttributeValue, "Invalid value for the parameter: \(error.message)")
        case .messageTooLarge, .invalidMessage, .invalidParameter, .invalidName:
            return SQSError(.invalidParameterValue, error.message)
        case .queueFull: return SQSError(.overLimit, error.message)
        case .storageFull: return SQSError(.overLimit, error.message)
        case .conflict: return SQSError(.invalidParameterValue, error.message)
        case .unavailable: return SQSError(.serviceUnavailable, error.message)
        // Leadership moved while the request was served: nothing was applied.
        case .notLeader: return SQSError(.serviceUnavailable, error.message + "; retry")
        case .unauthorized: return SQSError(.invalidClientTokenId, error.message)
        case .forbidden: return SQSError(.accessDenied, error.message)
        default: return SQSError(.internalFailure, "We encountered an internal error. Please try again.")
        }
    }
}
