import Logging
public import NIOCore
import Synchronization
import TernCore

/// The cap on open client connections, shared by the HTTP and binary listeners (one process,
/// one descriptor table).
///
/// Up to ``maxConnections`` connections are served normally. The next ``reserve`` connections
/// are accepted as *reserve* connections: over HTTP they may only call `GET /health`,
/// `GET /metrics`, `GET /alerts` and admin requests (everything else is answered `503` with
/// `Retry-After`); over the binary protocol they may make the `ApiVersions` handshake and
/// become a peer node (`PeerHello`), and any other request is answered `Overloaded` and the
/// connection closed. Past both, a new
/// connection is closed as soon as it is accepted, so that the listen backlog never fills and
/// the reserve stays usable (nginx's `worker_connections`, HAProxy's `maxconn`, where the
/// excess waits in the backlog, do not keep `/health` answering).
public final class ConnectionLimiter: Sendable {
    /// What an accepted connection may do.
    public enum Admission: Sendable, Equatable {
        case normal
        case reserve
        case refused
    }

    /// Connections served normally. Default 10,000.
    public let maxConnections: Int
    /// Connections past ``maxConnections`` kept for health checks and operators. Default 64.
    public let reserve: Int
    private let open = Atomic<Int>(0)

    public init(maxConnections: Int = 10_000, reserve: Int = 64) {
        precondition(maxConnections >= 1 && reserve >= 0, "maxConnections must be at least 1, reserve at least 0")
        self.maxConnections = maxConnections
        self.reserve = reserve
    }

    /// Connections open now (normal and reserve).
    public var openConnections: Int { open.load(ordering: .relaxed) }

    /// Counts a new connection; a refused one is not counted (close it without calling
    /// ``closed()``).
    public func opened() -> Admission {
        let count = open.wrappingAdd(1, ordering: .acquiringAndReleasing).newValue
        if count <= maxConnections { return .normal }
        if count <= maxConnections + reserve { return .reserve }
        open.subtract(1, ordering: .acquiringAndReleasing)
        return .refused
    }

    /// Uncounts a connection that ``opened()`` admitted.
    public func closed() { open.subtract(1, ordering: .acquiringAndReleasing) }
}

/// One connection's place in a ``ConnectionLimiter``, given back exactly once: when the
/// connection closes, or earlier when it turns out to be a peer node (a verified `PeerHello`),
/// so that clients cannot starve node-to-node traffic (decision 102).
final class ConnectionSlot: Sendable {
    let limiter: ConnectionLimiter
    let admission: ConnectionLimiter.Admission
    private let released = Atomic<Bool>(false)

    /// Takes a place in `limiter` (a refused connection holds none).
    init(limiter: ConnectionLimiter) {
        self.limiter = limiter
        admission = limiter.opened()
        if admission == .refused { released.store(true, ordering: .relaxed) }
    }

    /// Whether the place was given back (or never taken).
    var isReleased: Bool { released.load(ordering: .acquiring) }

    /// Gives the place back; later calls do nothing.
    func release() {
        if !released.exchange(true, ordering: .acquiringAndReleasing) { limiter.closed() }
    }
}

/// The first handler of every client connection: counts it in a ``ConnectionLimiter`` and
/// closes it when refused. ``admission`` tells later handlers whether it is a reserve one.
final class ConnectionLimitHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    let limiter: ConnectionLimiter
    /// The connection's place, taken when the handler is added.
    private(set) var slot: ConnectionSlot?
    var admission: ConnectionLimiter.Admission? { slot?.admission }
    let logger: Logger

    init(limiter: ConnectionLimiter, logger: Logger) {
        self.limiter = limiter
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let slot = ConnectionSlot(limiter: limiter)
        self.slot = slot
        if slot.admission == .refused {
            logger.debug("connection refused: too many open connections", metadata: [
                "tern.open_connections": "\(limiter.openConnections)", "tern.max_connections": "\(limiter.maxConnections)",
            ])
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        slot?.release()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard admission != .refused else { return }
        context.fireChannelRead(data)
    }
}

/// One global budget for the bytes of request bodies and binary frames being received (read
/// from sockets but not yet complete), so that slow or stalled uploads cannot fill memory.
///
/// HTTP bodies reserve their bytes as they arrive; past the budget the request is answered
/// `503 Unavailable` with `Retry-After`. A binary frame reserves its declared size when its
/// size field arrives; past the budget its connection stops being read until bytes are
/// released (back-pressure). A reservation always succeeds when nothing is reserved, so one
/// request as large as the frame or body limit can always proceed.
public final class RequestBytesBudget: Sendable {
    /// The budget, in bytes. Default 268,435,456 (256 MiB).
    public let limit: Int
    private let used = Atomic<Int>(0)

