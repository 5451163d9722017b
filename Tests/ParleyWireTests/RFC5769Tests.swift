import NIOCore
import ParleyWire
import XCTest

/// The RFC 5769 test vectors (source: RFC 5769 "Test Vectors for Session Traversal Utilities for NAT
/// (STUN)", §2.1–§2.4), plus RFC 8489 Appendix B.1 (Errata 6268) for USERHASH and
/// MESSAGE-INTEGRITY-SHA256. The bytes are in ``RFC5769``.
final class RFC5769Tests: XCTestCase {
    private var shortTermKey: STUNIntegrityKey { .shortTerm(password: RFC5769.shortTermPassword) }

    // MARK: §2.1 Sample Request

    /// RFC 5769 §2.1: structure and attribute values.
    func testSampleRequestDecodes() throws {
        let m = try STUNDecoder.decode(byteBuffer(RFC5769.request))
        XCTAssertEqual(m.type, .bindingRequest)
        XCTAssertTrue(m.header.hasMagicCookie)
        XCTAssertEqual(m.transactionID, RFC5769.transactionID)
        XCTAssertEqual(m.length, 108)
        XCTAssertEqual(m.attributeCount, 6)
        XCTAssertEqual(m.messageIntegrityOffset, 76)
        XCTAssertNil(m.messageIntegritySHA256Offset)
        XCTAssertEqual(m.fingerprintOffset, 100)
        XCTAssertEqual(m.value(of: .software).map { String(buffer: $0) }, "STUN test client")
        // USERNAME is 9 bytes; the three 0x20 that follow are padding, not value.
        XCTAssertEqual(m.value(of: .username).map { String(buffer: $0) }, "evtj:h6vY")
        // PRIORITY (0x0024) and ICE-CONTROLLED (0x8029) are ICE's (RFC 8445), outside our table.
        let priority = try XCTUnwrap(m.value(of: STUNAttributeType(rawValue: 0x0024)))
        XCTAssertEqual(priority.getInteger(at: priority.readerIndex, as: UInt32.self), 0x6e00_01ff)
        let controlled = try XCTUnwrap(m.value(of: STUNAttributeType(rawValue: 0x8029)))
        XCTAssertEqual(controlled.getInteger(at: controlled.readerIndex, as: UInt64.self), 0x932f_f9b1_5126_3b36)
        var order: [UInt16] = []
        m.forEachAttribute { t, _, _ in order.append(t.rawValue); return true }
        XCTAssertEqual(order, [0x8022, 0x0024, 0x8029, 0x0006, 0x0008, 0x8028])
    }

    /// RFC 5769 §2.1: MESSAGE-INTEGRITY under the short-term password "VOkJxbRl1RmTxUk/WvJxBt".
    func testSampleRequestMessageIntegrity() throws {
        let m = try STUNDecoder.decode(byteBuffer(RFC5769.request))
        XCTAssertEqual(STUNIntegrity.verify(m, key: shortTermKey), .valid)
        XCTAssertEqual(STUNIntegrity.verify(m, key: .shortTerm(password: "VOkJxbRl1RmTxUk/WvJxBu")), .invalid)
    }

    /// RFC 5769 §2.1: FINGERPRINT 0xe57a3bcf covers everything before it, padding included.
    func testSampleRequestFingerprint() throws {
        XCTAssertEqual(STUNDecoder.fingerprint(of: byteBuffer(RFC5769.request), upTo: 100), 0xe57a_3bcf)
        var wrongCRC = RFC5769.request
        wrongCRC[107] ^= 0x01
        XCTAssertThrowsError(try STUNDecoder.decode(byteBuffer(wrongCRC))) { error in
            XCTAssertEqual((error as? STUNDecodeError)?.code, .badFingerprint)
        }
        // The first byte of USERNAME's padding: not part of any value, but covered.
        var wrongPadding = RFC5769.request
        wrongPadding[73] = 0x00
        XCTAssertThrowsError(try STUNDecoder.decode(byteBuffer(wrongPadding))) { error in
            XCTAssertEqual((error as? STUNDecodeError)?.code, .badFingerprint)
        }
    }

    // MARK: §2.2 Sample IPv4 Response

    /// RFC 5769 §2.2: XOR-MAPPED-ADDRESS 192.0.2.1:32853, MESSAGE-INTEGRITY, FINGERPRINT.
    func testSampleIPv4ResponseDecodes() throws {
        let m = try STUNDecoder.decode(byteBuffer(RFC5769.ipv4Response))
        XCTAssertEqual(m.type, .bindingSuccess)
        XCTAssertEqual(m.transactionID, RFC5769.transactionID)
        XCTAssertEqual(m.length, 80)
        XCTAssertEqual(m.fingerprintOffset, 72)
        XCTAssertEqual(m.value(of: .software).map { String(buffer: $0) }, "test vector")
        XCTAssertEqual(m.address(of: .xorMappedAddress, xor: true), .v4(0xC000_0201, port: 32853))
        XCTAssertEqual(STUNIntegrity.verify(m, key: shortTermKey), .valid)
        XCTAssertEqual(STUNDecoder.fingerprint(of: m.bytes, upTo: 72), 0xc07d_4c96)
    }

