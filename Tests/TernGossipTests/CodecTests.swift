import Testing
import TernGossip
import TernTestKit

@Suite struct CodecTests {
    static let node = Gossip.Node(id: "n1", gossip: .init(host: "127.0.0.1", port: 7946), http: .init(host: "127.0.0.1", port: 7080),
                                  binary: nil, zone: "z", startedAt: 0x0102)
    /// A node with an SQS endpoint: its records need format version 2.
    static let sqsNode = Gossip.Node(id: "n2", gossip: .init(host: "127.0.0.1", port: 7947), http: .init(host: "127.0.0.1", port: 7081),
                                     binary: .init(host: "127.0.0.1", port: 7082), sqs: .init(host: "127.0.0.1", port: 9324),
                                     startedAt: 0x0304)

    /// Every message type, once.
    static let everyMessage: [Gossip.Message] = [
        .ping(sequence: 7, target: "n2"),
        .indirectPing(sequence: 8, target: "n3", address: .init(host: "10.1.2.3", port: 9), wantsNack: true),
        .ack(sequence: 7), .nack(sequence: 8),
        .update(.alive(node, incarnation: 3)), .update(.suspect("n2", incarnation: 4, source: "n1")),
        .update(.dead("n2", incarnation: 5, source: "n3")), .update(.left("n4", incarnation: 6)),
        .sync(replyWanted: true, join: true, members: [.init(node: node, state: .suspect, incarnation: 9)]),
        .update(.alive(sqsNode, incarnation: 4)),
        .sync(replyWanted: false, join: false, members: [.init(node: node, state: .alive, incarnation: 1),
                                                         .init(node: sqsNode, state: .alive, incarnation: 2)]),
    ]

    /// Node records in a message (each one byte smaller in a version-1 packet than
    /// ``Gossip/Codec/encodedBytes(_:)-(Message)`` counts).
    static func nodeRecords(_ message: Gossip.Message) -> Int {
        switch message {
        case .update(.alive): 1
        case .sync(_, _, let members): members.count
        default: 0
        }
    }

