import NIOCore
import ParleyRelay
import ParleyWire
import XCTest

/// What ``STUNServer/handle(_:from:on:transport:now:into:)`` does with malformed, odd and hostile input
/// (RFC 8489 §6.3, RFC 5780 §6–§7, RFC 3489 compatibility). Every case asserts the exact answer: which
/// action, which error code, and for answers the decoded message (transaction ID, cookie, attributes).
/// Every exchange also checks the amplification bound: answer ≤ request + amplificationAllowance.
final class MalformedInputTests: XCTestCase {
    static let client = STUNAddress.v4(0xC633_6401, port: 40000)  // 198.51.100.1:40000
    static let clientV6 = STUNAddress.v6(0x2001_0db8_0000_0000, 0x0000_0000_0000_0001, port: 40000)
    static let behaviour = BehaviourDiscovery(
        primaryIP: .v4(0xC000_020A, port: 0), alternateIP: .v4(0xC000_020B, port: 0),  // 192.0.2.10 / .11
        primaryPort: 3478, alternatePort: 3479)

    let plain = STUNServer(configuration: STUNServerConfiguration())
    let discovery = STUNServer(
        configuration: STUNServerConfiguration(behaviourDiscovery: MalformedInputTests.behaviour))
    var both: [STUNServer] { [plain, discovery] }

    // MARK: Not STUN at all: dropped

    /// RFC 8489 §6.3: shorter than a header is not STUN.
    func testTruncatedHeaderIsDroppedAtEveryLength() {
        let full = RawSTUN().with(.software, Array("abc".utf8)).withFingerprint().bytes
        for server in both {
            for n in 0..<20 {
                let x = exchange(server, Array(full.prefix(n)))
                XCTAssertEqual(x.action, .drop(.malformed), "length \(n)")
            }
        }
    }

    /// RFC 8489 §6.3: the length field must be a multiple of 4 and agree with the datagram.
    func testWrongLengthFieldIsDropped() {
        let request = RawSTUN().with(.software, Array("abcd".utf8))  // 8 bytes of attributes
        let cases: [(String, [UInt8])] = [
            ("too long", request.withLengthField(12).bytes),
            ("far too long", request.withLengthField(0xFFFC).bytes),
            ("too short", request.withLengthField(4).bytes),
            ("zero", request.withLengthField(0).bytes),
            ("not a multiple of 4", request.withLengthField(6).bytes),
            ("odd, matching the datagram", RawSTUN().withLengthField(3).bytes + [0, 0, 0]),
            ("trailing bytes after the message", RawSTUN().bytes + [0, 0, 0, 0]),
        ]
        for server in both {
            for (name, bytes) in cases {
                XCTAssertEqual(exchange(server, bytes).action, .drop(.malformed), name)
            }
        }
    }

    /// RFC 8489 §5: the top two bits of a STUN message are zero (0b01 is TURN ChannelData).
    func testTopBitsSetIsDropped() {
        for server in both {
            for bits: UInt8 in [0x40, 0x80, 0xC0] {
                var bytes = RawSTUN().bytes
                bytes[0] |= bits
                XCTAssertEqual(exchange(server, bytes).action, .drop(.malformed), "bits \(bits)")
            }
        }
    }

    /// RFC 8489 §7.3: a FINGERPRINT that does not match means the message is not STUN: no answer.
    func testWrongFingerprintIsDropped() {
        for server in both {
            var bytes = RawSTUN().with(.software, Array("abc".utf8)).withFingerprint().bytes
            bytes[bytes.count - 1] ^= 0x01
            XCTAssertEqual(exchange(server, bytes).action, .drop(.malformed))
            var body = RawSTUN().with(.software, Array("abc".utf8)).withFingerprint().bytes
            body[24] ^= 0x20  // "abc" → "Abc": the CRC covers it
            XCTAssertEqual(exchange(server, body).action, .drop(.malformed))
        }
    }

    // MARK: RFC 3489 (no magic cookie)

