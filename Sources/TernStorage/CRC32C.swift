internal import CCRC32C

/// CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78), as used by iSCSI (RFC 3720),
/// ext4 and Kafka's record batches. Computed with the CPU's CRC32 instruction where there is one
/// (x86-64 SSE 4.2, AArch64 CRC32: ≈ 8 bytes a cycle), else in software by slicing-by-8
/// (Kounavis & Berry, "A Systematic Approach to Building High Performance Software-based CRC
/// Generators", 2005); both give the same value (`Sources/CCRC32C`).
public enum CRC32C {
    /// The checksum of `bytes`, continuing from `crc` (pass the result of an earlier call to
    /// checksum data in pieces; 0 to start).
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress else { return crc }
        return tern_crc32c(crc, base, bytes.count)
    }

    /// The checksum of `bytes`.
    public static func checksum(_ bytes: some Collection<UInt8>) -> UInt32 {
        if let result = bytes.withContiguousStorageIfAvailable({ checksum(UnsafeRawBufferPointer($0)) }) {
            return result
        }
        return Array(bytes).withUnsafeBytes { checksum($0) }
    }

    /// The same checksum computed in software whatever the CPU (for tests and comparisons).
    public static func softwareChecksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress else { return crc }
        return tern_crc32c_software(crc, base, bytes.count)
    }

    /// Whether ``checksum(_:continuing:)`` uses a CPU instruction on this machine.
    public static var usesHardware: Bool { tern_crc32c_hardware() != 0 }
}
