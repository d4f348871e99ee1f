import Testing
import TernReplication
import TernTestKit

@Suite struct CodecTests {
    static let configuration = Raft.Configuration(voters: [1, 2, 3], learners: [9])
    static let samples: [Raft.Message] = {
        let entries = [
            Raft.Entry(index: 5, term: 2, payload: Array("send q1 hello".utf8)),
            Raft.Entry(index: 6, term: 3, payload: []),
            Raft.Entry(index: 7, term: 3, kind: .configuration, payload: Raft.Codec.encode(configuration)),
        ]
        let kinds: [Raft.Message.Kind] = [
            .preVote(lastIndex: 10, lastTerm: 3), .preVoteResponse(granted: true),
            .vote(lastIndex: 11, lastTerm: 4, transfer: true), .voteResponse(granted: false),
            .append(prevIndex: 4, prevTerm: 2, entries: entries, commit: 4),
            .append(prevIndex: 9, prevTerm: 3, entries: [], commit: 9),
            .appendResponse(index: 9, reject: true, hintIndex: 6, hintTerm: 2),
            .appendResponse(index: 12, reject: false, hintIndex: 0, hintTerm: 0),
            .heartbeat(commit: 8, readSequence: 77), .heartbeatResponse(readSequence: 77),
            .snapshot(Raft.Snapshot(metadata: Raft.SnapshotMetadata(index: 100, term: 7, configuration: configuration),
                                    data: [1, 2, 3, 4])),
            .timeoutNow, .readIndex(requestID: 5), .readIndexResponse(requestID: 5, index: 99),
        ]
        return kinds.map { Raft.Message(from: 1, to: 2, term: UInt64.max - 1, kind: $0) }
    }()

    @Test func everyMessageKind_roundTrips() throws {
        for message in Self.samples {
            let bytes = Raft.Codec.encode(message)
            #expect(bytes[0] == Raft.Codec.version)
            #expect(try Raft.Codec.decodeMessage(bytes) == message, "\(message)")
        }
    }

    @Test func entry_hasTwentyOneBytesOfOverhead() throws {
        let entry = Raft.Entry(index: 1, term: 1, payload: [UInt8](repeating: 0xAB, count: 100))
        let bytes = Raft.Codec.encode(entry)
        #expect(bytes.count == 121)
        #expect(entry.encodedBytes == 121)
        #expect(try Raft.Codec.decodeEntry(bytes) == entry)
    }

    @Test func configurationAndSnapshotMetadata_roundTrip() throws {
        #expect(try Raft.Codec.decodeConfiguration(Raft.Codec.encode(Self.configuration)) == Self.configuration)
        let metadata = Raft.SnapshotMetadata(index: 3, term: 2, configuration: Self.configuration)
        #expect(try Raft.Codec.decodeSnapshotMetadata(Raft.Codec.encode(metadata)) == metadata)
    }

    @Test func everyTruncation_ofEveryMessage_failsWithInvalidMessage() {
        for message in Self.samples {
            let bytes = Raft.Codec.encode(message)
            for length in 0..<bytes.count {
                #expect(throws: ReplicationError.self) { try Raft.Codec.decodeMessage(Array(bytes[..<length])) }
            }
            #expect(throws: ReplicationError.self) { try Raft.Codec.decodeMessage(bytes + [0]) }
        }
    }

