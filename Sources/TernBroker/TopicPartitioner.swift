/// Kafka's default partitioner for keyed messages, so that a key lands in the partition Kafka
/// users expect: `toPositive(murmur2(keyBytes)) % partitions`
/// (`org.apache.kafka.clients.producer.internals.BuiltInPartitioner.partitionForKey`).
public enum TopicPartitioner {
    /// The partition of `key` among `partitions` (1 or more).
    public static func partition(forKey key: [UInt8], partitions: Int) -> Int {
        precondition(partitions > 0, "a topic has at least one partition")
        return Int(UInt32(bitPattern: murmur2(key)) & 0x7FFF_FFFF) % partitions
    }

    /// MurmurHash2 (Austin Appleby), 32-bit, exactly as Kafka's `Utils.murmur2`: seed
    /// 0x9747b28c, little-endian 4-byte blocks, the tail mixed in falling through from the
    /// third byte to the first.
    /// - Returns: the hash as Java's signed `int`.
    public static func murmur2(_ data: [UInt8]) -> Int32 {
        let m: UInt32 = 0x5BD1_E995
        let r: UInt32 = 24
        let length = data.count
        var h: UInt32 = 0x9747_B28C ^ UInt32(truncatingIfNeeded: length)
        let blocks = length / 4
        for i in 0..<blocks {
            let base = i * 4
            var k = UInt32(data[base]) | UInt32(data[base + 1]) << 8 | UInt32(data[base + 2]) << 16 | UInt32(data[base + 3]) << 24
            k = k &* m
            k ^= k >> r
            k = k &* m
            h = h &* m
            h ^= k
        }
        let tail = length & ~3
        switch length % 4 {
        case 3:
            h ^= UInt32(data[tail + 2]) << 16
            h ^= UInt32(data[tail + 1]) << 8
            h ^= UInt32(data[tail])
            h = h &* m
        case 2:
            h ^= UInt32(data[tail + 1]) << 8
            h ^= UInt32(data[tail])
            h = h &* m
        case 1:
            h ^= UInt32(data[tail])
            h = h &* m
        default:
            break
        }
        h ^= h >> 13
        h = h &* m
        h ^= h >> 15
        return Int32(bitPattern: h)
    }
}
