import CoreMetrics
import Foundation
import Logging
import ParleyRelay
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

    /// A secret file (mode 0600) for configurations that need credentials.
    private func secretFile() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("parley-secret-\(UUID().uuidString)").path
        try "s3cret\n".write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// With credentials, an unauthenticated request gets a 401/438 challenge, which must fit the
    /// amplification allowance for the smallest (20-byte) request: 32 bytes plus the realm rounded up to 4.
    /// A combination where it never can (the cores would drop every challenge) is refused at start.
    func testAmplificationAllowanceTooSmallForTheChallengeIsRefused() throws {
        let secrets = try secretFile()
        for (allowance, realm, ok) in [(24, "parley", false), (39, "parley", false), (40, "parley", true),
                                       (63, String(repeating: "r", count: 32), false), (64, String(repeating: "r", count: 32), true),
                                       (44, "parley.test", true), (43, "parley.test", false)] {
            let text = "stun.auth_secret_file = \(secrets)\nstun.realm = \(realm)\nstun.amplification_allowance = \(allowance)\n"
            if ok {
                XCTAssertNoThrow(try apply(text), "\(allowance), \(realm)")
            } else {
                XCTAssertThrowsError(try apply(text), "\(allowance), \(realm)") { error in
                    let message = (error as? ConfigError)?.message ?? ""
                    XCTAssertTrue(message.contains("stun.amplification_allowance \(allowance) is too small"), message)
                    XCTAssertTrue(message.contains("at least \(32 + (realm.utf8.count + 3) / 4 * 4)"), message)
                }
            }
        }
        // TURN (its own credentials) challenges too.
        let users = try secretFile()
        XCTAssertThrowsError(try apply("turn.enabled = yes\nturn.users_file = \(users)\nturn.relay_ipv4 = 127.0.0.1\nstun.amplification_allowance = 24"))
        // Without credentials no challenge is ever sent: any allowance the key accepts is fine.
        XCTAssertEqual(try apply("stun.amplification_allowance = 24").stunAmplificationAllowance, 24)
    }

    func testMaxPermissionsKeyReachesTheTURNCore() throws {
        XCTAssertEqual(ServerConfiguration().turnMaxPermissions, 256)
        assertRefused("turn.max_permissions = 0", line: 1, contains: "1...65536")
        let secrets = try secretFile()
        let c = try apply("turn.enabled = yes\nstun.auth_secret_file = \(secrets)\nturn.relay_ipv4 = 127.0.0.1\nturn.max_permissions = 17")
        XCTAssertEqual(c.turnMaxPermissions, 17)
        let turn = try XCTUnwrap(try ParleyServerInstance.turnContext(c, logger: Logger(label: "test"), factory: NOOPMetricsHandler.instance))
        XCTAssertEqual(turn.configuration.maxPermissionsPerAllocation, 17)
        XCTAssertEqual(turn.configuration.amplificationAllowance, 64)
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
