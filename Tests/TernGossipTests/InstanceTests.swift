import Testing
import TernGossip

/// Helpers to drive instances event by event: time is a `Duration` the test moves by hand.
enum Fixture {
    static func node(_ name: String, port: UInt16, startedAt: UInt64 = 1) -> Gossip.Node {
        Gossip.Node(id: Gossip.NodeID(rawValue: name)!, gossip: Gossip.Address(host: "10.0.0.1", port: port),
                    http: Gossip.Address(host: "10.0.0.1", port: port + 1000), zone: "z1", startedAt: startedAt)
    }

    static let a = node("a", port: 1), b = node("b", port: 2), c = node("c", port: 3), d = node("d", port: 4), e = node("e", port: 5)

    /// A started instance of `myself` that knows `others` as alive at incarnation 0.
    static func instance(_ myself: Gossip.Node, knowing others: [Gossip.Node], settings: Gossip.Settings = .init(),
                         seed: UInt64 = 1, now: Duration = .zero) -> Gossip.Instance {
        var instance = Gossip.Instance(myself: myself, settings: settings, seed: seed, now: now)
        _ = instance.onJoin(seeds: [], now: now)
        if !others.isEmpty {
            let records = others.map { Gossip.MemberRecord(node: $0, state: .alive, incarnation: 0) }
            _ = instance.onMessage(Gossip.Packet(sender: others[0].id, messages: [.sync(replyWanted: false, join: false, members: records)]),
                                   from: others[0].gossip, now: now)
        }
        return instance
    }

    static func sends(_ directives: [Gossip.Directive]) -> [(Gossip.Packet, Gossip.Address)] {
        directives.compactMap { if case .send(let p, let a) = $0 { (p, a) } else { nil } }
    }

    static func schedules(_ directives: [Gossip.Directive]) -> [(Gossip.Timer, Duration)] {
        directives.compactMap { if case .schedule(let t, let d) = $0 { (t, d) } else { nil } }
    }

    static func changes(_ directives: [Gossip.Directive]) -> [Gossip.MemberChange] {
        directives.compactMap { if case .memberChanged(let c) = $0 { c } else { nil } }
    }

    /// The ping in `directives`: (sequence, target, address).
    static func ping(_ directives: [Gossip.Directive]) -> (UInt32, Gossip.NodeID, Gossip.Address)? {
        for (packet, address) in sends(directives) {
            for message in packet.messages {
                if case .ping(let sequence, let target) = message { return (sequence, target, address) }
            }
        }
        return nil
    }

    /// Ticks `instance` until it pings `target`; returns the directives of that tick.
    static func tickUntilPinging(_ instance: inout Gossip.Instance, _ target: Gossip.NodeID, now: inout Duration) -> [Gossip.Directive] {
        for _ in 0..<20 {
            let out = instance.onPeriodicTick(now: now)
            if let (_, pinged, _) = ping(out), pinged == target { return out }
            // Answer whoever else was probed, so that nobody else becomes suspect.
            if let (sequence, other, _) = ping(out) {
                _ = instance.onMessage(Gossip.Packet(sender: other, messages: [.ack(sequence: sequence)]),
                                       from: instance.member(other)!.node.gossip, now: now + .milliseconds(5))
            }
            now += .seconds(1)
        }
        Issue.record("never pinged \(target)")
        return []
    }

    static func updates(in packet: Gossip.Packet) -> [Gossip.Update] {
        packet.messages.compactMap { if case .update(let u) = $0 { u } else { nil } }
    }
}

@Suite struct InstanceTests {
    typealias F = Fixture

