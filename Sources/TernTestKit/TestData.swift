import Foundation

/// The directory of the 16 loghub sample logs (`*_2k.log`, Loghub by LogPAI), or nil when it is
/// missing.
///
/// Resolved from the environment variable `TERN_LOGHUB_DIR` when set, else from this source
/// file's location as `<repository>/../shared/data/loghub`. Tests that need the data should fail
/// with a clear message when this is nil, not skip: the data is expected to be present.
public var loghubDirectory: String? {
    let candidate: String
    if let fromEnvironment = ProcessInfo.processInfo.environment["TERN_LOGHUB_DIR"], !fromEnvironment.isEmpty {
        candidate = fromEnvironment
    } else {
        // #filePath is <repository>/Sources/TernTestKit/TestData.swift.
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        candidate = repository.deletingLastPathComponent().appendingPathComponent("shared/data/loghub").path
    }
    // The workspace's shared copy, for checkouts that do not sit next to `shared/`.
    for path in [candidate, "/work/shared/data/loghub"] {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue { return path }
    }
    return nil
}
