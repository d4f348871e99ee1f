import Testing
import TernStorage
import TernTestKit

/// Fixed-width big-endian keys sort, byte by byte, in numeric order: the property every LMDB key
/// layout of Tern relies on (cursor scans in sequence order, `MDB_APPEND`). The layouts below
/// mirror `QueueSchema` (which lives in TernBroker and is tested directly in TernBrokerTests).
@Suite struct BigEndianTests {
    /// Values that straddle byte boundaries, mixed with uniform ones.
    static func interesting<T: FixedWidthInteger & UnsignedInteger>(_ random: inout SeededGenerator, _: T.Type) -> T {
        switch Int.random(in: 0..<4, using: &random) {
        case 0: return [0, 1, 0x7F, 0x80, 0xFF, 0x100, T.max, T.max - 1, T.max >> 1, (T.max >> 1) + 1].randomElement(using: &random)!
        case 1: return T(truncatingIfNeeded: 1 as UInt64) << T(Int.random(in: 0..<T.bitWidth, using: &random))
        default: return T.random(in: T.min...T.max, using: &random)
        }
    }

    static func messageKey(queue: UInt32, partition: UInt32 = 0, sequence: UInt64) -> [UInt8] {
        var writer = BigEndianWriter()
        writer.write(queue)
        writer.write(partition)
        writer.write(sequence)
        return writer.bytes
    }

    static func readyKey(queue: UInt32, priority: UInt8, sequence: UInt64) -> [UInt8] {
        var writer = BigEndianWriter()
        writer.write(queue)
        writer.write(9 - priority)
        writer.write(sequence)
        return writer.bytes
    }

    static func timeKey(time: UInt64, queue: UInt32, sequence: UInt64) -> [UInt8] {
        var writer = BigEndianWriter()
        writer.write(time)
        writer.write(queue)
        writer.write(sequence)
        return writer.bytes
    }

    static func order<T: Comparable>(_ a: T, _ b: T) -> Int { a < b ? -1 : a == b ? 0 : 1 }

    static func order(_ a: [UInt8], _ b: [UInt8]) -> Int {
        a.lexicographicallyPrecedes(b) ? -1 : a == b ? 0 : 1
    }

    @Test func writer_ofIntegers_producesBigEndianBytes() {
        var writer = BigEndianWriter()
        writer.write(UInt8(0x01))
        writer.write(UInt16(0x0203))
        writer.write(UInt32(0x0405_0607))
        writer.write(UInt64(0x0809_0A0B_0C0D_0E0F))
        writer.write([0x10, 0x11] as [UInt8])
        writer.writeLengthPrefixed([0xAA])
        #expect(writer.bytes == Array(0x01...0x11) + [0, 0, 0, 1, 0xAA])
    }

    @Test func messageKeyLayout_byteOrder_equalsTupleOrder() {
        var random = SeededGenerator(seed: 1)
        for _ in 0..<20_000 {
            let a = (Self.interesting(&random, UInt32.self), Self.interesting(&random, UInt64.self))
            // Half the pairs share the queue, so the sequence decides.
            let b = (Bool.random(using: &random) ? a.0 : Self.interesting(&random, UInt32.self), Self.interesting(&random, UInt64.self))
            let expected = a.0 != b.0 ? Self.order(a.0, b.0) : Self.order(a.1, b.1)
            let actual = Self.order(Self.messageKey(queue: a.0, sequence: a.1), Self.messageKey(queue: b.0, sequence: b.1))
            #expect(actual == expected, "\(a) vs \(b)")
        }
    }

    @Test func readyKeyLayout_byteOrder_isQueueThenHigherPriorityThenSequence() {
        var random = SeededGenerator(seed: 2)
        for _ in 0..<20_000 {
            let a = (Self.interesting(&random, UInt32.self), UInt8.random(in: 0...9, using: &random), Self.interesting(&random, UInt64.self))
            let b = (Bool.random(using: &random) ? a.0 : Self.interesting(&random, UInt32.self),
                     UInt8.random(in: 0...9, using: &random), Self.interesting(&random, UInt64.self))
            let expected = a.0 != b.0 ? Self.order(a.0, b.0) : a.1 != b.1 ? Self.order(b.1, a.1) : Self.order(a.2, b.2)
            let actual = Self.order(Self.readyKey(queue: a.0, priority: a.1, sequence: a.2),
                                    Self.readyKey(queue: b.0, priority: b.1, sequence: b.2))
            #expect(actual == expected, "\(a) vs \(b)")
        }
    }