    @Test func probe_answeredByAck_keepsTargetAliveAndReportsRoundTrip() {
        var now = Duration.zero
        var a = F.instance(F.a, knowing: [F.b])
        var b = F.instance(F.b, knowing: [F.a])
        let tick = a.onPeriodicTick(now: now)
        let (sequence, target, address) = try! #require(F.ping(tick))
        #expect(target == F.b.id && address == F.b.gossip)
        #expect(F.schedules(tick).contains { $0.0 == .probeTimeout(sequence: sequence) && $0.1 == .milliseconds(500) })
        #expect(F.schedules(tick).contains { $0.0 == .probe && $0.1 == .seconds(1) })
        // b answers the ping with an ack to the sender's address.
        let packet = F.sends(tick).first { $0.1 == F.b.gossip }!.0
        let answer = b.onMessage(packet, from: F.a.gossip, now: now + .milliseconds(3))
        let (ackPacket, ackAddress) = try! #require(F.sends(answer).first)
        #expect(ackAddress == F.a.gossip)
        #expect(ackPacket.messages.first == .ack(sequence: sequence))
        now += .milliseconds(7)
        let acked = a.onMessage(ackPacket, from: F.b.gossip, now: now)
        #expect(acked.contains(.probeAcknowledged(F.b.id, roundTrip: .milliseconds(7))))
        // The probe timeout and the next period change nothing.
        #expect(F.sends(a.onProbeTimeout(sequence: sequence, now: .milliseconds(500))).isEmpty)
        let next = a.onPeriodicTick(now: .seconds(1))
        #expect(F.changes(next).isEmpty)
        #expect(a.member(F.b.id)?.state == .alive)
        #expect(a.statistics.probesFailed == 0)
    }

    @Test func probe_timingOut_probesIndirectlyThenSuspectsThenDeclaresDead() {
        var now = Duration.zero
        var a = F.instance(F.a, knowing: [F.b, F.c, F.d])
        let tick = F.tickUntilPinging(&a, F.b.id, now: &now)
        let (sequence, _, _) = F.ping(tick)!
        // No ack within the probe timeout: indirect pings to the two other members.
        let timeout = a.onProbeTimeout(sequence: sequence, now: now + .milliseconds(500))
        let indirect = F.sends(timeout)
        #expect(Set(indirect.map(\.1)) == [F.c.gossip, F.d.gossip])
        for (packet, _) in indirect {
            #expect(packet.messages.first == .indirectPing(sequence: sequence, target: F.b.id, address: F.b.gossip, wantsNack: true))
        }
        // Both helpers answer nacks (b is silent for them too): a's own health is fine.
        _ = a.onMessage(Gossip.Packet(sender: F.c.id, messages: [.nack(sequence: sequence)]), from: F.c.gossip, now: now + .milliseconds(900))
        _ = a.onMessage(Gossip.Packet(sender: F.d.id, messages: [.nack(sequence: sequence)]), from: F.d.gossip, now: now + .milliseconds(900))
        now += .seconds(1)
        let end = a.onPeriodicTick(now: now)
        let suspected = F.changes(end)
        #expect(suspected.map(\.member.id) == [F.b.id])
        #expect(suspected.first?.member.state == .suspect && suspected.first?.previousState == .alive)
        #expect(a.localHealth == 0)
        // 4 members: floor 4 · max(1, log10 4) · 1 s = 4 s; K = 4 − 2 = 2 confirmations expected, so a
        // fresh suspicion waits the maximum, 6 · 4 s = 24 s.
        let timer = F.schedules(end).first { $0.0 == .suspicionTimeout(F.b.id) }
        #expect(timer?.1 == .seconds(24))
        // The suspicion is gossiped.
        let gossip = a.onGossipTick(now: now + .milliseconds(200))
        #expect(F.sends(gossip).contains { F.updates(in: $0.0).contains(.suspect(F.b.id, incarnation: 0, source: F.a.id)) })
        // Too early: nothing happens, the timer is asked again.
        let early = a.onSuspicionTimeout(F.b.id, now: now + .seconds(10))
        #expect(F.changes(early).isEmpty)
        #expect(F.schedules(early).first?.1 == .seconds(14))
        let dead = a.onSuspicionTimeout(F.b.id, now: now + .seconds(24))
        #expect(F.changes(dead).first?.member.state == .dead)
        #expect(a.member(F.b.id)?.state == .dead)
        #expect(a.statistics.membersDeclaredDead == 1)
    }

