import XCTest

@testable import ParleyClient

/// Every client file is worked out from the key's absolute path (issue 13: `--key alice.key` put the
/// contacts at `/contacts`).
final class ClientFilesTests: XCTestCase {
    func testARelativeKeyIsRelativeToTheWorkingDirectory() {
        let files = ClientFiles(key: "alice.key", workingDirectory: "/home/a/work", home: "/home/a")
        XCTAssertEqual(files.key, "/home/a/work/alice.key")
        XCTAssertEqual(files.directory, "/home/a/work")
        XCTAssertEqual(files.state, "/home/a/work/alice.key.state")
        XCTAssertEqual(files.contacts, "/home/a/work/alice.key.contacts")
        XCTAssertEqual(files.sharedContacts, "/home/a/work/contacts")
        XCTAssertEqual(files.trust, "/home/a/work/alice.key.trust")
        XCTAssertEqual(files.userKey, "/home/a/work/alice.key.user")
        XCTAssertEqual(files.natCache, "/home/a/work/nat-cache")
        XCTAssertEqual(ClientFiles(key: "keys/../keys/./bob.key", workingDirectory: "/w").trust, "/w/keys/bob.key.trust")
        XCTAssertEqual(ClientFiles(key: "../up.key", workingDirectory: "/w/x").key, "/w/up.key")
    }

    func testAnAbsoluteKeyStaysWhereItIs() {
        let files = ClientFiles(key: "/srv//parley/./dev.key", workingDirectory: "/elsewhere", home: "/home/a")
        XCTAssertEqual(files.key, "/srv/parley/dev.key")
        XCTAssertEqual(files.contacts, "/srv/parley/dev.key.contacts")
        XCTAssertEqual(files.natCache, "/srv/parley/nat-cache")
        // A key at the root keeps its files at the root, as asked (not by accident).
        XCTAssertEqual(ClientFiles(key: "/dev.key").natCache, "/nat-cache")
        XCTAssertEqual(ClientFiles(key: "/../dev.key").key, "/dev.key")
    }

    func testTildeIsTheHomeDirectory() {
        XCTAssertEqual(ClientFiles(key: "~/.parley/device.key", workingDirectory: "/w", home: "/home/a").trust, "/home/a/.parley/device.key.trust")
        XCTAssertEqual(ClientFiles.absolute("~", workingDirectory: "/w", home: "/home/a"), "/home/a")
        // `~name` is that user's home; an unknown name is an ordinary relative path, as in the shell.
        XCTAssertEqual(ClientFiles.absolute("~root/k", workingDirectory: "/w", home: "/home/a"), (FileManager.default.homeDirectory(forUser: "root")?.path ?? "/w/~root") + "/k")
        XCTAssertEqual(ClientFiles.absolute("~no-such-user-here/k", workingDirectory: "/w", home: "/home/a"), "/w/~no-such-user-here/k")
        // A tilde inside a path is just a character.
        XCTAssertEqual(ClientFiles.absolute("a/~/k", workingDirectory: "/w", home: "/home/a"), "/w/a/~/k")
    }

    func testTheProcessWorkingDirectoryIsTheDefault() {
        let cwd = FileManager.default.currentDirectoryPath
        XCTAssertEqual(ClientFiles(key: "x.key").directory, ClientFiles.absolute(cwd))
    }
}
