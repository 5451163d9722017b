import NIOCore
import ParleyWire
import XCTest

@testable import ParleyRelay

/// The one-pass writer of the plain Binding success answer (`STUNServer.writePlainSuccess`,
/// `STUNMessageWriter.writeBindingSuccess`) must produce exactly the bytes of the general path. Every request
/// here goes through two servers with the same configuration, one with `STUNServer.fastPath` off, and the
/// actions and bytes are compared; every success answer is also decoded (which verifies its FINGERPRINT) and
/// checked against the source address.
final class FastPathTests: XCTestCase {
    static let sources: [STUNAddress] = [
        .v4(0xC633_6401, port: 40000),  // 198.51.100.1
        .v4(0x0000_0000, port: 0),
        .v4(0xFFFF_FFFF, port: 0xFFFF),
        .v4(0x2112_A442, port: 0x2112),  // XORs to zero
        .v6(0x2001_0db8_0000_0000, 0x0000_0000_0000_0001, port: 40000),
        .v6(0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF, port: 1),
        .v6(0, 0, port: 3478),
    ]

    /// SOFTWARE settings: none, every length from 0 to 12 (all paddings), a multi-byte UTF-8 one, and one
    /// longer than the 763 bytes the attribute is cut to.
    static let softwares: [String?] = [nil] + (0...12).map { String(repeating: "p", count: $0) }
        + ["parley 1.0 (é)", String(repeating: "long-software-", count: 60)]

    /// Allowances from far too small for anything optional to generous, including values that are not a
    /// multiple of 4 and one below zero.
    static let allowances: [Int] = [-8, 0, 3, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 56, 64, 1000]

    /// A request with its bytes built once (``RawSTUN/bytes`` rebuilds them on every use).
    struct Request {
        let name: String
        let raw: RawSTUN
        let buffer: ByteBuffer
        var size: Int { buffer.readableBytes }

        init(_ name: String, _ raw: RawSTUN) {
            self.name = name
            self.raw = raw
            self.buffer = raw.buffer
        }
    }

    /// Requests the fast path answers (and variants of them): sizes from a bare 20-byte header up, with
    /// comprehension-optional attributes it ignores, comprehension-required ones it understands, integrity
    /// offered to a server without credentials, and RFC 3489 ones without the magic cookie.
    static let requests: [Request] = {
        var out: [Request] = []
        for cookie in [stunMagicCookie, 0xDEAD_BEEF] {
            let base = RawSTUN(cookie: cookie)
            let classic = cookie != stunMagicCookie ? " classic" : ""
            var shapes: [(String, RawSTUN)] = [("bare", base)]
            for n in [0, 1, 2, 3, 4, 5, 8, 13, 40, 100] {
                shapes.append(("optional 0x8055×\(n)", base.with(raw: 0x8055, length: n, Array(repeating: 0xAB, count: n))))
            }
            shapes.append(("client SOFTWARE", base.with(.software, Array("client/2.1".utf8))))
            shapes.append(("two optional", base.with(raw: 0xC001, length: 3, [1, 2, 3]).with(raw: 0xFFFF, length: 0)))
            shapes.append(("CHANGE-REQUEST 0", base.with(.changeRequest, [0, 0, 0, 0])))
            shapes.append(("USERNAME", base.with(.username, Array("alice".utf8))))
            shapes.append(("MESSAGE-INTEGRITY", base.with(.username, Array("bob".utf8))
                .with(.messageIntegrity, Array(repeating: 7, count: 20))))
            shapes.append(("MESSAGE-INTEGRITY-SHA256", base.with(.messageIntegritySHA256, Array(repeating: 9, count: 32))))
            // Anything after MESSAGE-INTEGRITY does not count, even a comprehension-required unknown.
            shapes.append(("ignored after integrity", base.with(.messageIntegrity, Array(repeating: 7, count: 20))
                .with(raw: 0x0031, length: 4, [0, 0, 0, 0])))
            for (name, raw) in shapes {
                out.append(Request(name + classic, raw))
                out.append(Request(name + classic + " +FINGERPRINT", raw.withFingerprint()))
            }
        }
        return out
    }()

