extension Metadata {
    /// Where replication groups go: rendezvous, or highest-random-weight, hashing (Thaler &
    /// Ravishankar, "Using Name-Based Mappings to Increase Hit Rates", IEEE/ACM ToN 1998), made
    /// zone-aware.
    ///
    /// Every candidate node gets a weight for the key, a 64-bit hash of (key, node id); the
    /// replicas are the candidates of highest weight, so adding or removing one of n nodes
    /// moves only the placements it wins or held (about 1/n of them), and every node computes
    /// the same answer with no shared state. When candidates have zones, each next replica is
    /// the heaviest candidate among those in the zones holding the fewest replicas so far, so a
    /// group spreads over as many zones as it has replicas before any zone gets a second
    /// (as Cassandra's NetworkTopologyStrategy and Ceph's CRUSH rules do).
    ///
    /// The hash is FNV-1a (64-bit) of a length-prefixed encoding of key and node id, finished
    /// by MurmurHash3's 64-bit mixer (`fmix64`) — fixed forever, unlike Swift's `Hasher`, which
    /// is seeded per process. Ties (never seen in practice) go to the smaller node id.
    ///
    /// ```swift
    /// let nodes = [Placement.Candidate(id: "n1", zone: "a"), .init(id: "n2", zone: "b"), .init(id: "n3", zone: "a")]
    /// Placement.replicas(for: 7, among: nodes, count: 2)   // e.g. ["n3", "n2"]: zones a and b
    /// ```
    public enum Placement {
        /// A node that may hold a replica.
        public struct Candidate: Sendable, Hashable {
            /// The node id (as `ternd --node-id`).
            public var id: String
            /// Its zone; nil: none (all zoneless candidates count as one zone).
            public var zone: String?

            public init(id: String, zone: String? = nil) {
                self.id = id
                self.zone = zone
            }
        }

        /// The `count` replicas for `key`, best first (the first is the preferred leader).
        /// - Parameters:
        ///   - key: what is placed: the controller places each replication group by its group
        ///     id (decision 105).
        ///   - candidates: the nodes to choose from; a repeated id counts once (its first entry).
        ///   - count: how many replicas; fewer come back when there are fewer candidates, none
        ///     when `count` ≤ 0.
        /// - Returns: distinct node ids, ordered by choice.
        public static func replicas(for key: UInt64, among candidates: [Candidate], count: Int) -> [String] {
            choose(keyBytes(key), among: candidates, count: count, keeping: [])
        }

        /// The `count` replicas for a string key; see ``replicas(for:among:count:)-(UInt64,_,_)``.
        public static func replicas(for key: String, among candidates: [Candidate], count: Int) -> [String] {
            choose(keyBytes(key), among: candidates, count: count, keeping: [])
        }

        /// The next replica for `key` when `current` replicas stay: the heaviest candidate not in
        /// `current`, among those in the zones `current` covers least. This is how a dead
        /// replica's replacement is chosen (the runner-up of the same ranking).
        /// - Returns: nil when every candidate is already in `current`.
        public static func next(for key: UInt64, among candidates: [Candidate], keeping current: [Candidate]) -> String? {
            choose(keyBytes(key), among: candidates, count: 1, keeping: current).first
        }

        /// The rendezvous weight of `node` for `key` (exposed for tests and tools).
        public static func weight(for key: UInt64, node: String) -> UInt64 { weight(keyBytes(key), node) }

        // MARK: - Internals

        static func keyBytes(_ key: UInt64) -> [UInt8] {
            [0x01] + (0..<8).map { UInt8(truncatingIfNeeded: key >> (56 - 8 * $0)) }
        }

        static func keyBytes(_ key: String) -> [UInt8] { [0x02] + Array(key.utf8) }

        static func weight(_ key: [UInt8], _ node: String) -> UInt64 {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            func mix(_ byte: UInt8) {
                hash ^= UInt64(byte)
                hash = hash &* 0x0000_0100_0000_01b3
            }
            let count = UInt32(truncatingIfNeeded: key.count)
            for shift in stride(from: 24, through: 0, by: -8) { mix(UInt8(truncatingIfNeeded: count >> UInt32(shift))) }
            for byte in key { mix(byte) }
            for byte in node.utf8 { mix(byte) }
            // fmix64 (MurmurHash3, Appleby): every input bit affects every output bit.
            hash ^= hash >> 33
            hash = hash &* 0xff51_afd7_ed55_8ccd
            hash ^= hash >> 33
            hash = hash &* 0xc4ce_b9fe_1a85_ec53
            hash ^= hash >> 33
            return hash
        }

        static func choose(_ key: [UInt8], among candidates: [Candidate], count: Int, keeping current: [Candidate]) -> [String] {
            guard count > 0 else { return [] }
            var seen = Set(current.map(\.id))
            var ranked: [(weight: UInt64, candidate: Candidate)] = []
            for candidate in candidates where seen.insert(candidate.id).inserted {
                ranked.append((weight(key, candidate.id), candidate))
            }
            ranked.sort { $0.weight != $1.weight ? $0.weight > $1.weight : $0.candidate.id < $1.candidate.id }
            var perZone: [String?: Int] = [:]
            for replica in current { perZone[replica.zone, default: 0] += 1 }
            var chosen: [String] = []
            while chosen.count < count, !ranked.isEmpty {
                // The heaviest candidate among those in the least-used zones.
                var best = 0
                var bestLoad = perZone[ranked[0].candidate.zone, default: 0]
                for index in ranked.indices.dropFirst() where bestLoad > 0 {
                    let load = perZone[ranked[index].candidate.zone, default: 0]
                    if load < bestLoad {
                        best = index
                        bestLoad = load
                    }
                }
                let pick = ranked.remove(at: best).candidate
                perZone[pick.zone, default: 0] += 1
                chosen.append(pick.id)
            }
            return chosen
        }
    }
}
