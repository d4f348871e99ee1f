import Foundation
import Testing
import TernCore
import TernTestKit
@testable import TernSQS

/// The pure parts of the SQS endpoint: SigV4, the MD5 digests, the JSON reader, the Query
/// protocol's folding and XML, each against vectors computed elsewhere and fuzzed.
@Suite struct SigV4Tests {
    /// AWS's Signature Version 4 test suite, `get-vanilla` (published request and signature).
    static let vanilla = SigV4.Request(method: "GET", path: "/", query: "", headers: [
        "host": "example.amazonaws.com", "x-amz-date": "20150830T123600Z",
    ], body: [])
    static let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    static let header = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        + "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    static let requestTime = SigV4.parseAmzDate("20150830T123600Z")!

    @Test func awsTestSuiteVector_verifies() throws {
        let authorization = try SigV4.Authorization(parsing: Self.header)
        #expect(authorization.accessKeyID == "AKIDEXAMPLE" && authorization.region == "us-east-1")
        try SigV4.verify(Self.vanilla, authorization: authorization, secret: Self.secret, now: Self.requestTime)
    }

    @Test func anyChange_toSignedData_orSecret_isSignatureDoesNotMatch() throws {
        let authorization = try SigV4.Authorization(parsing: Self.header)
        var changedHost = Self.vanilla
        changedHost.headers["host"] = "example.amazonaws.co"
        var changedBody = Self.vanilla
        changedBody.body = [0x41]
        var changedPath = Self.vanilla
        changedPath.path = "/x"
        for (request, secret) in [(changedHost, Self.secret), (changedBody, Self.secret), (changedPath, Self.secret),
                                  (Self.vanilla, Self.secret + "x")] {
            #expect(throws: SQSError.self) {
                try SigV4.verify(request, authorization: authorization, secret: secret, now: Self.requestTime)
            }
            do throws(SQSError) {
                try SigV4.verify(request, authorization: authorization, secret: secret, now: Self.requestTime)
            } catch {
                #expect(error.code == .signatureDoesNotMatch)
            }
        }
        // One flipped hex digit of the signature.
        var flipped = try SigV4.Authorization(parsing: Self.header)
        flipped.signature = "4" + flipped.signature.dropFirst()
        #expect(throws: SQSError.self) { try SigV4.verify(Self.vanilla, authorization: flipped, secret: Self.secret, now: Self.requestTime) }
    }

    @Test(arguments: [-901, 901, 86_400] as [Int64])
    func requestTimeOutsideFifteenMinutes_isRejected(offset: Int64) throws {
        let authorization = try SigV4.Authorization(parsing: Self.header)
        do throws(SQSError) {
            try SigV4.verify(Self.vanilla, authorization: authorization, secret: Self.secret, now: Self.requestTime + offset)
            Issue.record("accepted a request \(offset) s off")
        } catch {
            #expect(error.code == .signatureDoesNotMatch)
            #expect(error.message.contains("expired"))
        }
    }

    @Test(arguments: [-900, 0, 900] as [Int64])
    func requestTimeWithinFifteenMinutes_isAccepted(offset: Int64) throws {
        let authorization = try SigV4.Authorization(parsing: Self.header)
        try SigV4.verify(Self.vanilla, authorization: authorization, secret: Self.secret, now: Self.requestTime + offset)
    }

    @Test(arguments: ["", "Bearer abc", "AWS4-HMAC-SHA256 Credential=a/b", "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00",
                      "AWS4-HMAC-SHA256 Credential=AK/2015/us/s/aws4_request, SignedHeaders=host, Signature=00",
                      "AWS4-HMAC-SHA256 Credential=AK/20150830/us/s/aws4_request, SignedHeaders=x-amz-date, Signature=00"])
    func malformedAuthorization_isIncompleteSignature(header: String) {
        do throws(SQSError) {
            _ = try SigV4.Authorization(parsing: header)
            Issue.record("parsed \(header)")
        } catch {
            #expect(error.code == .incompleteSignature)
        }
    }

    @Test func amzDate_parsesToEpochSeconds_andRejectsOtherShapes() {
        #expect(SigV4.parseAmzDate("19700101T000000Z") == 0)
        #expect(SigV4.parseAmzDate("20150830T123600Z") == 1_440_938_160)
        #expect(SigV4.parseAmzDate("20240229T235959Z") == 1_709_251_199)
        for bad in ["2015-08-30T12:36:00Z", "20151330T123600Z", "20150830T123600", "20150830X123600Z", ""] {
            #expect(SigV4.parseAmzDate(bad) == nil, "\(bad)")
        }
    }
}

