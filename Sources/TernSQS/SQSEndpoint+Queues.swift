import Foundation
import TernBroker
import TernCore

/// Queue actions: CreateQueue, GetQueueUrl, ListQueues, DeleteQueue, Get/SetQueueAttributes,
/// PurgeQueue, tags, ListDeadLetterSourceQueues, Add/RemovePermission.
extension SQSEndpoint {
    /// Queue attributes a client may set, and those it may only read.
    static let settableAttributes: Set<String> = [
        "DelaySeconds", "MaximumMessageSize", "MessageRetentionPeriod", "Policy", "ReceiveMessageWaitTimeSeconds",
        "VisibilityTimeout", "RedrivePolicy", "RedriveAllowPolicy", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds",
        "SqsManagedSseEnabled", "FifoQueue", "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit",
    ]
    static let readOnlyAttributes: Set<String> = [
        "All", "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed",
        "CreatedTimestamp", "LastModifiedTimestamp", "QueueArn",
    ]
    /// Attributes only FIFO queues have.
    static let fifoAttributes: Set<String> = ["FifoQueue", "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit"]
    /// The prefix of metadata attributes the endpoint keeps for itself (never reported as
    /// queue attributes): its replicated state besides tags and attributes (decision 139).
    static let internalPrefix = "tern.sqs."
    /// When the last PurgeQueue started, in ms since 1970 (SQS's 60-second purge window).
    static let purgedAtKey = internalPrefix + "purged_at"
    /// Attributes kept in ``QueueMetadata`` (the broker does not model them).
    static let storedAttributes: Set<String> = [
        "Policy", "ReceiveMessageWaitTimeSeconds", "RedriveAllowPolicy", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds",
        "SqsManagedSseEnabled", "DeduplicationScope", "FifoThroughputLimit",
    ]

    /// Validated attributes: the broker patch, the values to store in metadata (nil = remove),
    /// and the normalized text of each given attribute (for CreateQueue's idempotence check).
    struct AttributeChange: Sendable {
        var patch = QueueAttributes.Patch()
        var stored: [String: String?] = [:]
        var normalized: [String: String] = [:]
    }

