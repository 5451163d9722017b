import Crypto
import Foundation
import ParleyCrypto
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

final class KeyFileTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        var template = Array((NSTemporaryDirectory() + "/parley-keyfile-XXXXXX").utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        XCTAssertNotNil(created)
        directory = String(cString: template)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func path(_ name: String = "device.key") -> String { directory + "/" + name }

    private func mode(of path: String) -> mode_t {
        var status = stat()
        XCTAssertEqual(stat(path, &status), 0)
        return status.st_mode & 0o7777
    }

    /// Writes `text` as a key file with a safe mode, for the parser tests.
    private func writeRaw(_ text: String, to path: String, mode: mode_t = 0o600) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(chmod(path, mode), 0)
    }

    private func assertReadFails(
        _ path: String,
        code: KeyFileError.Code,
        mentioning fragments: [String],
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        XCTAssertThrowsError(try KeyFile.read(from: path), file: file, line: line) { error in
            XCTAssertEqual((error as? KeyFileError)?.code, code, "\(error)", file: file, line: line)
            for fragment in fragments {
                XCTAssertTrue("\(error)".contains(fragment), "'\(fragment)' not in: \(error)", file: file, line: line)
            }
        }
    }

    func testRoundTrip() throws {
        let identity = DeviceIdentity.generate()
        try KeyFile.write(identity, to: path(), force: false)
        let read = try KeyFile.read(from: path())
        XCTAssertEqual(read.signingKey.rawRepresentation, identity.signingKey.rawRepresentation)
        XCTAssertEqual(read.agreementKey.rawRepresentation, identity.agreementKey.rawRepresentation)
        XCTAssertEqual(read.publicBundle, identity.publicBundle)
    }

    func testFileFormat() throws {
        let identity = DeviceIdentity.generate()
        try KeyFile.write(identity, to: path(), force: false)
        let text = try String(contentsOfFile: path(), encoding: .utf8)
        XCTAssertEqual(
            text,
            "parley-device-key v1\n"
                + "ed25519 \(base64url(identity.signingKey.rawRepresentation))\n"
                + "x25519 \(base64url(identity.agreementKey.rawRepresentation))\n"
        )
    }

    func testModeIs0600AndNoTemporaryFilesRemain() throws {
        try KeyFile.write(DeviceIdentity.generate(), to: path(), force: false)
        XCTAssertEqual(mode(of: path()), 0o600)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), ["device.key"])
    }

    func testRefusesOverwriteWithoutForce() throws {
        let first = DeviceIdentity.generate()
        try KeyFile.write(first, to: path(), force: false)
        XCTAssertThrowsError(try KeyFile.write(DeviceIdentity.generate(), to: path(), force: false)) { error in
            XCTAssertEqual(error as? KeyFileError, .fileExists(path: path()))
            XCTAssertTrue("\(error)".contains("--force"), "\(error)")
            XCTAssertTrue("\(error)".contains(path()), "\(error)")
        }
        XCTAssertEqual(try KeyFile.read(from: path()).publicBundle, first.publicBundle)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), ["device.key"])
    }

    func testOverwritesWithForce() throws {
        try KeyFile.write(DeviceIdentity.generate(), to: path(), force: false)
        XCTAssertEqual(chmod(path(), 0o644), 0)
        let second = DeviceIdentity.generate()
        try KeyFile.write(second, to: path(), force: true)
        XCTAssertEqual(try KeyFile.read(from: path()).publicBundle, second.publicBundle)
        XCTAssertEqual(mode(of: path()), 0o600)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), ["device.key"])
    }

    func testForceWritesWhenNothingIsThere() throws {
        let identity = DeviceIdentity.generate()
        try KeyFile.write(identity, to: path(), force: true)
        XCTAssertEqual(try KeyFile.read(from: path()).publicBundle, identity.publicBundle)
    }

    func testRefusesFileOpenToGroupOrOthers() throws {
        try KeyFile.write(DeviceIdentity.generate(), to: path(), force: false)
        for (bits, shown) in [(mode_t(0o644), "0644"), (0o640, "0640"), (0o604, "0604"), (0o660, "0660")] {
            XCTAssertEqual(chmod(path(), bits), 0)
            assertReadFails(path(), code: .insecurePermissions, mentioning: [path(), shown])
        }
        XCTAssertEqual(chmod(path(), 0o400), 0)
        XCTAssertNoThrow(try KeyFile.read(from: path()))
    }

    func testWriteIntoMissingDirectoryFails() {
        let target = directory + "/missing/device.key"
        XCTAssertThrowsError(try KeyFile.write(DeviceIdentity.generate(), to: target, force: false)) { error in
            XCTAssertEqual((error as? KeyFileError)?.code, .systemCallFailed)
        }
    }

    func testReadMissingFileFails() {
        assertReadFails(path("absent.key"), code: .systemCallFailed, mentioning: [path("absent.key"), "open"])
    }

    func testReadDirectoryFails() {
        XCTAssertEqual(chmod(directory, 0o700), 0)
        assertReadFails(directory, code: .malformedKeyFile, mentioning: [directory, "regular file"])
    }

    func testMalformedContentNamesFileAndLine() throws {
        let key = base64url(Data(repeating: 7, count: 32))
        let cases: [(String, String)] = [
            ("", ":1:"),
            ("parley-device-key v2\ned25519 \(key)\nx25519 \(key)\n", ":1:"),
            ("parley-device-key v1\ned25519 \(key)\nrsa \(key)\n", ":3:"),
            ("parley-device-key v1\ned25519 \(key)\n\nx25519 \(key)\n", ":3:"),
            ("parley-device-key v1\ned25519 \(key)=\nx25519 \(key)\n", ":2:"),
            ("parley-device-key v1\ned25519 \(key)\nx25519 \(key.dropLast(6))\n", ":3:"),
            ("parley-device-key v1\ned25519 \(key)\ned25519 \(key)\nx25519 \(key)\n", ":3:"),
            ("parley-device-key v1\ned25519 \(key)\n", "no x25519"),
            ("parley-device-key v1\nx25519 \(key)\n", "no ed25519"),
        ]
        for (text, fragment) in cases {
            try writeRaw(text, to: path())
            assertReadFails(path(), code: .malformedKeyFile, mentioning: [path(), fragment])
        }
    }

    func testReadAcceptsMissingFinalNewline() throws {
        let identity = DeviceIdentity.generate()
        let text =
            "parley-device-key v1\ned25519 \(base64url(identity.signingKey.rawRepresentation))\n"
            + "x25519 \(base64url(identity.agreementKey.rawRepresentation))"
        try writeRaw(text, to: path())
        XCTAssertEqual(try KeyFile.read(from: path()).publicBundle, identity.publicBundle)
    }

    func testErrorsNeverEchoKeyMaterial() throws {
        let identity = DeviceIdentity.generate()
        let signing = base64url(identity.signingKey.rawRepresentation)
        let agreement = base64url(identity.agreementKey.rawRepresentation)
        let cases = [
            "parley-device-key v1\n\(signing)\nx25519 \(agreement)\n",  // keyword missing
            "parley-device-key v1\ned25519 \(signing)AAAA\nx25519 \(agreement)\n",  // too long
            "parley-device-key v1\ned25519 \(signing)\nx25519 \(agreement)=\n",  // padded
            "\(signing)\n",  // no header
        ]
        for text in cases {
            try writeRaw(text, to: path())
            XCTAssertThrowsError(try KeyFile.read(from: path())) { error in
                for secret in spellings(of: identity.signingKey.rawRepresentation) + [agreement] {
                    XCTAssertFalse("\(error)".contains(secret), "key material in: \(error)")
                }
            }
        }
    }

    func testRejectsOversizedFile() throws {
        try writeRaw("parley-device-key v1\n" + String(repeating: "#", count: 5000), to: path())
        assertReadFails(path(), code: .malformedKeyFile, mentioning: [path(), "4096"])
    }
}