    @Test func timeKeyLayout_byteOrder_isTimeThenQueueThenSequence() {
        var random = SeededGenerator(seed: 3)
        for _ in 0..<20_000 {
            let a = (Self.interesting(&random, UInt64.self), Self.interesting(&random, UInt32.self), Self.interesting(&random, UInt64.self))
            let sameTime = Bool.random(using: &random), sameQueue = Bool.random(using: &random)
            let b = (sameTime ? a.0 : Self.interesting(&random, UInt64.self),
                     sameTime && sameQueue ? a.1 : Self.interesting(&random, UInt32.self),
                     Self.interesting(&random, UInt64.self))
            let expected = a.0 != b.0 ? Self.order(a.0, b.0) : a.1 != b.1 ? Self.order(a.1, b.1) : Self.order(a.2, b.2)
            let actual = Self.order(Self.timeKey(time: a.0, queue: a.1, sequence: a.2), Self.timeKey(time: b.0, queue: b.1, sequence: b.2))
            #expect(actual == expected, "\(a) vs \(b)")
        }
    }

    /// Sorting many keys by bytes yields the numeric order of their tuples.
    @Test func sortedKeys_decodeToSortedTuples() throws {
        var random = SeededGenerator(seed: 4)
        let keys = (0..<5_000).map { _ in
            Self.messageKey(queue: UInt32.random(in: 0...3, using: &random), sequence: Self.interesting(&random, UInt64.self))
        }
        var previous: (UInt32, UInt32, UInt64)?
        for key in keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            var reader = BigEndianReader(key)
            let tuple = (try reader.readUInt32(), try reader.readUInt32(), try reader.readUInt64())
            #expect(reader.remaining == 0)
            if let previous { #expect(previous <= tuple) }
            previous = tuple
        }
    }

    @Test func reader_ofWrittenValues_returnsThemInOrder() throws {
        var random = SeededGenerator(seed: 5)
        for _ in 0..<1_000 {
            let a = UInt8.random(in: 0...255, using: &random), b = UInt16.random(in: 0...UInt16.max, using: &random)
            let c = Self.interesting(&random, UInt32.self), d = Self.interesting(&random, UInt64.self)
            let blob = random.bytes(count: Int.random(in: 0...40, using: &random))
            var writer = BigEndianWriter()
            writer.write(a); writer.write(b); writer.write(c); writer.write(d); writer.writeLengthPrefixed(blob)
            var reader = BigEndianReader(writer.bytes)
            #expect(try reader.readUInt8() == a)
            #expect(try reader.readUInt16() == b)
            #expect(try reader.readUInt32() == c)
            #expect(try reader.readUInt64() == d)
            #expect(try reader.readLengthPrefixed() == blob)
            #expect(reader.remaining == 0)
        }
    }

    @Test func reader_ofTruncatedInput_throwsCorruptRecordAtEveryLength() {
        var writer = BigEndianWriter()
        writer.write(UInt32(7)); writer.write(UInt64(9)); writer.writeLengthPrefixed([1, 2, 3])
        let bytes = writer.bytes
        for length in 0..<bytes.count {
            expectCorruptRecord("length \(length)") {
                var reader = BigEndianReader(Array(bytes.prefix(length)))
                return (try reader.readUInt32(), try reader.readUInt64(), try reader.readLengthPrefixed())
            }
        }
    }

    @Test func readLengthPrefixed_withLengthBeyondInput_throwsCorruptRecord() {
        var reader = BigEndianReader([0xFF, 0xFF, 0xFF, 0xFF, 1, 2])
        expectCorruptRecord { try reader.readLengthPrefixed() }
    }

    @Test func readBytes_ofNegativeCount_throwsCorruptRecord() {
        var reader = BigEndianReader([1, 2, 3])
        expectCorruptRecord { try reader.readBytes(-1) }
    }
}
