import Foundation
public import Logging
public import TernBroker
import TernCore
public import TernServer
public import TernStorage

/// The SQS-compatible endpoint: existing code written for Amazon SQS (boto3, awscli, the AWS
/// SDKs) works against Tern by pointing its endpoint URL here. An SQS queue is a Tern queue.
///
/// Both wire protocols of SQS API version 2012-11-05 are served: AWS JSON 1.0 (`POST /` with
/// `X-Amz-Target: AmazonSQS.<Action>`, current SDKs) and the Query protocol (form-encoded
/// `Action=…` to `/` or to a queue URL, XML responses; older SDKs). See `docs/sqs.md`.
///
/// ```swift
/// let endpoint = SQSEndpoint(broker: broker, storage: storage, settings: SQS.Settings(), logger: logger)
/// let app = Application(responder: endpoint.responder(), configuration: .init(address: .hostname("127.0.0.1", port: 9324)))
/// ```
public final class SQSEndpoint: Sendable {
    let broker: Broker
    let settings: SQS.Settings
    let authenticator: Authenticator
    let logger: Logger
    let moveTasks: MessageMoveTasks
    /// This node's part in a cluster: requests go to the data group's leader (decision 136);
    /// nil = the node runs alone and serves every request itself.
    let cluster: ClusterNode?


    /// - Parameters:
    ///   - storage: the broker's storage (queue metadata is broker state since decision 110;
    ///     kept for source compatibility).
    ///   - cluster: in a cluster, this node's part (its broker is `broker`): the leader serves
    ///     every request, the others forward them to the leader's SQS endpoint.
    public init(broker: Broker, storage: Storage, settings: SQS.Settings, cluster: ClusterNode? = nil, logger: Logger) {
        self.broker = broker
        self.cluster = cluster
        self.settings = settings
        self.authenticator = Authenticator(settings: settings.auth)
        self.logger = logger
        self.moveTasks = MessageMoveTasks(logger: logger)
    }

    /// One HTTP request as the endpoint needs it.
    public struct HTTPRequest: Sendable {
        public var method: String
        /// The path as sent (percent-encoded), e.g. `/` or `/000000000000/orders`.
        public var path: String
        /// The raw query string without `?` (empty when none).
        public var query: String
        /// Header names in lower case.
        public var headers: [String: String]
        public var body: [UInt8]

        public init(method: String, path: String, query: String = "", headers: [String: String], body: [UInt8]) {
            self.method = method
            self.path = path
            self.query = query
            self.headers = headers
            self.body = body
        }
    }

    /// The answer to one request.
    public struct HTTPReply: Sendable {
        public var status: Int
        public var headers: [(String, String)]
        public var body: [UInt8]
    }

    enum WireProtocol { case json, query }

    /// Answers one request. Never throws: every failure is an SQS error response (a 5xx only
    /// for a failure of the broker itself, never for bad input).
    public func handle(_ request: HTTPRequest) async -> HTTPReply {
        let requestID = UUID().uuidString.lowercased()
        let wire: WireProtocol = request.headers["x-amz-target"] != nil ? .json : .query
        var action = ""
        do {
            let (name, parameters) = try parse(request, wire: wire)
            action = name
            let context = try authenticate(request, action: name, parameters: parameters)
            let result = try await perform(action: name, parameters, context: context)
            return render(result, action: name, wire: wire, requestID: requestID)
        } catch let error as SQSError {
            return render(error, wire: wire, requestID: requestID)
        } catch let error as TernError {
            return render(SQSError.from(error), wire: wire, requestID: requestID)
        } catch {
            logger.error("sqs request failed", metadata: ["tern.sqs.action": "\(action)", "tern.error": "\(error)"])
            return render(SQSError(.internalFailure, "We encountered an internal error. Please try again."), wire: wire, requestID: requestID)
        }
    }

    // MARK: Parsing

