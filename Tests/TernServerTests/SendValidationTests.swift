import Foundation
import Hummingbird
import TernCore
@testable import TernServer
import TernTestKit
import Testing

/// BRIEF §3 "Bodies", "Priority", "Delay" and the batch form of send, over HTTP: every
/// rejected send stores nothing.
@Suite struct MessageBodyTests {
    /// Sends `body` as the raw request body to queue `q` and checks the error and that the
    /// broker state did not change.
    static func expectRejected(_ bytes: [UInt8], _ code: ErrorCode, _ f: ServerFixture,
                               sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await expectRejected(bytes, oneOf: [code], f, sourceLocation: sourceLocation)
    }

    /// As ``expectRejected(_:_:_:sourceLocation:)``, accepting any of `codes` (all of one status).
    static func expectRejected(_ bytes: [UInt8], oneOf codes: [ErrorCode], _ f: ServerFixture,
                               sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await f.run { api in
            try await api.createQueue("q")
            let before = try await api.snapshot()
            let reply = try await api.request(.post, "/queues/q/messages", bytes: bytes)
            let comment = String(decoding: bytes, as: UTF8.self)
            #expect(reply.status == codes[0].httpStatus, "\(reply) for \(comment)", sourceLocation: sourceLocation)
            #expect(codes.map(\.name).contains(reply.errorCode ?? ""), "\(reply) for \(comment)", sourceLocation: sourceLocation)
            expectErrorShape(reply, sourceLocation: sourceLocation)
            #expect(try await api.snapshot() == before, sourceLocation: sourceLocation)
            #expect(try await api.receive("q").isEmpty, sourceLocation: sourceLocation)
        }
    }

    @Test(arguments: [
        "{}", "{\"priority\": 1}", "{\"message\": \"\"}", "{\"message\": 5}", "{\"message\": null}",
        "{\"message\": {\"text\": \"hi\"}}", "{\"message\": [\"hi\"]}", "{\"message\": true}", "{\"message\": 1.5}",
    ])
    func missingEmptyOrNonStringMessage_isInvalidMessage(body: String) async throws {
        try await Self.expectRejected(body.bytes, .invalidMessage, try await ServerFixture())
    }

    @Test(arguments: [
        "", "   ", "{", "{\"message\": \"unterminated}", "{\"message\": 'single'}", "not json", "[]",
        "[{\"message\": \"a\"}]", "\"just a string\"", "42", "null", "{\"message\" \"a\"}",
        "{\"message\": \"a\"} trailing", "{\"message\": \"a\"}{}",
    ])
    func bodyThatIsNotAJSONObject_isInvalidJSON(body: String) async throws {
        try await Self.expectRejected(body.bytes, .invalidJSON, try await ServerFixture())
    }

    /// RFC 8259 has no trailing commas; Foundation's JSONDecoder accepts them.
    @Test(arguments: ["{\"message\": \"a\",}", "{\"messages\": [{\"message\": \"a\"},]}", "{\"message\": \"a\", \"priority\": 1,}"])
    func trailingComma_isInvalidJSON(body: String) async throws {
        try await Self.expectRejected(body.bytes, .invalidJSON, try await ServerFixture())
    }

    /// Text that is not valid Unicode inside the message string is a `400` and nothing is
    /// stored. Foundation's JSONDecoder validates string contents only when the string is
    /// decoded, so the server reports these as `InvalidMessage` ("must be a JSON string of
    /// valid Unicode"); `InvalidJSON` would be as right.
    static let notUnicode: [ErrorCode] = [.invalidJSON, .invalidMessage]

    /// A lone surrogate escape is not valid Unicode: it must be rejected, never stored as
    /// U+FFFD or as invalid UTF-8.
    @Test(arguments: [
        #"{"message": "\ud800"}"#, #"{"message": "a\udc00b"}"#, #"{"message": "\ud800\u0041"}"#,
        #"{"message": "\ude00\ud83d"}"#, #"{"message": "\udbff"}"#,
    ])
    func loneSurrogateEscape_is400_andStoresNothing(body: String) async throws {
        try await Self.expectRejected(body.bytes, oneOf: Self.notUnicode, try await ServerFixture())
    }