    /// RFC 8489 §12 / RFC 3489 §8.2: a classic Binding request is answered with MAPPED-ADDRESS (no XOR
    /// form, which a classic client cannot read), echoing its 128-bit transaction ID.
    func testClassicBindingRequestGetsClassicAnswer() throws {
        let request = RawSTUN(cookie: 0x0BAD_CAFE)
        for server in both {
            let x = exchange(server, request.bytes)
            XCTAssertEqual(x.action, .respond(to: Self.client, from: .primary, outcome: .success))
            let answer = try decodeAnswer(x, to: request, type: .bindingSuccess)
            XCTAssertFalse(answer.header.hasMagicCookie)
            XCTAssertEqual(answer.address(of: .mappedAddress, xor: false), Self.client)
            XCTAssertFalse(answer.contains(.xorMappedAddress))
            XCTAssertFalse(answer.contains(.otherAddress))
            XCTAssertFalse(answer.contains(.responseOrigin))
            if server.configuration.behaviourDiscovery != nil {
                // RFC 3489 §11.2.2/§11.2.3: SOURCE-ADDRESS and CHANGED-ADDRESS instead of RFC 5780's names.
                XCTAssertEqual(answer.address(of: .sourceAddress, xor: false), .v4(0xC000_020A, port: 3478))
                XCTAssertEqual(answer.address(of: .changedAddress, xor: false), .v4(0xC000_020B, port: 3479))
            } else {
                XCTAssertFalse(answer.contains(.sourceAddress))
                XCTAssertFalse(answer.contains(.changedAddress))
            }
        }
    }

    /// Classic messages other than a Binding request are dropped, well-formed or not.
    func testClassicNonBindingIsDropped() {
        let allocate = RawSTUN(.allocate, .request, cookie: 0x0BAD_CAFE)
        for server in both {
            XCTAssertEqual(exchange(server, allocate.bytes).action, .drop(.classicNonBinding))
            let overrun = allocate.with(raw: 0x8022, length: 100, [1, 2, 3, 4])
            XCTAssertEqual(exchange(server, overrun.bytes).action, .drop(.classicNonBinding))
        }
    }

    /// A classic Binding request that fails attribute parsing gets a classic 400.
    func testClassicBindingWithOverrunGets400() throws {
        let request = RawSTUN(cookie: 0x0BAD_CAFE).with(raw: 0x8022, length: 100, [1, 2, 3, 4])
        try assertError(.badRequest, plain, request, reason: "Bad Request")
    }

    /// RFC 5780 §7.5: RESPONSE-PORT needs the magic cookie.
    func testClassicBindingWithResponsePortGets400() throws {
        let request = RawSTUN(cookie: 0x0BAD_CAFE).with(.responsePort, [0x9C, 0x41, 0, 0])
        try assertError(.badRequest, discovery, request)
    }

    // MARK: Structure errors in requests: 400

    /// An attribute whose length runs past the end of the message.
    func testAttributeOverrunningMessageGets400() throws {
        for server in both {
            let cut = RawSTUN().with(raw: 0x8022, length: 5, [1, 2, 3, 4])
            try assertError(.badRequest, server, cut, reason: "Bad Request")
            try assertError(.badRequest, server, RawSTUN().with(raw: 0x0006, length: 0xFFFF, [1, 2, 3, 4]))
            // A correct attribute, then one whose value is cut off by the end of the message.
            try assertError(
                .badRequest, server, RawSTUN().with(.software, [1, 2, 3, 4]).with(raw: 0x8023, length: 8, [1, 2, 3, 4]))
        }
    }

