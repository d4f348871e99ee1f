import Foundation

/// A self-signed certificate for `localhost` and 127.0.0.1 in a temporary directory, made with
/// the `openssl` command (TLS tests of both listeners).
public struct SelfSignedCertificate: Sendable {
    public let directory: TemporaryDirectory
    /// PEM certificate (also the trust root of a client that trusts it).
    public var certificatePath: String { directory.appending("cert.pem") }
    /// PEM private key.
    public var keyPath: String { directory.appending("key.pem") }

    /// Whether `/usr/bin/openssl` exists (tests that need a certificate skip without it).
    public static var canBeMade: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") }

    /// Runs `openssl req -x509` (RSA 2048, valid 2 days, SAN `localhost` and 127.0.0.1).
    /// - Throws: ``TernProcess/Failure`` when openssl fails.
    public init() throws {
        directory = try TemporaryDirectory(prefix: "tern-tls")
        let arguments = [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", directory.appending("key.pem"), "-out", directory.appending("cert.pem"),
        ]
        let (status, output) = try ChildProcess.run("/usr/bin/openssl", arguments)
        guard status == 0 else {
            throw TernProcess.Failure("openssl req failed with status \(status): \(output)")
        }
    }
}