    /// Validates `attributes` for `name` (fifo or not) as SQS does.
    /// - Throws: `InvalidAttributeName` for unknown or read-only names (and FIFO attributes on
    ///   a standard queue, `FifoQueue` on SetQueueAttributes), `InvalidAttributeValue` for values
    ///   out of range, `InvalidParameterValue` for a bad `RedrivePolicy`/`RedriveAllowPolicy`.
    func validate(_ attributes: [String: String], for name: QueueName, creating: Bool) throws(SQSError) -> AttributeChange {
        var change = AttributeChange()
        let fifo = name.isFIFO
        func number(_ key: String, _ text: String, _ range: ClosedRange<Int>) throws(SQSError) -> Int {
            guard let value = Int(text), range.contains(value) else {
                throw SQSError(.invalidAttributeValue, "Invalid value for the parameter \(key).")
            }
            change.normalized[key] = String(value)
            return value
        }
        func boolean(_ key: String, _ text: String) throws(SQSError) -> Bool {
            switch text.lowercased() {
            case "true": change.normalized[key] = "true"; return true
            case "false": change.normalized[key] = "false"; return false
            default: throw SQSError(.invalidAttributeValue, "Invalid value for the parameter \(key).")
            }
        }
        func choice(_ key: String, _ text: String, _ allowed: [String]) throws(SQSError) -> String {
            guard allowed.contains(text) else { throw SQSError(.invalidAttributeValue, "Invalid value for the parameter \(key).") }
            change.normalized[key] = text
            return text
        }
        for (key, text) in attributes.sorted(by: { $0.key < $1.key }) {
            guard Self.settableAttributes.contains(key) else {
                throw SQSError(.invalidAttributeName, "Unknown Attribute \(key).")
            }
            if Self.fifoAttributes.contains(key) && !fifo && !(key == "FifoQueue" && text.lowercased() == "false") {
                throw SQSError(.invalidAttributeName, "Unknown Attribute \(key).")
            }
            switch key {
            case "DelaySeconds": change.patch.delay = try number(key, text, SQS.delayRange)
            case "MaximumMessageSize": change.patch.maxMessageBytes = try number(key, text, SQS.messageSizeRange)
            case "MessageRetentionPeriod": change.patch.retention = try number(key, text, SQS.retentionRange)
            case "VisibilityTimeout": change.patch.visibilityTimeout = try number(key, text, SQS.visibilityTimeoutRange)
            case "ReceiveMessageWaitTimeSeconds": change.stored[key] = String(try number(key, text, SQS.waitTimeRange))
            case "KmsDataKeyReusePeriodSeconds": change.stored[key] = String(try number(key, text, 60...86_400))
            case "SqsManagedSseEnabled": change.stored[key] = String(try boolean(key, text))
            case "KmsMasterKeyId":
                change.normalized[key] = text
                change.stored[key] = text.isEmpty ? .some(nil) : text
            case "Policy":
                if !text.isEmpty {
                    guard case .object? = try? JSON.parse(Array(text.utf8)) else {
                        throw SQSError(.invalidAttributeValue, "Invalid value for the parameter Policy.")
                    }
                }
                change.normalized[key] = text
                change.stored[key] = text.isEmpty ? .some(nil) : text
            case "FifoQueue":
                guard creating else { throw SQSError(.invalidAttributeName, "Unknown Attribute FifoQueue.") }
                change.patch.fifo = try boolean(key, text)
            case "ContentBasedDeduplication": change.patch.contentBasedDeduplication = try boolean(key, text)
            case "DeduplicationScope": change.stored[key] = try choice(key, text, ["messageGroup", "queue"])
            case "FifoThroughputLimit": change.stored[key] = try choice(key, text, ["perQueue", "perMessageGroupId"])
            case "RedrivePolicy":
                change.normalized[key] = text
                if text.isEmpty {
                    change.patch.maxReceiveCount = .some(nil)
                    change.patch.deadLetterQueue = .some(nil)
                } else {
                    let (target, count) = try redrivePolicy(text, of: name)
                    change.patch.maxReceiveCount = .some(count)
                    change.patch.deadLetterQueue = .some(target)
                }
            case "RedriveAllowPolicy":
                change.normalized[key] = text
                if text.isEmpty {
                    change.stored[key] = .some(nil)
                } else {
                    try validateRedriveAllowPolicy(text)
                    change.stored[key] = text
                }
            default:
                break
            }
        }
        if fifo, let limit = change.stored["FifoThroughputLimit"] ?? nil, limit == "perMessageGroupId" {
            let scope = (change.stored["DeduplicationScope"] ?? nil)
            if scope != "messageGroup" {
                throw SQSError(.invalidAttributeValue, "Invalid value for the parameter FifoThroughputLimit: perMessageGroupId needs DeduplicationScope messageGroup.")
            }
        }
        return change
    }

