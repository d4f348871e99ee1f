public import TernCore

/// The logical space quota (``StorageQuota``, decision 111) through the broker.
extension Broker {
    /// Accounted bytes stored and the logical limit (nil = none), from one read snapshot.
    public struct StorageUsage: Sendable, Hashable {
        public var storedBytes: UInt64
        public var limitBytes: UInt64?
        public init(storedBytes: UInt64, limitBytes: UInt64?) {
            self.storedBytes = storedBytes
            self.limitBytes = limitBytes
        }
    }

    /// The accounted bytes stored and the limit.
    /// - Throws: ``TernError`` `InternalError` when the stored data cannot be read.
    public func storageUsage() throws(TernError) -> StorageUsage {
        let quota = store.quota
        return try reading { txn in StorageUsage(storedBytes: try quota.used(in: txn), limitBytes: try quota.limit(in: txn)) }
    }

    /// Sets the logical space quota to `bytes` accounted bytes (nil removes it) by command, so
    /// that every replica refuses the same sends; does nothing when it is already that.
    /// Sends that would take the stored total past it are refused with `StorageFull`.
    /// - Returns: the usage after the change.
    /// - Throws: ``TernError`` `Unavailable`, `InternalError`.
    @discardableResult
    public func setStorageLimit(_ bytes: UInt64?) async throws(TernError) -> StorageUsage {
        let current = try storageUsage()
        guard current.limitBytes != bytes else { return current }
        let outcome = try await execute(.setStorageLimit(bytes: bytes))
        guard case .storageLimit(let used, let limit) = outcome.result else { Self.unexpected(outcome.result) }
        return StorageUsage(storedBytes: used, limitBytes: limit)
    }
}
