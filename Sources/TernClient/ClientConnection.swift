import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
import TernCore
import TernWire

/// One TCP connection to a broker: writes request frames and hands each response to the
/// caller waiting for its correlation id. Responses may arrive in any order.
///
/// A background task owns the `NIOAsyncChannel` and reads responses; when the connection ends,
/// every waiting caller fails with ``TernError`` `Unavailable`.
///
/// Request timeouts: each call schedules one timer on the channel's event loop
/// (`EventLoop.scheduleTask`) and cancels it when the call ends, however it ends. A timer is an
/// entry in the event loop's deadline heap, not a Swift task, so nothing can outlive the call:
/// no task per request to leak or to cancel, and no scanning task per connection that would wake
/// while nothing is pending. A timer that fires fails its call with a timeout error and closes
/// the connection: a broker that stopped answering is treated like a lost connection, and the
/// next call of the ``TernClient`` opens a new one.
final class ClientConnection: Sendable {
    private struct State {
        var nextCorrelationID: UInt32 = 1
        var pending: [UInt32: CheckedContinuation<WireFrame, any Error>] = [:]
        /// Requests written and not yet answered.
        var outstanding: Set<UInt32> = []
        /// Responses that arrived before their caller started waiting.
        var early: [UInt32: WireFrame] = [:]
        /// Requests whose timer fired before their caller started waiting, with their error.
        var timedOut: [UInt32: TernError] = [:]
        var closedReason: TernError?
        /// Set by ``closeWhenIdle()``: the connection closes once nothing is outstanding.
        var retiring = false
    }

    private let state = Mutex(State())
    private let outbound: NIOAsyncChannelOutboundWriter<WireFrame>
    private let channel: any Channel
    let address: String

    /// The API keys the broker listed in its `ApiVersions` answer (at version 0).
    private let served = Mutex<Set<UInt16>>([])

    /// Whether the broker serves `api` (as its `ApiVersions` answer said).
    func serves(_ api: WireAPI) -> Bool { served.withLock { $0.contains(api.rawValue) } }

    private init(outbound: NIOAsyncChannelOutboundWriter<WireFrame>, channel: any Channel, address: String) {
        self.outbound = outbound
        self.channel = channel
        self.address = address
    }

    /// Whether the connection can still carry requests.
    var isOpen: Bool { state.withLock { $0.closedReason == nil } }