    /// RFC 8489 §14.7: FINGERPRINT is last; an attribute after it makes the request bad (400), whatever
    /// the CRC says.
    func testAttributeAfterFingerprintGets400() throws {
        let request = RawSTUN().withFingerprint()
        var bytes = request.bytes
        // Append SOFTWARE "x" after FINGERPRINT and fix the length field.
        bytes += be16(0x8022) + be16(1) + [0x78, 0, 0, 0]
        let length = bytes.count - 20
        bytes[2] = UInt8(length >> 8)
        bytes[3] = UInt8(length & 0xFF)
        for server in both {
            let x = exchange(server, bytes)
            XCTAssertEqual(x.action, .respond(to: Self.client, from: .primary, outcome: .error(.badRequest)))
            let answer = try decodeAnswer(x, to: request, type: .bindingError)
            XCTAssertEqual(answer.errorCode?.code, 400)
        }
    }

    /// RFC 8489 §14.5/§14.6/§14.7: MESSAGE-INTEGRITY is 20 bytes, MESSAGE-INTEGRITY-SHA256 16–32 in steps of
    /// 4, FINGERPRINT 4. Anything else is a bad request.
    func testIntegrityAttributesOfWrongLengthGet400() throws {
        let cases: [(UInt16, Int)] = [
            (0x0008, 0), (0x0008, 16), (0x0008, 19), (0x0008, 24), (0x0008, 32),
            (0x001C, 0), (0x001C, 12), (0x001C, 18), (0x001C, 36), (0x001C, 64),
            (0x8028, 0), (0x8028, 8),
        ]
        for server in both {
            for (type, length) in cases {
                let request = RawSTUN().with(raw: type, length: length, [UInt8](repeating: 0xAB, count: length))
                try assertError(.badRequest, server, request, "type \(type) length \(length)")
            }
        }
    }

    /// ``STUNDecoder/maxAttributes`` (128) zero-length attributes are fine; 129 get 400.
    func testAttributeCountLimit() throws {
        for server in both {
            var ok = RawSTUN()
            for _ in 0..<128 { ok = ok.with(raw: 0x8FFF, length: 0) }
            let x = exchange(server, ok.bytes)
            XCTAssertEqual(x.action, .respond(to: Self.client, from: .primary, outcome: .success))
            _ = try decodeAnswer(x, to: ok, type: .bindingSuccess)

            try assertError(.badRequest, server, ok.with(raw: 0x8FFF, length: 0), "129 attributes")
            // The most a 16-bit length field allows: 16383 empty attributes.
            var most = RawSTUN()
            most.attributes = Array(repeating: (0x8FFF, 0, []), count: 16383)
            XCTAssertEqual(most.bytes.count, 20 + 0xFFFC)
            try assertError(.badRequest, server, most, "16383 attributes")
        }
    }

    /// The largest message a length field allows (65552 bytes): one huge comprehension-optional
    /// attribute is skipped; one whose length overruns by a byte is a bad request.
    func testLargestMessage() throws {
        let value = [UInt8](repeating: 0x5A, count: 0xFFF8)
        let huge = RawSTUN().with(raw: 0x8FFF, length: value.count, value)
        XCTAssertEqual(huge.bytes.count, 65552)
        for server in both {
            let x = exchange(server, huge.bytes)
            XCTAssertEqual(x.action, .respond(to: Self.client, from: .primary, outcome: .success))
            let answer = try decodeAnswer(x, to: huge, type: .bindingSuccess)
            XCTAssertEqual(answer.address(of: .xorMappedAddress, xor: true), Self.client)
            XCTAssertLessThan(x.answer.count, 100)

            let over = RawSTUN().with(raw: 0x8FFF, length: 0xFFF9, value)
            XCTAssertEqual(over.bytes.count, 65552)
            try assertError(.badRequest, server, over)
        }
    }

    // MARK: Unknown attributes

    /// RFC 8489 §6.3.1.1: an unknown comprehension-required attribute gets 420 listing it.
    func testUnknownComprehensionRequiredGets420() throws {
        for server in both {
            for fingerprint in [false, true] {
                var request = RawSTUN().with(raw: 0x7777, length: 3, [1, 2, 3])
                request.fingerprint = fingerprint
                let answer = try assertError(.unknownAttribute, server, request)
                XCTAssertEqual(unknownAttributes(answer), [0x7777])
                XCTAssertEqual(answer.fingerprintOffset != nil, fingerprint, "FINGERPRINT in answer iff in request")
            }
        }
    }