    @Test(arguments: [#"{"message": "bad escape \x41"}"#, #"{"message": "\u12"}"#, #"{"message": "\uZZZZ"}"#,
                      "{\"message\": \"raw\u{1}control\"}", "{\"message\": \"raw\nnewline\"}"])
    func invalidEscapeOrRawControlCharacter_is400_andStoresNothing(body: String) async throws {
        try await Self.expectRejected(body.bytes, oneOf: Self.notUnicode, try await ServerFixture())
    }

    /// Raw bytes that are not UTF-8 inside the JSON string: rejected, never stored.
    @Test(arguments: [
        [0xFF], [0xFE, 0xFF], [0xC3], [0xE2, 0x82], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80],
        [0x80], [0x61, 0xF0, 0x9F, 0x98],
    ] as [[UInt8]])
    func invalidUTF8InTheBody_is400_andStoresNothing(raw: [UInt8]) async throws {
        let body = Array("{\"message\": \"x".utf8) + raw + Array("y\"}".utf8)
        try await Self.expectRejected(body, oneOf: Self.notUnicode, try await ServerFixture())
    }

    /// Invalid UTF-8 outside the message string (in a key, in another field) is rejected too.
    @Test(arguments: [
        Array("{\"message\": \"a\", \"k".utf8) + [0xFF] + Array("\": 1}".utf8),
        Array("{\"message\": \"a\"}".utf8) + [0xFF],
        [0xFF] + Array("{\"message\": \"a\"}".utf8),
        [0xEF, 0xBB, 0xBF] + Array("{\"message\": \"a\", \"priority\": 1".utf8) + [0xC0] + Array("}".utf8),
    ] as [[UInt8]])
    func invalidUTF8OutsideTheMessage_is400_andStoresNothing(body: [UInt8]) async throws {
        try await Self.expectRejected(body, oneOf: [.invalidJSON, .invalidParameter], try await ServerFixture())
    }

    /// A request above the server's limit is `413 RequestTooLarge`, whatever the queue allows.
    @Test
    func requestAboveTheServersLimit_isRequestTooLarge_andStoresNothing() async throws {
        var settings = HTTPAPI.Settings()
        settings.maxRequestBytes = 100
        let f = try await ServerFixture(settings: settings)
        try await f.run { api in
            try await api.createQueue("q")
            let large = "{\"message\": \"\(String(repeating: "x", count: 100))\"}"
            expectError(try await api.request(.post, "/queues/q/messages", large), .requestTooLarge)
            expectError(try await api.request(.put, "/queues/q", "{\"retention\": 60\(String(repeating: " ", count: 100))}"),
                        .requestTooLarge)
            #expect(try await api.describe("q").messages.total == 0)
            #expect(try await api.describe("q").attributes.retention == 604_800)
            try await api.send("q", String(repeating: "x", count: 50))
        }
    }

    @Test func unknownField_isInvalidParameter() async throws {
        try await Self.expectRejected("{\"message\": \"a\", \"colour\": \"red\"}".bytes, .invalidParameter, try await ServerFixture())
    }

    /// The limit is in UTF-8 bytes: "é" is 2 bytes, "€" 3; exactly at the limit is accepted,
    /// one byte over is `413 MessageTooLarge`.
    @Test func bodyExactlyAtMaxMessageBytes_isAccepted_oneByteOver_is413() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q", "{\"max_message_bytes\": 10}")
            let atLimit = "éééé" + "ab"
            #expect(atLimit.count == 6 && atLimit.utf8.count == 10)
            let over = "ééééé" + "a"
            #expect(over.count == 6 && over.utf8.count == 11)

            let before = try await api.snapshot()
            let rejected = try await api.request(.post, "/queues/q/messages", "{\"message\": \(API.jsonString(over))}")
            expectError(rejected, .messageTooLarge)
            #expect(try await api.snapshot() == before)

            try await api.send("q", atLimit)
            let received = try await api.receive("q")
            #expect(received.map { $0.body.bytes } == [atLimit.bytes])
            #expect(try await api.describe("q").bytes == 10)
        }
    }

    @Test func defaultLimitOf1MiB_isCountedInUTF8Bytes() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            let atLimit = String(repeating: "€", count: 349_525) + "a"
            #expect(atLimit.utf8.count == 1_048_576)
            let over = atLimit + "b"
            expectError(try await api.request(.post, "/queues/q/messages", "{\"message\": \(API.jsonString(over))}"),
                        .messageTooLarge)
            #expect(try await api.describe("q").messages.total == 0)
            try await api.send("q", atLimit)
            let received = try await api.receive("q")
            #expect(received.count == 1)
            #expect(received.first?.body.bytes == atLimit.bytes)
        }
    }

    @Test func oneByteBody_isAccepted() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q", "{\"max_message_bytes\": 1}")
            try await api.send("q", "x")
            expectError(try await api.request(.post, "/queues/q/messages", "{\"message\": \"é\"}"), .messageTooLarge)
            #expect(try await api.receive("q").map { $0.body } == ["x"])
        }
    }

    static let roundTripBodies: [String] = [
        "plain ASCII",
        "emoji 🙂 family 👩‍👩‍👧‍👦 flag 🇯🇵 skin 👍🏽",
        "e\u{301} (combining) vs \u{E9} (precomposed)",
        "\u{1100}\u{1161}\u{11A8} Hangul jamo, not composed",
        "nul \u{0} inside and at the end \u{0}",
        "quotes \" and 'single' and backslash \\ and \\\\ and \\u0041 literally",
        "newline\nreturn\r\ntab\tform\u{0C}backspace\u{08} bell\u{07} escape\u{1B} del\u{7F}",
        "\u{FEFF}BOM first, then U+10FFFF \u{10FFFF} and U+FFFD \u{FFFD} and noncharacter \u{FFFE}",
        "</script> & <b>html</b> / slashes // and \u{2028} line separator \u{2029}",
        "  leading and trailing spaces  ",
        "{\"json\": [\"inside\", 1, null]}",
        " ",
    ]

    /// Bodies round-trip byte for byte: no normalization, no escaping left behind.
    @Test(arguments: roundTripBodies)
    func body_roundTripsByteForByte(text: String) async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            let sent = try await api.send("q", text)
            let received = try await api.receive("q")
            #expect(received.count == 1)
            #expect(received.first?.id == sent.id)
            #expect(received.first?.body.bytes == text.bytes)
            #expect(try await api.describe("q").bytes == UInt64(text.utf8.count))
        }
    }

    /// The escapes a client may choose (`\u0000`, surrogate pairs, `\/`) decode to the same
    /// bytes as the literal characters.
    @Test func jsonEscapes_decodeToTheirCharacters() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            let body = #"{"message": "\u0000\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00\u0065\u0301"}"#
            let reply = try await api.request(.post, "/queues/q/messages", body)
            #expect(reply.status == 201, "\(reply)")
            let expected = "\u{0}\"\\/\u{08}\u{0C}\n\r\t\u{E9}😀e\u{301}"
            #expect(try await api.receive("q").first?.body.bytes == expected.bytes)
        }
    }

    /// Batches round-trip too, each body intact and in order.
    @Test func batchBodies_roundTripByteForByte_inOrder() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            let items = Self.roundTripBodies.map { "{\"message\": \(API.jsonString($0))}" }.joined(separator: ",")
            let reply = try await api.request(.post, "/queues/q/messages", "{\"messages\": [\(items)]}")
            #expect(reply.status == 201, "\(reply)")
            let sent = try reply.decode(SentBatchBody.self).messages
            let received = try await api.receive("q", "batch_size=100")
            #expect(received.map { $0.id } == sent.map { $0.id })
            #expect(received.map { $0.body.bytes } == Self.roundTripBodies.map { $0.bytes })
        }
    }
}

