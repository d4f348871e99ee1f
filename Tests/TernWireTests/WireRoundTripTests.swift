import NIOCore
import Testing
import TernCore
import TernWire

@Suite struct WireRoundTripTests {
    @Test(arguments: WireSamples.requests)
    func request_encodedThenDecoded_isEqual(_ request: WireRequest) throws {
        let frame = request.frame(correlationID: 99)
        #expect(frame.apiKey == request.api.rawValue)
        #expect(try WireRequest(decoding: frame) == request)
    }

    @Test func response_encodedThenDecoded_isEqual_forEveryAPI() throws {
        for (api, response) in WireSamples.responses {
            let frame = response.frame(apiKey: api.rawValue, correlationID: 5)
            #expect(try WireResponse(decoding: frame) == response, "\(api)")
        }
    }

    @Test func everyAPI_hasARequestSampleAndAResponseSample() {
        #expect(Set(WireSamples.requests.map(\.api)) == Set(WireAPI.allCases))
        #expect(Set(WireSamples.responses.map(\.0)) == Set(WireAPI.allCases))
    }

    @Test func frameHeader_isSizeKeyVersionCorrelation_bigEndian() {
        let frame = WireRequest.listQueues.frame(correlationID: 0x0102_0304)
        #expect(Array(frame.bytes.readableBytesView) == [0, 0, 0, 8, 0, 3, 0, 0, 1, 2, 3, 4])
    }

