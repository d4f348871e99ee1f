public import TernCore
public import TernStorage

/// The LMDB layout of FIFO queues' extra state, beside the queue databases.
///
/// | database | key (big-endian) | value |
/// |---|---|---|
/// | `fifo_messages` | queue id u32, partition u32, sequence u64 (as `messages`) | group id and deduplication id (u32 length + UTF-8 each) |
/// | `fifo_inflight` | queue id u32, group length u16, group id, sequence u64 | empty: the group's messages in flight (its lock) |
/// | `fifo_dedup` | queue id u32, deduplication id (UTF-8) | first accepted ms u64, message id 16 B, sequence u64 |
/// | `fifo_dedup_expiry` | expiry ms u64, queue id u32, deduplication id | empty: when the dedup entry is swept |
public enum FifoSchema {
    public static let databaseNames = ["fifo_messages", "fifo_inflight", "fifo_dedup", "fifo_dedup_expiry"]
    /// How long a deduplication id is remembered, from its first acceptance (SQS: 5 minutes).
    public static let deduplicationWindowSeconds = 300
    /// Group and deduplication ids: 1–128 bytes (SQS's limit).
    public static let idLengthRange = 1...128
    /// The most ready messages one FIFO receive looks at while skipping locked groups.
    public static let maxScannedPerReceive = 10_000

    static func groupPrefix(queue: UInt32, group: [UInt8]) -> [UInt8] {
        var writer = BigEndianWriter(capacity: 6 + group.count)
        writer.write(queue)
        writer.write(UInt16(group.count))
        writer.write(group)
        return writer.bytes
    }

    static func inflightKey(queue: UInt32, group: [UInt8], sequence: UInt64) -> [UInt8] {
        var writer = BigEndianWriter(capacity: 14 + group.count)
        writer.write(groupPrefix(queue: queue, group: group))
        writer.write(sequence)
        return writer.bytes
    }

    static func dedupKey(queue: UInt32, id: [UInt8]) -> [UInt8] {
        var writer = BigEndianWriter(capacity: 4 + id.count)
        writer.write(queue)
        writer.write(id)
        return writer.bytes
    }

    static func expiryKey(_ time: Timestamp, queue: UInt32, id: [UInt8]) -> [UInt8] {
        var writer = BigEndianWriter(capacity: 12 + id.count)
        writer.write(time.milliseconds)
        writer.write(queue)
        writer.write(id)
        return writer.bytes
    }

    /// The FIFO facts of one message.
    struct MessageFacts: Hashable {
        var group: [UInt8]
        var deduplicationID: [UInt8]

        func encoded() -> [UInt8] {
            var writer = BigEndianWriter(capacity: 8 + group.count + deduplicationID.count)
            writer.writeLengthPrefixed(group)
            writer.writeLengthPrefixed(deduplicationID)
            return RecordCodec.encode(writer.bytes, compression: .never)
        }

        init(group: [UInt8], deduplicationID: [UInt8]) {
            self.group = group
            self.deduplicationID = deduplicationID
        }

        init(decoding record: [UInt8]) throws(StorageError) {
            var reader = BigEndianReader(try RecordCodec.decode(record))
            group = try reader.readLengthPrefixed()
            deduplicationID = try reader.readLengthPrefixed()
        }
    }

    /// A remembered deduplication id.
    struct DedupEntry: Hashable {
        var acceptedAt: Timestamp
        var id: MessageID
        var sequence: UInt64

        var expiresAt: Timestamp { acceptedAt.adding(seconds: FifoSchema.deduplicationWindowSeconds) }

        func encoded() -> [UInt8] {
            var writer = BigEndianWriter(capacity: 32)
            writer.write(acceptedAt.milliseconds)
            writer.write(id.high)
            writer.write(id.low)
            writer.write(sequence)
            return RecordCodec.encode(writer.bytes, compression: .never)
        }

        init(acceptedAt: Timestamp, id: MessageID, sequence: UInt64) {
            self.acceptedAt = acceptedAt
            self.id = id
            self.sequence = sequence
        }

        init(decoding record: [UInt8]) throws(StorageError) {
            var reader = BigEndianReader(try RecordCodec.decode(record))
            acceptedAt = Timestamp(milliseconds: try reader.readUInt64())
            id = MessageID(high: try reader.readUInt64(), low: try reader.readUInt64())
            sequence = try reader.readUInt64()
        }
    }
}

