import NIOCore
import NIOEmbedded
import ParleyRelay
import ParleyWire
import XCTest

/// STUN over a byte stream (RFC 8489 §6.2.2): ``STUNStreamHandler`` cuts messages out of TCP segments by
/// their length field, however the bytes arrive, and closes connections it cannot frame.
final class StreamFramingTests: XCTestCase {
    static let peer = STUNAddress.v4(0xC000_0207, port: 5000)  // 192.0.2.7:5000, as connected below
    let server = STUNServer(configuration: STUNServerConfiguration())

    /// A channel with the handler, connected from 192.0.2.7:5000 so channelActive learns the source.
    private func makeChannel(maxFrame: Int = 548) throws -> EmbeddedChannel {
        let handler = STUNStreamHandler(server: server, transport: .tcp, maxFrame: maxFrame, metrics: STUNMetrics(),
                                        now: { 1_000 })
        let channel = EmbeddedChannel(handler: handler)
        try channel.connect(to: SocketAddress(ipAddress: "192.0.2.7", port: 5000)).wait()
        XCTAssertTrue(channel.isActive)
        return channel
    }

    /// A Binding request with SOFTWARE and FINGERPRINT (48 bytes), distinguished by its transaction ID.
    private func request(_ id: UInt32) -> [UInt8] {
        var raw = RawSTUN().with(.software, Array("client".utf8)).withFingerprint()
        raw.transactionID = STUNTransactionID(high: 0x5354_5245_414D_0000, low: id)
        return raw.bytes
    }

    private func write(_ channel: EmbeddedChannel, _ bytes: some Sequence<UInt8>) throws {
        var b = channel.allocator.buffer(capacity: 64)
        b.writeBytes(bytes)
        try channel.writeInbound(b)
    }

    /// Reads one answer and checks it is the Binding success for transaction `id`.
    private func expectAnswer(_ channel: EmbeddedChannel, id: UInt32, file: StaticString = #filePath,
                              line: UInt = #line) throws {
        let out = try XCTUnwrap(try channel.readOutbound(as: ByteBuffer.self), "no answer", file: file, line: line)
        let answer = try STUNDecoder.decode(out)
        XCTAssertEqual(answer.type, .bindingSuccess, file: file, line: line)
        XCTAssertEqual(answer.transactionID.low, id, file: file, line: line)
        XCTAssertEqual(answer.address(of: .xorMappedAddress, xor: true), Self.peer, file: file, line: line)
        XCTAssertNotNil(answer.fingerprintOffset, file: file, line: line)
    }

    private func expectNoMoreOutput(_ channel: EmbeddedChannel, file: StaticString = #filePath,
                                    line: UInt = #line) throws {
        XCTAssertNil(try channel.readOutbound(as: ByteBuffer.self), "unexpected extra answer", file: file, line: line)
    }

    // MARK: Reassembly

    /// Split in two at every byte boundary: nothing is answered until the message is complete, then
    /// exactly one answer.
    func testRequestSplitAtEveryByteBoundary() throws {
        let bytes = request(1)
        for cut in 1..<bytes.count {
            let channel = try makeChannel()
            try write(channel, bytes[..<cut])
            XCTAssertNil(try channel.readOutbound(as: ByteBuffer.self), "answered after \(cut) bytes")
            try write(channel, bytes[cut...])
            try expectAnswer(channel, id: 1)
            try expectNoMoreOutput(channel)
            XCTAssertTrue(channel.isActive, "cut \(cut)")
            XCTAssertTrue(try channel.finish().isClean)
        }
    }

    /// One byte per read.
    func testRequestOneByteAtATime() throws {
        let channel = try makeChannel()
        let bytes = request(2)
        for (i, byte) in bytes.enumerated() {
            try write(channel, [byte])
            if i < bytes.count - 1 { XCTAssertNil(try channel.readOutbound(as: ByteBuffer.self), "after byte \(i)") }
        }
        try expectAnswer(channel, id: 2)
        try expectNoMoreOutput(channel)
        XCTAssertTrue(try channel.finish().isClean)
    }

    /// Two requests in one segment: two answers, in order.
    func testTwoRequestsInOneWrite() throws {
        let channel = try makeChannel()
        try write(channel, request(3) + request(4))
        try expectAnswer(channel, id: 3)
        try expectAnswer(channel, id: 4)
        try expectNoMoreOutput(channel)
        XCTAssertTrue(try channel.finish().isClean)
    }

