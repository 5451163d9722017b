import Crypto
import Foundation
import ParleyCrypto
import XCTest

/// Base64url without padding, written independently of the library's encoder.
func base64url(_ data: Data) -> String {
    data.base64EncodedString()
        .replacingOccurrences(of: "+", with: "-")
        .replacingOccurrences(of: "/", with: "_")
        .replacingOccurrences(of: "=", with: "")
}

/// Every spelling of a secret that must never show up in printed output.
func spellings(of secret: Data) -> [String] {
    [base64url(secret), secret.base64EncodedString(), secret.map { String(format: "%02x", $0) }.joined()]
}

final class DevicePublicBundleTests: XCTestCase {
    func testGeneratedBundleVerifies() {
        let bundle = DeviceIdentity.generate().publicBundle
        XCTAssertEqual(bundle.signingKey.count, 32)
        XCTAssertEqual(bundle.agreementKey.count, 32)
        XCTAssertEqual(bundle.signature.count, 64)
        XCTAssertTrue(bundle.verify())
    }

    func testSignatureCoversDomainSeparatedMessage() throws {
        let identity = DeviceIdentity.generate()
        let bundle = identity.publicBundle
        let message = Data("parley-device-v1".utf8) + identity.agreementKey.publicKey.rawRepresentation
        XCTAssertEqual(DevicePublicBundle.signedMessage(agreementKey: bundle.agreementKey), message)
        XCTAssertTrue(identity.signingKey.publicKey.isValidSignature(bundle.signature, for: message))

        // The same key signing the bare X25519 key (no domain) must not yield a valid bundle.
        let bare = try identity.signingKey.signature(for: identity.agreementKey.publicKey.rawRepresentation)
        let undomained = DevicePublicBundle(
            signingKey: bundle.signingKey,
            agreementKey: bundle.agreementKey,
            signature: bare
        )
        XCTAssertFalse(undomained.verify())
    }

    func testEncodeDecodeRoundTrip() throws {
        let bundle = DeviceIdentity.generate().publicBundle
        let encoded = bundle.encoded
        XCTAssertTrue(encoded.hasPrefix("parley1."))
        XCTAssertEqual(encoded.count, "parley1.".count + 171)  // 128 bytes, unpadded
        let urlSafe = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
        XCTAssertTrue(encoded.unicodeScalars.allSatisfy { urlSafe.contains($0) })
        XCTAssertEqual(encoded, "parley1." + base64url(bundle.signingKey + bundle.agreementKey + bundle.signature))

        let decoded = try DevicePublicBundle(encoded: encoded)
        XCTAssertEqual(decoded, bundle)
        XCTAssertEqual(decoded.encoded, encoded)
        XCTAssertEqual(decoded.fingerprint, bundle.fingerprint)
    }

    func testFingerprintIsTruncatedSHA256OfEncodedInGroupsOfFour() {
        let bundle = DeviceIdentity.generate().publicBundle
        let digest = Array(SHA256.hash(data: Data(bundle.encoded.utf8)))
        let hex = digest[..<16].map { String(format: "%02x", $0) }.joined()
        let groups = bundle.fingerprint.split(separator: " ")
        XCTAssertEqual(groups.count, 8)
        XCTAssertTrue(groups.allSatisfy { $0.count == 4 })
        XCTAssertEqual(groups.joined(), hex)
        XCTAssertNotEqual(bundle.fingerprint, DeviceIdentity.generate().publicBundle.fingerprint)
    }

    func testTamperedSignatureRejected() {
        let bundle = DeviceIdentity.generate().publicBundle
        var signature = bundle.signature
        signature[signature.startIndex + 5] ^= 0x01
        let tampered = DevicePublicBundle(
            signingKey: bundle.signingKey,
            agreementKey: bundle.agreementKey,
            signature: signature
        )
        XCTAssertFalse(tampered.verify())
        XCTAssertThrowsError(try DevicePublicBundle(encoded: tampered.encoded)) { error in
            XCTAssertEqual((error as? KeyFileError)?.code, .badSignature)
        }
    }

