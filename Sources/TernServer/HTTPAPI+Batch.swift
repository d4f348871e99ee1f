import Hummingbird
import TernBroker
import TernCore

/// Batch acknowledge and batch change-visibility (issue 13, item 3; decision 95): up to 1,000
/// receipt handles of one queue in one request and one write transaction, answered per handle
/// in request order, as SQS's `DeleteMessageBatch` and `ChangeMessageVisibilityBatch` answer
/// per entry. A handle that fails (malformed, stale, no longer in flight, a timeout out of
/// range) fails in its slot; the others apply. The request as a whole fails only for a bad
/// body, an unknown queue or a storage failure (then nothing applied).
extension HTTPAPI {
    static let batchRoutes: [String] = [
        "POST /queues/{name}/messages/acknowledge", "POST /queues/{name}/messages/visibility",
    ]

    static func addBatchRoutes(to router: Router<BasicRequestContext>, _ api: Handlers) {
        router.post("/queues/:name/messages/acknowledge") { request, context in try await api.acknowledgeBatch(request, context) }
        router.post("/queues/:name/messages/visibility") { request, context in try await api.changeVisibilityBatch(request, context) }
    }
}

extension Handlers {
    func acknowledgeBatch(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let name = try queueName(context)
        let parsed = try JSONBody.decode(AcknowledgeBatchBody.self, from: try await body(request))
        let results = try await broker.acknowledge(name, receiptHandles: parsed.receiptHandles)
        return try json(.ok, BatchResults(handles: parsed.receiptHandles, errors: results))
    }

    func changeVisibilityBatch(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let name = try queueName(context)
        let parsed = try JSONBody.decode(VisibilityBatchBody.self, from: try await body(request))
        let results = try await broker.changeVisibility(name, changes: parsed.entries)
        return try json(.ok, BatchResults(handles: parsed.entries.map(\.receiptHandle), errors: results))
    }
}

/// `POST /queues/{name}/messages/acknowledge` body: `{"receipt_handles": ["…", …]}`, 1–1,000 strings.
struct AcknowledgeBatchBody: Decodable {
    var receiptHandles: [String]

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        try c.rejectUnknownKeys(allowed: ["receipt_handles"], code: .invalidParameter)
        let shape = "receipt_handles must be an array of 1–\(Broker.batchSizeRange.upperBound) strings"
        guard var list = try? c.nestedUnkeyedContainer(forKey: AnyKey(stringValue: "receipt_handles")) else {
            throw TernError(.invalidParameter, shape)
        }
        receiptHandles = []
        while !list.isAtEnd {
            guard receiptHandles.count < Broker.batchSizeRange.upperBound else { throw TernError(.invalidParameter, shape) }
            guard let handle = try? list.decode(String.self) else {
                throw TernError(.invalidParameter, "receipt_handles[\(receiptHandles.count)] must be a string")
            }
            receiptHandles.append(handle)
        }
        guard !receiptHandles.isEmpty else { throw TernError(.invalidParameter, shape) }
    }
}

/// `POST /queues/{name}/messages/visibility` body:
/// `{"entries": [{"receipt_handle": "…", "visibility_timeout": 30}, …]}`, 1–1,000 entries,
/// each timeout in seconds from now (0 releases the message).
struct VisibilityBatchBody: Decodable {
    var entries: [(receiptHandle: String, timeout: Int)]

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        try c.rejectUnknownKeys(allowed: ["entries"], code: .invalidParameter)
        let shape = "entries must be an array of 1–\(Broker.batchSizeRange.upperBound) objects {receipt_handle, visibility_timeout}"
        guard var list = try? c.nestedUnkeyedContainer(forKey: AnyKey(stringValue: "entries")) else {
            throw TernError(.invalidParameter, shape)
        }
        entries = []
        while !list.isAtEnd {
            guard entries.count < Broker.batchSizeRange.upperBound else { throw TernError(.invalidParameter, shape) }
            let index = entries.count
            guard let item = try? list.nestedContainer(keyedBy: AnyKey.self) else {
                throw TernError(.invalidParameter, "entries[\(index)] must be an object {receipt_handle, visibility_timeout}")
            }
            do throws(TernError) {
                try item.rejectUnknownKeys(allowed: ["receipt_handle", "visibility_timeout"], code: .invalidParameter)
                guard let handle = try item.string("receipt_handle", code: .invalidParameter) ?? nil else {
                    throw TernError(.invalidParameter, "receipt_handle (a string) is required")
                }
                guard let timeout = try item.integer("visibility_timeout", in: QueueAttributes.visibilityTimeoutRange) ?? nil else {
                    throw TernError(.invalidParameter, "visibility_timeout (seconds, 0–43200) is required")
                }
                entries.append((handle, timeout))
            } catch {
                throw TernError(error.code, "entries[\(index)]: \(error.message)")
            }
        }
        guard !entries.isEmpty else { throw TernError(.invalidParameter, shape) }
    }
}

/// The answer of a batch: one result per handle, in request order, and the counts.
///
/// ```json
/// {"results": [{"receipt_handle": "01…", "error": null},
///              {"receipt_handle": "01…", "error": {"code": "ReceiptHandleStale", "message": "…"}}],
///  "succeeded": 1, "failed": 1}
/// ```
struct BatchResults: Encodable {
    struct Entry: Encodable {
        var receiptHandle: String
        var error: ErrorBody.Detail?

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: AnyKey.self)
            try c.encode(receiptHandle, forKey: AnyKey(stringValue: "receipt_handle"))
            try c.encode(error, forKey: AnyKey(stringValue: "error"))
        }
    }

    var results: [Entry]
    var succeeded: Int
    var failed: Int

    init(handles: [String], errors: [TernError?]) {
        results = zip(handles, errors).map { handle, error in
            Entry(receiptHandle: handle, error: error.map { ErrorBody.Detail(code: $0.code.name, message: $0.message) })
        }
        failed = errors.count(where: { $0 != nil })
        succeeded = errors.count - failed
    }
}
