import Foundation

/// A fresh, uniquely named directory under `/tmp` (`mkdtemp`), for data directories, logs and
/// scratch files of one test. Call ``remove()`` when done; a failing test may keep it for
/// inspection by not removing it.
public final class TemporaryDirectory: Sendable {
    /// The absolute path of the directory (no trailing slash).
    public let path: String

    /// Creates `/tmp/<prefix>.XXXXXX`.
    /// - Throws: `CocoaError` / POSIX error when the directory cannot be created.
    public init(prefix: String = "tern-test") throws {
        var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard created != nil else {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        path = String(decoding: template.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `path/<name>` (nothing is created).
    public func appending(_ name: String) -> String { path + "/" + name }

    /// Removes the directory and everything below it; a missing directory is not an error.
    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}
