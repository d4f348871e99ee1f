public import NIOCore
import Synchronization
import TernCore

/// A frame-size limit that the connection may change while its decoder runs: the server lowers
/// it until a connection has authenticated (``WireFrameDecoder/init(settings:limit:)``).
public final class WireFrameLimit: Sendable {
    private let bytes: Atomic<Int>

    /// - Parameter bytes: the largest accepted frame, size field excluded, in bytes.
    public init(bytes: Int) { self.bytes = Atomic(bytes) }

    /// The current limit, in bytes.
    public var current: Int { bytes.load(ordering: .acquiring) }

    /// Sets the limit to `bytes` (for example the full ``WireSettings/maxFrameBytes`` after `Authenticate`).
    public func set(_ bytes: Int) { self.bytes.store(bytes, ordering: .releasing) }
}

/// Splits a byte stream into ``WireFrame``s, one per call (NIO's single-step decoder).
///
/// The decoder never reads a payload before its whole frame has arrived, so it is fed byte by
/// byte or in batches with the same result. It throws ``TernError`` with
/// ``ErrorCode/frameTooLarge`` for a size above ``WireSettings/maxFrameBytes`` and
/// ``ErrorCode/invalidFrame`` for a size below the header, or for bytes left over at the end of
/// the stream; the caller answers with an error frame and closes the connection.
public struct WireFrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = WireFrame

    public let maxFrameBytes: Int
    /// A lower limit in force for now (the server's limit before authentication); nil = none.
    let limit: WireFrameLimit?

    public init(settings: WireSettings = WireSettings()) {
        self.maxFrameBytes = settings.maxFrameBytes
        self.limit = nil
    }

    /// A decoder whose limit is the smaller of `settings.maxFrameBytes` and `limit.current`,
    /// read at every frame.
    public init(settings: WireSettings, limit: WireFrameLimit) {
        self.maxFrameBytes = settings.maxFrameBytes
        self.limit = limit
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> WireFrame? {
        guard let size = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard Int(size) <= maxFrameBytes else {
            throw TernError(.frameTooLarge, "frame of \(size) bytes exceeds the maximum of \(maxFrameBytes) bytes")
        }
        if let current = limit?.current, Int(size) > current {
            throw TernError(.frameTooLarge, "frame of \(size) bytes exceeds the \(current) bytes allowed before Authenticate")
        }
        guard Int(size) >= WireFrame.headerBytes else {
            throw TernError(.invalidFrame, "frame size \(size) is smaller than the \(WireFrame.headerBytes)-byte header")
        }
        guard buffer.readableBytes >= WireFrame.sizeFieldBytes + Int(size) else { return nil }
        buffer.moveReaderIndex(forwardBy: WireFrame.sizeFieldBytes)
        let apiKey = buffer.readInteger(as: UInt16.self)!
        let apiVersion = buffer.readInteger(as: UInt16.self)!
        let correlationID = buffer.readInteger(as: UInt32.self)!
        let payload = buffer.readSlice(length: Int(size) - WireFrame.headerBytes)!
        return WireFrame(apiKey: apiKey, apiVersion: apiVersion, correlationID: correlationID, payload: payload)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> WireFrame? {
        if let frame = try decode(buffer: &buffer) { return frame }
        if buffer.readableBytes > 0 {
            throw TernError(.invalidFrame, "connection closed in the middle of a frame (\(buffer.readableBytes) bytes left)")
        }
        return nil
    }
}

/// Writes ``WireFrame``s to the byte stream.
public struct WireFrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = WireFrame

    public init() {}

    public func encode(data: WireFrame, out: inout ByteBuffer) throws {
        // One growth to the frame's size, not a doubling (and a copy) per power of two.
        out.reserveCapacity(out.writerIndex + WireFrame.sizeFieldBytes + WireFrame.headerBytes + data.payload.readableBytes)
        data.write(to: &out)
    }
}

/// Writes ``WireFrame``s to the byte stream without keeping a buffer between frames: the
/// encoder of every binary connection (server, client, peer links).
///
/// NIO's `MessageToByteHandler` (with ``WireFrameEncoder``) encodes every frame into one buffer
/// it keeps for the channel's lifetime, and clearing a `ByteBuffer` keeps its capacity: after
/// one 1 MiB response a connection held 1 MiB until it closed (issue 13, decision 120). This
/// handler writes a frame whose payload has at most ``copyLimit`` bytes as one new buffer of
/// exactly the frame's size, and a larger one as a 12-byte header buffer followed by the payload
/// buffer itself (no copy of the payload; both go out in one `writev`). Nothing stays allocated
/// once the write has completed.
public final class WireFrameWriter: ChannelOutboundHandler, RemovableChannelHandler {
    public typealias OutboundIn = WireFrame
    public typealias OutboundOut = ByteBuffer

    /// The largest payload copied behind its header into one buffer, in bytes (16 KiB); larger
    /// payloads are written as they are, after a separate header buffer.
    public static let copyLimit = 16 << 10

    public init() {}

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let buffers = Self.buffers(for: Self.unwrapOutboundIn(data), allocator: context.channel.allocator)
        if let payload = buffers.payload {
            context.write(Self.wrapOutboundOut(buffers.head), promise: nil)
            context.write(Self.wrapOutboundOut(payload), promise: promise)
        } else {
            context.write(Self.wrapOutboundOut(buffers.head), promise: promise)
        }
    }

    /// The buffers `frame` is written as, in order: for a payload of up to ``copyLimit`` bytes,
    /// the whole frame in one buffer of exactly its size (`payload` nil); for a larger one, the
    /// 12-byte size field and header, then the payload buffer itself.
    public static func buffers(for frame: WireFrame, allocator: ByteBufferAllocator) -> (head: ByteBuffer, payload: ByteBuffer?) {
        let headerBytes = WireFrame.sizeFieldBytes + WireFrame.headerBytes
        if frame.payload.readableBytes <= copyLimit {
            var buffer = allocator.buffer(capacity: headerBytes + frame.payload.readableBytes)
            frame.write(to: &buffer)
            return (buffer, nil)
        }
        var header = allocator.buffer(capacity: headerBytes)
        frame.writeHeader(to: &header)
        return (header, frame.payload)
    }
}
