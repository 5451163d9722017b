import Foundation
import ParleyCrypto
import ParleyWire

/// An offer, answer or candidate signed by the sending device (docs/PROTOCOL.md §3.5: "clients sign them
/// with their device identity key, so the server cannot alter them undetected").
///
/// Wire form, carried base64url in the `call`/`prepare`/`accept`/`cand` commands and the `ring`/`answer`/
/// `cand` events:
///
/// ```
/// 0x01 || Ed25519 signature (64) || payload
/// ```
///
/// The signature covers the UTF-8 bytes of `parley-call-v1|<call id>|<callee user>|<kind>|` followed by the
/// payload. The call id stops the server from moving a blob to another call; the callee stops it from
/// ringing someone else with a genuine offer (both parties of a call know its callee); the kind stops an
/// offer from being replayed as an answer or candidate. Which device signed it is not in the blob: the
/// receiver checks it against the pinned bundle of the user and device the event names.
public enum SignedBlob {
    /// What a signed payload is.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// The caller's offer (`call`, `ring`).
        case offer
        /// The callee device's answer (`prepare`, `accept`, `answer`).
        case answer
        /// A connectivity candidate (`cand`).
        case candidate = "cand"
    }

    /// Domain separator at the start of the signing input.
    public static let domain = "parley-call-v1"
    /// The only version this code writes and reads.
    public static let version: UInt8 = 1
    /// Bytes the wrapping adds to the payload.
    public static let overhead = 1 + 64
    /// Largest payload that still fits a protocol blob (16 KiB decoded).
    public static let maxPayload = 16 * 1024 - overhead

    /// Signs `payload` as `kind` for `call`, whose callee is `callee`, with `identity`.
    ///
    /// - Throws: ``ClientError`` ``ClientError/Code/tooLarge`` beyond ``maxPayload``, or
    ///   ``ClientError/Code/badSignature`` if the signing primitive fails.
    public static func sign(
        _ payload: [UInt8], kind: Kind, call: SignalID, callee: SignalName, by identity: DeviceIdentity
    ) throws(ClientError) -> SignalBlob {
        guard payload.count <= maxPayload else {
            throw .tooLarge("\(kind.rawValue) of \(payload.count) bytes exceeds \(maxPayload)")
        }
        let signature: Data
        do {
            signature = try identity.signingKey.signature(
                for: signingInput(payload, kind: kind, call: call, callee: callee))
        } catch {
            throw .badSignature("could not sign the \(kind.rawValue)")
        }
        return SignalBlob(bytes: [version] + signature + payload)
    }

    /// Verifies `blob` as `kind` for `call` (callee `callee`) signed by `signer`, and returns the payload.
    ///
    /// - Throws: ``ClientError`` ``ClientError/Code/badSignature`` for a wrong version, a short blob, a bundle
    ///   that does not verify, or a signature that does not match: fails closed, never returns unverified bytes.
    public static func open(
        _ blob: SignalBlob, kind: Kind, call: SignalID, callee: SignalName, signer: DevicePublicBundle
    ) throws(ClientError) -> [UInt8] {
        let bytes = blob.bytes
        guard bytes.count >= overhead, bytes[0] == version else {
            throw .badSignature("\(kind.rawValue) for call \(call) is not a signed blob")
        }
        guard signer.verify(), let key = signer.signingPublicKey else {
            throw .badSignature("the pinned bundle of the signer does not verify")
        }
        let payload = Array(bytes[overhead...])
        guard
            key.isValidSignature(
                Data(bytes[1..<overhead]), for: signingInput(payload, kind: kind, call: call, callee: callee))
        else { throw .badSignature("\(kind.rawValue) for call \(call) does not verify against the pinned key") }
        return payload
    }

    /// The exact bytes signed.
    static func signingInput(_ payload: [UInt8], kind: Kind, call: SignalID, callee: SignalName) -> Data {
        Data("\(domain)|\(call)|\(callee)|\(kind.rawValue)|".utf8) + payload
    }
}
