import Foundation
import Hummingbird
import HummingbirdTesting
import NIOSSL
import TernServer
import TernTestKit
import Testing

@Suite struct TLSTests {

    @Test(.enabled(if: SelfSignedCertificate.canBeMade, "needs the openssl command to make a certificate"))
    func tlsClient_connects_andPlainTextClient_isRefused() async throws {
        let certificate = try SelfSignedCertificate()
        defer { certificate.directory.remove() }
        let f = try await ServerFixture()
        let tls = TLSSettings(certificatePath: certificate.certificatePath, keyPath: certificate.keyPath)
        let app = Application(
            router: HTTPAPI.router(broker: f.broker, settings: f.settings),
            server: try HTTPAPI.serverBuilder(tls: tls, metrics: nil),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            logger: ServerFixture.logger)
        try await app.test(.live) { client in
            let port = try #require(client.port)
            // A client that trusts only this certificate and checks the host name.
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(certificate.certificatePath))
            configuration.certificateVerification = .fullVerification
            let status = try await TestClient.withClient(
                host: "127.0.0.1", port: port, configuration: .init(tlsConfiguration: configuration, serverName: "localhost")
            ) { tlsClient in
                // With a Host header: the server answers an HTTP/1.1 request without one 400.
                try await tlsClient.execute(TestClient.Request("/health", method: .get, authority: "localhost")).status.code
            }
            #expect(status == 200)

            // Plain HTTP to the TLS port: the server never answers HTTP.
            await #expect(throws: (any Error).self) {
                try await TestClient.withClient(host: "127.0.0.1", port: port, configuration: .init(timeout: .seconds(5))) { plain in
                    _ = try await plain.get("/health")
                }
            }

            // A client that does not trust the certificate fails the handshake.
            await #expect(throws: (any Error).self) {
                try await TestClient.withClient(
                    host: "127.0.0.1", port: port,
                    configuration: .init(tlsConfiguration: TLSConfiguration.makeClientConfiguration(), serverName: "localhost")
                ) { untrusting in
                    _ = try await untrusting.get("/health")
                }
            }
        }
    }

    @Test func missingCertificateFile_failsAtStartWithAnError() {
        let tls = TLSSettings(certificatePath: "/nonexistent/cert.pem", keyPath: "/nonexistent/key.pem")
        #expect(throws: (any Error).self) { _ = try HTTPAPI.serverBuilder(tls: tls, metrics: nil) }
    }
}
