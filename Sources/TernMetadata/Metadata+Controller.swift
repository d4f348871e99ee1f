public import TernCore

extension Metadata {
    /// What the controller leader proposes next: a pure decision function over the catalogue,
    /// gossip's view of the members, each group's replication progress and the time (CLUSTER.md,
    /// "metadata"; Kafka's KRaft controller and Redpanda's partition balancer are the models).
    ///
    /// Gossip informs, consensus decides: the controller only proposes catalogue commands; they
    /// take effect when the metadata group commits them, and the runtime then carries each
    /// group's replica-set change out in that group's own Raft log, one single-server change at
    /// a time (thesis §4.1). The rules ``plan(catalogue:members:progress:now:)`` follows:
    /// - alive members that are not registered (or whose zone changed) are registered;
    /// - a group changes only when its leader reports the configuration the catalogue holds
    ///   (nothing in flight) and a majority of its voters are alive; at most one command per
    ///   group per plan, decided against the group's epoch (compare and set);
    /// - a dead learner is removed; a caught-up learner is promoted; a voter dead (or left) for
    ///   ``Settings/replaceAfter`` is replaced: the next rendezvous candidate is added as a
    ///   learner, promoted once caught up, then the dead voter is removed. A group below its
    ///   replication factor grows the same way when live nodes allow; one above it drops a voter
    ///   outside its placement;
    /// - a group's placement is the rendezvous choice (``Placement``, keyed by its id) among the
    ///   registered nodes not due for replacement, so a brief failure moves nothing; with
    ///   ``Settings/rebalance`` a healthy group off its placement (nodes joined) moves toward it
    ///   one replica at a time, after replacements in the ``Settings/maxGroupsChanging`` budget;
    /// - no command leaves fewer live voters than a majority of the new configuration; a group
    ///   that already has no live majority is left alone (``Wait/lostQuorum(liveVoters:voters:)``):
    ///   removing its dead voters could lose acknowledged writes, so it waits for them to return.
    ///
    /// The controller remembers since when each registered node has not been alive, so that a
    /// node gossip has forgotten still gets replaced; a new controller leader starts that memory
    /// afresh (it then waits a full ``Settings/replaceAfter`` for nodes it never saw alive).
    ///
    /// ```swift
    /// var controller = Metadata.Controller()
    /// let plan = controller.plan(catalogue: catalogue, members: gossipView, progress: reports, now: now)
    /// for command in plan.commands { propose(Metadata.Codec.encode(command)) }
    /// ```
    public struct Controller: Sendable {
        /// How the controller places and replaces replicas.
        public struct Settings: Sendable, Hashable {
            /// Voters per new group when the create request names none: 3 (Kafka's and Redpanda's
            /// default). A group is placed on min(this, live nodes) and grows as nodes join.
            public var replicationFactor: Int = 3
            /// How long a voter must be dead (or gone) before its replicas move: 60 s
            /// (`--replace-after`; decision 108).
            public var replaceAfter: Duration = .seconds(60)
            /// The most groups with a replica being added at once (each new learner catches up
            /// by snapshot, so this bounds the copy traffic after a node dies): 32.
            public var maxGroupsChanging: Int = 32
            /// Whether healthy groups move toward their rendezvous placement over the live nodes,
            /// so that nodes that join take their share of existing groups (one replica at a time,
            /// learner first, after replacements in the ``maxGroupsChanging`` budget): true.
            public var rebalance: Bool = true

            public init() {}

            /// Checks the ranges: `replicationFactor` 1–9, `replaceAfter` ≥ 0, `maxGroupsChanging` ≥ 1.
            /// - Throws: ``Metadata/Error`` with `invalidParameter` naming the first bad setting.
            public func validate() throws(Metadata.Error) {
                guard (1...Limits.maxReplicas).contains(replicationFactor) else {
                    throw Metadata.Error(.invalidParameter, "replication factor must be 1–\(Limits.maxReplicas), got \(replicationFactor)")
                }
                guard replaceAfter >= .zero else {
                    throw Metadata.Error(.invalidParameter, "replace-after must not be negative, got \(replaceAfter)")
                }
                guard maxGroupsChanging >= 1 else {
                    throw Metadata.Error(.invalidParameter, "max groups changing must be at least 1, got \(maxGroupsChanging)")
                }
            }

            /// A copy with `change` applied.
            public func with(_ change: (inout Settings) -> Void) -> Settings {
                var copy = self
                change(&copy)
                return copy
            }