    /// Parses `{"deadLetterTargetArn": "arn:aws:sqs:…:dlq", "maxReceiveCount": 5}`.
    /// - Throws: `InvalidParameterValue` in SQS's words when it is not such JSON, the count is
    ///   outside 1–1,000, the target does not exist, is of the other queue type, or refuses
    ///   this source in its `RedriveAllowPolicy`.
    func redrivePolicy(_ text: String, of source: QueueName) throws(SQSError) -> (QueueName, Int) {
        func invalid(_ reason: String) -> SQSError { .invalidValue(text, parameter: "RedrivePolicy", reason: reason) }
        guard let value = try? JSON.parse(Array(text.utf8)), case .object = value else {
            throw invalid("Redrive policy is not a valid JSON map.")
        }
        let policy = Parameters(value: value, wire: .json)
        guard let arn = try? policy.string("deadLetterTargetArn") else {
            throw invalid("Redrive policy does not contain mandatory attribute: deadLetterTargetArn.")
        }
        let countValue: String?
        switch policy["maxReceiveCount"] {
        case .number(let text)?, .string(let text)?: countValue = text
        default: countValue = nil
        }
        guard let countText = countValue else {
            throw invalid("Redrive policy does not contain mandatory attribute: maxReceiveCount.")
        }
        guard let count = Int(countText), SQS.maxReceiveCountRange.contains(count) else {
            throw invalid("Invalid value for maxReceiveCount: \(countText), valid values are from 1 to 1000 both inclusive.")
        }
        let target = try queueName(arn: arn, orElse: invalid("Dead-letter target ARN is not valid."))
        guard target != source else { throw invalid("Dead-letter target must differ from the source queue.") }
        guard let described = try? broker.describeQueueWithMetadata(target) else { throw invalid("Dead letter target does not exist.") }
        guard target.isFIFO == source.isFIFO else { throw invalid("Dead-letter queue must be same type of queue as the source.") }
        if let allow = described.metadata.attributes["RedriveAllowPolicy"],
            let allowValue = try? JSON.parse(Array(allow.utf8))
        {
            let allowPolicy = Parameters(value: allowValue, wire: .json)
            let permission = (try? allowPolicy.string("redrivePermission")) ?? "allowAll"
            let sources = (try? allowPolicy.stringList("sourceQueueArns")) ?? nil ?? []
            if permission == "denyAll" || (permission == "byQueue" && !sources.contains(self.arn(of: source))) {
                throw invalid("Queue \(self.arn(of: target)) does not allow \(self.arn(of: source)) as a source queue (RedriveAllowPolicy).")
            }
        }
        return (target, count)
    }

    func validateRedriveAllowPolicy(_ text: String) throws(SQSError) {
        func invalid(_ reason: String) -> SQSError { .invalidValue(text, parameter: "RedriveAllowPolicy", reason: reason) }
        guard let value = try? JSON.parse(Array(text.utf8)), case .object = value else {
            throw invalid("Amazon SQS can't parse the redrive allow policy as JSON.")
        }
        let policy = Parameters(value: value, wire: .json)
        guard let permission = try? policy.string("redrivePermission"), ["allowAll", "denyAll", "byQueue"].contains(permission) else {
            throw invalid("redrivePermission must be allowAll, denyAll or byQueue.")
        }
        let sources = (try? policy.stringList("sourceQueueArns")) ?? nil
        if permission == "byQueue" {
            guard let sources, (1...10).contains(sources.count) else {
                throw invalid("byQueue needs 1 to 10 sourceQueueArns.")
            }
        } else if sources != nil {
            throw invalid("sourceQueueArns is only allowed with redrivePermission byQueue.")
        }
    }

    /// Every attribute SQS reports for `info`, in SQS's text form.
    func attributes(of info: QueueInfo, _ metadata: QueueMetadata?) -> [String: String] {
        let a = info.attributes
        var out: [String: String] = [
            "ApproximateNumberOfMessages": String(info.counts.ready),
            "ApproximateNumberOfMessagesNotVisible": String(info.counts.inFlight),
            "ApproximateNumberOfMessagesDelayed": String(info.counts.delayed),
            "CreatedTimestamp": String(info.createdAt.milliseconds / 1000),
            "LastModifiedTimestamp": String((metadata?.lastModified ?? info.createdAt).milliseconds / 1000),
            "QueueArn": arn(of: info.name),
            "DelaySeconds": String(a.delay),
            "MaximumMessageSize": String(a.maxMessageBytes),
            "MessageRetentionPeriod": String(a.retention),
            "ReceiveMessageWaitTimeSeconds": "0",
            "VisibilityTimeout": String(a.visibilityTimeout),
            "SqsManagedSseEnabled": "false",
        ]
        if let count = a.maxReceiveCount, let target = a.deadLetterQueue {
            out["RedrivePolicy"] = String(decoding: JSON.serialize(.structure([
                ("deadLetterTargetArn", .string(arn(of: target))), ("maxReceiveCount", .int(count)),
            ])), as: UTF8.self)
        }
        if a.fifo {
            out["FifoQueue"] = "true"
            out["ContentBasedDeduplication"] = a.contentBasedDeduplication ? "true" : "false"
            out["DeduplicationScope"] = "queue"
            out["FifoThroughputLimit"] = "perQueue"
        }
        for (key, value) in metadata?.attributes ?? [:] where !key.hasPrefix(Self.internalPrefix) { out[key] = value }
        return out
    }

