extension Gossip {
    /// A timer an ``Instance`` asks its shell for with ``Directive/schedule(_:after:)``; when it
    /// fires, the shell calls ``Instance/onTimer(_:now:)``. A timer that became moot is ignored
    /// when it fires, so shells never cancel timers.
    public enum Timer: Hashable, Sendable {
        /// The protocol period: finish the last probe, start the next (``Instance/onPeriodicTick(now:)``).
        case probe
        /// The direct ack of probe `sequence` is overdue: probe indirectly.
        case probeTimeout(sequence: UInt32)
        /// An indirect probe this node runs for another (`sequence` is this node's) is overdue:
        /// answer a nack.
        case relayTimeout(sequence: UInt32)
        /// The suspicion of a member may have run out.
        case suspicionTimeout(NodeID)
        /// A dissemination round.
        case gossip
        /// A periodic full state sync.
        case pushPull
    }

    /// What an ``Instance`` asks its shell to do, in order.
    public enum Directive: Hashable, Sendable {
        /// Encode `packet` and send it in one datagram to `address`.
        case send(Packet, to: Address)
        /// Call ``Instance/onTimer(_:now:)`` with `timer` after `delay`.
        case schedule(Timer, after: Duration)
        /// The membership view changed (for logs, metrics, listeners).
        case memberChanged(MemberChange)
        /// A probe of `member` was acknowledged `roundTrip` after it was sent (directly or
        /// through an indirect prober).
        case probeAcknowledged(NodeID, roundTrip: Duration)
    }

    /// Counters of an instance's work since it started.
    public struct Statistics: Hashable, Sendable {
        /// Direct probes sent (one per protocol period with a target).
        public var probesSent = 0
        /// Indirect probe requests sent.
        public var indirectProbesSent = 0
        /// Probes that ended without any ack.
        public var probesFailed = 0
        /// Members this node began to suspect.
        public var suspicionsRaised = 0
        /// Suspected (or dead) members seen alive again with a higher incarnation.
        public var suspicionsRefuted = 0
        /// Times this node refuted a suspicion (or death) of itself.
        public var selfRefutations = 0
        /// Members this node declared dead (its own suspicion ran out).
        public var membersDeclaredDead = 0
        /// Updates ignored because the view was full (``Settings/maxMembers``).
        public var membersRejected = 0
        public init() {}
    }

    /// The SWIM + Lifeguard protocol state of one node, as a value driven by events.
    ///
    /// Every input is a `mutating` `on…` call with the current time (`now`: any monotonic time
    /// base, the same for every call); each returns ``Directive``s for the shell to carry out in
    /// order. Nothing here sleeps, reads a clock, touches a socket or draws randomness other than
    /// from the seed given at creation.
    ///
    /// ```swift
    /// var instance = Gossip.Instance(myself: node, settings: settings, seed: 42, now: .zero)
    /// run(instance.onJoin(seeds: [seed], now: .zero))       // starts the timers, syncs with seeds
    /// run(instance.onMessage(packet, from: address, now: now))
    /// run(instance.onTimer(.probe, now: now))
    /// ```
    ///
    /// Algorithm (`docs/gossip.md`): each protocol period probes the next member of a shuffled
    /// round-robin order (SWIM §4.3); without a direct ack within the probe timeout it asks
    /// ``Settings/indirectProbes`` others (§3.1); without any ack by the period's end it suspects
    /// the member (§4.2). A suspicion becomes death after a timeout that shrinks with each
    /// independent confirmation (Lifeguard §IV.B), unless the member refutes it with a higher
    /// incarnation; a suspected member is told directly (the buddy system, §IV.C). Missed acks
    /// and missing nacks raise the local health multiplier that stretches the period and the
    /// timeout (§IV.A). Updates ride on every packet and on dissemination rounds, each sent
    /// λ·log n times (SWIM §4.1); a full state sync with a random member runs periodically and
    /// at join (memberlist's push-pull).
    public struct Instance: Sendable {
        public let settings: Settings
        /// This node's metadata.
        public private(set) var myself: Node
        /// This node's incarnation number.
        public private(set) var incarnation: UInt64
        /// Whether ``onLeave(now:)`` was called.
        public private(set) var isLeaving = false
        /// Lifeguard's local health multiplier, 0 ..< ``Settings/awarenessMaxMultiplier`` (0 = healthy).
        public private(set) var localHealth = 0
        /// Work counters.
        public private(set) var statistics = Statistics()