            /// `replaceAfter` in whole milliseconds (negative durations count as 0).
            public var replaceAfterMilliseconds: UInt64 {
                let (seconds, attoseconds) = replaceAfter.components
                guard seconds >= 0 else { return 0 }
                let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1000)
                return overflow ? .max : whole.addingReportingOverflow(UInt64(max(0, attoseconds) / 1_000_000_000_000_000)).partialValue
            }
        }

        /// A member's state as gossip reports it (SWIM's alive, suspect, dead; memberlist's left).
        public enum Status: Sendable, Hashable {
            case alive, suspect, dead, left
        }

        /// One member of gossip's view.
        public struct Member: Sendable, Hashable {
            /// Its node id.
            public var id: String
            /// Its zone, nil: none.
            public var zone: String?
            public var status: Status
            /// Since when it has had `status` (ms since the epoch, this node's clock).
            public var since: Timestamp

            public init(id: String, zone: String? = nil, status: Status, since: Timestamp) {
                self.id = id
                self.zone = zone
                self.status = status
                self.since = since
            }
        }

        /// What a group's leader reports about its own Raft group (node ids as strings).
        public struct GroupProgress: Sendable, Hashable {
            /// Voters of the configuration the group has committed.
            public var voters: Set<String>
            /// Learners of that configuration.
            public var learners: Set<String>
            /// Learners whose log has reached the leader's commit index (promotable, thesis §4.2.1).
            public var caughtUp: Set<String>

            public init(voters: Set<String>, learners: Set<String> = [], caughtUp: Set<String> = []) {
                self.voters = voters
                self.learners = learners
                self.caughtUp = caughtUp
            }
        }

        /// Why a group that needs a change did not get one in this plan.
        public enum Wait: Sendable, Hashable {
            /// Fewer than a majority of its voters are alive: no change can commit, and none is
            /// proposed; the group is unavailable until enough of them return.
            case lostQuorum(liveVoters: Int, voters: Int)
            /// Its leader has not reported progress (no leader yet, or the report is missing).
            case noProgress
            /// Its Raft group has not yet carried out the catalogue's last change.
            case changeInFlight
            /// The learner is still catching up.
            case learnerCatchingUp(String)
            /// A voter must be replaced (or the group grow) but no live node is free to take it.
            case noCandidate
            /// Too many groups are changing already (``Settings/maxGroupsChanging``).
            case throttled
        }

        /// The result of one decision round.
        public struct Plan: Sendable, Hashable {
            /// Commands to propose, in order: registrations first, then at most one per group,
            /// by group id (replacements, growth, learners), then rebalancing learners by group id. Each is decided independently; one that fails to apply (because the
            /// catalogue moved on) changes nothing and the next round decides again.
            public var commands: [Command] = []
            /// Groups that need a change they could not get now, and why.
            public var waiting: [GroupID: Wait] = [:]

            public init(commands: [Command] = [], waiting: [GroupID: Wait] = [:]) {
                self.commands = commands
                self.waiting = waiting
            }
        }

        public var settings: Settings
        /// Bugs a test plants to show that its checker catches them; always empty outside tests.
        var plantedBugs: PlantedBugs = []

        struct PlantedBugs: OptionSet, Sendable {
            let rawValue: Int
            /// Acts on groups without a live majority and skips the majority check.
            static let ignoreQuorum = PlantedBugs(rawValue: 1)
            /// Changes a group before its Raft log carried out the last change.
            static let ignoreInFlight = PlantedBugs(rawValue: 2)
        }
        /// Since when each registered node has been seen not alive (or missing from the view).
        public private(set) var notAliveSince: [String: Timestamp] = [:]
        /// Each group's placement, kept while the eligible nodes stay the same (computing
        /// 11,000 placements over 100 nodes on every plan would dominate its cost).
        private var placements = PlacementCache()

        struct PlacementCache: Sendable {
            struct Entry: Sendable {
                var factor: Int
                var replicas: [String]
            }
            var basis: [Placement.Candidate] = []
            var entries: [GroupID: Entry] = [:]
        }

        public init(settings: Settings = Settings()) {
            self.settings = settings
        }

        // MARK: - Placement of new queues and topics

