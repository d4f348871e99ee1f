public import ServiceLifecycle
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
