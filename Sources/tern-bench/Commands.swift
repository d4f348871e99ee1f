import ArgumentParser
import Foundation
import Synchronization

/// A body of `size` ASCII bytes whose first 16 are the send time in microseconds (hex, for end-to-end latency).
func benchBody(size: Int, stamp: UInt64) -> [UInt8] {
    var body = [UInt8](repeating: UInt8(ascii: "x"), count: max(size, 16))
    let hex = Array(String(stamp, radix: 16).utf8)
    for (index, byte) in hex.suffix(16).enumerated() { body[16 - min(16, hex.count) + index] = byte }
    return body
}

func stampOf(_ body: [UInt8]) -> UInt64? {
    guard body.count >= 16 else { return nil }
    let text = String(decoding: body.prefix(16), as: UTF8.self).trimmingCharacters(in: CharacterSet(charactersIn: "x"))
    return UInt64(text, radix: 16)
}

/// Splits `total` into `parts` nearly equal shares.
func share(_ total: Int, _ index: Int, _ parts: Int) -> Int { total / parts + (index < total % parts ? 1 : 0) }

struct Produce: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Durable sends (or, with --topic, produces) in batches; latency per batch (request → durable answer).")
    @OptionGroup var options: LoadOptions

    func run() async throws {
        let setup = try makeTransport(options)
        if let topic = options.topic {
            try await setup.createTopic(topic, partitions: options.partitions)
        } else {
            try await setup.createQueue(options.queue)
        }
        await setup.close()
        let recorder = LatencyRecorder()
        let start = monotonicMicroseconds()
        let deadline: UInt64? = options.duration.map { (seconds: Double) -> UInt64 in start + UInt64(seconds * 1e6) }
        let ticker = progress("produce", recorder: recorder, start: start, quiet: options.quiet)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<options.connections {
                group.addTask {
                    let transport = try makeTransport(options)
                    var remaining = share(options.count, worker, options.connections)
                    var pacer = Pacer(rate: options.rate.map { $0 / Double(options.connections) }, start: start)
                    let body = benchBody(size: options.messageSize, stamp: 0)
                    while keepGoing(deadline: deadline, remaining: remaining) {
                        let count: Int = deadline == nil ? min(options.batch, remaining) : options.batch
                        let intended = await pacer.wait(count: count)
                        if let topic = options.topic {
                            try await transport.produce(Array(repeating: body, count: count), to: topic)
                        } else {
                            try await transport.send(Array(repeating: body, count: count), to: options.queue)
                        }
                        recorder.record(microseconds: monotonicMicroseconds() - intended, count: count, size: options.messageSize)
                        remaining -= count
                    }
                    await transport.close()
                }
            }
            try await group.waitForAll()
        }
        ticker.cancel()
        if !options.quiet { FileHandle.standardError.write(Data("\n".utf8)) }
        BenchResult(command: "produce", transport: options.isHTTP ? "http" : "binary", recorder: recorder,
                    messageSize: options.messageSize, seconds: Double(monotonicMicroseconds() - start) / 1e6).print(json: options.json)
    }
}

struct Consume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Receive + ack in batches (or, with --topic, fetches by offset); latency per round.")
    @OptionGroup var options: LoadOptions
    @Flag(help: "Wait for each batch's acknowledgement before the next receive (default: the ack of one batch overlaps the receive of the next).")
    var sequentialAcks = false

    func run() async throws {
        let recorder = LatencyRecorder()
        let start = monotonicMicroseconds()
        let deadline: UInt64? = options.duration.map { (seconds: Double) -> UInt64 in start + UInt64(seconds * 1e6) }
        let ticker = progress("consume", recorder: recorder, start: start, quiet: options.quiet)
        let consumed = Counter(), received = Counter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<options.connections {
                if let topic = options.topic {
                    // Partitions dealt round-robin to the connections; each read from its log start.
                    let mine = Array(stride(from: worker, to: options.partitions, by: options.connections))
                    guard !mine.isEmpty else { continue }
                    group.addTask {
                        let transport = try makeTransport(options)
                        var offsets = [Int: UInt64]()
                        var idle = 0
                        while keepGoing(deadline: deadline, remaining: options.count - consumed.value), idle < mine.count {
                            for partition in mine {
                                let begin = monotonicMicroseconds()
                                let (values, next) = try await transport.fetch(topic, partition: partition, offset: offsets[partition, default: 0],
                                                                               max: min(options.batch, 1000), waitTime: 0)
                                offsets[partition] = next
                                if values.isEmpty {
                                    idle += 1
                                    continue
                                }
                                idle = 0
                                consumed.add(values.count)
                                recorder.record(microseconds: monotonicMicroseconds() - begin, count: values.count, size: values[0].count)
                            }
                            if deadline != nil && idle >= mine.count { idle = 0; try await Task.sleep(for: .milliseconds(10)) }
                        }
                        await transport.close()
                    }
                    continue
                }
                let sequentialAcks = self.sequentialAcks
                group.addTask {
                    let transport = try makeTransport(options)
                    // With --count the queue was filled beforehand: a worker that finds it empty (the
                    // rest is in flight with the others) stops at once instead of long-polling, so
                    // the run's time has no idle tail. With --duration it long-polls for new messages.
                    let waitTime = deadline == nil ? 0 : 1
                    // The acknowledgement of one batch overlaps the receive of the next (at most one
                    // of each in flight per connection), as a consumer with prefetch does; the round's
                    // latency runs from its receive to its ack's answer.
                    var pendingAck: Task<Void, any Error>?
                    while keepGoing(deadline: deadline, remaining: options.count - received.value) {
                        let begin = monotonicMicroseconds()
                        let messages = try await transport.receive(from: options.queue, max: min(options.batch, 1000), waitTime: waitTime)
                        if messages.isEmpty {
                            if deadline == nil { break }
                            continue
                        }
                        received.add(messages.count)
                        try await pendingAck?.value
                        let handles = messages.map(\.handle), count = messages.count, size = messages[0].body.count
                        let ack = Task {
                            try await transport.acknowledge(handles, on: options.queue)
                            consumed.add(count)
                            recorder.record(microseconds: monotonicMicroseconds() - begin, count: count, size: size)
                        }
                        if sequentialAcks { try await ack.value } else { pendingAck = ack }
                    }
                    try await pendingAck?.value
                    await transport.close()
                }
            }
            try await group.waitForAll()
        }
        ticker.cancel()
        if !options.quiet { FileHandle.standardError.write(Data("\n".utf8)) }
        BenchResult(command: "consume", transport: options.isHTTP ? "http" : "binary", recorder: recorder,
                    messageSize: options.messageSize, seconds: Double(monotonicMicroseconds() - start) / 1e6).print(json: options.json)
    }
}