        /// The command that creates queue `name`: colocated with `colocateWith`, or in a new
        /// group on `replicationFactor` (default ``Settings/replicationFactor``, capped at the
        /// live nodes when not given) live registered nodes chosen by ``Placement``, keyed by
        /// the id the group will get.
        /// - Throws: ``Metadata/Error``: `invalidAttribute` when `replicationFactor` is outside 1–9
        ///   or exceeds the live nodes (Kafka's INVALID_REPLICATION_FACTOR) or `colocateWith` is
        ///   `name`; `queueNotFound` when `colocateWith` does not exist; `unavailable` when no
        ///   registered node is alive.
        public func placeQueue(_ name: QueueName, colocateWith: QueueName? = nil, replicationFactor: Int? = nil,
                               catalogue: Catalogue, members: [Member]) throws(Metadata.Error) -> Command {
            if let colocateWith {
                guard colocateWith != name else {
                    throw Metadata.Error(.invalidAttribute, "queue \(name) cannot be colocated with itself")
                }
                guard catalogue.queues[colocateWith] != nil else {
                    throw Metadata.Error(.queueNotFound, "colocate_with names queue \(colocateWith), which does not exist")
                }
                return .createQueue(name, placement: .colocated(with: colocateWith))
            }
            let (factor, count, live) = try sizing(replicationFactor, catalogue: catalogue, members: members)
            let replicas = Placement.replicas(for: catalogue.nextGroupID, among: live, count: count)
            return .createQueue(name, placement: .replicas(replicas, replicationFactor: factor))
        }

        /// The command that creates topic `name` with `partitions` partitions, each a new group
        /// placed as ``placeQueue(_:colocateWith:replicationFactor:catalogue:members:)`` places one.
        /// - Throws: ``Metadata/Error``: `invalidAttribute` when `partitions` is outside 1–1,024
        ///   or `replicationFactor` is outside 1–9 or exceeds the live nodes; `unavailable` when
        ///   no registered node is alive.
        public func placeTopic(_ name: QueueName, partitions: Int, replicationFactor: Int? = nil,
                               catalogue: Catalogue, members: [Member]) throws(Metadata.Error) -> Command {
            guard (1...Limits.maxPartitions).contains(partitions) else {
                throw Metadata.Error(.invalidAttribute, "partitions must be 1–\(Limits.maxPartitions), got \(partitions)")
            }
            let (factor, count, live) = try sizing(replicationFactor, catalogue: catalogue, members: members)
            let lists = (0..<partitions).map { partition in
                Placement.replicas(for: catalogue.nextGroupID &+ GroupID(partition), among: live, count: count)
            }
            return .createTopic(name, partitions: lists, replicationFactor: factor)
        }

        private func sizing(_ requested: Int?, catalogue: Catalogue,
                            members: [Member]) throws(Metadata.Error) -> (factor: Int, count: Int, live: [Placement.Candidate]) {
            let factor = requested ?? settings.replicationFactor
            guard (1...Limits.maxReplicas).contains(factor) else {
                throw Metadata.Error(.invalidAttribute, "replication_factor must be 1–\(Limits.maxReplicas), got \(factor)")
            }
            let live = Self.liveCandidates(catalogue: catalogue, members: members)
            guard !live.isEmpty else { throw Metadata.Error(.unavailable, "no registered node is alive") }
            if requested != nil, factor > live.count {
                throw Metadata.Error(.invalidAttribute,
                                     "replication_factor \(factor) exceeds the \(live.count) live nodes")
            }
            return (factor, min(factor, live.count), live)
        }

        /// Registered nodes that gossip reports alive, with their catalogue zones, by id.
        static func liveCandidates(catalogue: Catalogue, members: [Member]) -> [Placement.Candidate] {
            var status: [String: Status] = [:]
            for member in members where status[member.id] == nil { status[member.id] = member.status }
            let alive = Set(status.filter { $0.value == .alive }.keys)
            return catalogue.nodes.values.filter { alive.contains($0.id) }
                .sorted { $0.id < $1.id }
                .map { Placement.Candidate(id: $0.id, zone: $0.zone) }
        }

        // MARK: - Planning

