import Foundation

/// The directory of the 16 loghub sample logs (`*_2k.log`, Loghub by LogPAI), or nil when it is
/// missing.
///
/// Resolved from the environment variable `TERN_LOGHUB_DIR` when set, else from this source
/// file's location as `<repository>/../shared/data/loghub` (the layout of the workspace; no
/// path of one machine is named). Tests that need the data carry ``TestData/loghubTrait``: they
/// are skipped with a message when it is missing, except under `TERN_REQUIRE_TEST_DATA=1`
/// (`.ci/run` sets it), where they run and fail.
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
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), isDirectory.boolValue else { return nil }
    return candidate
}

/// Whether tests must fail, rather than skip, when their data is missing (`TERN_REQUIRE_TEST_DATA=1`).
public var testDataRequired: Bool { ProcessInfo.processInfo.environment["TERN_REQUIRE_TEST_DATA"] == "1" }

/// Whether the loghub tests should run: the data is there, or it is required (then they fail
/// with a message naming what is missing). When they are skipped, the reason is also printed
/// to standard error, once.
public var loghubTestsEnabled: Bool {
    if loghubDirectory != nil || testDataRequired { return true }
    warnLoghubMissingOnce
    return false
}

/// The reason shown for a skipped loghub test.
public let loghubMissingMessage = """
    SKIPPED: the loghub data is missing (set TERN_LOGHUB_DIR, or put the *_2k.log files in \
    <repository>/../shared/data/loghub); set TERN_REQUIRE_TEST_DATA=1 to make this a failure
    """

private let warnLoghubMissingOnce: Void = {
    FileHandle.standardError.write(Data(("warning: " + loghubMissingMessage + "\n").utf8))
}()