    func parse(_ request: HTTPRequest, wire: WireProtocol) throws(SQSError) -> (String, Parameters) {
        switch wire {
        case .json:
            let target = request.headers["x-amz-target"] ?? ""
            guard request.method == "POST" else {
                throw SQSError(.unknownOperation, "The AWS JSON protocol needs POST, got \(request.method).")
            }
            guard target.hasPrefix(SQS.targetPrefix), let action = SQS.Action(rawValue: String(target.dropFirst(SQS.targetPrefix.count))) else {
                throw SQSError(.unknownOperation, "Unknown operation \(target).")
            }
            let body = request.body.allSatisfy { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 } ? Array("{}".utf8) : request.body
            let value = try JSON.parse(body)
            guard case .object = value else { throw SQSError(.serialization, "The request body must be a JSON object.") }
            return (action.rawValue, Parameters(value: value, wire: .json))
        case .query:
            guard request.method == "POST" || request.method == "GET" else {
                throw SQSError(.invalidAction, "The Query protocol needs GET or POST, got \(request.method).")
            }
            var pairs = try QueryProtocol.decodeForm(Array(request.query.utf8))
            if request.method == "POST" {
                pairs += try QueryProtocol.decodeForm(request.body)
            }
            guard let actionName = pairs.first(where: { $0.0 == "Action" })?.1 else {
                throw SQSError(.missingParameter, "The request must contain the parameter Action.")
            }
            guard let action = SQS.Action(rawValue: actionName) else {
                throw SQSError(.invalidAction, "The action \(actionName) is not valid for this endpoint.")
            }
            let rest = pairs.filter {
                $0.0 != "Action" && $0.0 != "Version" && !$0.0.hasPrefix("X-Amz-") && $0.0 != "AWSAccessKeyId"
                    && $0.0 != "Signature" && $0.0 != "SignatureMethod" && $0.0 != "SignatureVersion" && $0.0 != "Timestamp"
                    && $0.0 != "Expires"
            }
            var value = try QueryProtocol.fold(rest)
            // A queue URL's path names the queue when the parameters do not.
            if value["QueueUrl"] == nil, request.path != "/", !request.path.isEmpty, case .object(var members) = value {
                members["QueueUrl"] = .string("http://localhost" + request.path)
                value = .object(members)
            }
            return (action.rawValue, Parameters(value: value, wire: .query))
        }
    }

    // MARK: Rendering

