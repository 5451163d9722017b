import ParleyCrypto
import ParleyWire

/// The Ed25519 check of one `login` (docs/PROTOCOL.md §3.2), handed out by ``SessionMachine`` as
/// ``SessionAction/verify(_:)`` so the caller can run it wherever it likes — the hub runs it on another
/// event loop, so the thread that serves every connection does not spend ~70 µs per login on it — and
/// answer with ``SessionMachine/loginVerified(_:now:)``.
///
/// A login naming an unknown user or device still costs one verification (against a key nobody holds),
/// so the time to the refusal does not tell a probe which names exist.
public struct LoginVerification: Sendable, Hashable {
    /// The device's public bundle, or nil when the user or device is unknown (or revoked).
    public let device: DevicePublicBundle?
    /// `SignalCodec.loginSigningInput(challenge:user:device:timestamp:)` of this connection's challenge.
    public let message: [UInt8]
    /// The signature the client sent.
    public let signature: [UInt8]

    public init(device: DevicePublicBundle?, message: [UInt8], signature: [UInt8]) {
        self.device = device
        self.message = message
        self.signature = signature
    }

    /// Runs the check: true only for a known device whose identity key signed ``message``.
    public func verify() -> Bool {
        guard let key = device?.signingPublicKey else {
            _ = Self.decoy.isValidSignature(signature, for: message)
            return false
        }
        return key.isValidSignature(signature, for: message)
    }

    /// A key whose private half is thrown away at once: checking against it costs what a real check costs
    /// and always fails.
    private static let decoy = DeviceIdentity.generate().publicBundle.signingPublicKey!
}