    /// More than eight unknown attributes: 420 listing the first eight (a longer list would only make the
    /// answer a better amplifier).
    func testManyUnknownAttributesListAtMostEight() throws {
        var request = RawSTUN()
        for t in 0..<12 { request = request.with(raw: 0x7000 + UInt16(t), length: 0) }
        let answer = try assertError(.unknownAttribute, plain, request)
        XCTAssertEqual(unknownAttributes(answer), (0..<8).map { 0x7000 + UInt16($0) })
    }

    /// RFC 8489 §14: comprehension-optional attributes we do not know are ignored.
    func testUnknownComprehensionOptionalIsIgnored() throws {
        let request = RawSTUN().with(raw: 0x8999, length: 5, [1, 2, 3, 4, 5]).with(raw: 0xFFFF, length: 0)
        for server in both {
            let x = exchange(server, request.bytes)
            XCTAssertEqual(x.action, .respond(to: Self.client, from: .primary, outcome: .success))
            let answer = try decodeAnswer(x, to: request, type: .bindingSuccess)
            XCTAssertEqual(answer.address(of: .xorMappedAddress, xor: true), Self.client)
            XCTAssertEqual(answer.address(of: .mappedAddress, xor: false), Self.client)
            XCTAssertEqual(answer.value(of: .software).map { String(buffer: $0) }, "parley")
            XCTAssertNil(answer.errorCode)
        }
    }

    /// RFC 8489 §14.5: attributes after MESSAGE-INTEGRITY (but FINGERPRINT) are ignored, unknown ones too.
    /// With no credentials configured the integrity cannot be checked and the answer is unprotected.
    func testAttributesAfterMessageIntegrityAreIgnored() throws {
        let request = RawSTUN().with(.username, Array("u:v".utf8))
            .with(.messageIntegrity, [UInt8](repeating: 0, count: 20))
            .with(raw: 0x7777, length: 0)
            .withFingerprint()
        for server in both {
            let x = exchange(server, request.bytes)
            XCTAssertEqual(x.action, .respond(to: Self.client, from: .primary, outcome: .success))
            let answer = try decodeAnswer(x, to: request, type: .bindingSuccess)
            XCTAssertNil(answer.messageIntegrityOffset)
            XCTAssertNotNil(answer.fingerprintOffset)
        }
    }

    // MARK: Not requests: dropped

    /// RFC 8489 §6.3.2/§6.3.3: indications and responses are never answered, valid or malformed.
    func testIndicationsAndResponsesAreDropped() {
        for server in both {
            for cls in [STUNClass.indication, .successResponse, .errorResponse] {
                for method in [STUNMethod.binding, .allocate, STUNMethod(rawValue: 0xFFF)] {
                    let valid = RawSTUN(method, cls).with(.software, [1]).withFingerprint()
                    XCTAssertEqual(exchange(server, valid.bytes).action, .drop(.notRequest), "\(method) \(cls)")
                    let unknown = RawSTUN(method, cls).with(raw: 0x7777, length: 0)
                    XCTAssertEqual(exchange(server, unknown.bytes).action, .drop(.notRequest), "\(method) \(cls)")
                    let overrun = RawSTUN(method, cls).with(raw: 0x8022, length: 9, [1, 2, 3, 4])
                    XCTAssertEqual(
                        exchange(server, overrun.bytes).action, .drop(.malformedNonRequest), "\(method) \(cls)")
                }
            }
        }
    }

    // MARK: Unknown methods