    func render(_ result: SQSOutput?, action: String, wire: WireProtocol, requestID: String) -> HTTPReply {
        switch wire {
        case .json:
            let body = JSON.serialize(result ?? .structure([]))
            return HTTPReply(status: 200, headers: [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", requestID)],
                             body: body)
        case .query:
            return HTTPReply(status: 200, headers: [("Content-Type", "text/xml"), ("x-amzn-RequestId", requestID)],
                             body: QueryProtocol.response(action: action, result: result, requestID: requestID))
        }
    }

    func render(_ error: SQSError, wire: WireProtocol, requestID: String) -> HTTPReply {
        let fault = error.code.senderFault ? "Sender" : "Receiver"
        switch wire {
        case .json:
            let body = JSON.serialize(.structure([
                ("__type", .string("com.amazonaws.sqs#" + error.code.name)), ("message", .string(error.message)),
            ]))
            return HTTPReply(status: error.code.status, headers: [
                ("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", requestID),
                ("x-amzn-query-error", "\(error.code.queryCode);\(fault)"),
            ], body: body)
        case .query:
            return HTTPReply(status: error.code.status, headers: [("Content-Type", "text/xml"), ("x-amzn-RequestId", requestID)],
                             body: QueryProtocol.error(error, requestID: requestID))
        }
    }

    // MARK: Authentication

    /// Who sent a request, for `SenderId` and permission checks.
    struct Caller: Sendable {
        /// The access key id that signed the request (nil when authentication is off and the
        /// request was not signed).
        var accessKeyID: String?
        /// The base of queue URLs in answers, e.g. `http://127.0.0.1:9324`.
        var baseURL: String
    }

    func authenticate(_ request: HTTPRequest, action: String, parameters: Parameters) throws(SQSError) -> Caller {
        let base = settings.advertisedBaseURL ?? "http://" + (request.headers["host"] ?? "localhost")
        let header = request.headers["authorization"]
        guard settings.auth.enabled else {
            let key = header.flatMap { try? SigV4.Authorization(parsing: $0) }?.accessKeyID
            return Caller(accessKeyID: key, baseURL: base)
        }
        guard let header else {
            throw SQSError(.missingAuthenticationToken, "Request must contain a signature that conforms to AWS standards (Signature Version 4).")
        }
        let authorization = try SigV4.Authorization(parsing: header)
        // Access key ids are the names of the configured tokens; their secret is the token.
        var found: Auth.Token?
        for token in settings.auth.tokens where SigV4.constantTimeEqual(Array(token.name.utf8), Array(authorization.accessKeyID.utf8)) {
            found = token
        }
        guard let token = found else {
            throw SQSError(.invalidClientTokenId, "The security token included in the request is invalid.")
        }
        guard authorization.service == "sqs" else {
            throw SQSError(.signatureDoesNotMatch, "Credential should be scoped to correct service: 'sqs'.")
        }
        let signed = SigV4.Request(method: request.method, path: request.path, query: request.query, headers: request.headers,
                                   body: request.body)
        try SigV4.verify(signed, authorization: authorization, secret: token.secret, now: Int64(broker.clock.now.milliseconds / 1000))
        let requirement = try self.requirement(of: action, parameters)
        do {
            try authenticator.authorize(token: token.secret, requirement)
        } catch {
            throw SQSError(.accessDenied, "Access to the resource is denied: \(error.message)")
        }
        return Caller(accessKeyID: token.name, baseURL: base)
    }

    /// The Tern permission an action needs: sends need `produce`, receives, deletes and
    /// visibility changes `consume` on the queue, reads any valid key, everything else `admin`.
    func requirement(of action: String, _ parameters: Parameters) throws(SQSError) -> Auth.Requirement {
        let queue = { () throws(SQSError) -> String in
            (try? self.queueName(parameters.requiredString("QueueUrl")).rawValue) ?? ""
        }
        switch SQS.Action(rawValue: action)! {
        case .sendMessage, .sendMessageBatch: return .produce(try queue())
        case .receiveMessage, .deleteMessage, .deleteMessageBatch, .changeMessageVisibility, .changeMessageVisibilityBatch:
            return .consume(try queue())
        case .getQueueUrl, .getQueueAttributes, .listQueues, .listQueueTags, .listDeadLetterSourceQueues, .listMessageMoveTasks:
            return .authenticated
        case .createQueue, .deleteQueue, .setQueueAttributes, .purgeQueue, .tagQueue, .untagQueue, .startMessageMoveTask,
            .cancelMessageMoveTask, .addPermission, .removePermission:
            return .admin
        }
    }

    // MARK: Names and URLs

    /// The queue a `QueueUrl` names: its last path segment, with the account segment before it
    /// (when present) equal to ours. The host is not checked (clients keep URLs across proxies).
    /// - Throws: `QueueDoesNotExist` for another account or a name that cannot be a queue,
    ///   `InvalidAddress` when the URL has no path.
    func queueName(_ url: String) throws(SQSError) -> QueueName {
        var path = Substring(url)
        if let scheme = path.range(of: "://") {
            path = path[scheme.upperBound...]
            guard let slash = path.firstIndex(of: "/") else {
                throw SQSError(.invalidAddress, "The address \(url) is not valid for this endpoint.")
            }
            path = path[slash...]
        }
        let segments = path.split(separator: "/")
        guard let last = segments.last else { throw SQSError(.invalidAddress, "The address \(url) is not valid for this endpoint.") }
        if segments.count >= 2, segments[segments.count - 2] != settings.accountID { throw .queueDoesNotExist() }
        guard let name = try? QueueName(String(last)) else { throw .queueDoesNotExist() }
        return name
    }

    /// The queue an ARN `arn:aws:sqs:REGION:ACCOUNT:NAME` names.
    /// - Throws: `error` when the ARN is malformed or names another account.
    func queueName(arn: String, orElse error: SQSError) throws(SQSError) -> QueueName {
        let parts = arn.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0] == "arn", parts[2] == "sqs", parts[4] == settings.accountID,
            let name = try? QueueName(String(parts[5]))
        else { throw error }
        return name
    }

