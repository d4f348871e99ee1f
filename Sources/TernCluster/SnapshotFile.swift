import Foundation
public import TernStorage

/// A replica's state machine as one file: every entry of its LMDB databases and the group's
/// applied index, read in one read transaction (CLUSTER.md, "catch-up": streamed from an LMDB
/// read transaction), so the file is one consistent state. A leader writes it to serve a
/// follower that needs a snapshot; the follower receives it in chunks (`SnapshotChunk`),
/// checks it, and installs it in one write transaction (decision 117).
///
/// Layout (version 1, integers big-endian; `docs/storage.md`, "Snapshot files"):
///
/// ```
/// "TSNP" · version u8 (1) · group u64 · applied index u64 · database count u16
/// per database: name (u16 length · UTF-8) · entry count u64 ·
///               entries in key order: (key u32 length · key · value u32 length · value)…
/// ```
///
/// The file carries no checksum of its own: its CRC32C (Castagnoli) and its size travel in
/// every `SnapshotChunk` answer, and the receiver checks both before installing.
public enum SnapshotFile {
    /// What identifies one snapshot file.
    public struct Info: Sendable, Hashable {
        public var group: UInt64
        /// The group's applied index the state is at (≥ the Raft snapshot's index it answers).
        public var applied: UInt64
        /// The file's size in bytes.
        public var bytes: UInt64
        /// CRC32C of the whole file.
        public var checksum: UInt32

        public init(group: UInt64, applied: UInt64, bytes: UInt64, checksum: UInt32) {
            self.group = group
            self.applied = applied
            self.bytes = bytes
            self.checksum = checksum
        }
    }

    static let magic: [UInt8] = Array("TSNP".utf8)
    static let version: UInt8 = 1
    /// The largest key or value a file may hold (LMDB's values are at most 4 GiB; ours far less).
    static let maxRecordBytes = 1 << 30

    /// Writes `databases` and `group`'s applied index, as of one read transaction, to `path`
    /// (replacing any file there) and syncs it.
    ///
    /// Blocking: it reads the whole state and writes it out; call it off the cooperative
    /// thread pool. The read transaction is held while the file is written (LMDB keeps the
    /// pages it sees meanwhile, so the map may grow while a large state is copied).
    /// - Returns: the file's ``Info``.
    /// - Throws: ``StorageError`` from LMDB or from writing the file (`fileSystem`).
    public static func write(storage: Storage, group: UInt64, databases: [String], to path: String) throws -> Info {
        let logStore = RaftLogStore(storage: storage)
        let file = try OutputFile(path: path)
        var closed = false
        defer { if !closed { file.close() } }
        let applied = try storage.read { txn -> UInt64 in
            let applied = try logStore.loadApplied(group: group, in: txn)
            var header = BigEndianWriter(capacity: 32)
            header.write(magic); header.write(version); header.write(group); header.write(applied)
            header.write(UInt16(databases.count))
            try file.write(header.bytes)
            for name in databases {
                let database = storage.database(name)
                let count = try txn.statistics(database).entries
                var w = BigEndianWriter(capacity: 16 + name.utf8.count)
                w.write(UInt16(name.utf8.count)); w.write(Array(name.utf8)); w.write(UInt64(count))
                try file.write(w.bytes)
                var written = 0
                try txn.withCursor(database) { cursor in
                    var item = try cursor.first()
                    while let (key, value) = item {
                        var r = BigEndianWriter(capacity: 8 + key.count + value.count)
                        r.write(UInt32(key.count)); r.write(key); r.write(UInt32(value.count)); r.write(value)
                        try file.write(r.bytes)
                        written += 1
                        item = try cursor.next()
                    }
                }
                precondition(written == count, "a read transaction saw \(written) entries of \(name), its statistics \(count)")
            }
            return applied
        }
        try file.sync()
        file.close()
        closed = true
        return Info(group: group, applied: applied, bytes: file.bytes, checksum: file.checksum)
    }

