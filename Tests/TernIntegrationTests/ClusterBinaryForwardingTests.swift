import Foundation
import NIOCore
import NIOPosix
import Testing
import TernClient
import TernCluster
import TernCore
import TernTestKit
import TernWire

extension IntegrationTests.ClusterProcessTests {
    /// Settings of a client that never leaves the node it was given: no `Metadata`, no
    /// following of `NotLeader` (a client written from `docs/protocol.md`, or a TCP load
    /// balancer in front of the nodes).
    static var pinned: TernClient.Settings {
        var settings = TernClient.Settings()
        settings.maxLeaderRedirects = 0
        settings.discoverLeader = false
        return settings
    }

    /// Runs `body` until it does not fail with `Unavailable` or `NotLeader` (the group is
    /// electing, or the forward's outcome was unknown), up to 60 s; records the codes seen.
    static func retryingBinary<T>(_ seen: inout Set<String>, _ body: () async throws(TernError) -> T) async throws -> T {
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            let failure: TernError
            do throws(TernError) {
                return try await body()
            } catch {
                failure = error
            }
            guard [ErrorCode.unavailable, .notLeader].contains(failure.code), ContinuousClock.now < deadline else { throw failure }
            seen.insert(failure.code.name)
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Issue 11, item 4 (decision 133): binary clients pinned to followers send, long-poll,
    /// receive and acknowledge through them — the followers forward to the leader — and go on
    /// doing so through a follower after the leader is killed with `kill -9`: in between they
    /// hear only `Unavailable` (saying whether the request was applied) or `NotLeader`, and
    /// every acknowledged send is delivered.
    @Test func pinnedBinaryClients_areServedThroughFollowers_acrossALeaderKill() async throws {
        try await Self.withCluster("tern-cluster-binfwd") { nodes, _ in
            let leader = try await Self.leader(of: nodes)
            let followers = nodes.filter { $0.id != leader.id }
            var clients = [String: TernClient]()
            for follower in followers { clients[follower.id] = TernClient(host: "127.0.0.1", port: follower.binaryPort, settings: Self.pinned) }
            let (a, b) = (clients[followers[0].id]!, clients[followers[1].id]!)
            func text(_ messages: [ReceivedMessage]) -> [String] { messages.map { String(decoding: $0.body, as: UTF8.self) } }

            let (created, _) = try await a.createQueue("forwarded")
            #expect(created, "created through a follower")
            // A long poll through one follower waits on the leader and is woken by a send
            // through the other.
            async let polled = b.receive(from: "forwarded", maxMessages: 10, waitTime: 15)
            try await Task.sleep(for: .milliseconds(500))
            _ = try await a.send([OutgoingMessage(body: Array("before".utf8))], to: "forwarded")
            let first = try await polled
            #expect(text(first) == ["before"])
            try await b.acknowledge(first[0].receiptHandle, on: "forwarded")
            #expect(try await a.describeQueue("forwarded").counts.total == 0, "the ack through a follower was applied")
            #expect(a.currentAddress.port == followers[0].binaryPort && b.currentAddress.port == followers[1].binaryPort,
                    "the clients stayed on their followers")
            let metrics = String(decoding: try await Self.call(.GET, followers[0].process.baseURL + "/metrics").body, as: UTF8.self)
            let forwarded = metrics.split(separator: "\n").first { $0.hasPrefix("tern_cluster_forwarded_requests_total") }
            #expect(forwarded.flatMap { Double($0.split(separator: " ").last ?? "") }.map { $0 >= 3 } == true, "\(forwarded ?? "no metric")")
            #expect(metrics.contains("tern_binary_forward_connections 1"), "one pooled connection carried the sequential requests")
            #expect(metrics.contains("tern_binary_forward_in_flight 0"))

            await leader.process.kill9()
            var seen = Set<String>()
            _ = try await Self.retryingBinary(&seen) { () async throws(TernError) in
                try await a.send([OutgoingMessage(body: Array("after".utf8))], to: "forwarded")
            }
            let successor = try await Self.leader(of: nodes, excluding: [leader.id])
            // Through the node that is still a follower (the other one may have been elected).
            let follower = followers.first { $0.id != successor.id }!
            let client = clients[follower.id]!
            _ = try await Self.retryingBinary(&seen) { () async throws(TernError) in
                try await client.send([OutgoingMessage(body: Array("post".utf8))], to: "forwarded")
            }
            // Receive and acknowledge everything through the follower; a receive whose outcome
            // was unknown leaves its messages in flight for 2 s only.
            var bodies = [String]()
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                let got = try await Self.retryingBinary(&seen) { () async throws(TernError) in
                    try await client.receive(from: "forwarded", maxMessages: 10, visibilityTimeout: 2, waitTime: 1)
                }
                for message in got {
                    _ = try await Self.retryingBinary(&seen) { () async throws(TernError) in
                        try await client.acknowledge([message.receiptHandle], on: "forwarded")
                    }
                }
                bodies += text(got)
                let total = try await Self.retryingBinary(&seen) { () async throws(TernError) in
                    try await client.describeQueue("forwarded").counts.total
                }
                if bodies.contains("after") && bodies.contains("post") && total == 0 { break }
            }
            #expect(bodies.contains("after") && bodies.contains("post"), "every acknowledged send was delivered: \(bodies)")
            #expect(!bodies.contains("before"), "an acknowledged message did not come back")
            #expect(try await client.describeQueue("forwarded").counts.total == 0, "the acks through the follower were applied")
            #expect(seen.isSubset(of: ["Unavailable", "NotLeader"]), "\(seen)")
            #expect(client.currentAddress.port == follower.binaryPort, "the client stayed on its follower")
            for client in clients.values { await client.close() }
        }
    }

    /// A `Forward` that reaches a node which does not lead is answered `NotLeader` naming the
    /// leader, never forwarded again; the same `Forward` sent to the leader is served.
    @Test func aForwardedRequest_isNeverForwardedAgain() async throws {
        try await Self.withCluster("tern-cluster-binloop") { nodes, _ in
            let leader = try await Self.leader(of: nodes)
            let follower = nodes.first { $0.id != leader.id }!
            let create = WireForward(forwarding: WireRequest.createQueue(name: "looped", patch: .init()).frame(correlationID: 0), token: nil)

            let onFollower = try await RawPeerConnection.forward(create, port: follower.binaryPort, target: follower.id)
            #expect(onFollower.apiKey == WireAPI.forward.rawValue)
            var asClient = onFollower
            asClient.apiKey = WireAPI.createQueue.rawValue
            guard case .error(let error) = try WireResponse(decoding: asClient) else {
                Issue.record("the follower served a forwarded request: \(onFollower)"); return
            }
            #expect(error.code == .notLeader && error.message.contains("not forwarded again"), "\(error)")
            #expect(error.message.hasSuffix(" at 127.0.0.1:\(leader.binaryPort)"), "\(error.message)")
            #expect(try await Self.call(.GET, leader.process.baseURL + "/queues/looped").status == 404, "nothing was applied")

            var served = try await RawPeerConnection.forward(create, port: leader.binaryPort, target: leader.id)
            served.apiKey = WireAPI.createQueue.rawValue
            guard case .queue(let created, _) = try WireResponse(decoding: served) else { Issue.record("\(served)"); return }
            #expect(created, "the leader served the Forward")
        }
    }

    /// With `--no-binary-forwarding` a follower answers binary data requests `NotLeader`
    /// naming the leader, as before forwarding existed, and `TernClient` follows it.
    @Test func withBinaryForwardingOff_aFollowerAnswersNotLeader_whichTernClientFollows() async throws {
        try await Self.withCluster("tern-cluster-binary", arguments: ["--no-binary-forwarding"]) { nodes, _ in
            let leader = try await Self.leader(of: nodes)
            let follower = nodes.first { $0.id != leader.id }!

            let pinned = TernClient(host: "127.0.0.1", port: follower.binaryPort, settings: Self.pinned)
            do throws(TernError) {
                _ = try await pinned.createQueue("binary-jobs")
                Issue.record("a follower created a queue")
            } catch {
                #expect(error.code == .notLeader)
                #expect(error.message.hasSuffix(" at 127.0.0.1:\(leader.binaryPort)"), "\(error.message)")
            }
            await pinned.close()

            let client = TernClient(host: "127.0.0.1", port: follower.binaryPort)
            let (created, _) = try await client.createQueue("binary-jobs")
            #expect(created, "the queue did not exist: the NotLeader answer applied nothing")
            #expect(client.currentAddress.port == leader.binaryPort, "the client now talks to the leader")
            _ = try await client.send([OutgoingMessage(body: Array("hello".utf8))], to: "binary-jobs")
            let received = try await client.receive(from: "binary-jobs", maxMessages: 10, waitTime: 1)
            #expect(received.map { String(decoding: $0.body, as: UTF8.self) } == ["hello"])
            try await client.acknowledge(received[0].receiptHandle, on: "binary-jobs")
            await client.close()
        }
    }
}

/// A raw peer connection to a node's binary listener: `ApiVersions`, a `PeerHello` without a
/// proof (the test clusters have no cluster key), then one `Forward`.
enum RawPeerConnection {
    /// The answer frame to `forward` sent to the node `target` listening on `port`.
    static func forward(_ forward: WireForward, port: Int, target: String) async throws -> WireFrame {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WireFrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(WireFrameWriter())
                    return try NIOAsyncChannel<WireFrame, WireFrame>(wrappingChannelSynchronously: channel)
                }
            }
        let hello = WirePeerHello(nodeID: "raw-peer", target: RaftNodeID.of(target), timestamp: SystemClock().now.milliseconds,
                                  nonce: (0..<16).map { _ in UInt8.random(in: 0...255) })
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(WireRequest.apiVersions(clientName: "raw-peer").frame(correlationID: 1))
            try await outbound.write(WireRequest.peerHello(hello).frame(correlationID: 2))
            try await outbound.write(WireRequest.forward(forward).frame(correlationID: 3))
            for try await frame in inbound where frame.correlationID == 3 { return frame }
            throw TernProcess.Failure("the node closed the connection without answering the Forward")
        }
    }
}
