import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private func systemRead(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    #if canImport(Glibc)
    Glibc.read(descriptor, buffer, count)
    #else
    Darwin.read(descriptor, buffer, count)
    #endif
}

/// Standard output as raw bytes, buffered until ``flush()``.
///
/// Message bodies go out byte for byte, without `print`'s transcoding or line buffering.
struct StandardOutput {
    /// Standard output was closed by its reader (`EPIPE`, e.g. `tern receive … | head`).
    struct Closed: Error {}

    private var buffer: [UInt8] = []
    /// Bytes after which ``append(_:)`` flushes on its own.
    private let flushThreshold = 1 << 20

    init() { buffer.reserveCapacity(64 * 1024) }

    mutating func append(_ string: String) throws {
        buffer.append(contentsOf: string.utf8)
        if buffer.count >= flushThreshold { try flush() }
    }

    mutating func append(byte: UInt8) {
        buffer.append(byte)
    }

    /// Writes everything buffered.
    /// - Throws: ``Closed`` when the reader went away; `ClientError.input` for other write errors.
    mutating func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBufferPointer { try Self.writeAll(UnsafeRawBufferPointer($0), to: 1) }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Writes all of `bytes` to `descriptor`, retrying short writes and `EINTR`.
    static func writeAll(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32) throws {
        var offset = 0
        while offset < bytes.count {
            let written = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                let code = errno
                if code == EINTR { continue }
                if code == EPIPE { throw Closed() }
                throw ClientError.input("cannot write to descriptor \(descriptor): \(String(cString: strerror(code)))")
            }
            offset += written
        }
    }

    static func writeAll(_ bytes: UnsafeBufferPointer<UInt8>, to descriptor: Int32) throws {
        try writeAll(UnsafeRawBufferPointer(bytes), to: descriptor)
    }
}

/// Standard input as raw bytes, split into lines on `0x0A`.
///
/// Reads happen on a dedicated dispatch queue so that a blocking `read(2)` (a terminal, a slow
/// pipe) never holds one of Swift concurrency's few cooperative threads.
struct StandardInputLines {
    /// One line without its terminating `\n` or `\r\n` (CRLF line endings are stripped, as
    /// Kafka's console producer does; a `\r` elsewhere is kept), numbered from 1.
    struct Line {
        var number: Int
        var bytes: ArraySlice<UInt8>
    }

    private static let queue = DispatchQueue(label: "tern.stdin")
    private let chunkBytes = 1 << 20
    private var pending: [UInt8] = []
    private var start = 0
    private var atEnd = false
    private var lineNumber = 0

    init() {}

    /// `line` without a final `\r` (the CR of a CRLF ending; a last line ending in `\r` at the
    /// end of input is treated the same).
    static func withoutCarriageReturn(_ line: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        line.last == 0x0D ? line.dropLast() : line
    }

    /// The next line, or nil at the end of input. The last line need not end in `\n`; a final `\n`
    /// does not produce an empty last line.
    /// - Throws: `ClientError.input` when reading fails.
    mutating func next() async throws -> Line? {
        while true {
            if let newline = Self.firstNewline(in: pending, from: start) {
                let line = Self.withoutCarriageReturn(pending[start..<newline])
                start = newline + 1
                lineNumber += 1
                return Line(number: lineNumber, bytes: line)
            }
            if atEnd {
                guard start < pending.count else { return nil }
                let line = Self.withoutCarriageReturn(pending[start...])
                start = pending.count
                lineNumber += 1
                return Line(number: lineNumber, bytes: line)
            }
            // Keep the unfinished line, then read more behind it.
            if start > 0 {
                pending.removeSubrange(0..<start)
                start = 0
            }
            let chunk = try await Self.read(maxBytes: chunkBytes)
            if chunk.isEmpty { atEnd = true } else { pending.append(contentsOf: chunk) }
        }
    }

    /// One `read(2)` of standard input; empty at end of input.
    private static func read(maxBytes: Int) async throws -> [UInt8] {
        let result: Result<[UInt8], ClientError> = await withCheckedContinuation { continuation in
            queue.async {
                var chunk = [UInt8](repeating: 0, count: maxBytes)
                while true {
                    let count = chunk.withUnsafeMutableBytes { systemRead(0, $0.baseAddress, maxBytes) }
                    if count >= 0 {
                        chunk.removeSubrange(count...)
                        continuation.resume(returning: .success(chunk))
                        return
                    }
                    let code = errno
                    if code == EINTR { continue }
                    continuation.resume(returning: .failure(.input("cannot read standard input: \(String(cString: strerror(code)))")))
                    return
                }
            }
        }
        return try result.get()
    }

    /// The index of the first `\n` at or after `start`, found with `memchr`.
    private static func firstNewline(in bytes: [UInt8], from start: Int) -> Int? {
        guard start < bytes.count else { return nil }
        return bytes.withUnsafeBytes { raw in
            guard let found = memchr(raw.baseAddress! + start, 0x0A, raw.count - start) else { return nil }
            return raw.baseAddress!.distance(to: UnsafeRawPointer(found))
        }
    }

    /// Whether a complete line is already buffered (``next()`` then returns without reading).
    var hasBufferedLine: Bool {
        atEnd || Self.firstNewline(in: pending, from: start) != nil
    }

    /// Whether standard input has data (or its end) to read within `milliseconds`, from
    /// `poll(2)` on the reading queue. The senders use it to send a partial batch when the
    /// input pauses (`tail -F … | tern send`), as Kafka producers send after `linger.ms`.
    static func readable(within milliseconds: Int32) async -> Bool {
        await withCheckedContinuation { continuation in
            queue.async {
                var descriptor = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
                let ready = poll(&descriptor, 1, milliseconds)
                continuation.resume(returning: ready != 0)
            }
        }
    }

    /// How long the senders let a partial batch wait for more input, in milliseconds.
    static let lingerMilliseconds: Int32 = 100

    /// Whether standard input is a terminal (then a hint on how to end input is useful).
    static var isTerminal: Bool { isatty(0) == 1 }
}
