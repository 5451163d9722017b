import Foundation
import ParleyCrypto
import ParleyWire
import XCTest

@testable import ParleyClient

/// Shorthand for names in tests.
func sname(_ text: String) -> SignalName { SignalName(text)! }

/// A temporary directory, removed by the test's teardown.
func temporaryDirectory(_ test: XCTestCase) throws -> String {
    let path = NSTemporaryDirectory() + "parley-client-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
    return path
}

/// Fast timings so reconnects and keepalives happen in milliseconds.
func fastOptions(directory: String?, device: String = "default") -> ParleyClient.Options {
    var options = ParleyClient.Options(
        statePath: directory.map { "\($0)/\(device).key.state" },
        contactsPath: directory.map { "\($0)/contacts-\(device)" })
    options.initialReconnectDelay = .milliseconds(5)
    options.maximumReconnectDelay = .milliseconds(40)
    options.loginTimeout = .seconds(5)
    return options
}

/// A device registered with the fake server.
struct TestDevice {
    var identity: DeviceIdentity
    var user: SignalName
    var device: SignalName
    var address: FakeSignalServer.Device { .init(user: user, device: device) }
}

/// Registers a fresh identity for `user`/`device` with `server`.
func register(_ user: String, _ device: String = "default", on server: FakeSignalServer) async -> TestDevice {
    let identity = DeviceIdentity.generate()
    await server.addAccount(sname(user), sname(device), identity.publicBundle)
    return TestDevice(identity: identity, user: sname(user), device: sname(device))
}

/// Connects and logs in `device`.
func loggedInClient(
    _ device: TestDevice, server: FakeSignalServer, options: ParleyClient.Options
) async throws -> ParleyClient {
    let client = ParleyClient(options: options)
    _ = try await client.connect(host: "127.0.0.1", port: server.port)
    _ = try await client.login(identity: device.identity, user: device.user, device: device.device)
    return client
}

/// Polls `condition` every few milliseconds until it holds, failing after `timeout`.
func eventually(
    timeout: Duration = .seconds(5), _ what: String = "condition", file: StaticString = #filePath, line: UInt = #line,
    _ condition: () async throws -> Bool
) async rethrows {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try? await Task.sleep(for: .milliseconds(5))
    }
    XCTFail("timed out waiting for \(what)", file: file, line: line)
}

/// The next event from `iterator`, failing after `timeout`.
func nextEvent(
    _ iterator: inout ClientEvents.Iterator, timeout: Duration = .seconds(5), file: StaticString = #filePath,
    line: UInt = #line
) async throws -> ClientEvent {
    let box = IteratorBox(iterator)
    let event = try await withThrowingTaskGroup(of: ClientEvent?.self) { group in
        group.addTask { await box.next() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        let first = try await group.next()!
        group.cancelAll()
        return first
    }
    iterator = box.iterator
    guard let event else {
        XCTFail("no event within \(timeout)", file: file, line: line)
        throw CancellationError()
    }
    return event
}

/// Moves an iterator into a child task and back.
final class IteratorBox: @unchecked Sendable {
    var iterator: ClientEvents.Iterator
    init(_ iterator: ClientEvents.Iterator) { self.iterator = iterator }
    func next() async -> ClientEvent? { await iterator.next() }
}

/// Asserts that `body` throws a ``ClientError`` with `code`.
func assertClientError<T>(
    _ code: ClientError.Code, file: StaticString = #filePath, line: UInt = #line, _ body: () async throws -> T
) async {
    do {
        _ = try await body()
        XCTFail("expected \(code)", file: file, line: line)
    } catch let error as ClientError {
        XCTAssertEqual(error.code, code, "\(error)", file: file, line: line)
    } catch {
        XCTFail("expected \(code), got \(error)", file: file, line: line)
    }
}

/// The POSIX permission bits of `path`.
func mode(_ path: String) throws -> Int {
    (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! NSNumber).intValue
}
