public import NIOCore
import TernCore

/// A client's request that a follower forwards to the data group's leader (API key 64,
/// `Forward`, node to node; `docs/protocol.md` "Forward", decision 133).
///
/// Sent only on a peer connection (after an accepted `PeerHello`, so the sender proved the
/// cluster key when one is set). The leader authorizes the forwarded request with ``token``,
/// the bearer token the client presented to the follower, exactly as if the client had sent it
/// itself, and answers the `Forward` frame with the forwarded request's own response payload
/// (error number, then body), which the follower relays under the client's header.
///
/// Payload layout (big-endian):
///
/// | size | field |
/// |---|---|
/// | 1 + (2 + n) | token: `optional<string>` (absent: the client sent no `Authenticate`) |
/// | 2 | API key of the forwarded request |
/// | 2 | API version of the forwarded request |
/// | 4 + n | the forwarded request's payload, byte for byte: `bytes` (u32 length + bytes) |
///
/// A forwarded request is never forwarded again: a node that receives a `Forward` and does not
/// lead answers it `NotLeader` (or `Unavailable` while no leader is known).
public struct WireForward: Sendable, Hashable {
    /// The client's bearer token; nil when the client did not authenticate.
    public var token: String?
    /// The forwarded request's API key (a raw value: an unknown key reaches the leader, which
    /// answers `UnsupportedVersion` as it would to the client).
    public var apiKey: UInt16
    public var apiVersion: UInt16
    /// The forwarded request's payload (the bytes after its frame header).
    public var payload: ByteBuffer

    /// Bytes a `Forward` adds to the forwarded payload, besides the token's UTF-8 bytes.
    public static let overheadBytes = 1 + 2 + 2 + 2 + 4

    public init(token: String?, apiKey: UInt16, apiVersion: UInt16, payload: ByteBuffer) {
        self.token = token
        self.apiKey = apiKey
        self.apiVersion = apiVersion
        self.payload = payload
    }

    /// The `Forward` of the client's `frame`, with the client's `token`.
    public init(forwarding frame: WireFrame, token: String?) {
        self.init(token: token, apiKey: frame.apiKey, apiVersion: frame.apiVersion, payload: frame.payload)
    }

    /// Whether an API may travel inside a `Forward`: anything but the connection handshake
    /// (`ApiVersions`, `Authenticate`) and node-to-node frames (a `Forward` in a `Forward`
    /// would be forwarding twice).
    public static func mayCarry(apiKey: UInt16) -> Bool {
        guard let api = WireAPI(rawValue: apiKey) else { return true }
        return !(api.isNodeToNode || api == .apiVersions || api == .authenticate)
    }

    /// The forwarded request's frame, under `correlationID`.
    public func frame(correlationID: UInt32) -> WireFrame {
        WireFrame(apiKey: apiKey, apiVersion: apiVersion, correlationID: correlationID, payload: payload)
    }

    func write(to buffer: inout ByteBuffer) {
        buffer.writeWireOptional(token) { $0.writeWireString($1) }
        buffer.writeInteger(apiKey)
        buffer.writeInteger(apiVersion)
        var payload = payload
        buffer.writeInteger(UInt32(payload.readableBytes))
        buffer.writeBuffer(&payload)
    }
}

extension WireReader {
    /// - Throws: ``TernError`` `InvalidFrame` for a truncated header or payload, a token that is not
    ///   UTF-8, or a forwarded API that may not be forwarded (``WireForward/mayCarry(apiKey:)``).
    mutating func readForward() throws(TernError) -> WireForward {
        let token = try readOptional("token") { (r: inout WireReader) throws(TernError) in try r.readString("token") }
        let apiKey: UInt16 = try read(UInt16.self, "forwarded API key")
        let apiVersion: UInt16 = try read(UInt16.self, "forwarded API version")
        guard WireForward.mayCarry(apiKey: apiKey) else {
            let name = WireAPI(rawValue: apiKey).map { "\($0)" } ?? "\(apiKey)"
            throw TernError(.invalidFrame, "a Forward cannot carry \(name)")
        }
        let length: UInt32 = try read(UInt32.self, "forwarded payload length")
        guard let payload = buffer.readSlice(length: Int(length)) else {
            throw TernError(.invalidFrame, "the forwarded payload announces \(length) bytes but only \(remaining) follow")
        }
        return WireForward(token: token, apiKey: apiKey, apiVersion: apiVersion, payload: payload)
    }
}
