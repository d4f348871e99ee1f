import NIOCore
import Testing
import TernCore
import TernTestKit
import TernWire

/// The node-to-node frames (`PeerHello`, key 61; `RaftBatch`, key 62; `SnapshotChunk`, key 63): round trips, the
/// documented bytes, the bounds, and the decoder under every truncation, bit flips and noise.
@Suite struct WireRaftTests {
    static func decode(_ payload: [UInt8], api: WireAPI) throws(TernError) -> WireRequest {
        try WireRequest(decoding: WireFrame(apiKey: api.rawValue, apiVersion: 0, correlationID: 1, payload: ByteBuffer(bytes: payload)))
    }

    static func payload(_ request: WireRequest) -> [UInt8] {
        Array(request.frame(correlationID: 1).payload.readableBytesView)
    }

    /// The code `payload` is refused with as a request of `api`; nil when it decodes.
    static func code(_ payload: [UInt8], api: WireAPI) -> ErrorCode? {
        do { _ = try decode(payload, api: api) } catch { return error.code }
        return nil
    }

    @Test(arguments: WireSamples.peerRequests)
    func peerRequest_encodedThenDecoded_isEqual(_ request: WireRequest) throws {
        let frame = request.frame(correlationID: 7)
        #expect(frame.apiKey == request.api.rawValue)
        #expect(try WireRequest(decoding: frame) == request)
    }

    @Test func peerAPIs_areNodeToNode_andNoOtherIs() {
        #expect(WireAPI.allCases.filter(\.isNodeToNode) == [.peerHello, .raftBatch, .snapshotChunk, .forward])
        #expect(WireAPI.peerHello.rawValue == 61 && WireAPI.raftBatch.rawValue == 62 && WireAPI.snapshotChunk.rawValue == 63)
        #expect(WireAPI.forward.rawValue == 64)
    }