        struct Suspicion: Sendable {
            var start: Duration
            var minimum: Duration
            var maximum: Duration
            /// Confirmations expected to reach the minimum (Lifeguard's K).
            var expected: Int
            /// Sources that suspected the member; the first does not count as a confirmation.
            var sources: Set<NodeID>
            var deadline: Duration

            mutating func confirm(by source: NodeID) -> Bool {
                guard expected > 0, sources.count - 1 < expected, sources.insert(source).inserted else { return false }
                let confirmations = Double(sources.count - 1)
                let fraction = log2(confirmations + 1) / log2(Double(expected) + 1)
                let raw = maximum - (maximum - minimum) * fraction
                deadline = start + max(minimum, raw)
                return true
            }
        }

        struct Entry: Sendable {
            var member: Member
            var suspicion: Suspicion?
        }

        struct Probe: Sendable {
            var sequence: UInt32
            var target: NodeID
            var sentAt: Duration
            var acknowledged = false
            var indirectSent = 0
            var nacks = 0
        }

        struct Relay: Sendable {
            var requester: Address
            var sequence: UInt32
            var wantsNack: Bool
        }

        private var entries: [NodeID: Entry] = [:]
        /// Every known member but this node, in the order they became known (deterministic
        /// iteration; dictionaries iterate in a per-process order).
        private var known: [NodeID] = []
        /// The round-robin probe order (SWIM §4.3), reshuffled at each pass.
        private var probeOrder: [NodeID] = []
        private var probeIndex = 0
        /// Alive or suspect members, this node not included.
        private var liveOthers = 0
        private var broadcasts = BroadcastQueue()
        private var random: Random
        private var sequence: UInt32 = 0
        private var probe: Probe?
        private var relays: [UInt32: Relay] = [:]
        private var seeds: [Address] = []
        private var started = false
        private var nextReap: Duration = .zero

        /// The most indirect probes this node runs for others at once.
        static let maxRelays = 1_024

        /// A node alone in its view, not yet started (call ``onJoin(seeds:now:)``).
        /// - Parameters:
        ///   - myself: this node's metadata.
        ///   - settings: validated settings (``Settings/validate()``).
        ///   - seed: seeds every random choice.
        ///   - incarnation: to start from (0 for a new process: a restart learns its last one
        ///     from the others and refutes above it).
        ///   - now: the current time.
        public init(myself: Node, settings: Settings = Settings(), seed: UInt64, incarnation: UInt64 = 0, now: Duration) {
            self.myself = myself
            self.settings = settings
            self.random = Random(seed: seed)
            self.incarnation = incarnation
            self.nextReap = now + .seconds(10)
        }

        // MARK: The view

        /// This node as a member.
        public var myselfMember: Member {
            Member(node: myself, state: isLeaving ? .left : .alive, incarnation: incarnation, lastChange: .zero)
        }

        /// Every member, this node included, by node id.
        public var members: [Member] {
            ([myselfMember] + known.compactMap { entries[$0]?.member }).sorted { $0.id < $1.id }
        }

        /// One member (this node included).
        public func member(_ id: NodeID) -> Member? {
            id == myself.id ? myselfMember : entries[id]?.member
        }

        /// Alive and suspect members, this node included: the n of SWIM's formulas.
        public var liveMembers: Int { liveOthers + 1 }

        /// Updates still waiting to be disseminated.
        public var pendingBroadcasts: Int { broadcasts.count }

        // MARK: Events

        /// Starts the node (the first call schedules its timers) and asks `seeds` for their state
        /// (a push-pull sync with the join flag). Until another member answers, the request is
        /// repeated at each protocol period. Seeds may include this node's own address.
        /// - Returns: the sync datagrams and, on the first call, the timers.
        public mutating func onJoin(seeds: [Address], now: Duration) -> [Directive] {
            var out = [Directive]()
            self.seeds = seeds.filter { $0 != myself.gossip }
            if !started {
                started = true
                broadcasts.enqueue(.alive(myself, incarnation: incarnation))
                // Stagger the first period so that nodes started together do not probe in step.
                out.append(.schedule(.probe, after: settings.probeInterval * Double.random(in: 0..<1, using: &random)))
                out.append(.schedule(.gossip, after: settings.gossipInterval))
                if settings.pushPullInterval > .zero {
                    out.append(.schedule(.pushPull, after: settings.pushPullInterval * (1 + Double.random(in: 0..<1, using: &random))))
                }
            }
            for seed in self.seeds { out += syncPackets(to: seed, replyWanted: true, join: true) }
            return out
        }

