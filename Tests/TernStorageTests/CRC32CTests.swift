import Testing
import TernStorage
import TernTestKit

@Suite struct CRC32CTests {
    @Test func checksum_ofCheckString_isStandardCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    }

    @Test func checksum_ofEmptyInput_isZero() {
        #expect(CRC32C.checksum([UInt8]()) == 0)
    }

    /// RFC 3720 (iSCSI), appendix B.4.
    @Test(arguments: [
        ([UInt8](repeating: 0x00, count: 32), UInt32(0x8A91_36AA)),
        ([UInt8](repeating: 0xFF, count: 32), UInt32(0x62A8_AB43)),
        ((0..<32).map { UInt8($0) }, UInt32(0x46DD_794E)),
        ((0..<32).reversed().map { UInt8($0) }, UInt32(0x113F_DB5C)),
        ([0x01, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
          0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
          0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00] as [UInt8],
         UInt32(0xD996_3A56)),
    ])
    func checksum_ofRFC3720Vector_matchesPublishedValue(input: [UInt8], expected: UInt32) {
        #expect(CRC32C.checksum(input) == expected)
    }

    /// Every split point, so the 8-byte fast path and the byte tail both meet every alignment.
    @Test func checksum_computedInPieces_equalsChecksumOfWhole() {
        var random = SeededGenerator(seed: 0xC3C3)
        let data = random.bytes(count: 1_000)
        let whole = CRC32C.checksum(data)
        for split in 0...data.count {
            let first = data[..<split].withUnsafeBytes { CRC32C.checksum($0) }
            let both = data[split...].withUnsafeBytes { CRC32C.checksum($0, continuing: first) }
            #expect(both == whole, "split at \(split)")
        }
        // Three pieces of uneven sizes.
        let a = data[..<3].withUnsafeBytes { CRC32C.checksum($0) }
        let b = data[3..<517].withUnsafeBytes { CRC32C.checksum($0, continuing: a) }
        let c = data[517...].withUnsafeBytes { CRC32C.checksum($0, continuing: b) }
        #expect(c == whole)
    }

    /// The checksum against a bit-at-a-time reference, for every length up to 64
    /// (all head/tail combinations of the 8-byte loop).
    @Test func checksum_ofEveryShortLength_matchesBitwiseReference() {
        var random = SeededGenerator(seed: 7)
        for length in 0...64 {
            let data = random.bytes(count: length)
            #expect(CRC32C.checksum(data) == Self.reference(data), "length \(length)")
        }
    }

    /// The CPU instruction path (when this machine has one) and the software path agree for
    /// every length up to 300 at every start alignment, and when continued from a nonzero CRC.
    @Test func hardwareAndSoftware_agreeAtEveryLengthAndAlignment() {
        var random = SeededGenerator(seed: 0x5E42)
        let data = random.bytes(count: 320)
        data.withUnsafeBytes { all in
            for offset in 0..<8 {
                for length in 0...300 {
                    let piece = UnsafeRawBufferPointer(rebasing: all[offset..<(offset + length)])
                    #expect(CRC32C.checksum(piece) == CRC32C.softwareChecksum(piece), "offset \(offset), length \(length)")
                    #expect(CRC32C.checksum(piece, continuing: 0xDEAD_BEEF) == CRC32C.softwareChecksum(piece, continuing: 0xDEAD_BEEF))
                }
            }
        }
        // The software path alone still meets the standard check value.
        let check = Array("123456789".utf8).withUnsafeBytes { CRC32C.softwareChecksum($0) }
        #expect(check == 0xE306_9283)
    }

    @Test func checksum_ofNonContiguousCollection_matchesArray() {
        let data: [UInt8] = Array("the quick brown fox jumps over the lazy dog".utf8)
        let lazy = data.lazy.map { $0 }  // not contiguous: takes the copying path
        #expect(CRC32C.checksum(lazy) == CRC32C.checksum(data))
    }

    private static func reference(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return ~crc
    }
}
