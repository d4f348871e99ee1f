public import NIOSSL

/// TLS for the HTTP listener (swift-nio-ssl through HummingbirdTLS) and the binary protocol
/// (an `NIOSSLServerHandler` in front of the frame codec).
public struct TLSSettings: Sendable, Hashable {
    /// PEM file with the server certificate (and any intermediates, leaf first).
    public var certificatePath: String
    /// PEM file with the certificate's private key.
    public var keyPath: String
    /// PEM file with the certificates (CAs, or the nodes' self-signed certificates) that other
    /// cluster nodes' certificates are checked against when this node connects to them
    /// (replication, forwarding); nil = the system's trust roots.
    public var trustRootsPath: String?

    public init(certificatePath: String, keyPath: String, trustRootsPath: String? = nil) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.trustRootsPath = trustRootsPath
    }

    /// The configuration for connections to other cluster nodes: TLS 1.2 or later, the peer's
    /// certificate checked against ``trustRootsPath`` (or the system's roots) and against the
    /// host or IP address connected to (its subject alternative names).
    /// - Throws: `NIOSSLError` when the trust roots cannot be read or parsed.
    public func peerClientConfiguration() throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .fullVerification
        if let trustRootsPath {
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(trustRootsPath))
        }
        return configuration
    }

    /// The server-side configuration: TLS 1.2 or later, no client certificates.
    /// - Throws: `NIOSSLError` when a file cannot be read or parsed.
    public func serverConfiguration() throws -> TLSConfiguration {
        let chain = try NIOSSLCertificate.fromPEMFile(certificatePath).map { NIOSSLCertificateSource.certificate($0) }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain, privateKey: .privateKey(try NIOSSLPrivateKey(file: keyPath, format: .pem)))
        configuration.minimumTLSVersion = .tlsv12
        return configuration
    }
}