        /// Leaves gracefully: raises the incarnation, tells every live member at once that this
        /// node left (so they record "left", not "dead" after a timeout) and stops probing.
        /// The shell should keep receiving for about a gossip interval before it closes.
        public mutating func onLeave(now: Duration) -> [Directive] {
            guard !isLeaving else { return [] }
            isLeaving = true
            incarnation += 1
            let leave = Update.left(myself.id, incarnation: incarnation)
            broadcasts.enqueue(leave)
            var out = [Directive]()
            for id in known {
                guard let entry = entries[id], entry.member.state == .alive || entry.member.state == .suspect else { continue }
                out.append(.send(Packet(sender: myself.id, messages: [.update(leave)]), to: entry.member.node.gossip))
            }
            return out
        }

        /// Dispatches a fired timer to its event.
        public mutating func onTimer(_ timer: Timer, now: Duration) -> [Directive] {
            switch timer {
            case .probe: return onPeriodicTick(now: now)
            case .probeTimeout(let sequence): return onProbeTimeout(sequence: sequence, now: now)
            case .relayTimeout(let sequence): return onRelayTimeout(sequence: sequence, now: now)
            case .suspicionTimeout(let id): return onSuspicionTimeout(id, now: now)
            case .gossip: return onGossipTick(now: now)
            case .pushPull: return onPushPullTick(now: now)
            }
        }

        /// The protocol period (SWIM §4.3): ends the last probe (suspecting its target when no ack
        /// came, Lifeguard's health score adjusted by the nacks), forgets long-dead members,
        /// repeats the join while alone, and probes the next member.
        /// - Returns: the ping, its timeout, and the next period (stretched by local health).
        public mutating func onPeriodicTick(now: Duration) -> [Directive] {
            guard started, !isLeaving else { return [] }
            var out = [Directive]()
            if let last = probe {
                probe = nil
                if !last.acknowledged {
                    statistics.probesFailed += 1
                    // Lifeguard §IV.A: missing nacks mean the fault may be ours.
                    if last.indirectSent > 0 {
                        if last.nacks < last.indirectSent { adjustHealth(by: last.indirectSent - last.nacks) }
                    } else {
                        adjustHealth(by: 1)
                    }
                    if let entry = entries[last.target], entry.member.state == .alive || entry.member.state == .suspect {
                        out += apply(.suspect(last.target, incarnation: entry.member.incarnation, source: myself.id), now: now)
                    }
                }
            }
            if now >= nextReap {
                reap(now: now)
                nextReap = now + .seconds(10)
            }
            if liveOthers == 0 {
                for seed in seeds { out += syncPackets(to: seed, replyWanted: true, join: true) }
            }
            if let target = nextProbeTarget(), let entry = entries[target] {
                sequence &+= 1
                probe = Probe(sequence: sequence, target: target, sentAt: now)
                var primary: [Message] = [.ping(sequence: sequence, target: target)]
                // Lifeguard §IV.C (buddy system): a suspected member learns of it from its prober.
                if entry.member.state == .suspect, let suspicion = entry.suspicion {
                    primary.append(.update(.suspect(target, incarnation: entry.member.incarnation,
                                                    source: suspicion.sources.min() ?? myself.id)))
                }
                out.append(send(primary, to: entry.member.node.gossip, excluding: target))
                statistics.probesSent += 1
                out.append(.schedule(.probeTimeout(sequence: sequence), after: scaled(settings.probeTimeout)))
            }
            out.append(.schedule(.probe, after: scaled(settings.probeInterval)))
            return out
        }

        /// The direct ack of probe `sequence` did not come in time: ask up to
        /// ``Settings/indirectProbes`` other live members to probe the target (SWIM §3.1).
        public mutating func onProbeTimeout(sequence: UInt32, now: Duration) -> [Directive] {
            guard var current = probe, current.sequence == sequence, !current.acknowledged, !isLeaving,
                  let target = entries[current.target] else { return [] }
            let helpers = randomMembers(settings.indirectProbes, excluding: current.target) { $0.state == .alive }
            var out = [Directive]()
            for helper in helpers {
                guard let entry = entries[helper] else { continue }
                out.append(send([.indirectPing(sequence: sequence, target: current.target, address: target.member.node.gossip,
                                               wantsNack: settings.nacks)], to: entry.member.node.gossip))
            }
            current.indirectSent = settings.nacks ? helpers.count : 0
            statistics.indirectProbesSent += helpers.count
            probe = current
            return out
        }

