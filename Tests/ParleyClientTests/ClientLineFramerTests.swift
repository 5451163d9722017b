import NIOCore
import XCTest

@testable import ParleyClient

final class ClientLineFramerTests: XCTestCase {
    func testSplitsLinesDropsCRAndKeepsPartialLines() throws {
        var framer = ClientLineFramer(maxLine: 64)
        var buffer = ByteBuffer(string: "hello|1\r\n\nack|2|o")
        XCTAssertEqual(try framer.next(from: &buffer), .line("hello|1"))
        XCTAssertEqual(try framer.next(from: &buffer), .line(""))
        XCTAssertNil(try framer.next(from: &buffer))
        buffer.writeString("k\n")
        XCTAssertEqual(try framer.next(from: &buffer), .line("ack|2|ok"))
        XCTAssertNil(try framer.next(from: &buffer))
    }

    func testLimitCountsTheLineFeed() throws {
        var exact = ClientLineFramer(maxLine: 4)
        var fits = ByteBuffer(string: "abc\n")
        XCTAssertEqual(try exact.next(from: &fits), .line("abc"))
        var over = ClientLineFramer(maxLine: 4)
        var long = ByteBuffer(string: "abcd\nnext\n")
        XCTAssertEqual(try over.next(from: &long), .tooLong)
        XCTAssertNil(try over.next(from: &long), "after an overlong line everything is discarded")
    }

    func testOverlongWithoutLineFeedIsNoticedWithoutBuffering() throws {
        var framer = ClientLineFramer(maxLine: 8)
        var buffer = ByteBuffer(string: "abcd")
        XCTAssertNil(try framer.next(from: &buffer))
        buffer.writeString("efgh")
        XCTAssertEqual(try framer.next(from: &buffer), .tooLong)
        XCTAssertEqual(buffer.readableBytes, 0)
    }
}
