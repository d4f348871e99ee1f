import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A child process started with `posix_spawn`, for tests that run `ternd`, `tern`, `openssl`
/// and other commands.
///
/// Not Foundation's `Process`: on Linux its `run()` scans `/proc/self/fd` with a 256-byte copy
/// of each directory entry and crashes the whole test process now and then when an entry ends
/// near an unmapped page (swift-corelibs-foundation#5472, "buffer over-read in
/// findMaximumOpenFromProcSelfFD"); serializing the calls does not avoid it. The child starts
/// with an empty signal mask and default handlers, as from a shell, whatever this process
/// blocks.
public final class ChildProcess: @unchecked Sendable {  // `state` is guarded by `lock`
    /// The child's process id.
    public let processIdentifier: Int32
    private let lock = NSLock()
    private var waitStatus: Int32?

    /// Starts `executable` (a path) with `arguments` (without argv[0]).
    /// - Parameters:
    ///   - environment: the child's whole environment; nil = this process's.
    ///   - standardInput: a file read as standard input; nil = `/dev/null`.
    ///   - standardOutput, standardError: files appended to (created when missing); nil =
    ///     `/dev/null`. The same path for both shares one descriptor.
    /// - Throws: ``TernProcess/Failure`` when the process cannot be started.
    public init(executable: String, arguments: [String], environment: [String: String]? = nil,
                standardInput: String? = nil, standardOutput: String? = nil, standardError: String? = nil) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, standardInput ?? "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, standardOutput ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
        if standardError != nil && standardError == standardOutput {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 2, standardError ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE, SIGCHLD, SIGHUP, SIGQUIT] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let pairs = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        let envp = pairs.map { strdup($0) } + [nil]
        defer { for pointer in envp { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw TernProcess.Failure("cannot start \(executable): \(String(cString: strerror(result)))")
        }
        processIdentifier = pid
    }

    /// Whether the child has not exited yet (it is reaped once it has).
    public var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        if waitStatus != nil { return false }
        var status: Int32 = 0
        let reaped = waitpid(processIdentifier, &status, WNOHANG)
        if reaped == processIdentifier {
            waitStatus = status
            return false
        }
        return reaped == 0
    }

    /// The exit code, or the number of the signal that ended it; nil while it runs.
    public var terminationStatus: Int32? {
        guard !isRunning else { return nil }
        let status = lock.withLock { waitStatus ?? 0 }
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : signal
    }

    /// Waits (polling every 5 ms) until the child exits.
    /// - Returns: ``terminationStatus``.
    public func waitForExit() async -> Int32 {
        while isRunning { try? await Task.sleep(for: .milliseconds(5)) }
        return terminationStatus ?? 0
    }

    /// Blocks the calling thread until the child exits.
    /// - Returns: ``terminationStatus``.
    @discardableResult
    public func waitUntilExit() -> Int32 {
        lock.withLock {
            if waitStatus == nil {
                var status: Int32 = 0
                while waitpid(processIdentifier, &status, 0) == -1 && errno == EINTR {}
                waitStatus = status
            }
        }
        return terminationStatus ?? 0
    }

    /// Runs `executable arguments…` to its end, blocking the calling thread.
    /// - Returns: its ``terminationStatus`` and what it wrote to standard output and standard
    ///   error (together, in order).
    /// - Throws: ``TernProcess/Failure`` when it cannot be started.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                           standardInput: String? = nil) throws -> (status: Int32, output: String) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tern-child-\(UUID().uuidString).out").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let child = try ChildProcess(executable: executable, arguments: arguments, environment: environment,
                                     standardInput: standardInput, standardOutput: path, standardError: path)
        let status = child.waitUntilExit()
        return (status, String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self))
    }

    /// Sends `signal` to the child, unless it already exited.
    public func send(_ signal: Int32) {
        if isRunning { kill(processIdentifier, signal) }
    }
}
