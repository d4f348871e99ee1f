public import ServiceLifecycle
public import Logging
public import TernBroker

/// Runs the broker's maintenance loop (visibility deadlines, delays, retention, sweeping of
/// deleted queues) until graceful shutdown.
public struct MaintenanceService: Service {
    let broker: Broker

    public init(broker: Broker) { self.broker = broker }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await broker.runMaintenance()
        }
    }
}

/// In a cluster: when `ternd` is asked to stop and this node leads the data group, hands the
/// leadership to another voter before anything else stops (decision 125). Placed last among
/// the services, so that it is the first one shut down: gossip, the listeners and the peer
/// links still run while the transfer happens.
public struct LeadershipHandOffService: Service {
    let node: ClusterNode
    let timeout: Duration
    let logger: Logger

    /// - Parameter timeout: how long stopping may wait for another node to lead. Default 3 s.
    public init(node: ClusterNode, timeout: Duration = .seconds(3), logger: Logger) {
        self.node = node
        self.timeout = timeout
        self.logger = logger
    }

    public func run() async throws {
        // Until shutdown begins; nothing else to do. Cancelled (the service group failed): no hand-over.
        do { try await gracefulShutdown() } catch { return }
        guard node.data.group.status.role == .leader else { return }
        if let successor = await node.handOffLeadership(timeout: timeout) {
            logger.info("handed the data group's leadership over before stopping", metadata: ["tern.leader": "\(successor)"])
        } else {
            logger.warning("stopping as leader without a hand-over (no other voter alive and caught up in time): the others elect a leader")
        }
    }
}

/// Runs the queue groups this node hosts (``QueueGroupHost``, decision 140) until graceful
/// shutdown: starts the groups the catalogue places here and deletes the ones it drops.
public struct QueueGroupService: Service {
    let host: QueueGroupHost

    public init(host: QueueGroupHost) { self.host = host }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await host.run()
        }
    }
}
