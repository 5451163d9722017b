import NIOCore
import ParleyRelay
import ParleyWire
import XCTest

/// The exchange harness of ``MalformedInputTests``: one request through the server with the invariants every
/// answer obeys checked, and helpers to read the answer.
extension MalformedInputTests {
    struct Exchange {
        let action: STUNServer.Action
        let answer: [UInt8]
    }

    /// One request through the server, checking the invariants every answer obeys.
    @discardableResult
    func exchange(_ server: STUNServer, _ bytes: [UInt8], from source: STUNAddress = MalformedInputTests.client,
                  on endpoint: STUNEndpoint = .primary, transport: STUNTransport = .udp,
                  file: StaticString = #filePath, line: UInt = #line) -> Exchange {
        var input = ByteBuffer()
        input.writeBytes(bytes)
        var out = ByteBuffer()
        let action = server.handle(input, from: source, on: endpoint, transport: transport, now: 1_000, into: &out)
        XCTAssertLessThanOrEqual(out.readableBytes, bytes.count + server.configuration.amplificationAllowance,
                                 "amplification", file: file, line: line)
        if case .drop = action { XCTAssertEqual(out.readableBytes, 0, "a drop wrote bytes", file: file, line: line) }
        return Exchange(action: action, answer: Array(out.readableBytesView))
    }

    /// Decodes the answer and checks it answers `request`: same transaction ID and cookie, expected type.
    @discardableResult
    func decodeAnswer(_ x: Exchange, to request: RawSTUN, type: STUNMessageType,
                      file: StaticString = #filePath, line: UInt = #line) throws -> STUNMessage {
        var b = ByteBuffer()
        b.writeBytes(x.answer)
        let answer = try STUNDecoder.decode(b)
        XCTAssertEqual(answer.transactionID, request.transactionID, file: file, line: line)
        XCTAssertEqual(answer.header.cookie, request.cookie, file: file, line: line)
        XCTAssertEqual(answer.type, type, file: file, line: line)
        return answer
    }

    /// Asserts that `request` gets error `code` from `server`, answered to the source from the receiving
    /// endpoint, as an error response of the request's method; returns the decoded answer.
    @discardableResult
    func assertError(_ code: STUNErrorCode, _ server: STUNServer, _ request: RawSTUN, _ message: String = "",
                     reason: String? = nil, transport: STUNTransport = .udp,
                     file: StaticString = #filePath, line: UInt = #line) throws -> STUNMessage {
        let x = exchange(server, request.bytes, transport: transport, file: file, line: line)
        XCTAssertEqual(x.action, .respond(to: Self.client, from: .primary, outcome: .error(code)), message,
                       file: file, line: line)
        let method = STUNMessageType(rawValue: request.type).method
        let answer = try decodeAnswer(
            x, to: request, type: STUNMessageType(method: method, messageClass: .errorResponse), file: file, line: line)
        XCTAssertEqual(answer.errorCode?.code, Int(code.rawValue), message, file: file, line: line)
        if let reason { XCTAssertEqual(answer.errorCode?.reason, reason, message, file: file, line: line) }
        return answer
    }

    /// The types listed in UNKNOWN-ATTRIBUTES.
    func unknownAttributes(_ answer: STUNMessage) -> [UInt16] {
        guard var v = answer.value(of: .unknownAttributes) else { return [] }
        var types: [UInt16] = []
        while let t = v.readInteger(as: UInt16.self) { types.append(t) }
        return types
    }
}
