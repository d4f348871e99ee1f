import NIOCore
import Testing
import TernCore
import TernWire

/// The `Forward` frame (API key 64, decision 133): its layout as `docs/protocol.md` shows it,
/// and what it may carry. Truncation, trailing bytes and mutations are covered with the other
/// node-to-node samples (``WireSamples/peerRequests``, `WireRaftTests`).
@Suite struct WireForwardTests {
    @Test func documentedDumps_matchTheEncoder() {
        let bare = WireRequest.forward(WireForward(forwarding: WireRequest.listQueues.frame(correlationID: 9), token: nil))
        #expect(Array(bare.frame(correlationID: 1).bytes.readableBytesView) == ProtocolDocumentTests.hex(
            "00 00 00 11 00 40 00 00 00 00 00 01 00 00 03 00 00 00 00 00 00"))
        let withToken = WireRequest.forward(WireForward(forwarding: WireRequest.listQueues.frame(correlationID: 9), token: "t1"))
        #expect(Array(withToken.frame(correlationID: 1).bytes.readableBytesView) == ProtocolDocumentTests.hex(
            "00 00 00 15 00 40 00 00 00 00 00 01 01 00 02 74 31 00 03 00 00 00 00 00 00"))
        // The answer: the forwarded request's response payload under the Forward's header.
        let answer = WireResponse.queues([]).frame(apiKey: WireAPI.listQueues.rawValue, correlationID: 1)
        let relayed = WireFrame(apiKey: WireAPI.forward.rawValue, apiVersion: 0, correlationID: 1, payload: answer.payload)
        #expect(Array(relayed.bytes.readableBytesView) == ProtocolDocumentTests.hex("00 00 00 0e 00 40 00 00 00 00 00 01 00 00 00 00 00 00"))
    }

    @Test func theForwardedRequest_comesBackByteForByte() throws {
        let send = WireRequest.send(queue: "jobs", producer: WireProducerStamp(producerID: 7, epoch: 1, firstSequence: 3),
                                    messages: [OutgoingMessage(body: Array(repeating: 0xAB, count: 1000))])
        let client = send.frame(correlationID: 0xDEAD)
        guard case .forward(let forward) = try WireRequest(decoding: WireRequest.forward(WireForward(forwarding: client, token: "tok"))
            .frame(correlationID: 5)) else { Issue.record("not a Forward"); return }
        #expect(forward.token == "tok")
        let inner = forward.frame(correlationID: client.correlationID)
        #expect(inner == client, "key, version and payload as the client sent them")
        #expect(try WireRequest(decoding: inner) == send)
    }

    /// The handshake and node-to-node frames cannot travel in a `Forward` (a `Forward` in a
    /// `Forward` would be forwarding twice); unknown keys can (the leader answers
    /// `UnsupportedVersion` as it would have to the client).
    @Test func forwardOfTheHandshakeOrANodeToNodeFrame_isInvalidFrame() {
        let refused: [WireAPI] = [.apiVersions, .authenticate, .peerHello, .raftBatch, .snapshotChunk, .forward]
        for api in refused {
            let frame = WireRequest.forward(WireForward(token: nil, apiKey: api.rawValue, apiVersion: 0, payload: ByteBuffer()))
                .frame(correlationID: 1)
            do {
                _ = try WireRequest(decoding: frame)
                Issue.record("a Forward carrying \(api) decoded")
            } catch {
                #expect(error.code == .invalidFrame && error.message.contains("\(api)"), "\(error)")
            }
            #expect(!WireForward.mayCarry(apiKey: api.rawValue))
        }
        for api in WireAPI.allCases where !refused.contains(api) { #expect(WireForward.mayCarry(apiKey: api.rawValue), "\(api)") }
        #expect(WireForward.mayCarry(apiKey: 0x7777))
    }

    /// The answer frame of a `Forward` is not decoded as such: its payload belongs to the
    /// forwarded request's API.
    @Test func aForwardAnswer_isDecodedWithTheForwardedRequestsKey() {
        let answer = WireResponse.queues([]).frame(apiKey: WireAPI.listQueues.rawValue, correlationID: 1)
        let relayed = WireFrame(apiKey: WireAPI.forward.rawValue, apiVersion: 0, correlationID: 1, payload: answer.payload)
        #expect(throws: TernError.self) { try WireResponse(decoding: relayed) }
        var asClient = relayed
        asClient.apiKey = WireAPI.listQueues.rawValue
        #expect((try? WireResponse(decoding: asClient)) == .queues([]))
    }
}