@Suite struct MessageDigestTests {
    @Test func body_isMD5OfUTF8() {
        #expect(MessageDigests.body(Array("héllo".utf8)) == "be50e8478cf24ff3595bc7307fb91b50")
    }

    /// The expected value was computed in Python from the SQS Developer Guide's description.
    @Test func attributes_followSQSAlgorithm_sortedByName_withTransportBytes() {
        let attributes = [
            MessageAttribute(name: "count", dataType: "Number", value: Array("42".utf8)),
            MessageAttribute(name: "color", dataType: "String", value: Array("blue".utf8)),
            MessageAttribute(name: "blob", dataType: "Binary", value: [0, 1, 2]),
        ]
        #expect(MessageDigests.attributes(attributes) == "ffd533108fa696ac9b4e228c10e60107")
        #expect(MessageDigests.attributes(attributes.reversed()) == "ffd533108fa696ac9b4e228c10e60107", "order of input does not matter")
        #expect(MessageDigests.attributes([]) == nil)
        // A planted change (binary marked as text) changes the digest: the transport byte counts.
        var planted = attributes
        planted[2].dataType = "String"
        #expect(MessageDigests.attributes(planted) != "ffd533108fa696ac9b4e228c10e60107")
    }
}

@Suite struct SQSJSONTests {
    @Test func parses_SQSRequestShapes() throws {
        let value = try JSON.parse(Array(#"{"QueueUrl":"http://h/000000000000/q","MaxNumberOfMessages":10,"A":["x"],"M":{"k":{"DataType":"String"}},"n":null,"t":true,"s":"\u00e9\ud83d\ude00\n"}"#.utf8))
        #expect(value["QueueUrl"] == .string("http://h/000000000000/q"))
        #expect(value["MaxNumberOfMessages"] == .number("10"))
        #expect(value["A"] == .list([.string("x")]))
        #expect(value["M"]?["k"]?["DataType"] == .string("String"))
        #expect(value["n"] == .null && value["t"] == .bool(true))
        #expect(value["s"] == .string("é😀\n"))
    }

    @Test(arguments: [#"{"a":1,}"#, #"{"a":1,"a":2}"#, "[1,]", #"{"a":"\ud800"}"#, #"{"a":"\x"}"#, "01", "{} {}", "", "{\"a\":\"\u{01}\"}",
                      String(repeating: "[", count: 40) + String(repeating: "]", count: 40)])
    func malformed_isSerializationException(text: String) {
        do throws(SQSError) {
            _ = try JSON.parse(Array(text.utf8))
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.code == .serialization)
        }
    }

    @Test func invalidUTF8_isSerializationException() {
        #expect(throws: SQSError.self) { try JSON.parse([0x22, 0xFF, 0xFE, 0x22]) }
    }

    @Test func serializedOutput_parsesBack() throws {
        let output = SQSOutput.structure([("s", .string("a\"b\\c\n\u{01}é")), ("n", .int(-5)), ("b", .bool(false)),
                                          ("l", .list([.string("x")], member: "X")), ("m", .map([("k", .string("v"))], xml: .tag))])
        let parsed = try JSON.parse(JSON.serialize(output))
        #expect(parsed == .object(["s": .string("a\"b\\c\n\u{01}é"), "n": .number("-5"), "b": .bool(false),
                                   "l": .list([.string("x")]), "m": .object(["k": .string("v")])]))
    }

    @Test func mutatedInput_neverTraps_andEitherParsesOrIsSerializationException() {
        let seed = Array(#"{"QueueUrl":"http://h/0/q","Entries":[{"Id":"1","MessageBody":"\u00e9","MessageAttributes":{"a":{"DataType":"Number","StringValue":"1e5"}}}]}"#.utf8)
        var generator = SeededGenerator(seed: 80)
        for _ in 0..<5000 {
            var bytes = seed
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let position = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[position] = UInt8.random(in: 0...255, using: &generator)
                case 1: bytes.remove(at: position)
                default: bytes.insert(Array(#"{}[]",:\0"#.utf8).randomElement(using: &generator)!, at: position)
                }
                if bytes.isEmpty { break }
            }
            do throws(SQSError) { _ = try JSON.parse(bytes) } catch { #expect(error.code == .serialization) }
        }
    }
}

@Suite struct QueryProtocolTests {
    @Test func flattenedParameters_foldIntoTheJSONShape() throws {
        let form = "Action=SendMessageBatch&QueueUrl=http%3A%2F%2Fh%2F000000000000%2Fq"
            + "&SendMessageBatchRequestEntry.2.Id=b&SendMessageBatchRequestEntry.2.MessageBody=two+words"
            + "&SendMessageBatchRequestEntry.1.Id=a&SendMessageBatchRequestEntry.1.MessageBody=one"
            + "&SendMessageBatchRequestEntry.1.MessageAttribute.1.Name=k&SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.DataType=String"
            + "&SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.StringValue=v%26w"
            + "&AttributeName.1=All&Attribute.1.Name=VisibilityTimeout&Attribute.1.Value=5"
        let pairs = try QueryProtocol.decodeForm(Array(form.utf8)).filter { $0.0 != "Action" }
        let value = try QueryProtocol.fold(pairs)
        #expect(value["QueueUrl"] == .string("http://h/000000000000/q"))
        guard case .list(let entries)? = value["Entries"] else { Issue.record("no Entries"); return }
        #expect(entries.map { $0["Id"] } == [.string("a"), .string("b")], "in index order")
        #expect(entries[1]["MessageBody"] == .string("two words"))
        #expect(entries[0]["MessageAttributes"]?["k"]?["StringValue"] == .string("v&w"))
        #expect(value["AttributeNames"] == .list([.string("All")]))
        #expect(value["Attributes"] == .object(["VisibilityTimeout": .string("5")]))
    }

    @Test(arguments: ["a=%zz", "a=%e9", "AttributeName.x=1", "a=1&a=2", "a=1&a.b=2"])
    func badForms_areInvalidParameterValue(form: String) {
        do throws(SQSError) {
            let pairs = try QueryProtocol.decodeForm(Array(form.utf8))
            _ = try QueryProtocol.fold(pairs)
            Issue.record("accepted \(form)")
        } catch {
            #expect(error.code == .invalidParameterValue)
        }
    }

    @Test func xml_escapesText_andFlattensListsAndMaps() {
        let xml = String(decoding: QueryProtocol.response(action: "ReceiveMessage", result: .structure([
            ("Messages", .list([.structure([("Body", .string("<a & 'b'>\r")),
                                            ("Attributes", .map([("SentTimestamp", .string("1"))], xml: .attribute))])], member: "Message")),
        ]), requestID: "r"), as: UTF8.self)
        #expect(xml.contains("<ReceiveMessageResult><Message><Body>&lt;a &amp; &apos;b&apos;&gt;&#xD;</Body>"))
        #expect(xml.contains("<Attribute><Name>SentTimestamp</Name><Value>1</Value></Attribute></Message></ReceiveMessageResult>"))
        #expect(xml.contains("<RequestId>r</RequestId>"))
    }
}
