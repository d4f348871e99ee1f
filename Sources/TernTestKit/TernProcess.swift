public import AsyncHTTPClient
public import Foundation
import NIOSSL
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where the `ternd` and `tern` executables are, for black-box tests.
public enum TernBinaries {
    /// The directory holding the built executables: the environment variable `TERN_BIN_DIR`
    /// when set, else the directory of the running test executable (SwiftPM puts test bundles
    /// and executables in the same `bin` directory, e.g. `.build/debug`).
    public static var directory: String {
        if let fromEnvironment = ProcessInfo.processInfo.environment["TERN_BIN_DIR"], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? Bundle.main.executablePath ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: executable).deletingLastPathComponent().path
    }

    /// The path of executable `name` in ``directory``.
    /// - Throws: ``TernProcess/Failure`` when there is no executable file by that name.
    public static func path(of name: String) throws -> String {
        let path = directory + "/" + name
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TernProcess.Failure("no executable \(name) in \(directory) (build it with `swift build`, or set TERN_BIN_DIR)")
        }
        return path
    }
}

/// A real `ternd` process on a data directory and a local HTTP port, for black-box tests.
///
/// ```swift
/// let root = try TemporaryDirectory()
/// let server = try await TernProcess.launch(in: root)        // waits until GET /health is 200
/// … requests against server.baseURL …
/// await server.kill9()                                        // SIGKILL, like a crash
/// try await server.start()                                    // same data directory and port
/// await server.terminate()
/// ```
///
/// Standard output and standard error of every run are appended to ``logFile``.
public actor TernProcess {
    /// A launch or readiness failure; the message includes the tail of the log.
    public struct Failure: Error, CustomStringConvertible {
        public var message: String
        public init(_ message: String) { self.message = message }
        public var description: String { message }
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    public nonisolated let baseURL: String
    /// The HTTP port, the same for every run so clients survive restarts.
    public nonisolated let port: Int
    /// The `--data-dir` of every run.
    public nonisolated let dataDirectory: String
    /// Where standard output and standard error go (appended across runs).
    public nonisolated let logFile: String
    /// Arguments added after `--data-dir` and `--http` (for example `--max-map-bytes`).
    public nonisolated let extraArguments: [String]
    /// The host `--http` binds (default 127.0.0.1; `0.0.0.0` inside a network namespace).
    public nonisolated let httpHost: String
    /// Trust roots for ``baseURL`` when the process serves TLS; nil = plain HTTP.
    public nonisolated let tlsTrustRoots: String?
    /// Put before the `ternd` command line, e.g. `["ip", "netns", "exec", NAME]`; empty = run
    /// `ternd` directly. The process started is still `ternd` (`ip netns exec` execs it), so
    /// signals reach it.
    public nonisolated let launcher: [String]

    private var process: ChildProcess?
    /// How many times ``start()`` launched the process.
    public private(set) var launches = 0

    /// Describes a server without starting it.
    /// - Parameters:
    ///   - port: the HTTP port; nil picks a free one (see ``freePort()``).
    ///   - clientHost: the host clients use in ``baseURL`` (default 127.0.0.1).
    ///   - tlsTrustRoots: when the process serves TLS (`--tls-certificate` in `extraArguments`),
    ///     a PEM file of certificates that validate its certificate: ``baseURL`` is then
    ///     `https://…` and the readiness check trusts these.
    public init(dataDirectory: String, logFile: String, port: Int? = nil, extraArguments: [String] = [],
                httpHost: String = "127.0.0.1", clientHost: String = "127.0.0.1", launcher: [String] = [],
                tlsTrustRoots: String? = nil) throws {
        self.dataDirectory = dataDirectory
        self.logFile = logFile
        self.port = try port ?? Self.freePort()
        self.tlsTrustRoots = tlsTrustRoots
        self.baseURL = "\(tlsTrustRoots == nil ? "http" : "https")://\(clientHost):\(self.port)"
        self.extraArguments = extraArguments
        self.httpHost = httpHost
        self.launcher = launcher
    }

    /// Starts `ternd` with data in `root/data`, its log in `root/ternd.log`, and waits until it serves.
    public static func launch(in root: TemporaryDirectory, extraArguments: [String] = []) async throws -> TernProcess {
        let server = try TernProcess(dataDirectory: root.appending("data"), logFile: root.appending("ternd.log"),
                                     extraArguments: extraArguments)
        try await server.start()
        return server
    }

    /// Launches `ternd --data-dir DIR --http 127.0.0.1:PORT …` and waits until `GET /health`
    /// answers 200 (polled every 50 ms). Unless ``extraArguments`` name a `--binary` address,
    /// `--binary 127.0.0.1:0` is added (a free port; the default 7081 would collide between servers).
    /// - Parameter timeout: how long to wait for readiness. Default 30 s.
    /// - Throws: ``Failure`` when the binary is missing, the process exits before it is ready, or
    ///   it is not ready within `timeout` (the process is then killed).
    public func start(timeout: Duration = .seconds(30)) async throws {
        precondition(process?.isRunning != true, "ternd is already running")
        let ternd = try TernBinaries.path(of: "ternd")
        // The binary protocol defaults to the fixed port 7081; unless the test chose an address,
        // let the kernel pick one so that several servers can run side by side.
        let binary = extraArguments.contains("--binary") ? [] : ["--binary", "127.0.0.1:0"]
        let arguments = ["--data-dir", dataDirectory, "--http", "\(httpHost):\(port)"] + binary + extraArguments
        let (executable, argv) = launcher.first.map { ($0, Array(launcher.dropFirst()) + [ternd] + arguments) } ?? (ternd, arguments)
        let log = try Self.appendingHandle(logFile)
        let banner = "\n=== launch \(launches + 1): \(argv.joined(separator: " ")) ===\n"
        log.write(Data(banner.utf8))
        try? log.close()
        let process = try ChildProcess(executable: executable, arguments: argv, standardOutput: logFile, standardError: logFile)
        self.process = process
        launches += 1

        let tlsClient = try tlsTrustRoots.map(Self.httpsClient(trusting:))
        let ready: Bool
        do {
            ready = try await waitUntilHealthy(tlsClient.map { HTTP(client: $0) } ?? HTTP(), process: process, timeout: timeout)
        } catch {
            try? await tlsClient?.shutdown()  // AsyncHTTPClient traps on a client released without one
            throw error
        }
        try? await tlsClient?.shutdown()
        if ready { return }
        await kill9()
        throw Failure("ternd did not answer GET /health with 200 within \(timeout); log:\n\(logTail())")
    }

    /// An HTTPS client that trusts the certificates in `path` (shut it down after use).
    /// - Throws: `NIOSSLError` when the file cannot be read.
    public static func httpsClient(trusting path: String) throws -> HTTPClient {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(path))
        var configuration = HTTPClient.Configuration()
        configuration.tlsConfiguration = tls
        configuration.timeout = .init(connect: .seconds(5))
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Polls `GET /health` every 50 ms until it answers 200 (true) or `timeout` passed (false).
    /// - Throws: ``Failure`` when the process exits first; `CancellationError`.
    private func waitUntilHealthy(_ http: HTTP, process: ChildProcess, timeout: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if !process.isRunning {
                throw Failure("ternd exited with status \(process.terminationStatus ?? -1) before it was ready; log:\n\(logTail())")
            }
            if let (status, _) = try? await http.request(.GET, baseURL + "/health", timeout: .seconds(1)), status == 200 { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    /// Whether the process is running.
    public var isRunning: Bool { process?.isRunning ?? false }

    /// The process id of the current run, nil when none was started.
    public var processIdentifier: Int32? { process.map(\.processIdentifier) }

    /// Kills the process with SIGKILL (no shutdown code runs, like a crash or power loss of the
    /// process) and waits until it is gone. Does nothing when it is not running.
    public func kill9() async {
        await signal(SIGKILL)
    }

    /// Pauses the process with SIGSTOP (it keeps its sockets but handles nothing, like a long
    /// GC pause or a frozen VM) until ``resume()``.
    public func pause() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGSTOP)
    }

    /// Resumes a paused process with SIGCONT.
    public func resume() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGCONT)
    }

    /// Asks the process to stop with SIGTERM and waits until it exits; sends SIGKILL when it is
    /// still running after `gracePeriod`.
    /// - Returns: the exit status (the signal number for a process killed by a signal), nil when
    ///   it was not running or is still running after SIGKILL.
    @discardableResult
    public func terminate(gracePeriod: Duration = .seconds(10)) async -> Int32? {
        guard let process, process.isRunning else { return nil }
        if await !signal(SIGTERM, waitingAtMost: gracePeriod) {
            await signal(SIGKILL)
        }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// The last `bytes` of the log (default 8 KiB), for failure messages.
    public nonisolated func logTail(bytes: Int = 8192) -> String {
        guard let data = FileManager.default.contents(atPath: logFile) else { return "(no log at \(logFile))" }
        return String(decoding: data.suffix(bytes), as: UTF8.self)
    }

    /// Sends `signal` and waits (polling every 5 ms) until the process is gone or `limit` passed.
    /// - Returns: whether the process is gone.
    @discardableResult
    private func signal(_ signal: Int32, waitingAtMost limit: Duration = .seconds(30)) async -> Bool {
        guard let process, process.isRunning else { return true }
        kill(process.processIdentifier, signal)
        let deadline = ContinuousClock.now + limit
        while process.isRunning && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
        return !process.isRunning
    }


    deinit {
        if let process, process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    /// A TCP port on 127.0.0.1 that was free a moment ago: binds a socket to port 0, reads the
    /// port the kernel chose, closes the socket.
    /// - Throws: ``Failure`` when no socket can be bound.
    public static func freePort() throws -> Int {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw Failure("socket() failed: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                bind(fd, generic, length) == 0 && getsockname(fd, generic, &length) == 0
            }
        }
        guard bound else { throw Failure("bind/getsockname on 127.0.0.1:0 failed: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    public static func appendingHandle(_ path: String) throws -> FileHandle {
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw Failure("cannot create \(path)")
            }
        }
        guard let handle = FileHandle(forWritingAtPath: path) else { throw Failure("cannot open \(path)") }
        handle.seekToEndOfFile()
        return handle
    }
}