/// FIFO queues (BRIEF §3, SQS FIFO semantics): message groups with a lock while a message of
/// the group is in flight, and deduplication ids remembered queue-wide for 5 minutes.
extension QueueStore {
    /// Checks the FIFO fields of `message` for a queue with `attributes`.
    /// - Returns: the group and deduplication id (FIFO), nil for a standard queue.
    /// - Throws: ``ErrorCode/invalidParameter`` when a FIFO field is missing, malformed or given to a standard queue.
    func fifoFacts(_ message: OutgoingMessage, index: Int, attributes: QueueAttributes) throws -> FifoSchema.MessageFacts? {
        guard attributes.fifo else {
            if message.groupID != nil || message.deduplicationID != nil {
                throw TernError(.invalidParameter, "message \(index): group_id and deduplication_id are only for FIFO queues")
            }
            return nil
        }
        guard let group = message.groupID else {
            throw TernError(.invalidParameter, "message \(index): group_id is required on a FIFO queue")
        }
        guard FifoSchema.idLengthRange.contains(group.utf8.count) else {
            throw TernError(.invalidParameter, "message \(index): group_id must be 1–128 bytes")
        }
        if message.priority != 0 { throw TernError(.invalidParameter, "message \(index): FIFO queues have no priorities") }
        if message.delay != nil { throw TernError(.invalidParameter, "message \(index): FIFO queues take no per-message delay (use the queue's delay)") }
        let dedup: [UInt8]
        if let id = message.deduplicationID {
            guard FifoSchema.idLengthRange.contains(id.utf8.count) else {
                throw TernError(.invalidParameter, "message \(index): deduplication_id must be 1–128 bytes")
            }
            dedup = Array(id.utf8)
        } else if attributes.contentBasedDeduplication {
            dedup = Array(SHA256.hex(message.body).utf8)
        } else {
            throw TernError(.invalidParameter, "message \(index): deduplication_id is required (the queue has no content_based_deduplication)")
        }
        return FifoSchema.MessageFacts(group: Array(group.utf8), deduplicationID: dedup)
    }

    /// The live deduplication entry of `id` in `queue` at `now`, nil when none or expired.
    func duplicate(queue: UInt32, id: [UInt8], at now: Timestamp, in txn: Transaction) throws -> FifoSchema.DedupEntry? {
        guard let stored = try txn.get(fifoDedup, FifoSchema.dedupKey(queue: queue, id: id)) else { return nil }
        let entry = try FifoSchema.DedupEntry(decoding: stored)
        return entry.expiresAt > now ? entry : nil
    }

    /// Records a newly stored FIFO message: its facts and its deduplication id.
    func storeFifo(_ facts: FifoSchema.MessageFacts, queue: UInt32, sequence: UInt64, id: MessageID, at now: Timestamp,
                   in txn: WriteTransaction) throws {
        try txn.put(fifoMessages, QueueSchema.messageKey(queue: queue, sequence: sequence), facts.encoded())
        let key = FifoSchema.dedupKey(queue: queue, id: facts.deduplicationID)
        if let old = try txn.get(fifoDedup, key) {
            let entry = try FifoSchema.DedupEntry(decoding: old)
            try txn.delete(fifoDedupExpiry, FifoSchema.expiryKey(entry.expiresAt, queue: queue, id: facts.deduplicationID))
        }
        let entry = FifoSchema.DedupEntry(acceptedAt: now, id: id, sequence: sequence)
        try txn.put(fifoDedup, key, entry.encoded())
        try txn.put(fifoDedupExpiry, FifoSchema.expiryKey(entry.expiresAt, queue: queue, id: facts.deduplicationID), [])
    }

    /// The FIFO facts of a stored message, nil for a standard queue's.
    func fifoFacts(queue: UInt32, sequence: UInt64, in txn: Transaction) throws -> FifoSchema.MessageFacts? {
        try txn.get(fifoMessages, QueueSchema.messageKey(queue: queue, sequence: sequence)).map { try FifoSchema.MessageFacts(decoding: $0) }
    }

    /// Whether a message of `group` is in flight in `queue`.
    /// Whether a message of `group` with sequence `from` or above is in flight (locks of purged
    /// messages, below the watermark, do not hold the group; decision 112).
    func isLocked(queue: UInt32, group: [UInt8], from sequence: UInt64 = 0, in txn: Transaction) throws -> Bool {
        let prefix = FifoSchema.groupPrefix(queue: queue, group: group)
        return try txn.withCursor(fifoInflight) { cursor in
            let start = sequence == 0 ? prefix : FifoSchema.inflightKey(queue: queue, group: group, sequence: sequence)
            guard let entry = try cursor.seek(atOrAfter: start) else { return false }
            return entry.key.starts(with: prefix) && entry.key.count == prefix.count + 8
        }
    }