    /// Requests that do not get the plain answer, to check the fast path leaves them alone.
    static let otherRequests: [Request] = [
        Request("unknown required", RawSTUN().with(raw: 0x0031, length: 4, [0, 0, 0, 0])),
        Request("PADDING", RawSTUN().with(.padding, Array(repeating: 0, count: 8)).withFingerprint()),
        Request("CHANGE-REQUEST ip", RawSTUN().with(.changeRequest, [0, 0, 0, 4])),
        Request("RESPONSE-PORT", RawSTUN().with(.responsePort, [0x12, 0x34, 0, 0]).withFingerprint()),
        Request("Allocate", RawSTUN(.allocate, .request)),
        Request("indication", RawSTUN(.binding, .indication)),
    ]

    /// Runs `raw` through `server` with and without the fast path and asserts identical results; returns the
    /// action and the answer bytes. `prefix` bytes are already in the output buffer, as when answers share one.
    @discardableResult
    func compare(_ server: STUNServer, _ request: Request, from source: STUNAddress, transport: STUNTransport = .udp,
                 prefix: Int = 0, _ context: @autoclosure () -> String,
                 file: StaticString = #filePath, line: UInt = #line) -> (STUNServer.Action, [UInt8]) {
        var slow = server
        slow.fastPath = false
        var fastOut = ByteBuffer()
        var slowOut = ByteBuffer()
        fastOut.writeRepeatingByte(0xEE, count: prefix)
        slowOut.writeRepeatingByte(0xEE, count: prefix)
        let fastAction = server.handle(request.buffer, from: source, on: .primary, transport: transport, now: 1_000, into: &fastOut)
        let slowAction = slow.handle(request.buffer, from: source, on: .primary, transport: transport, now: 1_000, into: &slowOut)
        XCTAssertEqual(fastAction, slowAction, context(), file: file, line: line)
        let fastBytes = Array(fastOut.readableBytesView)
        XCTAssertEqual(fastBytes, Array(slowOut.readableBytesView), context(), file: file, line: line)
        return (fastAction, Array(fastBytes.dropFirst(prefix)))
    }

    /// Decodes a success answer and checks what any plain answer must hold; returns the decoded answer.
    @discardableResult
    func checkSuccess(_ answer: [UInt8], to request: Request, from source: STUNAddress, software: String?,
                      allowance: Int, _ context: @autoclosure () -> String,
                      file: StaticString = #filePath, line: UInt = #line) -> STUNMessage? {
        let raw = request.raw
        var b = ByteBuffer()
        b.writeBytes(answer)
        let message: STUNMessage
        do {
            message = try STUNDecoder.decode(b)  // verifies FINGERPRINT when there is one
        } catch {
            XCTFail("\(context()): answer does not decode: \(error)", file: file, line: line)
            return nil
        }
        XCTAssertEqual(message.type, .bindingSuccess, context(), file: file, line: line)
        XCTAssertEqual(message.header.cookie, raw.cookie, context(), file: file, line: line)
        XCTAssertEqual(message.transactionID, raw.transactionID, context(), file: file, line: line)
        XCTAssertEqual(message.fingerprintOffset != nil, raw.fingerprint, context(), file: file, line: line)
        if raw.cookie != stunMagicCookie {
            XCTAssertEqual(message.address(of: .mappedAddress, xor: false), source, context(), file: file, line: line)
            XCTAssertFalse(message.contains(.xorMappedAddress), context(), file: file, line: line)
            XCTAssertFalse(message.contains(.software), context(), file: file, line: line)
        } else {
            XCTAssertEqual(message.address(of: .xorMappedAddress, xor: true), source, context(), file: file, line: line)
            if message.contains(.mappedAddress) {
                XCTAssertEqual(message.address(of: .mappedAddress, xor: false), source, context(), file: file, line: line)
            }
            if let value = message.value(of: .software) {
                XCTAssertEqual(Array(value.readableBytesView), Array((software ?? "").utf8.prefix(763)), context(),
                               file: file, line: line)
            }
        }
        // Only XOR-MAPPED-ADDRESS (MAPPED-ADDRESS) and FINGERPRINT are sent regardless of the budget.
        let minimum = 20 + 4 + source.encodedLength + (raw.fingerprint ? 8 : 0)
        XCTAssertLessThanOrEqual(answer.count, max(minimum, request.size + allowance), context(), file: file, line: line)
        return message
    }