/// Runs the `tern` command-line client (or another of the built executables) to completion.
public enum TernCLI {
    /// The outcome of one run.
    public struct Result: Sendable {
        public var status: Int32
        public var standardOutput: Data
        public var standardError: Data
        /// Standard error as text, for failure messages.
        public var errorText: String { String(decoding: standardError, as: UTF8.self) }
    }

    /// Runs `executable arguments…` (default `tern`) with standard input read from `inputFile`
    /// (nil: empty input) and waits for it to exit. Output goes through files in `scratch`, so
    /// large outputs cannot block the child.
    /// - Parameter environment: when given, the child's whole environment (`PATH` is added).
    /// - Throws: ``TernProcess/Failure`` when the binary is missing or cannot be launched.
    public static func run(_ arguments: [String], executable: String = "tern", inputFile: String? = nil,
                           environment: [String: String]? = nil, scratch: TemporaryDirectory) async throws -> Result {
        let path = try TernBinaries.path(of: executable)
        let childEnvironment = environment.map { ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin"].merging($0) { $1 } }
        let token = UUID().uuidString
        let outPath = scratch.appending("\(executable)-\(token).out"), errPath = scratch.appending("\(executable)-\(token).err")
        if let inputFile, !FileManager.default.isReadableFile(atPath: inputFile) { throw TernProcess.Failure("cannot read \(inputFile)") }
        let process = try ChildProcess(executable: path, arguments: arguments, environment: childEnvironment,
                                       standardInput: inputFile, standardOutput: outPath, standardError: errPath)
        let status = await process.waitForExit()
        defer {
            try? FileManager.default.removeItem(atPath: outPath)
            try? FileManager.default.removeItem(atPath: errPath)
        }
        return Result(status: status, standardOutput: FileManager.default.contents(atPath: outPath) ?? Data(),
                      standardError: FileManager.default.contents(atPath: errPath) ?? Data())
    }
}
