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