    /// The main matrix: every SOFTWARE setting × allowance × request, from an IPv4 and an IPv6 source, over
    /// UDP (the other sources and transports are in ``testAppendsAfterExistingBytesOnEveryTransport()``).
    func testPlainAnswersMatchTheGeneralPath() {
        var successes = 0
        var withSoftware = 0
        var withMapped = 0
        var budgetCut = 0
        for software in Self.softwares {
            for allowance in Self.allowances {
                let server = STUNServer(configuration: STUNServerConfiguration(
                    software: software, amplificationAllowance: allowance))
                for request in Self.requests {
                    for source in [Self.sources[0], Self.sources[4]] {
                        func context() -> String {
                            "\(request.name) from \(source), software \(software.map { "\($0.utf8.count)" } ?? "nil"), allowance \(allowance)"
                        }
                        let (action, answer) = compare(server, request, from: source, context())
                        XCTAssertEqual(action, .respond(to: source, from: .primary, outcome: .success), context())
                        guard let m = checkSuccess(answer, to: request, from: source, software: software,
                                                   allowance: allowance, context())
                        else { continue }
                        successes += 1
                        guard request.raw.cookie == stunMagicCookie else { continue }
                        let hasMapped = m.contains(.mappedAddress)
                        let hasSoftware = m.contains(.software)
                        if hasSoftware { withSoftware += 1 }
                        if hasMapped { withMapped += 1 }
                        if !hasMapped || (software != nil && !hasSoftware) { budgetCut += 1 }
                    }
                }
            }
        }
        // The matrix really covers every branch: answers with and without the optional attributes.
        XCTAssertGreaterThan(withSoftware, 0)
        XCTAssertGreaterThan(withMapped, 0)
        XCTAssertGreaterThan(budgetCut, 0)
        XCTAssertEqual(successes, Self.softwares.count * Self.allowances.count * Self.requests.count * 2)
    }

    /// Output buffers that already hold bytes (answers appended after others), over every transport.
    func testAppendsAfterExistingBytesOnEveryTransport() {
        let server = STUNServer(configuration: STUNServerConfiguration(software: "parley"))
        for transport in STUNTransport.allCases {
            for prefix in [1, 3, 20, 255] {
                for request in Self.requests {
                    for source in Self.sources {
                        let context = "\(request.name) from \(source) over \(transport), prefix \(prefix)"
                        let (action, answer) = compare(server, request, from: source, transport: transport, prefix: prefix, context)
                        XCTAssertEqual(action, .respond(to: source, from: .primary, outcome: .success), context)
                        checkSuccess(answer, to: request, from: source, software: "parley", allowance: 64, context)
                    }
                }
            }
        }
    }

    /// Configurations around the fast path's conditions: credentials configured but neither required nor
    /// offered (fast path), offered or required (general path), an alternate server only for authenticated
    /// requests (fast path) or for all (general path), RFC 5780 (general path); and requests that never get
    /// the plain answer. Whichever path is taken, both servers must agree.
    func testNeighbouringConfigurationsAndRequestsAgree() {
        let auth = LongTermAuthenticator(realm: "parley.test", secrets: ["s3cret"])
        let alternate = STUNAddress.v4(0xC000_0209, port: 3478)
        let configurations: [(String, STUNServerConfiguration)] = [
            ("credentials optional", STUNServerConfiguration(authentication: auth)),
            ("credentials required", STUNServerConfiguration(authentication: auth, requireAuthentication: true)),
            ("alternate for authenticated", STUNServerConfiguration(alternateServer: alternate)),
            ("alternate for all", STUNServerConfiguration(alternateServer: alternate, alternateServerForUnauthenticated: true)),
            ("behaviour discovery", STUNServerConfiguration(behaviourDiscovery: MalformedInputTests.behaviour)),
            ("tight", STUNServerConfiguration(software: "a somewhat long software name", amplificationAllowance: 12)),
        ]
        var compared = 0
        for (configName, configuration) in configurations {
            let server = STUNServer(configuration: configuration)
            for request in Self.requests + Self.otherRequests {
                for source in Self.sources {
                    for transport in STUNTransport.allCases {
                        compare(server, request, from: source, transport: transport,
                                "\(configName): \(request.name) from \(source) over \(transport)")
                        compared += 1
                    }
                }
            }
        }
        XCTAssertEqual(compared, configurations.count * (Self.requests.count + Self.otherRequests.count)
                       * Self.sources.count * STUNTransport.allCases.count)
    }

