import XCTest

@testable import ParleyWire

/// The audio plaintexts of docs/PROTOCOL.md §5.4: plain frames and frames with copies of earlier ones.
final class AudioPayloadTests: XCTestCase {
    func testPlainAudioIsFrameIndexThenOpus() {
        let payload = AudioPayload(frame: 0x0102_0304, opus: [0xAA, 0xBB])
        XCTAssertEqual(payload.type, .audio)
        XCTAssertEqual(payload.bytes, [1, 2, 3, 4, 0xAA, 0xBB])
        XCTAssertEqual(AudioPayload(parsing: payload.bytes, type: .audio), payload)
    }

    func testRedundantAudioLayout() {
        let payload = AudioPayload(frame: 10, opus: [9, 9, 9], redundant: [
            .init(distance: 2, opus: [8, 8]), .init(distance: 1, opus: [7]),
        ])
        XCTAssertEqual(payload.type, .audioRedundant)
        // frame || r || (2, len 2) || (1, len 1) || copies in header order || own packet
        XCTAssertEqual(payload.bytes, [0, 0, 0, 10, 2, 2, 0, 2, 1, 0, 1, 8, 8, 7, 9, 9, 9])
        XCTAssertEqual(AudioPayload(parsing: payload.bytes, type: .audioRedundant), payload)
    }

    func testMalformedRedundantPayloadsAreRefused() {
        let good: [UInt8] = [0, 0, 0, 10, 1, 2, 0, 2, 8, 8, 9]
        XCTAssertNotNil(AudioPayload(parsing: good, type: .audioRedundant))
        var cases: [(String, [UInt8])] = [
            ("too short", [0, 0, 0, 10]),
            ("no copies", [0, 0, 0, 10, 0, 9]),
            ("four copies", [0, 0, 0, 10, 4] + [UInt8](repeating: 1, count: 20)),
            ("header cut", [0, 0, 0, 10, 1, 2, 0]),
            ("distance 0", [0, 0, 0, 10, 1, 0, 0, 2, 8, 8, 9]),
            ("distance beyond the frame index", [0, 0, 0, 1, 1, 2, 0, 2, 8, 8, 9]),
            ("length 0", [0, 0, 0, 10, 1, 2, 0, 0, 9]),
            ("copy overruns", [0, 0, 0, 10, 1, 2, 0, 9, 8, 8, 9]),
            ("no own packet", [0, 0, 0, 10, 1, 2, 0, 2, 8, 8]),
            ("same distance twice", [0, 0, 0, 10, 2, 2, 0, 1, 2, 0, 1, 8, 8, 9]),
        ]
        cases.append(("plain audio without opus", [0, 0, 0, 10]))
        for (name, bytes) in cases {
            XCTAssertNil(AudioPayload(parsing: bytes, type: .audioRedundant), name)
        }
        XCTAssertNil(AudioPayload(parsing: [0, 0, 0, 10], type: .audio), "empty Opus packet")
        XCTAssertNil(AudioPayload(parsing: good, type: .report))
        XCTAssertNil(AudioPayload(parsing: good, type: .bye))
    }

    func testEveryPrefixAndRandomInputHasADefinedAnswer() {
        let good = AudioPayload(frame: 500, opus: [1, 2, 3, 4], redundant: [.init(distance: 2, opus: [5, 6]), .init(distance: 3, opus: [7])]).bytes
        for end in 0...good.count {
            let prefix = Array(good[..<end])
            // Every cut either parses to something that re-encodes to itself or is refused.
            if let parsed = AudioPayload(parsing: prefix, type: .audioRedundant) {
                XCTAssertEqual(parsed.bytes, prefix)
            }
        }
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let bytes = (0..<Int.random(in: 0..<40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            for type in MediaPacketType.allCases {
                if let parsed = AudioPayload(parsing: bytes, type: type) {
                    XCTAssertEqual(parsed.bytes, bytes)
                    XCTAssertEqual(parsed.type == .audio ? MediaPacketType.audio : .audioRedundant, type)
                }
            }
        }
    }
}