        /// An indirect probe run for another node got no ack: answer it a nack (Lifeguard §IV.A).
        public mutating func onRelayTimeout(sequence: UInt32, now: Duration) -> [Directive] {
            guard let relay = relays.removeValue(forKey: sequence) else { return [] }
            guard relay.wantsNack else { return [] }
            return [send([.nack(sequence: relay.sequence)], to: relay.requester)]
        }

        /// The suspicion of `id` may have run out: declare it dead if it has and the member has not
        /// refuted meanwhile.
        public mutating func onSuspicionTimeout(_ id: NodeID, now: Duration) -> [Directive] {
            guard let entry = entries[id], entry.member.state == .suspect, let suspicion = entry.suspicion else { return [] }
            guard now >= suspicion.deadline else {
                return [.schedule(.suspicionTimeout(id), after: suspicion.deadline - now)]
            }
            statistics.membersDeclaredDead += 1
            return apply(.dead(id, incarnation: entry.member.incarnation, source: myself.id), now: now)
        }

        /// A dissemination round: when updates are waiting, send them to
        /// ``Settings/gossipFanout`` random members (live ones, and recently dead ones so that a
        /// member only cut off learns of it).
        public mutating func onGossipTick(now: Duration) -> [Directive] {
            guard started else { return [] }
            var out = [Directive]()
            if !broadcasts.isEmpty {
                let gossipToTheDead = settings.gossipToTheDead
                let targets = randomMembers(settings.gossipFanout, excluding: nil) { member in
                    member.state == .alive || member.state == .suspect
                        || (member.state == .dead && now - member.lastChange <= gossipToTheDead)
                }
                for target in targets {
                    guard let entry = entries[target] else { continue }
                    let updates = takeBroadcasts(budget: payloadBudget(for: []))
                    if updates.isEmpty { break }
                    out.append(.send(Packet(sender: myself.id, messages: updates.map { .update($0) }), to: entry.member.node.gossip))
                }
            }
            if !isLeaving { out.append(.schedule(.gossip, after: settings.gossipInterval)) }
            return out
        }

        /// A periodic full state sync with one random live member (memberlist's push-pull) and,
        /// if there are any, one random dead member (Serf's reconnect).
        public mutating func onPushPullTick(now: Duration) -> [Directive] {
            guard started, !isLeaving, settings.pushPullInterval > .zero else { return [] }
            var out = [Directive]()
            if let peer = randomMembers(1, excluding: nil, where: { $0.state == .alive }).first, let entry = entries[peer] {
                out += syncPackets(to: entry.member.node.gossip, replyWanted: true, join: false)
            }
            // Reconnect (Serf's reconnect of failed members): one dead member is asked too, so that
            // the two sides of a healed partition find each other again.
            if let peer = randomMembers(1, excluding: nil, where: { $0.state == .dead }).first, let entry = entries[peer] {
                out += syncPackets(to: entry.member.node.gossip, replyWanted: true, join: false)
            }
            out.append(.schedule(.pushPull, after: settings.scaledPushPullInterval(members: liveMembers)))
            return out
        }

