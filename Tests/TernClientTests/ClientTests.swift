import Testing
import TernClient
import TernCore
import TernTestKit
import TernWire

@Suite struct ProducerClientTests {
    @Test func producer_batchesConcurrentSends_andEachGetsItsOwnResult() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            try await client.createQueue("q")
            let producer = Producer(client: client)
            let sent = try await withThrowingTaskGroup(of: SentMessage.self) { group in
                for index in 0..<500 {
                    group.addTask { try await producer.send(Array("m\(index)".utf8), to: "q") }
                }
                return try await group.reduce(into: [SentMessage]()) { $0.append($1) }
            }
            #expect(Set(sent.map(\.id)).count == 500)
            #expect(Set(sent.map(\.sequence)).count == 500)
            #expect(try await client.describeQueue("q").counts.ready == 500)
            await client.close()
        }
    }

    @Test func resentStampedBatch_afterALostResponse_isStoredOnce() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            try await client.createQueue("q")
            guard case .producer(let id, let epoch) = try await client.call(.initProducer(transactionalID: nil)) else {
                Issue.record("no producer"); return
            }
            let request = WireRequest.send(queue: "q", producer: WireProducerStamp(producerID: id, epoch: epoch, firstSequence: 0),
                                           messages: [OutgoingMessage(body: Array("a".utf8)), OutgoingMessage(body: Array("b".utf8))])
            let first = try await client.call(request)
            // The connection is lost before the answer is read; the client reconnects and resends.
            await client.close()
            let second = try await client.call(request)
            guard case .sent(let original, false) = first, case .sent(let repeated, true) = second else {
                Issue.record("unexpected \(first) / \(second)"); return
            }
            #expect(repeated.map(\.id) == original.map(\.id))
            #expect(try await client.describeQueue("q").counts.ready == 2)
            await client.close()
        }
    }

    @Test func resentStampedProduce_afterALostResponse_isStoredOnce_withTheOriginalOffsets() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            _ = try await client.createTopic("t", patch: TopicAttributes.Patch(partitions: 4))
            guard case .producer(let id, let epoch) = try await client.call(.initProducer(transactionalID: nil)) else {
                Issue.record("no producer"); return
            }
            let request = WireRequest.produce(topic: "t", producer: WireProducerStamp(producerID: id, epoch: epoch, firstSequence: 0),
                                              messages: [TopicMessage(value: Array("a".utf8)), TopicMessage(key: Array("k".utf8), value: Array("b".utf8))])
            let first = try await client.call(request)
            await client.close()
            let second = try await client.call(request)
            guard case .produced(let original, false) = first, case .produced(let repeated, true) = second else {
                Issue.record("unexpected \(first) / \(second)"); return
            }
            #expect(repeated == original)
            let stored = try await client.describeTopic("t").partitions.reduce(0) { $0 + $1.highWatermark }
            #expect(stored == 2)
            await client.close()
        }
    }

    @Test func producer_batchesTopicRecords_withDenseOffsetsPerPartition_inSendOrderPerKey() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            _ = try await client.createTopic("logs", patch: TopicAttributes.Patch(partitions: 3))
            let producer = Producer(client: client)
            // One task per key, each sending in order; keys interleave across batches.
            let results = try await withThrowingTaskGroup(of: (String, [TopicOffset]).self) { group in
                for key in ["a", "b", "c", "d"] {
                    group.addTask {
                        var offsets = [TopicOffset]()
                        for index in 0..<50 {
                            offsets.append(try await producer.produce(Array("\(key)\(index)".utf8), key: Array(key.utf8), to: "logs"))
                        }
                        return (key, offsets)
                    }
                }
                return try await group.reduce(into: [String: [TopicOffset]]()) { $0[$1.0] = $1.1 }
            }
            var all = [Int: [UInt64]]()
            for (key, offsets) in results {
                #expect(Set(offsets.map(\.partition)).count == 1, "\(key) stays in one partition")
                #expect(offsets.map(\.offset) == offsets.map(\.offset).sorted(), "\(key) in send order")
                for offset in offsets { all[offset.partition, default: []].append(offset.offset) }
            }
            for (partition, offsets) in all {
                #expect(offsets.sorted() == Array(0..<UInt64(offsets.count)), "partition \(partition): dense from 0")
            }
            // Each record reads back where the producer said it is.
            for (key, offsets) in results {
                let fetched = try await client.fetch(topic: "logs", partition: offsets[0].partition, offset: offsets[7].offset, max: 1)
                #expect(fetched.messages.first.map { String(decoding: $0.value, as: UTF8.self) } == "\(key)7")
            }
            await client.close()
        }
    }

    @Test func producer_withAMissingQueue_failsEveryMessageOfTheBatch_andRecovers() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            let producer = Producer(client: client)
            do { _ = try await producer.send(Array("x".utf8), to: "missing"); Issue.record("sent") } catch let error as TernError {
                #expect(error.code == .queueNotFound)
            }
            try await client.createQueue("missing")
            // The failed batch gave its sequence numbers back: the next send is in order.
            _ = try await producer.send(Array("y".utf8), to: "missing")
            #expect(try await client.describeQueue("missing").counts.ready == 1)
            await client.close()
        }
    }
}