    func url(of name: QueueName, _ caller: Caller) -> String { "\(caller.baseURL)/\(settings.accountID)/\(name.rawValue)" }

    func arn(of name: QueueName) -> String { "arn:aws:sqs:\(settings.region):\(settings.accountID):\(name.rawValue)" }

    var nowMilliseconds: UInt64 { broker.clock.now.milliseconds }
}

/// Typed access to a request's parameters, with SQS's errors for missing and malformed ones.
struct Parameters: Sendable {
    let value: SQSValue
    let wire: SQSEndpoint.WireProtocol

    init(value: SQSValue, wire: SQSEndpoint.WireProtocol) {
        self.value = value
        self.wire = wire
    }

    subscript(key: String) -> SQSValue? {
        guard let member = value[key] else { return nil }
        if case .null = member { return nil }
        return member
    }

    /// A value of the wrong JSON type: the JSON protocol's deserializer answers
    /// `SerializationException`; the Query protocol (strings only) `InvalidParameterValue`.
    func typeError(_ key: String, _ expected: String) -> SQSError {
        switch wire {
        case .json: SQSError(.serialization, "Parameter \(key) must be \(expected).")
        case .query: SQSError(.invalidParameterValue, "Parameter \(key) must be \(expected).")
        }
    }

    func string(_ key: String) throws(SQSError) -> String? {
        switch self[key] {
        case nil: return nil
        case .string(let text)?: return text
        default: throw typeError(key, "a string")
        }
    }

    func requiredString(_ key: String) throws(SQSError) -> String {
        guard let text = try string(key) else { throw .missing(key) }
        return text
    }

    func int(_ key: String) throws(SQSError) -> Int? {
        switch self[key] {
        case nil: return nil
        case .number(let text)?:
            guard let number = Int(text) else { throw typeError(key, "an integer") }
            return number
        case .string(let text)? where wire == .query:
            guard let number = Int(text.trimmingCharacters(in: .whitespaces)) else {
                throw .invalidValue(text, parameter: key, reason: "must be an integer.")
            }
            return number
        default: throw typeError(key, "an integer")
        }
    }

    func stringList(_ key: String) throws(SQSError) -> [String]? {
        switch self[key] {
        case nil: return nil
        case .list(let items)?:
            return try items.map { item throws(SQSError) in
                switch item {
                case .string(let text): return text
                default: throw typeError(key, "a list of strings")
                }
            }
        default: throw typeError(key, "a list of strings")
        }
    }

    func stringMap(_ key: String) throws(SQSError) -> [String: String]? {
        switch self[key] {
        case nil: return nil
        case .object(let members)?:
            var out = [String: String]()
            for (name, item) in members {
                switch item {
                case .string(let text): out[name] = text
                default: throw typeError("\(key).\(name)", "a string")
                }
            }
            return out
        default: throw typeError(key, "a map of strings")
        }
    }

    func objects(_ key: String) throws(SQSError) -> [Parameters]? {
        switch self[key] {
        case nil: return nil
        case .list(let items)?:
            return try items.map { item throws(SQSError) in
                guard case .object = item else { throw typeError(key, "a list of structures") }
                return Parameters(value: item, wire: wire)
            }
        default: throw typeError(key, "a list of structures")
        }
    }

    func objectMap(_ key: String) throws(SQSError) -> [String: Parameters]? {
        switch self[key] {
        case nil: return nil
        case .object(let members)?:
            var out = [String: Parameters]()
            for (name, item) in members {
                guard case .object = item else { throw typeError("\(key).\(name)", "a structure") }
                out[name] = Parameters(value: item, wire: wire)
            }
            return out
        default: throw typeError(key, "a map")
        }
    }
}
