import NIOCore
import TernCore

/// The first node-to-node frame of a peer connection (API key 61, after `ApiVersions`): who the
/// sending node is, which node it means to reach, and — when the cluster has a key — proof
/// that it holds the key.
///
/// The proof is HMAC-SHA256 under the cluster key over ``authenticatedBytes`` (a fixed
/// context string, then every field before the proof as encoded). The receiver accepts it when
/// the tag matches, `target` is its own Raft node id, `timestamp` is within its clock-skew
/// bound of its own clock, and the `nonce` was not seen within that bound (a replayed hello
/// is refused): Kerberos' authenticator (RFC 4120 §3.2.3) without the ticket.
///
/// Payload: `node id string · target u64 · timestamp u64 · nonce (16 bytes) · proof optional
/// (u8 presence · 32 bytes)`.
public struct WirePeerHello: Sendable, Hashable {
    /// The sending node's `--node-id` (1–255 bytes of UTF-8).
    public var nodeID: String
    /// The Raft node id (`RaftNodeID.of`) of the node the sender means to reach.
    public var target: UInt64
    /// When the hello was made: milliseconds since 1970, the sender's clock.
    public var timestamp: UInt64
    /// 16 random bytes, fresh for every connection.
    public var nonce: [UInt8]
    /// HMAC-SHA256 (32 bytes) of ``authenticatedBytes`` under the cluster key; nil without a key.
    public var proof: [UInt8]?

    /// Bytes of ``nonce``.
    public static let nonceBytes = 16
    /// Bytes of ``proof``.
    public static let proofBytes = 32
    /// The most UTF-8 bytes of ``nodeID``.
    public static let maxNodeIDBytes = 255
    /// What the proof authenticates before the fields: a context string, so that a tag made
    /// for another purpose of the same key (a gossip datagram) never passes as a hello.
    public static let proofContext: [UInt8] = Array("tern-peer-hello-v1".utf8)

    /// - Precondition: `nodeID` has 1–255 UTF-8 bytes, `nonce` has 16 bytes, `proof` (when
    ///   given) has 32 bytes.
    public init(nodeID: String, target: UInt64, timestamp: UInt64, nonce: [UInt8], proof: [UInt8]? = nil) {
        precondition((1...Self.maxNodeIDBytes).contains(nodeID.utf8.count), "a node id has 1–255 bytes")
        precondition(nonce.count == Self.nonceBytes, "a hello nonce has 16 bytes")
        precondition(proof.map { $0.count == Self.proofBytes } ?? true, "a hello proof has 32 bytes")
        self.nodeID = nodeID
        self.target = target
        self.timestamp = timestamp
        self.nonce = nonce
        self.proof = proof
    }

    /// The bytes the proof is computed over: ``proofContext`` followed by the encoded node id,
    /// target, timestamp and nonce.
    public var authenticatedBytes: [UInt8] {
        var buffer = ByteBuffer()
        buffer.writeBytes(Self.proofContext)
        writeFields(to: &buffer)
        return Array(buffer.readableBytesView)
    }

    func writeFields(to buffer: inout ByteBuffer) {
        buffer.writeWireString(nodeID)
        buffer.writeInteger(target)
        buffer.writeInteger(timestamp)
        buffer.writeBytes(nonce)
    }

    func write(to buffer: inout ByteBuffer) {
        writeFields(to: &buffer)
        buffer.writeWireOptional(proof) { $0.writeBytes($1) }
    }
}

/// Raft messages of many replication groups from one node to another, in one frame (API key
/// 62): CLUSTER.md's "batched per node pair". One-way: a batch that is taken gets no answer
/// (Raft answers with its own messages, and retries what was lost); a refused batch is
/// answered with an error frame.
///
/// Payload: `sender node id string · message count u32 · (group u64 · message bytes (u32
/// length · bytes))…`. The message bytes are opaque here: `Raft.Codec` encodes and decodes
/// them (TernReplication), so a message this build cannot decode is dropped by the receiver
/// alone, not the batch.
public struct WireRaftBatch: Sendable, Hashable {
    /// One Raft message and the replication group it belongs to (0 = the metadata group).
    public struct Message: Sendable, Hashable {
        public var group: UInt64
        /// `Raft.Codec.encode(_:)` of the message.
        public var bytes: [UInt8]

