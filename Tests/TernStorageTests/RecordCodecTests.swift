import Testing
import TernStorage
import TernTestKit

@Suite struct RecordCodecTests {
    static let compressible = SnappyTests.logLines(count: 400)
    static let incompressible: [UInt8] = {
        var random = SeededGenerator(seed: 99)
        return random.bytes(count: 4_096)
    }()

    static func isCorruptRecord(_ error: any Error) -> Bool {
        (error as? StorageError)?.code == .corruptRecord
    }

    /// Builds an envelope by hand (independently of `encode`) with a valid checksum.
    static func handmade(version: UInt8, flags: UInt8, payload: [UInt8]) -> [UInt8] {
        let body = [version, flags] + payload
        let crc = CRC32C.checksum(body)
        return [UInt8(crc >> 24), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc & 0xFF)] + body
    }

    // MARK: Round trips

    @Test(arguments: [
        ("empty", [UInt8]()),
        ("one byte", [0x2A]),
        ("small text", Array("hello, tern".utf8)),
        ("compressible", RecordCodecTests.compressible),
        ("incompressible", RecordCodecTests.incompressible),
    ] as [(String, [UInt8])])
    func encodeThenDecode_returnsPayload(_ situation: String, payload: [UInt8]) throws {
        for compression in [RecordCodec.Compression.never, .default, .whenSmaller(minimumBytes: 0)] {
            let record = RecordCodec.encode(payload, compression: compression)
            #expect(try RecordCodec.decode(record) == payload, "\(compression)")
        }
    }

    @Test func encode_writesDocumentedHeader() {
        let payload = Array("abc".utf8)
        let record = RecordCodec.encode(payload)
        #expect(record.count == RecordCodec.headerSize + 3)
        #expect(record[4] == RecordCodec.currentVersion)
        #expect(record[5] == 0)
        #expect(Array(record[6...]) == payload)
        let crc = CRC32C.checksum(record[4...])
        #expect(Array(record[0..<4]) == [UInt8(crc >> 24), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc & 0xFF)])
        #expect(record == Self.handmade(version: 1, flags: 0, payload: payload))
    }

    // MARK: Compression decision

    @Test func encode_ofCompressiblePayload_setsCompressedFlagAndShrinks() {
        let record = RecordCodec.encode(Self.compressible)
        #expect(record[5] & 1 == 1)
        #expect(record.count < Self.compressible.count / 2)
    }

    @Test func encode_ofIncompressiblePayload_storesItRaw() {
        let record = RecordCodec.encode(Self.incompressible)
        #expect(record[5] == 0)
        #expect(record.count == Self.incompressible.count + RecordCodec.headerSize)
    }

    @Test func encode_withCompressionNever_storesCompressiblePayloadRaw() {
        let record = RecordCodec.encode(Self.compressible, compression: .never)
        #expect(record[5] == 0)
        #expect(Array(record[6...]) == Self.compressible)
    }

    @Test func encode_ofPayloadBelowMinimum_storesItRawEvenWhenCompressible() {
        let payload = [UInt8](repeating: 0, count: 255)
        #expect(RecordCodec.encode(payload, compression: .whenSmaller(minimumBytes: 256))[5] == 0)
        #expect(RecordCodec.encode(payload + [0], compression: .whenSmaller(minimumBytes: 256))[5] == 1)
    }

    /// Payloads from fully random to fully repetitive: the flag is set exactly when snappy saves at
    /// least one eighth, and the sweep crosses that threshold (both outcomes occur).
    @Test func encode_compressesExactlyWhenSavingIsAtLeastOneEighth() throws {
        var random = SeededGenerator(seed: 8)
        var outcomes = Set<Bool>()
        for randomBytes in stride(from: 0, through: 2_000, by: 25) {
            let payload = random.bytes(count: randomBytes) + [UInt8](repeating: 0x20, count: 2_000 - randomBytes)
            let snappySize = Snappy.compress(payload).count
            let pays = snappySize <= payload.count - payload.count / 8
            let record = RecordCodec.encode(payload)
            #expect((record[5] & 1 == 1) == pays, "random prefix \(randomBytes): snappy \(snappySize) of \(payload.count)")
            #expect(record.count == RecordCodec.headerSize + (pays ? snappySize : payload.count))
            #expect(try RecordCodec.decode(record) == payload)
            outcomes.insert(pays)
        }
        #expect(outcomes == [true, false])
    }

    // MARK: Corruption

    @Test(arguments: [("raw", false), ("compressed", true)])
    func decode_withAnyByteChanged_throwsCorruptRecord(_ situation: String, compressed: Bool) {
        let payload = compressed ? Array(Self.compressible.prefix(2_000)) : Array("a small message body".utf8)
        let record = RecordCodec.encode(payload)
        #expect((record[5] == 1) == compressed)
        for index in record.indices {
            for mask: UInt8 in [0x01, 0x80, 0xFF] {
                var damaged = record
                damaged[index] ^= mask
                expectCorruptRecord("byte \(index) ^ \(mask)") { try RecordCodec.decode(damaged) }
            }
        }
    }

    @Test func decode_ofChangedPayload_reportsChecksumMismatch() {
        var record = RecordCodec.encode(Array("payload".utf8))
        record[8] ^= 0x10
        expectCorruptRecord(mentioning: "checksum") { try RecordCodec.decode(record) }
    }

    @Test(arguments: [("raw", false), ("compressed", true)])
    func decode_ofTruncatedRecord_throwsCorruptRecordAtEveryShorterLength(_ situation: String, compressed: Bool) {
        let payload = compressed ? Array(Self.compressible.prefix(1_000)) : Array("twenty bytes of body".utf8)
        let record = RecordCodec.encode(payload)
        #expect((record[5] == 1) == compressed)
        for length in 0..<record.count {
            expectCorruptRecord("length \(length)") { try RecordCodec.decode(Array(record.prefix(length))) }
        }
    }

    @Test(arguments: [0, 2, 3, 0xFF] as [UInt8])
    func decode_ofUnknownVersion_throwsCorruptRecord(version: UInt8) {
        let record = Self.handmade(version: version, flags: 0, payload: Array("body".utf8))
        expectCorruptRecord(mentioning: "version") { try RecordCodec.decode(record) }
    }

    @Test(arguments: [0x02, 0x03, 0x80] as [UInt8])
    func decode_ofUnknownFlags_throwsCorruptRecord(flags: UInt8) {
        let record = Self.handmade(version: RecordCodec.currentVersion, flags: flags, payload: Array("body".utf8))
        expectCorruptRecord { try RecordCodec.decode(record) }
    }

    @Test func decode_ofCompressedFlagOverInvalidSnappy_throwsCorruptRecord() {
        let record = Self.handmade(version: RecordCodec.currentVersion, flags: 1, payload: [0x0A, 0x00])
        expectCorruptRecord { try RecordCodec.decode(record) }
    }

    @Test func decode_ofHandmadeValidRecords_returnsPayload() throws {
        let payload = Self.compressible
        #expect(try RecordCodec.decode(Self.handmade(version: 1, flags: 0, payload: payload)) == payload)
        #expect(try RecordCodec.decode(Self.handmade(version: 1, flags: 1, payload: Snappy.compress(payload))) == payload)
    }

    // MARK: Fuzz

    /// 10,000 records, most of them damaged at random (bit flips, byte changes, truncation,
    /// extension, splices, replacement by noise): decoding never crashes and either returns the
    /// original payload exactly or throws `corruptRecord`.
    @Test func decode_ofRandomlyMutatedRecords_returnsOriginalOrThrowsCorruptRecord() {
        var random = SeededGenerator(seed: 0x7E57_F022)
        var decodedIntact = 0, rejected = 0
        for iteration in 0..<10_000 {
            let payload = Self.randomPayload(&random)
            let compression: RecordCodec.Compression = Bool.random(using: &random) ? .default : .whenSmaller(minimumBytes: 0)
            let original = RecordCodec.encode(payload, compression: compression)
            var record = original
            let mutation = Int.random(in: 0..<8, using: &random)
            switch mutation {
            case 0:
                break  // untouched
            case 1:  // flip 1–3 random bits
                for _ in 0..<Int.random(in: 1...3, using: &random) {
                    let index = Int.random(in: 0..<record.count, using: &random)
                    record[index] ^= 1 << UInt8.random(in: 0..<8, using: &random)
                }
            case 2:  // overwrite 1–8 random bytes
                for _ in 0..<Int.random(in: 1...8, using: &random) {
                    record[Int.random(in: 0..<record.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                }
            case 3:  // truncate
                record.removeLast(Int.random(in: 1...record.count, using: &random))
            case 4:  // extend with noise
                record += random.bytes(count: Int.random(in: 1...64, using: &random))
            case 5:  // splice: remove a run from the middle
                let start = Int.random(in: 0..<record.count, using: &random)
                let end = Int.random(in: start...record.count, using: &random)
                record.removeSubrange(start..<end)
            case 6:  // replace by noise of a random length
                record = random.bytes(count: Int.random(in: 0...300, using: &random))
            default:  // recompute the checksum after damaging the version/flags/payload (passes the CRC)
                let index = Int.random(in: 4..<record.count, using: &random)
                record[index] ^= UInt8.random(in: 1...255, using: &random)
                let crc = CRC32C.checksum(record[4...])
                record[0] = UInt8(crc >> 24); record[1] = UInt8(crc >> 16 & 0xFF)
                record[2] = UInt8(crc >> 8 & 0xFF); record[3] = UInt8(crc & 0xFF)
            }
            do {
                let decoded = try RecordCodec.decode(record)
                if mutation == 7 {
                    // A damaged payload under a fresh checksum is undetectable by design; the codec
                    // must still not crash, and a raw record returns exactly what is stored.
                    if record[5] == 0 { #expect(decoded == Array(record[6...]), "iteration \(iteration)") }
                } else {
                    #expect(decoded == payload, "iteration \(iteration), mutation \(mutation): decoded a different payload")
                    decodedIntact += 1
                }
            } catch {
                #expect(Self.isCorruptRecord(error), "iteration \(iteration): unexpected error \(error)")
                #expect(mutation != 0 || record != original, "iteration \(iteration): an untouched record was rejected")
                rejected += 1
            }
        }
        #expect(decodedIntact > 1_000)
        #expect(rejected > 5_000)
    }

    static func randomPayload(_ random: inout SeededGenerator) -> [UInt8] {
        let length = Int.random(in: 0...2_000, using: &random)
        switch Int.random(in: 0..<3, using: &random) {
        case 0: return random.bytes(count: length)
        case 1: return [UInt8](repeating: UInt8.random(in: 0...255, using: &random), count: length)
        default: return Array(compressible.prefix(length))
        }
    }
}
