import Foundation
import Logging
import Testing
import TernBroker
import TernCore
import TernServer
import TernStorage
import TernTestKit
@testable import TernSQS

/// An endpoint over a broker on a temporary directory with a manual clock; `reopen()` restarts it.
final class EndpointFixture: @unchecked Sendable {
    let directory: TemporaryDirectory
    let clock = ManualClock()
    let settings: SQS.Settings
    private(set) var storage: Storage
    private(set) var broker: Broker
    private(set) var endpoint: SQSEndpoint

    static let logger = Logger(label: "test")

    init(settings: SQS.Settings = SQS.Settings()) async throws {
        directory = try TemporaryDirectory(prefix: "tern-sqs")
        self.settings = settings
        (storage, broker, endpoint) = try await Self.open(directory, settings, clock)
    }

    static func open(_ directory: TemporaryDirectory, _ settings: SQS.Settings, _ clock: ManualClock) async throws
        -> (Storage, Broker, SQSEndpoint)
    {
        var storageSettings = Storage.Settings()
        storageSettings.durable = false
        storageSettings.maxMapBytes = 256 << 20
        let storage = try Storage(directory: directory.path, databases: Broker.databaseNames + SQS.databaseNames,
                                  settings: storageSettings, logger: logger)
        let broker = try await Broker.open(storage: storage, clock: clock, logger: logger)
        return (storage, broker, SQSEndpoint(broker: broker, storage: storage, settings: settings, logger: logger))
    }

    func reopen() async throws {
        storage.close()
        (storage, broker, endpoint) = try await Self.open(directory, settings, clock)
    }

    deinit {
        storage.close()
        directory.remove()
    }

    /// A JSON-protocol call; returns status, the `x-amzn-query-error` header and the parsed body.
    /// - Parameter via: another endpoint over the same broker (a new leader's front end).
    func call(_ action: String, _ body: String, headers: [String: String] = [:], via: SQSEndpoint? = nil) async -> (Int, String?, SQSValue) {
        var all = ["x-amz-target": "AmazonSQS." + action, "content-type": "application/x-amz-json-1.0", "host": "localhost:9324"]
        all.merge(headers) { $1 }
        let reply = await (via ?? endpoint).handle(.init(method: "POST", path: "/", headers: all, body: Array(body.utf8)))
        let value = (try? JSON.parse(reply.body)) ?? .null
        return (reply.status, reply.headers.first { $0.0 == "x-amzn-query-error" }?.1, value)
    }

    func query(_ form: String, path: String = "/") async -> (Int, String) {
        let reply = await endpoint.handle(.init(method: "POST", path: path, headers: [
            "content-type": "application/x-www-form-urlencoded", "host": "localhost:9324"], body: Array(form.utf8)))
        return (reply.status, String(decoding: reply.body, as: UTF8.self))
    }
}

@Suite struct SQSEndpointTests {
    static let url = "http://localhost:9324/000000000000/q"

