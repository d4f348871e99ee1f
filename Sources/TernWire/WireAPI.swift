/// The APIs of the binary protocol, by key. Every key is at version 0 in this build; a later
/// version of an API gets a new number here and both are served while clients migrate.
public enum WireAPI: UInt16, CaseIterable, Sendable, CustomStringConvertible {
    /// Version negotiation: the first request on every connection.
    case apiVersions = 0
    case createQueue = 1
    case describeQueue = 2
    case listQueues = 3
    case deleteQueue = 4
    case purgeQueue = 5
    case send = 6
    case receive = 7
    case acknowledge = 8
    case changeVisibility = 9
    case redrive = 10
    case initProducer = 20
    case beginTransaction = 21
    case commitTransaction = 22
    case abortTransaction = 23
    /// Presents a bearer token for the rest of the connection (Kafka's `SaslAuthenticate`).
    case authenticate = 24
    case createTopic = 30
    case describeTopic = 31
    case listTopics = 32
    case deleteTopic = 33
    case produce = 34
    case fetch = 35
    case joinGroup = 36
    case heartbeat = 37
    case leaveGroup = 38
    case groupConsume = 39
    case commitOffsets = 40
    case resetOffsets = 41
    case describeGroup = 42
    /// Who leads each replication group, and where the cluster's nodes listen (Kafka's
    /// `Metadata`): clients send straight to leaders and know where to go when a node dies.
    case metadata = 59
    /// The gossip membership view of the answering node (Kafka's `DescribeCluster` has key 60 too).
    case describeCluster = 60
    /// Node to node: opens a peer connection (who is sending, to whom, proof of the cluster key).
    case peerHello = 61
    /// Node to node: Raft messages of many replication groups, one-way (``WireRaftBatch``).
    case raftBatch = 62
    /// Node to node: one chunk of a snapshot of a replication group's state (``WireSnapshotChunkRequest``).
    case snapshotChunk = 63
    /// Node to node: a client's data request that a follower forwards to the data group's
    /// leader, with the client's bearer token (``WireForward``); answered with the forwarded
    /// request's own response payload.
    case forward = 64

    /// The versions of each API this build speaks.
    public var supportedVersions: ClosedRange<UInt16> { 0...0 }

    /// Whether the API is spoken between ternd nodes only (`PeerHello`, `RaftBatch`,
    /// `SnapshotChunk`, `Forward`): clients never send it, and a node outside a cluster refuses
    /// it with `NotInCluster`.
    public var isNodeToNode: Bool { self == .peerHello || self == .raftBatch || self == .snapshotChunk || self == .forward }

    public var description: String {
        switch self {
        case .apiVersions: "ApiVersions"
        case .createQueue: "CreateQueue"
        case .describeQueue: "DescribeQueue"
        case .listQueues: "ListQueues"
        case .deleteQueue: "DeleteQueue"
        case .purgeQueue: "PurgeQueue"
        case .send: "Send"
        case .receive: "Receive"
        case .acknowledge: "Acknowledge"
        case .changeVisibility: "ChangeVisibility"
        case .redrive: "Redrive"
        case .initProducer: "InitProducer"
        case .beginTransaction: "BeginTransaction"
        case .commitTransaction: "CommitTransaction"
        case .abortTransaction: "AbortTransaction"
        case .authenticate: "Authenticate"
        case .createTopic: "CreateTopic"
        case .describeTopic: "DescribeTopic"
        case .listTopics: "ListTopics"
        case .deleteTopic: "DeleteTopic"
        case .produce: "Produce"
        case .fetch: "Fetch"
        case .joinGroup: "JoinGroup"
        case .heartbeat: "Heartbeat"
        case .leaveGroup: "LeaveGroup"
        case .groupConsume: "GroupConsume"
        case .commitOffsets: "CommitOffsets"
        case .resetOffsets: "ResetOffsets"
        case .describeGroup: "DescribeGroup"
        case .metadata: "Metadata"
        case .describeCluster: "DescribeCluster"
        case .peerHello: "PeerHello"
        case .raftBatch: "RaftBatch"
        case .snapshotChunk: "SnapshotChunk"
        case .forward: "Forward"
        }
    }
}

/// One entry of the `ApiVersions` response: an API and the versions the broker serves.
public struct WireAPIVersions: Sendable, Hashable {
    public var apiKey: UInt16
    public var minVersion: UInt16
    public var maxVersion: UInt16

    public init(apiKey: UInt16, minVersion: UInt16, maxVersion: UInt16) {
        self.apiKey = apiKey
        self.minVersion = minVersion
        self.maxVersion = maxVersion
    }

    /// Every API of this build with its versions.
    public static var all: [WireAPIVersions] {
        WireAPI.allCases.map {
            WireAPIVersions(apiKey: $0.rawValue, minVersion: $0.supportedVersions.lowerBound, maxVersion: $0.supportedVersions.upperBound)
        }
    }
}