@Suite struct PriorityAndDelayHTTPTests {
    @Test(arguments: ["-1", "10", "1.5", "\"5\"", "null", "true", "99999999999999999999", "[1]"])
    func invalidPriority_isInvalidParameter_andStoresNothing(priority: String) async throws {
        let body = "{\"message\": \"m\", \"priority\": \(priority)}"
        try await MessageBodyTests.expectRejected(body.bytes, .invalidParameter, try await ServerFixture())
    }

    @Test func priority_defaultsTo0_andHigherIsDeliveredFirst() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            try await api.send("q", "default")
            try await api.send("q", "nine", priority: 9)
            try await api.send("q", "zero", priority: 0)
            try await api.send("q", "five", priority: 5)
            let received = try await api.receive("q")
            #expect(received.map { $0.body } == ["nine", "five", "default", "zero"])
            #expect(received.map { $0.priority } == [9, 5, 0, 0])
        }
    }

    @Test(arguments: ["-1", "1.5", "\"10\"", "null", "1209601", "true"])
    func invalidDelay_isInvalidParameter_andStoresNothing(delay: String) async throws {
        let body = "{\"message\": \"m\", \"delay\": \(delay)}"
        try await MessageBodyTests.expectRejected(body.bytes, .invalidParameter, try await ServerFixture())
    }

    @Test func delayAboveTheQueuesRetention_isInvalidParameter_delayEqualToIt_isAccepted() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q", "{\"retention\": 120}")
            let before = try await api.snapshot()
            expectError(try await api.request(.post, "/queues/q/messages", "{\"message\": \"m\", \"delay\": 121}"),
                        .invalidParameter)
            #expect(try await api.snapshot() == before)
            let sent = try await api.send("q", "m", delay: 120)
            #expect(sent.visibleAt == f.clock.now.adding(seconds: 120).milliseconds)
            let queue = try await api.describe("q")
            #expect(queue.messages.delayed == 1 && queue.messages.ready == 0)
        }
    }

    @Test func delayedMessage_becomesReceivableAtItsDueTime() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            try await api.send("q", "later", delay: 10)
            try await api.send("q", "sooner", delay: 5)
            #expect(try await api.receive("q").isEmpty)
            f.clock.advance(bySeconds: 5)
            _ = try await f.broker.runDueWork()
            #expect(try await api.receive("q", "batch_size=10&auto_ack=true").map { $0.body } == ["sooner"])
            f.clock.advance(bySeconds: 5)
            _ = try await f.broker.runDueWork()
            #expect(try await api.receive("q").map { $0.body } == ["later"])
        }
    }
}

