import NIOCore
import NIOEmbedded
import XCTest

@testable import ParleySignal

final class LineFramerTests: XCTestCase {
    private func channel(max: Int = 64) throws -> EmbeddedChannel {
        let c = EmbeddedChannel()
        try c.pipeline.syncOperations.addHandler(ByteToMessageHandler(SignalLineFramer(maxLine: max)))
        return c
    }

    private func lines(_ c: EmbeddedChannel) throws -> [SignalLine] {
        var out: [SignalLine] = []
        while let l = try c.readInbound(as: SignalLine.self) { out.append(l) }
        return out
    }

    func testSplitsLinesDropsCRAndKeepsBlankLinesAsKeepalives() throws {
        let c = try channel()
        try c.writeInbound(ByteBuffer(string: "got|1\r\n\nkeys|1|2|bob\n"))
        XCTAssertEqual(try lines(c), [.line("got|1"), .line(""), .line("keys|1|2|bob")])
    }

    func testLineSplitAtEveryByteArrivesWhole() throws {
        let text = "call|42|1795435201000|7c9e6679-7425-40de-944b-e07fc1f90ae7|bob|AAAA\n"
        let c = try channel(max: 200)
        for b in text.utf8 { try c.writeInbound(ByteBuffer(bytes: [b])) }
        XCTAssertEqual(try lines(c), [.line(String(text.dropLast()))])
    }

    func testOverlongLineIsReportedOnceAndTheRestDiscarded() throws {
        let c = try channel(max: 16)
        try c.writeInbound(ByteBuffer(string: String(repeating: "x", count: 10)))
        XCTAssertEqual(try lines(c), [])
        try c.writeInbound(ByteBuffer(string: String(repeating: "x", count: 10)))
        XCTAssertEqual(try lines(c), [.tooLong])
        try c.writeInbound(ByteBuffer(string: "more\nand more\n"))
        XCTAssertEqual(try lines(c), [], "after an overlong line nothing more is framed")
    }

    func testLineOfExactlyTheLimitIsAcceptedAndOneMoreIsNot() throws {
        let ok = try channel(max: 8)
        try ok.writeInbound(ByteBuffer(string: "1234567\n"))
        XCTAssertEqual(try lines(ok), [.line("1234567")])
        let long = try channel(max: 8)
        try long.writeInbound(ByteBuffer(string: "12345678\n"))
        XCTAssertEqual(try lines(long), [.tooLong])
    }

    func testPartialLineAtEOFIsDropped() throws {
        let c = try channel()
        try c.writeInbound(ByteBuffer(string: "got|1\ngot|2"))
        XCTAssertEqual(try lines(c), [.line("got|1")])
        _ = try c.finish()
    }
}