    /// The queue and its metadata.
    /// - Throws: `QueueDoesNotExist`.
    func lookUp(_ p: Parameters) throws -> (QueueInfo, QueueMetadata?) {
        let name = try queueName(p.requiredString("QueueUrl"))
        let queue = try broker.describeQueueWithMetadata(name)
        return (queue.info, queue.metadata)
    }

    // MARK: Actions

    func createQueue(_ p: Parameters, _ caller: Caller) async throws -> SQSOutput {
        let raw = try p.requiredString("QueueName")
        let requested = try p.stringMap("Attributes") ?? [:]
        let fifoRequested = requested["FifoQueue"]?.lowercased() == "true"
        guard let name = try? QueueName(raw), name.isFIFO == fifoRequested else {
            throw SQSError(.invalidParameterValue, fifoRequested || raw.hasSuffix(".fifo")
                ? "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in length."
                : "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length.")
        }
        var change = try validate(requested, for: name, creating: true)
        if name.isFIFO { change.patch.fifo = true }
        let tags = try validateTags(try p.stringMap("tags") ?? p.stringMap("Tags") ?? [:], existing: [:], queue: name)
        if let existing = try? broker.describeQueueWithMetadata(name) {
            let current = attributes(of: existing.info, existing.metadata)
            for (key, value) in change.normalized.sorted(by: { $0.key < $1.key }) where (current[key] ?? defaultText(key)) != value {
                throw SQSError(.queueNameExists, "A queue already exists with the same name and a different value for attribute \(key)")
            }
            return .structure([("QueueUrl", .string(url(of: name, caller)))])
        }
        if try broker.deletedRecently(name) != nil {
            throw SQSError(.queueDeletedRecently, "You must wait 60 seconds after deleting a queue before you can create another with the same name.")
        }
        // SQS's default retention (4 days) for queues created over SQS; Tern's API keeps its 7.
        if change.patch.retention == nil { change.patch.retention = SQS.defaultRetentionSeconds }
        let (_, info) = try await broker.createOrUpdateQueue(name, patch: change.patch)
        let stored = change.stored
        if !stored.isEmpty || !tags.isEmpty {
            try await broker.modifyQueueMetadata(name) { queue, currentTags, currentAttributes in
                guard queue.info.createdAt == info.createdAt else { throw SQSError.queueDoesNotExist() }
                for (key, value) in stored { currentAttributes[key] = value }
                currentTags = tags
            }
        }
        return .structure([("QueueUrl", .string(url(of: name, caller)))])
    }

    /// The text of an attribute SQS reports by default when a queue never set it.
    func defaultText(_ key: String) -> String? {
        switch key {
        case "Policy", "KmsMasterKeyId", "RedrivePolicy", "RedriveAllowPolicy": ""
        case "FifoQueue", "ContentBasedDeduplication": "false"
        case "KmsDataKeyReusePeriodSeconds": "300"
        default: nil
        }
    }

    func getQueueUrl(_ p: Parameters, _ caller: Caller) throws -> SQSOutput {
        let raw = try p.requiredString("QueueName")
        if let owner = try p.string("QueueOwnerAWSAccountId"), owner != settings.accountID { throw SQSError.queueDoesNotExist() }
        guard let name = try? QueueName(raw), (try? broker.describeQueue(name)) != nil else { throw SQSError.queueDoesNotExist() }
        return .structure([("QueueUrl", .string(url(of: name, caller)))])
    }