    /// Marks a delivered FIFO message as in flight (its group is locked until it is not).
    func lockGroup(queue: UInt32, group: [UInt8], sequence: UInt64, in txn: WriteTransaction) throws {
        try txn.put(fifoInflight, FifoSchema.inflightKey(queue: queue, group: group, sequence: sequence), [])
    }

    /// A FIFO message stopped being in flight (timeout, release, ack, removal): its group's lock goes.
    func unlockGroup(queue: UInt32, sequence: UInt64, in txn: WriteTransaction) throws {
        guard let facts = try fifoFacts(queue: queue, sequence: sequence, in: txn) else { return }
        try txn.delete(fifoInflight, FifoSchema.inflightKey(queue: queue, group: facts.group, sequence: sequence))
    }

    /// Removes the FIFO facts of a removed message (and its lock when it was in flight).
    func removeFifo(queue: UInt32, sequence: UInt64, wasInFlight: Bool, in txn: WriteTransaction) throws {
        if wasInFlight { try unlockGroup(queue: queue, sequence: sequence, in: txn) }
        try txn.delete(fifoMessages, QueueSchema.messageKey(queue: queue, sequence: sequence))
    }

    /// Deletes up to `limit` deduplication ids whose 5-minute window ended at `now`.
    /// - Returns: how many were deleted.
    public func expireDeduplication(at now: Timestamp, limit: Int, in txn: WriteTransaction) throws -> Int {
        let due: [[UInt8]] = try txn.withCursor(fifoDedupExpiry) { cursor in
            var keys = [[UInt8]]()
            var entry = try cursor.first()
            while let current = entry, keys.count < limit {
                var reader = BigEndianReader(current.key)
                guard try reader.readUInt64() <= now.milliseconds else { break }
                keys.append(current.key)
                entry = try cursor.next()
            }
            return keys
        }
        for key in due {
            try txn.delete(fifoDedupExpiry, key)
            try txn.delete(fifoDedup, Array(key[8...]))
        }
        return due.count
    }
}

/// SHA-256 (FIPS 180-4), for content-based deduplication ids; no dependency needed for one hash.
enum SHA256 {
    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    static func digest(_ message: [UInt8]) -> [UInt8] {
        var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
        var data = message
        data.append(0x80)
        while data.count % 64 != 56 { data.append(0) }
        let bits = UInt64(message.count) &* 8
        for shift in stride(from: 56, through: 0, by: -8) { data.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift))) }
        var w = [UInt32](repeating: 0, count: 64)
        for chunk in stride(from: 0, to: data.count, by: 64) {
            for i in 0..<16 {
                let b = chunk + i * 4
                w[i] = UInt32(data[b]) << 24 | UInt32(data[b + 1]) << 16 | UInt32(data[b + 2]) << 8 | UInt32(data[b + 3])
            }
            for i in 16..<64 {
                let s0 = rotate(w[i - 15], 7) ^ rotate(w[i - 15], 18) ^ (w[i - 15] >> 3)
                let s1 = rotate(w[i - 2], 17) ^ rotate(w[i - 2], 19) ^ (w[i - 2] >> 10)
                w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
            }
            var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
            for i in 0..<64 {
                let s1 = rotate(e, 6) ^ rotate(e, 11) ^ rotate(e, 25)
                let choice = (e & f) ^ (~e & g)
                let t1 = hh &+ s1 &+ choice &+ k[i] &+ w[i]
                let s0 = rotate(a, 2) ^ rotate(a, 13) ^ rotate(a, 22)
                let majority = (a & b) ^ (a & c) ^ (b & c)
                let t2 = s0 &+ majority
                (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
            }
            h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d; h[4] &+= e; h[5] &+= f; h[6] &+= g; h[7] &+= hh
        }
        return h.flatMap { word in (0..<4).map { UInt8(truncatingIfNeeded: word >> (24 - 8 * UInt32($0))) } }
    }

    /// The digest as 64 lowercase hex digits.
    static func hex(_ message: [UInt8]) -> String {
        digest(message).map { byte in
            let digits = String(byte, radix: 16)
            return digits.count == 1 ? "0" + digits : digits
        }.joined()
    }

    private static func rotate(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
}
