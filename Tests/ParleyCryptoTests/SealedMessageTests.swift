import Crypto
import Foundation
import ParleyCrypto
import XCTest

final class SealedMessageTests: XCTestCase {
    let alice = DeviceIdentity.generate()
    let bob = DeviceIdentity.generate()
    let context = Data("msg|7c9e6679-7425-40de-944b-e07fc1f90ae7|alice|phone|bob|laptop".utf8)

    private func sealed(_ text: String = "meet at noon") throws -> Data {
        try SealedMessage.seal(Data(text.utf8), to: bob.publicBundle, from: alice, context: context).bytes
    }

    private func assertFails(
        _ bytes: Data, as recipient: DeviceIdentity? = nil, from sender: DevicePublicBundle? = nil,
        context: Data? = nil, with code: SealedMessageError.Code, file: StaticString = #filePath, line: UInt = #line
    ) {
        do {
            let message = try SealedMessage(bytes: bytes)
            let plaintext = try message.open(
                as: recipient ?? bob, from: sender ?? alice.publicBundle, context: context ?? self.context)
            XCTFail("opened to \(plaintext.count) bytes", file: file, line: line)
        } catch {
            XCTAssertEqual(error.code, code, "\(error)", file: file, line: line)
        }
    }

    func testRoundTrip() throws {
        for text in ["", "meet at noon", String(repeating: "é", count: 10_000)] {
            let bytes = try sealed(text)
            XCTAssertEqual(bytes.count, Data(text.utf8).count + SealedMessage.overhead)
            XCTAssertEqual(bytes.first, 1)
            let opened = try SealedMessage(bytes: bytes).open(as: bob, from: alice.publicBundle, context: context)
            XCTAssertEqual(String(decoding: opened, as: UTF8.self), text)
        }
    }

    func testLayoutMatchesDocumentation() throws {
        let bytes = try sealed("x")
        let message = try SealedMessage(bytes: bytes)
        XCTAssertEqual(message.ephemeralKey, bytes[1..<33])
        XCTAssertEqual(message.signature, bytes[33..<97])
        XCTAssertEqual(message.ciphertext, bytes[97...])
        XCTAssertEqual(message.bytes, bytes)
        // The signature is the sender's, over the documented input, verifiable with the public bundle alone.
        var input = Data("parley-seal-v1".utf8) + Data([1]) + message.ephemeralKey + bob.publicBundle.agreementKey
        input += Data([0, 0, 0, UInt8(context.count)]) + context + message.ciphertext
        XCTAssertTrue(alice.signingKey.publicKey.isValidSignature(message.signature, for: input))
    }

    func testEachSealUsesAFreshEphemeralKey() throws {
        let a = try SealedMessage(bytes: sealed())
        let b = try SealedMessage(bytes: sealed())
        XCTAssertNotEqual(a.ephemeralKey, b.ephemeralKey)
        XCTAssertNotEqual(a.ciphertext, b.ciphertext)
    }

    func testWrongRecipientFails() throws {
        assertFails(try sealed(), as: DeviceIdentity.generate(), with: .badSignature)
    }

    func testWrongSenderBundleFails() throws {
        assertFails(try sealed(), from: DeviceIdentity.generate().publicBundle, with: .badSignature)
    }

    func testWrongContextFails() throws {
        assertFails(try sealed(), context: Data("msg|other".utf8), with: .badSignature)
    }

    func testTamperedCiphertextFails() throws {
        let bytes = try sealed()
        for index in [97, bytes.count - 17, bytes.count - 1] {  // first byte, last ciphertext byte, tag
            var tampered = bytes
            tampered[index] ^= 0x01
            assertFails(tampered, with: .badSignature)
        }
    }

    func testTamperedSignatureFails() throws {
        var tampered = try sealed()
        tampered[40] ^= 0x80
        assertFails(tampered, with: .badSignature)
    }

    func testTamperedEphemeralKeyFails() throws {
        var tampered = try sealed()
        tampered[5] ^= 0x01
        assertFails(tampered, with: .badSignature)
    }

    func testResignedByAnotherSenderDoesNotDecrypt() throws {
        // Mallory strips Alice's signature and signs the same ciphertext: the signature now verifies for
        // Mallory, but the key was derived with Alice's identity key in it, so the AEAD refuses.
        let mallory = DeviceIdentity.generate()
        let message = try SealedMessage(bytes: sealed())
        var input = Data("parley-seal-v1".utf8) + Data([1]) + message.ephemeralKey + bob.publicBundle.agreementKey
        input += Data([0, 0, 0, UInt8(context.count)]) + context + message.ciphertext
        let forged =
            Data([1]) + message.ephemeralKey + (try mallory.signingKey.signature(for: input)) + message.ciphertext
        assertFails(forged, from: mallory.publicBundle, with: .decryptionFailed)
    }

    func testTruncatedInputFails() throws {
        let bytes = try sealed("")
        XCTAssertEqual(bytes.count, SealedMessage.overhead)
        for count in [0, 1, 33, 97, SealedMessage.overhead - 1] {
            assertFails(bytes.prefix(count), with: .truncated)
        }
        // Cutting into a longer message leaves a well-formed shape with a signature that no longer matches.
        let long = try sealed("a longer message")
        assertFails(long.dropLast(3), with: .badSignature)
    }

