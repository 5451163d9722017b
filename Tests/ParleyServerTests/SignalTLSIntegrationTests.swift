import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import ParleyCrypto
import ParleySignal
import ParleyWire
import XCTest

@testable import ParleyServer

/// Signaling over TLS (signal.tls_port) with real sockets on loopback: a self-signed certificate made at
/// test time, clients that verify it fully (it is their only trust root, and its name must be `localhost`),
/// a whole call and offline sealed mail between a TLS device and a plain TCP one, and a plain-text client on
/// the TLS port that gets no signaling service.
final class SignalTLSIntegrationTests: XCTestCase {
    var dir = ""
    let alice = DeviceIdentity.generate()
    let bobLaptop = DeviceIdentity.generate()
    let bobPhone = DeviceIdentity.generate()

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "parley-signal-tls-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                             "-keyout", dir + "/key.pem", "-out", dir + "/cert.pem", "-days", "1", "-subj", "/CN=localhost",
                             "-addext", "subjectAltName=DNS:localhost"]
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        XCTAssertEqual(openssl.terminationStatus, 0, "openssl could not make the test certificate")
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func startServer(_ mutate: (inout ServerConfiguration) -> Void = { _ in }) async throws -> ParleyServerInstance {
        try await TestServer.start(in: dir, accounts: [("alice.phone", alice), ("bob.laptop", bobLaptop), ("bob.phone", bobPhone)]) { c in
            c.signalTLSPort = 0
            c.signalTLSCertificate = dir + "/cert.pem"
            c.signalTLSPrivateKey = dir + "/key.pem"
            mutate(&c)
        }
    }

    /// Full verification: the generated certificate is the only trust root, and the name is checked.
    func clientContext() throws -> NIOSSLContext {
        var c = TLSConfiguration.makeClientConfiguration()
        c.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(dir + "/cert.pem"))
        c.certificateVerification = .fullVerification
        c.minimumTLSVersion = .tlsv12
        return try NIOSSLContext(configuration: c)
    }

    func tlsClient(port: Int, serverHostname: String = "localhost") async throws -> SignalLineClient {
        try await SignalLineClient(port: port, tls: try clientContext(), serverHostname: serverHostname)
    }

    func testCallAndOfflineSealedMessageBetweenATLSDeviceAndATCPDevice() async throws {
        let server = try await startServer()
        let tcpPort = try XCTUnwrap(server.signal?.tcpPort)
        let tlsPort = try XCTUnwrap(server.signal?.tlsBoundPort)
        XCTAssertNotEqual(tcpPort, tlsPort)

        let a = try await tlsClient(port: tlsPort)
        let b = try await SignalLineClient(port: tcpPort)
        guard case .welcome = try await a.login(user: "alice", device: "phone", identity: alice) else { return XCTFail("alice over TLS") }
        guard case .welcome = try await b.login(user: "bob", device: "laptop", identity: bobLaptop) else { return XCTFail("bob over TCP") }

        // TCP caller, TLS callee: the ring and the accept cross the TLS connection.
        let call = SignalID.random()
        let offer = SignalBlob(bytes: Array("offer-from-tcp".utf8))
        let answer = SignalBlob(bytes: Array("answer-from-tls".utf8))
        let c1 = try await b.command(.call(call: call, callee: SignalName("alice")!, offer: offer))
        let got1 = try await b.frame()
        XCTAssertEqual(got1, .ack(cseq: c1, result: []))
        let got2 = try await a.event()
        XCTAssertEqual(got2, .ring(call: call, caller: SignalName("bob")!, callerDevice: SignalName("laptop")!, offer: offer))
        let c2 = try await a.command(.accept(call: call, answer: answer))
        let got3 = try await a.frame()
        XCTAssertEqual(got3, .ack(cseq: c2, result: []))
        let got4 = try await b.event()
        XCTAssertEqual(got4, .answer(call: call, device: SignalName("phone")!, answer: answer))
        let c3 = try await a.command(.end(call: call))
        let got5 = try await a.frame()
        XCTAssertEqual(got5, .ack(cseq: c3, result: []))
        let got6 = try await b.event()
        XCTAssertEqual(got6, .ended(call: call, reason: .hangup))

        // TLS caller, TCP callee: the answer comes back over TLS.
        let call2 = SignalID.random()
        let offer2 = SignalBlob(bytes: Array("offer-from-tls".utf8))
        let answer2 = SignalBlob(bytes: Array("answer-from-tcp".utf8))
        let c4 = try await a.command(.call(call: call2, callee: SignalName("bob")!, offer: offer2))
        let got7 = try await a.frame()
        XCTAssertEqual(got7, .ack(cseq: c4, result: []))
        let got8 = try await b.event()
        XCTAssertEqual(got8, .ring(call: call2, caller: SignalName("alice")!, callerDevice: SignalName("phone")!, offer: offer2))
        let c5 = try await b.command(.accept(call: call2, answer: answer2))
        let got9 = try await b.frame()
        XCTAssertEqual(got9, .ack(cseq: c5, result: []))
        let got10 = try await a.event()
        XCTAssertEqual(got10, .answer(call: call2, device: SignalName("laptop")!, answer: answer2))
        let c6 = try await b.command(.end(call: call2))
        let got11 = try await b.frame()
        XCTAssertEqual(got11, .ack(cseq: c6, result: []))
        let got12 = try await a.event()
        XCTAssertEqual(got12, .ended(call: call2, reason: .hangup))

        // Alice goes away; sealed mail from TCP waits for her and is delivered when she is back over TLS.
        await a.close()
        let msg = SignalID.random()
        let ct = SignalBlob(bytes: Array("sealed-for-alice-phone".utf8))
        let c7 = try await b.command(.message(id: msg, to: SignalName("alice")!, sealed: [.init(device: SignalName("phone")!, ciphertext: ct)]))
        let got13 = try await b.frame()
        XCTAssertEqual(got13, .ack(cseq: c7, result: []), "acked only once committed")
        let a2 = try await tlsClient(port: tlsPort)
        guard case .welcome = try await a2.login(user: "alice", device: "phone", identity: alice) else { return XCTFail("alice again") }
        let got14 = try await a2.event()
        XCTAssertEqual(got14, .message(id: msg, from: SignalName("bob")!, fromDevice: SignalName("laptop")!, sealed: ct))

        await a2.close(); await b.close()
        try await server.shutdown()
    }

    func testPlainTextOnTheTLSPortGetsNoSignalingService() async throws {
        // A short login timeout, so a plain-text client that never says anything is seen to be let go.
        let server = try await startServer { $0.signalLoginTimeout = 3 }
        let tlsPort = try XCTUnwrap(server.signal?.tlsBoundPort)
        let mute = try await RawStreamClient(port: tlsPort)
        let a = try await tlsClient(port: tlsPort)
        guard case .welcome = try await a.login(user: "alice", device: "phone", identity: alice) else { return XCTFail("alice over TLS") }

        // Positive control for the client side: a client that expects another name refuses this certificate,
        // so the clients above really verified it.
        let wrongName = try await tlsClient(port: tlsPort, serverHostname: "parley.example")
        let got1 = try await wrongName.next(timeout: .seconds(10))
        XCTAssertNil(got1, "no hello through a refused certificate")

        // Plain text: no greeting while silent (the hello stays behind the handshake), then once it talks,
        // nothing it says is taken as signaling and the connection is closed.
        let plain = try await RawStreamClient(port: tlsPort)
        let silent = await plain.waitForClose(timeout: .milliseconds(500))
        XCTAssertFalse(silent, "not closed before it said anything")
        XCTAssertEqual(plain.bytes, [], "no greeting in plain text on the TLS port")
        try await plain.send("keys|1|1|bob\n")
        let closed = await plain.waitForClose(timeout: .seconds(30))
        XCTAssertTrue(closed, "the plain-text connection is closed")
        let reply = String(decoding: plain.bytes, as: UTF8.self)
        XCTAssertFalse(reply.contains("hello|"), reply)
        if let first = plain.bytes.first { XCTAssertEqual(first, 0x15, "anything it gets back is a TLS alert record") }
        for piece in reply.split(separator: "\n") {
            XCTAssertNil(try? SignalCodec.parseServer(piece[...]), "a signaling frame in plain text: \(piece)")
        }

        // The TLS session from before is still served, and new TLS clients still get in.
        let k = try await a.command(.keys(user: SignalName("bob")!))
        guard case .ack(k, let result) = try await a.frame() else { return XCTFail("keys over TLS after the plain-text client") }
        XCTAssertEqual(result.first, "bob")
        let bp = try await tlsClient(port: tlsPort)
        guard case .welcome = try await bp.login(user: "bob", device: "phone", identity: bobPhone) else { return XCTFail("bob over TLS") }
        let call = SignalID.random()
        let offer = SignalBlob(bytes: Array("offer".utf8))
        let c = try await a.command(.call(call: call, callee: SignalName("bob")!, offer: offer))
        let got2 = try await a.frame()
        XCTAssertEqual(got2, .ack(cseq: c, result: []))
        let got3 = try await bp.event()
        XCTAssertEqual(got3, .ring(call: call, caller: SignalName("alice")!, callerDevice: SignalName("phone")!, offer: offer))

        // The one that never spoke is closed by the login timeout, still without a greeting.
        let muteClosed = await mute.waitForClose(timeout: .seconds(30))
        XCTAssertTrue(muteClosed, "a silent plain-text connection is closed by the login timeout")
        XCTAssertEqual(mute.bytes, [], "no greeting in plain text on the TLS port")

        await mute.close(); await plain.close(); await wrongName.close(); await a.close(); await bp.close()
        try await server.shutdown()
    }
}

/// Raw bytes over plain TCP, kept as they come, for talking to a port in the wrong protocol.
private final class RawStreamClient: @unchecked Sendable {
    let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
    private let received = NIOLockedValueBox<(bytes: [UInt8], closed: Bool)>(([], false))
    private var reader: Task<Void, Never>?

    init(port: Int, host: String = "127.0.0.1") async throws {
        channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let inbound = channel.inbound
        let received = self.received
        reader = Task {
            do {
                for try await chunk in inbound { received.withLockedValue { $0.bytes += Array(chunk.readableBytesView) } }
            } catch {}
            received.withLockedValue { $0.closed = true }
        }
    }

    var bytes: [UInt8] { received.withLockedValue { $0.bytes } }

    func send(_ text: String) async throws {
        try await channel.outbound.write(ByteBuffer(string: text))
    }

    /// Whether the server closed the connection within `timeout`.
    func waitForClose(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if received.withLockedValue({ $0.closed }) { return true }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return received.withLockedValue { $0.closed }
    }

    func close() async {
        try? await channel.channel.close()
        reader?.cancel()
    }
}