    /// RFC 5769 §2.2 written again by ``STUNMessageWriter`` comes out byte for byte.
    func testSampleIPv4ResponseReencodes() throws {
        let address = STUNAddress.v4(0xC000_0201, port: 32853)
        XCTAssertEqual(writeSampleResponse(address: address), RFC5769.ipv4Response)
    }

    // MARK: §2.3 Sample IPv6 Response

    /// RFC 5769 §2.3: XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853; the IPv6 XOR
    /// uses the transaction ID as well as the cookie.
    func testSampleIPv6ResponseDecodes() throws {
        let m = try STUNDecoder.decode(byteBuffer(RFC5769.ipv6Response))
        XCTAssertEqual(m.type, .bindingSuccess)
        XCTAssertEqual(m.transactionID, RFC5769.transactionID)
        XCTAssertEqual(m.length, 92)
        XCTAssertEqual(
            m.address(of: .xorMappedAddress, xor: true),
            .v6(0x2001_0db8_1234_5678, 0x0011_2233_4455_6677, port: 32853))
        XCTAssertEqual(
            m.address(of: .xorMappedAddress, xor: true)?.description, "[2001:db8:1234:5678:11:2233:4455:6677]:32853")
        XCTAssertEqual(STUNIntegrity.verify(m, key: shortTermKey), .valid)
        XCTAssertEqual(STUNDecoder.fingerprint(of: m.bytes, upTo: 84), 0xc8fb_0b4c)
    }

    /// RFC 5769 §2.3 written again by ``STUNMessageWriter`` comes out byte for byte.
    func testSampleIPv6ResponseReencodes() throws {
        let address = STUNAddress.v6(0x2001_0db8_1234_5678, 0x0011_2233_4455_6677, port: 32853)
        XCTAssertEqual(writeSampleResponse(address: address), RFC5769.ipv6Response)
    }

    /// With our own zero padding the §2.2 response differs from the RFC only in SOFTWARE's pad byte and
    /// in the two checksums over it, and still decodes and verifies.
    func testZeroPaddedResponseDiffersOnlyWhereItShould() throws {
        let ours = writeSampleResponse(address: .v4(0xC000_0201, port: 32853), spacePadding: false)
        XCTAssertEqual(ours.count, RFC5769.ipv4Response.count)
        let differing = Set(ours.indices.filter { ours[$0] != RFC5769.ipv4Response[$0] })
        let allowed = Set([35] + Array(52..<72) + Array(76..<80))
        let unexpected = differing.subtracting(allowed).sorted()
        XCTAssertTrue(unexpected.isEmpty, "unexpected differences at \(unexpected)")
        XCTAssertTrue(differing.contains(35))
        let m = try STUNDecoder.decode(byteBuffer(ours))
        XCTAssertEqual(STUNIntegrity.verify(m, key: shortTermKey), .valid)
    }

    /// The XOR-MAPPED-ADDRESS values of §2.2 and §2.3 through ``STUNAddressCodec`` both ways.
    func testAddressCodecAgainstVectors() throws {
        let header = STUNHeader(type: .bindingSuccess, transactionID: RFC5769.transactionID)
        let cases: [(STUNAddress, [UInt8])] = [
            (.v4(0xC000_0201, port: 32853), hexBytes("00 01 a1 47 e1 12 a6 43")),
            (.v6(0x2001_0db8_1234_5678, 0x0011_2233_4455_6677, port: 32853),
             hexBytes("00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9")),
        ]
        for (address, wire) in cases {
            var out = ByteBuffer()
            STUNAddressCodec.encode(address, xor: true, transactionID: RFC5769.transactionID, into: &out)
            XCTAssertEqual(Array(out.readableBytesView), wire)
            XCTAssertEqual(try STUNAddressCodec.decode(byteBuffer(wire), xor: true, header: header), address)
        }
    }

    // MARK: §2.4 Sample Request with Long-Term Authentication

    /// RFC 5769 §2.4: USERNAME, NONCE, REALM, MESSAGE-INTEGRITY, no FINGERPRINT.
    func testLongTermRequestDecodes() throws {
        let m = try STUNDecoder.decode(byteBuffer(RFC5769.longTermRequest))
        XCTAssertEqual(m.type, .bindingRequest)
        XCTAssertEqual(m.transactionID, STUNTransactionID(high: 0x78ad_3433_c6ad_72c0, low: 0x29da_412e))
        XCTAssertEqual(m.length, 116)
        XCTAssertEqual(m.messageIntegrityOffset, 92)
        XCTAssertNil(m.fingerprintOffset)
        XCTAssertEqual(m.value(of: .username).map { Array($0.readableBytesView) }, Array(RFC5769.longTermUsername.utf8))
        XCTAssertEqual(m.value(of: .nonce).map { String(buffer: $0) }, RFC5769.nonce)
        XCTAssertEqual(m.value(of: .realm).map { String(buffer: $0) }, RFC5769.realm)
    }

