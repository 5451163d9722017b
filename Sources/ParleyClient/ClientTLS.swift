import NIOCore
import NIOSSL

/// TLS settings for the signaling connection (docs/PROTOCOL.md §3.1: TLS on the same protocol when the server
/// has a certificate).
public struct ClientTLS: Sendable {
    /// Which certificate authorities to trust.
    public var trustRoots: NIOSSLTrustRoots
    /// How to check the server's certificate. Anything but `.fullVerification` is for tests.
    public var certificateVerification: CertificateVerification
    /// The name to send in SNI and to check the certificate against; nil uses the host connected to (an IP
    /// address is then checked against the certificate's IP SANs and not sent in SNI).
    public var serverName: String?

    /// Creates TLS settings; the defaults trust the system's roots and verify fully.
    public init(
        trustRoots: NIOSSLTrustRoots = .default,
        certificateVerification: CertificateVerification = .fullVerification,
        serverName: String? = nil
    ) {
        self.trustRoots = trustRoots
        self.certificateVerification = certificateVerification
        self.serverName = serverName
    }

    /// The system's trust store, full verification.
    public static var system: ClientTLS { ClientTLS() }

    /// Trust only the PEM certificates in the file at `path` (a private CA or a self-signed server certificate).
    public static func trusting(pemFile path: String) -> ClientTLS {
        ClientTLS(trustRoots: .file(path))
    }

    /// Encrypt but check nothing: a machine in the middle goes unnoticed. For tests and `--insecure` only.
    public static var insecure: ClientTLS { ClientTLS(certificateVerification: .none) }

    /// The NIOSSL context for these settings.
    func makeContext() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = trustRoots
        configuration.certificateVerification = certificateVerification
        configuration.minimumTLSVersion = .tlsv12
        return try NIOSSLContext(configuration: configuration)
    }

    /// The client handler for a connection to `host`.
    func makeHandler(context: NIOSSLContext, host: String) throws -> NIOSSLClientHandler {
        let name = serverName ?? host
        let isAddress = (try? SocketAddress(ipAddress: name, port: 0)) != nil
        return try NIOSSLClientHandler(context: context, serverHostname: isAddress ? nil : name)
    }
}