        /// The next commands for the controller leader to propose (see ``Controller`` for the rules).
        /// - Parameters:
        ///   - catalogue: the catalogue as applied on this controller.
        ///   - members: gossip's view (this node included); a member listed twice counts once (its
        ///     first entry); registered nodes missing from it count as not alive.
        ///   - progress: each group's report from its leader, by group id; a group without one is
        ///     not changed.
        ///   - now: the time, ms since the epoch (the clock `members[].since` is on).
        /// - Returns: the commands and the groups left waiting. Updates the memory of since when
        ///   each node has been not alive.
        public mutating func plan(catalogue: Catalogue, members: [Member], progress: [GroupID: GroupProgress],
                                  now: Timestamp) -> Plan {
            var view: [String: Member] = [:]
            for member in members where view[member.id] == nil { view[member.id] = member }
            var plan = Plan()

            // Registrations.
            var registered = catalogue.nodes.count
            for member in view.values.sorted(by: { $0.id < $1.id }) where member.status == .alive
                && Metadata.isValidNodeID(member.id) && Metadata.isValidZone(member.zone) {
                if let node = catalogue.nodes[member.id] {
                    if node.zone != member.zone { plan.commands.append(.registerNode(id: member.id, zone: member.zone, at: now)) }
                } else if registered < Limits.maxNodes {
                    registered += 1
                    plan.commands.append(.registerNode(id: member.id, zone: member.zone, at: now))
                }
            }

            // Liveness memory: since when each registered node has not been alive.
            var memory: [String: Timestamp] = [:]
            for id in catalogue.nodes.keys {
                guard let member = view[id] else {
                    memory[id] = notAliveSince[id] ?? now
                    continue
                }
                switch member.status {
                case .alive, .suspect:
                    continue
                case .dead, .left:
                    memory[id] = min(notAliveSince[id] ?? member.since, member.since)
                }
            }
            notAliveSince = memory
            let replaceAfter = settings.replaceAfterMilliseconds
            func isAlive(_ id: String) -> Bool { view[id]?.status == .alive }
            func isGone(_ id: String) -> Bool { memory[id] != nil }
            func isReplaceable(_ id: String) -> Bool {
                guard let since = memory[id] else { return false }
                return now.milliseconds >= since.milliseconds && now.milliseconds - since.milliseconds >= replaceAfter
            }
            let live = Self.liveCandidates(catalogue: catalogue, members: Array(view.values))
            // Where groups belong: registered nodes not (yet) to be replaced, so a brief failure
            // moves nothing.
            let eligible = catalogue.nodes.values.filter { !isReplaceable($0.id) }.sorted { $0.id < $1.id }
                .map { Placement.Candidate(id: $0.id, zone: $0.zone) }
            var changing = catalogue.groups.values.filter { !$0.learners.isEmpty }.count
            var rebalancing: [(group: GroupID, command: Command)] = []
            let cache = placements.basis == eligible ? placements.entries : [:]
            var prepared: Placement.Prepared? = nil
            var nextCache: [GroupID: PlacementCache.Entry] = [:]
            nextCache.reserveCapacity(catalogue.groups.count)
            defer { placements = PlacementCache(basis: eligible, entries: nextCache) }

            for group in catalogue.groups.values.sorted(by: { $0.id < $1.id }) {
                let liveVoters = group.replicas.filter(isAlive).count
                guard liveVoters >= Self.quorum(group.replicas.count) || plantedBugs.contains(.ignoreQuorum) else {
                    plan.waiting[group.id] = .lostQuorum(liveVoters: liveVoters, voters: group.replicas.count)
                    continue
                }
                let placement: [String]
                if let entry = cache[group.id], entry.factor == group.replicationFactor {
                    placement = entry.replicas
                } else {
                    if prepared == nil { prepared = Placement.Prepared(eligible) }
                    placement = Placement.choose(Placement.keyState(group.id), prepared: prepared!, count: group.replicationFactor)
                }
                nextCache[group.id] = PlacementCache.Entry(factor: group.replicationFactor, replicas: placement)
                let step = nextStep(group, live: live, placement: placement, zone: { catalogue.nodes[$0]?.zone },
                                    isAlive: isAlive, isGone: isGone, isReplaceable: isReplaceable,
                                    caughtUp: progress[group.id]?.caughtUp ?? [])
                guard let step else { continue }
                guard let report = progress[group.id] else {
                    plan.waiting[group.id] = .noProgress
                    continue
                }
                guard report.voters == Set(group.replicas) && report.learners == Set(group.learners)
                    || plantedBugs.contains(.ignoreInFlight) else {
                    plan.waiting[group.id] = .changeInFlight
                    continue
                }
                let command: Command
                switch step {
                case .wait(let wait):
                    plan.waiting[group.id] = wait
                    continue
                case .rebalance(let change):
                    rebalancing.append((group.id, change))
                    continue
                case .change(let change):
                    command = change
                }
                // Never by its own action below a live majority (a promoted learner is alive, a
                // removed voter dead or surplus, so this holds by construction; checked all the same).
                guard Self.keepsMajority(group, after: command, isAlive: isAlive) || plantedBugs.contains(.ignoreQuorum) else { continue }
                if case .addLearner = command, group.learners.isEmpty {
                    guard changing < settings.maxGroupsChanging else {
                        plan.waiting[group.id] = .throttled
                        continue
                    }
                    changing += 1
                }
                plan.commands.append(command)
            }
            // Rebalancing takes what the budget leaves after replacements and growth.
            for (group, command) in rebalancing {
                guard changing < settings.maxGroupsChanging else {
                    plan.waiting[group] = .throttled
                    continue
                }
                changing += 1
                plan.commands.append(command)
            }
            return plan
        }

