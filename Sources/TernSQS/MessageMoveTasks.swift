import Foundation
import Logging
import Synchronization
import TernBroker
import TernCore

/// SQS's message-move tasks (dead-letter queue redrive): StartMessageMoveTask moves the messages
/// of a dead-letter queue to a destination at most `MaxNumberOfMessagesPerSecond` per second,
/// asynchronously; ListMessageMoveTasks reports progress; CancelMessageMoveTask stops it.
///
/// A task's record is replicated state (decision 139): a JSON list in the source queue's
/// metadata (attribute ``key``, newest last, at most ``keptPerSource``: one active task and the
/// last finished ones), changed by `update_queue_metadata` commands with a revision check, so
/// every replica has it and it goes with its queue. The moving runs on the node that serves
/// (the leader): it records its progress after each batch, and a node that starts serving —
/// a new leader, or a node restarting — resumes every task recorded as running
/// (``resume(broker:)``). A resumed task may move again the messages of the batch in flight
/// when the old leader died (at-least-once, as any receive, send, delete sequence).
final class MessageMoveTasks: Sendable {
    static let keptPerSource = 10
    /// The rate when the client gives none, in messages per second (SQS picks a "system
    /// optimized" rate; Tern's is its own figure).
    static let defaultRate = 500
    /// The metadata attribute of the source queue that holds its tasks.
    static let key = SQSEndpoint.internalPrefix + "move_tasks"
    /// The longest failure reason kept, in characters.
    static let maxReasonCharacters = 256

    struct MoveTask: Sendable, Equatable {
        var id: String
        var source: QueueName
        var sourceArn: String
        /// nil = back to each message's original source queue.
        var destination: QueueName?
        var destinationArn: String?
        var rate: Int?
        /// `RUNNING`, `CANCELLING`, `CANCELLED`, `COMPLETED` or `FAILED`.
        var status = "RUNNING"
        var moved = 0
        var toMove: Int
        /// When it started, in ms since 1970.
        var started: UInt64
        var failureReason: String?
        var handle: String

        var isActive: Bool { status == "RUNNING" || status == "CANCELLING" }

        var json: SQSOutput {
            var members: [(name: String, value: SQSOutput)] = [
                ("id", .string(id)), ("sourceArn", .string(sourceArn)), ("status", .string(status)), ("moved", .int(moved)),
                ("toMove", .int(toMove)), ("started", .int(Int(started))), ("handle", .string(handle)),
            ]
            if let destination { members.append(("destination", .string(destination.rawValue))) }
            if let destinationArn { members.append(("destinationArn", .string(destinationArn))) }
            if let rate { members.append(("rate", .int(rate))) }
            if let failureReason { members.append(("failureReason", .string(failureReason))) }
            return .structure(members)
        }

        init(id: String, source: QueueName, sourceArn: String, destination: QueueName?, destinationArn: String?, rate: Int?,
             toMove: Int, started: UInt64, handle: String) {
            self.id = id
            self.source = source
            self.sourceArn = sourceArn
            self.destination = destination
            self.destinationArn = destinationArn
            self.rate = rate
            self.toMove = toMove
            self.started = started
            self.handle = handle
        }

        /// A record as ``json`` wrote it; nil when it is not one.
        init?(source: QueueName, _ value: SQSValue) {
            func string(_ key: String) -> String? { if case .string(let text)? = value[key] { text } else { nil } }
            func int(_ key: String) -> Int? { if case .number(let text)? = value[key] { Int(text) } else { nil } }
            guard let id = string("id"), let sourceArn = string("sourceArn"), let status = string("status"),
                  let moved = int("moved"), let toMove = int("toMove"), let started = int("started"), let handle = string("handle")
            else { return nil }
            self.init(id: id, source: source, sourceArn: sourceArn, destination: string("destination").flatMap { try? QueueName($0) },
                      destinationArn: string("destinationArn"), rate: int("rate"), toMove: toMove, started: UInt64(max(0, started)),
                      handle: handle)
            self.status = status
            self.moved = moved
            self.failureReason = string("failureReason")
        }
    }

