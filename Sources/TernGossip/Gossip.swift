/// Cluster membership by gossip: SWIM (Das, Gupta & Motivala, "SWIM: Scalable Weakly-consistent
/// Infection-style Process Group Membership Protocol", DSN 2002) with the Lifeguard extensions
/// (Dadgar, Phillips & Currey, "Lifeguard: Local Health Awareness for More Accurate Failure
/// Detection", 2017) and memberlist's periodic push-pull state sync.
///
/// Everything here is pure: ``Instance`` holds the protocol state and is driven by events that
/// carry the time; it answers with ``Directive``s that a shell (the UDP service in `TernServer`,
/// or the simulator in the tests) carries out. ``Codec`` turns ``Packet``s into datagrams and
/// back. `docs/gossip.md` describes the protocol byte by byte.
public enum Gossip {}

extension Gossip {
    /// A node's identity in the cluster: 1–64 bytes of `[A-Za-z0-9_.-]`, chosen by the operator
    /// (`ternd --node-id`) and kept across restarts; a restarted node is the same member with a
    /// higher incarnation.
    public struct NodeID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
        public let rawValue: String

        /// The most bytes a node id may have.
        public static let maxBytes = 64

        /// - Returns: nil when `rawValue` is empty, longer than 64 bytes or holds a character
        ///   outside `[A-Za-z0-9_.-]`.
        public init?(rawValue: String) {
            guard Self.isValid(rawValue) else { return nil }
            self.rawValue = rawValue
        }

        /// A literal id; traps when it is not valid (a programmer error).
        public init(stringLiteral value: String) {
            precondition(Self.isValid(value), "invalid node id \(value)")
            rawValue = value
        }

        /// Whether `text` is a valid node id.
        public static func isValid(_ text: String) -> Bool {
            let bytes = text.utf8
            guard !bytes.isEmpty, bytes.count <= maxBytes else { return false }
            return bytes.allSatisfy { byte in
                (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                    || byte == 0x2D || byte == 0x2E || byte == 0x5F
            }
        }

        public var description: String { rawValue }
        public static func < (a: NodeID, b: NodeID) -> Bool { a.rawValue < b.rawValue }
    }

    /// A host and port (UDP for gossip, TCP for HTTP and the binary protocol). The host is an IP
    /// address or a DNS name of at most 253 bytes.
    public struct Address: Hashable, Sendable, CustomStringConvertible {
        public var host: String
        public var port: UInt16

        public init(host: String, port: UInt16) {
            self.host = host
            self.port = port
        }

        /// Parses `HOST:PORT` (IPv6 as `[::1]:PORT`).
        /// - Returns: nil when there is no host, no port, or the port is not 0–65535.
        public init?(parsing text: String) {
            var rest = Substring(text)
            let host: Substring
            if rest.hasPrefix("[") {
                guard let close = rest.firstIndex(of: "]") else { return nil }
                host = rest[rest.index(after: rest.startIndex)..<close]
                rest = rest[rest.index(after: close)...]
                guard rest.hasPrefix(":") else { return nil }
                rest = rest.dropFirst()
            } else {
                guard let colon = rest.lastIndex(of: ":") else { return nil }
                host = rest[..<colon]
                rest = rest[rest.index(after: colon)...]
            }
            guard !host.isEmpty, host.utf8.count <= 253, let port = UInt16(rest) else { return nil }
            self.init(host: String(host), port: port)
        }

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// What a node tells the cluster about itself (its metadata). Changed only with a new
    /// incarnation.
    public struct Node: Hashable, Sendable {
        public var id: NodeID
        /// Where its gossip (UDP) listens.
        public var gossip: Address
        /// Its HTTP API, if it serves one.
        public var http: Address?
        /// Its binary protocol, if it serves one.
        public var binary: Address?
        /// Its SQS-compatible endpoint (`--sqs`), if it serves one: where a follower forwards
        /// the SQS requests it receives when this node leads (decision 137). Carried from
        /// gossip format version 2 on (`docs/gossip.md`).
        public var sqs: Address?
        /// Its failure domain (rack, availability zone), at most 64 bytes; nil: none given.
        public var zone: String?
        /// When the process started, in milliseconds since 1970 (wall clock of that node).
        public var startedAt: UInt64

        public init(id: NodeID, gossip: Address, http: Address? = nil, binary: Address? = nil, sqs: Address? = nil,
                    zone: String? = nil, startedAt: UInt64 = 0) {
            self.id = id
            self.gossip = gossip
            self.http = http
            self.binary = binary
            self.sqs = sqs
            self.zone = zone
            self.startedAt = startedAt
        }
    }

    /// A member's state as this node sees it (SWIM §4.2, plus memberlist's "left").
    public enum MemberState: UInt8, Sendable, CaseIterable, CustomStringConvertible {
        /// Answers probes (directly or through others).
        case alive = 0
        /// Missed a probe; declared dead unless it refutes within the suspicion timeout.
        case suspect = 1
        /// Did not refute a suspicion in time; it may come back with a higher incarnation.
        case dead = 2
        /// Announced its own graceful departure.
        case left = 3

        public var description: String {
            switch self {
            case .alive: "alive"
            case .suspect: "suspect"
            case .dead: "dead"
            case .left: "left"
            }
        }
    }

    /// One entry of the membership view.
    public struct Member: Hashable, Sendable {
        public var node: Node
        public var state: MemberState
        /// The member's incarnation number (SWIM §4.2): only the member itself raises it, to
        /// refute a suspicion or to announce new metadata or its departure.
        public var incarnation: UInt64
        /// When `state` last changed, in the instance's time (the `now` of the event).
        public var lastChange: Duration

        public init(node: Node, state: MemberState, incarnation: UInt64, lastChange: Duration) {
            self.node = node
            self.state = state
            self.incarnation = incarnation
            self.lastChange = lastChange
        }

        public var id: NodeID { node.id }
    }

    /// A change of the membership view, reported by ``Directive/memberChanged(_:)``.
    public struct MemberChange: Hashable, Sendable {
        /// The member after the change.
        public var member: Member
        /// Its state before; nil when it was unknown until now (it joined).
        public var previousState: MemberState?

        public init(member: Member, previousState: MemberState?) {
            self.member = member
            self.previousState = previousState
        }
    }
}

/// A failure of the gossip module: bad settings or an undecodable packet.
public struct GossipError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Stable, extensible error codes.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case invalidSettings, malformedPacket, unsupportedVersion, packetTooLarge
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// A setting is out of range or inconsistent with another.
        public static let invalidSettings = Code(.invalidSettings)
        /// A packet is truncated, has trailing bytes or holds an impossible value.
        public static let malformedPacket = Code(.malformedPacket)
        /// A packet's version is not one this build speaks.
        public static let unsupportedVersion = Code(.unsupportedVersion)
        /// An encoded packet would exceed its bound.
        public static let packetTooLarge = Code(.packetTooLarge)

        public var description: String {
            switch value {
            case .invalidSettings: "InvalidSettings"
            case .malformedPacket: "MalformedPacket"
            case .unsupportedVersion: "UnsupportedVersion"
            case .packetTooLarge: "PacketTooLarge"
            }
        }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