        public init(group: UInt64, bytes: [UInt8]) {
            self.group = group
            self.bytes = bytes
        }
    }

    /// The sending node's `--node-id`; must be the one its `PeerHello` proved.
    public var from: String
    public var messages: [Message]

    /// The most messages in one batch. A larger batch is a malformed frame.
    public static let maxMessages = 65_536
    /// Bytes of the payload besides the messages' own bytes: the sender id's length prefix and
    /// the count (the sender id's bytes come on top).
    public static let fixedBytes = 2 + 4
    /// Bytes each message adds besides its own bytes (group and length prefix).
    public static let perMessageBytes = 8 + 4

    public init(from: String, messages: [Message]) {
        self.from = from
        self.messages = messages
    }

    /// The payload's size in bytes, which with ``WireFrame/headerBytes`` must stay within the
    /// receiver's ``WireSettings/maxFrameBytes``.
    public var payloadBytes: Int {
        messages.reduce(Self.fixedBytes + from.utf8.count) { $0 + Self.perMessageBytes + $1.bytes.count }
    }

    func write(to buffer: inout ByteBuffer) {
        buffer.writeWireString(from)
        buffer.writeInteger(UInt32(messages.count))
        for message in messages {
            buffer.writeInteger(message.group)
            buffer.writeWireBytes(message.bytes)
        }
    }
}

extension WireReader {
    mutating func readPeerNodeID(_ field: StaticString) throws(TernError) -> String {
        let nodeID = try readString(field)
        guard (1...WirePeerHello.maxNodeIDBytes).contains(nodeID.utf8.count) else {
            throw TernError(.invalidFrame, "\(field) must have 1–\(WirePeerHello.maxNodeIDBytes) bytes, got \(nodeID.utf8.count)")
        }
        return nodeID
    }

    mutating func readPeerHello() throws(TernError) -> WirePeerHello {
        let nodeID = try readPeerNodeID("node id")
        let target = try read(UInt64.self, "target")
        let timestamp = try read(UInt64.self, "timestamp")
        guard let nonce = buffer.readBytes(length: WirePeerHello.nonceBytes) else {
            throw TernError(.invalidFrame, "payload truncated while reading nonce")
        }
        let proof = try readOptional("proof") { (r: inout WireReader) throws(TernError) -> [UInt8] in
            guard let proof = r.buffer.readBytes(length: WirePeerHello.proofBytes) else {
                throw TernError(.invalidFrame, "payload truncated while reading proof")
            }
            return proof
        }
        return WirePeerHello(nodeID: nodeID, target: target, timestamp: timestamp, nonce: nonce, proof: proof)
    }

    mutating func readRaftBatch() throws(TernError) -> WireRaftBatch {
        let from = try readPeerNodeID("sender node id")
        let count = try readCount("message count", minimumElementBytes: WireRaftBatch.perMessageBytes)
        guard count <= WireRaftBatch.maxMessages else {
            throw TernError(.invalidFrame, "a raft batch holds at most \(WireRaftBatch.maxMessages) messages, got \(count)")
        }
        var messages = [WireRaftBatch.Message]()
        messages.reserveCapacity(count)
        for _ in 0..<count {
            let group = try read(UInt64.self, "group")
            let bytes = try readBytes("raft message")
            guard !bytes.isEmpty else { throw TernError(.invalidFrame, "an empty raft message") }
            messages.append(WireRaftBatch.Message(group: group, bytes: bytes))
        }
        return WireRaftBatch(from: from, messages: messages)
    }
}

/// Node to node (API key 63): asks a peer for one chunk of a snapshot file of a replication
/// group's state, for a follower that must install a snapshot (decision 117). Sent only on a
/// connection whose `PeerHello` was accepted; answered with ``WireSnapshotChunk`` or an error.
///
/// Payload (36 bytes): `group u64 · snapshot id u64 (0 = start) · min applied u64 · offset u64 ·
/// max bytes u32 (1–4,194,304)`.
public struct WireSnapshotChunkRequest: Sendable, Hashable {
    public var group: UInt64
    /// The file being read, as a previous answer named it; 0 asks for one whose applied index
    /// is at least ``minApplied`` (the peer makes it when it has none).
    public var snapshotID: UInt64
    public var minApplied: UInt64
    public var offset: UInt64
    public var maxBytes: UInt32

