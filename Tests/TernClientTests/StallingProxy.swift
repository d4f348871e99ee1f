import NIOCore
import NIOPosix
import Synchronization
import TernCore
import TernWire

/// A frame-level TCP proxy in front of a broker that can stop answering: while ``stalling``
/// is on, it forwards `ApiVersions` (so connections open normally) and swallows every other
/// request, as a broker that accepted the connection and then hung would. With ``Flags/hidden``
/// it plays an older broker: those APIs are missing from its `ApiVersions` answer, and a
/// request for one is answered `UnsupportedVersion` and the connection closed.
final class StallingProxy: Sendable {
    final class Flags: Sendable {
        private let state = Mutex((stalling: false, swallowed: 0))
        private let hiddenAPIs = Mutex<(keys: Set<UInt16>, asked: Int)>(([], 0))
        /// The APIs the proxy's broker pretends not to know.
        var hidden: Set<UInt16> {
            get { hiddenAPIs.withLock { $0.keys } }
            set { hiddenAPIs.withLock { $0.keys = newValue } }
        }
        /// Requests for hidden APIs received so far.
        var hiddenRequests: Int { hiddenAPIs.withLock { $0.asked } }
        func isHidden(_ frame: WireFrame) -> Bool {
            hiddenAPIs.withLock { state in
                guard state.keys.contains(frame.apiKey) else { return false }
                state.asked += 1
                return true
            }
        }
        var stalling: Bool {
            get { state.withLock { $0.stalling } }
            set { state.withLock { $0.stalling = newValue } }
        }
        /// Requests swallowed so far.
        var swallowed: Int { state.withLock { $0.swallowed } }
        /// Whether to swallow `frame` (counting it when so).
        func swallow(_ frame: WireFrame) -> Bool {
            state.withLock { state in
                guard state.stalling, frame.apiKey != WireAPI.apiVersions.rawValue else { return false }
                state.swallowed += 1
                return true
            }
        }
    }

    let flags: Flags
    let port: Int
    private let serverChannel: any Channel
    private let task: Task<Void, any Error>

    init(upstreamPort: Int) async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0) { child in
                child.eventLoop.makeCompletedFuture { try Self.framed(child) }
            }
        serverChannel = server.channel
        port = server.channel.localAddress?.port ?? 0
        let flags = Flags()
        self.flags = flags
        task = Task {
            try await server.executeThenClose { inbound in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await connection in inbound {
                        group.addTask { _ = try? await Self.relay(connection, upstreamPort: upstreamPort, flags: flags) }
                    }
                }
            }
        }
    }

    /// Stops accepting and relaying.
    func shutdown() async {
        task.cancel()
        try? await serverChannel.close()
        _ = await task.result
    }

    private static func framed(_ channel: any Channel) throws -> NIOAsyncChannel<WireFrame, WireFrame> {
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WireFrameDecoder()))
        try channel.pipeline.syncOperations.addHandler(WireFrameWriter())
        return try NIOAsyncChannel<WireFrame, WireFrame>(wrappingChannelSynchronously: channel)
    }

    private static func relay(_ downstream: NIOAsyncChannel<WireFrame, WireFrame>, upstreamPort: Int, flags: Flags) async throws {
        let upstream = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: upstreamPort) { channel in
                channel.eventLoop.makeCompletedFuture { try Self.framed(channel) }
            }
        try await downstream.executeThenClose { downInbound, downOutbound in
            try await upstream.executeThenClose { upInbound, upOutbound in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for try await frame in downInbound where !flags.swallow(frame) {
                            if flags.isHidden(frame) {
                                // What a broker without the API does: UnsupportedVersion, then close.
                                try await downOutbound.write(WireResponse.error(TernError(.unsupportedVersion, "unknown API key \(frame.apiKey)"))
                                    .frame(apiKey: frame.apiKey, correlationID: frame.correlationID))
                                return
                            }
                            try await upOutbound.write(frame)
                        }
                    }
                    group.addTask {
                        for try await frame in upInbound {
                            let hidden = flags.hidden
                            if frame.apiKey == WireAPI.apiVersions.rawValue, !hidden.isEmpty,
                               case .apiVersions(let broker, let apis)? = try? WireResponse(decoding: frame) {
                                try await downOutbound.write(WireResponse.apiVersions(broker: broker, apis: apis.filter { !hidden.contains($0.apiKey) })
                                    .frame(apiKey: frame.apiKey, correlationID: frame.correlationID))
                                continue
                            }
                            try await downOutbound.write(frame)
                        }
                    }
                    // Either side closed: close both.
                    _ = try await group.next()
                    group.cancelAll()
                }
            }
        }
    }
}