    public init(limit: Int = 256 << 20) {
        precondition(limit >= 1, "the request-bytes budget must be positive")
        self.limit = limit
    }

    /// Bytes reserved now.
    public var reserved: Int { used.load(ordering: .relaxed) }

    /// Reserves `bytes` if they fit (or if nothing is reserved).
    /// - Returns: whether the bytes were reserved; release them with ``release(_:)``.
    public func tryReserve(_ bytes: Int) -> Bool {
        var current = used.load(ordering: .relaxed)
        while true {
            guard current == 0 || current + bytes <= limit else { return false }
            let (exchanged, original) = used.compareExchange(expected: current, desired: current + bytes, ordering: .acquiringAndReleasing)
            if exchanged { return true }
            current = original
        }
    }

    /// Returns `bytes` reserved by ``tryReserve(_:)``.
    public func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        used.subtract(bytes, ordering: .acquiringAndReleasing)
    }
}

/// Before the frame decoder of a binary connection: reserves each frame's declared size in the
/// ``RequestBytesBudget`` when its 4-byte size field arrives and releases it when the frame's
/// last byte has arrived. While a reservation cannot be made the connection is not read
/// (outbound `read` events are held back) and the reservation is retried every 10 ms.
final class FrameBudgetHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    let budget: RequestBytesBudget
    let maxFrameBytes: Int
    private var sizeField: [UInt8] = []
    /// Bytes of the current frame still to arrive (after its size field).
    private var remaining = 0
    /// Bytes reserved for the current frame.
    private var reserved = 0
    /// A frame size waiting for room in the budget.
    private var waiting: Int?
    private var heldRead = false
    private var retry: Scheduled<Void>?

    init(budget: RequestBytesBudget, maxFrameBytes: Int) {
        self.budget = budget
        self.maxFrameBytes = maxFrameBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        var offset = 0
        let count = buffer.readableBytes
        while offset < count {
            if remaining > 0 {
                let taken = min(remaining, count - offset)
                remaining -= taken
                offset += taken
                if remaining == 0 { finishFrame() }
                continue
            }
            sizeField.append(buffer.getInteger(at: buffer.readerIndex + offset, as: UInt8.self)!)
            offset += 1
            if sizeField.count == 4 {
                let size = sizeField.reduce(0) { $0 << 8 | Int($1) }
                sizeField.removeAll(keepingCapacity: true)
                remaining = size
                // Sizes the decoder refuses close the connection; nothing to reserve for them.
                if size > 0 && size <= maxFrameBytes {
                    if budget.tryReserve(size) { reserved = size } else { waiting = size }
                }
                if remaining == 0 { finishFrame() }
            }
        }
        context.fireChannelRead(data)
    }

    private func finishFrame() {
        budget.release(reserved)
        reserved = 0
        // A frame that arrived in full while waiting no longer needs room.
        waiting = nil
    }

    func read(context: ChannelHandlerContext) {
        guard waiting == nil else {
            heldRead = true
            scheduleRetry(context: context)
            return
        }
        context.read()
    }

    private func scheduleRetry(context: ChannelHandlerContext) {
        guard retry == nil else { return }
        retry = context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(10)) { [self] in
            retry = nil
            if let size = waiting {
                guard budget.tryReserve(size) else {
                    scheduleRetry(context: context)
                    return
                }
                reserved = size
                waiting = nil
            }
            if heldRead {
                heldRead = false
                context.read()
            }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        retry?.cancel()
        retry = nil
        budget.release(reserved)
        reserved = 0
        waiting = nil
    }
}

/// Logs a message at `debug` every time and at `warning` at most once per interval per peer
/// (by address, without the port), so that a client sending garbage cannot flood the log.
final class RateLimitedWarning: Sendable {
    private let last = Mutex<[String: ContinuousClock.Instant]>([:])
    let interval: Duration
    /// The most peers remembered; older entries are dropped past it.
    let maxPeers = 4096

    init(interval: Duration = .seconds(60)) { self.interval = interval }

    /// Logs `message` for `peer` at `debug`, and at `warning` when none was logged for that
    /// peer within ``interval``.
    func log(_ message: Logger.Message, peer: String, metadata: Logger.Metadata, logger: Logger) {
        let now = ContinuousClock.now
        let warn = last.withLock { seen -> Bool in
            if let previous = seen[peer], now - previous < interval { return false }
            if seen.count >= maxPeers { seen = seen.filter { now - $0.value < interval } }
            if seen.count >= maxPeers { seen.removeAll() }
            seen[peer] = now
            return true
        }
        var metadata = metadata
        metadata["tern.peer"] = "\(peer)"
        logger.log(level: warn ? .warning : .debug, message, metadata: metadata)
    }
}
