import TernReplication

extension Simulation {
    /// What ``replicate(entries:payloadBytes:batch:nodes:)`` measured.
    public struct ReplicationWork: Sendable {
        /// Entries committed and applied on every node.
        public var committedEntries = 0
        /// Bytes of payload carried by those entries.
        public var payloadBytes = 0
        /// Bytes of encoded messages sent (appends, responses, heartbeats), all nodes.
        public var messageBytes = 0
        /// Bytes of encoded append messages sent to one follower, per entry.
        public var appendBytesPerEntryPerFollower: Double = 0
        public var messages = 0
    }

    /// Drives `nodes` instances as fast as the CPU allows — persistence is instant, every
    /// message is encoded, decoded and delivered at once — until `entries` entries proposed in
    /// batches of `batch` are applied everywhere. The caller times it: this is the instance's
    /// (and codec's) cost per entry, without disk or network.
    public static func replicate(entries: Int, payloadBytes: Int, batch: Int, nodes count: Int = 3) throws -> ReplicationWork {
        let ids = (1...count).map { Raft.NodeID($0) }
        let configuration = Raft.Configuration(voters: Set(ids))
        var nodes = try ids.map { try Raft.Instance(id: $0, bootstrap: configuration, randomSeed: $0) }
        var work = ReplicationWork()
        var applied = Array(repeating: Raft.Index(0), count: count)
        var inbox: [Raft.Message] = []
        var appendBytesToNode2 = 0

        func pump(_ k: Int) {
            while let ready = nodes[k].ready() {
                for message in ready.messages {
                    let bytes = Raft.Codec.encode(message)
                    work.messageBytes += bytes.count
                    work.messages += 1
                    if case .append = message.kind, message.to == 2 { appendBytesToNode2 += bytes.count }
                    inbox.append((try? Raft.Codec.decodeMessage(bytes)) ?? message)
                }
                if let last = ready.committedEntries.last { applied[k] = last.index }
                nodes[k].advance(ready)
            }
        }
        func settle() {
            for k in nodes.indices { pump(k) }
            while !inbox.isEmpty {
                let batch = inbox
                inbox.removeAll(keepingCapacity: true)
                for message in batch {
                    let k = Int(message.to) - 1
                    nodes[k].step(message)
                    pump(k)
                }
            }
        }
        while nodes[0].role != .leader {
            nodes[0].tick()
            settle()
        }
        let payload = [UInt8](repeating: 0x5A, count: payloadBytes)
        let start = applied.min()!
        var proposed = 0
        var ticks = 0
        while proposed < entries {
            let n = min(batch, entries - proposed)
            try nodes[0].propose(Array(repeating: payload, count: n))
            proposed += n
            settle()
            ticks += 1
            if ticks % 8 == 0 {
                for k in nodes.indices { nodes[k].tick() }
                settle()
            }
        }
        while applied.min()! < start + Raft.Index(entries) {
            for k in nodes.indices { nodes[k].tick() }
            settle()
        }
        work.committedEntries = entries
        work.payloadBytes = entries * payloadBytes
        work.appendBytesPerEntryPerFollower = Double(appendBytesToNode2) / Double(entries)
        return work
    }
}
