import Testing
import TernClient
import TernCore
import TernWire

@Suite struct RequestTimeoutTests {
    @Test func call_toABrokerThatStoppedAnswering_failsWithATimeout_andTheNextCallReconnects() async throws {
        try await WireServerFixture.with { f in
            let proxy = try await StallingProxy(upstreamPort: f.port)
            var settings = TernClient.Settings()
            settings.requestTimeout = .milliseconds(2500)
            let client = TernClient(host: "127.0.0.1", port: proxy.port, settings: settings)
            try await client.createQueue("q")

            proxy.flags.stalling = true
            do {
                _ = try await client.describeQueue("q")
                Issue.record("a swallowed request was answered")
            } catch let error as TernError {
                #expect(error.code == .unavailable)
                #expect(error.message.contains("timed out after 2.5 s"), "\(error.message)")
                #expect(error.message.contains("may or may not have been applied"), "\(error.message)")
            }
            #expect(proxy.flags.swallowed == 1)

            // The connection was closed; the next call opens a new one, through a healthy proxy.
            proxy.flags.stalling = false
            #expect(try await client.describeQueue("q").name.rawValue == "q")
            await client.close()
            await proxy.shutdown()
        }
    }

    @Test func concurrentCalls_onAStalledConnection_allFail_andNoneHangs() async throws {
        try await WireServerFixture.with { f in
            let proxy = try await StallingProxy(upstreamPort: f.port)
            var settings = TernClient.Settings()
            settings.requestTimeout = .milliseconds(2500)
            let client = TernClient(host: "127.0.0.1", port: proxy.port, settings: settings)
            try await client.createQueue("q")
            proxy.flags.stalling = true
            let codes = await withTaskGroup(of: ErrorCode?.self) { group in
                for _ in 0..<5 {
                    group.addTask {
                        do { _ = try await client.describeQueue("q"); return nil } catch let error as TernError { return error.code } catch { return nil }
                    }
                }
                return await group.reduce(into: [ErrorCode?]()) { $0.append($1) }
            }
            #expect(codes == Array(repeating: .unavailable, count: 5))
            proxy.flags.stalling = false
            #expect(try await client.listQueues().count == 1)
            await client.close()
            await proxy.shutdown()
        }
    }

    @Test func longPoll_waitsItsWaitTimeBeyondTheRequestTimeout_withoutTimingOut() async throws {
        try await WireServerFixture.with { f in
            // A request timeout of 3 s leaves room for a loaded machine's scheduling delays.
            let client = f.client { $0.requestTimeout = .seconds(3) }
            try await client.createQueue("q")
            // The broker holds the receive for its 4 s wait time, longer than the request timeout.
            #expect(try await client.receive(from: "q", waitTime: 4).isEmpty)
            #expect(try await client.describeQueue("q").counts.total == 0)
            await client.close()
        }
    }
}
