import Foundation
import Testing
import TernStorage
import TernTestKit

@Suite struct SnappyTests {
    static func logLines(count: Int) -> [UInt8] {
        var text = ""
        for i in 0..<count {
            text += #"{"ts":"2025-01-01T00:00:\#(i % 60)Z","level":"info","service":"orders","msg":"order \#(i) accepted","latency_ms":\#(i % 97)}"# + "\n"
        }
        return Array(text.utf8)
    }

    @Test(arguments: [0, 1, 2, 100, 65_536, 1 << 20])
    func compressThenDecompress_ofRandomBytes_returnsInput(count: Int) throws {
        var random = SeededGenerator(seed: UInt64(count) &+ 1)
        let input = random.bytes(count: count)
        #expect(try Snappy.decompress(Snappy.compress(input)) == input)
    }

    @Test func compressThenDecompress_ofLogLines_returnsInputAndShrinksIt() throws {
        let input = Self.logLines(count: 500)
        let compressed = Snappy.compress(input)
        #expect(compressed.count < input.count / 2)
        #expect(try Snappy.decompress(compressed) == input)
    }

    @Test func compressThenDecompress_ofOneRepeatedByte_returnsInput() throws {
        let input = [UInt8](repeating: 0x61, count: 100_000)
        let compressed = Snappy.compress(input)
        #expect(compressed.count < 10_000)
        #expect(try Snappy.decompress(compressed) == input)
    }

    @Test(arguments: [
        ("empty input", [UInt8]()),
        ("unterminated length varint", [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
        ("length 10 but no data", [0x0A]),
        ("literal longer than the input", [0x05, 0x10, 0x61]),
        ("copy before the start of the output", [0x04, 0x01, 0x05, 0x00]),
        ("length above 1 GiB", [0x80, 0x80, 0x80, 0x80, 0x08]),
    ] as [(String, [UInt8])])
    func decompress_ofInvalidBlock_throwsCorruptRecord(_ situation: String, input: [UInt8]) {
        expectCorruptRecord { try Snappy.decompress(input) }
    }

    @Test func decompress_ofTruncatedBlock_throwsCorruptRecordAtEveryLength() throws {
        let compressed = Snappy.compress(Self.logLines(count: 20))
        for length in 0..<compressed.count {
            expectCorruptRecord("length \(length)") { try Snappy.decompress(Array(compressed.prefix(length))) }
        }
    }

    @Test func decompress_withLengthHeaderLargerThanContent_throwsCorruptRecord() throws {
        let input = Self.logLines(count: 3)
        var compressed = Snappy.compress(input)
        // Re-encode the varint header with one more byte than the content produces.
        var reader = 0, shift = 0, length = 0, headerBytes = 0
        repeat {
            reader = Int(compressed[headerBytes])
            length |= (reader & 0x7F) << shift
            shift += 7
            headerBytes += 1
        } while reader & 0x80 != 0
        #expect(length == input.count)
        var header = [UInt8](), value = length + 1
        while value >= 0x80 {
            header.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        header.append(UInt8(value))
        compressed.replaceSubrange(0..<headerBytes, with: header)
        expectCorruptRecord { try Snappy.decompress(compressed) }
    }
}