@Suite struct BatchSendTests {
    static func item(_ i: Int) -> String { "{\"message\": \"m\(i)\"}" }

    @Test func batch_isStoredInOrder_andAnsweredWithOneEntryPerMessage() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            let reply = try await api.request(.post, "/queues/q/messages",
                                              "{\"messages\": [\((0..<5).map(Self.item).joined(separator: ","))]}")
            #expect(reply.status == 201, "\(reply)")
            let sent = try reply.decode(SentBatchBody.self).messages
            #expect(sent.count == 5)
            #expect(Set(sent.map { $0.id }).count == 5)
            #expect(sent.map { $0.sequence } == sent.map { $0.sequence }.sorted())
            #expect(try await api.receive("q").map { $0.body } == (0..<5).map { "m\($0)" })
        }
    }

    @Test func batchOf1000_isAccepted() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            let reply = try await api.request(.post, "/queues/q/messages",
                                              "{\"messages\": [\((0..<1000).map(Self.item).joined(separator: ","))]}")
            #expect(reply.status == 201, "\(reply)")
            #expect(try reply.decode(SentBatchBody.self).messages.count == 1000)
            #expect(try await api.describe("q").messages.ready == 1000)
        }
    }

    static let rejectedBatches: [(String, String, String)] = [
        ("empty", "{\"messages\": []}", ErrorCode.invalidParameter.name),
        ("1001 items", "{\"messages\": [\((0..<1001).map(item).joined(separator: ","))]}", ErrorCode.invalidParameter.name),
        ("not an array", "{\"messages\": \"m\"}", ErrorCode.invalidParameter.name),
        ("null", "{\"messages\": null}", ErrorCode.invalidParameter.name),
        ("item not an object", "{\"messages\": [\(item(0)), \"m1\"]}", ErrorCode.invalidParameter.name),
        ("both forms", "{\"messages\": [\(item(0))], \"message\": \"x\"}", ErrorCode.invalidParameter.name),
        ("empty item", "{\"messages\": [\(item(0)), \(item(1)), {\"message\": \"\"}]}", ErrorCode.invalidMessage.name),
        ("missing message", "{\"messages\": [\(item(0)), {\"priority\": 3}]}", ErrorCode.invalidMessage.name),
        ("bad priority", "{\"messages\": [\(item(0)), {\"message\": \"x\", \"priority\": 10}]}", ErrorCode.invalidParameter.name),
        ("bad delay", "{\"messages\": [\(item(0)), {\"message\": \"x\", \"delay\": -1}]}", ErrorCode.invalidParameter.name),
        ("unknown item field", "{\"messages\": [\(item(0)), {\"message\": \"x\", \"id\": 1}]}", ErrorCode.invalidParameter.name),
        ("item too large", "{\"messages\": [\(item(0)), {\"message\": \"\(String(repeating: "x", count: 65))\"}]}",
         ErrorCode.messageTooLarge.name),
        ("delay above retention", "{\"messages\": [\(item(0)), {\"message\": \"x\", \"delay\": 61}]}",
         ErrorCode.invalidParameter.name),
    ]

    /// One bad item rejects the whole batch: nothing is stored.
    @Test(arguments: rejectedBatches)
    func rejectedBatch_storesNothing(label: String, body: String, codeName: String) async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q", "{\"max_message_bytes\": 64, \"retention\": 60}")
            let before = try await api.snapshot()
            let reply = try await api.request(.post, "/queues/q/messages", body)
            let code = try #require(ErrorCode.all.first { $0.name == codeName })
            expectError(reply, code, label)
            #expect(try await api.snapshot() == before, "\(label)")
            #expect(try await api.receive("q").isEmpty, "\(label)")
        }
    }
}

