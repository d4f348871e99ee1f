extension Gossip {
    /// The protocol's settings. Defaults are memberlist's LAN configuration (`DefaultLANConfig`
    /// in hashicorp/memberlist `config.go`), as `../shared/CLUSTER.md` fixes them.
    ///
    /// ```swift
    /// let settings = Gossip.Settings().with { $0.probeInterval = .milliseconds(500) }
    /// try settings.validate()
    /// ```
    public struct Settings: Sendable, Hashable {
        /// SWIM's protocol period: one member is probed per period (§4.3). Default 1 s; Lifeguard
        /// stretches it by the local health multiplier.
        public var probeInterval: Duration = .seconds(1)
        /// How long to wait for a direct ack before asking others to probe (§3.1). Default
        /// 500 ms; stretched like ``probeInterval``. Must be shorter than ``probeInterval``.
        public var probeTimeout: Duration = .milliseconds(500)
        /// How many members are asked to probe indirectly (SWIM's k, §3.1). Default 3.
        public var indirectProbes: Int = 3
        /// The suspicion timeout's floor is `suspicionMultiplier · max(1, log10 n) ·
        /// probeInterval` (memberlist `SuspicionMult`). Default 4.
        public var suspicionMultiplier: Int = 4
        /// The timeout of a fresh suspicion, before confirmations shrink it, is this many times the
        /// floor (Lifeguard §IV.B; memberlist `SuspicionMaxTimeoutMult`). Default 6.
        public var suspicionMaxTimeoutMultiplier: Int = 6
        /// Between dissemination rounds to ``gossipFanout`` random members. Default 200 ms.
        public var gossipInterval: Duration = .milliseconds(200)
        /// Members each dissemination round sends to. Default 3.
        public var gossipFanout: Int = 3
        /// How long dead members still receive gossip (so that one that was only cut off learns
        /// of its death and refutes it). Default 30 s (memberlist `GossipToTheDeadTime`).
        public var gossipToTheDead: Duration = .seconds(30)
        /// Between full state syncs with one random member; scaled up beyond 32 members as
        /// memberlist's `pushPullScale` does. Default 30 s; zero turns periodic sync off.
        public var pushPullInterval: Duration = .seconds(30)
        /// Each update is sent `retransmitMultiplier · ⌈log10(n + 1)⌉` times (SWIM's λ log n,
        /// §4.1; memberlist `RetransmitMult`). Default 4.
        public var retransmitMultiplier: Int = 4
        /// The local health multiplier ranges over 0 ..< this (Lifeguard §IV.A; memberlist
        /// `AwarenessMaxMultiplier`). Default 8: intervals stretch up to 8 times. 1 turns
        /// local health awareness off.
        public var awarenessMaxMultiplier: Int = 8
        /// The largest datagram, in bytes, including the authentication tag. Default 1,400 (below
        /// a 1,500-byte Ethernet MTU with IP and UDP headers); at least 512.
        public var maxPacketBytes: Int = 1_400
        /// Members the view holds at most, this node included; news of further members is
        /// ignored. Default 10,000.
        public var maxMembers: Int = 10_000
        /// How long dead and departed members stay in the view before they are forgotten.
        /// Default 1 h.
        public var deadMemberRetention: Duration = .seconds(3_600)
        /// Whether to ask indirect probers for a nack when they get no ack either (Lifeguard
        /// §IV.A: a missing nack points at this node's own health). Default true.
        public var nacks: Bool = true

        /// Every setting at its default.
        public init() {}

        /// A copy changed by `change`.
        public func with(_ change: (inout Settings) -> Void) -> Settings {
            var copy = self
            change(&copy)
            return copy
        }

        /// Checks every setting.
        /// - Throws: ``GossipError`` with code ``GossipError/Code/invalidSettings`` naming the
        ///   first bad setting.
        public func validate() throws(GossipError) {
            func fail(_ message: String) -> GossipError { GossipError(.invalidSettings, message) }
            guard probeInterval >= .milliseconds(10) else { throw fail("probeInterval must be at least 10 ms") }
            guard probeTimeout > .zero, probeTimeout < probeInterval else {
                throw fail("probeTimeout must be positive and shorter than probeInterval")
            }
            guard (0...16).contains(indirectProbes) else { throw fail("indirectProbes must be 0–16") }
            guard (1...100).contains(suspicionMultiplier) else { throw fail("suspicionMultiplier must be 1–100") }
            guard (1...100).contains(suspicionMaxTimeoutMultiplier) else {
                throw fail("suspicionMaxTimeoutMultiplier must be 1–100")
            }
            guard gossipInterval >= .milliseconds(1) else { throw fail("gossipInterval must be at least 1 ms") }
            guard (1...64).contains(gossipFanout) else { throw fail("gossipFanout must be 1–64") }
            guard gossipToTheDead >= .zero else { throw fail("gossipToTheDead must not be negative") }
            guard pushPullInterval == .zero || pushPullInterval >= .seconds(1) else {
                throw fail("pushPullInterval must be 0 (off) or at least 1 s")
            }
            guard (1...100).contains(retransmitMultiplier) else { throw fail("retransmitMultiplier must be 1–100") }
            guard (1...64).contains(awarenessMaxMultiplier) else { throw fail("awarenessMaxMultiplier must be 1–64") }
            guard (512...65_000).contains(maxPacketBytes) else { throw fail("maxPacketBytes must be 512–65,000") }
            guard (2...1_000_000).contains(maxMembers) else { throw fail("maxMembers must be 2–1,000,000") }
            guard deadMemberRetention >= gossipToTheDead else {
                throw fail("deadMemberRetention must be at least gossipToTheDead")
            }
        }

        // MARK: Derived figures

        /// `log10(n)` floored at 1: the node scale of memberlist's `suspicionTimeout`.
        static func nodeScale(_ members: Int) -> Double {
            max(1, log10(Double(max(1, members))))
        }

        /// The suspicion timeout's floor for a view of `members` live members:
        /// `suspicionMultiplier · max(1, log10 n) · probeInterval`.
        public func minimumSuspicionTimeout(members: Int) -> Duration {
            probeInterval * (Double(suspicionMultiplier) * Self.nodeScale(members))
        }

        /// The timeout of a suspicion without confirmations: ``suspicionMaxTimeoutMultiplier``
        /// times the floor.
        public func maximumSuspicionTimeout(members: Int) -> Duration {
            minimumSuspicionTimeout(members: members) * suspicionMaxTimeoutMultiplier
        }

        /// How many times each update is sent in a view of `members` members (SWIM §4.1).
        public func retransmitLimit(members: Int) -> Int {
            retransmitMultiplier * Int(log10(Double(members + 1)).rounded(.up))
        }

        /// The push-pull interval for `members` members: memberlist's `pushPullScale` (one more
        /// interval for each doubling beyond 32 members).
        public func scaledPushPullInterval(members: Int) -> Duration {
            guard members > 32 else { return pushPullInterval }
            let multiplier = Int((log2(Double(members)) - log2(32)).rounded(.up)) + 1
            return pushPullInterval * multiplier
        }
    }
}

/// log10 and log2 without Foundation.
@inline(__always) func log10(_ x: Double) -> Double { log2(x) / 3.321928094887362 }

/// The binary logarithm of a positive `x` (to about 1e-12 relative).
func log2(_ x: Double) -> Double {
    precondition(x > 0)
    let exponent = x.exponent
    let mantissa = x.significand  // in [1, 2)
    // ln(m) by the atanh series: ln(m) = 2·atanh((m−1)/(m+1)).
    let y = (mantissa - 1) / (mantissa + 1)
    let y2 = y * y
    var term = y, sum = 0.0
    var k = 1.0
    while k < 60 {
        sum += term / k
        term *= y2
        k += 2
    }
    return Double(exponent) + 2 * sum / 0.6931471805599453
}