    /// RFC 8489 §6.3.1: a request for a method the server does not know gets 400, as an error response
    /// of that method, with FINGERPRINT when the request had one.
    func testUnknownMethodGets400() throws {
        for server in both {
            for method in [STUNMethod.allocate, .refresh, .createPermission, STUNMethod(rawValue: 0x002),
                           STUNMethod(rawValue: 0xFFF)] {
                let answer = try assertError(.badRequest, server, RawSTUN(method, .request), "\(method)")
                XCTAssertEqual(answer.type.method, method)
                XCTAssertNil(answer.fingerprintOffset)
                let withFP = try assertError(.badRequest, server, RawSTUN(method, .request).withFingerprint())
                XCTAssertNotNil(withFP.fingerprintOffset)
            }
        }
    }

    // MARK: RFC 5780: CHANGE-REQUEST, RESPONSE-PORT, PADDING

    /// Without behaviour discovery, CHANGE-REQUEST, RESPONSE-PORT and PADDING are unknown (420).
    func testDiscoveryAttributesAreUnknownWhenDiscoveryIsOff() throws {
        let cases: [(STUNAttributeType, [UInt8])] = [
            (.changeRequest, [0, 0, 0, 6]),
            (.responsePort, [0x9C, 0x41, 0, 0]),
            (.padding, [UInt8](repeating: 0, count: 64)),
        ]
        for (type, value) in cases {
            let answer = try assertError(.unknownAttribute, plain, RawSTUN().with(type, value), "\(type)")
            XCTAssertEqual(unknownAttributes(answer), [type.rawValue])
        }
    }

    /// RFC 5780 §7.2: CHANGE-REQUEST flags pick the endpoint the answer leaves from; RESPONSE-ORIGIN says
    /// which, OTHER-ADDRESS names the diagonal of the endpoint the request arrived on.
    func testChangeRequestAnswersFromChangedEndpoint() throws {
        let cases: [(received: STUNEndpoint, flags: UInt32, from: STUNEndpoint)] = [
            (.primary, 0, .primary),
            (.primary, 0x4, STUNEndpoint(alternateIP: true, alternatePort: false)),
            (.primary, 0x2, STUNEndpoint(alternateIP: false, alternatePort: true)),
            (.primary, 0x6, STUNEndpoint(alternateIP: true, alternatePort: true)),
            (STUNEndpoint(alternateIP: true, alternatePort: false), 0x4, .primary),
            (STUNEndpoint(alternateIP: true, alternatePort: true), 0x6, .primary),
            // Bits other than A and B are ignored.
            (.primary, 0xFFFF_FFF9, .primary),
        ]
        for c in cases {
            let request = RawSTUN().with(.changeRequest, be32(c.flags))
            let x = exchange(discovery, request.bytes, on: c.received)
            XCTAssertEqual(x.action, .respond(to: Self.client, from: c.from, outcome: .success), "\(c)")
            let answer = try decodeAnswer(x, to: request, type: .bindingSuccess)
            XCTAssertEqual(answer.address(of: .xorMappedAddress, xor: true), Self.client)
            XCTAssertEqual(answer.address(of: .responseOrigin, xor: false), Self.behaviour.address(c.from), "\(c)")
            XCTAssertEqual(
                answer.address(of: .otherAddress, xor: false), Self.behaviour.address(c.received.other), "\(c)")
        }
    }

    /// A connection cannot be answered from another address: CHANGE-REQUEST with a flag set over TCP/TLS
    /// gets 400; with no flags it is harmless.
    func testChangeRequestOverStreamTransports() throws {
        for transport in [STUNTransport.tcp, .tls] {
            try assertError(.badRequest, discovery, RawSTUN().with(.changeRequest, [0, 0, 0, 4]), transport: transport)
            let ok = RawSTUN().with(.changeRequest, [0, 0, 0, 0])
            XCTAssertEqual(exchange(discovery, ok.bytes, transport: transport).action,
                           .respond(to: Self.client, from: .primary, outcome: .success))
        }
    }

    /// RFC 5780 §7.2: CHANGE-REQUEST's value is 4 bytes.
    func testChangeRequestWithBadLengthGets400() throws {
        for value: [UInt8] in [[], [0, 6], [0, 0, 6], [0, 0, 0, 0, 0, 0, 0, 6]] {
            try assertError(.badRequest, discovery, RawSTUN().with(.changeRequest, value), "length \(value.count)")
        }
    }