    /// Regression (found by the mutation fuzz, seed 1): a configuration with unsorted or
    /// repeated node ids decoded, and re-encoded to other bytes. Only the canonical form decodes.
    @Test func configuration_withUnsortedRepeatedOrOverlappingIDs_isRefused() {
        func encoded(voters: [UInt64], learners: [UInt64]) -> [UInt8] {
            var bytes: [UInt8] = [Raft.Codec.version]
            for list in [voters, learners] {
                bytes += (0..<4).map { UInt8(truncatingIfNeeded: UInt32(list.count) >> (24 - 8 * UInt32($0))) }
                for id in list { bytes += (0..<8).map { UInt8(truncatingIfNeeded: id >> (56 - 8 * UInt64($0))) } }
            }
            return bytes
        }
        #expect((try? Raft.Codec.decodeConfiguration(encoded(voters: [1, 2, 3], learners: [4]))) != nil)
        for (voters, learners): ([UInt64], [UInt64]) in [([2, 1], []), ([1, 1], []), ([1, 2], [2]), ([1], [5, 4])] {
            #expect(throws: ReplicationError.self, "\(voters) \(learners)") {
                try Raft.Codec.decodeConfiguration(encoded(voters: voters, learners: learners))
            }
        }
    }

    @Test func anotherVersion_failsWithUnsupportedVersion() {
        var bytes = Raft.Codec.encode(Self.samples[0])
        bytes[0] = 2
        #expect {
            try Raft.Codec.decodeMessage(bytes)
        } throws: { ($0 as! ReplicationError).code == .unsupportedVersion }
    }

    @Test func hostileCount_isRefusedWithoutAllocating() {
        var bytes = Raft.Codec.encode(Raft.Message(from: 1, to: 2, term: 1,
                                                    kind: .append(prevIndex: 0, prevTerm: 0, entries: [], commit: 0)))
        bytes.replaceSubrange(bytes.count - 4..<bytes.count, with: [0xFF, 0xFF, 0xFF, 0xFF])
        #expect {
            try Raft.Codec.decodeMessage(bytes)
        } throws: { ($0 as! ReplicationError).code == .invalidMessage }
    }

    /// Mutation fuzzing: flipped, inserted and deleted bytes in valid messages, and random
    /// input, either decode to a message that re-encodes to the same bytes or throw.
    @Test(arguments: [UInt64(1), 2, 3, 4])
    func fuzz_mutatedAndRandomInput_decodesConsistentlyOrThrows(seed: UInt64) {
        var random = SeededGenerator(seed: seed)
        let valid = Self.samples.map(Raft.Codec.encode)
        var decoded = 0
        for round in 0..<5_000 {
            var bytes = valid[Int(random.next() % UInt64(valid.count))]
            switch round % 4 {
            case 0:
                for _ in 0..<(1 + Int(random.next() % 3)) {
                    let at = Int(random.next() % UInt64(bytes.count))
                    bytes[at] ^= UInt8(truncatingIfNeeded: random.next() | 1)
                }
            case 1:
                let at = Int(random.next() % UInt64(bytes.count + 1))
                bytes.insert(contentsOf: random.bytes(count: 1 + Int(random.next() % 8)), at: at)
            case 2:
                let at = Int(random.next() % UInt64(bytes.count))
                bytes.removeSubrange(at..<min(bytes.count, at + 1 + Int(random.next() % 8)))
            default:
                bytes = random.bytes(count: Int(random.next() % 64))
                if random.next() % 2 == 0, !bytes.isEmpty { bytes[0] = Raft.Codec.version }
            }
            if let message = try? Raft.Codec.decodeMessage(bytes) {
                decoded += 1
                #expect(Raft.Codec.encode(message) == bytes, "seed \(seed) round \(round)")
            }
        }
        #expect(decoded > 0, "some mutations (of integers) still decode")
    }
}

@Suite struct SettingsTests {
    @Test func defaults_followCLUSTERmd() throws {
        let s = Raft.Settings()
        try s.validate()
        #expect(s.heartbeatInterval == .milliseconds(150))
        #expect(s.electionTimeoutMin == .milliseconds(1500) && s.electionTimeoutMax == .seconds(3))
        #expect(s.heartbeatTicks == 3 && s.electionTimeoutMinTicks == 30 && s.electionTimeoutMaxTicks == 60)
    }

    @Test(arguments: [
        Raft.Settings().with { $0.tickInterval = .zero },
        Raft.Settings().with { $0.heartbeatInterval = .milliseconds(10) },
        Raft.Settings().with { $0.electionTimeoutMin = .milliseconds(200) },
        Raft.Settings().with { $0.electionTimeoutMax = .milliseconds(1500) },
        Raft.Settings().with { $0.maxInflightAppends = 0 },
        Raft.Settings().with { $0.maxBytesPerAppend = 0 },
        Raft.Settings().with { $0.maxUncommittedBytes = 0 },
        Raft.Settings().with { $0.maxPendingReads = 0 },
    ])
    func invalidSettings_areRefusedAtInit(settings: Raft.Settings) {
        #expect {
            _ = try Raft.Instance(id: 1, bootstrap: Raft.Configuration(voters: [1]), settings: settings, randomSeed: 1)
        } throws: { ($0 as! ReplicationError).code == .invalidSettings }
    }

    @Test func electionTimeouts_areRandomizedPerNodeAndSeed_butReproducible() throws {
        func firstCampaignTick(_ id: Raft.NodeID, seed: UInt64) throws -> Int {
            var node = try Raft.Instance(id: id, bootstrap: Raft.Configuration(voters: [1, 2, 3]), randomSeed: seed)
            for tick in 1...100 {
                node.tick()
                if node.role != .follower { return tick }
            }
            return -1
        }
        let a = try (1...3).map { try firstCampaignTick($0, seed: 9) }
        #expect(a == (try (1...3).map { try firstCampaignTick($0, seed: 9) }))
        #expect(a.allSatisfy { (30..<60).contains($0) })
        let spread = try (1...20).map { try firstCampaignTick(1, seed: $0) }
        #expect(Set(spread).count > 5)
    }

    @Test func singleVoter_electsItselfAndCommitsOnItsOwnPersistence() throws {
        var node = try Raft.Instance(id: 1, bootstrap: Raft.Configuration(voters: [1]), randomSeed: 1)
        for _ in 0..<60 where node.role != .leader { node.tick() }
        #expect(node.role == .leader)
        try node.propose([Array("a".utf8)])
        var ready = node.ready()!
        #expect(ready.committedEntries.isEmpty)
        node.advance(ready)
        ready = node.ready()!
        #expect(ready.committedEntries.map(\.index) == [1, 2])
    }
}
