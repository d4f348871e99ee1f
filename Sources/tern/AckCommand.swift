import ArgumentParser

/// `tern ack QUEUE HANDLE…`: acknowledges each handle (HTTP: `DELETE /queues/{name}/messages/{receipt_handle}`;
/// binary: `Acknowledge`).
struct Ack: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Acknowledge (delete) received messages by their receipt handles."
    )

    @OptionGroup var options: ServerOptions

    @Argument(help: ArgumentHelp("The queue.", valueName: "queue"))
    var queue: String

    @Argument(help: ArgumentHelp("Receipt handles, as printed by `tern receive --show-handles`.", valueName: "handle"))
    var handles: [String]

    func validate() throws {
        if handles.isEmpty { throw ValidationError("Give at least one receipt handle.") }
    }

    func run() async throws {
        try await options.run { client in try await client.acknowledge(handles, on: queue) }
        print("acknowledged \(handles.count) \(handles.count == 1 ? "message" : "messages")")
    }
}

/// `tern visibility QUEUE HANDLE SECONDS`: changes a delivery's visibility timeout (HTTP:
/// `PATCH /queues/{name}/messages/{receipt_handle}`; binary: `ChangeVisibility`).
struct ChangeVisibility: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "visibility",
        abstract: "Change how long a received message stays invisible (0 releases it now)."
    )

    @OptionGroup var options: ServerOptions

    @Argument(help: ArgumentHelp("The queue.", valueName: "queue"))
    var queue: String

    @Argument(help: ArgumentHelp("The receipt handle of the delivery.", valueName: "handle"))
    var handle: String

    @Argument(help: ArgumentHelp("New visibility timeout in seconds from now (0–43200).", valueName: "seconds"))
    var seconds: Int

    func run() async throws {
        try await options.run { client in try await client.changeVisibility(handle, on: queue, to: seconds) }
        print("visible again in \(seconds) \(seconds == 1 ? "second" : "seconds")")
    }
}