    /// A plain request to a server whose credentials are optional gets the plain answer, unprotected.
    func testOptionalCredentialsNotOfferedGetThePlainAnswer() throws {
        let server = STUNServer(configuration: STUNServerConfiguration(
            authentication: LongTermAuthenticator(realm: "parley.test", secrets: ["s3cret"])))
        let request = Request("plain", RawSTUN().withFingerprint())
        let source = Self.sources[0]
        let (action, answer) = compare(server, request, from: source, "optional credentials")
        XCTAssertEqual(action, .respond(to: source, from: .primary, outcome: .success))
        checkSuccess(answer, to: request, from: source, software: "parley", allowance: 64, "optional credentials")
        var b = ByteBuffer()
        b.writeBytes(answer)
        let message = try STUNDecoder.decode(b)
        XCTAssertNil(message.messageIntegrityOffset)
    }

    /// The writer on its own against the incremental writer, for every attribute combination, into buffers
    /// that must grow and buffers that already hold bytes.
    func testOnePassWriterMatchesIncrementalWriter() throws {
        let softwares: [[UInt8]?] = [nil] + (0...12).map { Array(repeating: UInt8(0x61 + $0), count: $0) }
            + [Array(repeating: 0x7A, count: 763)]
        var checked = 0
        for cookie in [stunMagicCookie, 0x0BAD_CAFE] {
            let header = STUNHeader(type: .bindingRequest, cookie: cookie,
                                    transactionID: STUNTransactionID(high: 0x8877_6655_4433_2211, low: 0xF0E1_D2C3))
            for address in Self.sources {
                for xor in [false, true] {
                    for mapped in [false, true] {
                        for software in softwares {
                            for fingerprint in [false, true] {
                                for prefix in [0, 5] {
                                    var expected = ByteBuffer()
                                    expected.writeRepeatingByte(0x11, count: prefix)
                                    let w = STUNMessageWriter(responseTo: header, messageClass: .successResponse, into: &expected)
                                    if xor { w.append(.xorMappedAddress, address: address, xor: true, into: &expected) }
                                    if mapped { w.append(.mappedAddress, address: address, xor: false, into: &expected) }
                                    if let software { w.append(.software, software, into: &expected) }
                                    if fingerprint { w.appendFingerprint(into: &expected) }

                                    var actual = ByteBuffer()
                                    actual.writeRepeatingByte(0x11, count: prefix)
                                    STUNMessageWriter.writeBindingSuccess(
                                        responseTo: header, address: address, xorMappedAddress: xor, mappedAddress: mapped,
                                        software: software, fingerprint: fingerprint, into: &actual)
                                    let context = "cookie \(cookie) \(address) xor \(xor) mapped \(mapped) software \(software?.count ?? -1) fp \(fingerprint) prefix \(prefix)"
                                    XCTAssertEqual(Array(actual.readableBytesView), Array(expected.readableBytesView), context)
                                    XCTAssertEqual(actual.readableBytes - prefix, STUNMessageWriter.bindingSuccessLength(
                                        address: address, xorMappedAddress: xor, mappedAddress: mapped, software: software,
                                        fingerprint: fingerprint), context)
                                    actual.moveReaderIndex(forwardBy: prefix)
                                    let message = try STUNDecoder.decode(actual)
                                    XCTAssertEqual(message.fingerprintOffset != nil, fingerprint, context)
                                    checked += 1
                                }
                            }
                        }
                    }
                }
            }
        }
        XCTAssertEqual(checked, 2 * Self.sources.count * 4 * softwares.count * 2 * 2)
    }

    /// Stale bytes in the buffer's spare capacity must not leak into the padding of SOFTWARE.
    func testPaddingIsZeroedOverDirtyCapacity() {
        let header = STUNHeader(type: .bindingRequest, transactionID: STUNTransactionID(high: 1, low: 2))
        for n in 0...12 {
            var buffer = ByteBuffer()
            buffer.writeRepeatingByte(0xFF, count: 200)
            buffer.clear()  // capacity kept, old bytes still there
            STUNMessageWriter.writeBindingSuccess(
                responseTo: header, address: .v4(0x0A00_0001, port: 9), xorMappedAddress: true, mappedAddress: false,
                software: Array(repeating: 0x41, count: n), fingerprint: false, into: &buffer)
            let bytes = Array(buffer.readableBytesView)
            let padding = bytes[(20 + 12 + 4 + n)...]
            XCTAssertEqual(padding.count, (4 - n % 4) % 4, "software \(n)")
            XCTAssertTrue(padding.allSatisfy { $0 == 0 }, "software \(n): \(Array(padding))")
        }
    }
}