    /// RFC 5780 §7.5: RESPONSE-PORT sends the answer to the source IP at that port; XOR-MAPPED-ADDRESS
    /// still reports the real source.
    func testResponsePortChangesDestinationPort() throws {
        let request = RawSTUN().with(.responsePort, [0x9C, 0x41, 0, 0])  // 40001
        let x = exchange(discovery, request.bytes)
        XCTAssertEqual(x.action, .respond(to: Self.client.withPort(40001), from: .primary, outcome: .success))
        let answer = try decodeAnswer(x, to: request, type: .bindingSuccess)
        XCTAssertEqual(answer.address(of: .xorMappedAddress, xor: true), Self.client)

        let combined = RawSTUN().with(.changeRequest, [0, 0, 0, 6]).with(.responsePort, [0x9C, 0x41, 0, 0])
        let diagonal = STUNEndpoint(alternateIP: true, alternatePort: true)
        XCTAssertEqual(exchange(discovery, combined.bytes).action,
                       .respond(to: Self.client.withPort(40001), from: diagonal, outcome: .success))
    }

    /// RESPONSE-PORT is a port followed by 2 bytes of padding (RFC 5780 §7.5): this server takes a value of
    /// 4 bytes, or of 2 from clients that leave the padding out of the length, refuses other lengths, and
    /// honours it over UDP only.
    func testResponsePortMisuseGets400() throws {
        let short = RawSTUN().with(.responsePort, [0x9C, 0x41])
        XCTAssertEqual(exchange(discovery, short.bytes).action,
                       .respond(to: Self.client.withPort(40001), from: .primary, outcome: .success))
        for value: [UInt8] in [[], [0x9C], [0x9C, 0x41, 0, 0, 0, 0, 0, 0]] {
            try assertError(.badRequest, discovery, RawSTUN().with(.responsePort, value), "length \(value.count)")
        }
        try assertError(.badRequest, discovery, RawSTUN().with(.responsePort, [0x9C, 0x41, 0, 0]), transport: .tcp)
    }

    /// RFC 5780 §7.6: PADDING from an unauthenticated client is ignored (it would be an amplifier).
    func testUnauthenticatedPaddingIsIgnored() throws {
        for size in [4, 64, 1200] {
            let request = RawSTUN().with(.padding, [UInt8](repeating: 0, count: size))
            let x = exchange(discovery, request.bytes)
            XCTAssertEqual(x.action, .respond(to: Self.client, from: .primary, outcome: .success))
            let answer = try decodeAnswer(x, to: request, type: .bindingSuccess)
            XCTAssertFalse(answer.contains(.padding))
            XCTAssertLessThanOrEqual(x.answer.count, 84)
        }
    }

    // MARK: Amplification

    /// An IPv6 client's 20-byte request: the answer must stay within 20 + 64 bytes, so the optional
    /// MAPPED-ADDRESS is left out while XOR-MAPPED-ADDRESS, OTHER-ADDRESS and RESPONSE-ORIGIN fit.
    func testAmplificationBudgetDropsOptionalAttributes() throws {
        let request = RawSTUN()
        let x = exchange(discovery, request.bytes, from: Self.clientV6)
        XCTAssertEqual(x.action, .respond(to: Self.clientV6, from: .primary, outcome: .success))
        let answer = try decodeAnswer(x, to: request, type: .bindingSuccess)
        XCTAssertEqual(answer.address(of: .xorMappedAddress, xor: true), Self.clientV6)
        XCTAssertNotNil(answer.address(of: .otherAddress, xor: false))
        XCTAssertNotNil(answer.address(of: .responseOrigin, xor: false))
        XCTAssertFalse(answer.contains(.mappedAddress))
    }

