import ArgumentParser
import Foundation

/// `tern queue …`: create, list, describe, delete, purge and redrive queues.
struct QueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Manage queues.",
        subcommands: [Create.self, List.self, Describe.self, Delete.self, Purge.self, Redrive.self]
    )
}

extension QueueCommand {
    /// `tern queue create NAME [attributes]`: create or update the queue.
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a queue, or update the given attributes of an existing one.",
            discussion: "Attributes not given keep their current value (their default for a new queue). "
                + "A name ending in .fifo creates a FIFO queue."
        )

        @OptionGroup var options: ServerOptions

        @Argument(help: "Queue name: 1–80 characters of A–Z a–z 0–9 _ - (plus a .fifo suffix).")
        var name: String

        @Option(help: ArgumentHelp("Seconds a received message stays invisible (0–43200; default 30).", valueName: "seconds"))
        var visibilityTimeout: Int?

        @Option(help: ArgumentHelp("Seconds a message is kept (60–1209600; default 604800).", valueName: "seconds"))
        var retention: Int?

        @Option(help: ArgumentHelp("Largest body in UTF-8 bytes (1–16777216; default 1048576).", valueName: "bytes"))
        var maxMessageBytes: Int?

        @Option(help: ArgumentHelp("Default delay of new messages in seconds (default 0).", valueName: "seconds"))
        var delay: Int?

        @Option(help: ArgumentHelp("Deliveries before a message moves to the dead-letter queue (1–1000).", valueName: "count"))
        var maxReceiveCount: Int?

        @Option(help: ArgumentHelp("Dead-letter queue (must exist); set together with --max-receive-count.", valueName: "queue"))
        var deadLetterQueue: String?

        @Flag(help: "Make a FIFO queue (implied by a name ending in .fifo).")
        var fifo = false

        @Option(help: ArgumentHelp("Most messages the queue holds (default unlimited).", valueName: "count"))
        var maxMessages: Int?

        @Option(help: ArgumentHelp("Most body bytes the queue holds (default unlimited).", valueName: "bytes"))
        var maxBytes: Int?

        func validate() throws {
            if (maxReceiveCount == nil) != (deadLetterQueue == nil) {
                throw ValidationError("--max-receive-count and --dead-letter-queue go together.")
            }
        }

        func run() async throws {
            var attributes = API.QueueAttributes()
            attributes.visibilityTimeout = visibilityTimeout
            attributes.retention = retention
            attributes.maxMessageBytes = maxMessageBytes
            attributes.delay = delay
            attributes.maxReceiveCount = maxReceiveCount
            attributes.deadLetterQueue = deadLetterQueue
            if fifo || name.hasSuffix(".fifo") { attributes.fifo = true }
            attributes.maxMessages = maxMessages
            attributes.maxBytes = maxBytes
            let created = try await options.run { client in try await client.createQueue(name, attributes: attributes) }
            print(created ? "created \(name)" : "updated \(name)")
        }
    }

    /// `tern queue list`: every queue as a table (HTTP: `GET /queues`; binary: `ListQueues`).
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List queues with their message counts.")

        @OptionGroup var options: ServerOptions

        func run() async throws {
            let queues = try await options.run { client in try await client.listQueues() }
            var rows = [["NAME", "READY", "IN_FLIGHT", "DELAYED", "OLDEST"]]
            for queue in queues.sorted(by: { $0.name < $1.name }) {
                rows.append([
                    queue.name, String(queue.messages.ready), String(queue.messages.inFlight),
                    String(queue.messages.delayed), queue.oldestMessageAge.map(Self.age) ?? "-",
                ])
            }
            let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
            for row in rows {
                var line = ""
                for (column, cell) in row.enumerated() {
                    let padding = String(repeating: " ", count: widths[column] - cell.count)
                    // Name left-aligned, numbers right-aligned.
                    if column == 0 {
                        line += cell + padding
                    } else {
                        line += "  " + padding + cell
                    }
                }
                while line.hasSuffix(" ") { line.removeLast() }
                print(line)
            }
        }

        /// `seconds` as `42s`, `3m12s`, `5h3m` or `2d4h`.
        static func age(_ seconds: Double) -> String {
            let whole = Int(seconds.rounded(.down))
            if whole < 60 { return "\(whole)s" }
            if whole < 3600 { return "\(whole / 60)m\(whole % 60)s" }
            if whole < 86400 { return "\(whole / 3600)h\(whole % 3600 / 60)m" }
            return "\(whole / 86400)d\(whole % 86400 / 3600)h"
        }
    }

    /// `tern queue describe NAME`: the JSON of `GET /queues/{name}`, pretty-printed (over either transport).
    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a queue's attributes and statistics as JSON.")

        @OptionGroup var options: ServerOptions

        @Argument(help: "Queue name.")
        var name: String

        func run() async throws {
            let description = try await options.run { client in try await client.describeQueue(name) }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(description), as: UTF8.self))
        }
    }

    /// `tern queue delete NAME`: deletes the queue with its messages.
    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a queue and all its messages.")

        @OptionGroup var options: ServerOptions

        @Argument(help: "Queue name.")
        var name: String

        func run() async throws {
            try await options.run { client in try await client.deleteQueue(name) }
            print("deleted \(name)")
        }
    }

    /// `tern queue purge NAME`: removes every message.
    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove every message (ready, delayed and in flight) from a queue."
        )

        @OptionGroup var options: ServerOptions

        @Argument(help: "Queue name.")
        var name: String

        func run() async throws {
            let purged = try await options.run { client in try await client.purgeQueue(name) }
            print("purged \(purged) \(purged == 1 ? "message" : "messages") from \(name)")
        }
    }

    /// `tern queue redrive DLQ`: moves a dead-letter queue's messages back.
    struct Redrive: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move the messages of a dead-letter queue back to the queues they came from."
        )

        @OptionGroup var options: ServerOptions

        @Argument(help: "Dead-letter queue name.")
        var deadLetterQueue: String

        func run() async throws {
            let moved = try await options.run { client in try await client.redrive(deadLetterQueue) }
            print("moved \(moved) \(moved == 1 ? "message" : "messages") from \(deadLetterQueue)")
        }
    }
}
