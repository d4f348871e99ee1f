import Logging
import TernBroker
import TernCore
import TernStorage
import TernTestKit

/// A broker on a temporary data directory with a manual clock; `reopen()` simulates a restart.
final class BrokerFixture: @unchecked Sendable {
    let directory: TemporaryDirectory
    let clock = ManualClock()
    let settings: Storage.Settings
    private(set) var storage: Storage
    private(set) var broker: Broker

    let commandLogBytes: Int

    init(settings: Storage.Settings = BrokerFixture.fastSettings, commandLogBytes: Int = 0) async throws {
        directory = try TemporaryDirectory(prefix: "tern-broker")
        self.settings = settings
        self.commandLogBytes = commandLogBytes
        storage = try Storage(directory: directory.path, databases: Broker.databaseNames, settings: settings, logger: Self.logger)
        broker = try await Broker.open(storage: storage, clock: clock, commandLogBytes: commandLogBytes, logger: Self.logger)
    }

    static let logger = Logger(label: "test")

    static var fastSettings: Storage.Settings {
        var settings = Storage.Settings()
        settings.durable = false
        settings.maxMapBytes = 256 << 20
        return settings
    }

    /// Closes the environment and opens it again (as after a restart), at the clock's time.
    func reopen() async throws {
        storage.close()
        storage = try Storage(directory: directory.path, databases: Broker.databaseNames, settings: settings, logger: Self.logger)
        broker = try await Broker.open(storage: storage, clock: clock, commandLogBytes: commandLogBytes, logger: Self.logger)
    }

    deinit {
        storage.close()
        directory.remove()
    }

    @discardableResult
    func createQueue(_ name: String, _ configure: (inout QueueAttributes.Patch) -> Void = { _ in }) async throws -> QueueInfo {
        var patch = QueueAttributes.Patch()
        configure(&patch)
        return try await broker.createOrUpdateQueue(try QueueName(name), patch: patch).queue
    }

    @discardableResult
    func send(_ queue: String, _ bodies: [String], priority: UInt8 = 0, delay: Int? = nil) async throws -> [SentMessage] {
        try await broker.send(try QueueName(queue), bodies.map { OutgoingMessage(body: Array($0.utf8), priority: priority, delay: delay) })
    }

    func receive(_ queue: String, max: Int = 10, visibilityTimeout: Int? = nil, autoAck: Bool = false) async throws -> [ReceivedMessage] {
        try await broker.receive(try QueueName(queue), maxMessages: max, visibilityTimeout: visibilityTimeout, autoAcknowledge: autoAck)
    }

    func counts(_ queue: String) throws -> QueueCounts {
        try broker.describeQueue(try QueueName(queue)).counts
    }
}

extension ReceivedMessage {
    var text: String { String(decoding: body, as: UTF8.self) }
}
