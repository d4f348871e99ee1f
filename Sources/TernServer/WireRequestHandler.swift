public import Logging
public import TernBroker
import TernCore
public import TernWire

/// Turns decoded binary-protocol requests into broker calls and their results into responses.
/// No I/O: ``WireServer`` feeds it requests and writes what it returns, so it is tested without
/// sockets.
public struct WireRequestHandler: Sendable {
    public let broker: Broker
    let logger: Logger

    /// The name and version the broker reports in `ApiVersions`.
    public static let brokerName = "ternd/0.1"

    public init(broker: Broker, logger: Logger) {
        self.broker = broker
        self.logger = logger
    }

    /// The response to `request`; failures become ``WireResponse/error(_:)`` and change nothing.
    public func respond(to request: WireRequest) async -> WireResponse {
        do {
            return try await perform(request)
        } catch {
            return .error(error)
        }
    }

    func perform(_ request: WireRequest) async throws(TernError) -> WireResponse {
        switch request {
        case .apiVersions:
            return .apiVersions(broker: Self.brokerName, apis: WireAPIVersions.all)
        case .createQueue(let name, let patch):
            let (created, info) = try await broker.createOrUpdateQueue(try QueueName(name), patch: patch)
            return .queue(created: created, info)
        case .describeQueue(let name):
            return .queue(created: false, try broker.describeQueue(try QueueName(name)))
        case .listQueues:
            return .queues(try broker.listQueues())
        case .deleteQueue(let name):
            try await broker.deleteQueue(try QueueName(name))
            return .done
        case .purgeQueue(let name):
            return .count(UInt64(try await broker.purgeQueue(try QueueName(name))))
        case .redrive(let name):
            return .count(UInt64(try await broker.redrive(try QueueName(name))))
        case .send(let queue, let stamp, let messages):
            let name = try QueueName(queue)
            if let stamp {
                let result = try await broker.send(name, messages, producer: ProducerStamp(
                    producer: ProducerIdentity(producerID: stamp.producerID, epoch: stamp.epoch), firstSequence: stamp.firstSequence))
                return .sent(result.sent, duplicate: result.duplicate)
            }
            guard !messages.isEmpty else { throw TernError(.invalidParameter, "a send needs at least one message") }
            return .sent(try await broker.send(name, messages), duplicate: false)
        case .receive(let queue, let maxMessages, let visibilityTimeout, let waitTime, let autoAcknowledge):
            let messages = try await broker.receive(
                try QueueName(queue), maxMessages: Int(maxMessages), visibilityTimeout: visibilityTimeout.map { Int($0) },
                waitTime: Int(waitTime), autoAcknowledge: autoAcknowledge)
            return .received(messages)
        case .acknowledge(let queue, let handles):
            let name = try QueueName(queue)
            guard handles.count <= Broker.batchSizeRange.upperBound else {
                throw TernError(.invalidParameter, "at most \(Broker.batchSizeRange.upperBound) receipt handles per request")
            }
            let broker = self.broker
            let results = await withTaskGroup(of: (Int, TernError?).self) { group in
                for (index, handle) in handles.enumerated() {
                    group.addTask {
                        do {
                            try await broker.acknowledge(name, receiptHandle: handle)
                            return (index, nil)
                        } catch let error as TernError {
                            return (index, error)
                        } catch {
                            return (index, TernError(.internalError, "\(error)"))
                        }
                    }
                }
                var results = [TernError?](repeating: nil, count: handles.count)
                for await (index, error) in group { results[index] = error }
                return results
            }
            return .acknowledged(results)
        case .changeVisibility(let queue, let handle, let timeout):
            try await broker.changeVisibility(try QueueName(queue), receiptHandle: handle, timeout: Int(timeout))
            return .done
        case .initProducer(let transactionalID):
            let identity = try await broker.initProducer(transactionalID: transactionalID)
            return .producer(producerID: identity.producerID, epoch: identity.epoch)
        case .beginTransaction(let producerID, let epoch), .abortTransaction(let producerID, let epoch):
            try broker.checkProducer(ProducerIdentity(producerID: producerID, epoch: epoch))
            return .done
        case .authenticate:
            // Handled by the connection (WireConnection), which never passes it here; with
            // authentication off a token is accepted and ignored.
            return .done
        case .commitTransaction(let wire):
            var transaction = ProducerTransaction(producer: ProducerIdentity(producerID: wire.producerID, epoch: wire.epoch),
                                                  sequence: wire.transactionSequence)
            for send in wire.sends { transaction.send(try QueueName(send.queue), send.messages) }
            for ack in wire.acknowledgements { transaction.acknowledge(try QueueName(ack.queue), receiptHandle: ack.receiptHandle) }
            transaction.offsets = wire.offsets.map {
                ProducerTransaction.OffsetCommit(topic: $0.topic, group: $0.group, partition: $0.partition, offset: $0.offset,
                                                 memberID: $0.member?.id, generation: $0.member?.generation)
            }
            let result = try await broker.commit(transaction)
            return .committed(result.sent, duplicate: result.duplicate)
        }
    }
}