@Suite struct StrictJSONTests {
    @Test(arguments: [
        "{\"message\": \"a\", \"message\": \"b\"}", "{\"message\": \"\\ud800\"}", "{\"message\": \"\\udc00\\ud800\"}",
        "{\"message\": \"a\"} {}", "{\"message\": 01}", "{\"message\": \"a\\x\"}", "[1,]", "{\"a\" 1}", "",
        "{\"message\": \"tab\there\"}", "{\"message\": 1.}", "{\"message\": -}", "nul",
    ])
    func malformedOrAmbiguousJSON_isRejected(body: String) {
        #expect(throws: TernError.self) { try StrictJSON.validate(Array(body.utf8)) }
    }

    @Test(arguments: [
        "{\"message\": \"\\ud83d\\ude00 é 😀\"}", "{\"messages\": [{\"message\": \"a\"}, {\"message\": \"b\", \"priority\": 9}]}",
        " {\"a\": [1, -2.5e+3, true, false, null, {}, []]} ", "\"just a string\"", "0",
    ])
    func validJSON_isAccepted(body: String) throws {
        try StrictJSON.validate(Array(body.utf8))
    }

    @Test func invalidUTF8_isRejected() {
        for bytes: [UInt8] in [[0x22, 0xC3, 0x28, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22], [0x22, 0xF8, 0x22], [0x22, 0xC0, 0xAF, 0x22]] {
            #expect(throws: TernError.self) { try StrictJSON.validate(bytes) }
        }
    }

    @Test func randomMutations_neverCrash_andValidOutputsDecode() throws {
        var generator = SeededGenerator(seed: 42)
        let seed = Array("{\"messages\": [{\"message\": \"h\\u00e9llo\", \"priority\": 3}, {\"message\": \"x\", \"delay\": 10}]}".utf8)
        for _ in 0..<20_000 {
            var bytes = seed
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let position = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[position] = UInt8.random(in: 0...255, using: &generator)
                case 1: bytes.remove(at: position)
                default: bytes.insert(UInt8.random(in: 0...255, using: &generator), at: position)
                }
                if bytes.isEmpty { bytes = [0x7B] }
            }
            if (try? StrictJSON.validate(bytes)) != nil {
                // Whatever the strict check accepts, Foundation must parse too.
                #expect((try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) != nil)
            }
        }
    }
}
