import Foundation
import Testing
import TernBroker
import TernCore
import TernStorage
import TernTestKit

@Suite struct CommandCodecTests {
    static let kinds = 27

    @Test func everyKind_roundTrips_overManySeeds() throws {
        for seed in UInt64(1)...200 {
            var random = SeededGenerator(seed: seed)
            let commands = CommandSamples.everyKind(&random)
            #expect(Set(commands.map(\.kind)).count == Self.kinds, "every kind is sampled")
            for command in commands {
                let envelope = CommandEnvelope(time: Timestamp(milliseconds: random.next() % 2_000_000_000_000), command: command)
                let decoded = try CommandCodec.decode(CommandCodec.encode(envelope))
                #expect(decoded == envelope, "seed \(seed), kind \(command.kind)")
            }
        }
    }

    @Test func textBodies_areCompressed() throws {
        let body = Array(String(repeating: "2026-12-01 09:00:00 INFO dfs.DataNode: Receiving block blk_42 ", count: 40).utf8)
        let command = Command.send(try QueueName("logs"), [OutgoingMessage(body: body)], idSeed: 7)
        let encoded = CommandCodec.encode(CommandEnvelope(time: Timestamp(milliseconds: 1), command: command))
        #expect(encoded.count < body.count / 2, "snappy pays on log lines: \(encoded.count) bytes for a \(body.count)-byte body")
    }

    /// Every prefix of every record is refused with a clear error, never a crash.
    @Test func truncatedRecords_areRefused() throws {
        var random = SeededGenerator(seed: 99)
        for command in CommandSamples.everyKind(&random) {
            let payload = try RecordCodec.decode(CommandCodec.encode(CommandEnvelope(time: Timestamp(milliseconds: 5), command: command)))
            for length in 0..<payload.count {
                // Re-wrapped with a valid checksum, so that the decoder's own bounds checks are exercised.
                #expect(throws: StorageError.self, "\(command.kind) cut at \(length)") {
                    try CommandCodec.decode(RecordCodec.encode(Array(payload.prefix(length)), compression: .never))
                }
            }
            #expect(throws: StorageError.self) {
                try CommandCodec.decode(RecordCodec.encode(payload + [0], compression: .never))
            }
        }
    }

    /// A flipped bit is caught by the checksum; with the checksum recomputed, the decoder
    /// either refuses the record or decodes some command — it never traps.
    @Test func mutatedRecords_neverCrash() throws {
        var random = SeededGenerator(seed: 2026)
        var refused = 0
        var decoded = 0
        for _ in 0..<60 {
            for command in CommandSamples.everyKind(&random) {
                let record = CommandCodec.encode(CommandEnvelope(time: Timestamp(milliseconds: 9), command: command))
                var flipped = record
                let bit = Int(random.next() % UInt64(record.count * 8))
                flipped[bit / 8] ^= UInt8(1 << (bit % 8))
                #expect(throws: StorageError.self) { try CommandCodec.decode(flipped) }
                var payload = try RecordCodec.decode(record)
                for _ in 0..<Int(random.next() % 4 + 1) {
                    let at = Int(random.next() % UInt64(payload.count))
                    payload[at] = UInt8(truncatingIfNeeded: random.next())
                }
                do {
                    _ = try CommandCodec.decode(RecordCodec.encode(payload, compression: .never))
                    decoded += 1
                } catch {
                    refused += 1
                }
            }
        }
        #expect(refused > 0)
        #expect(refused + decoded == 60 * Self.kinds)
    }

    @Test func unknownVersionAndKind_areRefused() throws {
        let payload = try RecordCodec.decode(CommandCodec.encode(CommandEnvelope(time: Timestamp(milliseconds: 1), command: .tick(limit: 1))))
        var future = payload
        future[0] = CommandCodec.currentVersion + 1
        #expect(throws: StorageError.self) { try CommandCodec.decode(RecordCodec.encode(future, compression: .never)) }
        var unknownKind = payload
        unknownKind[1] = 200
        #expect(throws: StorageError.self) { try CommandCodec.decode(RecordCodec.encode(unknownKind, compression: .never)) }
    }

    /// Records written by format version 1 (committed in `Fixtures/commands-v1.hex`) decode to
    /// the commands they were made from, whatever version this build writes.
    /// The file holds the 22 kinds version 1 knew (``CommandSamples/version1Kinds``); kinds
    /// added since (`change_visibility_batch`) were never written as version 1.
    @Test func version1Fixtures_stillDecode() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/commands-v1.hex")
        var random = SeededGenerator(seed: 1)
        let expected = CommandSamples.everyKind(&random, attributes: false).prefix(CommandSamples.version1Kinds).enumerated().map { index, command in
            CommandEnvelope(time: Timestamp(milliseconds: 1_764_000_000_000 + UInt64(index)), command: command)
        }
        // Written by a version-1 build; rewriting needs that build (`git show f1e97ea`).
        if ProcessInfo.processInfo.environment["TERN_WRITE_FIXTURES"] == "1" && CommandCodec.currentVersion == 1 {
            let lines = expected.map { CommandCodec.encode($0).map { String(format: "%02x", $0) }.joined() }
            try (lines.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
        }
        try Self.check(fixture: url, expected)
    }

    /// Records written by format version 2 (`Fixtures/commands-v2.hex`: one of each of the 27
    /// kinds of that version (the last three, tags 25–27, added without a new version: a
    /// build that does not know a tag refuses the record), messages with attributes) decode to the commands they were made
    /// from. `TERN_WRITE_FIXTURES=1` rewrites the file, only while this build writes version 2.
    @Test func version2Fixtures_stillDecode() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/commands-v2.hex")
        var random = SeededGenerator(seed: 2)
        let expected = CommandSamples.everyKind(&random).prefix(CommandSamples.version2Kinds).enumerated().map { index, command in
            CommandEnvelope(time: Timestamp(milliseconds: 1_764_590_000_000 + UInt64(index)), command: command)
        }
        if ProcessInfo.processInfo.environment["TERN_WRITE_FIXTURES"] == "1" && CommandCodec.currentVersion == 2 {
            let lines = expected.map { CommandCodec.encode($0).map { String(format: "%02x", $0) }.joined() }
            try (lines.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
        }
        try Self.check(fixture: url, expected)
    }

    static func check(fixture url: URL, _ expected: [CommandEnvelope]) throws {
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == expected.count)
        for (line, envelope) in zip(lines, expected) {
            var bytes = [UInt8]()
            var index = line.startIndex
            while index < line.endIndex {
                let next = line.index(index, offsetBy: 2)
                bytes.append(UInt8(line[index..<next], radix: 16)!)
                index = next
            }
            #expect(try CommandCodec.decode(bytes) == envelope, "\(envelope.command.kind)")
        }
    }
}