    /// Three requests cut across segment boundaries at every offset: each answered once, in order.
    func testRequestsStraddlingSegments() throws {
        let stream = request(5) + request(6) + request(7)
        for cut in stride(from: 1, to: stream.count, by: 7) {
            let channel = try makeChannel()
            try write(channel, stream[..<cut])
            try write(channel, stream[cut...])
            try expectAnswer(channel, id: 5)
            try expectAnswer(channel, id: 6)
            try expectAnswer(channel, id: 7)
            try expectNoMoreOutput(channel)
            XCTAssertTrue(try channel.finish().isClean)
        }
    }

    // MARK: Closing

    /// A length field announcing a frame above the limit closes the connection as soon as the first four
    /// bytes are in, without waiting for (or buffering) the body.
    func testOversizedFrameClosesChannel() throws {
        let channel = try makeChannel(maxFrame: 548)
        // Binding request header claiming 1000 bytes of attributes.
        try write(channel, [0x00, 0x01, 0x03, 0xE8])
        XCTAssertFalse(channel.isActive)
        try expectNoMoreOutput(channel)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    /// Exactly maxFrame bytes is still fine; one length step (4 bytes) more is not.
    func testFrameAtTheLimit() throws {
        var raw = RawSTUN().with(raw: 0x8FFF, length: 16, [UInt8](repeating: 1, count: 16))
        raw.transactionID = STUNTransactionID(high: 0x5354_5245_414D_0000, low: 8)
        let bytes = raw.bytes
        XCTAssertEqual(bytes.count, 40)
        let fits = try makeChannel(maxFrame: 40)
        try write(fits, bytes)
        let out = try XCTUnwrap(try fits.readOutbound(as: ByteBuffer.self))
        XCTAssertEqual(try STUNDecoder.decode(out).transactionID.low, 8)
        XCTAssertTrue(fits.isActive)
        XCTAssertTrue(try fits.finish().isClean)

        let tooBig = try makeChannel(maxFrame: 36)
        try write(tooBig, bytes)
        XCTAssertFalse(tooBig.isActive)
        try expectNoMoreOutput(tooBig)
        _ = try tooBig.finish(acceptAlreadyClosed: true)
    }

    /// Bytes with the top two bits set cannot start a STUN message (0b01 would be ChannelData, which a
    /// STUN-only server does not speak): the stream cannot resynchronise, so it is closed.
    func testTopBitsSetClosesChannel() throws {
        for first: UInt8 in [0x40, 0x80, 0xC0, 0xFF] {
            let channel = try makeChannel()
            try write(channel, [first, 0x01, 0x00, 0x00])
            XCTAssertFalse(channel.isActive, "first byte \(first)")
            try expectNoMoreOutput(channel)
            _ = try channel.finish(acceptAlreadyClosed: true)
        }
    }

    /// A valid request followed by garbage (or by an oversized frame header) in the same segment: the
    /// connection closes, but the request before the bad bytes still gets its answer.
    func testBadBytesAfterValidRequestCloseAfterAnswering() throws {
        for tail: [UInt8] in [[0xC0, 0, 0, 0], [0x00, 0x01, 0x03, 0xE8]] {
            let channel = try makeChannel()
            try write(channel, request(9) + tail)
            XCTAssertFalse(channel.isActive)
            let answer = try channel.readOutbound(as: ByteBuffer.self)
            _ = try channel.finish(acceptAlreadyClosed: true)
            let sent = try XCTUnwrap(answer, "the answer to the request before the bad bytes is sent before the close")
            XCTAssertEqual(try STUNDecoder.decode(sent).transactionID.low, 9)
        }
    }

    /// Fewer than four bytes of garbage are not judged yet (the first byte alone is enough to judge, but
    /// the handler waits for the length field); the fourth byte closes.
    func testGarbageIsJudgedOnceFourBytesAreIn() throws {
        let channel = try makeChannel()
        try write(channel, [0xC0, 0x00, 0x00])
        XCTAssertTrue(channel.isActive)
        try write(channel, [0x00])
        XCTAssertFalse(channel.isActive)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    /// A request the server answers with an error keeps the connection open: errors are answers, not
    /// framing failures.
    func testErrorAnswerKeepsConnectionOpen() throws {
        let channel = try makeChannel()
        var unknown = RawSTUN().with(raw: 0x7777, length: 0)
        unknown.transactionID = STUNTransactionID(high: 0x5354_5245_414D_0000, low: 10)
        try write(channel, unknown.bytes + request(11))
        let error = try STUNDecoder.decode(try XCTUnwrap(try channel.readOutbound(as: ByteBuffer.self)))
        XCTAssertEqual(error.errorCode?.code, 420)
        XCTAssertEqual(error.transactionID.low, 10)
        try expectAnswer(channel, id: 11)
        XCTAssertTrue(channel.isActive)
        XCTAssertTrue(try channel.finish().isClean)
    }
}
