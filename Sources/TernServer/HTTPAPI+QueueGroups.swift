import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TernBroker
import TernCore
import TernMetadata
import TernGossip

/// HTTP requests with queue groups on (decision 140). A request for a queue the catalogue
/// places in a queue group goes to that group's leader; creating and deleting such queues, and
/// listing queues, are carried out by the data group's leader, which owns the catalogue:
///
/// - `PUT /queues/{name}` of a new queue: the body is checked, the queue placed (a catalogue
///   entry in the data group's log), then the request is sent to the new group, waiting up to
///   10 s for it to elect a leader.
/// - `DELETE /queues/{name}`: deleted in its group first, then from the catalogue (a retry
///   after a failure in between finishes the job).
/// - `GET /queues`: the data group's queues and every queue group's, one list sorted by name;
///   `503` when a group cannot answer (never a partial list).
///
/// Requests sent on within a group carry `Tern-Queue-Group: <raft group id>`; a replica that
/// does not lead answers `503` with `Tern-Leader` naming the leader it knows, and the sender
/// follows it once. Such a request is never forwarded again, so no request loops.
extension ClusterForwardingMiddleware {
    static var queueGroupHeader: HTTPField.Name { HTTPField.Name(ClusterNode.queueGroupHeader)! }
    static var leaderHeader: HTTPField.Name { HTTPField.Name(ClusterNode.leaderHeader)! }
    /// How long creating a queue waits for its new group to serve.
    static var groupWait: Duration { .seconds(10) }