    /// A small allowance keeps only the mandatory XOR-MAPPED-ADDRESS; a long SOFTWARE is left out.
    func testSmallAllowanceAndLongSoftware() throws {
        let tight = STUNServer(configuration: STUNServerConfiguration(
            software: String(repeating: "s", count: 200), behaviourDiscovery: Self.behaviour,
            amplificationAllowance: 12))
        let request = RawSTUN()
        let x = exchange(tight, request.bytes)
        XCTAssertEqual(x.action, .respond(to: Self.client, from: .primary, outcome: .success))
        let answer = try decodeAnswer(x, to: request, type: .bindingSuccess)
        XCTAssertEqual(x.answer.count, 32)
        XCTAssertEqual(answer.attributeCount, 1)
        XCTAssertEqual(answer.address(of: .xorMappedAddress, xor: true), Self.client)

        // 400's reason phrase is left out when it does not fit.
        let bad = RawSTUN().with(raw: 0x8022, length: 4)
        let e = exchange(tight, bad.bytes)
        XCTAssertEqual(e.action, .respond(to: Self.client, from: .primary, outcome: .error(.badRequest)))
        XCTAssertEqual(try decodeAnswer(e, to: bad, type: .bindingError).errorCode?.reason, "")
    }

    /// The 401 challenge is an unauthenticated answer too, so it is bound by the allowance: with the longest
    /// realm configuration accepts (32 bytes) and the smallest request (20 bytes), for IPv4 and IPv6 clients.
    func testChallengeRespectsAmplificationAllowance() throws {
        let realm = String(repeating: "r", count: 32)
        let server = STUNServer(configuration: STUNServerConfiguration(
            authentication: LongTermAuthenticator(realm: realm, secrets: ["s"]), requireAuthentication: true))
        let request = RawSTUN()
        for client in [Self.client, STUNAddress.v6(0x2001_0db8_0000_0000, 1, port: 40000)] {
            var out = ByteBuffer()
            let action = server.handle(request.buffer, from: client, on: .primary, transport: .udp, now: 1_000, into: &out)
            XCTAssertEqual(action, .respond(to: client, from: .primary, outcome: .error(.unauthenticated)))
            XCTAssertLessThanOrEqual(out.readableBytes, request.bytes.count + server.configuration.amplificationAllowance)
            let answer = try STUNDecoder.decode(out)
            XCTAssertEqual(answer.value(of: .realm).map { String(buffer: $0) }, realm)
            XCTAssertEqual(answer.value(of: .nonce)?.readableBytes, 16)
        }
    }

    /// When not even the bare challenge (ERROR-CODE without reason, REALM, 16-character NONCE) fits the
    /// budget — a small allowance, a long realm — the request is dropped rather than answered beyond it
    /// (allowance 24 and realm "parley" used to send 60 bytes for a 20-byte request).
    func testChallengeThatCannotFitTheBudgetIsDropped() throws {
        func server(_ allowance: Int, realm: String = "parley") -> STUNServer {
            STUNServer(configuration: STUNServerConfiguration(
                amplificationAllowance: allowance, authentication: LongTermAuthenticator(realm: realm, secrets: ["s"]),
                requireAuthentication: true))
        }
        // Realm "parley" (8 bytes padded): the challenge is 60 bytes, 68 with FINGERPRINT; both 40 more
        // than the request.
        XCTAssertEqual(LongTermAuthenticator.challengeLength(realm: "parley", advertiseAlgorithms: false, fingerprint: false), 60)
        for request in [RawSTUN(), RawSTUN().withFingerprint()] {
            for allowance in [24, 39, 40, 64] {
                let x = exchange(server(allowance), request.bytes)
                if allowance >= 40 {
                    XCTAssertEqual(x.action, .respond(to: Self.client, from: .primary, outcome: .error(.unauthenticated)))
                    XCTAssertEqual(try decodeAnswer(x, to: request, type: .bindingError).errorCode?.code, 401)
                    XCTAssertEqual(x.answer.count, request.bytes.count + 40)
                } else {
                    XCTAssertEqual(x.action, .drop(.overBudget), "allowance \(allowance), \(request.bytes.count)-byte request")
                    XCTAssertTrue(x.answer.isEmpty)
                }
            }
        }
        // The longest realm the configuration accepts (32 bytes) needs the default allowance, exactly.
        let longRealm = String(repeating: "r", count: 32)
        XCTAssertEqual(exchange(server(63, realm: longRealm), RawSTUN().bytes).action, .drop(.overBudget))
        XCTAssertEqual(exchange(server(64, realm: longRealm), RawSTUN().bytes).answer.count, 84)
    }