    func testSwappedAgreementKeyRejected() {
        let bundle = DeviceIdentity.generate().publicBundle
        let other = DeviceIdentity.generate().publicBundle
        let swapped = DevicePublicBundle(
            signingKey: bundle.signingKey,
            agreementKey: other.agreementKey,
            signature: bundle.signature
        )
        XCTAssertFalse(swapped.verify())
        XCTAssertThrowsError(try DevicePublicBundle(encoded: swapped.encoded)) { error in
            XCTAssertEqual(error as? KeyFileError, .badSignature())
        }
    }

    func testWrongPrefixRejected() {
        let body = DeviceIdentity.generate().publicBundle.encoded.dropFirst("parley1.".count)
        for text in ["parley2." + body, "PARLEY1." + body, "parley1" + body, String(body), ""] {
            XCTAssertThrowsError(try DevicePublicBundle(encoded: text), text) { error in
                XCTAssertEqual((error as? KeyFileError)?.code, .wrongPrefix)
                XCTAssertTrue("\(error)".contains("parley1."))
            }
        }
    }

    func testWrongLengthRejected() {
        let bundle = DeviceIdentity.generate().publicBundle
        let payload = bundle.signingKey + bundle.agreementKey + bundle.signature
        for bytes in [payload.prefix(127), payload + Data([0]), payload.prefix(64), Data()] {
            XCTAssertThrowsError(try DevicePublicBundle(encoded: "parley1." + base64url(Data(bytes)))) { error in
                XCTAssertEqual((error as? KeyFileError)?.code, .wrongLength)
                XCTAssertTrue("\(error)".contains("128"), "\(error)")
            }
        }
    }

    func testBadBase64Rejected() {
        let encoded = DeviceIdentity.generate().publicBundle.encoded
        let body = String(encoded.dropFirst("parley1.".count))
        var nonCanonical = body
        // 171 characters: the last one carries 2 unused bits; setting them gives a non-canonical spelling.
        let last = nonCanonical.removeLast()
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        nonCanonical.append(alphabet[alphabet.firstIndex(of: last)! | 0b11])
        let bodies: [String] = [
            body + "=",
            body.replacingOccurrences(of: String(body.prefix(1)), with: "+"),
            String(body.prefix(80)) + " " + String(body.dropFirst(80)),
            body + "\n",
            String(body.dropLast(2)),  // length ≡ 1 (mod 4) is never valid
            nonCanonical,
        ]
        for text in bodies.map({ "parley1." + $0 }) {
            XCTAssertThrowsError(try DevicePublicBundle(encoded: text), text) { error in
                XCTAssertEqual((error as? KeyFileError)?.code, .badBase64, "\(error)")
            }
        }
    }

    func testErrorsAreEqualByCode() {
        XCTAssertEqual(KeyFileError.fileExists(path: "/a"), KeyFileError.fileExists(path: "/b"))
        XCTAssertNotEqual(KeyFileError.badSignature(), KeyFileError.wrongPrefix(expected: "parley1."))
        XCTAssertEqual(KeyFileError.Code.fileExists.description, "fileExists")
    }

    func testIdentityDescriptionIsRedacted() {
        let identity = DeviceIdentity.generate()
        var dumped = ""
        dump(identity, to: &dumped)
        let printed = [
            identity.description, String(describing: identity), String(reflecting: identity), "\(identity)", dumped,
        ]
        let secrets =
            spellings(of: identity.signingKey.rawRepresentation)
            + spellings(of: identity.agreementKey.rawRepresentation)
        for text in printed {
            XCTAssertTrue(text.contains(identity.publicBundle.fingerprint), text)
            for secret in secrets {
                XCTAssertFalse(text.contains(secret), "private key material in: \(text)")
            }
        }
    }
}