    func testUnknownVersionFails() throws {
        var bytes = try sealed()
        bytes[0] = 3  // 1 and 2 are the two suites; relabelling between them: SealedMessageAESTests
        assertFails(bytes, with: .unsupportedVersion)
        bytes[0] = 0
        assertFails(bytes, with: .unsupportedVersion)
    }

    func testForgedBundlesAreRefused() throws {
        let good = bob.publicBundle
        let forged = DevicePublicBundle(
            signingKey: good.signingKey, agreementKey: DeviceIdentity.generate().publicBundle.agreementKey,
            signature: good.signature)
        XCTAssertThrowsError(try SealedMessage.seal(Data("x".utf8), to: forged, from: alice)) { error in
            XCTAssertEqual((error as? SealedMessageError)?.code, .invalidBundle)
        }
        let senderForged = DevicePublicBundle(
            signingKey: alice.publicBundle.signingKey, agreementKey: good.agreementKey,
            signature: alice.publicBundle.signature)
        assertFails(try sealed(), from: senderForged, with: .invalidBundle)
    }

    func testErrorsDoNotEchoPlaintext() throws {
        let secret = "the launch code is 0000"
        var bytes = try sealed(secret)
        bytes[bytes.count - 1] ^= 1
        do {
            _ = try SealedMessage(bytes: bytes).open(as: bob, from: alice.publicBundle, context: context)
        } catch {
            XCTAssertFalse("\(error)".contains("launch"))
        }
    }
}

/// Version 2 of the sealed format: AES-256-GCM (what a browser's WebCrypto has), read and written by
/// native clients too (docs/PROTOCOL.md §3.6.1).
final class SealedMessageAESTests: XCTestCase {
    let alice = DeviceIdentity.generate()
    let bob = DeviceIdentity.generate()
    let context = Data("parley-msg-v1|id|alice|phone|bob|web".utf8)

    func testAESRoundTripAndLayout() throws {
        let message = try SealedMessage.seal(Data("hello browser".utf8), to: bob.publicBundle, from: alice, context: context, suite: .aes256GCM)
        let bytes = message.bytes
        XCTAssertEqual(bytes.first, 2)
        XCTAssertEqual(bytes.count, 13 + SealedMessage.overhead)
        let parsed = try SealedMessage(bytes: bytes)
        XCTAssertEqual(parsed.suite, .aes256GCM)
        XCTAssertEqual(try parsed.open(as: bob, from: alice.publicBundle, context: context), Data("hello browser".utf8))
    }

    /// The version byte is bound into the signature, the key and the AAD: a message relabelled to the other
    /// suite is refused, either way.
    func testRelabellingTheSuiteIsRefused() throws {
        for suite in SealedMessage.Suite.allCases {
            var bytes = try SealedMessage.seal(Data("x".utf8), to: bob.publicBundle, from: alice, context: context, suite: suite).bytes
            bytes[bytes.startIndex] = suite == .aes256GCM ? 1 : 2
            XCTAssertThrowsError(try SealedMessage(bytes: bytes).open(as: bob, from: alice.publicBundle, context: context)) { error in
                XCTAssertEqual((error as? SealedMessageError)?.code, .badSignature)
            }
        }
        var unknown = try SealedMessage.seal(Data("x".utf8), to: bob.publicBundle, from: alice).bytes
        unknown[unknown.startIndex] = 3
        XCTAssertThrowsError(try SealedMessage(bytes: unknown)) { error in
            XCTAssertEqual((error as? SealedMessageError)?.code, .unsupportedVersion)
        }
    }

    /// The AES-GCM key and nonce are the documented HKDF output, checked by opening with the raw primitives.
    func testTheDocumentedDerivationOpensIt() throws {
        let message = try SealedMessage.seal(Data("spec".utf8), to: bob.publicBundle, from: alice, context: context, suite: .aes256GCM)
        let shared = try bob.agreementKey.sharedSecretFromKeyAgreement(
            with: Curve25519.KeyAgreement.PublicKey(rawRepresentation: message.ephemeralKey))
        let header = Data([2]) + message.ephemeralKey + bob.publicBundle.agreementKey
        let n = UInt32(context.count)
        let info = Data("parley-seal-v1".utf8) + header + alice.publicBundle.signingKey
            + Data([UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)]) + context
        let okm = shared.hkdfDerivedSymmetricKey(using: SHA256.self, salt: Data("parley-seal-v1".utf8), sharedInfo: info, outputByteCount: 44)
        let raw = okm.withUnsafeBytes { Data($0) }
        let box = try AES.GCM.SealedBox(
            nonce: AES.GCM.Nonce(data: raw.suffix(12)), ciphertext: message.ciphertext.dropLast(16), tag: message.ciphertext.suffix(16))
        XCTAssertEqual(try AES.GCM.open(box, using: SymmetricKey(data: raw.prefix(32)), authenticating: header), Data("spec".utf8))
    }
}
