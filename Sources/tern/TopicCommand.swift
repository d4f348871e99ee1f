import ArgumentParser
import Foundation

/// `tern topic …`: create, list and describe topics; produce lines; consume as a group member.
///
/// ```
/// tern topic create logs --partitions 16
/// tern topic produce logs --key web-1 < access.log
/// tern topic consume logs --group indexers --max 1000
/// ```
struct TopicCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topic",
        abstract: "Manage topics, produce to them and consume from them.",
        subcommands: [Create.self, List.self, Describe.self, Produce.self, Consume.self]
    )
}

/// The JSON bodies of the topic calls (field names as in `docs/openapi.yaml`); the binary
/// transport answers in these shapes too.
enum TopicAPI {
    struct Attributes: Codable, Sendable {
        var partitions: Int?
        var retention: Int?
        var maxBytes: Int?

        enum CodingKeys: String, CodingKey {
            case partitions, retention
            case maxBytes = "max_bytes"
        }
    }

    struct Partition: Codable, Sendable {
        var partition: Int
        var logStart: UInt64
        var highWatermark: UInt64
        var bytes: UInt64

        enum CodingKeys: String, CodingKey {
            case partition, bytes
            case logStart = "log_start"
            case highWatermark = "high_watermark"
        }
    }

    struct Description: Codable, Sendable {
        var name: String
        var attributes: Attributes
        var messages: UInt64
        var bytes: UInt64
        var partitions: [Partition]
    }

    struct List: Codable, Sendable {
        var topics: [Description]
    }

    struct Message: Codable, Sendable {
        var key: String?
        var value: String
    }

    struct ProduceRequest: Codable, Sendable {
        var messages: [Message]
    }

    struct Offset: Codable, Sendable {
        var partition: Int
        var offset: UInt64
    }

    struct ProduceResult: Codable, Sendable {
        var offsets: [Offset]
    }

    struct Join: Codable, Sendable {
        var memberID: String
        var generation: Int
        var partitions: [Int]

        enum CodingKeys: String, CodingKey {
            case generation, partitions
            case memberID = "member_id"
        }
    }

    struct Fetched: Codable, Sendable {
        var partition: Int
        var offset: UInt64
        var key: String?
        var value: String
    }

    struct Batch: Codable, Sendable {
        var messages: [Fetched]
        var generation: Int
        var partitions: [Int]
    }

    struct Commit: Codable, Sendable {
        var memberID: String
        var generation: Int
        var offsets: [String: UInt64]

        enum CodingKeys: String, CodingKey {
            case generation, offsets
            case memberID = "member_id"
        }
    }

    struct JoinRequest: Codable, Sendable {
        var sessionTimeout: Int

        enum CodingKeys: String, CodingKey { case sessionTimeout = "session_timeout" }
    }
}

extension TopicCommand {
    /// `tern topic create NAME`: creates the topic or updates its retention and max bytes.
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a topic, or update its retention and max bytes.")

        @OptionGroup var options: ServerOptions

        @Argument(help: "Topic name: 1–80 characters of A–Z a–z 0–9 _ -.")
        var name: String

        @Option(help: ArgumentHelp("Partitions (1–1024; default 1). Fixed at creation.", valueName: "count"))
        var partitions: Int?

        @Option(help: ArgumentHelp("Seconds a message is kept (60–31536000; default 604800).", valueName: "seconds"))
        var retention: Int?

        @Option(help: ArgumentHelp("Stored bytes per partition before the oldest batches are dropped (default unlimited).", valueName: "bytes"))
        var maxBytes: Int?

