public import TernCore
public import TernStorage

/// The durable state of consumer groups (database `groups`): one ``ConsumerGroup/State`` per
/// (topic, group), written only by the join, leave and expiry commands.
///
/// | database | key (big-endian) | value |
/// |---|---|---|
/// | `groups` | topic id u32, group name (UTF-8), 0x00 | ``ConsumerGroup/State`` in a ``RecordCodec`` envelope |
///
/// Payload: partition count u32, generation u32, member count u32, then per member in id
/// order: id (u32 length + UTF-8), session timeout ms u64, partition count u32 and partitions
/// u32 each (ascending); then owned-since count u32 and per partition in order: partition u32,
/// generation u32.
public enum GroupSchema {
    public static let databaseNames = ["groups"]

    /// The key of `group` of `topic` (the offsets' group prefix: group names never contain 0x00).
    public static func groupKey(topic: UInt32, group: String) -> [UInt8] {
        TopicSchema.groupPrefix(topic: topic, group: group)
    }

    static func encode(_ state: ConsumerGroup.State) -> [UInt8] {
        var writer = BigEndianWriter(capacity: 64)
        writer.write(UInt32(state.partitionCount))
        writer.write(state.generation)
        writer.write(UInt32(state.members.count))
        for member in state.members.values.sorted(by: { $0.id < $1.id }) {
            writer.writeLengthPrefixed(Array(member.id.utf8))
            writer.write(UInt64(member.sessionTimeoutMilliseconds))
            writer.write(UInt32(member.partitions.count))
            for partition in member.partitions { writer.write(UInt32(partition)) }
        }
        writer.write(UInt32(state.ownedSince.count))
        for (partition, generation) in state.ownedSince.sorted(by: { $0.key < $1.key }) {
            writer.write(UInt32(partition))
            writer.write(generation)
        }
        return RecordCodec.encode(writer.bytes, compression: .never)
    }

    /// - Throws: ``StorageError`` `corruptRecord` for a damaged or truncated record.
    static func decode(_ record: [UInt8]) throws(StorageError) -> ConsumerGroup.State {
        var reader = BigEndianReader(try RecordCodec.decode(record))
        let partitionCount = Int(try reader.readUInt32())
        guard partitionCount > 0 else { throw StorageError(.corruptRecord, "group state with 0 partitions") }
        let generation = try reader.readUInt32()
        var members = [String: ConsumerGroup.State.MemberRecord]()
        let memberCount = try reader.readUInt32()
        for _ in 0..<memberCount {
            let id = String(decoding: try reader.readLengthPrefixed(), as: UTF8.self)
            let timeout = Int64(bitPattern: try reader.readUInt64())
            let count = try reader.readUInt32()
            guard Int(count) <= reader.remaining / 4 else { throw StorageError(.corruptRecord, "group state: \(count) partitions cannot fit") }
            var partitions = [Int]()
            for _ in 0..<count { partitions.append(Int(try reader.readUInt32())) }
            members[id] = .init(id: id, sessionTimeoutMilliseconds: timeout, partitions: partitions)
        }
        var ownedSince = [Int: UInt32]()
        let owned = try reader.readUInt32()
        guard Int(owned) <= reader.remaining / 8 else { throw StorageError(.corruptRecord, "group state: \(owned) owners cannot fit") }
        for _ in 0..<owned { ownedSince[Int(try reader.readUInt32())] = try reader.readUInt32() }
        return ConsumerGroup.State(partitionCount: partitionCount, generation: generation, members: members, ownedSince: ownedSince)
    }
}

extension TopicStore {
    /// The stored state of `group` of topic `topic`, nil when no member ever joined it.
    /// - Throws: ``StorageError`` for a damaged record.
    public func groupState(topic: UInt32, group: String, in txn: Transaction) throws -> ConsumerGroup.State? {
        guard let groups else { return nil }
        return try txn.get(groups, GroupSchema.groupKey(topic: topic, group: group)).map { try GroupSchema.decode($0) }
    }

    func putGroupState(_ state: ConsumerGroup.State, topic: UInt32, group: String, in txn: WriteTransaction) throws {
        guard let groups else { preconditionFailure("the groups database is opened by every writable environment") }
        try txn.put(groups, GroupSchema.groupKey(topic: topic, group: group), GroupSchema.encode(state))
    }
}