    @Test func everyMessage_roundTrips() throws {
        for message in Self.everyMessage {
            let packet = Gossip.Packet(sender: "n1", messages: [message])
            let bytes = Gossip.Codec.encode(packet)
            let version = Gossip.Codec.version(of: packet)
            #expect(bytes[2] == version)
            #expect(bytes.count == Gossip.Codec.headerBytes(sender: "n1") + Gossip.Codec.encodedBytes(message)
                    - (version == 1 ? Self.nodeRecords(message) : 0))
            #expect(try Gossip.Codec.decode(bytes) == packet)
        }
        let compound = Gossip.Packet(sender: "n1", messages: Self.everyMessage)
        #expect(try Gossip.Codec.decode(Gossip.Codec.encode(compound)) == compound)
    }

    /// The dumps in docs/gossip.md.
    @Test func documentedDumps_matchTheEncoder() {
        let ping = Gossip.Packet(sender: "a", messages: [.ping(sequence: 1, target: "b"), .update(.suspect("c", incarnation: 2, source: "a"))])
        #expect(Gossip.Codec.encode(ping) == hex("""
            54 47 01 00 01 61 02
            01 00 06 00 00 00 01 01 62
            06 00 0c 01 63 00 00 00 00 00 00 00 02 01 61
            """))
        let alive = Gossip.Packet(sender: "a", messages: [.update(.alive(Gossip.Node(id: "a", gossip: .init(host: "h", port: 7946),
                                                                                        startedAt: 5), incarnation: 1))])
        #expect(Gossip.Codec.encode(alive, tagged: true) == hex("""
            54 47 01 01 01 61 01
            05 00 19 00 00 00 00 00 00 00 01 01 61 01 68 1f 0a 00 00 00 00 00 00 00 00 00 00 05
            """))
    }

    /// Packets without an SQS address stay version 1 (readable by builds before version 2);
    /// one node record with it makes the whole packet version 2, and every record in it then
    /// carries an extension count.
    @Test func version_isOneUnlessANodeRecordHasAnExtensionField() throws {
        let plain = Gossip.Packet(sender: "n1", messages: [.update(.alive(Self.node, incarnation: 1)), .ping(sequence: 1, target: "n2")])
        #expect(Gossip.Codec.encode(plain)[2] == 1)
        let mixed = Gossip.Packet(sender: "n1", messages: [.update(.alive(Self.node, incarnation: 1)),
                                                           .update(.alive(Self.sqsNode, incarnation: 1))])
        let bytes = Gossip.Codec.encode(mixed)
        #expect(bytes[2] == 2)
        let decoded = try Gossip.Codec.decode(bytes)
        #expect(decoded == mixed)
        guard case .update(.alive(let node, _)) = decoded.messages[1] else { Issue.record("not an alive"); return }
        #expect(node.sqs == Gossip.Address(host: "127.0.0.1", port: 9324))
    }

    /// The version-2 dump in docs/gossip.md; a field of a later build (an unknown key) is
    /// skipped, a repeated key or a field whose value overruns it is rejected.
    @Test func versionTwo_nodeFields() throws {
        let node = Gossip.Node(id: "a", gossip: .init(host: "h", port: 7946), sqs: .init(host: "h", port: 9324), startedAt: 5)
        let alive = Gossip.Packet(sender: "a", messages: [.update(.alive(node, incarnation: 1))])
        let bytes = Gossip.Codec.encode(alive)
        #expect(bytes == hex("""
            54 47 02 00 01 61 01
            05 00 20 00 00 00 00 00 00 00 01 01 61 01 68 1f 0a 00 00 00 00 00 00 00 00 00 00 05
            01 01 04 01 68 24 6c
            """))
        // A second field of a later build (key 9, two bytes) after the SQS address: skipped.
        var later = bytes
        later[later.count - 7] = 2
        later += [0x09, 0x02, 0xAA, 0xBB]
        later[9] = 0x24
        #expect(try Gossip.Codec.decode(later) == alive)
        // The SQS key twice.
        var repeated = bytes
        repeated[repeated.count - 7] = 2
        repeated += [0x01, 0x04, 0x01, 0x68, 0x24, 0x6C]
        repeated[9] = 0x26
        #expect { try Gossip.Codec.decode(repeated) } throws: { ($0 as? GossipError)?.code == .malformedPacket }
        // A field length that overruns the message.
        var overrun = bytes
        overrun[overrun.count - 5] = 0x09
        #expect { try Gossip.Codec.decode(overrun) } throws: { ($0 as? GossipError)?.code == .malformedPacket }
        // A value longer than the address it holds.
        var long = bytes
        long[long.count - 5] = 0x05
        long.append(0x00)
        long[9] = 0x21
        #expect { try Gossip.Codec.decode(long) } throws: { ($0 as? GossipError)?.code == .malformedPacket }
        // The same node in a version-1 packet (as a build before version 2 sends it) has no SQS address.
        var old = Gossip.Codec.encode(Gossip.Packet(sender: "a", messages: [.update(.alive(Gossip.Node(id: "a", gossip: .init(host: "h", port: 7946), startedAt: 5), incarnation: 1))]))
        #expect(old[2] == 1)
        old[2] = 2  // without the extension count it is truncated as version 2
        #expect(throws: GossipError.self) { try Gossip.Codec.decode(old) }
    }

    @Test func tag_isExcludedFromTheMessages() throws {
        let packet = Gossip.Packet(sender: "n1", messages: [.ack(sequence: 1)])
        var bytes = Gossip.Codec.encode(packet, tagged: true)
        #expect(Gossip.Codec.isTagged(bytes))
        bytes += [UInt8](repeating: 0xAB, count: 32)
        #expect(try Gossip.Codec.decode(bytes) == packet)
        #expect(!Gossip.Codec.isTagged(Gossip.Codec.encode(packet)))
    }

    @Test func unknownMessageTypes_areSkipped() throws {
        var bytes = Gossip.Codec.encode(Gossip.Packet(sender: "n1", messages: [.ack(sequence: 1)]))
        bytes[bytes.count - 8] = 2  // count: two messages
        bytes += [0x7F, 0x00, 0x02, 0xAA, 0xBB]  // type 127, two bytes
        #expect(try Gossip.Codec.decode(bytes) == Gossip.Packet(sender: "n1", messages: [.ack(sequence: 1)]))
    }

    @Test func badPackets_areRejectedWithAStableCode() {
        let good = Gossip.Codec.encode(Gossip.Packet(sender: "n1", messages: [.ping(sequence: 1, target: "n2")]))
        let cases: [([UInt8], GossipError.Code)] = [
            ([], .malformedPacket),
            (Array("GET / HTTP/1.1".utf8), .malformedPacket),
            ([0x54, 0x47, 0x03, 0x00] + good.dropFirst(4), .unsupportedVersion),
            ([0x54, 0x47, 0x00, 0x00] + good.dropFirst(4), .unsupportedVersion),
            ([0x54, 0x47, 0x01, 0x04] + good.dropFirst(4), .malformedPacket),  // unknown flag
            (Array(good.dropLast()), .malformedPacket),                       // truncated
            (good + [0], .malformedPacket),                                   // trailing byte
            (Array(good.prefix(6)) + [0] + good.dropFirst(7), .malformedPacket),  // zero messages
        ]
        for (bytes, code) in cases {
            #expect { try Gossip.Codec.decode(bytes) } throws: { ($0 as? GossipError)?.code == code }
        }
        // An invalid node id (a space) and invalid UTF-8.
        var badID = Gossip.Codec.encode(Gossip.Packet(sender: "nx", messages: [.ack(sequence: 1)]))
        badID[6] = 0x20
        #expect(throws: GossipError.self) { try Gossip.Codec.decode(badID) }
        badID[6] = 0xFF
        #expect(throws: GossipError.self) { try Gossip.Codec.decode(badID) }
    }

    /// Random and mutated datagrams never crash the decoder, and those it rejects change nothing;
    /// those it accepts (mutations that stay well formed) re-encode to a packet that decodes equal.
    @Test func fuzz_randomAndMutatedPackets() {
        let iterations = Int(Environment.value("TERN_FUZZ_ITERATIONS") ?? "") ?? 20_000
        var random = SeededGenerator(seed: 0x60551F)
        let corpus = Self.everyMessage.map { Gossip.Codec.encode(Gossip.Packet(sender: "n1", messages: [$0, .ack(sequence: 2)])) }
            + [Gossip.Codec.encode(Gossip.Packet(sender: "node-1", messages: Self.everyMessage), tagged: true) + random.bytes(count: 32)]
        var accepted = 0, rejected = 0
        var instance = Fixture.instance(Fixture.a, knowing: [Fixture.b])
        let before = instance.members
        // Accepted packets go to another instance: whatever they say, it must not trap.
        var robust = Fixture.instance(Fixture.c, knowing: [Fixture.a, Fixture.b])
        var now = Duration.zero
        for i in 0..<iterations {
            var bytes: [UInt8]
            if i % 5 == 0 {
                bytes = random.bytes(count: Int.random(in: 0..<300, using: &random))
                if i % 10 == 0 && bytes.count > 3 { bytes[0] = 0x54; bytes[1] = 0x47; bytes[2] = UInt8(i % 20 == 0 ? 2 : 1); bytes[3] &= 1 }
            } else {
                bytes = corpus[Int.random(in: 0..<corpus.count, using: &random)]
                for _ in 0..<Int.random(in: 1...4, using: &random) {
                    guard !bytes.isEmpty else { break }
                    switch Int.random(in: 0..<4, using: &random) {
                    case 0: bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                    case 1: bytes.removeLast(Int.random(in: 0...min(8, bytes.count), using: &random))
                    case 2: bytes.insert(UInt8.random(in: 0...255, using: &random), at: Int.random(in: 0...bytes.count, using: &random))
                    default: bytes[Int.random(in: 0..<bytes.count, using: &random)] ^= 1 << UInt8.random(in: 0..<8, using: &random)
                    }
                }
            }
            do {
                let packet = try Gossip.Codec.decode(bytes)
                accepted += 1
                now += .milliseconds(10)
                for directive in robust.onMessage(packet, from: Fixture.b.gossip, now: now) {
                    if case .schedule(let timer, _) = directive { _ = robust.onTimer(timer, now: now + .seconds(60)) }
                }
                if !packet.messages.isEmpty {
                    #expect(try Gossip.Codec.decode(Gossip.Codec.encode(packet)) == packet)
                }
            } catch {
                rejected += 1
            }
        }
        // Nothing reached the instance: its view is untouched by rejected bytes.
        #expect(instance.members == before)
        _ = instance.onPeriodicTick(now: .seconds(1))
        #expect(rejected > iterations / 2)
        #expect(accepted > 0)
    }
}

func hex(_ text: String) -> [UInt8] {
    text.split(whereSeparator: { $0 == " " || $0 == "\n" }).map { UInt8($0, radix: 16)! }
}

enum Environment {
    static func value(_ name: String) -> String? {
        guard let raw = getenv(name) else { return nil }
        return String(cString: raw)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
