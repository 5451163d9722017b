import XCTest

@testable import ParleyServer

final class ConfigurationTests: XCTestCase {
    private func apply(_ text: String) throws -> ServerConfiguration {
        var c = ServerConfiguration()
        try c.apply(try ConfigFile.parse(text, path: "t.conf"))
        return c
    }

    private func assertRefused(_ text: String, line: Int, contains fragment: String,
                               file: StaticString = #filePath, lineNumber: UInt = #line) {
        XCTAssertThrowsError(try apply(text), file: file, line: lineNumber) { error in
            guard let e = error as? ConfigError else { return XCTFail("not a ConfigError: \(error)", file: file, line: lineNumber) }
            XCTAssertEqual(e.origin, .file(path: "t.conf", line: line), file: file, line: lineNumber)
            XCTAssertTrue(e.description.hasPrefix("t.conf:\(line): "), e.description, file: file, line: lineNumber)
            XCTAssertTrue(e.message.contains(fragment), "'\(e.message)' lacks '\(fragment)'", file: file, line: lineNumber)
        }
    }

    func testCommentsBlankLinesAndInlineComments() throws {
        let c = try apply("""
            # a comment on its own line

            stun.port = 3479   # inline comment
              stun.software = parley\\#1
            log.level=debug
            """)
        XCTAssertEqual(c.stunPort, 3479)
        XCTAssertEqual(c.stunSoftware, "parley#1")
        XCTAssertEqual(c.logLevel, "debug")
    }

    func testWindowsLineEndings() throws {
        let c = try apply("stun.port = 3479\r\nlog.level = debug\r\n")
        XCTAssertEqual(c.stunPort, 3479)
        XCTAssertEqual(c.logLevel, "debug")
        assertRefused("stun.port = 1\r\nstun.port = 2\r\n", line: 2, contains: "duplicate")
    }

    func testDefaultsMatchTheDocumentedOnes() {
        let c = ServerConfiguration()
        XCTAssertEqual(c.stunPort, 3478)
        XCTAssertEqual(c.stunTLSPort, 5349)
        XCTAssertEqual(c.httpPort, 8080)
        XCTAssertEqual(c.stunListen, ["0.0.0.0", "::"])
        XCTAssertNil(c.stunAlternateAddress)
        XCTAssertEqual(c.stunAmplificationAllowance, 64)
        for key in ConfigKey.all { XCTAssertFalse(key.help.isEmpty, key.name) }
    }

    func testUnknownKeyIsRefusedWithFileAndLine() {
        assertRefused("stun.port = 3478\nstun.prot = 1\n", line: 2, contains: "unknown key 'stun.prot'")
    }

    func testDuplicateKeyIsRefused() {
        assertRefused("stun.port = 3478\n\nstun.port = 3479\n", line: 3, contains: "duplicate key 'stun.port' (first set on line 1)")
    }

    func testBadValuesAreRefused() {
        assertRefused("stun.port = 70000", line: 1, contains: "0...65535")
        assertRefused("stun.port = abc", line: 1, contains: "got 'abc'")
        assertRefused("stun.tcp = maybe", line: 1, contains: "expected yes or no")
        assertRefused("stun.listen = 1.2.3", line: 1, contains: "IPv4 or IPv6")
        assertRefused("log.level = loud", line: 1, contains: "log.level must be one of")
        assertRefused("log.max_size = 10X", line: 1, contains: "size")
        assertRefused("stun.alternate_server = 1.2.3.4", line: 1, contains: "ADDRESS:PORT")
        assertRefused("stun.tls_certificate = /nonexistent/cert.pem", line: 1, contains: "cannot read file")
        assertRefused("just some words", line: 1, contains: "expected 'key = value'")
        assertRefused("= 5", line: 1, contains: "missing key")
    }

    func testCrossKeyRules() {
        XCTAssertThrowsError(try apply("stun.alternate_address = 127.0.0.2\nstun.listen = 127.0.0.1"))
        XCTAssertThrowsError(try apply("stun.alternate_address = 127.0.0.2\nstun.alternate_port = 3479"))  // two listen addresses
        XCTAssertThrowsError(try apply("stun.listen = 127.0.0.1\nstun.alternate_address = 127.0.0.2\nstun.alternate_port = 0"))
        XCTAssertNoThrow(try apply("stun.listen = 127.0.0.1\nstun.alternate_address = 127.0.0.2\nstun.alternate_port = 3479"))
        XCTAssertThrowsError(try apply("stun.require_auth = yes"))
    }

    func testEveryKeyHasAFlagAndTheExampleFileDocumentsEveryKey() throws {
        let flags = Set(ConfigKey.all.map(\.flag))
        XCTAssertEqual(flags.count, ConfigKey.all.count)
        for key in ConfigKey.all {
            XCTAssertEqual(ConfigKey.byFlag[key.flag]?.name, key.name)
            XCTAssertFalse(key.flag.contains(".") || key.flag.contains("_"), key.flag)
        }
        // parley.conf.example at the repository root must mention every key and parse as-is.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let example = root.appendingPathComponent("parley.conf.example").path
        let text = try String(contentsOfFile: example, encoding: .utf8)
        for key in ConfigKey.all { XCTAssertTrue(text.contains(key.name), "parley.conf.example does not document \(key.name)") }
        var c = ServerConfiguration()
        XCTAssertNoThrow(try c.apply(try ConfigFile.parse(text, path: example)))
        // And docs/OPERATIONS.md lists every key.
        let operations = try String(contentsOfFile: root.appendingPathComponent("docs/OPERATIONS.md").path, encoding: .utf8)
        for key in ConfigKey.all { XCTAssertTrue(operations.contains("`\(key.name)`"), "docs/OPERATIONS.md does not list \(key.name)") }
    }
}