    /// RFC 5769 §2.4's key is MD5("マトリックス:example.org:TheMatrIX"): the password after SASLprep
    /// (RFC 4013), which deletes U+00AD and NFKC-folds "ª" to "a" and "Ⅸ" to "IX".
    ///
    /// RFC 8489 §9.2.2 replaced SASLprep with the OpaqueString profile of RFC 8265, which only maps
    /// non-ASCII spaces and applies NFC, so ``STUNIntegrity/opaqueString(_:)`` leaves this password as
    /// it is and cannot produce the RFC 5769 key from it. (Strict OpaqueString would reject the password
    /// outright: U+00AD is a default-ignorable code point, disallowed by the PRECIS FreeformClass.) The
    /// key is therefore built from the SASLprep output the RFC states, and checked both as literal bytes
    /// and through ``STUNIntegrityKey/longTerm(username:realm:password:algorithm:)``.
    func testLongTermRequestMessageIntegrity() throws {
        let m = try STUNDecoder.decode(byteBuffer(RFC5769.longTermRequest))

        // MD5("マトリックス:example.org:TheMatrIX"), computed outside this codebase.
        let rfcKey = STUNIntegrityKey(bytes: hexBytes("e8 ca 7a d5 9d 5e b0 51 8e 31 29 11 d2 da b2 a9"))
        XCTAssertEqual(STUNIntegrity.verify(m, key: rfcKey), .valid)

        let prepared = STUNIntegrityKey.longTerm(
            username: RFC5769.longTermUsername, realm: RFC5769.realm, password: RFC5769.longTermPasswordSASLprepped)
        XCTAssertEqual(prepared.bytes, rfcKey.bytes)
        XCTAssertEqual(STUNIntegrity.verify(m, key: prepared), .valid)

        // OpaqueString (NFC) keeps the soft hyphen, ª and Ⅸ: a different key, which does not verify.
        XCTAssertEqual(STUNIntegrity.opaqueString(RFC5769.longTermPassword), RFC5769.longTermPassword)
        let opaque = STUNIntegrityKey.longTerm(
            username: RFC5769.longTermUsername, realm: RFC5769.realm, password: RFC5769.longTermPassword)
        XCTAssertNotEqual(opaque.bytes, rfcKey.bytes)
        XCTAssertEqual(STUNIntegrity.verify(m, key: opaque), .invalid)
    }

    // MARK: RFC 8489 Appendix B.1 (Errata 6268)

    /// RFC 8489 §14.4 / B.1: USERHASH = SHA-256("マトリックス:example.org").
    func testUserhashMatchesRFC8489AppendixB1() {
        XCTAssertEqual(
            STUNIntegrity.userhash(username: RFC5769.longTermUsername, realm: RFC5769.realm), RFC5769.rfc8489B1Userhash)
    }

    /// RFC 8489 B.1 (as corrected by Errata 6268): MESSAGE-INTEGRITY-SHA256 under
    /// SHA-256("マトリックス:example.org:TheMatrIX"), PASSWORD-ALGORITHM SHA-256, USERHASH.
    func testRFC8489AppendixB1Request() throws {
        let m = try STUNDecoder.decode(byteBuffer(RFC5769.rfc8489B1Request))
        XCTAssertEqual(m.type, .bindingRequest)
        XCTAssertEqual(m.messageIntegritySHA256Offset, 128)
        XCTAssertNil(m.messageIntegrityOffset)
        XCTAssertEqual(m.value(of: .userhash).map { Array($0.readableBytesView) }, RFC5769.rfc8489B1Userhash)
        XCTAssertEqual(m.value(of: .nonce).map { String(buffer: $0) }, RFC5769.rfc8489B1Nonce)
        XCTAssertEqual(m.value(of: .passwordAlgorithm).map { Array($0.readableBytesView) }, [0, 2, 0, 0])
        let sha256 = STUNIntegrityKey.longTerm(
            username: RFC5769.longTermUsername, realm: RFC5769.realm, password: RFC5769.longTermPasswordSASLprepped,
            algorithm: .sha256)
        XCTAssertEqual(STUNIntegrity.verify(m, key: sha256), .valid)
        let md5 = STUNIntegrityKey.longTerm(
            username: RFC5769.longTermUsername, realm: RFC5769.realm, password: RFC5769.longTermPasswordSASLprepped)
        XCTAssertEqual(STUNIntegrity.verify(m, key: md5), .invalid)
    }

