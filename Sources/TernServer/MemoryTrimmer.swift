#if canImport(Glibc)
import CMalloc
import Glibc
#endif
public import Logging
public import ServiceLifecycle

/// Gives heap memory that a burst left behind back to the operating system (decision 121).
///
/// glibc's `malloc` keeps freed memory in its arenas (one per thread that allocates, up to
/// 8 × cores) and returns only the top of an arena to the system; after 10,000 connections or
/// a burst of requests closed, `ternd` kept hundreds of MiB resident that it no longer used
/// (issue 13). Every ``Settings/interval`` the trimmer compares the anonymous resident memory
/// (`/proc/self/statm`: resident − shared pages) with the bytes `malloc` has handed out
/// (`mallinfo2`: `uordblks + hblkhd`); when the difference — resident memory holding no live
/// allocation — has grown by at least ``Settings/minimumRetainedBytes`` since the last trim,
/// it calls `malloc_trim(0)`, which releases every free page of every arena
/// (`madvise(MADV_DONTNEED)`), not only the tops. The decision is ``Policy``, a pure value
/// tested without the allocator. Linux with glibc only; elsewhere the service does nothing.
public struct MemoryTrimmer: Service {
    /// Settings of the trimmer.
    public struct Settings: Sendable, Equatable {
        /// How often the allocator's figures are read; nil = never trim. Default 10 s.
        public var interval: Duration? = .seconds(10)
        /// Growth of resident-but-unused heap since the last trim that makes the trimmer trim,
        /// in bytes. Default 262,144 (256 KiB).
        public var minimumRetainedBytes = 256 << 10
        public init() {}
    }

    /// One reading of the process's memory, in bytes.
    public struct Sample: Sendable, Equatable {
        /// Anonymous memory resident now (heap, stacks, anonymous maps).
        public var residentAnonymousBytes: Int
        /// Bytes handed out by `malloc` and not freed (arena chunks and mmapped chunks).
        public var allocatedBytes: Int
        public init(residentAnonymousBytes: Int, allocatedBytes: Int) {
            self.residentAnonymousBytes = residentAnonymousBytes
            self.allocatedBytes = allocatedBytes
        }

        /// Resident anonymous memory that holds no live allocation: free chunks whose pages
        /// are still resident, plus a floor (thread stacks, runtime metadata, partly used pages).
        public var retainedBytes: Int { max(0, residentAnonymousBytes - allocatedBytes) }
    }

    /// When to trim: a pure decision over successive ``Sample``s.
    public struct Policy: Sendable {
        public let minimumRetainedBytes: Int
        /// Retained bytes just after the last trim (or at the first sample): the floor that
        /// trimming cannot lower.
        public private(set) var floor: Int?

        public init(minimumRetainedBytes: Int) {
            precondition(minimumRetainedBytes >= 0, "minimumRetainedBytes must not be negative")
            self.minimumRetainedBytes = minimumRetainedBytes
        }

        /// Takes a periodic sample.
        /// - Returns: whether to trim now (then report the sample after it with ``onTrimmed(_:)``).
        public mutating func onSample(_ sample: Sample) -> Bool {
            guard let floor else {
                floor = sample.retainedBytes
                return false
            }
            // A floor that fell (memory reused, or released by the kernel) is the new floor.
            if sample.retainedBytes < floor { self.floor = sample.retainedBytes }
            return sample.retainedBytes - (self.floor ?? 0) >= minimumRetainedBytes
        }

        /// Takes the sample read just after a trim: its retained bytes are the new floor.
        public mutating func onTrimmed(_ sample: Sample) { floor = sample.retainedBytes }
    }

    let settings: Settings
    let logger: Logger

    public init(settings: Settings = Settings(), logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    /// Samples and trims until graceful shutdown; when off or unsupported, only waits for it
    /// (a service that returned early would stop the whole `ServiceGroup`).
    public func run() async throws {
        guard let interval = settings.interval, Self.isSupported else {
            try? await gracefulShutdown()
            return
        }
        let minimumRetainedBytes = settings.minimumRetainedBytes
        await cancelWhenGracefulShutdown {
            var policy = Policy(minimumRetainedBytes: minimumRetainedBytes)
            while !Task.isCancelled {
                guard let sample = Self.sample() else { return }
                if policy.onSample(sample) {
                    let start = ContinuousClock.now
                    Self.trim()
                    let took = ContinuousClock.now - start
                    if let after = Self.sample() {
                        policy.onTrimmed(after)
                        logger.debug("gave freed heap memory back to the system", metadata: [
                            "tern.released_bytes": "\(sample.residentAnonymousBytes - after.residentAnonymousBytes)",
                            "tern.trim_duration": "\(took)",
                            "tern.resident_anonymous_bytes": "\(after.residentAnonymousBytes)",
                            "tern.allocated_bytes": "\(after.allocatedBytes)",
                        ])
                    }
                }
                try? await Task.sleep(for: interval)
            }
        }
    }

    /// Whether this platform's allocator can be read and trimmed (glibc).
    public static var isSupported: Bool {
        #if canImport(Glibc)
        true
        #else
        false
        #endif
    }

    /// The process's figures now; nil where unsupported or when `/proc/self/statm` cannot be read.
    public static func sample() -> Sample? {
        #if canImport(Glibc)
        guard let anonymous = residentAnonymousBytes() else { return nil }
        let info = mallinfo2()
        return Sample(residentAnonymousBytes: anonymous, allocatedBytes: Int(info.uordblks) + Int(info.hblkhd))
        #else
        return nil
        #endif
    }

    /// Releases the free pages of every arena (`malloc_trim(0)`).
    public static func trim() {
        #if canImport(Glibc)
        _ = malloc_trim(0)
        #endif
    }

    /// Resident minus shared pages of `/proc/self/statm` (= `RssAnon`), in bytes.
    static func residentAnonymousBytes() -> Int? {
        #if canImport(Glibc)
        let descriptor = open("/proc/self/statm", O_RDONLY)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes = [UInt8](repeating: 0, count: 128)
        let count = bytes.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        let fields = String(decoding: bytes[..<count], as: UTF8.self).split(separator: " ")
        guard fields.count >= 3, let resident = Int(fields[1]), let shared = Int(fields[2]) else { return nil }
        return (resident - shared) * Int(sysconf(Int32(_SC_PAGESIZE)))
        #else
        return nil
        #endif
    }
}
