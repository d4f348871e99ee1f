public import NIOSSL

/// TLS for the HTTP listener (swift-nio-ssl through HummingbirdTLS) and the binary protocol
/// (an `NIOSSLServerHandler` in front of the frame codec).
public struct TLSSettings: Sendable, Hashable {
    /// PEM file with the server certificate (and any intermediates, leaf first).
    public var certificatePath: String
    /// PEM file with the certificate's private key.
    public var keyPath: String

    public init(certificatePath: String, keyPath: String) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
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
