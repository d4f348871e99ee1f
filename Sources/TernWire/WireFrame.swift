public import NIOCore
import TernCore

/// One frame of Tern's binary protocol: a request or a response, before its payload is decoded.
///
/// Layout on the wire (all integers big-endian; `docs/protocol.md` has hex dumps):
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | size: bytes after this field (header rest + payload), at least 8 |
/// | 4 | 2 | API key (``WireAPI``) |
/// | 6 | 2 | API version |
/// | 8 | 4 | correlation id, chosen by the client, echoed in the response |
/// | 12 | n | payload |
///
/// A response has the same header (API key and version of its request) and its payload starts
/// with a u16 error number: 0 for success, followed by the response body; otherwise a
/// ``ErrorCode/number`` followed by the message (u16 length + UTF-8).
public struct WireFrame: Sendable, Hashable {
    /// Which API the frame belongs to; a raw value, so unknown keys survive decoding and can be
    /// answered with `UnsupportedVersion`.
    public var apiKey: UInt16
    public var apiVersion: UInt16
    public var correlationID: UInt32
    public var payload: ByteBuffer

    public init(apiKey: UInt16, apiVersion: UInt16, correlationID: UInt32, payload: ByteBuffer) {
        self.apiKey = apiKey
        self.apiVersion = apiVersion
        self.correlationID = correlationID
        self.payload = payload
    }

    /// Bytes of the size field.
    public static let sizeFieldBytes = 4
    /// Bytes of the header after the size field (API key, version, correlation id).
    public static let headerBytes = 8
    /// The API key used for error frames that answer a frame whose header could not be read.
    public static let unknownAPIKey: UInt16 = 0xFFFF

    /// Writes the whole frame (size field included) to `buffer`.
    public func write(to buffer: inout ByteBuffer) {
        writeHeader(to: &buffer)
        var payload = payload
        buffer.writeBuffer(&payload)
    }

    /// Writes the size field and the header (12 bytes), not the payload, to `buffer`.
    public func writeHeader(to buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(Self.headerBytes + payload.readableBytes))
        buffer.writeInteger(apiKey)
        buffer.writeInteger(apiVersion)
        buffer.writeInteger(correlationID)
    }

    /// The frame as bytes (size field included).
    public var bytes: ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(Self.sizeFieldBytes + Self.headerBytes + payload.readableBytes)
        write(to: &buffer)
        return buffer
    }
}

/// Settings of the frame codec.
public struct WireSettings: Sendable, Hashable {
    /// The largest accepted frame, size field excluded, in bytes. Default 67,108,864 (64 MiB),
    /// enough for a batch of 1,000 messages of 64 KiB.
    public var maxFrameBytes: Int = 64 << 20

    public init() {}
}