    /// Connects (over TLS when the settings say so), negotiates versions (`ApiVersions`) and
    /// presents the token (`Authenticate`) when there is one.
    ///
    /// The TCP connect is bounded by ``TernClient/Settings/connectTimeout``; the TLS handshake,
    /// `ApiVersions` and `Authenticate` by ``TernClient/Settings/requestTimeout`` each.
    /// - Throws: ``TernError`` `Unavailable` when the broker cannot be reached, the TLS
    ///   handshake fails or the broker does not answer in time; `UnsupportedVersion` when it
    ///   does not serve an API this client needs; `Unauthorized` for a token the broker does
    ///   not accept.
    static func connect(host: String, port: Int, group: any EventLoopGroup, settings clientSettings: TernClient.Settings) async throws(TernError) -> ClientConnection {
        let address = "\(host):\(port)"
        let settings = clientSettings.wire
        let clientName = clientSettings.clientName
        let sslContext: NIOSSLContext?
        do {
            sslContext = try clientSettings.tls.map { try NIOSSLContext(configuration: $0) }
        } catch {
            throw TernError(.unavailable, "the TLS configuration cannot be used: \(error)")
        }
        let serverName = clientSettings.tlsServerName ?? host
        let asyncChannel: NIOAsyncChannel<WireFrame, WireFrame>
        do {
            asyncChannel = try await ClientBootstrap(group: group)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(TimeAmount(clientSettings.connectTimeout))
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let sslContext {
                            // SNI and the certificate check use the name; an IP address is checked
                            // against the certificate's IP entries instead.
                            let isAddress = serverName.allSatisfy { $0.isNumber || $0 == "." || $0 == ":" }
                            try channel.pipeline.syncOperations.addHandler(
                                try NIOSSLClientHandler(context: sslContext, serverHostname: isAddress ? nil : serverName))
                        }
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WireFrameDecoder(settings: settings)))
                        try channel.pipeline.syncOperations.addHandler(WireFrameWriter())
                        return try NIOAsyncChannel<WireFrame, WireFrame>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw TernError(.unavailable, "cannot connect to ternd at \(address): \(error)")
        }
        let ready = asyncChannel.channel.eventLoop.makePromise(of: NIOAsyncChannelOutboundWriter<WireFrame>.self)
        let box = ConnectionBox()
        Task {
            var reason = TernError(.unavailable, "connection to \(address) closed")
            do {
                try await asyncChannel.executeThenClose { inbound, outbound in
                    ready.succeed(outbound)
                    let connection = await box.connection
                    for try await frame in inbound { connection.deliver(frame) }
                }
            } catch let error as TernError {
                reason = error
            } catch {
                reason = TernError(.unavailable, "connection to \(address) lost: \(error)")
            }
            ready.fail(reason)
            await box.finish(reason)
        }
        let outbound: NIOAsyncChannelOutboundWriter<WireFrame>
        do { outbound = try await ready.futureResult.get() } catch {
            throw (error as? TernError) ?? TernError(.unavailable, "\(error)")
        }
        let connection = ClientConnection(outbound: outbound, channel: asyncChannel.channel, address: address)
        await box.set(connection)
        let timeout = clientSettings.requestTimeout
        let response = try await connection.call(.apiVersions(clientName: clientName), timeout: timeout)
        if case .error(let error) = response {
            // The broker's refusal (for example `Overloaded` past its connection cap).
            connection.close()
            throw error
        }
        guard case .apiVersions(_, let apis) = response else {
            connection.close()
            throw TernError(.invalidFrame, "unexpected answer to ApiVersions: \(response)")
        }
        connection.served.withLock { served in
            for api in apis where api.minVersion <= 0 && api.maxVersion >= 0 { served.insert(api.apiKey) }
        }
        // Every client API must be served; node-to-node APIs and `Metadata` (newer than the
        // rest: a client may talk to a broker from before it) are used only when listed.
        for api in WireAPI.allCases where api != .apiVersions && !api.isNodeToNode && api != .metadata {
            guard let served = apis.first(where: { $0.apiKey == api.rawValue }), served.minVersion <= 0, served.maxVersion >= 0 else {
                connection.close()
                throw TernError(.unsupportedVersion, "the broker at \(address) does not serve \(api) version 0")
            }
        }
        if let token = clientSettings.token {
            let answer = try await connection.call(.authenticate(token: token), timeout: timeout)
            if case .error(let error) = answer {
                connection.close()
                throw error
            }
        }
        return connection
    }

    /// Sends `request` and waits for its response.
    /// - Parameter timeout: how long to wait for the response beyond the long-poll wait the
    ///   request itself asks for (`waitTime` of `Receive`, `Fetch` and `GroupConsume`); nil =
    ///   no limit. The time counts from the start of the call, so it also bounds a write that
    ///   waits for the broker to read.
    /// - Returns: the response; an error response is returned, not thrown.
    /// - Throws: ``TernError`` `Unavailable` when the connection is or becomes closed, or when
    ///   the response does not arrive in time (the connection is then closed too); in both
    ///   cases the request may or may not have been applied. `InvalidFrame` for an undecodable
    ///   response.
    func call(_ request: WireRequest, timeout: Duration?) async throws(TernError) -> WireResponse {
        let correlationID: UInt32 = try state.withLock { state throws(TernError) in
            if let reason = state.closedReason { throw reason }
            let id = state.nextCorrelationID
            state.nextCorrelationID = id == UInt32.max ? 1 : id + 1
            state.outstanding.insert(id)
            return id
        }
        let timer: Scheduled<Void>? = timeout.map { timeout in
            let limit: Duration = timeout + request.longPollWait
            return channel.eventLoop.scheduleTask(in: TimeAmount(limit)) { [self] in
                // Built only when the timer fires: every request schedules one.
                let error = TernError(.unavailable, "the request to \(address) timed out after \(limit.secondsDescription) s; it may or may not have been applied")
                self.timeOut(correlationID, error)
            }
        }
        defer { timer?.cancel() }
        do {
            try await outbound.write(request.frame(correlationID: correlationID))
        } catch {
            let reason = state.withLock { $0.timedOut.removeValue(forKey: correlationID) }
                ?? TernError(.unavailable, "writing to \(address) failed: \(error)")
            fail(reason)
            throw reason
        }
        let frame: WireFrame
        do {
            frame = try await withCheckedThrowingContinuation { continuation in
                let immediate: Result<WireFrame, TernError>? = state.withLock { state in
                    if let early = state.early.removeValue(forKey: correlationID) {
                        state.outstanding.remove(correlationID)
                        if state.retiring && state.outstanding.isEmpty { closeSoon() }
                        return .success(early)
                    }
                    if let timedOut = state.timedOut.removeValue(forKey: correlationID) { return .failure(timedOut) }
                    if let reason = state.closedReason { return .failure(reason) }
                    state.pending[correlationID] = continuation
                    return nil
                }
                if let immediate { continuation.resume(with: immediate.mapError { $0 as any Error }) }
            }
        } catch let error as TernError {
            throw error
        } catch {
            throw TernError(.unavailable, "\(error)")
        }
        return try WireResponse(decoding: frame)
    }

    /// The timer of request `correlationID` fired: unless its response already arrived, fails it
    /// with `error`, forgets it (a late response is dropped) and closes the connection.
    private func timeOut(_ correlationID: UInt32, _ error: TernError) {
        let closing = TernError(.unavailable, "closed the connection to \(address): a request got no answer in time")
        let (expired, continuation) = state.withLock { state -> (Bool, CheckedContinuation<WireFrame, any Error>?) in
            // Answered (the caller may not have picked up an early response yet), or already failed.
            guard state.closedReason == nil, state.early[correlationID] == nil,
                  state.outstanding.remove(correlationID) != nil else { return (false, nil) }
            // Closed in the same step, so that no call can pick this connection once the caller
            // has its error (the Connector opens a new one for the next call).
            state.closedReason = closing
            guard let continuation = state.pending.removeValue(forKey: correlationID) else {
                // The caller is still writing or about to wait: it finds the error there.
                state.timedOut[correlationID] = error
                return (true, nil)
            }
            return (true, continuation)
        }
        guard expired else { return }
        fail(closing)
        continuation?.resume(throwing: error)
    }

    func deliver(_ frame: WireFrame) {
        let (continuation, idle) = state.withLock { state -> (CheckedContinuation<WireFrame, any Error>?, Bool) in
            if let continuation = state.pending.removeValue(forKey: frame.correlationID) {
                state.outstanding.remove(frame.correlationID)
                return (continuation, state.retiring && state.outstanding.isEmpty)
            }
            if state.outstanding.contains(frame.correlationID) { state.early[frame.correlationID] = frame }
            return (nil, false)
        }
        if let continuation {
            continuation.resume(returning: frame)
            if idle { closeSoon() }
        } else if frame.correlationID == 0, let response = try? WireResponse(decoding: frame), case .error(let error) = response {
            fail(error)
        }
    }

    func fail(_ reason: TernError) {
        let waiting = state.withLock { state -> [CheckedContinuation<WireFrame, any Error>] in
            if state.closedReason == nil { state.closedReason = reason }
            defer {
                state.pending = [:]
                state.outstanding = []
                state.early = [:]
                // `timedOut` stays: its callers have not read their error yet.
            }
            return Array(state.pending.values)
        }
        for continuation in waiting { continuation.resume(throwing: reason) }
        channel.close(promise: nil)
    }

    func close() {
        fail(TernError(.unavailable, "the client closed the connection"))
    }

    /// Closes the connection once every request written on it is answered (now, when none
    /// is): the client moved its calls to another node, and the calls still in flight here
    /// get their answers.
    func closeWhenIdle() {
        let idle = state.withLock { state in
            state.retiring = true
            return state.outstanding.isEmpty
        }
        if idle { close() }
    }

    /// Closes the connection off the current call's path (never while holding `state`).
    private func closeSoon() {
        channel.eventLoop.execute { [self] in close() }
    }
}

