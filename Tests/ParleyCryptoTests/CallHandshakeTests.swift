import Crypto
import Foundation
import ParleyWire
import XCTest

@testable import ParleyCrypto

/// docs/PROTOCOL.md §5.1: commitment, transcript, keys, SAS; tampering and man-in-the-middle.
final class CallHandshakeTests: XCTestCase {
    let callID = "0f4b6c1e-8d2a-4c3b-9e5f-1a2b3c4d5e6f"
    let caller = DeviceIdentity.generate()
    let callee = DeviceIdentity.generate()

    var callerID: [UInt8] { Array(caller.publicBundle.signingKey) }
    var calleeID: [UInt8] { Array(callee.publicBundle.signingKey) }

    /// Runs a whole handshake; returns (caller keys, callee keys).
    func handshake(
        callerSuites: [MediaCipherSuite] = [.chaCha20Poly1305], calleeSuites: [MediaCipherSuite] = MediaCipherSuite.allCases
    ) throws -> (CallKeys, CallKeys) {
        let a = CallerHandshake(callID: callID, suites: callerSuites)
        let b = try CalleeHandshake(callID: callID, offer: a.offer, supported: calleeSuites)
        let (callerKeys, reveal) = try a.complete(answer: b.answer, callerIdentity: callerID, calleeIdentity: calleeID)
        let calleeKeys = try b.complete(reveal: reveal, callerIdentity: callerID, calleeIdentity: calleeID)
        return (callerKeys, calleeKeys)
    }

    func testBothSidesDeriveTheSameKeysAndSAS() throws {
        for suites in [[MediaCipherSuite.chaCha20Poly1305], [.aes256GCM, .chaCha20Poly1305]] {
            let (x, y) = try handshake(callerSuites: suites)
            XCTAssertEqual(x.suite, suites[0])
            XCTAssertEqual(x.suite, y.suite)
            XCTAssertEqual(x.sas, y.sas)
            XCTAssertEqual(x.transcriptHash, y.transcriptHash)
            XCTAssertEqual(x.callerToCallee.fingerprint, y.callerToCallee.fingerprint)
            XCTAssertEqual(x.calleeToCaller.fingerprint, y.calleeToCaller.fingerprint)
            // Media sealed by one side opens on the other, both ways.
            var sealA = MediaSealer(x.sending(asCaller: true))
            var openB = MediaOpener(y.receiving(asCaller: false))
            XCTAssertEqual(try openB.open(sealA.seal(.audio, [1, 2, 3])).plaintext, [1, 2, 3])
            var sealB = MediaSealer(y.sending(asCaller: false))
            var openA = MediaOpener(x.receiving(asCaller: true))
            XCTAssertEqual(try openA.open(sealB.seal(.audio, [4, 5])).plaintext, [4, 5])
        }
    }

