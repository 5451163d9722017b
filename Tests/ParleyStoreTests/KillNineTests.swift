import Foundation
import ParleyStore
import XCTest

#if canImport(Glibc)
import Glibc

/// A real unclean end: a child process stores messages and prints each one the store acknowledged, the
/// test kills it with SIGKILL mid-stream, reopens the file and finds every acknowledged message.
///
/// The child is this test binary itself, running only ``testChildWriter()`` with the store path in
/// ``childVariable``; without that variable the helper skips.
final class KillNineTests: StoreTestCase {
    static let childVariable = "PARLEY_STORE_KILL9_CHILD"
    /// Acknowledgements to see before killing the child.
    static let acknowledgementsBeforeKill = 150

    func testAcknowledgedMailSurvivesKill9() async throws {
        let binary = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let child = Process()
        child.executableURL = URL(fileURLWithPath: binary)
        child.arguments = ["ParleyStoreTests.KillNineTests/testChildWriter"]
        child.environment = ProcessInfo.processInfo.environment.merging([Self.childVariable: storePath]) { $1 }
        let output = Pipe()
        child.standardOutput = output
        child.standardError = FileHandle.nullDevice
        try child.run()

        let fd = output.fileHandleForReading.fileDescriptor
        var text = ""
        let deadline = Date().addingTimeInterval(120)
        while Self.acknowledged(in: text).count < Self.acknowledgementsBeforeKill, child.isRunning, Date() < deadline {
            text += Self.read(fd, waitingMilliseconds: 100)
        }
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        text += String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(child.terminationReason, .uncaughtSignal, "the child was killed, did not exit:\n\(text)")
        let acknowledged = Self.acknowledged(in: text)
        XCTAssertGreaterThanOrEqual(acknowledged.count, Self.acknowledgementsBeforeKill, text)

        let store = try openStore()
        let stored = try await store.pendingMessages(user: "bob", device: "laptop", after: 0, limit: 1_000_000)
        print("killed the writer after \(acknowledged.count) acknowledged messages; \(stored.count) stored")
        let storedIDs = Set(stored.map(\.id))
        XCTAssertTrue(Set(acknowledged).isSubset(of: storedIDs), "acknowledged messages lost")
        // At most the one commit between "stored" and "printed" is extra; numbering has no holes.
        XCTAssertLessThanOrEqual(stored.count, acknowledged.count + 1)
        XCTAssertEqual(stored.map(\.sseq), Array(1...Int64(stored.count)))
    }

    /// The child's loop; see the type's documentation.
    func testChildWriter() async throws {
        guard let path = ProcessInfo.processInfo.environment[Self.childVariable] else {
            throw XCTSkip("helper of testAcknowledgedMailSurvivesKill9; runs only in its child process")
        }
        // This process is killed before tearDown; its own directory is unused, remove it now.
        try? FileManager.default.removeItem(at: directory)
        let store = try SQLiteSignalStore(path: path)
        for _ in 0..<100_000 {
            let id = UUID().uuidString.lowercased()
            let outgoing = OutgoingMessage(
                id: id, senderUser: "alice", senderDevice: "phone", recipient: "bob",
                copies: [SealedCopy(device: "laptop", ciphertext: "c2VhbGVk")]
            )
            _ = try await store.enqueueMessage(outgoing, at: Date())
            FileHandle.standardOutput.write(Data("acked \(id)\n".utf8))  // write(2): unbuffered
        }
    }

    /// The ids of the complete `acked <id>` lines in `text`.
    private static func acknowledged(in text: String) -> [String] {
        text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()  // the last may be partial
            .compactMap { $0.hasPrefix("acked ") ? String($0.dropFirst(6)) : nil }
    }

    /// Whatever `fd` has within the wait, as text.
    private static func read(_ fd: Int32, waitingMilliseconds: Int32) -> String {
        var request = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&request, 1, waitingMilliseconds) > 0 else { return "" }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = Glibc.read(fd, &buffer, buffer.count)
        return count > 0 ? String(decoding: buffer[..<count], as: UTF8.self) : ""
    }
}
#endif
