public import TernCore

/// Threshold alerts on queues, topics and storage, as a pure state machine: the shell
/// (``AlertMonitor``) takes a ``Sample`` of the broker's figures at the injected clock's time
/// and calls ``Instance/onSample(_:at:)``, which returns what fired and what resolved. Nothing
/// here reads a clock, sleeps or logs, so tests drive every alert with a manual clock.
///
/// A rule names one condition and the queue or topic names it watches (a ``NamePattern``);
/// each matching queue, topic/group or the storage is a *subject* with its own alert. With
/// `holdFor` > 0 a condition must hold that long before the alert fires (Prometheus' `for:`).
public enum Alerts {
    /// What a rule watches.
    public enum Condition: Sendable, Hashable, CustomStringConvertible {
        /// A queue holds more than N messages (ready + in flight + delayed).
        case depthAbove(Int)
        /// A queue's oldest ready message is older than S seconds.
        case oldestMessageAgeAbove(seconds: Double)
        /// A consumer group lags more than N messages behind a topic (summed over partitions).
        case lagAbove(Int)
        /// A consumer group's lag on a topic has grown, without falling, for S seconds.
        case lagGrowing(seconds: Double)
        /// A dead-letter queue (a queue some queue names as `dead_letter_queue`) holds messages.
        case deadLetterQueueNotEmpty
        /// Storage use is above P percent of the map size.
        case storageAbove(percent: Double)

        public var description: String {
            switch self {
            case .depthAbove(let n): "depth above \(n)"
            case .oldestMessageAgeAbove(let s): "oldest message age above \(s) s"
            case .lagAbove(let n): "consumer lag above \(n)"
            case .lagGrowing(let s): "consumer lag growing for \(s) s"
            case .deadLetterQueueNotEmpty: "dead-letter queue not empty"
            case .storageAbove(let p): "storage above \(p) %"
            }
        }
    }

    /// One alerting rule.
    public struct Rule: Sendable, Hashable {
        /// The alert's name (`tern_alert_firing{alert="…"}`), unique among rules.
        public var name: String
        public var condition: Condition
        /// The queue names (depth, age, dead-letter) or topic names (lag) the rule watches;
        /// ignored for storage. Default `*`.
        public var pattern: NamePattern
        /// How long the condition must hold before the alert fires. Default 0 (at once).
        public var holdFor: Duration

        public init(name: String, condition: Condition, pattern: NamePattern = NamePattern("*"), holdFor: Duration = .zero) {
            self.name = name
            self.condition = condition
            self.pattern = pattern
            self.holdFor = holdFor
        }
    }

    /// The broker's figures at one moment.
    public struct Sample: Sendable {
        public struct Queue: Sendable {
            public var name: String
            public var depth: UInt64
            /// Seconds since the oldest ready message was sent; nil when none is ready.
            public var oldestMessageAge: Double?
            public var isDeadLetterQueue: Bool
            public init(name: String, depth: UInt64, oldestMessageAge: Double?, isDeadLetterQueue: Bool) {
                self.name = name
                self.depth = depth
                self.oldestMessageAge = oldestMessageAge
                self.isDeadLetterQueue = isDeadLetterQueue
            }
        }

        public struct GroupLag: Sendable {
            public var topic: String
            public var group: String
            /// Messages between the group's committed offsets and the high watermarks, over all partitions.
            public var lag: UInt64
            public init(topic: String, group: String, lag: UInt64) {
                self.topic = topic
                self.group = group
                self.lag = lag
            }
        }

        public var queues: [Queue]
        public var groupLags: [GroupLag]
        /// Used bytes as a percentage of the map size; nil when unknown.
        public var storageUsedPercent: Double?

        public init(queues: [Queue] = [], groupLags: [GroupLag] = [], storageUsedPercent: Double? = nil) {
            self.queues = queues
            self.groupLags = groupLags
            self.storageUsedPercent = storageUsedPercent
        }
    }

    /// One firing alert.
    public struct Alert: Sendable, Hashable {
        /// The rule's name.
        public var name: String
        /// What it is about: a queue name, `topic/group`, or `storage`.
        public var subject: String
        public var condition: Condition
        /// The observed value when it fired (messages, seconds or percent).
        public var value: Double
        /// When it fired.
        public var firedAt: Timestamp
    }

