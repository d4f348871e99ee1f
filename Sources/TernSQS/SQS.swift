public import TernServer

/// The SQS-compatible API (see ``SQSEndpoint`` and `docs/sqs.md`).
public enum SQS {
    /// Settings of the SQS endpoint.
    public struct Settings: Sendable {
        /// The account id in queue URLs and ARNs (12 digits). Default `000000000000`.
        public var accountID = "000000000000"
        /// The region in ARNs. Default `us-east-1`.
        public var region = "us-east-1"
        /// The base of queue URLs (`https://sqs.example.com`, no trailing slash), for clients
        /// behind a proxy; nil = `http://` + the request's `Host` header.
        public var advertisedBaseURL: String? = nil
        /// The largest accepted request body, in bytes. Default 8 MiB (a 1 MiB batch in JSON
        /// with escapes and base64 binary attributes fits).
        public var maxRequestBytes = 8 << 20
        /// Authentication: when enabled, requests must carry a SigV4 signature by a configured
        /// token (access key id = the token's name, secret access key = the token).
        public var auth = Auth.Settings()

        public init() {}
    }

    /// The databases the endpoint needs in the broker's environment besides the broker's (pass
    /// them to `Storage`): only the legacy `sqs_queues`, to migrate it
    /// (``migrateLegacyMetadata(storage:broker:logger:)``); queue metadata is broker state.
    public static let databaseNames = [legacyDatabaseName]

    static let targetPrefix = "AmazonSQS."
    /// SQS's 60-second windows: re-creating a deleted queue, and purging again.
    static let recentWindowMilliseconds: UInt64 = 60_000

    // Limits (Amazon SQS Developer Guide, "Quotas").
    /// Message size (body + attributes), in bytes: 1,024–1,048,576, default 1,048,576 (SQS's
    /// maximum since 2025; 262,144 before).
    static let messageSizeRange = 1024...1_048_576
    /// A batch's total size, in bytes.
    static let maxBatchBytes = 1_048_576
    static let maxBatchEntries = 10
    static let maxMessageAttributes = 10
    static let maxTags = 50
    static let delayRange = 0...900
    static let waitTimeRange = 0...20
    static let receiveCountRange = 1...10
    static let visibilityTimeoutRange = 0...43_200
    static let retentionRange = 60...1_209_600
    /// `MessageRetentionPeriod` of a queue created without one, in seconds (4 days, SQS's default).
    static let defaultRetentionSeconds = 345_600
    static let maxReceiveCountRange = 1...1000
    static let moveRateRange = 1...500

    /// Every action of the SQS API (2012-11-05).
    enum Action: String, CaseIterable, Sendable {
        case addPermission = "AddPermission"
        case cancelMessageMoveTask = "CancelMessageMoveTask"
        case changeMessageVisibility = "ChangeMessageVisibility"
        case changeMessageVisibilityBatch = "ChangeMessageVisibilityBatch"
        case createQueue = "CreateQueue"
        case deleteMessage = "DeleteMessage"
        case deleteMessageBatch = "DeleteMessageBatch"
        case deleteQueue = "DeleteQueue"
        case getQueueAttributes = "GetQueueAttributes"
        case getQueueUrl = "GetQueueUrl"
        case listDeadLetterSourceQueues = "ListDeadLetterSourceQueues"
        case listMessageMoveTasks = "ListMessageMoveTasks"
        case listQueueTags = "ListQueueTags"
        case listQueues = "ListQueues"
        case purgeQueue = "PurgeQueue"
        case receiveMessage = "ReceiveMessage"
        case removePermission = "RemovePermission"
        case sendMessage = "SendMessage"
        case sendMessageBatch = "SendMessageBatch"
        case setQueueAttributes = "SetQueueAttributes"
        case startMessageMoveTask = "StartMessageMoveTask"
        case tagQueue = "TagQueue"
        case untagQueue = "UntagQueue"
    }
}

extension SQSEndpoint {
    /// Runs `action`; nil output = an action without result members.
    func perform(action: String, _ p: Parameters, context: Caller) async throws -> SQSOutput? {
        switch SQS.Action(rawValue: action)! {
        case .createQueue: return try await createQueue(p, context)
        case .getQueueUrl: return try getQueueUrl(p, context)
        case .listQueues: return try listQueues(p, context)
        case .deleteQueue: try await deleteQueue(p); return nil
        case .getQueueAttributes: return try getQueueAttributes(p)
        case .setQueueAttributes: try await setQueueAttributes(p); return nil
        case .purgeQueue: try await purgeQueue(p); return nil
        case .tagQueue: try await tagQueue(p); return nil
        case .untagQueue: try await untagQueue(p); return nil
        case .listQueueTags: return try listQueueTags(p)
        case .listDeadLetterSourceQueues: return try listDeadLetterSourceQueues(p, context)
        case .addPermission: try await addPermission(p); return nil
        case .removePermission: try await removePermission(p); return nil
        case .sendMessage: return try await sendMessage(p, context)
        case .sendMessageBatch: return try await sendMessageBatch(p, context)
        case .receiveMessage: return try await receiveMessage(p)
        case .deleteMessage: try await deleteMessage(p); return nil
        case .deleteMessageBatch: return try await deleteMessageBatch(p)
        case .changeMessageVisibility: try await changeMessageVisibility(p); return nil
        case .changeMessageVisibilityBatch: return try await changeMessageVisibilityBatch(p)
        case .startMessageMoveTask: return try await startMessageMoveTask(p)
        case .listMessageMoveTasks: return try listMessageMoveTasks(p)
        case .cancelMessageMoveTask: return try await cancelMessageMoveTask(p)
        }
    }
}