        /// A datagram arrived from `address` (the source address of the datagram): apply its
        /// updates and state records, then answer its probes, acks and sync requests in order.
        /// - Returns: acks, relayed probes, nacks, sync replies, and the consequences of the updates.
        public mutating func onMessage(_ packet: Packet, from address: Address, now: Duration) -> [Directive] {
            guard packet.sender != myself.id else { return [] }
            var out = [Directive]()
            // Updates first, so that replies carry what they changed (a refutation rides on the ack).
            for message in packet.messages {
                switch message {
                case .update(let update): out += apply(update, now: now, via: packet.sender)
                case .sync(_, _, let records): for record in records { out += merge(record, now: now, via: packet.sender) }
                default: break
                }
            }
            for message in packet.messages {
                switch message {
                case .ping(let sequence, let target):
                    guard target == myself.id else { continue }
                    var primary: [Message] = [.ack(sequence: sequence)]
                    // Tell a member we suspect, or think dead, so that it can refute at once.
                    if let entry = entries[packet.sender] {
                        switch entry.member.state {
                        case .suspect:
                            primary.append(.update(.suspect(packet.sender, incarnation: entry.member.incarnation, source: myself.id)))
                        case .dead:
                            primary.append(.update(.dead(packet.sender, incarnation: entry.member.incarnation, source: myself.id)))
                        case .alive, .left:
                            break
                        }
                    }
                    out.append(send(primary, to: address, excluding: packet.sender))
                case .indirectPing(let sequence, let target, let targetAddress, let wantsNack):
                    guard target != myself.id else {
                        out.append(send([.ack(sequence: sequence)], to: address))
                        continue
                    }
                    guard relays.count < Self.maxRelays, !isLeaving else { continue }
                    self.sequence &+= 1
                    relays[self.sequence] = Relay(requester: address, sequence: sequence, wantsNack: wantsNack)
                    out.append(send([.ping(sequence: self.sequence, target: target)], to: targetAddress))
                    out.append(.schedule(.relayTimeout(sequence: self.sequence), after: settings.probeTimeout * 0.8))
                case .ack(let sequence):
                    if let relay = relays.removeValue(forKey: sequence) {
                        out.append(send([.ack(sequence: relay.sequence)], to: relay.requester))
                    } else if var current = probe, current.sequence == sequence, !current.acknowledged {
                        current.acknowledged = true
                        probe = current
                        adjustHealth(by: -1)
                        out.append(.probeAcknowledged(current.target, roundTrip: now - current.sentAt))
                    }
                case .nack(let sequence):
                    if var current = probe, current.sequence == sequence {
                        current.nacks += 1
                        probe = current
                    }
                case .update:
                    break
                case .sync(let replyWanted, let join, _):
                    if replyWanted && !isLeaving { out += syncPackets(to: address, replyWanted: false, join: join) }
                }
            }
            return out
        }

        // MARK: Updates

        /// Applies one update under SWIM's incarnation rules (§4.2) and memberlist's:
        /// alive overrides a suspicion only with a higher incarnation, suspect and dead override
        /// alive at an equal or higher one, dead and left are final for their incarnation.
        mutating func apply(_ update: Update, now: Duration, via sender: NodeID? = nil) -> [Directive] {
            if update.member == myself.id { return applyAboutMyself(update) }
            switch update {
            case .alive(let node, let incarnation):
                guard var entry = entries[node.id] else {
                    guard known.count + 1 < settings.maxMembers else {
                        statistics.membersRejected += 1
                        return []
                    }
                    let member = Member(node: node, state: .alive, incarnation: incarnation, lastChange: now)
                    entries[node.id] = Entry(member: member)
                    known.append(node.id)
                    probeOrder.insert(node.id, at: Int.random(in: 0...probeOrder.count, using: &random))
                    liveOthers += 1
                    broadcasts.enqueue(update)
                    return [.memberChanged(MemberChange(member: member, previousState: nil))]
                }
                guard incarnation > entry.member.incarnation else { return [] }
                let previous = entry.member.state
                if previous == .suspect || previous == .dead { statistics.suspicionsRefuted += 1 }
                if previous == .dead || previous == .left { liveOthers += 1 }
                entry.member.node = node
                entry.member.incarnation = incarnation
                entry.suspicion = nil
                if previous != .alive { entry.member.state = .alive; entry.member.lastChange = now }
                entries[node.id] = entry
                broadcasts.enqueue(update)
                return [.memberChanged(MemberChange(member: entry.member, previousState: previous))]
            case .suspect(let id, let incarnation, let source):
                guard var entry = entries[id], incarnation >= entry.member.incarnation else { return [] }
                switch entry.member.state {
                case .dead, .left:
                    return []
                case .suspect:
                    entry.member.incarnation = incarnation
                    var out = [Directive]()
                    if var suspicion = entry.suspicion, suspicion.confirm(by: source) {
                        entry.suspicion = suspicion
                        broadcasts.enqueue(update)
                        out.append(.schedule(.suspicionTimeout(id), after: max(.zero, suspicion.deadline - now)))
                    }
                    entries[id] = entry
                    return out
                case .alive:
                    let n = liveMembers
                    let minimum = settings.minimumSuspicionTimeout(members: n)
                    let maximum = settings.maximumSuspicionTimeout(members: n)
                    var expected = settings.suspicionMultiplier - 2
                    if n - 2 < expected { expected = 0 }
                    let timeout = expected < 1 ? minimum : maximum
                    entry.suspicion = Suspicion(start: now, minimum: minimum, maximum: maximum, expected: expected,
                                                sources: [source], deadline: now + timeout)
                    entry.member.state = .suspect
                    entry.member.incarnation = incarnation
                    entry.member.lastChange = now
                    entries[id] = entry
                    statistics.suspicionsRaised += 1
                    broadcasts.enqueue(update)
                    return [.memberChanged(MemberChange(member: entry.member, previousState: .alive)),
                            .schedule(.suspicionTimeout(id), after: timeout)]
                }
            case .dead(let id, let incarnation, _), .left(let id, let incarnation):
                guard var entry = entries[id], incarnation >= entry.member.incarnation else { return [] }
                let previous = entry.member.state
                let isLeave: Bool
                if case .left = update { isLeave = true } else { isLeave = false }
                let state: MemberState = isLeave ? .left : .dead
                if previous == .left || (previous == .dead && !isLeave) { return [] }
                if previous == .alive || previous == .suspect { liveOthers -= 1 }
                entry.member.state = state
                entry.member.incarnation = incarnation
                entry.member.lastChange = now
                entry.suspicion = nil
                entries[id] = entry
                broadcasts.enqueue(update)
                return [.memberChanged(MemberChange(member: entry.member, previousState: previous))]
            }
        }