struct EndToEnd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "end-to-end",
        abstract: "Producers at --rate and long-polling consumers; latency from intended send time to delivery.")
    @OptionGroup var options: LoadOptions

    @Flag(help: "Acknowledge each received batch while receiving the next (one acknowledgement in flight per consumer, as SQS's buffered asynchronous client and Kafka's asynchronous commits do) instead of before receiving again.")
    var asyncAcknowledgements = false

    func validate() throws {
        guard options.topic == nil else { throw ValidationError("end-to-end measures queues; --topic is for produce and consume") }
    }

    func run() async throws {
        let setup = try makeTransport(options)
        try await setup.createQueue(options.queue)
        _ = try? await setup.receive(from: options.queue, max: 1, waitTime: 0)
        await setup.close()
        let recorder = LatencyRecorder()
        let sent = LatencyRecorder()
        let start = monotonicMicroseconds()
        let rate: Double = options.rate ?? 10_000
        let total: Int = options.duration.map { (seconds: Double) -> Int in Int((seconds * rate).rounded()) } ?? options.count
        let ticker = progress("end-to-end", recorder: recorder, start: start, quiet: options.quiet)
        let delivered = Counter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<options.connections {
                group.addTask {
                    let transport = try makeTransport(options)
                    var remaining = share(total, worker, options.connections)
                    var pacer = Pacer(rate: rate / Double(options.connections), start: start)
                    while remaining > 0 {
                        let count = min(options.batch, remaining)
                        let intended = await pacer.wait(count: count)
                        let bodies = (0..<count).map { _ in benchBody(size: options.messageSize, stamp: intended) }
                        try await transport.send(bodies, to: options.queue)
                        sent.record(microseconds: monotonicMicroseconds() - intended, count: count, size: options.messageSize)
                        remaining -= count
                    }
                    await transport.close()
                }
                group.addTask { [asyncAcknowledgements] in
                    let transport = try makeTransport(options)
                    var acknowledging: Task<Void, any Error>?
                    while delivered.value < total {
                        let messages = try await transport.receive(from: options.queue, max: 1000, waitTime: 1)
                        let now = monotonicMicroseconds()
                        for message in messages {
                            if let stamp = stampOf(message.body), now >= stamp {
                                recorder.record(microseconds: now - stamp, count: 1, size: options.messageSize)
                            }
                        }
                        delivered.add(messages.count)
                        guard !messages.isEmpty else { continue }
                        let handles = messages.map(\.handle)
                        if asyncAcknowledgements {
                            try await acknowledging?.value
                            acknowledging = Task { try await transport.acknowledge(handles, on: options.queue) }
                        } else {
                            try await transport.acknowledge(handles, on: options.queue)
                        }
                    }
                    try await acknowledging?.value
                    await transport.close()
                }
            }
            try await group.waitForAll()
        }
        ticker.cancel()
        if !options.quiet { FileHandle.standardError.write(Data("\n".utf8)) }
        var result = BenchResult(command: "end-to-end", transport: options.isHTTP ? "http" : "binary", recorder: recorder,
                                 messageSize: options.messageSize, seconds: Double(monotonicMicroseconds() - start) / 1e6)
        result.sendLatencyMicroseconds = BenchResult.percentiles(sent)
        result.print(json: options.json)
    }
}

/// Whether a worker continues: until `deadline` (monotonic µs) when given, else while messages remain.
func keepGoing(deadline: UInt64?, remaining: Int) -> Bool {
    if let deadline { return monotonicMicroseconds() < deadline }
    return remaining > 0
}

/// A shared message counter.
final class Counter: Sendable {
    private let atomic = Atomic<Int>(0)
    var value: Int { atomic.load(ordering: .relaxed) }
    func add(_ count: Int) { atomic.add(count, ordering: .relaxed) }
}