        func run() async throws {
            let attributes = TopicAPI.Attributes(partitions: partitions, retention: retention, maxBytes: maxBytes)
            let created = try await options.run { client in try await client.createTopic(name, attributes: attributes) }
            print(created ? "created \(name)" : "updated \(name)")
        }
    }

    /// `tern topic list`: every topic as a table.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List topics with their partitions, messages and bytes.")

        @OptionGroup var options: ServerOptions

        func run() async throws {
            let topics = try await options.run { client in try await client.listTopics() }
            print("NAME".padding(toLength: 30, withPad: " ", startingAt: 0) + "PARTITIONS  MESSAGES        BYTES")
            for topic in topics {
                print(topic.name.padding(toLength: 30, withPad: " ", startingAt: 0)
                    + String(topic.partitions.count).padding(toLength: 12, withPad: " ", startingAt: 0)
                    + String(topic.messages).padding(toLength: 16, withPad: " ", startingAt: 0) + String(topic.bytes))
            }
        }
    }

    /// `tern topic describe NAME`: the JSON of `GET /topics/{name}` (over either transport).
    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a topic's attributes and partitions as JSON.")

        @OptionGroup var options: ServerOptions

        @Argument(help: "Topic name.")
        var name: String

        func run() async throws {
            let description = try await options.run { client in try await client.describeTopic(name) }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(description), as: UTF8.self))
        }
    }

    /// `tern topic produce NAME [--key K]`: one message per line of standard input.
    struct Produce: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Produce one message per line of standard input.",
            discussion: """
                Lines are read as raw bytes and split on \\n (a \\r\\n ending is stripped, as Kafka's console producer does); empty lines are \
                skipped. Batches of up to 500 lines go out one after another, so lines with the same key \
                keep their order in their partition.
                """
        )

        @OptionGroup var options: ServerOptions

        @Argument(help: "Topic name.")
        var name: String

        @Option(help: ArgumentHelp("Key of every message (picks the partition, as Kafka's partitioner does).", valueName: "key"))
        var key: String?

        static let batchMessages = 500
        static let batchBytes = 1 << 20

        func run() async throws {
            if StandardInputLines.isTerminal { StandardError.print("reading messages from standard input, one per line; end with Ctrl-D") }
            let topic = name
            let key = self.key
            let sent = try await options.run { client -> Int in
                var lines = StandardInputLines()
                var batch = [TopicAPI.Message]()
                var bytes = 0
                var sent = 0
                func flush() async throws {
                    guard !batch.isEmpty else { return }
                    var backoff = Duration.milliseconds(200)
                    for attempt in 1...5 {
                        do {
                            _ = try await client.produce(batch, to: topic)
                            break
                        } catch let error as ClientError where error.isRetryable && attempt < 5 {
                            try await Task.sleep(for: backoff)
                            backoff *= 2
                        }
                    }
                    sent += batch.count
                    batch.removeAll(keepingCapacity: true)
                    bytes = 0
                }
                while true {
                    // Input paused with a partial batch (`tail -F … | tern topic produce`): send it now.
                    if !batch.isEmpty, !lines.hasBufferedLine,
                       await !StandardInputLines.readable(within: StandardInputLines.lingerMilliseconds) {
                        try await flush()
                    }
                    guard let line = try await lines.next() else { break }
                    if line.bytes.isEmpty { continue }
                    guard let value = String(validating: line.bytes, as: UTF8.self) else {
                        try await flush()
                        throw ClientError.input("line \(line.number) of standard input is not valid UTF-8; the lines before it were produced")
                    }
                    let size = Send.estimatedJSONBytes(of: line.bytes)
                    if batch.count >= Self.batchMessages || bytes + size > Self.batchBytes { try await flush() }
                    batch.append(TopicAPI.Message(key: key, value: value))
                    bytes += size
                }
                try await flush()
                return sent
            }
            print("produced \(sent) \(sent == 1 ? "message" : "messages")")
        }
    }

    /// `tern topic consume NAME --group G`: join, print values one per line, commit, leave.
    struct Consume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Consume as a member of a consumer group, printing one value per line.",
            discussion: """
                Joins the group, consumes from the partitions it is assigned, commits after each batch \
                is written, and leaves when --max messages were printed or a poll of --wait seconds \
                found nothing.
                """
        )

        @OptionGroup var options: ServerOptions

        @Argument(help: "Topic name.")
        var name: String

        @Option(help: ArgumentHelp("Consumer group.", valueName: "group"))
        var group: String

        @Option(help: ArgumentHelp("Stop after this many messages (default: until the topic is drained).", valueName: "count"))
        var max: Int?

        @Option(help: ArgumentHelp("Seconds each poll waits for new messages (0–20; default 1).", valueName: "seconds"))
        var wait = 1

        @Option(help: ArgumentHelp("Session timeout in seconds (1–300; default 10).", valueName: "seconds"))
        var sessionTimeout = 10

        func validate() throws {
            guard (0...20).contains(wait) else { throw ValidationError("--wait must be 0–20 seconds.") }
            if let max, max < 1 { throw ValidationError("--max must be at least 1.") }
        }

        func run() async throws {
            let topic = name
            let group = self.group
            let limit = max
            let wait = self.wait
            let sessionTimeout = self.sessionTimeout
            let printed = try await options.run { client -> Int in
                let joined = try await client.joinGroup(topic: topic, group: group, sessionTimeout: sessionTimeout)
                let member = joined.memberID
                var output = StandardOutput()
                var printed = 0
                // On an error the member is not removed here: it leaves by its session timeout.
                while limit.map({ printed < $0 }) ?? true {
                    let want = Swift.min(1000, limit.map { $0 - printed } ?? 1000)
                    let batch = try await client.consume(topic: topic, group: group, memberID: member, max: want, waitTime: wait)
                    if batch.messages.isEmpty { break }
                    var next = [Int: UInt64]()
                    for message in batch.messages {
                        try output.append(message.value)
                        output.append(byte: 0x0A)
                        next[message.partition] = message.offset + 1
                    }
                    try output.flush()
                    printed += batch.messages.count
                    do {
                        try await client.commitOffsets(next, topic: topic, group: group, memberID: member, generation: batch.generation)
                    } catch ClientError.server(409, _, _) {
                        // The group rebalanced meanwhile: the next owner re-reads what was not committed.
                    }
                }
                try await client.leaveGroup(topic: topic, group: group, memberID: member)
                return printed
            }
            StandardError.print("consumed \(printed) \(printed == 1 ? "message" : "messages")")
        }
    }
}