    func listQueues(_ p: Parameters, _ caller: Caller) throws -> SQSOutput {
        let prefix = try p.string("QueueNamePrefix") ?? ""
        let maxResults = try p.int("MaxResults")
        if let maxResults, !(1...1000).contains(maxResults) {
            throw SQSError.invalidValue(String(maxResults), parameter: "MaxResults", reason: "must be between 1 and 1000.")
        }
        let after = try p.string("NextToken").map { token throws(SQSError) -> String in
            guard let data = Data(base64Encoded: token), let name = String(data: data, encoding: .utf8) else {
                throw SQSError(.invalidParameterValue, "Invalid NextToken value.")
            }
            return name
        }
        var names = try broker.listQueues().map(\.name).filter { $0.rawValue.hasPrefix(prefix) }
        if let after { names = names.filter { $0.rawValue > after } }
        let limit = maxResults ?? 1000
        let page = Array(names.prefix(limit))
        var members: [(name: String, value: SQSOutput)] = []
        if !page.isEmpty { members.append(("QueueUrls", .list(page.map { .string(url(of: $0, caller)) }, member: "QueueUrl"))) }
        if maxResults != nil, names.count > page.count, let last = page.last {
            members.append(("NextToken", .string(Data(last.rawValue.utf8).base64EncodedString())))
        }
        return .structure(members)
    }

    func deleteQueue(_ p: Parameters) async throws {
        let name = try queueName(p.requiredString("QueueUrl"))
        try await broker.deleteQueue(name)
        // SQS's 60 s before the name may be re-created: replicated broker state (decision 139).
        // A failure here leaves the queue deleted and the name free sooner; it is not the
        // client's failure.
        do {
            try await broker.noteDeletedQueue(name, keepMilliseconds: SQS.recentWindowMilliseconds)
        } catch {
            logger.warning("the deleted queue's name was not remembered", metadata: ["tern.queue": "\(name)", "tern.error": "\(error)"])
        }
    }

