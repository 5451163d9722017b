import Crypto
import Foundation

/// One device's long-term secret identity: an Ed25519 signing key and an X25519 key-agreement key.
///
/// The signing key is the device's identity; the key-agreement key is vouched for by it through the
/// signature carried in ``publicBundle``. Peers learn a device only through its ``DevicePublicBundle``.
///
/// Printing an identity never shows key material: ``description``, ``debugDescription`` and the
/// reflection used by `dump` show only the public fingerprint. Store one with ``KeyFile``.
public struct DeviceIdentity: Sendable {
    /// The Ed25519 identity key. Secret.
    public let signingKey: Curve25519.Signing.PrivateKey
    /// The X25519 key-agreement key. Secret.
    public let agreementKey: Curve25519.KeyAgreement.PrivateKey
    /// Computed once: Ed25519 signing is deterministic, but there is no reason to sign twice.
    private let bundle: DevicePublicBundle

    /// Wraps existing keys, signing the key-agreement public key with the identity key.
    ///
    /// - Throws: only if the signing primitive fails, which swift-crypto reports as an error.
    public init(
        signingKey: Curve25519.Signing.PrivateKey,
        agreementKey: Curve25519.KeyAgreement.PrivateKey
    ) throws {
        self.signingKey = signingKey
        self.agreementKey = agreementKey
        let agreementPublic = agreementKey.publicKey.rawRepresentation
        let signature = try signingKey.signature(for: DevicePublicBundle.signedMessage(agreementKey: agreementPublic))
        self.bundle = DevicePublicBundle(
            signingKey: signingKey.publicKey.rawRepresentation,
            agreementKey: agreementPublic,
            signature: signature
        )
    }

    /// A fresh identity from the system's secure random source.
    public static func generate() -> DeviceIdentity {
        do {
            return try DeviceIdentity(
                signingKey: Curve25519.Signing.PrivateKey(),
                agreementKey: Curve25519.KeyAgreement.PrivateKey()
            )
        } catch {
            // BoringSSL's ED25519_sign cannot fail for a well-formed key we just generated.
            preconditionFailure("Ed25519 signing failed for a freshly generated key: \(error)")
        }
    }

    /// What this device publishes: both public keys and the identity key's signature binding them.
    public var publicBundle: DevicePublicBundle { bundle }
}

extension DeviceIdentity: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// Redacted: names only the public fingerprint, never key material.
    public var description: String { "DeviceIdentity(fingerprint: \(bundle.fingerprint), private keys redacted)" }

    /// Same as ``description``; there is nothing more that may be printed.
    public var debugDescription: String { description }

    /// Keeps `dump` and `Mirror` from walking into the private keys.
    public var customMirror: Mirror {
        Mirror(self, children: ["fingerprint": bundle.fingerprint], displayStyle: .struct)
    }
}