    /// The most bytes one chunk may carry (4 MiB).
    public static let maxChunkBytes = 4 << 20

    public init(group: UInt64, snapshotID: UInt64, minApplied: UInt64, offset: UInt64, maxBytes: UInt32) {
        self.group = group
        self.snapshotID = snapshotID
        self.minApplied = minApplied
        self.offset = offset
        self.maxBytes = maxBytes
    }

    func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(group)
        buffer.writeInteger(snapshotID)
        buffer.writeInteger(minApplied)
        buffer.writeInteger(offset)
        buffer.writeInteger(maxBytes)
    }
}

/// The answer to a ``WireSnapshotChunkRequest``: the file it reads (id, group, applied index,
/// size, CRC32C) and its bytes from the requested offset, at most the requested count.
///
/// Payload: `snapshot id u64 · group u64 · applied u64 · total bytes u64 · crc32c u32 ·
/// offset u64 · data (u32 length · bytes)`; `offset + length ≤ total bytes`, length ≤ 4 MiB.
public struct WireSnapshotChunk: Sendable, Hashable {
    public var snapshotID: UInt64
    public var group: UInt64
    public var applied: UInt64
    public var totalBytes: UInt64
    public var checksum: UInt32
    public var offset: UInt64
    public var data: [UInt8]

    public init(snapshotID: UInt64, group: UInt64, applied: UInt64, totalBytes: UInt64, checksum: UInt32, offset: UInt64, data: [UInt8]) {
        self.snapshotID = snapshotID
        self.group = group
        self.applied = applied
        self.totalBytes = totalBytes
        self.checksum = checksum
        self.offset = offset
        self.data = data
    }

    func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(snapshotID)
        buffer.writeInteger(group)
        buffer.writeInteger(applied)
        buffer.writeInteger(totalBytes)
        buffer.writeInteger(checksum)
        buffer.writeInteger(offset)
        buffer.writeWireBytes(data)
    }
}

extension WireReader {
    mutating func readSnapshotChunkRequest() throws(TernError) -> WireSnapshotChunkRequest {
        let request = WireSnapshotChunkRequest(
            group: try read(UInt64.self, "group"), snapshotID: try read(UInt64.self, "snapshot id"),
            minApplied: try read(UInt64.self, "min applied"), offset: try read(UInt64.self, "offset"),
            maxBytes: try read(UInt32.self, "max bytes"))
        guard (1...UInt32(WireSnapshotChunkRequest.maxChunkBytes)).contains(request.maxBytes) else {
            throw TernError(.invalidFrame, "max bytes must be 1–\(WireSnapshotChunkRequest.maxChunkBytes), got \(request.maxBytes)")
        }
        return request
    }

    mutating func readSnapshotChunk() throws(TernError) -> WireSnapshotChunk {
        let snapshotID = try read(UInt64.self, "snapshot id")
        let group = try read(UInt64.self, "group")
        let applied = try read(UInt64.self, "applied")
        let total = try read(UInt64.self, "total bytes")
        let checksum = try read(UInt32.self, "checksum")
        let offset = try read(UInt64.self, "offset")
        let data = try readBytes("chunk data")
        guard data.count <= WireSnapshotChunkRequest.maxChunkBytes else {
            throw TernError(.invalidFrame, "a snapshot chunk carries at most \(WireSnapshotChunkRequest.maxChunkBytes) bytes, got \(data.count)")
        }
        guard offset <= total, UInt64(data.count) <= total - offset else {
            throw TernError(.invalidFrame, "a snapshot chunk at \(offset) of \(data.count) bytes passes the end (\(total) bytes)")
        }
        return WireSnapshotChunk(snapshotID: snapshotID, group: group, applied: applied, totalBytes: total, checksum: checksum,
                                 offset: offset, data: data)
    }
}