        /// News about this node: a suspicion or death at an incarnation not below ours is refuted
        /// with a higher one (SWIM §4.2), as is a stale alive that differs from us.
        mutating func applyAboutMyself(_ update: Update) -> [Directive] {
            guard !isLeaving else { return [] }
            switch update {
            case .alive(let node, let other):
                guard other > incarnation || (other == incarnation && node != myself) else { return [] }
                refute(above: other)
            case .suspect(_, let other, _), .dead(_, let other, _), .left(_, let other):
                guard other >= incarnation else { return [] }
                // Lifeguard §IV.A: being suspected hints that this node is slow.
                adjustHealth(by: 1)
                refute(above: other)
            }
            return []
        }

        mutating func refute(above other: UInt64) {
            incarnation = max(incarnation, other) + 1
            statistics.selfRefutations += 1
            broadcasts.enqueue(.alive(myself, incarnation: incarnation))
        }

        /// A member record of a state sync: alive, suspect and left as the updates; dead as a
        /// suspicion, so that the member can still refute it (memberlist `mergeState`).
        mutating func merge(_ record: MemberRecord, now: Duration, via sender: NodeID) -> [Directive] {
            let id = record.node.id
            if id == myself.id {
                switch record.state {
                case .alive: return applyAboutMyself(.alive(record.node, incarnation: record.incarnation))
                case .suspect, .dead: return applyAboutMyself(.suspect(id, incarnation: record.incarnation, source: sender))
                case .left: return applyAboutMyself(.left(id, incarnation: record.incarnation))
                }
            }
            switch record.state {
            case .alive:
                return apply(.alive(record.node, incarnation: record.incarnation), now: now)
            case .suspect, .dead:
                if entries[id] == nil {
                    // Learn of the member, then of its suspicion.
                    var out = apply(.alive(record.node, incarnation: record.incarnation), now: now)
                    out += apply(.suspect(id, incarnation: record.incarnation, source: sender), now: now)
                    return out
                }
                return apply(.suspect(id, incarnation: record.incarnation, source: sender), now: now)
            case .left:
                return apply(.left(id, incarnation: record.incarnation), now: now)
            }
        }

        // MARK: Helpers

        /// `duration` stretched by the local health multiplier (Lifeguard §IV.A).
        func scaled(_ duration: Duration) -> Duration { duration * (localHealth + 1) }

        mutating func adjustHealth(by delta: Int) {
            localHealth = min(max(localHealth + delta, 0), settings.awarenessMaxMultiplier - 1)
        }