    @Test func suspicion_confirmedByOthers_shrinksToTheMinimumTimeout() {
        // Lifeguard §IV.B: with 5 members K = 2; each independent confirmation shortens the timeout.
        var now = Duration.zero
        var a = F.instance(F.a, knowing: [F.b, F.c, F.d, F.e])
        let start = now
        let raised = a.onMessage(Gossip.Packet(sender: F.c.id, messages: [.update(.suspect(F.b.id, incarnation: 0, source: F.c.id))]),
                                 from: F.c.gossip, now: now)
        #expect(F.schedules(raised).first { $0.0 == .suspicionTimeout(F.b.id) }?.1 == .seconds(24))
        now += .seconds(1)
        let first = a.onMessage(Gossip.Packet(sender: F.d.id, messages: [.update(.suspect(F.b.id, incarnation: 0, source: F.d.id))]),
                                from: F.d.gossip, now: now)
        let firstDeadline = now + F.schedules(first).first { $0.0 == .suspicionTimeout(F.b.id) }!.1 - start
        #expect(firstDeadline < .seconds(24) && firstDeadline > .seconds(4))
        // A repeated confirmation from the same source changes nothing.
        let repeated = a.onMessage(Gossip.Packet(sender: F.d.id, messages: [.update(.suspect(F.b.id, incarnation: 0, source: F.d.id))]),
                                   from: F.d.gossip, now: now)
        #expect(F.schedules(repeated).isEmpty)
        let second = a.onMessage(Gossip.Packet(sender: F.e.id, messages: [.update(.suspect(F.b.id, incarnation: 0, source: F.e.id))]),
                                 from: F.e.gossip, now: now)
        let secondDeadline = now + F.schedules(second).first { $0.0 == .suspicionTimeout(F.b.id) }!.1 - start
        #expect(secondDeadline == .seconds(4))
        #expect(F.changes(a.onSuspicionTimeout(F.b.id, now: start + .seconds(4))).first?.member.state == .dead)
    }

