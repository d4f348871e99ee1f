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
            choose(keyState(key), among: candidates, count: count, keeping: [])
        }

        /// The `count` replicas for a string key; see ``replicas(for:among:count:)-(UInt64,_,_)``.
        public static func replicas(for key: String, among candidates: [Candidate], count: Int) -> [String] {
            choose(keyState(key), among: candidates, count: count, keeping: [])
        }

        /// The next replica for `key` when `current` replicas stay: the heaviest candidate not in
        /// `current`, among those in the zones `current` covers least. This is how a dead
        /// replica's replacement is chosen (the runner-up of the same ranking).
        /// - Returns: nil when every candidate is already in `current`.
        public static func next(for key: UInt64, among candidates: [Candidate], keeping current: [Candidate]) -> String? {
            choose(keyState(key), among: candidates, count: 1, keeping: current).first
        }

        /// The rendezvous weight of `node` for `key` (exposed for tests and tools).
        public static func weight(for key: UInt64, node: String) -> UInt64 { weight(keyState(key), node) }

        // MARK: - Internals

        static let fnvOffset: UInt64 = 0xcbf2_9ce4_8422_2325
        static let fnvPrime: UInt64 = 0x0000_0100_0000_01b3

        /// FNV-1a over a 4-byte big-endian length and `bytes`: the hash state every node's
        /// weight for this key continues from.
        static func keyState(_ bytes: [UInt8]) -> UInt64 {
            var hash = fnvOffset
            let count = UInt32(truncatingIfNeeded: bytes.count)
            for shift in stride(from: 24, through: 0, by: -8) {
                hash = (hash ^ UInt64(UInt8(truncatingIfNeeded: count >> UInt32(shift)))) &* fnvPrime
            }
            for byte in bytes { hash = (hash ^ UInt64(byte)) &* fnvPrime }
            return hash
        }

        /// An integer key: a tag byte 0x01, then 8 bytes big-endian.
        static func keyState(_ key: UInt64) -> UInt64 {
            keyState([0x01] + (0..<8).map { UInt8(truncatingIfNeeded: key >> (56 - 8 * $0)) })
        }

        /// A string key: a tag byte 0x02, then its UTF-8.
        static func keyState(_ key: String) -> UInt64 { keyState([0x02] + Array(key.utf8)) }

        /// The weight: FNV-1a continued over the node id's UTF-8, then fmix64 (MurmurHash3,
        /// Appleby), so that every input bit affects every output bit.
        static func weight(_ keyState: UInt64, _ node: String) -> UInt64 {
            var hash = keyState
            for byte in node.utf8 { hash = (hash ^ UInt64(byte)) &* fnvPrime }
            hash ^= hash >> 33
            hash = hash &* 0xff51_afd7_ed55_8ccd
            hash ^= hash >> 33
            hash = hash &* 0xc4ce_b9fe_1a85_ec53
            hash ^= hash >> 33
            return hash
        }

        /// Candidates made ready for many placements: repeated ids dropped (first entry kept),
        /// ids as UTF-8, zones numbered. The controller prepares the eligible nodes once a plan.
        struct Prepared: Sendable {
            var ids: [String] = []
            var bytes: [[UInt8]] = []
            var zones: [Int] = []
            var zoneIndex: [String?: Int] = [:]

            init(_ candidates: [Candidate], excluding excluded: Set<String> = []) {
                var seen = excluded
                for candidate in candidates where seen.insert(candidate.id).inserted {
                    ids.append(candidate.id)
                    bytes.append(Array(candidate.id.utf8))
                    zones.append(zone(candidate.zone))
                }
            }

            mutating func zone(_ zone: String?) -> Int {
                if let index = zoneIndex[zone] { return index }
                let index = zoneIndex.count
                zoneIndex[zone] = index
                return index
            }
        }

        /// The weight for prepared id bytes (as ``weight(_:_:)``).
        static func weight(_ keyState: UInt64, bytes: [UInt8]) -> UInt64 {
            var hash = keyState
            for byte in bytes { hash = (hash ^ UInt64(byte)) &* fnvPrime }
            hash ^= hash >> 33
            hash = hash &* 0xff51_afd7_ed55_8ccd
            hash ^= hash >> 33
            hash = hash &* 0xc4ce_b9fe_1a85_ec53
            hash ^= hash >> 33
            return hash
        }

        static func choose(_ key: UInt64, among candidates: [Candidate], count: Int, keeping current: [Candidate]) -> [String] {
            guard count > 0, !candidates.isEmpty else { return [] }
            var prepared = Prepared(candidates, excluding: Set(current.map(\.id)))
            let load = current.map { prepared.zone($0.zone) }
            return choose(key, prepared: prepared, count: count, keptZones: load)
        }

        /// Picks `count` of the prepared candidates one at a time: each the heaviest (ties:
        /// smaller id) among those in the zones holding the fewest picks so far, `keptZones`
        /// (zone numbers of replicas that stay) counting as picks. O(candidates × count).
        static func choose(_ key: UInt64, prepared: Prepared, count: Int, keptZones: [Int] = []) -> [String] {
            let n = prepared.ids.count
            guard count > 0, n > 0 else { return [] }
            var weights = [UInt64](repeating: 0, count: n)
            for i in 0..<n { weights[i] = weight(key, bytes: prepared.bytes[i]) }
            var taken = [Bool](repeating: false, count: n)
            var load = [Int](repeating: 0, count: prepared.zoneIndex.count)
            for zone in keptZones { load[zone] += 1 }
            var chosen: [String] = []
            while chosen.count < count {
                var best = -1
                for i in 0..<n where !taken[i] {
                    guard best >= 0 else { best = i; continue }
                    let (l, lb) = (load[prepared.zones[i]], load[prepared.zones[best]])
                    if l < lb || (l == lb && (weights[i] > weights[best]
                        || (weights[i] == weights[best] && prepared.ids[i] < prepared.ids[best]))) {
                        best = i
                    }
                }
                guard best >= 0 else { break }
                taken[best] = true
                load[prepared.zones[best]] += 1
                chosen.append(prepared.ids[best])
            }
            return chosen
        }
    }
}