    /// An unauthenticated 300 (stun.alternate_server_unauthenticated) is held to the budget too: the
    /// reason phrase goes first, and without room for ALTERNATE-SERVER the request is dropped.
    func testUnauthenticatedRedirectStaysWithinTheBudget() throws {
        func server(_ alternate: STUNAddress, _ allowance: Int) -> STUNServer {
            STUNServer(configuration: STUNServerConfiguration(
                alternateServer: alternate, alternateServerForUnauthenticated: true, amplificationAllowance: allowance))
        }
        let v4 = STUNAddress.v4(0xC633_640A, port: 3478)
        let v6 = STUNAddress.v6(0x2001_0db8_0000_0000, 0x10, port: 3478)
        let request = RawSTUN()
        for alternate in [v4, v6] {
            let full = try assertError(.tryAlternate, server(alternate, 64), request, reason: STUNErrorCode.tryAlternate.reason)
            XCTAssertEqual(full.address(of: .alternateServer, xor: false), alternate)
        }
        // Allowance 24: the IPv4 redirect fits without its reason phrase (40 bytes); the IPv6 one (52) not at all.
        let tight = try assertError(.tryAlternate, server(v4, 24), request, reason: "")
        XCTAssertEqual(tight.address(of: .alternateServer, xor: false), v4)
        let dropped = exchange(server(v6, 24), request.bytes)
        XCTAssertEqual(dropped.action, .drop(.overBudget))
        XCTAssertTrue(dropped.answer.isEmpty)
    }

    // MARK: Authenticated requests (the counterpart of the unauthenticated cases)

    /// RFC 5780 §7.6: with valid long-term credentials PADDING is honoured, and the answer carries
    /// MESSAGE-INTEGRITY under the same key (it is exempt from the allowance: the client proved who it is).
    func testAuthenticatedPaddingIsHonoured() throws {
        let auth = LongTermAuthenticator(realm: "example.org", secrets: ["secret"])
        let server = STUNServer(configuration: STUNServerConfiguration(
            behaviourDiscovery: Self.behaviour, authentication: auth))
        let now: UInt64 = 1_700_000_000
        let username = "\(now + 3600):alice"
        let password = LongTermAuthenticator.restPassword(username: username, secret: "secret")
        let key = STUNIntegrityKey.longTerm(username: username, realm: "example.org", password: password)
        var out = ByteBuffer()
        let w = STUNMessageWriter(type: .bindingRequest, transactionID: STUNTransactionID(high: 9, low: 9), into: &out)
        w.append(.username, text: username, into: &out)
        w.append(.realm, text: "example.org", into: &out)
        w.append(.nonce, text: auth.makeNonce(source: Self.client, now: now), into: &out)
        w.append(.padding, [UInt8](repeating: 0, count: 500), into: &out)
        w.appendMessageIntegrity(key: key, into: &out)
        w.appendFingerprint(into: &out)

        var answerBytes = ByteBuffer()
        let action = server.handle(out, from: Self.client, on: .primary, transport: .udp, now: now, into: &answerBytes)
        XCTAssertEqual(action, .respond(to: Self.client, from: .primary, outcome: .success))
        let answer = try STUNDecoder.decode(answerBytes)
        XCTAssertEqual(answer.value(of: .padding)?.readableBytes, 500)
        XCTAssertEqual(STUNIntegrity.verify(answer, key: key), .valid)
    }
}
