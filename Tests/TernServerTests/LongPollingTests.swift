import Foundation
import Hummingbird
import HummingbirdTesting
import TernCore
import Testing

/// Long polling over HTTP with the real broker and a ``ManualClock``: the clock never moves
/// unless the test moves it, so a waiting receive can only be ended by a send (or by the test
/// advancing the clock past `wait_time`). Run in-process and through AsyncHTTPClient (several
/// connections, so the send does not queue behind the waiting receive).
@Suite struct LongPollingTests {
    @Test(arguments: [TestingSetup.router, .ahc(.http)])
    func waitingReceive_returnsTheMessage_whenAnotherRequestSendsOne(setup: TestingSetup) async throws {
        let f = try await ServerFixture()
        try await f.run(setup) { api in
            try await api.createQueue("q")
            let start = f.clock.now
            async let waiting = api.request(.get, "/queues/q/messages?wait_time=20&batch_size=10")
            await f.clock.waitForSleepers(count: 1)
            let sent = try await api.send("q", "wake up")
            let reply = try await waiting
            #expect(reply.status == 200, "\(reply)")
            let messages = try reply.decode(ReceivedBatchBody.self).messages
            #expect(messages.map { $0.id } == [sent.id])
            #expect(messages.map { $0.body } == ["wake up"])
            #expect(f.clock.now == start, "the wait ended by the send, not by time")
            #expect(try await api.describe("q").messages.inFlight == 1)
        }
    }

    @Test(arguments: [TestingSetup.router, .ahc(.http)])
    func waitingReceive_answersEmpty_whenWaitTimePasses(setup: TestingSetup) async throws {
        let f = try await ServerFixture()
        try await f.run(setup) { api in
            try await api.createQueue("q")
            async let waiting = api.request(.get, "/queues/q/messages?wait_time=20")
            await f.clock.waitForSleepers(count: 1)
            f.clock.advance(bySeconds: 19)
            #expect(f.clock.sleeperCount == 1, "still waiting at 19 s")
            f.clock.advance(bySeconds: 1)
            let reply = try await waiting
            #expect(reply.status == 200, "\(reply)")
            #expect(try reply.decode(ReceivedBatchBody.self).messages.isEmpty)
        }
    }

    /// A send to another queue does not satisfy the waiter; a later send to its queue does.
    @Test func waitingReceive_ignoresSendsToOtherQueues() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            try await api.createQueue("other")
            async let waiting = api.request(.get, "/queues/q/messages?wait_time=20")
            await f.clock.waitForSleepers(count: 1)
            try await api.send("other", "not for q")
            try await api.send("q", "for q")
            let reply = try await waiting
            #expect(try reply.decode(ReceivedBatchBody.self).messages.map { $0.body } == ["for q"])
            #expect(try await api.describe("other").messages.ready == 1)
        }
    }

    /// A delayed message wakes a waiter when its due time comes within the wait.
    @Test func waitingReceive_getsADelayedMessageAtItsDueTime() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            try await api.send("q", "soon", delay: 5)
            async let waiting = api.request(.get, "/queues/q/messages?wait_time=20")
            await f.clock.waitForSleepers(count: 1)
            f.clock.advance(bySeconds: 5)
            _ = try await f.broker.runDueWork()
            let reply = try await waiting
            #expect(try reply.decode(ReceivedBatchBody.self).messages.map { $0.body } == ["soon"])
        }
    }

    @Test func waitTime0_onAnEmptyQueue_answersAtOnce() async throws {
        let f = try await ServerFixture()
        try await f.run { api in
            try await api.createQueue("q")
            #expect(try await api.receive("q", "wait_time=0").isEmpty)
            #expect(f.clock.sleeperCount == 0)
        }
    }
}
