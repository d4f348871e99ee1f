import Testing
import TernClient
import TernCore
import TernTestKit
import TernWire

/// A client given several nodes (Kafka's `bootstrap.servers`) keeps working when the one it
/// was made with cannot be reached, and a node alone answers `Metadata` as "not clustered".
@Suite struct BootstrapServersTests {
    @Test func aNodeThatCannotBeReached_isSkipped_forTheNextBootstrapServer() async throws {
        try await WireServerFixture.with { f in
            let dead = try TernProcess.freePort()  // nothing listens there
            var settings = TernClient.Settings()
            settings.bootstrapServers = ["not an address", "127.0.0.1:\(f.port)"]
            let client = TernClient(host: "127.0.0.1", port: dead, settings: settings)
            #expect(client.knownNodes.map(\.port) == [dead, f.port], "the unparsable entry is ignored")
            try await client.createQueue("q")
            #expect(client.currentAddress.port == f.port, "calls now go to the node that answered")
            #expect(try await client.describeQueue("q").name.rawValue == "q")
            await client.close()
        }
    }

    @Test func withoutAnotherNode_theConnectFailureReachesTheCaller() async throws {
        let dead = try TernProcess.freePort()
        let client = TernClient(host: "127.0.0.1", port: dead)
        do throws(TernError) {
            _ = try await client.listQueues()
            Issue.record("a call to a port nobody listens on succeeded")
        } catch {
            #expect(error.code == .unavailable)
        }
        await client.close()
    }

    @Test func aNodeAlone_answersMetadataAsNotClustered_andTheClientStaysThere() async throws {
        try await WireServerFixture.with { f in
            let client = f.client()
            let metadata = try await client.metadata()
            #expect(metadata == .alone)
            #expect(client.currentAddress.port == f.port)
            #expect(client.knownNodes.count == 1)
            await client.close()
        }
    }
}

/// A client newer than its broker: the broker's `ApiVersions` does not list `Metadata` (it
/// predates it), so the client does not ask it, and every call still works.
@Suite struct OlderBrokerTests {
    @Test func aBrokerWithoutMetadata_isServedAsBefore_andNeverAskedForIt() async throws {
        try await WireServerFixture.with { f in
            let proxy = try await StallingProxy(upstreamPort: f.port)
            proxy.flags.hidden = [WireAPI.metadata.rawValue]
            let client = TernClient(host: "127.0.0.1", port: proxy.port)
            try await client.createQueue("q")
            #expect(try await client.listQueues().map(\.name.rawValue) == ["q"])
            #expect(proxy.flags.hiddenRequests == 0, "Metadata was not sent to a broker that does not list it")
            await client.close()
            await proxy.shutdown()
        }
    }
}