    func getQueueAttributes(_ p: Parameters) throws -> SQSOutput {
        let (info, meta) = try lookUp(p)
        let names = try p.stringList("AttributeNames") ?? []
        for name in names where !Self.settableAttributes.contains(name) && !Self.readOnlyAttributes.contains(name) {
            throw SQSError(.invalidAttributeName, "Unknown Attribute \(name).")
        }
        let all = attributes(of: info, meta)
        let wanted = names.contains("All") ? all : all.filter { names.contains($0.key) }
        guard !wanted.isEmpty else { return .structure([]) }
        return .structure([("Attributes", .map(wanted.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }, xml: .attribute))])
    }

    func setQueueAttributes(_ p: Parameters) async throws {
        let (info, _) = try lookUp(p)
        guard let requested = try p.stringMap("Attributes") else { throw SQSError.missing("Attributes") }
        let change = try validate(requested, for: info.name, creating: false)
        let (_, updated) = try await broker.createOrUpdateQueue(info.name, patch: change.patch)
        let stored = change.stored
        try await broker.modifyQueueMetadata(info.name, lastModified: .commandTime) { queue, _, attributes in
            guard queue.info.createdAt == updated.createdAt else { throw SQSError.queueDoesNotExist() }
            for (key, value) in stored { attributes[key] = value }
        }
    }

    /// Purges the queue, once per 60 s (SQS). The window is the queue's replicated metadata
    /// (``purgedAtKey``, decision 139), so a new leader keeps it; it is written after the purge
    /// applied, so a purge that failed never closes it (two purges racing may both run).
    func purgeQueue(_ p: Parameters) async throws {
        let (info, meta) = try lookUp(p)
        let now = nowMilliseconds
        if let text = meta?.attributes[Self.purgedAtKey], let at = UInt64(text), now < at + SQS.recentWindowMilliseconds {
            throw SQSError(.purgeQueueInProgress,
                           "Only one PurgeQueue operation on \(info.name) is allowed every 60 seconds.")
        }
        _ = try await broker.purgeQueue(info.name)
        // The purge applied: a failure to remember it only opens the window sooner.
        do {
            try await broker.modifyQueueMetadata(info.name) { queue, _, attributes in
                guard queue.info.createdAt == info.createdAt else { return }  // deleted meanwhile: nothing to remember
                attributes[Self.purgedAtKey] = String(now)
            }
        } catch {
            logger.warning("the purge was not remembered", metadata: ["tern.queue": "\(info.name)", "tern.error": "\(error)"])
        }
    }

    // MARK: Tags

    /// Checks tags as SQS does: at most 50 per queue, keys 1–128 characters not starting with
    /// `aws:`, values up to 256 characters.
    /// - Returns: `existing` with `tags` merged in.
    func validateTags(_ tags: [String: String], existing: [String: String], queue: QueueName) throws(SQSError) -> [String: String] {
        var merged = existing
        for (key, value) in tags {
            guard (1...128).contains(key.count), !key.lowercased().hasPrefix("aws:") else {
                throw SQSError(.invalidParameterValue, "Tag key \(key) is not valid: 1 to 128 characters, not starting with aws:.")
            }
            guard value.count <= 256 else {
                throw SQSError(.invalidParameterValue, "Tag value for key \(key) is longer than 256 characters.")
            }
            merged[key] = value
        }
        guard merged.count <= SQS.maxTags else {
            throw SQSError(.invalidParameterValue, "Too many tags added for queue \(queue). A queue can have at most \(SQS.maxTags) tags.")
        }
        return merged
    }

    func tagQueue(_ p: Parameters) async throws {
        let (info, meta) = try lookUp(p)
        guard let tags = try p.stringMap("Tags") else { throw SQSError.missing("Tags") }
        guard !tags.isEmpty else { throw SQSError(.invalidParameterValue, "The request must contain at least one tag.") }
        _ = try validateTags(tags, existing: meta?.tags ?? [:], queue: info.name)
        let name = info.name
        try await broker.modifyQueueMetadata(info.name) { queue, current, _ in
            guard queue.info.createdAt == info.createdAt else { throw SQSError.queueDoesNotExist() }
            current = try self.validateTags(tags, existing: current, queue: name)
        }
    }

    func untagQueue(_ p: Parameters) async throws {
        let (info, _) = try lookUp(p)
        guard let keys = try p.stringList("TagKeys") else { throw SQSError.missing("TagKeys") }
        guard !keys.isEmpty else { throw SQSError(.invalidParameterValue, "The request must contain at least one tag key.") }
        try await broker.modifyQueueMetadata(info.name) { queue, tags, _ in
            guard queue.info.createdAt == info.createdAt else { throw SQSError.queueDoesNotExist() }
            for key in keys { tags[key] = nil }
        }
    }

    func listQueueTags(_ p: Parameters) throws -> SQSOutput {
        let (_, meta) = try lookUp(p)
        let tags = meta?.tags ?? [:]
        guard !tags.isEmpty else { return .structure([]) }
        return .structure([("Tags", .map(tags.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }, xml: .tag))])
    }

    // MARK: Dead-letter sources

    func listDeadLetterSourceQueues(_ p: Parameters, _ caller: Caller) throws -> SQSOutput {
        let (info, _) = try lookUp(p)
        let maxResults = try p.int("MaxResults")
        if let maxResults, !(1...1000).contains(maxResults) {
            throw SQSError.invalidValue(String(maxResults), parameter: "MaxResults", reason: "must be between 1 and 1000.")
        }
        let after = try p.string("NextToken").map { token throws(SQSError) -> String in
            guard let data = Data(base64Encoded: token), let name = String(data: data, encoding: .utf8) else {
                throw SQSError(.invalidParameterValue, "Invalid NextToken value.")
            }
            return name
        }
        var sources = try broker.listQueues().filter { $0.attributes.deadLetterQueue == info.name }.map(\.name)
        if let after { sources = sources.filter { $0.rawValue > after } }
        let page = Array(sources.prefix(maxResults ?? 1000))
        var members: [(name: String, value: SQSOutput)] = [("queueUrls", .list(page.map { .string(url(of: $0, caller)) }, member: "QueueUrl"))]
        if maxResults != nil, sources.count > page.count, let last = page.last {
            members.append(("NextToken", .string(Data(last.rawValue.utf8).base64EncodedString())))
        }
        return .structure(members)
    }

    // MARK: Permissions

    /// Adds a statement to the queue's `Policy` (stored and reported, not enforced: Tern's own
    /// permissions apply; see `docs/sqs.md`).
    func addPermission(_ p: Parameters) async throws {
        let (info, _) = try lookUp(p)
        let label = try p.requiredString("Label")
        guard let accounts = try p.stringList("AWSAccountIds"), !accounts.isEmpty else { throw SQSError.missing("AWSAccountIds") }
        guard let actions = try p.stringList("Actions"), !actions.isEmpty else { throw SQSError.missing("Actions") }
        guard (1...80).contains(label.count), label.utf8.allSatisfy(Self.isIDCharacter) else {
            throw SQSError.invalidValue(label, parameter: "Label", reason: "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length.")
        }
        let allowed = Set(SQS.Action.allCases.map(\.rawValue)).union(["*"])
        for action in actions where !allowed.contains(action) {
            throw SQSError.invalidValue(action, parameter: "ActionName", reason: "Only the queue owner is allowed to invoke this action.")
        }
        guard actions.count <= 7 else { throw SQSError(.overLimit, "7 Actions were found, maximum allowed is 7.") }
        let arn = self.arn(of: info.name)
        try await broker.modifyQueueMetadata(info.name, lastModified: .commandTime) { queue, _, attributes in
            guard queue.info.createdAt == info.createdAt else { throw SQSError.queueDoesNotExist() }
            var statements = Self.policyStatements(attributes["Policy"])
            if statements.contains(where: { $0.sid == label }) {
                throw SQSError.invalidValue(label, parameter: "Label", reason: "Already exists.")
            }
            statements.append((label, accounts, actions.map { $0 == "*" ? "SQS:*" : "SQS:" + $0 }, arn))
            attributes["Policy"] = Self.policy(statements, arn: arn)
        }
    }

    func removePermission(_ p: Parameters) async throws {
        let (info, _) = try lookUp(p)
        let label = try p.requiredString("Label")
        let arn = self.arn(of: info.name)
        try await broker.modifyQueueMetadata(info.name, lastModified: .commandTime) { queue, _, attributes in
            guard queue.info.createdAt == info.createdAt else { throw SQSError.queueDoesNotExist() }
            var statements = Self.policyStatements(attributes["Policy"])
            guard statements.contains(where: { $0.sid == label }) else {
                throw SQSError.invalidValue(label, parameter: "Label", reason: "can't find label.")
            }
            statements.removeAll { $0.sid == label }
            attributes["Policy"] = statements.isEmpty ? nil : Self.policy(statements, arn: arn)
        }
    }

    typealias Statement = (sid: String, accounts: [String], actions: [String], resource: String)

    /// The statements AddPermission wrote into a policy (others are kept as they are only when
    /// the policy was written by AddPermission; a hand-set Policy is replaced).
    static func policyStatements(_ policy: String?) -> [Statement] {
        guard let policy, let value = try? JSON.parse(Array(policy.utf8)), case .list(let items)? = value["Statement"] else { return [] }
        return items.compactMap { item -> Statement? in
            guard case .string(let sid)? = item["Sid"], case .string(let resource)? = item["Resource"] else { return nil }
            func strings(_ value: SQSValue?) -> [String] {
                switch value {
                case .string(let text)?: return [text]
                case .list(let items)?: return items.compactMap { if case .string(let text) = $0 { text } else { nil } }
                default: return []
                }
            }
            let principals = strings(item["Principal"]?["AWS"]).map { $0.split(separator: ":").dropLast().last.map(String.init) ?? $0 }
            return (sid, principals, strings(item["Action"]), resource)
        }
    }

    static func policy(_ statements: [Statement], arn: String) -> String {
        let body = SQSOutput.structure([
            ("Version", .string("2012-10-17")), ("Id", .string(arn + "/SQSDefaultPolicy")),
            ("Statement", .list(statements.map { statement in
                .structure([
                    ("Sid", .string(statement.sid)), ("Effect", .string("Allow")),
                    ("Principal", .structure([("AWS", .list(statement.accounts.map { .string("arn:aws:iam::\($0):root") }, member: "AWS"))])),
                    ("Action", .list(statement.actions.map { .string($0) }, member: "Action")), ("Resource", .string(statement.resource)),
                ])
            }, member: "Statement")),
        ])
        return String(decoding: JSON.serialize(body), as: UTF8.self)
    }

    /// Characters of batch entry ids and permission labels: `[A-Za-z0-9_-]`.
    static func isIDCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default: false
        }
    }
}
