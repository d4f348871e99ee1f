import Testing
import TernBroker
import TernCore
import TernTestKit

/// The 58-digit hex form of a receipt handle: what the broker hands out parses back to the same
/// delivery, in either case of hex digits; anything else is `InvalidReceiptHandle`.
@Suite struct ReceiptHandleCodecTests {
    @Test func randomHandles_roundTripThroughTheirHexForm() throws {
        var random = SeededGenerator(seed: 0x4A4D)
        for _ in 0..<2_000 {
            let handle = ReceiptHandle(queue: UInt32(truncatingIfNeeded: random.next()), sequence: random.next(),
                                       nonce: ReceiptNonce(high: random.next(), low: random.next() | 1))
            let text = handle.description
            #expect(text.utf8.count == 58)
            #expect(text.allSatisfy { "0123456789abcdef".contains($0) })
            #expect(try ReceiptHandle(parsing: text) == handle)
            #expect(try ReceiptHandle(parsing: text.uppercased()) == handle)
        }
    }

    @Test func theExtremes_roundTrip() throws {
        let handle = ReceiptHandle(queue: .max, sequence: .max, nonce: ReceiptNonce(high: .max, low: .max))
        #expect(handle.description == "01" + String(repeating: "f", count: 56))
        #expect(try ReceiptHandle(parsing: handle.description) == handle)
    }

    @Test(arguments: [
        ("", "58 hex digits"), ("01", "58 hex digits"), ("02" + String(repeating: "0", count: 55) + "1", "version 2"),
        ("01" + String(repeating: "0", count: 55) + "g", "hex digits"), ("01" + String(repeating: "0", count: 56), "empty nonce"),
        ("０1" + String(repeating: "0", count: 56), "58 hex digits"),
    ])
    func malformed_isInvalidReceiptHandle(text: String, mentions: String) {
        do {
            _ = try ReceiptHandle(parsing: text)
            Issue.record("\(text) parsed")
        } catch {
            #expect(error.code == .invalidReceiptHandle)
            #expect(error.message.contains(mentions), "\(error.message)")
        }
    }
}