@Suite struct TransactionalProducerTests {
    @Test func consumeTransformProduce_movesEveryMessageOnce() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            try await client.createQueue("in")
            try await client.createQueue("out")
            _ = try await client.send((0..<20).map { OutgoingMessage(body: Array("line \($0)".utf8)) }, to: "in")
            let producer = TransactionalProducer(client: client, transactionalID: "upper")
            var seen = 0
            for try await message in QueueConsumer(client: client, queue: "in", batchSize: 10, waitTime: 1) {
                try await producer.begin()
                await producer.send(OutgoingMessage(body: Array(message.text.uppercased().utf8)), to: "out")
                await producer.acknowledge(message)
                try await producer.commit()
                seen += 1
                if seen == 20 { break }
            }
            #expect(try await client.describeQueue("in").counts.total == 0)
            let out = try await client.receive(from: "out", maxMessages: 100)
            #expect(Set(out.map { String(decoding: $0.body, as: UTF8.self) }) == Set((0..<20).map { "LINE \($0)" }))
            await client.close()
        }
    }

    @Test func transactionalProducer_producesToATopic_visibleOnlyOnCommit() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            try await client.createQueue("in")
            _ = try await client.createTopic("upper", patch: TopicAttributes.Patch(partitions: 2))
            _ = try await client.send([OutgoingMessage(body: Array("a".utf8)), OutgoingMessage(body: Array("b".utf8))], to: "in")
            let producer = TransactionalProducer(client: client, transactionalID: "to-topic")
            try await producer.begin()
            for message in try await client.receive(from: "in", maxMessages: 2) {
                await producer.produce(Array(String(decoding: message.body, as: UTF8.self).uppercased().utf8), key: message.body, to: "upper")
                await producer.acknowledge(message.receiptHandle, on: "in")
            }
            #expect(try await client.describeTopic("upper").partitions.reduce(0) { $0 + $1.highWatermark } == 0, "nothing before the commit")
            _ = try await producer.commit()
            let produced = await producer.lastProduced
            #expect(produced.count == 1)
            #expect(produced.first?.count == 2)
            var values = [String]()
            for offset in produced.first ?? [] {
                let page = try await client.fetch(topic: "upper", partition: offset.partition, offset: offset.offset, max: 1)
                values += page.messages.map { String(decoding: $0.value, as: UTF8.self) }
            }
            #expect(values == ["A", "B"])
            #expect(try await client.describeQueue("in").counts.total == 0)
            await client.close()
        }
    }

    @Test func secondProducerWithTheSameID_fencesTheFirst() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            try await client.createQueue("out")
            let first = TransactionalProducer(client: client, transactionalID: "same")
            try await first.begin()
            await first.send(OutgoingMessage(body: Array("zombie".utf8)), to: "out")
            let second = TransactionalProducer(client: client, transactionalID: "same")
            try await second.initialize()
            do { try await first.commit(); Issue.record("the fenced producer committed") } catch let error as TernError {
                #expect(error.code == .producerFenced)
            }
            do { try await first.begin(); try await first.commit(); Issue.record("committed") } catch let error as TernError {
                #expect(error.code == .producerFenced)
            }
            try await second.begin()
            await second.send(OutgoingMessage(body: Array("live".utf8)), to: "out")
            try await second.commit()
            let out = try await client.receive(from: "out", maxMessages: 10)
            #expect(out.map { String(decoding: $0.body, as: UTF8.self) } == ["live"])
            await client.close()
        }
    }

    @Test func abort_discardsStagedWork_andTheAckedMessageStaysInFlight() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            try await client.createQueue("in")
            try await client.createQueue("out")
            _ = try await client.send([OutgoingMessage(body: Array("a".utf8))], to: "in")
            let received = try await client.receive(from: "in")
            let producer = TransactionalProducer(client: client, transactionalID: "t")
            try await producer.begin()
            await producer.acknowledge(received[0].receiptHandle, on: "in")
            await producer.send(OutgoingMessage(body: Array("A".utf8)), to: "out")
            await producer.abort()
            #expect(try await client.describeQueue("in").counts.inFlight == 1)
            #expect(try await client.describeQueue("out").counts.total == 0)
            await client.close()
        }
    }
}

@Suite struct QueueConsumerTests {
    @Test func consumer_yieldsMessages_withAckReleaseAndExtend() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            try await client.createQueue("q")
            _ = try await client.send(["a", "b", "c"].map { OutgoingMessage(body: Array($0.utf8)) }, to: "q")
            var iterator = QueueConsumer(client: client, queue: "q", batchSize: 3, waitTime: 1).makeAsyncIterator()
            let a = try #require(try await iterator.next())
            let b = try #require(try await iterator.next())
            let c = try #require(try await iterator.next())
            try await a.ack()
            try await b.extendVisibility(by: 600)
            try await c.release()
            let counts = try await client.describeQueue("q").counts
            #expect(counts.ready == 1)
            #expect(counts.inFlight == 1)
            let again = try #require(try await iterator.next())
            #expect(again.text == "c")
            #expect(again.receiveCount == 2)
            await client.close()
        }
    }
}