    /// Ids of the tasks this process is moving now.
    private let local = Mutex<Set<String>>([])
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    /// The tasks recorded in `metadata` of `source`, oldest first (unreadable records skipped).
    static func decode(_ metadata: QueueMetadata?, source: QueueName) -> [MoveTask] {
        guard let text = metadata?.attributes[key], case .list(let items)? = try? JSON.parse(Array(text.utf8)) else { return [] }
        return items.compactMap { MoveTask(source: source, $0) }
    }

    static func encode(_ tasks: [MoveTask]) -> String {
        String(decoding: JSON.serialize(.list(tasks.map(\.json), member: "member")), as: UTF8.self)
    }

    /// The tasks of `source`, oldest first.
    /// - Throws: ``TernError`` `QueueNotFound`.
    func tasks(source: QueueName, broker: Broker) throws -> [MoveTask] {
        Self.decode(try broker.describeQueueWithMetadata(source).metadata, source: source)
    }

    /// Records `task` as the source's running task, dropping the oldest finished one past
    /// ``keptPerSource``.
    /// - Throws: `UnsupportedOperation` when a task of the source is active; ``TernError`` as
    ///   ``Broker/modifyQueueMetadata(_:lastModified:_:)``.
    func add(_ task: MoveTask, broker: Broker) async throws {
        try await broker.modifyQueueMetadata(task.source) { _, _, attributes in
            var list = Self.decode(QueueMetadata(attributes: attributes), source: task.source)
            if list.contains(where: \.isActive) {
                throw SQSError(.unsupportedOperation, "There is already a task running. Only one active task is allowed for a source queue arn at a given time.")
            }
            list.append(task)
            while list.count > Self.keptPerSource, let index = list.firstIndex(where: { !$0.isActive }) { list.remove(at: index) }
            attributes[Self.key] = Self.encode(list)
        }
    }

    /// Changes the record of task `id` of `source` with `change` (re-read and retried on a
    /// concurrent change).
    /// - Returns: the record after the change; nil when there is no such task.
    /// - Throws: what `change` throws; ``TernError`` as ``Broker/modifyQueueMetadata(_:lastModified:_:)``.
    @discardableResult
    func update(_ source: QueueName, _ id: String, broker: Broker,
                _ change: (inout MoveTask) throws -> Void) async throws -> MoveTask? {
        var updated: MoveTask?
        try await broker.modifyQueueMetadata(source) { _, _, attributes in
            var list = Self.decode(QueueMetadata(attributes: attributes), source: source)
            guard let index = list.firstIndex(where: { $0.id == id }) else { updated = nil; return }
            try change(&list[index])
            updated = list[index]
            attributes[Self.key] = Self.encode(list)
        }
        return updated
    }

    /// Starts moving every task recorded as active that this process does not move yet: at
    /// start-up and whenever this node starts to serve (a new leader). Errors are logged.
    func resume(broker: Broker) {
        guard let queues = try? broker.listQueues() else { return }
        for queue in queues {
            guard let tasks = try? self.tasks(source: queue.name, broker: broker) else { continue }
            for task in tasks where task.isActive { start(task, broker: broker) }
        }
    }

    /// Moves `task` in the background unless this process already does.
    func start(_ task: MoveTask, broker: Broker) {
        guard local.withLock({ $0.insert(task.id).inserted }) else { return }
        logger.info("message move task running", metadata: ["tern.queue": "\(task.source)", "tern.sqs.task": "\(task.id)",
                                                            "tern.sqs.moved": "\(task.moved)"])
        Task {
            await self.run(task, broker: broker)
            _ = self.local.withLock { $0.remove(task.id) }
        }
    }

    /// Whether `error` means this node stopped serving (another node leads now and resumes
    /// the task), so that the task must not be marked failed.
    static func isLeadershipLoss(_ error: any Error) -> Bool {
        guard let error = error as? TernError else { return false }
        return error.code == .notLeader || error.code == .unavailable
    }

