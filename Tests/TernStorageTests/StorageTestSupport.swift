import Foundation
import Logging
import Synchronization
import TernStorage
import TernTestKit

/// The databases every storage test opens.
let testDatabases = ["main", "other"]

/// Opens a storage in `directory` with the given durability and map limit.
func openStorage(_ directory: TemporaryDirectory, durable: Bool, maxMapBytes: Int = 1 << 30,
                 reservedBytes: Int? = nil) throws -> Storage {
    var settings = Storage.Settings()
    settings.durable = durable
    settings.maxMapBytes = maxMapBytes
    settings.reservedBytes = reservedBytes
    return try Storage(directory: directory.appending("data"), databases: testDatabases, settings: settings,
                       logger: Logger(label: "tern.test.storage", factory: { _ in SwiftLogNoOpLogHandler() }))
}

/// A u64 key, big-endian.
func key(_ value: Int) -> [UInt8] {
    var writer = BigEndianWriter()
    writer.write(UInt64(value))
    return writer.bytes
}

/// A value that names its key, so a test can tell values apart.
func value(_ value: Int, size: Int = 0) -> [UInt8] {
    let text = Array("value-\(value)".utf8)
    return size > text.count ? text + [UInt8](repeating: UInt8(truncatingIfNeeded: value), count: size - text.count) : text
}

/// A gate that blocks the writer thread inside a write body until the test opens it, so that
/// operations submitted meanwhile pile up and are applied together in the next batch.
final class WriterGate: Sendable {
    private let state = Mutex((entered: false, open: false))

    /// Called on the writer thread inside a write body: records that the writer is held, then
    /// blocks (polling every millisecond, at most 30 s) until ``open()``.
    func hold() {
        state.withLock { $0.entered = true }
        for _ in 0..<30_000 {
            if state.withLock({ $0.open }) { return }
            usleep(1_000)
        }
    }

    /// Suspends until the writer is inside ``hold()``.
    func waitUntilHeld() async throws {
        while !state.withLock({ $0.entered }) { try await Task.sleep(for: .milliseconds(1)) }
    }

    func open() { state.withLock { $0.open = true } }
}

/// A thrown error a test can recognise.
struct PlannedFailure: Error, Equatable {
    var tag: Int
}

/// The outcome of an async throwing body, as a value.
func asyncResult<T>(_ body: () async throws -> T) async -> Result<T, any Error> {
    do { return .success(try await body()) } catch { return .failure(error) }
}

/// A value shared between tasks and the writer thread.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    var value: Value {
        get { mutex.withLock { $0 } }
        set { mutex.withLock { $0 = newValue } }
    }
}