    /// Checks that the file at `path` is `expected`: its size and CRC32C match, and its header
    /// names the same group and applied index.
    /// - Throws: ``StorageError`` `corruptRecord` on any mismatch ("checksum mismatch" when the
    ///   CRC32C differs), `fileSystem` when the file cannot be read.
    public static func verify(path: String, expected: Info) throws {
        let input = try InputFile(path: path)
        defer { input.close() }
        var crc: UInt32 = 0
        var size: UInt64 = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = try input.read(into: &buffer)
            if n == 0 { break }
            crc = buffer.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[..<n]), continuing: crc) }
            size += UInt64(n)
        }
        guard size == expected.bytes else {
            throw StorageError(.corruptRecord, "snapshot file has \(size) bytes, \(expected.bytes) were announced")
        }
        guard crc == expected.checksum else {
            throw StorageError(.corruptRecord, "snapshot file checksum mismatch: CRC32C \(hex(crc)), \(hex(expected.checksum)) was announced")
        }
        let header = try InputFile(path: path)
        defer { header.close() }
        var reader = BufferedReader(file: header)
        let (group, applied) = try readHeader(&reader)
        guard group == expected.group, applied == expected.applied else {
            throw StorageError(.corruptRecord, "snapshot file is of group \(group) at \(applied), \(expected.group) at \(expected.applied) was announced")
        }
    }

    /// Replaces, in `txn`, the contents of `databases` with the file's and stores its applied
    /// index for `group`: the whole state changes in this one transaction or not at all.
    /// - Parameter planted: test hook, called with the count of entries written so far after
    ///   each entry (a throw aborts the transaction: a crash in the middle of an install).
    /// - Returns: the applied index the state is at.
    /// - Throws: ``StorageError`` `corruptRecord` (a malformed file, another group's, a
    ///   database missing from or foreign to `databases`), `fileSystem`, or what LMDB throws.
    public static func install(path: String, group: UInt64, databases: [String], storage: Storage, in txn: WriteTransaction,
                               planted: (@Sendable (Int) throws -> Void)? = nil) throws -> UInt64 {
        let input = try InputFile(path: path)
        defer { input.close() }
        var reader = BufferedReader(file: input)
        let (fileGroup, applied) = try readHeader(&reader)
        guard fileGroup == group else { throw StorageError(.corruptRecord, "snapshot file is of group \(fileGroup), not \(group)") }
        let count = Int(try reader.readInteger(UInt16.self))
        guard count == databases.count else {
            throw StorageError(.corruptRecord, "snapshot file holds \(count) databases, this node has \(databases.count)")
        }
        var remaining = Set(databases)
        for name in databases { try txn.clear(storage.database(name)) }
        var written = 0
        for _ in 0..<count {
            let nameLength = Int(try reader.readInteger(UInt16.self))
            let name = String(decoding: try reader.read(nameLength), as: UTF8.self)
            guard remaining.remove(name) != nil else {
                throw StorageError(.corruptRecord, "snapshot file holds database \(name), unknown here or repeated")
            }
            let database = storage.database(name)
            let entries = try reader.readInteger(UInt64.self)
            var previous: [UInt8]?
            for _ in 0..<entries {
                let keyLength = Int(try reader.readInteger(UInt32.self))
                guard keyLength <= maxRecordBytes else { throw StorageError(.corruptRecord, "snapshot key of \(keyLength) bytes") }
                let key = try reader.read(keyLength)
                let valueLength = Int(try reader.readInteger(UInt32.self))
                guard valueLength <= maxRecordBytes else { throw StorageError(.corruptRecord, "snapshot value of \(valueLength) bytes") }
                let value = try reader.read(valueLength)
                // Keys come in LMDB's order, so each goes at the end of its B-tree.
                guard previous.map({ $0.lexicographicallyPrecedes(key) }) ?? true else {
                    throw StorageError(.corruptRecord, "snapshot keys of \(name) are not in order")
                }
                try txn.put(database, key, value, append: true)
                previous = key
                written += 1
                try planted?(written)
            }
        }
        guard try reader.atEnd() else { throw StorageError(.corruptRecord, "snapshot file has bytes after its last database") }
        try RaftLogStore(storage: storage).saveApplied(group: group, applied, in: txn)
        return applied
    }

    private static func readHeader(_ reader: inout BufferedReader) throws -> (group: UInt64, applied: UInt64) {
        guard try reader.read(4) == magic else { throw StorageError(.corruptRecord, "not a snapshot file (bad magic)") }
        let version = try reader.readInteger(UInt8.self)
        guard version == Self.version else { throw StorageError(.corruptRecord, "snapshot file version \(version) is not supported") }
        return (try reader.readInteger(UInt64.self), try reader.readInteger(UInt64.self))
    }

    static func hex(_ value: UInt32) -> String { "0x" + String(value, radix: 16) }
}