        /// The next alive or suspect member of the round-robin order, reshuffling after each pass.
        mutating func nextProbeTarget() -> NodeID? {
            guard liveOthers > 0 else { return nil }
            for _ in 0..<(probeOrder.count + 1) {
                if probeIndex >= probeOrder.count {
                    probeOrder.removeAll { entries[$0] == nil }
                    probeOrder.shuffle(using: &random)
                    probeIndex = 0
                    if probeOrder.isEmpty { return nil }
                }
                let id = probeOrder[probeIndex]
                probeIndex += 1
                if let state = entries[id]?.member.state, state == .alive || state == .suspect { return id }
            }
            return nil
        }

        /// Up to `count` distinct members satisfying `filter`, chosen at random.
        mutating func randomMembers(_ count: Int, excluding: NodeID?, where filter: (Member) -> Bool) -> [NodeID] {
            guard count > 0, !known.isEmpty else { return [] }
            var chosen = [NodeID]()
            // Rejection sampling while the view is large; a scan when few would pass.
            if known.count > 4 * count + 8 {
                var tries = 0
                while chosen.count < count && tries < 8 * count + 16 {
                    tries += 1
                    let id = known[Int.random(in: 0..<known.count, using: &random)]
                    guard id != excluding, !chosen.contains(id), let entry = entries[id], filter(entry.member) else { continue }
                    chosen.append(id)
                }
                if chosen.count == count { return chosen }
            }
            var candidates = known.filter { id in
                id != excluding && !chosen.contains(id) && entries[id].map { filter($0.member) } == true
            }
            while chosen.count < count, !candidates.isEmpty {
                chosen.append(candidates.remove(at: Int.random(in: 0..<candidates.count, using: &random)))
            }
            return chosen
        }

        /// Bytes left for piggybacked updates in a packet holding `primary`.
        func payloadBudget(for primary: [Message]) -> Int {
            settings.maxPacketBytes - Codec.tagBytes - Codec.headerBytes(sender: myself.id)
                - primary.reduce(0) { $0 + Codec.encodedBytes($1) }
        }

        mutating func takeBroadcasts(budget: Int, excluding: NodeID? = nil) -> [Update] {
            let room = min(budget, 255 * 40)
            return Array(broadcasts.take(budget: room, limit: settings.retransmitLimit(members: liveMembers), exclude: excluding)
                .prefix(255))
        }

        /// `primary` with as many waiting updates as fit.
        mutating func send(_ primary: [Message], to address: Address, excluding: NodeID? = nil) -> Directive {
            var messages = primary
            // An update already in `primary` (the buddy system's) is not sent twice.
            let alreadyAbout = primary.count > 1 ? excluding : nil
            let updates = takeBroadcasts(budget: payloadBudget(for: primary), excluding: alreadyAbout)
            messages += updates.prefix(255 - messages.count).map { .update($0) }
            return .send(Packet(sender: myself.id, messages: messages), to: address)
        }

        /// This node's full view as sync chunks of at most ``Settings/maxPacketBytes`` each.
        func syncPackets(to address: Address, replyWanted: Bool, join: Bool) -> [Directive] {
            var records = [MemberRecord(node: myself, state: isLeaving ? .left : .alive, incarnation: incarnation)]
            for id in known {
                guard let member = entries[id]?.member else { continue }
                records.append(MemberRecord(node: member.node, state: member.state, incarnation: member.incarnation))
            }
            let budget = settings.maxPacketBytes - Codec.tagBytes - Codec.headerBytes(sender: myself.id) - Codec.syncOverheadBytes
            var out = [Directive]()
            var chunk = [MemberRecord]()
            var used = 0
            func flush() {
                guard !chunk.isEmpty else { return }
                out.append(.send(Packet(sender: myself.id, messages: [.sync(replyWanted: replyWanted, join: join, members: chunk)]),
                                 to: address))
                chunk = []
                used = 0
            }
            for record in records {
                let size = Codec.encodedBytes(record)
                if used + size > budget { flush() }
                chunk.append(record)
                used += size
            }
            flush()
            return out
        }

        /// Forgets dead and departed members after ``Settings/deadMemberRetention``.
        mutating func reap(now: Duration) {
            let retention = settings.deadMemberRetention
            var removed = false
            for id in known {
                guard let member = entries[id]?.member, member.state == .dead || member.state == .left,
                      now - member.lastChange >= retention else { continue }
                entries[id] = nil
                removed = true
            }
            if removed { known.removeAll { entries[$0] == nil } }
        }
    }
}