    @Test func suspicion_refutedByHigherIncarnation_makesMemberAliveAgain() {
        var now = Duration.zero
        var a = F.instance(F.a, knowing: [F.b, F.c])
        var b = F.instance(F.b, knowing: [F.a, F.c])
        _ = a.onMessage(Gossip.Packet(sender: F.c.id, messages: [.update(.suspect(F.b.id, incarnation: 0, source: F.c.id))]),
                        from: F.c.gossip, now: now)
        #expect(a.member(F.b.id)?.state == .suspect)
        // b hears of it and refutes with incarnation 1.
        _ = b.onMessage(Gossip.Packet(sender: F.c.id, messages: [.update(.suspect(F.b.id, incarnation: 0, source: F.c.id))]),
                        from: F.c.gossip, now: now)
        #expect(b.incarnation == 1)
        #expect(b.statistics.selfRefutations == 1)
        now += .milliseconds(200)
        let gossip = F.sends(b.onGossipTick(now: now))
        let refutation = try! #require(gossip.first { F.updates(in: $0.0).contains(.alive(F.b, incarnation: 1)) })
        let changes = F.changes(a.onMessage(refutation.0, from: F.b.gossip, now: now))
        #expect(changes.first?.member.state == .alive && changes.first?.previousState == .suspect)
        #expect(a.member(F.b.id)?.incarnation == 1)
        #expect(a.statistics.suspicionsRefuted == 1)
        // The old suspicion's timer fires later and changes nothing; a stale suspicion is ignored.
        #expect(a.onSuspicionTimeout(F.b.id, now: now + .seconds(30)).isEmpty)
        #expect(F.changes(a.onMessage(Gossip.Packet(sender: F.c.id, messages: [.update(.suspect(F.b.id, incarnation: 0, source: F.c.id))]),
                                      from: F.c.gossip, now: now)).isEmpty)
        #expect(a.member(F.b.id)?.state == .alive)
    }

    @Test func slowMember_answeringThroughIndirectProbe_isNotSuspected() {
        var now = Duration.zero
        var a = F.instance(F.a, knowing: [F.b, F.c])
        let tick = F.tickUntilPinging(&a, F.b.id, now: &now)
        let (sequence, _, _) = F.ping(tick)!
        let timeout = a.onProbeTimeout(sequence: sequence, now: now + .milliseconds(500))
        let (request, helperAddress) = try! #require(F.sends(timeout).first)
        #expect(helperAddress == F.c.gossip)
        // c relays: it pings b with a sequence of its own and relays b's late ack to a.
        var c = F.instance(F.c, knowing: [F.a, F.b])
        let relayed = c.onMessage(request, from: F.a.gossip, now: now + .milliseconds(510))
        let (relayPing, relayTarget) = try! #require(F.sends(relayed).first)
        #expect(relayTarget == F.b.gossip)
        guard case .ping(let relaySequence, F.b.id) = relayPing.messages[0] else { Issue.record("not a ping"); return }
        let relayedAck = c.onMessage(Gossip.Packet(sender: F.b.id, messages: [.ack(sequence: relaySequence)]),
                                     from: F.b.gossip, now: now + .milliseconds(800))
        let (ack, ackTarget) = try! #require(F.sends(relayedAck).first)
        #expect(ackTarget == F.a.gossip && ack.messages.first == .ack(sequence: sequence))
        // The relay's timeout comes later and sends no nack.
        #expect(c.onRelayTimeout(sequence: relaySequence, now: now + .seconds(1)).isEmpty)
        let result = a.onMessage(ack, from: F.c.gossip, now: now + .milliseconds(810))
        #expect(result.contains(.probeAcknowledged(F.b.id, roundTrip: .milliseconds(810))))
        now += .seconds(1)
        #expect(F.changes(a.onPeriodicTick(now: now)).isEmpty)
        #expect(a.member(F.b.id)?.state == .alive)
    }

    @Test func suspectedMember_toldByItsProber_refutesBeforeTheTimeout() {
        // Lifeguard §IV.C, the buddy system: the next ping to a suspect carries the suspicion.
        var now = Duration.zero
        var a = F.instance(F.a, knowing: [F.b, F.c])
        var b = F.instance(F.b, knowing: [F.a, F.c])
        _ = a.onMessage(Gossip.Packet(sender: F.c.id, messages: [.update(.suspect(F.b.id, incarnation: 0, source: F.c.id))]),
                        from: F.c.gossip, now: now)
        let tick = F.tickUntilPinging(&a, F.b.id, now: &now)
        let (packet, _) = F.sends(tick).first { $0.1 == F.b.gossip }!
        #expect(F.updates(in: packet).contains { if case .suspect(F.b.id, 0, _) = $0 { true } else { false } })
        let answer = b.onMessage(packet, from: F.a.gossip, now: now + .milliseconds(2))
        #expect(b.incarnation == 1)
        let (ack, _) = F.sends(answer).first!
        #expect(F.updates(in: ack).contains(.alive(F.b, incarnation: 1)))
        let changes = F.changes(a.onMessage(ack, from: F.b.gossip, now: now + .milliseconds(4)))
        #expect(changes.first?.member.state == .alive)
        #expect(a.onSuspicionTimeout(F.b.id, now: now + .seconds(60)).isEmpty)
        #expect(a.member(F.b.id)?.state == .alive)
    }

    @Test func missedAcksWithoutNacks_stretchTheProtocolPeriod() {
        // Lifeguard §IV.A: when even the indirect probers stay silent, the fault may be ours.
        var now = Duration.zero
        var a = F.instance(F.a, knowing: [F.b, F.c, F.d])
        let first = a.onPeriodicTick(now: now)
        let (sequence, _, _) = F.ping(first)!
        let indirect = F.sends(a.onProbeTimeout(sequence: sequence, now: now + .milliseconds(500)))
        #expect(indirect.count == 2)
        now += .seconds(1)
        let second = a.onPeriodicTick(now: now)
        #expect(a.localHealth == 2)  // two nacks expected, none came
        #expect(F.schedules(second).contains { $0.0 == .probe && $0.1 == .seconds(3) })
        let (sequence2, _, _) = F.ping(second)!
        #expect(F.schedules(second).contains { $0.0 == .probeTimeout(sequence: sequence2) && $0.1 == .milliseconds(1500) })
        // A direct ack lowers the multiplier again.
        let target = F.ping(second)!.1
        _ = a.onMessage(Gossip.Packet(sender: target, messages: [.ack(sequence: sequence2)]), from: a.member(target)!.node.gossip,
                        now: now + .milliseconds(10))
        #expect(a.localHealth == 1)
    }

    @Test func leave_isSeenAsLeftAtOnceAndNeverAsDead() {
        var a = F.instance(F.a, knowing: [F.b, F.c])
        var b = F.instance(F.b, knowing: [F.a, F.c])
        let leave = b.onLeave(now: .seconds(5))
        let toA = try! #require(F.sends(leave).first { $0.1 == F.a.gossip })
        #expect(F.sends(leave).count == 2)
        #expect(b.incarnation == 1 && b.isLeaving)
        let changes = F.changes(a.onMessage(toA.0, from: F.b.gossip, now: .seconds(5)))
        #expect(changes.first?.member.state == .left && changes.first?.previousState == .alive)
        #expect(a.member(F.b.id)?.incarnation == 1)
        // b is never probed again, and a suspicion or alive of the old incarnation changes nothing.
        var now = Duration.seconds(6)
        for _ in 0..<6 {
            let tick = a.onPeriodicTick(now: now)
            if let (sequence, target, address) = F.ping(tick) {
                #expect(target != F.b.id)
                _ = a.onMessage(Gossip.Packet(sender: target, messages: [.ack(sequence: sequence)]), from: address, now: now)
            }
            now += .seconds(1)
        }
        _ = a.onMessage(Gossip.Packet(sender: F.c.id, messages: [.update(.suspect(F.b.id, incarnation: 1, source: F.c.id)),
                                                                  .update(.alive(F.b, incarnation: 1))]), from: F.c.gossip, now: now)
        #expect(a.member(F.b.id)?.state == .left)
        // A leaving node stops probing.
        #expect(b.onPeriodicTick(now: .seconds(6)).isEmpty)
    }

    @Test func restartedNode_sameID_rejoinsWithAHigherIncarnation() {
        var a = F.instance(F.a, knowing: [F.b, F.c])
        _ = a.onMessage(Gossip.Packet(sender: F.c.id, messages: [.update(.dead(F.b.id, incarnation: 3, source: F.c.id))]),
                        from: F.c.gossip, now: .seconds(1))
        #expect(a.member(F.b.id)?.state == .dead)
        // b restarts (a new process, incarnation 0, a new start time) and joins through a.
        let reborn = F.node("b", port: 2, startedAt: 99)
        var b = Gossip.Instance(myself: reborn, seed: 7, now: .seconds(2))
        let join = b.onJoin(seeds: [F.a.gossip], now: .seconds(2))
        let (sync, _) = try! #require(F.sends(join).first { $0.1 == F.a.gossip })
        let reply = a.onMessage(sync, from: F.b.gossip, now: .seconds(2))
        #expect(a.member(F.b.id)?.state == .dead)  // incarnation 0 does not override dead at 3
        // a's reply tells b it is dead at 3: b refutes with 4.
        for (packet, address) in F.sends(reply) where address == F.b.gossip {
            _ = b.onMessage(packet, from: F.a.gossip, now: .seconds(2))
        }
        #expect(b.incarnation == 4)
        #expect(b.member(F.c.id)?.state == .alive)
        let gossip = F.sends(b.onGossipTick(now: .seconds(2) + .milliseconds(200)))
        let toA = try! #require(gossip.first { $0.1 == F.a.gossip } ?? gossip.first)
        let changes = F.changes(a.onMessage(toA.0, from: F.b.gossip, now: .seconds(3)))
        #expect(changes.first?.member.state == .alive && changes.first?.previousState == .dead)
        #expect(a.member(F.b.id)?.incarnation == 4)
        #expect(a.member(F.b.id)?.node.startedAt == 99)
    }

    @Test func messagesFromUnknownOrLeftMembers_changeNothingBeyondTheRules() {
        var a = F.instance(F.a, knowing: [F.b])
        let stranger = F.node("z", port: 26)
        // A ping from an unknown node is answered, but does not make it a member.
        let answer = a.onMessage(Gossip.Packet(sender: stranger.id, messages: [.ping(sequence: 9, target: F.a.id)]),
                                 from: stranger.gossip, now: .seconds(1))
        #expect(F.sends(answer).first?.0.messages.first == .ack(sequence: 9))
        #expect(a.member(stranger.id) == nil)
        // A ping meant for another node (a stale address) is not answered.
        #expect(a.onMessage(Gossip.Packet(sender: stranger.id, messages: [.ping(sequence: 9, target: F.c.id)]),
                            from: stranger.gossip, now: .seconds(1)).isEmpty)
        // Suspicion, death and departure of an unknown member are ignored; acks for no probe too.
        let unknownNews = a.onMessage(Gossip.Packet(sender: stranger.id, messages: [
            .update(.suspect(F.c.id, incarnation: 0, source: stranger.id)), .update(.dead(F.d.id, incarnation: 0, source: stranger.id)),
            .update(.left(F.e.id, incarnation: 0)), .ack(sequence: 12345), .nack(sequence: 3),
        ]), from: stranger.gossip, now: .seconds(1))
        #expect(unknownNews.isEmpty)
        #expect(a.members.map(\.id) == [F.a.id, F.b.id])
        // b leaves; its own stale messages cannot bring it back.
        _ = a.onMessage(Gossip.Packet(sender: F.b.id, messages: [.update(.left(F.b.id, incarnation: 1))]), from: F.b.gossip, now: .seconds(2))
        let stale = a.onMessage(Gossip.Packet(sender: F.b.id, messages: [.update(.alive(F.b, incarnation: 1)),
                                                                          .update(.alive(F.b, incarnation: 0))]),
                                from: F.b.gossip, now: .seconds(3))
        #expect(F.changes(stale).isEmpty)
        #expect(a.member(F.b.id)?.state == .left)
        // A packet claiming to come from a itself is dropped.
        #expect(a.onMessage(Gossip.Packet(sender: F.a.id, messages: [.update(.dead(F.b.id, incarnation: 9, source: F.a.id))]),
                            from: stranger.gossip, now: .seconds(3)).isEmpty)
        // Only a newer incarnation brings a departed member back (it rejoined).
        #expect(F.changes(a.onMessage(Gossip.Packet(sender: F.b.id, messages: [.update(.alive(F.b, incarnation: 2))]),
                                      from: F.b.gossip, now: .seconds(4))).first?.member.state == .alive)
    }

    @Test func join_throughSeed_learnsEveryMemberAndIsLearnedByTheSeed() {
        var seed = F.instance(F.a, knowing: [F.b, F.c])
        var joiner = Gossip.Instance(myself: F.d, seed: 3, now: .zero)
        let join = joiner.onJoin(seeds: [F.a.gossip, F.d.gossip], now: .zero)
        #expect(F.schedules(join).map(\.0).contains(.probe))
        let syncs = F.sends(join)
        #expect(syncs.map(\.1) == [F.a.gossip])  // its own address is not a seed
        var reply = [Gossip.Directive]()
        for (packet, _) in syncs { reply += seed.onMessage(packet, from: F.d.gossip, now: .zero) }
        #expect(seed.member(F.d.id)?.state == .alive)
        for (packet, address) in F.sends(reply) where address == F.d.gossip {
            _ = joiner.onMessage(packet, from: F.a.gossip, now: .zero)
        }
        #expect(joiner.members.map(\.id) == [F.a.id, F.b.id, F.c.id, F.d.id])
        #expect(joiner.members.allSatisfy { $0.state == .alive })
    }

    @Test func joinWithoutAnswer_isRepeatedEachPeriodUntilSomeoneAnswers() {
        var joiner = Gossip.Instance(myself: F.d, seed: 3, now: .zero)
        _ = joiner.onJoin(seeds: [F.a.gossip], now: .zero)
        let tick = joiner.onPeriodicTick(now: .seconds(1))
        let syncs = F.sends(tick).filter { packet, address in
            guard address == F.a.gossip, case .sync(true, true, _) = packet.messages[0] else { return false }
            return true
        }
        #expect(syncs.count == 1)
    }

    @Test func syncChunks_fitInOneDatagramEach() {
        let many = (0..<300).map { Gossip.Node(id: Gossip.NodeID(rawValue: "node-\($0)-with-a-longish-name")!,
                                                gossip: .init(host: "192.168.100.\($0 % 250)", port: 7946),
                                                http: .init(host: "192.168.100.\($0 % 250)", port: 7080),
                                                binary: .init(host: "192.168.100.\($0 % 250)", port: 7081), zone: "eu-west-1a",
                                                startedAt: 1_700_000_000_000) }
        var a = F.instance(F.a, knowing: many)
        let out = F.sends(a.onPushPullTick(now: .seconds(1)))
        #expect(out.count > 20)
        var records = 0
        for (packet, _) in out {
            let bytes = Gossip.Codec.encode(packet, tagged: true).count + Gossip.Codec.tagBytes
            #expect(bytes <= 1_400)
            if case .sync(true, false, let members) = packet.messages[0] { records += members.count }
        }
        #expect(records == 301)
    }

    @Test func settings_validation_namesTheBadSetting() {
        #expect(throws: Never.self) { try Gossip.Settings().validate() }
        let bad: [(Gossip.Settings, String)] = [
            (.init().with { $0.probeTimeout = .seconds(2) }, "probeTimeout"),
            (.init().with { $0.gossipFanout = 0 }, "gossipFanout"),
            (.init().with { $0.maxPacketBytes = 100 }, "maxPacketBytes"),
            (.init().with { $0.pushPullInterval = .milliseconds(10) }, "pushPullInterval"),
            (.init().with { $0.deadMemberRetention = .seconds(1) }, "deadMemberRetention"),
        ]
        for (settings, name) in bad {
            #expect { try settings.validate() } throws: { error in
                (error as? GossipError)?.code == .invalidSettings && "\(error)".contains(name)
            }
        }
        // Derived figures, memberlist's formulas.
        let s = Gossip.Settings()
        #expect(s.minimumSuspicionTimeout(members: 5) == .seconds(4))
        #expect(s.minimumSuspicionTimeout(members: 1000) == .seconds(12))
        #expect(s.maximumSuspicionTimeout(members: 5) == .seconds(24))
        #expect(s.retransmitLimit(members: 5) == 4)
        #expect(s.retransmitLimit(members: 1000) == 16)
        #expect(s.scaledPushPullInterval(members: 10) == .seconds(30))
        #expect(s.scaledPushPullInterval(members: 1000) == .seconds(180))
    }
}