// MARK: - Files

/// A file written through a 1 MiB buffer, its CRC32C and size counted as it goes.
final class OutputFile {
    private let fd: Int32
    let path: String
    private var buffer: [UInt8] = []
    private(set) var checksum: UInt32 = 0
    private(set) var bytes: UInt64 = 0

    /// Creates (or truncates) `path`.
    init(path: String) throws {
        self.path = path
        fd = Foundation.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StorageError(.fileSystem, "cannot create \(path): \(String(cString: strerror(errno)))") }
        buffer.reserveCapacity(1 << 20)
    }

    func write(_ data: [UInt8]) throws {
        buffer.append(contentsOf: data)
        if buffer.count >= 1 << 20 { try flush() }
    }

    func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { raw in
            checksum = CRC32C.checksum(raw, continuing: checksum)
            var done = 0
            while done < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw StorageError(.fileSystem, "cannot write \(path): \(String(cString: strerror(errno)))")
                }
                done += n
            }
        }
        bytes += UInt64(buffer.count)
        buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes and fsyncs.
    func sync() throws {
        try flush()
        guard fsync(fd) == 0 else { throw StorageError(.fileSystem, "cannot sync \(path): \(String(cString: strerror(errno)))") }
    }

    func close() { _ = Foundation.close(fd) }
}

/// A file read sequentially, or at an offset.
final class InputFile {
    private let fd: Int32
    let path: String

    init(path: String) throws {
        self.path = path
        fd = Foundation.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StorageError(.fileSystem, "cannot open \(path): \(String(cString: strerror(errno)))") }
    }

    /// Reads up to `buffer.count` bytes at the current position; 0 at the end.
    func read(into buffer: inout [UInt8]) throws -> Int {
        while true {
            let n = buffer.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress!, $0.count) }
            if n >= 0 { return n }
            if errno != EINTR { throw StorageError(.fileSystem, "cannot read \(path): \(String(cString: strerror(errno)))") }
        }
    }

    /// Reads up to `count` bytes at `offset` (fewer at the end of the file).
    func read(count: Int, at offset: UInt64) throws -> [UInt8] {
        var result = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = result.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw StorageError(.fileSystem, "cannot read \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            done += n
        }
        result.removeSubrange(done...)
        return result
    }

    func close() { _ = Foundation.close(fd) }
}

/// Sequential reads of exact lengths over an ``InputFile``, through a 1 MiB buffer.
struct BufferedReader {
    let file: InputFile
    private var buffer: [UInt8] = []
    private var position = 0
    private var ended = false

    init(file: InputFile) { self.file = file }

    private mutating func fill() throws -> Bool {
        guard !ended else { return false }
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        let n = try file.read(into: &chunk)
        if n == 0 { ended = true; return false }
        buffer.removeSubrange(..<position)
        position = 0
        buffer.append(contentsOf: chunk[..<n])
        return true
    }

    mutating func read(_ count: Int) throws -> [UInt8] {
        while buffer.count - position < count {
            guard try fill() else { throw StorageError(.corruptRecord, "snapshot file truncated") }
        }
        defer { position += count }
        return Array(buffer[position..<position + count])
    }

    mutating func readInteger<T: FixedWidthInteger>(_: T.Type) throws -> T {
        var value: T = 0
        for byte in try read(MemoryLayout<T>.size) { value = value << 8 | T(byte) }
        return value
    }

    mutating func atEnd() throws -> Bool {
        if buffer.count > position { return false }
        return try !fill()
    }
}