    /// Runs `task` until the source is drained of the messages it held at the start, the task
    /// is cancelled, a failure stops it (recorded `FAILED`), or this node stops serving.
    func run(_ task: MoveTask, broker: Broker) async {
        let source = task.source, id = task.id
        do {
            guard let destination = task.destination else {
                // Several source queues: each message goes back to its own (the broker's redrive,
                // one transaction per chunk, not rate-limited).
                let moved = try await broker.redrive(source)
                try await update(source, id, broker: broker) {
                    $0.moved += moved
                    $0.status = $0.status == "CANCELLING" ? "CANCELLED" : "COMPLETED"
                }
                return
            }
            let rate = task.rate ?? Self.defaultRate
            let clock = ContinuousClock()
            var windowStart = clock.now
            var inWindow = 0
            var moved = task.moved
            while moved < task.toMove {
                let current = try tasks(source: source, broker: broker).first { $0.id == id }
                guard let current, current.isActive else { return }  // gone with its queue, or finished elsewhere
                if current.status == "CANCELLING" {
                    try await update(source, id, broker: broker) { $0.status = "CANCELLED" }
                    return
                }
                // Rate limit: at most `rate` messages per one-second window.
                if inWindow >= rate {
                    let next = windowStart.advanced(by: .seconds(1))
                    if next > clock.now { try? await Task<Never, Never>.sleep(until: next, clock: clock) }
                    windowStart = clock.now
                    inWindow = 0
                }
                let batch = min(10, rate - inWindow, task.toMove - moved)
                let received = try await broker.receive(source, maxMessages: batch, visibilityTimeout: 60)
                if received.isEmpty { break }
                let outgoing = received.map { OutgoingMessage(body: $0.body, priority: $0.priority, attributes: $0.attributes) }
                _ = try await broker.send(destination, outgoing)
                _ = try await broker.acknowledge(source, receiptHandles: received.map(\.receiptHandle))
                moved += received.count
                inWindow += received.count
                let count = moved
                try await update(source, id, broker: broker) { $0.moved = count }
            }
            try await update(source, id, broker: broker) { $0.status = $0.status == "CANCELLING" ? "CANCELLED" : "COMPLETED" }
        } catch where Self.isLeadershipLoss(error) {
            logger.info("message move task paused: this node stopped serving; the leader resumes it",
                        metadata: ["tern.queue": "\(source)", "tern.sqs.task": "\(id)", "tern.error": "\(error)"])
        } catch let error as TernError where error.code == .queueNotFound {
            return  // the source queue was deleted, and its tasks with it
        } catch {
            logger.warning("message move task failed", metadata: ["tern.queue": "\(source)", "tern.error": "\(error)"])
            let reason = String("\(error)".prefix(Self.maxReasonCharacters))
            _ = try? await update(source, id, broker: broker) {
                $0.status = "FAILED"
                $0.failureReason = reason
            }
        }
    }
}

extension SQSEndpoint {
    func sourceQueue(arn: String) throws -> QueueInfo {
        let missing = SQSError(.resourceNotFound, "The resource that you specified for the SourceArn parameter doesn't exist.")
        let name = try queueName(arn: arn, orElse: missing)
        guard let info = try? broker.describeQueue(name) else { throw missing }
        return info
    }

    func startMessageMoveTask(_ p: Parameters) async throws -> SQSOutput {
        let sourceArn = try p.requiredString("SourceArn")
        let source = try sourceQueue(arn: sourceArn)
        let origins = try broker.listQueues().filter { $0.attributes.deadLetterQueue == source.name }
        guard !origins.isEmpty else {
            throw SQSError(.invalidParameterValue, "Source queue must be configured as a Dead Letter Queue.")
        }
        let rate = try p.int("MaxNumberOfMessagesPerSecond")
        if let rate, !SQS.moveRateRange.contains(rate) {
            throw SQSError.invalidValue(String(rate), parameter: "MaxNumberOfMessagesPerSecond", reason: "must be between 1 and 500.")
        }
        let destinationArn = try p.string("DestinationArn")
        var destination: QueueName?
        if let destinationArn {
            let target = try queueName(arn: destinationArn, orElse: SQSError(.resourceNotFound, "The resource that you specified for the DestinationArn parameter doesn't exist."))
            guard (try? broker.describeQueue(target)) != nil else {
                throw SQSError(.resourceNotFound, "The resource that you specified for the DestinationArn parameter doesn't exist.")
            }
            guard target != source.name else { throw SQSError(.invalidParameterValue, "Source and destination must differ.") }
            destination = target
        } else if origins.count == 1 {
            destination = origins[0].name
        }
        let id = UUID().uuidString.lowercased()
        let handle = Self.taskHandle(id: id, sourceArn: sourceArn)
        let task = MessageMoveTasks.MoveTask(
            id: id, source: source.name, sourceArn: sourceArn, destination: destination, destinationArn: destinationArn, rate: rate,
            toMove: Int(source.counts.total), started: nowMilliseconds, handle: handle)
        try await moveTasks.add(task, broker: broker)
        moveTasks.start(task, broker: broker)
        return .structure([("TaskHandle", .string(handle))])
    }

