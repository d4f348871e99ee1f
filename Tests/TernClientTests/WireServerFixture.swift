import Logging
import NIOCore
import NIOPosix
import TernBroker
import TernClient
import TernCore
import TernServer
import TernStorage
import TernTestKit
import TernWire

/// A broker with the binary-protocol server on a free port of 127.0.0.1, in this process.
final class WireServerFixture: @unchecked Sendable {
    let directory: TemporaryDirectory
    let storage: Storage
    let broker: Broker
    let server: WireServer
    let serverTask: Task<Void, any Error>
    let port: Int

    static let logger = Logger(label: "test")

    /// - Parameter durable: whether commits are synced to disk (slower, like a real broker).
    init(wire: WireSettings = WireSettings(), durable: Bool = false, configure: (inout WireServer.Settings) -> Void = { _ in }) async throws {
        directory = try TemporaryDirectory(prefix: "tern-wire")
        var settings = Storage.Settings()
        settings.durable = durable
        settings.maxMapBytes = 256 << 20
        storage = try Storage(directory: directory.path, databases: Broker.databaseNames, settings: settings, logger: Self.logger)
        broker = try await Broker.open(storage: storage, clock: SystemClock(), logger: Self.logger)
        var serverSettings = WireServer.Settings()
        serverSettings.port = 0
        serverSettings.wire = wire
        configure(&serverSettings)
        let server = WireServer(broker: broker, settings: serverSettings, logger: Self.logger)
        self.server = server
        serverTask = Task { try await server.run() }
        port = await server.boundPort!
    }

    func client(_ configure: (inout TernClient.Settings) -> Void = { _ in }) -> TernClient {
        var settings = TernClient.Settings()
        configure(&settings)
        return TernClient(host: "127.0.0.1", port: port, settings: settings)
    }

    /// Stops the server and closes the storage.
    func shutdown() async {
        serverTask.cancel()
        _ = try? await serverTask.value
        storage.close()
        directory.remove()
    }

    /// Runs `body` with a fresh fixture and shuts it down afterwards, also when `body` throws.
    static func with<T>(durable: Bool = false, configure: (inout WireServer.Settings) -> Void = { _ in },
                        _ body: (WireServerFixture) async throws -> T) async throws -> T {
        let fixture = try await WireServerFixture(durable: durable, configure: configure)
        do {
            let result = try await body(fixture)
            await fixture.shutdown()
            return result
        } catch {
            await fixture.shutdown()
            throw error
        }
    }
}

/// A raw TCP connection that writes bytes and reads frames, for bad-frame tests.
struct RawConnection {
    let channel: NIOAsyncChannel<WireFrame, ByteBuffer>

    static func open(port: Int) async throws -> RawConnection {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WireFrameDecoder()))
                    return try NIOAsyncChannel<WireFrame, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return RawConnection(channel: channel)
    }

    /// Writes `bytes`, then reads every frame until the server closes the connection (or
    /// `limit` frames arrived).
    func exchange(_ bytes: ByteBuffer, closeAfterWriting: Bool = false, limit: Int = 100) async throws -> (frames: [WireFrame], closedByServer: Bool) {
        try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(bytes)
            if closeAfterWriting { outbound.finish() }
            var frames = [WireFrame]()
            var iterator = inbound.makeAsyncIterator()
            while frames.count < limit {
                guard let frame = try await iterator.next() else { return (frames, true) }
                frames.append(frame)
            }
            return (frames, false)
        }
    }
}

extension WireRequest {
    var bytes: ByteBuffer { frame(correlationID: 1).bytes }
}