    @Test func jsonAndQuery_answerTheSameQueue() async throws {
        let f = try await EndpointFixture()
        let (status, _, created) = await f.call("CreateQueue", #"{"QueueName":"q","Attributes":{"VisibilityTimeout":"5"}}"#)
        #expect(status == 200)
        #expect(created["QueueUrl"] == .string(Self.url))
        let (queryStatus, xml) = await f.query("Action=SendMessage&MessageBody=hi&Version=2012-11-05", path: "/000000000000/q")
        #expect(queryStatus == 200, "\(xml)")
        #expect(xml.contains("<MD5OfMessageBody>49f68a5c8493ec2c0bf489821c21fc3b</MD5OfMessageBody>"))
        let (_, _, received) = await f.call("ReceiveMessage", #"{"QueueUrl":"\#(Self.url)"}"#)
        guard case .list(let messages)? = received["Messages"] else { Issue.record("\(received)"); return }
        #expect(messages.first?["Body"] == .string("hi"))
    }

    @Test func unknownQueue_isQueueDoesNotExist_withTheLegacyCodeHeader() async throws {
        let f = try await EndpointFixture()
        let (status, header, body) = await f.call("GetQueueUrl", #"{"QueueName":"absent"}"#)
        #expect(status == 400)
        #expect(header == "AWS.SimpleQueueService.NonExistentQueue;Sender")
        #expect(body["__type"] == .string("com.amazonaws.sqs#QueueDoesNotExist"))
        let (queryStatus, xml) = await f.query("Action=GetQueueUrl&QueueName=absent")
        #expect(queryStatus == 400)
        #expect(xml.contains("<Type>Sender</Type><Code>AWS.SimpleQueueService.NonExistentQueue</Code>"))
    }

    @Test func tagsAndStoredAttributes_surviveARestart_butNotARecreation() async throws {
        let f = try await EndpointFixture()
        _ = await f.call("CreateQueue", #"{"QueueName":"q","tags":{"team":"a"},"Attributes":{"ReceiveMessageWaitTimeSeconds":"3"}}"#)
        try await f.reopen()
        let (_, _, tags) = await f.call("ListQueueTags", #"{"QueueUrl":"\#(Self.url)"}"#)
        #expect(tags["Tags"] == .object(["team": .string("a")]))
        let (_, _, attributes) = await f.call("GetQueueAttributes", #"{"QueueUrl":"\#(Self.url)","AttributeNames":["ReceiveMessageWaitTimeSeconds"]}"#)
        #expect(attributes["Attributes"] == .object(["ReceiveMessageWaitTimeSeconds": .string("3")]))
        _ = await f.call("DeleteQueue", #"{"QueueUrl":"\#(Self.url)"}"#)
        f.clock.advance(bySeconds: 61)
        let (status, _, _) = await f.call("CreateQueue", #"{"QueueName":"q"}"#)
        #expect(status == 200)
        let (_, _, fresh) = await f.call("ListQueueTags", #"{"QueueUrl":"\#(Self.url)"}"#)
        #expect(fresh["Tags"] == nil, "metadata of the deleted queue does not attach to the new one")
    }

    /// The purge window is queue metadata (decision 139): a new front end on the same state (a
    /// restart here, a new leader in a cluster) keeps it; it is never reported as an attribute.
    @Test func purgeWindow_isQueueMetadata_soANewFrontEndKeepsIt() async throws {
        let f = try await EndpointFixture()
        _ = await f.call("CreateQueue", #"{"QueueName":"q"}"#)
        #expect(await f.call("PurgeQueue", #"{"QueueUrl":"\#(Self.url)"}"#).0 == 200)
        try await f.reopen()
        let (status, _, refused) = await f.call("PurgeQueue", #"{"QueueUrl":"\#(Self.url)"}"#)
        #expect(status == 403 && refused["__type"] == .string("com.amazonaws.sqs#PurgeQueueInProgress"), "\(refused)")
        let (_, _, attributes) = await f.call("GetQueueAttributes", #"{"QueueUrl":"\#(Self.url)","AttributeNames":["All"]}"#)
        #expect(attributes["Attributes"]?.members?.keys.contains { $0.hasPrefix("tern.") } == false, "\(attributes)")
        f.clock.advance(bySeconds: 61)
        #expect(await f.call("PurgeQueue", #"{"QueueUrl":"\#(Self.url)"}"#).0 == 200)
    }

    /// Message-move tasks are queue metadata (decision 139): another front end over the same
    /// state lists a task, refuses a second one, resumes a task nobody moves (its leader died),
    /// and cancels one that a different front end moves.
    @Test func moveTasks_areQueueMetadata_soAnotherFrontEndListsResumesAndCancelsThem() async throws {
        let f = try await EndpointFixture()
        let dlqArn = "arn:aws:sqs:us-east-1:000000000000:dlq"
        _ = await f.call("CreateQueue", #"{"QueueName":"dlq"}"#)
        let policy = #"{\"deadLetterTargetArn\":\"\#(dlqArn)\",\"maxReceiveCount\":3}"#
        #expect(await f.call("CreateQueue", #"{"QueueName":"src","Attributes":{"RedrivePolicy":"\#(policy)"}}"#).0 == 200)
        func fill(_ count: Int) async {
            for i in 0..<count { _ = await f.call("SendMessage", #"{"QueueUrl":"http://localhost:9324/000000000000/dlq","MessageBody":"m\#(i)"}"#) }
        }
        func tasks(_ via: SQSEndpoint?) async -> [SQSValue] {
            guard case .list(let results)? = await f.call("ListMessageMoveTasks", #"{"SourceArn":"\#(dlqArn)","MaxResults":10}"#, via: via).2["Results"] else { return [] }
            return results
        }
        func waitFor(_ status: String, _ via: SQSEndpoint?) async throws -> SQSValue? {
            for _ in 0..<200 {
                if let first = await tasks(via).first, first["Status"] == .string(status) { return first }
                try await Task.sleep(for: .milliseconds(50))
            }
            return nil
        }
        await fill(5)
        // Recorded as running, moved by no one.
        let handle = SQSEndpoint.taskHandle(id: "t1", sourceArn: dlqArn)
        try await f.endpoint.moveTasks.add(.init(id: "t1", source: try QueueName("dlq"), sourceArn: dlqArn, destination: try QueueName("src"),
                                                 destinationArn: nil, rate: nil, toMove: 5, started: 0, handle: handle), broker: f.broker)
        let other = SQSEndpoint(broker: f.broker, storage: f.storage, settings: f.settings, logger: EndpointFixture.logger)
        let listed = await tasks(other)
        #expect(listed.count == 1 && listed.first?["Status"] == .string("RUNNING") && listed.first?["TaskHandle"] == .string(handle))
        let (refused, _, _) = await f.call("StartMessageMoveTask", #"{"SourceArn":"\#(dlqArn)"}"#, via: other)
        #expect(refused == 400, "one active task per source, whichever front end started it")
        other.resumeMessageMoveTasks()
        let completed = try await waitFor("COMPLETED", other)
        #expect(completed?["ApproximateNumberOfMessagesMoved"] == .number("5"), "\(String(describing: completed))")
        let (_, _, counts) = await f.call("GetQueueAttributes", #"{"QueueUrl":"http://localhost:9324/000000000000/src","AttributeNames":["ApproximateNumberOfMessages"]}"#)
        #expect(counts["Attributes"]?["ApproximateNumberOfMessages"] == .string("5"))
        // Started on one front end (one message a second), cancelled through the other.
        await fill(5)
        let (_, _, started) = await f.call("StartMessageMoveTask", #"{"SourceArn":"\#(dlqArn)","MaxNumberOfMessagesPerSecond":1}"#, via: other)
        guard case .string(let running)? = started["TaskHandle"] else { Issue.record("\(started)"); return }
        #expect(await f.call("CancelMessageMoveTask", #"{"TaskHandle":"\#(running)"}"#).0 == 200)
        let cancelled = try await waitFor("CANCELLED", nil)
        #expect(cancelled != nil, "the front end moving it saw the cancel in the metadata")
        #expect(await tasks(nil).count == 2)
        let (_, _, attributes) = await f.call("GetQueueAttributes", #"{"QueueUrl":"http://localhost:9324/000000000000/dlq","AttributeNames":["All"]}"#)
        #expect(attributes["Attributes"]?.members?.keys.contains { $0.hasPrefix("tern.") } == false)
    }

    /// SQS's 60 s after DeleteQueue are broker state (decision 139): a new front end (a restart
    /// here, a new leader in a cluster) refuses to re-create the name until they are over.
    @Test func deleteWindow_isBrokerState_soANewFrontEndKeepsIt() async throws {
        let f = try await EndpointFixture()
        _ = await f.call("CreateQueue", #"{"QueueName":"q"}"#)
        #expect(await f.call("DeleteQueue", #"{"QueueUrl":"\#(Self.url)"}"#).0 == 200)
        try await f.reopen()
        let (status, _, refused) = await f.call("CreateQueue", #"{"QueueName":"q"}"#)
        #expect(status == 400 && refused["__type"] == .string("com.amazonaws.sqs#QueueDeletedRecently"), "\(refused)")
        f.clock.advance(bySeconds: 61)
        #expect(await f.call("CreateQueue", #"{"QueueName":"q"}"#).0 == 200)
    }

    /// A Query request whose only parameter is the queue URL's path (as an SDK that uses the
    /// queue URL as its endpoint sends `ListQueueTags`).
    @Test func queryRequest_withOnlyAnAction_namesTheQueueByItsPath() async throws {
        let f = try await EndpointFixture()
        _ = await f.call("CreateQueue", #"{"QueueName":"q","tags":{"team":"a"}}"#)
        let (status, xml) = await f.query("Action=ListQueueTags", path: "/000000000000/q")
        #expect(status == 200 && xml.contains("<Key>team</Key>"), "\(xml)")
    }

    /// Data directories written before decision 110 kept metadata in `sqs_queues`, keyed by
    /// name: the start-up migration moves it into broker state (through the command log) and
    /// empties the legacy database; records of deleted queues are dropped.
    @Test func legacyMetadata_isMigratedIntoBrokerState() async throws {
        let f = try await EndpointFixture()
        f.clock.advance(bySeconds: 1_700_000_000)
        _ = await f.call("CreateQueue", #"{"QueueName":"q"}"#)
        let info = try f.broker.describeQueue(try QueueName("q"))
        let legacy = f.storage.database(SQS.legacyDatabaseName)
        let created = info.createdAt.milliseconds
        let current = LegacyQueueMetadata(createdAt: created, lastModified: created + 42_000, tags: ["team": "a"],
                                          attributes: ["ReceiveMessageWaitTimeSeconds": "7"])
        let stale = LegacyQueueMetadata(createdAt: created - 1, lastModified: created, tags: ["old": "x"])
        try await f.storage.write { txn in
            try txn.put(legacy, Array("q".utf8), current.encoded())
            try txn.put(legacy, Array("gone".utf8), stale.encoded())
        }
        #expect(throws: StateDump.Error.self, "an unmigrated legacy database is not silently left out of the state") {
            try StateDump.lines(storage: f.storage)
        }
        try await f.reopen()
        #expect(try await SQS.migrateLegacyMetadata(storage: f.storage, broker: f.broker, logger: EndpointFixture.logger) == 1)
        let (_, _, tags) = await f.call("ListQueueTags", #"{"QueueUrl":"\#(Self.url)"}"#)
        #expect(tags["Tags"] == .object(["team": .string("a")]))
        let (_, _, attributes) = await f.call("GetQueueAttributes",
            #"{"QueueUrl":"\#(Self.url)","AttributeNames":["ReceiveMessageWaitTimeSeconds","LastModifiedTimestamp"]}"#)
        #expect(attributes["Attributes"] == .object(["ReceiveMessageWaitTimeSeconds": .string("7"),
                                                     "LastModifiedTimestamp": .string(String((created + 42_000) / 1000))]))
        #expect(try f.storage.read { txn in try txn.statistics(legacy).entries } == 0)
        #expect(try StateDump.lines(storage: f.storage).contains { $0.contains(#""type":"queue_metadata""#) })
        #expect(try await SQS.migrateLegacyMetadata(storage: f.storage, broker: f.broker, logger: EndpointFixture.logger) == 0)
    }

    /// TagQueue and AddPermission are read-modify-writes of broker state: concurrent ones
    /// both land (the revision check retries the loser).
    @Test func concurrentTagsAndPermissions_areAllKept() async throws {
        let f = try await EndpointFixture()
        _ = await f.call("CreateQueue", #"{"QueueName":"q"}"#)
        await withTaskGroup(of: Void.self) { group in
            for i in 0..<8 {
                group.addTask { _ = await f.call("TagQueue", #"{"QueueUrl":"\#(Self.url)","Tags":{"k\#(i)":"v"}}"#) }
                group.addTask {
                    _ = await f.call("AddPermission", #"{"QueueUrl":"\#(Self.url)","Label":"l\#(i)","AWSAccountIds":["123456789012"],"Actions":["SendMessage"]}"#)
                }
            }
        }
        let (_, _, tags) = await f.call("ListQueueTags", #"{"QueueUrl":"\#(Self.url)"}"#)
        #expect(tags["Tags"]?.members?.count == 8)
        let (_, _, attributes) = await f.call("GetQueueAttributes", #"{"QueueUrl":"\#(Self.url)","AttributeNames":["Policy"]}"#)
        guard case .string(let policy)? = attributes["Attributes"]?["Policy"] else { Issue.record("\(attributes)"); return }
        for i in 0..<8 { #expect(policy.contains(#""Sid":"l\#(i)""#)) }
    }

    @Test func deletedName_isRefusedFor60Seconds() async throws {
        let f = try await EndpointFixture()
        _ = await f.call("CreateQueue", #"{"QueueName":"q"}"#)
        _ = await f.call("DeleteQueue", #"{"QueueUrl":"\#(Self.url)"}"#)
        f.clock.advance(bySeconds: 59)
        #expect(await f.call("CreateQueue", #"{"QueueName":"q"}"#).1?.hasPrefix("AWS.SimpleQueueService.QueueDeletedRecently") == true)
        f.clock.advance(bySeconds: 1)
        #expect(await f.call("CreateQueue", #"{"QueueName":"q"}"#).0 == 200)
    }

    @Test func mutatedRequests_neverAnswer5xx() async throws {
        let f = try await EndpointFixture()
        _ = await f.call("CreateQueue", #"{"QueueName":"q"}"#)
        let seeds = [
            ("SendMessageBatch", #"{"QueueUrl":"\#(Self.url)","Entries":[{"Id":"a","MessageBody":"x","MessageAttributes":{"n":{"DataType":"Number","StringValue":"1"}}}]}"#),
            ("ReceiveMessage", #"{"QueueUrl":"\#(Self.url)","MaxNumberOfMessages":10,"AttributeNames":["All"],"MessageAttributeNames":["a.*"]}"#),
            ("SetQueueAttributes", #"{"QueueUrl":"\#(Self.url)","Attributes":{"RedrivePolicy":"{\"deadLetterTargetArn\":\"arn:aws:sqs:us-east-1:000000000000:q\",\"maxReceiveCount\":2}"}}"#),
            ("ChangeMessageVisibilityBatch", #"{"QueueUrl":"\#(Self.url)","Entries":[{"Id":"a","ReceiptHandle":"01","VisibilityTimeout":3}]}"#),
        ]
        var generator = SeededGenerator(seed: 81)
        for _ in 0..<1500 {
            let (action, body) = seeds.randomElement(using: &generator)!
            var bytes = Array(body.utf8)
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                let position = Int.random(in: 0..<bytes.count, using: &generator)
                if Bool.random(using: &generator) { bytes[position] = UInt8.random(in: 0...255, using: &generator) } else { bytes.remove(at: position) }
            }
            let reply = await f.endpoint.handle(.init(method: "POST", path: "/", headers: ["x-amz-target": "AmazonSQS." + action], body: bytes))
            #expect(reply.status < 500, "\(String(decoding: bytes, as: UTF8.self)) → \(String(decoding: reply.body, as: UTF8.self))")
        }
    }
}

@Suite struct SQSAuthenticationTests {
    static func settings() -> SQS.Settings {
        var settings = SQS.Settings()
        settings.auth.enabled = true
        settings.auth.tokens = [
            Auth.Token(name: "admin", secret: "admin-secret-0123456789", permissions: [.admin]),
            Auth.Token(name: "reader", secret: "reader-secret-0123456789", permissions: [.consume(NamePattern("q*"))]),
        ]
        return settings
    }

    /// Signs a JSON-protocol request the way the SDKs do, at the fixture's clock.
    func signed(_ f: EndpointFixture, _ action: String, _ body: String, key: String, secret: String) -> SQSEndpoint.HTTPRequest {
        let seconds = Int64(f.clock.now.milliseconds / 1000)
        let date = Date(timeIntervalSince1970: TimeInterval(seconds))
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let amzDate = formatter.string(from: date)
        var headers = ["x-amz-target": "AmazonSQS." + action, "content-type": "application/x-amz-json-1.0", "host": "localhost:9324",
                       "x-amz-date": amzDate]
        let request = SigV4.Request(method: "POST", path: "/", query: "", headers: headers, body: Array(body.utf8))
        let authorization = try! SigV4.Authorization(parsing: "AWS4-HMAC-SHA256 Credential=\(key)/\(amzDate.prefix(8))/us-east-1/sqs/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=00")
        let signature = SigV4.signature(request, authorization: authorization, amzDate: amzDate, secret: secret)
        headers["authorization"] = "AWS4-HMAC-SHA256 Credential=\(key)/\(amzDate.prefix(8))/us-east-1/sqs/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=\(signature)"
        return SQSEndpoint.HTTPRequest(method: "POST", path: "/", headers: headers, body: Array(body.utf8))
    }

    func code(_ reply: SQSEndpoint.HTTPReply) -> String? {
        reply.headers.first { $0.0 == "x-amzn-query-error" }?.1.split(separator: ";").first.map(String.init)
    }

    @Test func signedRequests_areChecked_andMappedOntoTokenPermissions() async throws {
        let f = try await EndpointFixture(settings: Self.settings())
        f.clock.advance(bySeconds: 1_700_000_000)
        let create = await f.endpoint.handle(signed(f, "CreateQueue", #"{"QueueName":"q1"}"#, key: "admin", secret: "admin-secret-0123456789"))
        #expect(create.status == 200, "\(String(decoding: create.body, as: UTF8.self))")
        let denied = await f.endpoint.handle(signed(f, "CreateQueue", #"{"QueueName":"q2"}"#, key: "reader", secret: "reader-secret-0123456789"))
        #expect(denied.status == 403 && code(denied) == "AccessDenied")
        let wrongSecret = await f.endpoint.handle(signed(f, "ListQueues", "{}", key: "admin", secret: "not-the-secret-000000"))
        #expect(wrongSecret.status == 403 && code(wrongSecret) == "SignatureDoesNotMatch")
        let unknown = await f.endpoint.handle(signed(f, "ListQueues", "{}", key: "nobody", secret: "x"))
        #expect(unknown.status == 403 && code(unknown) == "InvalidClientTokenId")
        let unsigned = await f.endpoint.handle(.init(method: "POST", path: "/", headers: ["x-amz-target": "AmazonSQS.ListQueues"], body: []))
        #expect(unsigned.status == 403 && code(unsigned) == "MissingAuthenticationToken")
        let receive = await f.endpoint.handle(signed(f, "ReceiveMessage", #"{"QueueUrl":"http://localhost:9324/000000000000/q1"}"#,
                                                     key: "reader", secret: "reader-secret-0123456789"))
        #expect(receive.status == 200)
        // A request signed 16 minutes ago.
        let old = signed(f, "ListQueues", "{}", key: "admin", secret: "admin-secret-0123456789")
        f.clock.advance(bySeconds: 16 * 60)
        let skewed = await f.endpoint.handle(old)
        #expect(skewed.status == 403 && code(skewed) == "SignatureDoesNotMatch")
        #expect(try f.broker.listQueues().map(\.name.rawValue) == ["q1"], "rejected requests changed nothing")
    }
}