    /// The queue a `/queues/{name}…` path names, nil for other paths (and for `/queues`).
    static func queueName(inPath path: String) -> QueueName? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 3, parts[1] == "queues", !parts[2].isEmpty,
              let decoded = String(parts[2]).removingPercentEncoding else { return nil }
        return try? QueueName(decoded)
    }

    /// Answers `request` when queue groups decide where it goes; nil: it is the data group's,
    /// routed as without queue groups.
    func routeQueueGroups(_ request: Request, context: Context,
                          next: (Request, Context) async throws -> Response) async throws -> Response? {
        guard let host = node.queueGroups else { return nil }
        if let raw = request.headers[Self.queueGroupHeader] {
            guard let raftID = UInt64(raw), let hosted = host.group(raftID) else {
                throw TernError(.unavailable, "this node (\(node.nodeID)) does not host queue group \(raw) now; retry")
            }
            let status = hosted.replica.group.status
            if status.isServing {
                return try await serve(request, context: context, next: next, broker: hosted.replica.broker,
                                       term: status.term, group: raftID)
            }
            var response = ErrorMiddleware<Context>().render(TernError(.unavailable, status.role == .leader
                ? "this node was just elected leader of queue group \(raftID) and is catching up; retry"
                : "this node does not lead queue group \(raftID); retry"))
            if let leader = status.leader, leader != status.node {
                response.headers[Self.leaderHeader] = hosted.replica.group.name(of: leader) ?? node.name(of: leader)
            }
            return response
        }
        let path = request.uri.path
        if path == "/transactions", request.method == .post {
            return try await transaction(request, context: context, next: next)
        }
        let leadsData: Bool
        if case .local = node.route(http: true) { leadsData = true } else { leadsData = false }
        if path == "/queues" {
            guard request.method == .get, leadsData else { return nil }
            return try await listAll(request, context: context, next: next)
        }
        guard let name = Self.queueName(inPath: path) else { return nil }
        let isQueue = path.split(separator: "/").count == 2
        if let group = node.queueGroup(of: name) {
            if isQueue && request.method == .delete {
                guard leadsData else { return nil }  // the data group's leader deletes (forwarded there)
                return try await delete(name, group: group, request, context: context, next: next)
            }
            if isQueue && request.method == .put {
                return try await update(name, in: group, request, context: context, next: next)
            }
            return try await send(request, context: context, next: next, to: group, waitForLeader: false)
        }
        guard isQueue, request.method == .put, leadsData else { return nil }
        return try await create(name, request, context: context, next: next)
    }

    /// Serves `request` here with a queue group's `broker`.
    private func serve(_ request: Request, context: Context, next: (Request, Context) async throws -> Response,
                       broker: Broker, term: UInt64, group: UInt64) async throws -> Response {
        var response: Response
        do {
            response = try await ServingBroker.$current.withValue(broker) { try await next(request, context) }
        } catch let error as TernError where error.code == .notLeader {
            throw TernError(.unavailable, error.message + "; retry")
        }
        response.headers[Self.servedByHeader] = node.nodeID
        response.headers[Self.termHeader] = String(term)
        response.headers[Self.queueGroupHeader] = String(group)
        return response
    }

    /// Sends `request` to `group`'s leader (or serves it here when this node leads it); see
    /// ``ask(_:method:target:headers:waitForLeader:body:)``.
    private func send(_ request: Request, context: Context, next: (Request, Context) async throws -> Response,
                      to group: Metadata.Group, waitForLeader: Bool) async throws -> Response {
        var body: ByteBuffer?
        let answer = try await ask(group, method: request.method.rawValue, target: request.uri.description,
                                   headers: request.headers.map { ($0.name.canonicalName, $0.value) },
                                   waitForLeader: waitForLeader) {
            if body == nil { body = try await request.body.collect(upTo: maxRequestBytes) }
            return body!
        }
        switch answer {
        case .local(let broker, let term):
            let replay = body.map { Request(head: request.head, body: .init(buffer: $0)) } ?? request
            return try await serve(replay, context: context, next: next, broker: broker, term: term,
                                   group: QueueGroupHost.raftGroup(of: group.id))
        case .forwarded(let answer):
            return Self.response(answer)
        }
    }

    /// What a queue group answered: this node leads it (serve with its broker), or the answer
    /// of the node a request was sent on to.
    private enum GroupAnswer {
        case local(Broker, term: UInt64)
        case forwarded(ClusterNode.ForwardedAnswer)
    }

    /// Finds who serves a request for `group`: this node when it leads the group, else sends
    /// the request (marked `Tern-Queue-Group`) to the leader it knows or to the first live
    /// replica, following one `Tern-Leader` hint; with `waitForLeader`, retries every 50 ms for
    /// up to ``groupWait`` while the group has no leader or its replicas have not started it.
    /// `body` gives the request body, read only when the request is sent on.
    private func ask(_ group: Metadata.Group, method: String, target path: String, headers: [(String, String)],
                     waitForLeader: Bool, body: () async throws -> ByteBuffer) async throws -> GroupAnswer {
        let raftID = QueueGroupHost.raftGroup(of: group.id)
        let deadline = ContinuousClock.now + (waitForLeader ? Self.groupWait : .zero)
        var hint: String?
        while true {
            var target: (node: String, address: Gossip.Address)?
            if let leader = hint, let address = node.member(leader)?.node.http {
                target = (leader, address)
            } else {
                switch node.route(group: group, http: true) {
                case .local(let broker, let term):
                    return .local(broker, term: term)
                case .forward(let to, let address):
                    target = (to, address)
                case .unavailable(let reason):
                    guard ContinuousClock.now < deadline else { throw TernError(.unavailable, reason) }
                }
            }
            if let target {
                let answer = try await node.forward(
                    ClusterNode.ForwardedRequest(method: method, target: path,
                                                 headers: headers + [(ClusterNode.queueGroupHeader, String(raftID))],
                                                 body: try await body()),
                    to: target.address, leader: target.node)
                let leader = answer.headers.first { $0.0.lowercased() == ClusterNode.leaderHeader.lowercased() }?.1
                if answer.status == 503, let leader, leader != target.node, hint == nil {
                    hint = leader
                    continue
                }
                if answer.status != 503 || ContinuousClock.now >= deadline { return .forwarded(answer) }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// The answer a node sent back, as this node's response.
    static func response(_ answer: ClusterNode.ForwardedAnswer) -> Response {
        var headers = HTTPFields()
        for (name, value) in answer.headers {
            guard let fieldName = HTTPField.Name(name) else { continue }
            headers.append(HTTPField(name: fieldName, value: value))
        }
        return Response(status: .init(code: answer.status), headers: headers, body: .init(byteBuffer: answer.body))
    }

    /// `PUT /queues/{name}` of a queue the catalogue does not place (on the data group's leader).
    private func create(_ name: QueueName, _ request: Request, context: Context,
                        next: (Request, Context) async throws -> Response) async throws -> Response {
        let body = try await request.body.collect(upTo: maxRequestBytes)
        let replay = Request(head: request.head, body: .init(buffer: body))
        // A queue made before queue groups were on stays in the data group.
        if (try? node.data.broker.describeQueue(name)) != nil { return try await serveData(replay, context: context, next: next) }
        let bytes = Array(body.readableBytesView)
        // Bad input is refused before anything is placed.
        let attributes = bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 })
            ? QueueAttributesBody() : try JSONBody.decode(QueueAttributesBody.self, from: bytes)
        _ = try QueueAttributes.forNewQueue(name, attributes.patch)
        let placed = node.queueGroup(of: name) == nil
        let group = try await node.placeQueue(name, colocateWith: attributes.colocateWith,
                                              deadLetterQueue: attributes.patch.deadLetterQueue ?? nil)
        let response = try await send(replay, context: context, next: next, to: group, waitForLeader: true)
        // The group refused the queue (a check only its state can make, such as a FIFO queue's
        // dead-letter queue being FIFO): take back the placement this request made.
        if placed, (400..<500).contains(Int(response.status.code)) { try? await node.unplaceQueue(name) }
        return response
    }

    /// `POST /transactions`: one whose queues all live in one queue group commits there (with a
    /// producer the data group issued, decision 141); one naming queues of two groups, or a queue
    /// group's queue and a topic, is refused `TransactionSpansGroups` before anything is applied
    /// (decision 128); others go to the data group as without queue groups.
    private func transaction(_ request: Request, context: Context,
                             next: (Request, Context) async throws -> Response) async throws -> Response? {
        let body = try await request.body.collect(upTo: maxRequestBytes)
        let replay = Request(head: request.head, body: .init(buffer: body))
        // A body that does not parse is the handler's to refuse, with its own error.
        if let parsed = try? JSONBody.decode(TransactionBody.self, from: Array(body.readableBytesView)),
           let group = try node.transactionGroup(queues: parsed.messages.map(\.queue) + parsed.acks.map(\.queue),
                                                 touchesTopics: !parsed.records.isEmpty || !parsed.offsets.isEmpty) {
            try await node.checkIssuedProducer(ProducerIdentity(producerID: parsed.producerID, epoch: parsed.epoch))
            return try await send(replay, context: context, next: next, to: group, waitForLeader: false)
        }
        return try await routeToDataGroup(replay, context: context, next: next)
    }

    /// `PUT /queues/{name}` of a queue in a queue group: its attributes change in its group; its
    /// colocation cannot (decision 107): `colocate_with` must name a queue of the same group.
    private func update(_ name: QueueName, in group: Metadata.Group, _ request: Request, context: Context,
                        next: (Request, Context) async throws -> Response) async throws -> Response {
        let body = try await request.body.collect(upTo: maxRequestBytes)
        let bytes = Array(body.readableBytesView)
        if !bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            let attributes = try JSONBody.decode(QueueAttributesBody.self, from: bytes)
            if let other = attributes.colocateWith, node.queueGroup(of: other)?.id != group.id {
                throw TernError(.conflict, "queue \(name) is not in the group of queue \(other), and colocate_with cannot change after creation")
            }
            if let dlq = attributes.patch.deadLetterQueue ?? nil, try node.groupOfDeadLetterQueue(dlq, for: name).id != group.id {
                throw TernError(.conflict, "dead_letter_queue \(dlq) lives in another queue group than queue \(name), which cannot move; a queue and its dead-letter queue share a group: create the queue with dead_letter_queue or colocate_with set (decision 142)")
            }
        }
        return try await send(Request(head: request.head, body: .init(buffer: body)), context: context, next: next,
                              to: group, waitForLeader: false)
    }

    /// `DELETE /queues/{name}` of a queue in a queue group (on the data group's leader).
    private func delete(_ name: QueueName, group: Metadata.Group, _ request: Request, context: Context,
                        next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            let answer = try await send(request, context: context, next: next, to: group, waitForLeader: true)
            // Gone from the group already (an earlier attempt stopped half-way): finish it.
            guard answer.status.code / 100 == 2 || answer.status.code == 404 else { return answer }
        } catch let error as TernError where error.code == .queueNotFound {
            // As above: the group no longer has it.
        }
        let outcome: TernError? = await Self.unplace(name, node: node)
        if let outcome, outcome.code != .queueNotFound { throw outcome }  // queueNotFound: a concurrent delete won
        var response = Response(status: .noContent)
        response.headers[Self.servedByHeader] = node.nodeID
        response.headers[Self.termHeader] = String(node.data.group.status.term)
        return response
    }

    private static func unplace(_ name: QueueName, node: ClusterNode) async -> TernError? {
        do throws(TernError) {
            try await node.unplaceQueue(name)
            return nil
        } catch {
            return error
        }
    }

    /// Serves `request` with the data group's broker, as this node leads it. Errors thrown here
    /// are rendered (and counted in metrics) by the outer middleware, without the `Tern-Served-By`
    /// and `Tern-Term` headers: only successful answers say who served them.
    func serveData(_ request: Request, context: Context,
                           next: (Request, Context) async throws -> Response) async throws -> Response {
        let term = node.data.group.status.term
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as TernError where error.code == .notLeader {
            throw TernError(.unavailable, error.message + "; retry")
        }
        response.headers[Self.servedByHeader] = node.nodeID
        response.headers[Self.termHeader] = String(term)
        return response
    }

    /// `GET /queues`: the data group's queues and every queue group's, sorted by name.
    private func listAll(_ request: Request, context: Context,
                         next: (Request, Context) async throws -> Response) async throws -> Response {
        var queues: [[String: Any]] = []
        func add(_ bytes: Data) throws {
            guard let object = try? JSONSerialization.jsonObject(with: bytes) as? [String: Any],
                  let list = object["queues"] as? [[String: Any]] else {
                throw TernError(.internalError, "a queue group answered GET /queues with a body that is not a queue list")
            }
            queues += list
        }
        func local(_ broker: Broker) throws -> Data {
            let now = broker.clock.now
            return try jsonEncoder.encode(QueueList(queues: try broker.listQueues().map { QueueDescription($0, now: now) }))
        }
        try add(try local(node.data.broker))
        let groups = (node.catalogue?.groups.values.filter { $0.kind == .queue } ?? []).sorted { $0.id < $1.id }
        let headers = request.headers.map { ($0.name.canonicalName, $0.value) }
        for group in groups {
            switch try await ask(group, method: "GET", target: "/queues", headers: headers, waitForLeader: false, body: { ByteBuffer() }) {
            case .local(let broker, _):
                try add(try local(broker))
            case .forwarded(let answer):
                guard answer.status == 200 else { return Self.response(answer) }
                try add(Data(answer.body.readableBytesView))
            }
        }
        queues.sort { ($0["name"] as? String ?? "") < ($1["name"] as? String ?? "") }
        let data = try JSONSerialization.data(withJSONObject: ["queues": queues], options: [.sortedKeys])
        var response = Response(status: .ok, headers: [.contentType: "application/json"],
                                body: .init(byteBuffer: ByteBuffer(bytes: data)))
        response.headers[Self.servedByHeader] = node.nodeID
        response.headers[Self.termHeader] = String(node.data.group.status.term)
        return response
    }
}
