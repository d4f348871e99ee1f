import Foundation
import Logging
import Synchronization
import TernBroker
import TernCore

/// SQS's message-move tasks (dead-letter queue redrive): StartMessageMoveTask moves the messages
/// of a dead-letter queue to a destination at most `MaxNumberOfMessagesPerSecond` per second,
/// asynchronously; ListMessageMoveTasks reports progress; CancelMessageMoveTask stops it.
///
/// Tasks live in memory (a restart ends running tasks; moved messages stay moved). At most one
/// task runs per source queue and the last ``keptPerSource`` finished tasks are kept per source,
/// so the memory is bounded by the number of queues.
final class MessageMoveTasks: Sendable {
    static let keptPerSource = 10
    /// The rate when the client gives none, in messages per second (SQS picks a "system
    /// optimized" rate; Tern's is its own figure).
    static let defaultRate = 500

    struct MoveTask: Sendable {
        var id: String
        var source: QueueName
        var sourceArn: String
        /// nil = back to each message's original source queue.
        var destination: QueueName?
        var destinationArn: String?
        var rate: Int?
        var status = "RUNNING"
        var moved = 0
        var toMove: Int
        var started: UInt64
        var failureReason: String?
        var handle: String
    }

    private let state = Mutex<[String: [MoveTask]]>([:])  // source name → tasks, newest last
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    func running(source: QueueName) -> MoveTask? {
        state.withLock { $0[source.rawValue]?.last(where: { $0.status == "RUNNING" || $0.status == "CANCELLING" }) }
    }

    func tasks(source: QueueName) -> [MoveTask] { state.withLock { $0[source.rawValue] ?? [] } }

    func add(_ task: MoveTask) {
        state.withLock { all in
            var list = all[task.source.rawValue] ?? []
            list.append(task)
            if list.count > Self.keptPerSource, let index = list.firstIndex(where: { $0.status != "RUNNING" && $0.status != "CANCELLING" }) {
                list.remove(at: index)
            }
            all[task.source.rawValue] = list
        }
    }

    func update(_ source: QueueName, _ id: String, _ change: (inout MoveTask) -> Void) {
        state.withLock { all in
            guard var list = all[source.rawValue], let index = list.firstIndex(where: { $0.id == id }) else { return }
            change(&list[index])
            all[source.rawValue] = list
        }
    }

    func task(handle: String) -> MoveTask? {
        state.withLock { all in all.values.lazy.flatMap { $0 }.first { $0.handle == handle } }
    }

    /// Runs `task` until the source is drained of the messages it held at the start, the task
    /// is cancelled, or a failure stops it.
    func run(_ task: MoveTask, broker: Broker) async {
        let rate = task.rate ?? Self.defaultRate
        let clock = ContinuousClock()
        var windowStart = clock.now
        var inWindow = 0
        var moved = 0
        while moved < task.toMove {
            if self.tasks(source: task.source).first(where: { $0.id == task.id })?.status == "CANCELLING" {
                update(task.source, task.id) { $0.status = "CANCELLED" }
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
            do {
                let received = try await broker.receive(task.source, maxMessages: batch, visibilityTimeout: 60)
                if received.isEmpty { break }
                let outgoing = received.map { OutgoingMessage(body: $0.body, priority: $0.priority, attributes: $0.attributes) }
                _ = try await broker.send(task.destination!, outgoing)
                _ = try await broker.acknowledge(task.source, receiptHandles: received.map(\.receiptHandle))
                moved += received.count
                inWindow += received.count
                update(task.source, task.id) { $0.moved = moved }
            } catch {
                logger.warning("message move task failed", metadata: ["tern.queue": "\(task.source)", "tern.error": "\(error)"])
                update(task.source, task.id) {
                    $0.status = "FAILED"
                    $0.failureReason = "\(error)"
                }
                return
            }
        }
        update(task.source, task.id) { $0.status = "COMPLETED" }
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
        if moveTasks.running(source: source.name) != nil {
            throw SQSError(.unsupportedOperation, "There is already a task running. Only one active task is allowed for a source queue arn at a given time.")
        }
        let id = UUID().uuidString.lowercased()
        let handle = Data(String(decoding: JSON.serialize(.structure([("taskId", .string(id)), ("sourceArn", .string(sourceArn))])),
                                 as: UTF8.self).utf8).base64EncodedString()
        let task = MessageMoveTasks.MoveTask(
            id: id, source: source.name, sourceArn: sourceArn, destination: destination, destinationArn: destinationArn, rate: rate,
            toMove: Int(source.counts.total), started: nowMilliseconds, handle: handle)
        moveTasks.add(task)
        let broker = self.broker
        let tasks = moveTasks
        if destination == nil {
            // Several source queues: each message goes back to its own (the broker's redrive,
            // one transaction per chunk, not rate-limited).
            Task {
                do {
                    let moved = try await broker.redrive(source.name)
                    tasks.update(source.name, id) {
                        $0.moved = moved
                        $0.status = "COMPLETED"
                    }
                } catch {
                    tasks.update(source.name, id) {
                        $0.status = "FAILED"
                        $0.failureReason = "\(error)"
                    }
                }
            }
        } else {
            Task { await tasks.run(task, broker: broker) }
        }
        return .structure([("TaskHandle", .string(handle))])
    }

    func listMessageMoveTasks(_ p: Parameters) throws -> SQSOutput {
        let sourceArn = try p.requiredString("SourceArn")
        let source = try sourceQueue(arn: sourceArn)
        let maxResults = try p.int("MaxResults") ?? 1
        guard (1...10).contains(maxResults) else {
            throw SQSError.invalidValue(String(maxResults), parameter: "MaxResults", reason: "must be between 1 and 10.")
        }
        let tasks = moveTasks.tasks(source: source.name).reversed().prefix(maxResults)
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
        guard let task = moveTasks.task(handle: handle) else {
            throw SQSError(.resourceNotFound, "Task does not exist.")
        }
        guard task.status == "RUNNING" else {
            throw SQSError(.unsupportedOperation, "Only a RUNNING task can be cancelled; this one is \(task.status).")
        }
        moveTasks.update(task.source, task.id) { $0.status = "CANCELLING" }
        return .structure([("ApproximateNumberOfMessagesMoved", .int(task.moved))])
    }
}
