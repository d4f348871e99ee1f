public import TernCore

/// Front-end metadata of queues (``QueueMetadata``): tags and opaque attributes the SQS
/// endpoint keeps, as broker state changed by ``Command/updateQueueMetadata(_:_:)``.
extension Broker {
    /// A live queue, its id and its metadata, read in one snapshot.
    public struct QueueWithMetadata: Sendable, Hashable {
        public var info: QueueInfo
        /// The queue's id (a queue re-created under the name has another).
        public var queueID: UInt32
        public var metadata: QueueMetadata
    }

    /// The queue `name` with its metadata (empty when none was ever set).
    /// - Throws: ``TernError`` `QueueNotFound`.
    public func describeQueueWithMetadata(_ name: QueueName) throws(TernError) -> QueueWithMetadata {
        let store = self.store
        return try reading { txn in
            let record = try store.record(named: name, in: txn)
            return QueueWithMetadata(info: self.info(record, oldestSentAt: try store.oldestSentAt(queue: record.id, in: txn)),
                                     queueID: record.id, metadata: try store.metadata(queue: record.id, in: txn))
        }
    }

    /// Applies `patch` to the metadata of `name`, durably.
    /// - Returns: the metadata after the update.
    /// - Throws: ``TernError``: `QueueNotFound`; `Conflict` when `patch.expected` no longer
    ///   holds (re-read and retry); `InvalidAttribute` past a bound of ``QueueMetadata``;
    ///   `StorageFull` for a patch that sets entries when storage is full.
    @discardableResult
    public func updateQueueMetadata(_ name: QueueName, _ patch: QueueMetadataPatch) async throws(TernError) -> QueueMetadata {
        let outcome = try await execute(.updateQueueMetadata(name, patch))
        guard case .queueMetadata(let metadata, _) = outcome.result else { Self.unexpected(outcome.result) }
        return metadata
    }

    /// Read-modify-write of the metadata of `name`: `change` edits the tags and attributes as
    /// read, and the difference is applied only if nothing changed them meanwhile (retried on
    /// `Conflict`, up to 16 times).
    /// - Parameters:
    ///   - lastModified: what the update does to the last-modified time.
    ///   - change: called with the queue as read and its tags and attributes to edit; what
    ///     it throws ends the update (nothing is written).
    /// - Returns: the metadata after the update.
    /// - Throws: what `change` throws; ``TernError`` as ``updateQueueMetadata(_:_:)``.
    @discardableResult
    public func modifyQueueMetadata(_ name: QueueName, lastModified: QueueMetadataPatch.LastModified = .keep,
                                    _ change: (QueueWithMetadata, inout [String: String], inout [String: String]) throws -> Void)
        async throws -> QueueMetadata {
        var attempt = 0
        while true {
            let current = try describeQueueWithMetadata(name)
            var tags = current.metadata.tags
            var attributes = current.metadata.attributes
            try change(current, &tags, &attributes)
            var patch = QueueMetadataPatch(lastModified: lastModified,
                                           expected: .init(queueID: current.queueID, revision: current.metadata.revision))
            patch.tags = Self.difference(from: current.metadata.tags, to: tags)
            patch.attributes = Self.difference(from: current.metadata.attributes, to: attributes)
            if patch.tags.isEmpty && patch.attributes.isEmpty && lastModified == .keep { return current.metadata }
            let result: Result<QueueMetadata, TernError>
            do { result = .success(try await updateQueueMetadata(name, patch)) } catch { result = .failure(error) }
            switch result {
            case .success(let metadata): return metadata
            case .failure(let error) where error.code == .conflict && attempt < 15: attempt += 1
            case .failure(let error): throw error
            }
        }
    }

    /// The entries to set and (nil) to remove that turn `old` into `new`.
    static func difference(from old: [String: String], to new: [String: String]) -> [String: String?] {
        var patch = [String: String?]()
        for (key, value) in new where old[key] != value { patch[key] = .some(value) }
        for key in old.keys where new[key] == nil { patch[key] = .some(nil) }
        return patch
    }
}