    /// The dumps of `docs/protocol.md`, "Node to node".
    @Test func documentedDumps_matchTheEncoder() {
        let hello = WireRequest.peerHello(WirePeerHello(nodeID: "n1", target: 0x0102_0304_0506_0708, timestamp: 1_735_689_600_000,
                                                        nonce: Array(0..<16)))
        #expect(Array(hello.frame(correlationID: 1).bytes.readableBytesView) == ProtocolDocumentTests.hex("""
            00 00 00 2d 00 3d 00 00 00 00 00 01 00 02 6e 31 01 02 03 04 05 06 07 08 00 00 01 94 1f 29 7c 00
            00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 00
            """))
        #expect(Array(WireResponse.done.frame(apiKey: WireAPI.peerHello.rawValue, correlationID: 1).bytes.readableBytesView)
                == ProtocolDocumentTests.hex("00 00 00 0a 00 3d 00 00 00 00 00 01 00 00"))
        let batch = WireRequest.raftBatch(WireRaftBatch(from: "n1", messages: [.init(group: 5, bytes: [0xAA, 0xBB])]))
        #expect(Array(batch.frame(correlationID: 2).bytes.readableBytesView) == ProtocolDocumentTests.hex("""
            00 00 00 1e 00 3e 00 00 00 00 00 02 00 02 6e 31 00 00 00 01 00 00 00 00 00 00 00 05 00 00 00 02 aa bb
            """))
    }

    /// The `SnapshotChunk` dumps of `docs/protocol.md`, "Node to node".
    @Test func documentedSnapshotChunkDumps_matchTheEncoder() {
        let request = WireRequest.snapshotChunk(WireSnapshotChunkRequest(group: 1, snapshotID: 0, minApplied: 977, offset: 0, maxBytes: 1 << 20))
        #expect(Array(request.frame(correlationID: 11).bytes.readableBytesView) == ProtocolDocumentTests.hex("""
            00 00 00 2c 00 3f 00 00 00 00 00 0b 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00
            00 00 03 d1 00 00 00 00 00 00 00 00 00 10 00 00
            """))
        let chunk = WireResponse.snapshotChunk(WireSnapshotChunk(snapshotID: 0xABCD, group: 1, applied: 977, totalBytes: 5,
                                                                 checksum: 0xDEAD_BEEF, offset: 2, data: [1, 2, 3]))
        #expect(Array(chunk.frame(apiKey: WireAPI.snapshotChunk.rawValue, correlationID: 11).bytes.readableBytesView)
                == ProtocolDocumentTests.hex("""
            00 00 00 3d 00 3f 00 00 00 00 00 0b 00 00 00 00 00 00 00 00 ab cd 00 00 00 00 00 00 00 01 00 00
            00 00 00 00 03 d1 00 00 00 00 00 00 00 05 de ad be ef 00 00 00 00 00 00 00 02 00 00 00 03 01 02
            03
            """))
    }

    @Test func snapshotChunkBounds_areEnforced() throws {
        func request(maxBytes: UInt32) -> [UInt8] {
            var buffer = ByteBuffer()
            for value: UInt64 in [1, 0, 5, 0] { buffer.writeInteger(value) }
            buffer.writeInteger(maxBytes)
            return Array(buffer.readableBytesView)
        }
        #expect(Self.code(request(maxBytes: 0), api: .snapshotChunk) == .invalidFrame, "no bytes asked")
        #expect(Self.code(request(maxBytes: UInt32(WireSnapshotChunkRequest.maxChunkBytes) + 1), api: .snapshotChunk) == .invalidFrame)
        #expect(Self.code(request(maxBytes: UInt32(WireSnapshotChunkRequest.maxChunkBytes)), api: .snapshotChunk) == nil)

        func response(total: UInt64, offset: UInt64, data: [UInt8]) -> WireFrame {
            var buffer = ByteBuffer()
            buffer.writeInteger(UInt16(0))
            for value: UInt64 in [9, 1, 4, total] { buffer.writeInteger(value) }
            buffer.writeInteger(UInt32(0))
            buffer.writeInteger(offset)
            buffer.writeWireBytes(data)
            return WireFrame(apiKey: WireAPI.snapshotChunk.rawValue, apiVersion: 0, correlationID: 1, payload: buffer)
        }
        #expect(throws: TernError.self) { try WireResponse(decoding: response(total: 4, offset: 2, data: [1, 2, 3])) }
        #expect(throws: TernError.self) { try WireResponse(decoding: response(total: 4, offset: 5, data: [])) }
        #expect(throws: TernError.self) {
            try WireResponse(decoding: response(total: 1 << 30, offset: 0, data: Array(repeating: 0, count: WireSnapshotChunkRequest.maxChunkBytes + 1)))
        }
        #expect(try WireResponse(decoding: response(total: 4, offset: 1, data: [1, 2, 3]))
                == .snapshotChunk(WireSnapshotChunk(snapshotID: 9, group: 1, applied: 4, totalBytes: 4, checksum: 0, offset: 1, data: [1, 2, 3])))
    }

    /// The `SnapshotChunk` answer under truncation, flipped bits and noise: refused with
    /// `InvalidFrame`, or decoded to a value that encodes back to the same bytes.
    @Test func mutatedSnapshotChunkAnswers_neverCrash_andDecodeOnlyToValuesThatRoundTrip() {
        var random = SeededGenerator(seed: 0x5AF7_0063)
        let seed = WireResponse.snapshotChunk(WireSnapshotChunk(snapshotID: 3, group: 1, applied: 80, totalBytes: 40, checksum: 7,
                                                                offset: 30, data: Array(0..<10)))
        let bytes = Array(seed.frame(apiKey: WireAPI.snapshotChunk.rawValue, correlationID: 1).payload.readableBytesView)
        func decode(_ payload: [UInt8]) throws(TernError) -> WireResponse {
            try WireResponse(decoding: WireFrame(apiKey: WireAPI.snapshotChunk.rawValue, apiVersion: 0, correlationID: 1,
                                                 payload: ByteBuffer(bytes: payload)))
        }
        for length in 0..<bytes.count {
            #expect(throws: TernError.self) { try decode(Array(bytes[..<length])) }
        }
        var decoded = 0, refused = 0
        for iteration in 0..<10_000 {
            var mutated = bytes
            for _ in 0...(random.next() % 3) {
                let position = Int(random.next() % UInt64(mutated.count))
                switch random.next() % 3 {
                case 0: mutated[position] ^= 1 << (random.next() % 8)
                case 1: mutated[position] = UInt8(truncatingIfNeeded: random.next())
                default: mutated.insert(UInt8(truncatingIfNeeded: random.next()), at: position)
                }
            }
            do {
                let response = try decode(mutated)
                decoded += 1
                let again = Array(response.frame(apiKey: WireAPI.snapshotChunk.rawValue, correlationID: 1).payload.readableBytesView)
                if case .snapshotChunk(let chunk) = response {
                    #expect(again == mutated, "seed \(random.seed) iteration \(iteration)")
                    #expect(chunk.offset + UInt64(chunk.data.count) <= chunk.totalBytes)
                }
            } catch {
                refused += 1
                #expect(error.code == .invalidFrame, "seed \(random.seed) iteration \(iteration): \(error)")
            }
        }
        #expect(decoded > 0 && refused > 0)
    }

    @Test func authenticatedBytes_areTheContextAndEveryFieldButTheProof() {
        let hello = WirePeerHello(nodeID: "n1", target: 9, timestamp: 10, nonce: Array(repeating: 1, count: 16))
        var proven = hello
        proven.proof = Array(repeating: 2, count: 32)
        #expect(proven.authenticatedBytes == hello.authenticatedBytes, "the proof cannot cover itself")
        #expect(hello.authenticatedBytes.starts(with: Array("tern-peer-hello-v1".utf8)))
        let payload = Self.payload(.peerHello(hello))
        #expect(Array(hello.authenticatedBytes.dropFirst(WirePeerHello.proofContext.count)) == Array(payload.dropLast()),
                "the fields as encoded, without the proof's presence byte")
        var other = hello
        other.target = 8
        #expect(other.authenticatedBytes != hello.authenticatedBytes, "the target is covered")
        other = hello
        other.timestamp = 11
        #expect(other.authenticatedBytes != hello.authenticatedBytes, "the timestamp is covered")
    }

    @Test func batchBounds_areEnforced() throws {
        // An empty sender id.
        var bad = ByteBuffer()
        bad.writeWireString("")
        bad.writeInteger(UInt32(0))
        #expect(Self.code(Array(bad.readableBytesView), api: .raftBatch) == .invalidFrame)
        // A count above the limit (with enough bytes behind it to pass the length check).
        var many = ByteBuffer()
        many.writeWireString("n1")
        many.writeInteger(UInt32(WireRaftBatch.maxMessages + 1))
        for _ in 0...WireRaftBatch.maxMessages {
            many.writeInteger(UInt64(0))
            many.writeInteger(UInt32(0))
        }
        #expect(Self.code(Array(many.readableBytesView), api: .raftBatch) == .invalidFrame)
        // A count announcing more messages than bytes follow.
        var short = ByteBuffer()
        short.writeWireString("n1")
        short.writeInteger(UInt32(1_000_000))
        #expect(Self.code(Array(short.readableBytesView), api: .raftBatch) == .invalidFrame)
        // An empty message.
        let empty = Self.payload(.raftBatch(WireRaftBatch(from: "n1", messages: [.init(group: 1, bytes: [])])))
        #expect(Self.code(empty, api: .raftBatch) == .invalidFrame)
        // Trailing bytes.
        let trailing = Self.payload(.raftBatch(WireRaftBatch(from: "n1", messages: []))) + [0]
        #expect(Self.code(trailing, api: .raftBatch) == .invalidFrame)
        // The most messages decode.
        let full = WireRaftBatch(from: "n1", messages: Array(repeating: .init(group: 3, bytes: [1]), count: WireRaftBatch.maxMessages))
        #expect(try Self.decode(Self.payload(.raftBatch(full)), api: .raftBatch) == .raftBatch(full))
        #expect(full.payloadBytes == Self.payload(.raftBatch(full)).count)
    }

    @Test func helloMarkers_areChecked() {
        let hello = WirePeerHello(nodeID: "n1", target: 1, timestamp: 2, nonce: Array(repeating: 3, count: 16))
        var payload = Self.payload(.peerHello(hello))
        payload[payload.count - 1] = 2
        #expect(Self.code(payload, api: .peerHello) == .invalidFrame, "presence byte 2")
        payload[payload.count - 1] = 1
        #expect(Self.code(payload, api: .peerHello) == .invalidFrame, "a proof announced, none follows")
        var long = ByteBuffer()
        long.writeWireString(String(repeating: "n", count: 256))
        #expect(Self.code(Array(long.readableBytesView), api: .peerHello) == .invalidFrame, "a 256-byte node id")
    }

    /// Every prefix of every sample is refused with `InvalidFrame` (never a crash, never a
    /// wrong value), and so is every sample with a byte appended.
    @Test func everyTruncation_isInvalidFrame() {
        for request in WireSamples.peerRequests {
            let payload = Self.payload(request)
            for length in 0..<payload.count {
                #expect(Self.code(Array(payload[..<length]), api: request.api) == .invalidFrame,
                        "\(request.api) cut at \(length) of \(payload.count)")
            }
            #expect(Self.code(payload + [0x42], api: request.api) == .invalidFrame)
        }
    }

    /// Flipped bits, changed, removed and inserted bytes, and plain noise: the decoder either
    /// refuses with `InvalidFrame` or decodes a value that encodes back to the same bytes.
    @Test func mutatedAndRandomPayloads_neverCrash_andDecodeOnlyToValuesThatRoundTrip() {
        var random = SeededGenerator(seed: 0x5AF7_0062)
        var decoded = 0, refused = 0
        let seeds = WireSamples.peerRequests.map { ($0.api, Self.payload($0)) }
        for iteration in 0..<20_000 {
            let (api, seed) = seeds[Int(random.next() % UInt64(seeds.count))]
            var bytes = seed
            if iteration % 5 == 0 {
                bytes = random.bytes(count: Int(random.next() % 96))
            } else {
                for _ in 0...(random.next() % 3) {
                    guard !bytes.isEmpty else { break }
                    let position = Int(random.next() % UInt64(bytes.count))
                    switch random.next() % 4 {
                    case 0: bytes[position] ^= 1 << (random.next() % 8)
                    case 1: bytes[position] = UInt8(truncatingIfNeeded: random.next())
                    case 2: bytes.remove(at: position)
                    default: bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: position)
                    }
                }
            }
            do {
                let request = try Self.decode(bytes, api: api)
                decoded += 1
                #expect(Self.payload(request) == bytes, "seed \(random.seed) iteration \(iteration)")
            } catch {
                refused += 1
                #expect(error.code == .invalidFrame, "seed \(random.seed) iteration \(iteration): \(error)")
            }
        }
        #expect(decoded > 0 && refused > 0)
    }
}
