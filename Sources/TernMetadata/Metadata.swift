public import TernCore

/// The cluster's catalogue as a pure state machine: nodes, queues, topics, their partitions and
/// each replication group's replica set, changed only by applying catalogue commands committed
/// in the controllers' Raft group (CLUSTER.md, "metadata"; KRaft, KIP-500/KIP-595).
///
/// Everything here is pure — no clock, no randomness, no I/O: time comes in as command fields
/// and arguments, decisions are functions of their inputs.
///
/// - ``Catalogue``: the state (what the metadata group's snapshot holds).
/// - ``Command`` and ``Catalogue/apply(_:)``: the only way the state changes (one command per
///   metadata log entry).
/// - ``Codec``: commands and whole catalogues as bytes (versioned, CRC-32C).
/// - ``Placement``: rendezvous hashing of replication groups onto nodes.
/// - ``Controller``: what the controller leader proposes next, from the catalogue, gossip's view
///   of the members and each group's replication progress.
///
/// ```swift
/// var catalogue = Metadata.Catalogue()
/// _ = try catalogue.apply(.registerNode(id: "n1", zone: nil, at: now))
/// let create = try controller.placeQueue(try QueueName("orders"), catalogue: catalogue, members: view)
/// let outcome = try catalogue.apply(create)     // .queueCreated(orders, group: 1, newGroup: true)
/// let entry = Metadata.Codec.encode(create)     // a metadata log entry's payload
/// let bytes = Metadata.Codec.encode(catalogue)  // the metadata group's snapshot
/// ```
public enum Metadata {
    /// A replication group's id: 1, 2, 3, … in creation order, never reused. 0 is the metadata
    /// group itself (``metadataGroup``), which the catalogue does not list.
    public typealias GroupID = UInt64

    /// The id of the metadata (controllers') group.
    public static let metadataGroup: GroupID = 0

    /// A refused command or an undecodable record: a stable ``ErrorCode`` and a human message.
    /// A command that throws changed nothing.
    public struct Error: Swift.Error, Sendable, Hashable, CustomStringConvertible {
        /// The stable code (`invalidParameter`, `invalidAttribute`, `queueNotFound`, `topicNotFound`,
        /// `conflict`, `unavailable` for commands; `invalidFrame` for bytes that do not decode).
        public var code: ErrorCode
        /// What was wrong, for people.
        public var message: String

        public init(_ code: ErrorCode, _ message: String) {
            self.code = code
            self.message = message
        }

        /// The same error as the client-facing ``TernError``.
        public var ternError: TernError { TernError(code, message) }

        public var description: String { "\(code.name): \(message)" }
    }

    /// The bounds the catalogue enforces (each one a resource the cluster holds per request).
    public enum Limits {
        /// The most bytes of a node id (as `ternd --node-id` and gossip's node ids): 64.
        public static let maxNodeIDBytes = 64
        /// The most bytes of a zone name (as gossip's): 64.
        public static let maxZoneBytes = 64
        /// The most registered nodes: 1,024.
        public static let maxNodes = 1024
        /// The most voters of one replication group, and the highest replication factor: 9.
        public static let maxReplicas = 9
        /// The most learners of one replication group at once: 9.
        public static let maxLearners = 9
        /// The most partitions of a topic: 1,024 (``TopicAttributes/partitionsRange``).
        public static let maxPartitions = TopicAttributes.partitionsRange.upperBound
    }

    /// Whether `id` is a valid node id: 1–64 bytes of `[A-Za-z0-9_.-]` (the rule of
    /// `ternd --node-id` and of gossip's `Gossip.NodeID`).
    public static func isValidNodeID(_ id: String) -> Bool {
        let bytes = id.utf8
        guard !bytes.isEmpty, bytes.count <= Limits.maxNodeIDBytes else { return false }
        return bytes.allSatisfy { byte in
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                || byte == 0x2D || byte == 0x2E || byte == 0x5F
        }
    }

    /// Whether `zone` is a valid zone name: 1–64 bytes of UTF-8 (nil, no zone, is always valid).
    public static func isValidZone(_ zone: String?) -> Bool {
        guard let zone else { return true }
        return !zone.utf8.isEmpty && zone.utf8.count <= Limits.maxZoneBytes
    }
}