    /// What the shell must do.
    public enum Directive: Sendable, Hashable {
        /// Log at `warning`, export `tern_alert_firing{alert, subject} 1`.
        case fire(Alert)
        /// Log at `info`, remove the series. `value` is the value that resolved it.
        case resolve(Alert, value: Double)
    }

    /// The state machine.
    public struct Instance: Sendable {
        public let rules: [Rule]
        private struct Key: Hashable {
            var rule: String
            var subject: String
        }
        private struct Growth {
            var lastLag: UInt64
            var growingSince: Timestamp?
        }
        /// Since when each (rule, subject) condition has held, for `holdFor`.
        private var pending: [Key: Timestamp] = [:]
        private var active: [Key: Alert] = [:]
        private var growth: [Key: Growth] = [:]

        public init(rules: [Rule]) { self.rules = rules }

        /// The alerts firing now, by name then subject.
        public var firing: [Alert] {
            active.values.sorted { ($0.name, $0.subject) < ($1.name, $1.subject) }
        }

        /// Evaluates every rule against `sample` taken at `now`.
        /// - Returns: alerts that started firing and alerts that resolved, in rule order.
        public mutating func onSample(_ sample: Sample, at now: Timestamp) -> [Directive] {
            var directives = [Directive]()
            for rule in rules {
                var observed = [String: (holds: Bool, value: Double)]()
                switch rule.condition {
                case .depthAbove(let limit):
                    for queue in sample.queues where rule.pattern.matches(queue.name) {
                        observed[queue.name] = (queue.depth > UInt64(max(limit, 0)), Double(queue.depth))
                    }
                case .oldestMessageAgeAbove(let seconds):
                    for queue in sample.queues where rule.pattern.matches(queue.name) {
                        let age = queue.oldestMessageAge ?? 0
                        observed[queue.name] = (age > seconds, age)
                    }
                case .deadLetterQueueNotEmpty:
                    for queue in sample.queues where queue.isDeadLetterQueue && rule.pattern.matches(queue.name) {
                        observed[queue.name] = (queue.depth > 0, Double(queue.depth))
                    }
                case .lagAbove(let limit):
                    for lag in sample.groupLags where rule.pattern.matches(lag.topic) {
                        observed["\(lag.topic)/\(lag.group)"] = (lag.lag > UInt64(max(limit, 0)), Double(lag.lag))
                    }
                case .lagGrowing(let seconds):
                    for lag in sample.groupLags where rule.pattern.matches(lag.topic) {
                        let subject = "\(lag.topic)/\(lag.group)"
                        let key = Key(rule: rule.name, subject: subject)
                        var state = growth[key] ?? Growth(lastLag: lag.lag, growingSince: nil)
                        if lag.lag == 0 || lag.lag < state.lastLag {
                            state.growingSince = nil
                        } else if lag.lag > state.lastLag && state.growingSince == nil {
                            state.growingSince = now
                        }
                        state.lastLag = lag.lag
                        growth[key] = state
                        let grownFor = state.growingSince.map { Double($0.seconds(until: now)) } ?? 0
                        observed[subject] = (state.growingSince != nil && grownFor >= seconds, grownFor)
                    }
                case .storageAbove(let percent):
                    if let used = sample.storageUsedPercent {
                        observed["storage"] = (used > percent, used)
                    }
                }
                // Subjects that disappeared (a deleted queue) resolve.
                for (key, alert) in active where key.rule == rule.name && observed[key.subject] == nil {
                    active[key] = nil
                    directives.append(.resolve(alert, value: 0))
                }
                for key in pending.keys where key.rule == rule.name && observed[key.subject] == nil {
                    pending[key] = nil
                }
                for (subject, observation) in observed.sorted(by: { $0.key < $1.key }) {
                    let key = Key(rule: rule.name, subject: subject)
                    if observation.holds {
                        guard active[key] == nil else { continue }
                        let since = pending[key] ?? now
                        pending[key] = since
                        let heldMilliseconds = Int64(now.milliseconds) - Int64(since.milliseconds)
                        if .milliseconds(heldMilliseconds) >= rule.holdFor {
                            let alert = Alert(name: rule.name, subject: subject, condition: rule.condition,
                                              value: observation.value, firedAt: now)
                            active[key] = alert
                            pending[key] = nil
                            directives.append(.fire(alert))
                        }
                    } else {
                        pending[key] = nil
                        if let alert = active.removeValue(forKey: key) {
                            directives.append(.resolve(alert, value: observation.value))
                        }
                    }
                }
            }
            return directives
        }
    }
}