    // MARK: MESSAGE-INTEGRITY-SHA256 + USERHASH round trip

    /// Written by us, read by us: USERHASH, REALM, NONCE, PASSWORD-ALGORITHM and a full-length
    /// MESSAGE-INTEGRITY-SHA256. Then every covered byte is disturbed in turn: the result either no longer
    /// decodes or no longer verifies.
    func testMessageIntegritySHA256WithUserhashRoundTrip() throws {
        let key = STUNIntegrityKey.longTerm(
            username: "alice", realm: "example.org", password: "s3cret", algorithm: .sha256)
        let userhash = STUNIntegrity.userhash(username: "alice", realm: "example.org")
        XCTAssertEqual(userhash.count, 32)
        var out = ByteBuffer()
        let w = STUNMessageWriter(type: .bindingRequest, transactionID: STUNTransactionID(high: 1, low: 2), into: &out)
        w.append(.userhash, userhash, into: &out)
        w.append(.realm, text: "example.org", into: &out)
        w.append(.nonce, text: "obMatJos2AAACnonce", into: &out)
        w.append(.passwordAlgorithm, uint32: 0x0002_0000, into: &out)
        w.appendMessageIntegritySHA256(key: key, into: &out)
        let bytes = Array(out.readableBytesView)

        let m = try STUNDecoder.decode(byteBuffer(bytes))
        XCTAssertEqual(m.value(of: .userhash).map { Array($0.readableBytesView) }, userhash)
        XCTAssertEqual(STUNIntegrity.verify(m, key: key), .valid)
        let md5 = STUNIntegrityKey.longTerm(username: "alice", realm: "example.org", password: "s3cret")
        XCTAssertEqual(STUNIntegrity.verify(m, key: md5), .invalid)
        let offset = try XCTUnwrap(m.messageIntegritySHA256Offset)
        XCTAssertEqual(offset + 36, bytes.count)

        for i in 0..<bytes.count {
            for bit in [UInt8(0x01), 0x80] {
                var flipped = bytes
                flipped[i] ^= bit
                guard let f = try? STUNDecoder.decode(byteBuffer(flipped)) else { continue }
                XCTAssertNotEqual(STUNIntegrity.verify(f, key: key), .valid, "byte \(i) bit \(bit) went unnoticed")
            }
        }
        // The MAC's last bit, named explicitly.
        var lastBit = bytes
        lastBit[bytes.count - 1] ^= 0x01
        XCTAssertEqual(STUNIntegrity.verify(try STUNDecoder.decode(byteBuffer(lastBit)), key: key), .invalid)
    }

    /// RFC 8489 §9.2.4: with both, MESSAGE-INTEGRITY-SHA256 decides, whatever MESSAGE-INTEGRITY says.
    func testSHA256WinsOverSHA1() throws {
        let key = STUNIntegrityKey.shortTerm(password: "right")
        var out = ByteBuffer()
        let w = STUNMessageWriter(type: .bindingRequest, transactionID: STUNTransactionID(high: 3, low: 4), into: &out)
        w.append(.username, text: "u:v", into: &out)
        w.appendMessageIntegrity(key: .shortTerm(password: "wrong"), into: &out)
        w.appendMessageIntegritySHA256(key: key, into: &out)
        w.appendFingerprint(into: &out)
        let m = try STUNDecoder.decode(out)
        XCTAssertNotNil(m.messageIntegrityOffset)
        XCTAssertNotNil(m.messageIntegritySHA256Offset)
        XCTAssertEqual(STUNIntegrity.verify(m, key: key), .valid)
        XCTAssertEqual(STUNIntegrity.verify(m, key: .shortTerm(password: "wrong")), .invalid)
    }

    // MARK: Helpers

    /// The §2.2/§2.3 response as ``STUNMessageWriter`` writes it. RFC 5769 pads SOFTWARE with a space
    /// (0x20) on purpose; our writer pads with zeros (RFC 8489 §14 leaves the content open), so to
    /// reproduce the vector the one pad byte is set to 0x20 before the checksums are computed.
    private func writeSampleResponse(address: STUNAddress, spacePadding: Bool = true) -> [UInt8] {
        var out = ByteBuffer()
        let w = STUNMessageWriter(type: .bindingSuccess, transactionID: RFC5769.transactionID, into: &out)
        w.append(.software, text: "test vector", into: &out)
        if spacePadding { out.setInteger(UInt8(0x20), at: w.start + 20 + 4 + 11) }
        w.append(.xorMappedAddress, address: address, xor: true, into: &out)
        w.appendMessageIntegrity(key: shortTermKey, into: &out)
        w.appendFingerprint(into: &out)
        return Array(out.readableBytesView)
    }
}