    /// A fixed vector: fixed ephemeral and identity keys give fixed transcript, keys and SAS. The expected
    /// values are recomputed here from the formulas in PROTOCOL §5.1 with swift-crypto directly, so the
    /// test checks the documented derivation, not the code against itself.
    func testVectorMatchesTheDocumentedDerivation() throws {
        let a = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: Data(repeating: 0x11, count: 32))
        let b = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: Data(repeating: 0x22, count: 32))
        let idA = [UInt8](repeating: 0xA1, count: 32)
        let idB = [UInt8](repeating: 0xB2, count: 32)
        let extensionField = CallField(type: 0x10, value: Array("host 192.0.2.1 4000".utf8))
        let caller = CallerHandshake(callID: callID, suites: [.chaCha20Poly1305], extensions: [extensionField], ephemeral: a)
        let callee = try CalleeHandshake(callID: callID, offer: caller.offer, ephemeral: b)
        let (k1, reveal) = try caller.complete(answer: callee.answer, callerIdentity: idA, calleeIdentity: idB)
        let k2 = try callee.complete(reveal: reveal, callerIdentity: idA, calleeIdentity: idB)

        let A = Array(a.publicKey.rawRepresentation)
        let B = Array(b.publicKey.rawRepresentation)
        // Offer: version 1, commitment, suites, the extension.
        let commit = Array(SHA256.hash(data: Data("parley-commit-v1".utf8) + A))
        XCTAssertEqual(caller.offer, [1, 0x01, 0, 32] + commit + [0x02, 0, 1, 1] + [0x10, 0, 19] + Array("host 192.0.2.1 4000".utf8))
        XCTAssertEqual(reveal, A)
        let offerHash = Array(SHA256.hash(data: caller.offer))
        XCTAssertEqual(callee.answer, [1, 0x01, 0, 32] + offerHash + [0x02, 0, 32] + B + [0x03, 0, 1, 1])
        func len(_ x: [UInt8]) -> [UInt8] { withUnsafeBytes(of: UInt32(x.count).bigEndian) { Array($0) } }
        var input: [UInt8] = Array("parley-call-v1".utf8)
        input += Array(callID.utf8)
        input += idA
        input += idB
        input += len(caller.offer)
        input += caller.offer
        input += len(callee.answer)
        input += callee.answer
        input += A
        let th = Array(SHA256.hash(data: input))
        XCTAssertEqual(k1.transcriptHash, th)
        XCTAssertEqual(k2.transcriptHash, th)
        let z = try a.sharedSecretFromKeyAgreement(with: b.publicKey)
        let zKey = z.withUnsafeBytes { SymmetricKey(data: Array($0)) }
        let prk = HKDF<SHA256>.extract(inputKeyMaterial: zKey, salt: th)
        let c2c = HKDF<SHA256>.expand(pseudoRandomKey: prk, info: Data("parley media caller to callee".utf8), outputByteCount: 32)
        XCTAssertEqual(k1.callerToCallee.fingerprint, MediaTrafficSecret(suite: .chaCha20Poly1305, secret: c2c).fingerprint)
        let sasBytes = HKDF<SHA256>.expand(pseudoRandomKey: prk, info: Data("parley sas".utf8), outputByteCount: 5)
            .withUnsafeBytes { [UInt8]($0) }
        XCTAssertEqual(k1.sas, ShortAuthenticationString(bytes: sasBytes))
        XCTAssertEqual(k2.sas, k1.sas)
        // And the first media packet of the caller, sealed by hand: key/iv from S, nonce iv XOR 0.
        let key = HKDF<SHA256>.expand(pseudoRandomKey: c2c, info: Data("parley media key".utf8), outputByteCount: 32)
        let iv = HKDF<SHA256>.expand(pseudoRandomKey: c2c, info: Data("parley media iv".utf8), outputByteCount: 12)
        let header: [UInt8] = [0x91, 0, 0, 0, 0, 0, 0]
        let box = try ChaChaPoly.seal(
            [9, 8, 7], using: key, nonce: ChaChaPoly.Nonce(data: iv.withUnsafeBytes { [UInt8]($0) }), authenticating: header)
        var sealer = MediaSealer(k1.callerToCallee)
        XCTAssertEqual(try sealer.seal(.audio, [9, 8, 7]), header + Array(box.ciphertext) + Array(box.tag))
    }

    func testSASHasSixSymbolsFromThirtySixBits() {
        let sas = ShortAuthenticationString(bytes: [0xFF, 0x00, 0xFF, 0x00, 0xF0])
        // 1111 1111 0000 0000 1111 1111 0000 0000 1111 → 111111 110000 000011 111111 000000 001111
        XCTAssertEqual(sas.indexes, [63, 48, 3, 63, 0, 15])
        XCTAssertEqual(sas.emoji.split(separator: " ").count, 6)
        XCTAssertEqual(sas.words, "pin hammer horse pin dog flower")
        XCTAssertEqual(ShortAuthenticationString.table.count, 64)
        XCTAssertEqual(Set(ShortAuthenticationString.table.map(\.word)).count, 64)
        XCTAssertEqual(Set(ShortAuthenticationString.table.map(\.emoji)).count, 64)
    }

    func testTamperedOfferAnswerAndRevealAreRejected() throws {
        let a = CallerHandshake(callID: callID, suites: [.chaCha20Poly1305])
        let b = try CalleeHandshake(callID: callID, offer: a.offer)
        // Answer to a different offer (e.g. the offer was altered in transit before the callee saw it).
        var alteredOffer = a.offer
        alteredOffer[10] ^= 1
        let bOnAltered = try CalleeHandshake(callID: callID, offer: alteredOffer)
        XCTAssertThrowsError(try a.complete(answer: bOnAltered.answer, callerIdentity: callerID, calleeIdentity: calleeID)) {
            XCTAssertEqual($0 as? CallHandshakeError, .wrongOffer)
        }
        // Answer whose ephemeral key was swapped: keys still derive, but the callee's never match the caller's.
        var answer = try CallAnswer(decoding: b.answer)
        let mallory = Curve25519.KeyAgreement.PrivateKey()
        answer = CallAnswer(
            offerHash: answer.offerHash, ephemeral: Array(mallory.publicKey.rawRepresentation), suite: answer.suite,
            extensions: answer.extensions)
        let (swappedKeys, reveal) = try a.complete(answer: answer.encoded, callerIdentity: callerID, calleeIdentity: calleeID)
        let calleeKeys = try b.complete(reveal: reveal, callerIdentity: callerID, calleeIdentity: calleeID)
        XCTAssertNotEqual(swappedKeys.sas, calleeKeys.sas)
        var sealer = MediaSealer(swappedKeys.sending(asCaller: true))
        var opener = MediaOpener(calleeKeys.receiving(asCaller: false))
        XCTAssertThrowsError(try opener.open(sealer.seal(.audio, [1]))) {
            XCTAssertEqual($0 as? MediaProtectionError, .authenticationFailed)
        }
        // A reveal that is not the committed key (a man in the middle's own key): refused outright.
        XCTAssertThrowsError(
            try b.complete(reveal: Array(mallory.publicKey.rawRepresentation), callerIdentity: callerID, calleeIdentity: calleeID)
        ) { XCTAssertEqual($0 as? CallHandshakeError, .commitmentMismatch) }
        // Truncated reveal, garbage payloads, suite the caller never offered, low-order point.
        XCTAssertThrowsError(try b.complete(reveal: Array(reveal.prefix(31)), callerIdentity: callerID, calleeIdentity: calleeID))
        XCTAssertThrowsError(try CalleeHandshake(callID: callID, offer: [1, 0x01, 0, 31] + [UInt8](repeating: 0, count: 31)))
        XCTAssertThrowsError(try CalleeHandshake(callID: callID, offer: a.offer + [0x05]))
        XCTAssertThrowsError(try CalleeHandshake(callID: callID, offer: [2] + a.offer.dropFirst()))
        XCTAssertThrowsError(try CalleeHandshake(callID: callID, offer: a.offer, supported: [.aes256GCM])) {
            XCTAssertEqual($0 as? CallHandshakeError, .noCommonSuite)
        }
        let aesAnswer = CallAnswer(offerHash: answer.offerHash, ephemeral: answer.ephemeral, suite: .aes256GCM, extensions: [])
        XCTAssertThrowsError(try a.complete(answer: aesAnswer.encoded, callerIdentity: callerID, calleeIdentity: calleeID)) {
            XCTAssertEqual($0 as? CallHandshakeError, .noCommonSuite)
        }
        let zeroKey = CallAnswer(offerHash: answer.offerHash, ephemeral: [UInt8](repeating: 0, count: 32), suite: answer.suite, extensions: [])
        XCTAssertThrowsError(try a.complete(answer: zeroKey.encoded, callerIdentity: callerID, calleeIdentity: calleeID)) {
            XCTAssertEqual($0 as? CallHandshakeError, .badKey)
        }
    }

    func testTranscriptBindsCallIdentitiesAndExtensions() throws {
        let a = CallerHandshake(callID: callID, suites: [.chaCha20Poly1305])
        let b = try CalleeHandshake(callID: callID, offer: a.offer)
        let (k, reveal) = try a.complete(answer: b.answer, callerIdentity: callerID, calleeIdentity: calleeID)
        // The callee believing another caller identity (or call) ends with other keys and another SAS.
        let other = DeviceIdentity.generate()
        let k2 = try b.complete(reveal: reveal, callerIdentity: Array(other.publicBundle.signingKey), calleeIdentity: calleeID)
        XCTAssertNotEqual(k.sas, k2.sas)
        XCTAssertNotEqual(k.callerToCallee.fingerprint, k2.callerToCallee.fingerprint)
        let b3 = try CalleeHandshake(callID: "1f4b6c1e-8d2a-4c3b-9e5f-1a2b3c4d5e6f", offer: a.offer)
        let k3 = try b3.complete(reveal: reveal, callerIdentity: callerID, calleeIdentity: calleeID)
        XCTAssertNotEqual(k3.transcriptHash, k.transcriptHash)
    }

    func testKeysAreSeparatePerDirectionAndPerCall() throws {
        let (x1, _) = try handshake()
        let (x2, _) = try handshake()
        let all = [x1.callerToCallee, x1.calleeToCaller, x2.callerToCallee, x2.calleeToCaller].map(\.fingerprint)
        XCTAssertEqual(Set(all).count, 4)
        // A packet of one direction does not open as the other direction, nor in another call.
        var seal = MediaSealer(x1.callerToCallee)
        let packet = try seal.seal(.audio, [1, 2, 3])
        for wrong in [x1.calleeToCaller, x2.callerToCallee] {
            var opener = MediaOpener(wrong)
            XCTAssertThrowsError(try opener.open(packet)) { XCTAssertEqual($0 as? MediaProtectionError, .authenticationFailed) }
        }
    }

    /// A man in the middle (e.g. a hostile server that handed out its own device bundles on first contact)
    /// runs one handshake with each side. With the commitment it must fix both of its keys before it learns
    /// the honest ones, so the two SAS differ; over many trials they never match.
    func testManInTheMiddleGetsDifferentSAS() throws {
        var matches = 0
        for _ in 0..<200 {
            let honestCaller = CallerHandshake(callID: callID, suites: [.chaCha20Poly1305])
            // Mallory, toward the callee, plays the caller with her own committed key.
            let malloryAsCaller = CallerHandshake(callID: callID, suites: [.chaCha20Poly1305])
            let honestCallee = try CalleeHandshake(callID: callID, offer: malloryAsCaller.offer)
            // Toward the caller, she plays the callee, answering the honest offer.
            let malloryAsCallee = try CalleeHandshake(callID: callID, offer: honestCaller.offer)
            let (callerKeys, reveal) = try honestCaller.complete(
                answer: malloryAsCallee.answer, callerIdentity: callerID, calleeIdentity: calleeID)
            let malloryKeys1 = try malloryAsCallee.complete(reveal: reveal, callerIdentity: callerID, calleeIdentity: calleeID)
            let (malloryKeys2, malloryReveal) = try malloryAsCaller.complete(
                answer: honestCallee.answer, callerIdentity: callerID, calleeIdentity: calleeID)
            let calleeKeys = try honestCallee.complete(reveal: malloryReveal, callerIdentity: callerID, calleeIdentity: calleeID)
            XCTAssertEqual(callerKeys.sas, malloryKeys1.sas)
            XCTAssertEqual(calleeKeys.sas, malloryKeys2.sas)
            if callerKeys.sas == calleeKeys.sas { matches += 1 }
            // She cannot forward the honest reveal to the callee instead: it does not open her commitment.
            XCTAssertThrowsError(try honestCallee.complete(reveal: reveal, callerIdentity: callerID, calleeIdentity: calleeID))
        }
        XCTAssertEqual(matches, 0)
    }
}