    @Test func unknownAPIKey_isUnsupportedVersion() {
        let frame = WireFrame(apiKey: 999, apiVersion: 0, correlationID: 1, payload: ByteBuffer())
        #expect(throws: TernError.self) { try WireRequest(decoding: frame) }
        do { _ = try WireRequest(decoding: frame) } catch { #expect(error.code == .unsupportedVersion) }
    }

    @Test func unknownVersion_isUnsupportedVersion() {
        var frame = WireRequest.listQueues.frame(correlationID: 1)
        frame.apiVersion = 7
        do { _ = try WireRequest(decoding: frame); Issue.record("decoded") } catch { #expect(error.code == .unsupportedVersion) }
    }

    @Test(arguments: WireSamples.requests)
    func request_withAnyByteCutOff_isInvalidFrame(_ request: WireRequest) {
        let frame = request.frame(correlationID: 1)
        for length in 0..<frame.payload.readableBytes {
            var cut = frame
            cut.payload = frame.payload.getSlice(at: frame.payload.readerIndex, length: length)!
            do {
                let decoded = try WireRequest(decoding: cut)
                Issue.record("payload cut to \(length) bytes decoded as \(decoded)")
            } catch {
                #expect(error.code == .invalidFrame || error.code == .invalidAttribute)
            }
        }
    }

    @Test func request_withTrailingByte_isInvalidFrame() {
        var frame = WireRequest.describeQueue(name: "jobs").frame(correlationID: 1)
        frame.payload.writeInteger(UInt8(0))
        do { _ = try WireRequest(decoding: frame); Issue.record("decoded") } catch { #expect(error.code == .invalidFrame) }
    }

    @Test func string_withInvalidUTF8_isInvalidFrame() {
        var payload = ByteBuffer()
        payload.writeInteger(UInt16(2))
        payload.writeBytes([0xC3, 0x28])
        let frame = WireFrame(apiKey: WireAPI.describeQueue.rawValue, apiVersion: 0, correlationID: 1, payload: payload)
        do { _ = try WireRequest(decoding: frame); Issue.record("decoded") } catch { #expect(error.code == .invalidFrame) }
    }

    @Test func hugeArrayCount_isRejectedBeforeAllocating() {
        var payload = ByteBuffer()
        payload.writeWireString("jobs")
        payload.writeInteger(UInt8(0))
        payload.writeInteger(UInt32.max)
        let frame = WireFrame(apiKey: WireAPI.send.rawValue, apiVersion: 0, correlationID: 1, payload: payload)
        do { _ = try WireRequest(decoding: frame); Issue.record("decoded") } catch { #expect(error.code == .invalidFrame) }
    }

    @Test func errorResponse_carriesCodeNumberAndMessage() throws {
        let frame = WireResponse.error(TernError(.producerFenced, "epoch 1 < 2")).frame(apiKey: WireAPI.send.rawValue, correlationID: 3)
        var payload = frame.payload
        #expect(payload.readInteger(as: UInt16.self) == ErrorCode.producerFenced.number)
        #expect(try WireResponse(decoding: frame) == .error(TernError(.producerFenced, "epoch 1 < 2")))
    }
}

/// The topic and consumer-group APIs (keys 30–42): bounds-checked decoders for every request
/// and response (the round-trip and cut-off tests above cover their requests through
/// ``WireSamples/topicRequests``).
@Suite struct WireTopicCodecTests {
    @Test(arguments: WireSamples.requests)
    func request_withTrailingByte_isInvalidFrame(_ request: WireRequest) {
        var frame = request.frame(correlationID: 1)
        frame.payload.writeInteger(UInt8(0))
        do { _ = try WireRequest(decoding: frame); Issue.record("\(request.api) decoded with a trailing byte") } catch {
            #expect(error.code == .invalidFrame, "\(request.api)")
        }
    }

    @Test func topicResponses_encodedThenDecoded_areEqual() throws {
        for (api, response) in WireSamples.topicResponses {
            #expect(try WireResponse(decoding: response.frame(apiKey: api.rawValue, correlationID: 5)) == response, "\(api)")
        }
    }

    @Test func everyTopicAPI_hasRequestAndResponseSamples() {
        let topicAPIs = Set(WireAPI.allCases.filter { (30...42).contains($0.rawValue) })
        #expect(topicAPIs.count == 13)
        #expect(Set(WireSamples.topicRequests.map(\.api)) == topicAPIs)
        #expect(Set(WireSamples.topicResponses.map(\.0)) == topicAPIs)
    }

    @Test func response_withAnyByteCutOff_isInvalidFrame() {
        for (api, response) in WireSamples.responses {
            let frame = response.frame(apiKey: api.rawValue, correlationID: 1)
            for length in 0..<frame.payload.readableBytes {
                var cut = frame
                cut.payload = frame.payload.getSlice(at: frame.payload.readerIndex, length: length)!
                do {
                    let decoded = try WireResponse(decoding: cut)
                    Issue.record("\(api) response cut to \(length) bytes decoded as \(decoded)")
                } catch {
                    #expect(error.code == .invalidFrame, "\(api) cut to \(length)")
                }
            }
        }
    }

    @Test func response_withTrailingByte_isInvalidFrame() {
        for (api, response) in WireSamples.responses {
            var frame = response.frame(apiKey: api.rawValue, correlationID: 1)
            frame.payload.writeInteger(UInt8(0))
            do { _ = try WireResponse(decoding: frame); Issue.record("\(api) decoded with a trailing byte") } catch {
                #expect(error.code == .invalidFrame, "\(api)")
            }
        }
    }

    @Test func commitOffsets_namingAPartitionTwice_isInvalidFrame() {
        var payload = ByteBuffer()
        for text in ["logs", "indexer", "m-1"] { payload.writeWireString(text) }
        payload.writeInteger(UInt32(3))
        payload.writeInteger(UInt32(2))
        for offset: UInt64 in [5, 6] {
            payload.writeInteger(UInt32(1))
            payload.writeInteger(offset)
        }
        let frame = WireFrame(apiKey: WireAPI.commitOffsets.rawValue, apiVersion: 0, correlationID: 1, payload: payload)
        do { _ = try WireRequest(decoding: frame); Issue.record("decoded") } catch { #expect(error.code == .invalidFrame) }
    }

    @Test func resetOffsets_withAnUnknownTarget_isInvalidFrame() {
        var payload = ByteBuffer()
        payload.writeWireString("logs")
        payload.writeWireString("indexer")
        payload.writeInteger(UInt8(3))
        let frame = WireFrame(apiKey: WireAPI.resetOffsets.rawValue, apiVersion: 0, correlationID: 1, payload: payload)
        do { _ = try WireRequest(decoding: frame); Issue.record("decoded") } catch { #expect(error.code == .invalidFrame) }
    }

    @Test func produce_withAHugeMessageCount_isRejectedBeforeAllocating() {
        var payload = ByteBuffer()
        payload.writeWireString("logs")
        payload.writeInteger(UInt32.max)
        let frame = WireFrame(apiKey: WireAPI.produce.rawValue, apiVersion: 0, correlationID: 1, payload: payload)
        do { _ = try WireRequest(decoding: frame); Issue.record("decoded") } catch { #expect(error.code == .invalidFrame) }
    }

    @Test func topicPatch_maxBytesMarkerAbove2_isInvalidFrame() {
        var payload = ByteBuffer()
        payload.writeWireString("logs")
        payload.writeBytes([0, 0, 3])
        let frame = WireFrame(apiKey: WireAPI.createTopic.rawValue, apiVersion: 0, correlationID: 1, payload: payload)
        do { _ = try WireRequest(decoding: frame); Issue.record("decoded") } catch { #expect(error.code == .invalidFrame) }
    }
}
