import Crypto
import Foundation
import TernBroker
import TernCore

/// Message actions: SendMessage(Batch), ReceiveMessage, DeleteMessage(Batch),
/// ChangeMessageVisibility(Batch).
extension SQSEndpoint {
    /// Tern's priority extension: a `Number` message attribute 0–9 (higher first).
    static let priorityAttribute = "tern.priority"
    /// Receive attributes SQS knows (`AttributeNames` / `MessageSystemAttributeNames`).
    static let messageSystemAttributeNames: Set<String> = [
        "All", "SenderId", "SentTimestamp", "ApproximateReceiveCount", "ApproximateFirstReceiveTimestamp", "SequenceNumber",
        "MessageDeduplicationId", "MessageGroupId", "AWSTraceHeader", "DeadLetterQueueSourceArn",
    ]

    /// One message to send, validated.
    struct PreparedSend: Sendable {
        var message: OutgoingMessage
        var md5OfBody: String
        var md5OfAttributes: String?
        var md5OfSystemAttributes: String?
        /// Size as SQS counts it (body + attributes), in bytes.
        var size: Int
    }

    /// Validates one `SendMessage` request or batch entry against `info` as SQS does.
    /// - Throws: `MissingParameter` (`MessageBody`; `MessageGroupId` on a FIFO queue),
    ///   `InvalidMessageContents` (characters outside XML 1.0's), `InvalidParameterValue`
    ///   (empty or too large message, delay, attributes, FIFO parameters on a standard queue,
    ///   no deduplication id without content-based deduplication).
    func prepare(_ p: Parameters, for info: QueueInfo, _ meta: QueueMetadata?, _ caller: Caller) throws(SQSError) -> PreparedSend {
        let body = try p.requiredString("MessageBody")
        guard !body.isEmpty else {
            throw SQSError(.invalidParameterValue, "The request must contain a non-empty message body.")
        }
        for scalar in body.unicodeScalars where !Self.isAllowedInMessage(scalar) {
            throw SQSError(.invalidMessageContents,
                           "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF")
        }
        let fifo = info.attributes.fifo
        var attributes = try messageAttributes(p.objectMap("MessageAttributes") ?? [:], system: false)
        let system = try messageAttributes(p.objectMap("MessageSystemAttributes") ?? [:], system: true)
        let userSize = attributes.reduce(0) { $0 + $1.countedBytes }
        let size = body.utf8.count + userSize
        let limit = min(info.attributes.maxMessageBytes, SQS.messageSizeRange.upperBound)
        guard size <= limit else {
            throw SQSError(.invalidParameterValue, "One or more parameters are invalid. Reason: Message must be shorter than \(limit) bytes.")
        }
        var message = OutgoingMessage(body: Array(body.utf8))
        if let delay = try p.int("DelaySeconds") {
            guard SQS.delayRange.contains(delay) else {
                throw SQSError.invalidValue(String(delay), parameter: "DelaySeconds", reason: "must be >= 0 and <= 900.")
            }
            guard !fifo else {
                throw SQSError.invalidValue(String(delay), parameter: "DelaySeconds",
                                            reason: "The request include parameter that is not valid for this queue type.")
            }
            message.delay = delay
        }
        if let priority = attributes.first(where: { $0.name == Self.priorityAttribute }) {
            guard priority.dataType.hasPrefix("Number"), let value = UInt8(String(decoding: priority.value, as: UTF8.self)),
                value <= OutgoingMessage.maxPriority
            else {
                throw SQSError(.invalidParameterValue, "Message attribute \(Self.priorityAttribute) must be a Number from 0 to 9.")
            }
            message.priority = value
        }
        let groupID = try p.string("MessageGroupId")
        let deduplicationID = try p.string("MessageDeduplicationId")
        for (name, value) in [("MessageGroupId", groupID), ("MessageDeduplicationId", deduplicationID)] {
            guard let value else { continue }
            guard (1...128).contains(value.utf8.count), value.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
                throw SQSError.invalidValue(value, parameter: name,
                                            reason: "\(name) can only include alphanumeric and punctuation characters. 1 to 128 in length.")
            }
        }
        var extra = [MessageAttribute]()
        if fifo {
            guard let groupID else { throw SQSError.missing("MessageGroupId") }
            var effective = deduplicationID
            if effective == nil {
                guard info.attributes.contentBasedDeduplication else {
                    throw SQSError(.invalidParameterValue,
                                   "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly")
                }
                effective = SigV4.hex(SHA256.hash(data: Array(body.utf8)))
            }
            message.groupID = groupID
            message.deduplicationID = effective
            if meta?.attributes["DeduplicationScope"] == "messageGroup" {
                // Tern deduplicates queue-wide; scope by group through the id itself.
                message.deduplicationID = SigV4.hex(SHA256.hash(data: Array((groupID + "\u{0}" + effective!).utf8)))
            }
            extra.append(MessageAttribute(kind: .system, name: "MessageGroupId", dataType: "String", value: Array(groupID.utf8)))
            extra.append(MessageAttribute(kind: .system, name: "MessageDeduplicationId", dataType: "String", value: Array(effective!.utf8)))
        } else {
            if let deduplicationID {
                throw SQSError.invalidValue(deduplicationID, parameter: "MessageDeduplicationId",
                                            reason: "The request includes a parameter that is not valid for this queue type.")
            }
            // Standard queues accept a group id (SQS fair queues); it is returned, not enforced.
            if let groupID {
                extra.append(MessageAttribute(kind: .system, name: "MessageGroupId", dataType: "String", value: Array(groupID.utf8)))
            }
        }
        extra.append(MessageAttribute(kind: .system, name: "SenderId", dataType: "String",
                                      value: Array((caller.accessKeyID ?? settings.accountID).utf8)))
        let md5OfAttributes = MessageDigests.attributes(attributes)
        let md5OfSystem = MessageDigests.attributes(system)
        attributes += system + extra
        message.attributes = attributes
        return PreparedSend(message: message, md5OfBody: MessageDigests.body(Array(body.utf8)), md5OfAttributes: md5OfAttributes,
                            md5OfSystemAttributes: md5OfSystem, size: size)
    }

    /// XML 1.0's characters: #x9 | #xA | #xD | #x20–#xD7FF | #xE000–#xFFFD | #x10000–#x10FFFF.
    static func isAllowedInMessage(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x9, 0xA, 0xD, 0x20...0xD7FF, 0xE000...0xFFFD, 0x10000...0x10FFFF: true
        default: false
        }
    }

    /// Validates message attributes (`system`: message system attributes, of which SQS knows
    /// only `AWSTraceHeader`).
    /// - Throws: `InvalidParameterValue` for more than 10, bad names, types or values.
    func messageAttributes(_ map: [String: Parameters], system: Bool) throws(SQSError) -> [MessageAttribute] {
        guard map.count <= SQS.maxMessageAttributes else {
            throw SQSError(.invalidParameterValue,
                           "Number of message attributes [\(map.count)] exceeds the allowed maximum [\(SQS.maxMessageAttributes)].")
        }
        var out = [MessageAttribute]()
        for (name, value) in map.sorted(by: { $0.key < $1.key }) {
            if system {
                guard name == "AWSTraceHeader" else {
                    throw SQSError(.invalidParameterValue, "Message system attribute name '\(name)' is invalid.")
                }
            } else {
                try validateAttributeName(name)
            }
            guard let dataType = try value.string("DataType"), !dataType.isEmpty else {
                throw SQSError(.invalidParameterValue, "The message attribute '\(name)' must contain non-empty message attribute type.")
            }
            let base = dataType.split(separator: ".", maxSplits: 1).first.map(String.init) ?? ""
            guard ["String", "Number", "Binary"].contains(base), dataType.utf8.count <= 256,
                dataType == base || dataType.hasPrefix(base + ".") && dataType.count > base.count + 1
            else {
                throw SQSError(.invalidParameterValue, "The type of message attribute '\(name)' is invalid. You must use only the following supported type prefixes: Binary, Number, String.")
            }
            if system && dataType != "String" {
                throw SQSError(.invalidParameterValue, "The message system attribute '\(name)' must be of type String.")
            }
            if try value.stringList("StringListValues").map({ !$0.isEmpty }) == true
                || (value["BinaryListValues"].map { if case .list(let items) = $0 { !items.isEmpty } else { true } } ?? false)
            {
                throw SQSError(.invalidParameterValue, "Message attribute list values in SendMessage operation are not supported.")
            }
            let bytes: [UInt8]
            if base == "Binary" {
                guard let text = try value.string("BinaryValue"), let data = Data(base64Encoded: text), !data.isEmpty else {
                    throw SQSError(.invalidParameterValue, "The message attribute '\(name)' with type 'Binary' must use field 'Binary'.")
                }
                bytes = Array(data)
            } else {
                guard let text = try value.string("StringValue"), !text.isEmpty else {
                    throw SQSError(.invalidParameterValue, "The message attribute '\(name)' with type '\(base)' must use field 'String'.")
                }
                for scalar in text.unicodeScalars where !Self.isAllowedInMessage(scalar) {
                    throw SQSError(.invalidParameterValue, "The message attribute '\(name)' contains invalid characters.")
                }
                if base == "Number" {
                    guard Self.isNumber(text) else {
                        throw SQSError(.invalidParameterValue, "Can't cast the value of message (user) attribute '\(name)' to a number.")
                    }
                }
                bytes = Array(text.utf8)
            }
            out.append(MessageAttribute(kind: system ? .system : .user, name: name, dataType: dataType, value: bytes))
        }
        return out
    }

    /// SQS's attribute-name rules: 1–256 characters of `[A-Za-z0-9_.-]`, no leading, trailing or
    /// doubled `.`, not starting with `AWS.` or `Amazon.` (any case).
    func validateAttributeName(_ name: String) throws(SQSError) {
        let lower = name.lowercased()
        let allowed = name.utf8.allSatisfy { Self.isIDCharacter($0) || $0 == UInt8(ascii: ".") }
        guard (1...256).contains(name.utf8.count), allowed, !name.hasPrefix("."), !name.hasSuffix("."), !name.contains(".."),
            !lower.hasPrefix("aws."), !lower.hasPrefix("amazon.")
        else {
            throw SQSError(.invalidParameterValue, "Message (user) attribute name '\(name)' is invalid.")
        }
    }

    /// A decimal number SQS accepts: optional sign, digits with an optional fraction and
    /// exponent, at most 38 significant digits.
    static func isNumber(_ text: String) -> Bool {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard Double(trimmed) != nil, !trimmed.lowercased().contains("n"), !trimmed.lowercased().contains("x") else { return false }
        let digits = trimmed.split(whereSeparator: { $0 == "e" || $0 == "E" }).first.map { $0.filter(\.isNumber) } ?? ""
        return digits.drop(while: { $0 == "0" }).count <= 38
    }

    static func sequenceNumber(_ sequence: UInt64) -> String {
        let digits = String(sequence)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }

    func sendMessage(_ p: Parameters, _ caller: Caller) async throws -> SQSOutput {
        let (info, meta) = try lookUp(p)
        let prepared = try prepare(p, for: info, meta, caller)
        let sent = try await broker.send(info.name, [prepared.message])[0]
        return sentOutput(prepared, sent, fifo: info.attributes.fifo, id: nil)
    }

    func sentOutput(_ prepared: PreparedSend, _ sent: SentMessage, fifo: Bool, id: String?) -> SQSOutput {
        var members: [(name: String, value: SQSOutput)] = []
        if let id { members.append(("Id", .string(id))) }
        members.append(("MessageId", .string(sent.id.description)))
        members.append(("MD5OfMessageBody", .string(prepared.md5OfBody)))
        if let md5 = prepared.md5OfAttributes { members.append(("MD5OfMessageAttributes", .string(md5))) }
        if let md5 = prepared.md5OfSystemAttributes { members.append(("MD5OfMessageSystemAttributes", .string(md5))) }
        if fifo { members.append(("SequenceNumber", .string(Self.sequenceNumber(sent.sequence)))) }
        return .structure(members)
    }

    /// The entries of a batch request, checked as SQS checks them before any entry runs.
    /// - Throws: `EmptyBatchRequest`, `TooManyEntriesInBatchRequest`, `InvalidBatchEntryId`,
    ///   `BatchEntryIdsNotDistinct`.
    func batchEntries(_ p: Parameters) throws(SQSError) -> [(id: String, entry: Parameters)] {
        guard let entries = try p.objects("Entries") else { throw SQSError.missing("Entries") }
        guard !entries.isEmpty else { throw SQSError(.emptyBatchRequest, "There should be at least one SendMessageBatchRequestEntry in the request.") }
        guard entries.count <= SQS.maxBatchEntries else {
            throw SQSError(.tooManyEntriesInBatchRequest, "Maximum number of entries per request are \(SQS.maxBatchEntries). You have sent \(entries.count).")
        }
        var seen = Set<String>()
        var out = [(id: String, entry: Parameters)]()
        for entry in entries {
            let id = try entry.requiredString("Id")
            guard (1...80).contains(id.utf8.count), id.utf8.allSatisfy(Self.isIDCharacter) else {
                throw SQSError(.invalidBatchEntryId, "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.")
            }
            guard seen.insert(id).inserted else { throw SQSError(.batchEntryIdsNotDistinct, "Id \(id) repeated.") }
            out.append((id, entry))
        }
        return out
    }

    static func failure(_ id: String, _ error: SQSError) -> SQSOutput {
        .structure([("Id", .string(id)), ("SenderFault", .bool(error.code.senderFault)), ("Code", .string(error.code.queryCode)),
                    ("Message", .string(error.message))])
    }

    static func batchResult(_ successful: [SQSOutput], _ failed: [SQSOutput], entry: String) -> SQSOutput {
        .structure([("Successful", .list(successful, member: entry)), ("Failed", .list(failed, member: "BatchResultErrorEntry"))])
    }

    func sendMessageBatch(_ p: Parameters, _ caller: Caller) async throws -> SQSOutput {
        let (info, meta) = try lookUp(p)
        let entries = try batchEntries(p)
        var prepared = [(id: String, send: PreparedSend)]()
        var failed = [SQSOutput]()
        var total = 0
        for (id, entry) in entries {
            do throws(SQSError) {
                let send = try prepare(entry, for: info, meta, caller)
                total += send.size
                prepared.append((id, send))
            } catch {
                failed.append(Self.failure(id, error))
            }
        }
        guard total <= SQS.maxBatchBytes else {
            throw SQSError(.batchRequestTooLong, "Batch requests cannot be longer than \(SQS.maxBatchBytes) bytes. You have sent \(total) bytes.")
        }
        var successful = [SQSOutput]()
        if !prepared.isEmpty {
            let outcome = await sendAll(info.name, prepared.map(\.send.message))
            switch outcome {
            case .success(let sent):
                for (item, result) in zip(prepared, sent) {
                    successful.append(sentOutput(item.send, result, fifo: info.attributes.fifo, id: item.id))
                }
            case .failure(let error):
                // The queue vanished: the whole request fails; anything else fails each entry.
                if error.code == .queueNotFound { throw SQSError.queueDoesNotExist() }
                let mapped = SQSError.from(error)
                failed += prepared.map { Self.failure($0.id, mapped) }
            }
        }
        return Self.batchResult(successful, failed, entry: "SendMessageBatchResultEntry")
    }

    /// The broker's send as a result, so that a batch can turn a failure into per-entry errors.
    func sendAll(_ name: QueueName, _ messages: [OutgoingMessage]) async -> Result<[SentMessage], TernError> {
        do {
            return .success(try await broker.send(name, messages))
        } catch {
            return .failure(error)
        }
    }

    // MARK: Receive

    func receiveMessage(_ p: Parameters) async throws -> SQSOutput {
        let (info, meta) = try lookUp(p)
        let maxMessages = try p.int("MaxNumberOfMessages") ?? 1
        guard SQS.receiveCountRange.contains(maxMessages) else {
            throw SQSError.invalidValue(String(maxMessages), parameter: "MaxNumberOfMessages", reason: "Must be between 1 and 10, if provided.")
        }
        let visibility = try p.int("VisibilityTimeout")
        if let visibility, !SQS.visibilityTimeoutRange.contains(visibility) {
            throw SQSError.invalidValue(String(visibility), parameter: "VisibilityTimeout", reason: "Must be between 0 and 43200, if provided.")
        }
        let wait = try p.int("WaitTimeSeconds") ?? Int(meta?.attributes["ReceiveMessageWaitTimeSeconds"] ?? "0") ?? 0
        guard SQS.waitTimeRange.contains(wait) else {
            throw SQSError.invalidValue(String(wait), parameter: "WaitTimeSeconds", reason: "Must be >= 0 and <= 20, if provided.")
        }
        let systemNames = Set((try p.stringList("AttributeNames") ?? []) + (try p.stringList("MessageSystemAttributeNames") ?? []))
        for name in systemNames where !Self.messageSystemAttributeNames.contains(name) {
            throw SQSError(.invalidAttributeName, "Unknown Attribute \(name).")
        }
        let userNames = try p.stringList("MessageAttributeNames") ?? []
        for name in userNames where name != "All" && name != ".*" {
            try validateAttributeName(name.hasSuffix(".*") ? String(name.dropLast(2)) : name)
        }
        if let attempt = try p.string("ReceiveRequestAttemptId") {
            guard (1...128).contains(attempt.utf8.count), attempt.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
                throw SQSError.invalidValue(attempt, parameter: "ReceiveRequestAttemptId",
                                            reason: "can only include alphanumeric and punctuation characters. 1 to 128 in length.")
            }
        }
        let received = try await broker.receive(info.name, maxMessages: maxMessages, visibilityTimeout: visibility, waitTime: wait)
        let messages = received.map { output(of: $0, fifo: info.attributes.fifo, systemNames: systemNames, userNames: userNames) }
        guard !messages.isEmpty else { return .structure([]) }
        return .structure([("Messages", .list(messages, member: "Message"))])
    }

    func output(of message: ReceivedMessage, fifo: Bool, systemNames: Set<String>, userNames: [String]) -> SQSOutput {
        let all = systemNames.contains("All")
        func wanted(_ name: String) -> Bool { all || systemNames.contains(name) }
        func system(_ name: String) -> String? {
            message.attributes.first { $0.kind == .system && $0.name == name }.map { String(decoding: $0.value, as: UTF8.self) }
        }
        var attributes = [(key: String, value: SQSOutput)]()
        func add(_ name: String, _ value: String?) {
            if wanted(name), let value { attributes.append((name, .string(value))) }
        }
        add("ApproximateFirstReceiveTimestamp", String((message.firstReceivedAt ?? message.sentAt).milliseconds))
        add("ApproximateReceiveCount", String(message.receiveCount))
        add("AWSTraceHeader", system("AWSTraceHeader"))
        add("MessageDeduplicationId", system("MessageDeduplicationId"))
        add("MessageGroupId", system("MessageGroupId"))
        add("SenderId", system("SenderId") ?? settings.accountID)
        add("SentTimestamp", String(message.sentAt.milliseconds))
        if fifo { add("SequenceNumber", Self.sequenceNumber(message.sequence)) }
        let user = message.attributes.filter { attribute in
            attribute.kind == .user && userNames.contains { name in
                name == "All" || name == ".*" || name == attribute.name
                    || (name.hasSuffix(".*") && attribute.name.hasPrefix(String(name.dropLast(1))))
            }
        }
        let body = String(decoding: message.body, as: UTF8.self)
        var members: [(name: String, value: SQSOutput)] = [
            ("MessageId", .string(message.id.description)), ("ReceiptHandle", .string(message.receiptHandle)),
            ("MD5OfBody", .string(MessageDigests.body(message.body))), ("Body", .string(body)),
        ]
        if !attributes.isEmpty { members.append(("Attributes", .map(attributes, xml: .attribute))) }
        if let md5 = MessageDigests.attributes(user) {
            members.append(("MD5OfMessageAttributes", .string(md5)))
            members.append(("MessageAttributes", .map(user.map { attribute in
                let value: SQSOutput = attribute.isBinary
                    ? .structure([("BinaryValue", .string(Data(attribute.value).base64EncodedString())), ("DataType", .string(attribute.dataType))])
                    : .structure([("StringValue", .string(String(decoding: attribute.value, as: UTF8.self))), ("DataType", .string(attribute.dataType))])
                return (attribute.name, value)
            }, xml: .messageAttribute)))
        }
        return .structure(members)
    }

    // MARK: Delete and change visibility

    func deleteMessage(_ p: Parameters) async throws {
        let (info, _) = try lookUp(p)
        let handle = try p.requiredString("ReceiptHandle")
        if let error = try await delete([handle], in: info)[0] { throw error }
    }

    /// Deletes the deliveries `handles` of `info`; one result per handle (nil = deleted).
    ///
    /// SQS answers success for a handle a later receive superseded (and deletes nothing, on
    /// standard queues) and `ReceiptHandleIsInvalid` for an expired one on FIFO queues.
    func delete(_ handles: [String], in info: QueueInfo) async throws -> [SQSError?] {
        let results = try await broker.acknowledge(info.name, receiptHandles: handles)
        return zip(handles, results).map { handle, error in
            guard let error else { return nil }
            if error.code == .receiptHandleStale && !info.attributes.fifo { return nil }
            if error.code == .invalidReceiptHandle {
                return SQSError(.receiptHandleIsInvalid, "The input receipt handle \"\(handle)\" is not a valid receipt handle.")
            }
            return SQSError.from(error)
        }
    }

    func deleteMessageBatch(_ p: Parameters) async throws -> SQSOutput {
        let (info, _) = try lookUp(p)
        let entries = try batchEntries(p)
        var handles = [(id: String, handle: String)]()
        var failed = [SQSOutput]()
        for (id, entry) in entries {
            do throws(SQSError) { handles.append((id, try entry.requiredString("ReceiptHandle"))) } catch { failed.append(Self.failure(id, error)) }
        }
        var successful = [SQSOutput]()
        if !handles.isEmpty {
            for (item, error) in zip(handles, try await delete(handles.map(\.handle), in: info)) {
                if let error { failed.append(Self.failure(item.id, error)) } else { successful.append(.structure([("Id", .string(item.id))])) }
            }
        }
        return Self.batchResult(successful, failed, entry: "DeleteMessageBatchResultEntry")
    }

    func changeVisibility(_ handle: String, _ timeout: Int, in info: QueueInfo) async throws(SQSError) {
        guard SQS.visibilityTimeoutRange.contains(timeout) else {
            throw SQSError.invalidValue(String(timeout), parameter: "VisibilityTimeout", reason: "VisibilityTimeout must be an integer between 0 and 43200")
        }
        do {
            try await broker.changeVisibility(info.name, receiptHandle: handle, timeout: timeout)
        } catch {
            switch error.code {
            case .invalidReceiptHandle:
                throw SQSError(.receiptHandleIsInvalid, "The input receipt handle \"\(handle)\" is not a valid receipt handle.")
            case .receiptHandleStale, .conflict:
                throw SQSError(.messageNotInflight, "The message referred to isn't in flight.")
            default:
                throw SQSError.from(error)
            }
        }
    }

    func changeMessageVisibility(_ p: Parameters) async throws {
        let (info, _) = try lookUp(p)
        let handle = try p.requiredString("ReceiptHandle")
        guard let timeout = try p.int("VisibilityTimeout") else { throw SQSError.missing("VisibilityTimeout") }
        try await changeVisibility(handle, timeout, in: info)
    }

    func changeMessageVisibilityBatch(_ p: Parameters) async throws -> SQSOutput {
        let (info, _) = try lookUp(p)
        let entries = try batchEntries(p)
        var successful = [SQSOutput]()
        var failed = [SQSOutput]()
        for (id, entry) in entries {
            do throws(SQSError) {
                let handle = try entry.requiredString("ReceiptHandle")
                guard let timeout = try entry.int("VisibilityTimeout") else { throw SQSError.missing("VisibilityTimeout") }
                try await changeVisibility(handle, timeout, in: info)
                successful.append(.structure([("Id", .string(id))]))
            } catch {
                failed.append(Self.failure(id, error))
            }
        }
        return Self.batchResult(successful, failed, entry: "ChangeMessageVisibilityBatchResultEntry")
    }
}