    /// A task's handle: base64 of `{"taskId": …, "sourceArn": …}` (it names its source queue,
    /// where the task's record is).
    static func taskHandle(id: String, sourceArn: String) -> String {
        Data(JSON.serialize(.structure([("taskId", .string(id)), ("sourceArn", .string(sourceArn))]))).base64EncodedString()
    }

    func listMessageMoveTasks(_ p: Parameters) throws -> SQSOutput {
        let sourceArn = try p.requiredString("SourceArn")
        let source = try sourceQueue(arn: sourceArn)
        let maxResults = try p.int("MaxResults") ?? 1
        guard (1...10).contains(maxResults) else {
            throw SQSError.invalidValue(String(maxResults), parameter: "MaxResults", reason: "must be between 1 and 10.")
        }
        let tasks = try moveTasks.tasks(source: source.name, broker: broker).reversed().prefix(maxResults)
        let results: [SQSOutput] = tasks.map { task in
            var members: [(name: String, value: SQSOutput)] = []
            if task.status == "RUNNING" { members.append(("TaskHandle", .string(task.handle))) }
            members.append(("Status", .string(task.status)))
            members.append(("SourceArn", .string(task.sourceArn)))
            if let destinationArn = task.destinationArn { members.append(("DestinationArn", .string(destinationArn))) }
            if let rate = task.rate { members.append(("MaxNumberOfMessagesPerSecond", .int(rate))) }
            members.append(("ApproximateNumberOfMessagesMoved", .int(task.moved)))
            members.append(("ApproximateNumberOfMessagesToMove", .int(task.toMove)))
            if let reason = task.failureReason { members.append(("FailureReason", .string(reason))) }
            members.append(("StartedTimestamp", .int(Int(task.started))))
            return .structure(members)
        }
        return .structure([("Results", .list(results, member: "ListMessageMoveTasksResultEntry"))])
    }

    func cancelMessageMoveTask(_ p: Parameters) async throws -> SQSOutput {
        let handle = try p.requiredString("TaskHandle")
        let missing = SQSError(.resourceNotFound, "Task does not exist.")
        guard let data = Data(base64Encoded: handle), let value = try? JSON.parse(Array(data)),
              case .string(let id)? = value["taskId"], case .string(let sourceArn)? = value["sourceArn"],
              let source = try? queueName(arn: sourceArn, orElse: missing)
        else { throw missing }
        let found: MessageMoveTasks.MoveTask?
        do {
            found = try await moveTasks.update(source, id, broker: broker) { task in
                guard task.status == "RUNNING" else {
                    throw SQSError(.unsupportedOperation, "Only a RUNNING task can be cancelled; this one is \(task.status).")
                }
                task.status = "CANCELLING"
            }
        } catch let error as TernError where error.code == .queueNotFound {
            throw missing
        }
        guard let task = found else { throw missing }
        return .structure([("ApproximateNumberOfMessagesMoved", .int(task.moved))])
    }

    /// Resumes the message-move tasks recorded as running that no task of this process moves:
    /// call it when the node starts and whenever it starts to serve (in a cluster: becomes the
    /// leader). Reads each queue's metadata once.
    public func resumeMessageMoveTasks() {
        moveTasks.resume(broker: broker)
    }
}
