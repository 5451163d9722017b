import Foundation
import Logging
import NIOConcurrencyHelpers
import XCTest

@testable import ParleyServer

final class LogRotationTests: XCTestCase {
    private var dir = ""

    override func setUp() {
        dir = NSTemporaryDirectory() + "parley-log-\(UUID().uuidString)"
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
    }

    private func files() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
    }

    func testRotatesAtSizeCapAndKeepsRetentionCount() throws {
        let log = try RotatingLogFile(directory: dir, maxSize: 100, retention: 2)
        for i in 0..<10 { log.write("line \(i) " + String(repeating: "x", count: 40)) }  // ~50 bytes each
        let names = try files()
        XCTAssertTrue(names.contains("parley.log"))
        XCTAssertEqual(names.filter { $0.hasPrefix("parley.log.") }.count, 2, "\(names)")
        let current = try String(contentsOfFile: dir + "/parley.log", encoding: .utf8)
        XCTAssertTrue(current.contains("line 9"))
        XCTAssertLessThanOrEqual(current.utf8.count, 100)
    }

    func testRotatesEvery24HoursWithInjectedClock() throws {
        let now = NIOLockedValueBox(Date(timeIntervalSince1970: 1_800_000_000))
        let log = try RotatingLogFile(directory: dir, maxSize: 1 << 20, retention: 5) { now.withLockedValue { $0 } }
        log.write("day one")
        now.withLockedValue { $0 += 3600 }
        log.write("still day one")
        XCTAssertEqual(try files(), ["parley.log"])
        now.withLockedValue { $0 += 86400 }
        log.write("day two")
        let names = try files()
        XCTAssertEqual(names.count, 2, "\(names)")
        let rotated = try String(contentsOfFile: dir + "/" + names.first { $0 != "parley.log" }!, encoding: .utf8)
        XCTAssertEqual(rotated, "day one\nstill day one\n")
        XCTAssertEqual(try String(contentsOfFile: dir + "/parley.log", encoding: .utf8), "day two\n")
    }

    func testHandlerWritesPlainLinesAndRedactsSecretKeys() throws {
        let file = try RotatingLogFile(directory: dir, maxSize: 1 << 20, retention: 1)
        var logger = Logger(label: "stun") { l in PlainLogHandler(label: l, level: .info, file: file, stderr: false) }
        logger[metadataKey: "transport"] = "udp"
        logger.info("answered", metadata: ["secret": "hunter2", "password": "pw", "peer": "192.0.2.1:5"])
        logger.debug("not at this level")
        let text = try String(contentsOfFile: dir + "/parley.log", encoding: .utf8)
        let lines = text.split(separator: "\n")
        XCTAssertEqual(lines.count, 1)
        XCTAssertTrue(lines[0].contains(" info [stun] answered "), String(lines[0]))
        XCTAssertTrue(lines[0].contains("peer=192.0.2.1:5"))
        XCTAssertTrue(lines[0].contains("transport=udp"))
        XCTAssertFalse(text.contains("hunter2"))
        XCTAssertFalse(text.contains("pw "))
        XCTAssertTrue(text.contains("secret=<redacted>"))
    }

    /// The background output (what `parley serve` uses): lines from several threads arrive whole, each
    /// thread's in its order, and a batch that crosses the size cap still rotates at a line boundary.
    func testBackgroundOutputKeepsEveryLineInOrderAndRotates() throws {
        let file = try RotatingLogFile(directory: dir, maxSize: 100 * 1024, retention: 50)
        let output = LogOutput.background(file: file, stderr: false)
        let logger = Logger(label: "hub") { l in PlainLogHandler(label: l, level: .info, output: output) }
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            for i in 0..<2_000 { logger.info("line", metadata: ["t": "\(t)", "i": "\(i)"]) }
        }
        output.flush()
        // Rotated files sort by name in the order they were written; the current file is last.
        let names = try files()
        XCTAssertGreaterThan(names.count, 2, "8,000 lines of ~53 bytes must rotate a 100 KiB file a few times (fewer than 10: rotated names of one second sort as text)")
        let ordered = names.filter { $0 != "parley.log" } + ["parley.log"]
        var last = [Int](repeating: -1, count: 4)
        var count = 0
        for name in ordered {
            let text = try String(contentsOfFile: dir + "/" + name, encoding: .utf8)
            XCTAssertLessThanOrEqual(text.utf8.count, 100 * 1024)
            for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
                guard let ti = line.range(of: " i="), let tt = line.range(of: " t="),
                      let i = Int(line[ti.upperBound...].prefix { $0.isNumber }),
                      let t = Int(line[tt.upperBound...].prefix { $0.isNumber })
                else { return XCTFail("torn line: \(line)") }
                XCTAssertEqual(i, last[t] + 1, "thread \(t) out of order")
                last[t] = i
                count += 1
            }
        }
        XCTAssertEqual(count, 8_000)
    }
}
