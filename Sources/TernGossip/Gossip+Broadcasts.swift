extension Gossip {
    /// A deterministic pseudo-random generator (SplitMix64, Steele, Lea & Flood 2014): the
    /// instance's only source of randomness, seeded by its shell, so that a simulation replays
    /// exactly from its seed.
    public struct Random: RandomNumberGenerator, Sendable, Hashable {
        private var state: UInt64

        public init(seed: UInt64) { state = seed }

        public mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// The updates waiting to be piggybacked, at most one per member (a newer update replaces an
    /// older one, as memberlist's `TransmitLimitedQueue` invalidates). Updates sent fewer times go
    /// first, the newest first among equals; each is dropped after the retransmit limit (SWIM
    /// §4.1: λ·log n times).
    ///
    /// Buckets by transmit count make taking the next update O(1) amortized: entries replaced by
    /// a newer update are skipped lazily by their version.
    struct BroadcastQueue: Sendable {
        private struct Entry: Sendable {
            var update: Update
            var transmits: Int
            var version: UInt64
        }
        private var entries: [NodeID: Entry] = [:]
        /// `buckets[t]`: (member, version) of entries sent `t` times, oldest first.
        private var buckets: [[(NodeID, UInt64)]] = []
        private var nextVersion: UInt64 = 0

        var count: Int { entries.count }
        var isEmpty: Bool { entries.isEmpty }

        /// Queues `update`, replacing any queued update about the same member.
        mutating func enqueue(_ update: Update) {
            nextVersion += 1
            entries[update.member] = Entry(update: update, transmits: 0, version: nextVersion)
            if buckets.isEmpty { buckets.append([]) }
            buckets[0].append((update.member, nextVersion))
        }

        /// The queued update about `member`, if any.
        func pending(about member: NodeID) -> Update? { entries[member]?.update }

        /// Takes updates for one packet: fewest transmits first, newest first, while they fit in
        /// `budget` bytes; each one taken counts a transmit and is dropped at `limit`.
        /// - Parameter exclude: a member whose update is already in the packet.
        mutating func take(budget: Int, limit: Int, exclude: NodeID? = nil) -> [Update] {
            var taken = [Update]()
            var remaining = budget
            var requeue = [(NodeID, UInt64, Int)]()
            var t = 0
            while t < buckets.count && remaining > 0 {
                var skipped = [(NodeID, UInt64)]()
                while let (id, version) = buckets[t].popLast() {
                    guard let entry = entries[id], entry.version == version else { continue }
                    if id == exclude { skipped.append((id, version)); continue }
                    let size = Codec.encodedBytes(.update(entry.update))
                    if size > remaining {
                        skipped.append((id, version))
                        if remaining < 40 { break }
                        continue
                    }
                    remaining -= size
                    taken.append(entry.update)
                    let transmits = entry.transmits + 1
                    if transmits >= limit {
                        entries[id] = nil
                    } else {
                        entries[id]!.transmits = transmits
                        requeue.append((id, version, transmits))
                    }
                    if remaining < 40 { break }
                }
                buckets[t] += skipped.reversed()
                t += 1
            }
            for (id, version, transmits) in requeue {
                while buckets.count <= transmits { buckets.append([]) }
                buckets[transmits].append((id, version))
            }
            compact()
            return taken
        }

        /// Drops stale bucket entries once they outnumber live ones.
        private mutating func compact() {
            let total = buckets.reduce(0) { $0 + $1.count }
            guard total > 64, total > 4 * entries.count else { return }
            for t in buckets.indices {
                buckets[t].removeAll { entries[$0.0]?.version != $0.1 }
            }
        }
    }
}
