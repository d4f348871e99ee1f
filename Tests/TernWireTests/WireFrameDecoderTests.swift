import NIOCore
import Testing
import TernCore
import TernTestKit
import TernWire

@Suite struct WireFrameDecoderTests {
    /// Decodes `stream` fed in chunks of `chunk` bytes (0 = all at once), then ends the stream.
    static func decode(_ stream: ByteBuffer, chunk: Int, settings: WireSettings = WireSettings()) throws -> [WireFrame] {
        let processor = NIOSingleStepByteToMessageProcessor(WireFrameDecoder(settings: settings))
        var frames = [WireFrame]()
        var rest = stream
        while rest.readableBytes > 0 {
            let take = chunk == 0 ? rest.readableBytes : min(chunk, rest.readableBytes)
            try processor.process(buffer: rest.readSlice(length: take)!) { frames.append($0) }
        }
        try processor.finishProcessing(seenEOF: true) { frames.append($0) }
        return frames
    }

    @Test func byteByByte_andInBatches_yieldTheSameFrames() throws {
        let stream = WireSamples.stream()
        let whole = try Self.decode(stream, chunk: 0)
        #expect(whole.count == WireSamples.requests.count + WireSamples.responses.count)
        for chunk in [1, 2, 3, 7, 13, 64, 1000] {
            #expect(try Self.decode(stream, chunk: chunk) == whole, "chunk \(chunk)")
        }
        for (index, request) in WireSamples.requests.enumerated() {
            #expect(whole[index].correlationID == UInt32(index))
            #expect(try WireRequest(decoding: whole[index]) == request)
        }
    }

    @Test func partialFrame_yieldsNothingUntilComplete() throws {
        let bytes = WireRequest.describeQueue(name: "jobs").frame(correlationID: 1).bytes
        var decoder = WireFrameDecoder()
        for length in 0..<bytes.readableBytes {
            var prefix = bytes.getSlice(at: 0, length: length)!
            #expect(try decoder.decode(buffer: &prefix) == nil)
            #expect(prefix.readableBytes == length, "a partial frame consumes nothing")
        }
        var all = bytes
        #expect(try decoder.decode(buffer: &all) != nil)
        #expect(all.readableBytes == 0)
    }

    @Test func frameAboveMaximum_isFrameTooLarge_beforeItsPayloadArrives() {
        var settings = WireSettings()
        settings.maxFrameBytes = 1024
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(1025))
        var decoder = WireFrameDecoder(settings: settings)
        do { _ = try decoder.decode(buffer: &buffer); Issue.record("decoded") } catch let error as TernError {
            #expect(error.code == .frameTooLarge)
        } catch { Issue.record("unexpected \(error)") }
    }

    @Test func sizeBelowHeader_isInvalidFrame() {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(7))
        var decoder = WireFrameDecoder()
        do { _ = try decoder.decode(buffer: &buffer); Issue.record("decoded") } catch let error as TernError {
            #expect(error.code == .invalidFrame)
        } catch { Issue.record("unexpected \(error)") }
    }

    @Test func streamEndingInsideAFrame_isInvalidFrame() {
        var stream = WireRequest.listQueues.frame(correlationID: 1).bytes
        stream.writeBytes([0, 0, 0, 20, 0])
        #expect(throws: TernError.self) { try Self.decode(stream, chunk: 3) }
    }
}

/// A bounded property test in place of a libFuzzer target: random and mutated frames must
/// decode or fail with a ``TernError``, never trap, and a decoded request re-encodes to itself.
@Suite struct WireFuzzTests {
    static let iterations = 200_000

    @Test func randomAndMutatedFrames_neverTrap_andDecodedOnesRoundTrip() throws {
        var random = SeededGenerator(seed: 0x7E2A_F00D)
        let seeds = WireSamples.requests.map { $0.frame(correlationID: 1) }
            + WireSamples.responses.map { $0.1.frame(apiKey: $0.0.rawValue, correlationID: 1) }
        var settings = WireSettings()
        settings.maxFrameBytes = 1 << 16
        var decodedRequests = 0, rejected = 0
        for iteration in 0..<Self.iterations {
            var bytes: [UInt8]
            if iteration % 4 == 0 {
                bytes = random.bytes(count: Int(random.next() % 64))
            } else {
                bytes = Array(seeds[Int(random.next() % UInt64(seeds.count))].bytes.readableBytesView)
                for _ in 0...(random.next() % 4) {
                    guard !bytes.isEmpty else { break }
                    let position = Int(random.next() % UInt64(bytes.count))
                    switch random.next() % 4 {
                    case 0: bytes[position] = UInt8(truncatingIfNeeded: random.next())
                    case 1: bytes[position] ^= 1 << (random.next() % 8)
                    case 2: bytes.remove(at: position)
                    default: bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: position)
                    }
                }
            }
            var buffer = ByteBuffer(bytes: bytes)
            var decoder = WireFrameDecoder(settings: settings)
            do {
                while let frame = try decoder.decode(buffer: &buffer) {
                    if let request = try? WireRequest(decoding: frame) {
                        decodedRequests += 1
                        let again = request.frame(correlationID: frame.correlationID)
                        #expect(try WireRequest(decoding: again) == request, "seed \(random.seed) iteration \(iteration)")
                    } else {
                        rejected += 1
                    }
                    _ = try? WireResponse(decoding: frame)
                }
            } catch is TernError {
                rejected += 1
            }
        }
        #expect(decodedRequests > 0)
        #expect(rejected > 0)
    }
}