extension WireRequest {
    /// How long the broker may hold this request by design before answering: the `waitTime`
    /// of a long poll, zero for every other request.
    var longPollWait: Duration {
        switch self {
        case .receive(_, _, _, let waitTime, _): .seconds(Int64(waitTime))
        case .fetch(_, _, _, _, let waitTime): .seconds(Int64(waitTime))
        case .groupConsume(_, _, _, _, let waitTime): .seconds(Int64(waitTime))
        default: .zero
        }
    }
}

extension Duration {
    /// Seconds with up to three decimals, for messages: "30", "0.5".
    var secondsDescription: String {
        let milliseconds: Int64 = components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
        if milliseconds % 1000 == 0 { return "\(milliseconds / 1000)" }
        let fraction = String(milliseconds % 1000)
        var digits = Substring(String(repeating: "0", count: 3 - fraction.count) + fraction)
        while digits.hasSuffix("0") { digits = digits.dropLast() }
        return "\(milliseconds / 1000).\(digits)"
    }
}

/// Hands the connection to its reader task once it exists.
private actor ConnectionBox {
    private var value: ClientConnection?
    private var waiters: [CheckedContinuation<ClientConnection, Never>] = []
    private var finished: TernError?

    func set(_ connection: ClientConnection) {
        value = connection
        for waiter in waiters { waiter.resume(returning: connection) }
        waiters = []
        if let finished { connection.fail(finished) }
    }

    /// Called when the reader ends: fails the connection (now or once it is set).
    func finish(_ reason: TernError) {
        finished = reason
        value?.fail(reason)
    }

    var connection: ClientConnection {
        get async {
            if let value { return value }
            return await withCheckedContinuation { waiters.append($0) }
        }
    }
}