        enum Step {
            /// A change the group needs (a dead or surplus replica, too few voters, a learner).
            case change(Command)
            /// A learner added to move a healthy group toward its placement (lower priority).
            case rebalance(Command)
            case wait(Wait)
        }

        /// The one change `group` needs next, ignoring quorum and progress (checked after).
        private func nextStep(_ group: Group, live: [Placement.Candidate], placement ideal: [String],
                              zone: (String) -> String?, isAlive: (String) -> Bool,
                              isGone: (String) -> Bool, isReplaceable: (String) -> Bool, caughtUp: Set<String>) -> Step? {
            // 1. A learner that is gone will not catch up: remove it (its replacement is chosen afresh).
            if let learner = group.learners.first(where: isGone) {
                return .change(.removeReplica(group: group.id, node: learner, epoch: group.epoch))
            }
            // 2. A learner that has caught up becomes a voter; one still catching up holds the group.
            if let learner = group.learners.first {
                guard isAlive(learner), caughtUp.contains(learner) else { return .wait(.learnerCatchingUp(learner)) }
                return .change(.promoteLearner(group: group.id, node: learner, epoch: group.epoch))
            }
            // 3. The voters against the group's placement (`ideal`): the rendezvous choice of its
            //    factor among the eligible nodes (decision 105).
            let factor = group.replicationFactor
            let idealSet = Set(ideal)
            let members = Set(group.members)
            func add(_ node: String) -> Command { .addLearner(group: group.id, node: node, epoch: group.epoch) }
            func remove(_ node: String) -> Command { .removeReplica(group: group.id, node: node, epoch: group.epoch) }
            let replaceable = group.replicas.filter(isReplaceable)
            let staying = group.replicas.filter { !isReplaceable($0) }
            // 3a. A voter dead past replace-after goes once the others make the factor.
            if let victim = replaceable.first, staying.count >= factor { return .change(remove(victim)) }
            // 3b. A surplus voter (a replaced one came back, a rebalancing learner was promoted)
            //     goes: one outside the placement, a not-alive one first, else the lightest.
            if replaceable.isEmpty, group.replicas.count > factor {
                let outside = group.replicas.filter { !idealSet.contains($0) }
                let victim = outside.last { !isAlive($0) }
                    ?? outside.min { Placement.weight(for: group.id, node: $0) < Placement.weight(for: group.id, node: $1) }
                return victim.map { .change(remove($0)) }
            }
            // 3c. Too few voters (a replacement, or growth toward the factor): add the first live
            //     node of the placement that is not a member, else the best free live node.
            if !replaceable.isEmpty || group.replicas.count < factor {
                let free = live.filter { !members.contains($0.id) }
                let keeping = staying.map { Placement.Candidate(id: $0, zone: zone($0)) }
                if let candidate = ideal.first(where: { !members.contains($0) && isAlive($0) })
                    ?? Placement.next(for: group.id, among: free, keeping: keeping) {
                    return .change(add(candidate))
                }
                return replaceable.isEmpty ? nil : .wait(.noCandidate)
            }
            // 3d. A healthy group off its placement (nodes joined): add the first missing node of it.
            guard settings.rebalance, ideal.count == factor, idealSet != Set(group.replicas),
                  group.replicas.allSatisfy(isAlive),
                  let candidate = ideal.first(where: { !members.contains($0) }), isAlive(candidate)
            else { return nil }
            return .rebalance(add(candidate))
        }

        /// Votes needed among `voters` voters: ⌊n/2⌋ + 1.
        static func quorum(_ voters: Int) -> Int { voters / 2 + 1 }

        /// Whether the group still has a live majority of voters after `command`.
        static func keepsMajority(_ group: Group, after command: Command, isAlive: (String) -> Bool) -> Bool {
            var voters = group.replicas
            switch command {
            case .promoteLearner(_, let node, _): voters.append(node)
            case .removeReplica(_, let node, _): voters.removeAll { $0 == node }
            default: break
            }
            return !voters.isEmpty && voters.filter(isAlive).count >= quorum(voters.count)
        }
    }
}
