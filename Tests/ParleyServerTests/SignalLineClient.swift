import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import ParleyCrypto
import ParleySignal
import ParleyWire
import XCTest

/// A bare signaling client for tests: raw lines over TCP, so tests can say exactly what goes on the wire
/// (including things a well-behaved client never sends).
final class SignalLineClient: @unchecked Sendable {
    let channel: NIOAsyncChannel<SignalLine, ByteBuffer>
    private let received = NIOLockedValueBox<(lines: [SignalLine], closed: Bool)>(([], false))
    private var reader: Task<Void, Never>?
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    var cseq: UInt64 = 0
    var lastSSeq: UInt64 = 0

    /// With `tls`, the lines go through a NIOSSL client handler (`serverHostname` is sent in SNI and checked
    /// against the certificate); without it, plain TCP.
    init(port: Int, host: String = "127.0.0.1", tls: NIOSSLContext? = nil, serverHostname: String? = nil) async throws {
        channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverHostname))
                    }
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(SignalLineFramer(maxLine: 1 << 20)))
                    return try NIOAsyncChannel<SignalLine, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        // The async channel is consumed by hand here (tests read line by line).
        self.outbound = channel.outbound
        let inbound = channel.inbound
        let received = self.received
        reader = Task {
            do {
                for try await line in inbound { received.withLockedValue { $0.lines.append(line) } }
            } catch {}
            received.withLockedValue { $0.closed = true }
        }
    }

    /// Whether the server closed the connection (and every line it sent was read).
    var isClosed: Bool { received.withLockedValue { $0.closed && $0.lines.isEmpty } }

    func send(_ line: String) async throws {
        try await outbound.write(ByteBuffer(string: line + "\n"))
    }

    func sendRaw(_ bytes: [UInt8]) async throws {
        try await outbound.write(ByteBuffer(bytes: bytes))
    }

    /// The next line, or nil when the server closed the connection (or nothing came within `timeout`).
    func next(timeout: Duration = .seconds(5)) async throws -> String? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let item: SignalLine?? = received.withLockedValue { r in
                if !r.lines.isEmpty { return .some(r.lines.removeFirst()) }
                return r.closed ? .some(nil) : nil
            }
            switch item {
            case .some(.some(.line(let text))): return text
            case .some(.some(.tooLong)): return "<too long>"
            case .some(.none): return nil
            case .none: try await Task.sleep(for: .milliseconds(2))
            }
        }
        return nil
    }

    /// Skips keepalives.
    func frame(timeout: Duration = .seconds(5)) async throws -> ServerFrame? {
        while let line = try await next(timeout: timeout) {
            if line.isEmpty { continue }
            return try SignalCodec.parseServer(line[...])
        }
        return nil
    }

    /// Reads `hello`, logs in, reads `welcome`.
    func login(user: String, device: String, identity: DeviceIdentity, clockSkew: Int64 = 0) async throws -> ServerFrame? {
        guard case .hello(_, let challenge, _) = try await frame() else { XCTFail("no hello"); return nil }
        let u = SignalName(user)!
        let d = SignalName(device)!
        let ts = UInt64(Int64(Date().timeIntervalSince1970 * 1000) + clockSkew)
        let input = SignalCodec.loginSigningInput(challenge: challenge, user: u, device: d, timestamp: ts)
        let sig = try identity.signingKey.signature(for: input)
        try await send(SignalCodec.format(.login(user: u, device: d, timestamp: ts, signature: SignalBlob(bytes: sig))))
        return try await frame()
    }

    /// Sends a command with the next cseq and the current time.
    @discardableResult
    func command(_ verb: SignalCommand.Verb) async throws -> UInt64 {
        cseq += 1
        let ts = UInt64(Date().timeIntervalSince1970 * 1000)
        try await send(SignalCodec.format(.command(SignalCommand(cseq: cseq, timestamp: ts, verb: verb))))
        return cseq
    }

    /// Reads frames until an event arrives (acks/naks in between are returned in `replies`), acks it.
    func event(timeout: Duration = .seconds(5)) async throws -> SignalEvent? {
        while let f = try await frame(timeout: timeout) {
            if case .event(let sseq, _, let e) = f {
                lastSSeq = sseq
                try await send("got|\(sseq)")
                return e
            }
        }
        return nil
    }

    func close() async {
        try? await channel.channel.close()
        reader?.cancel()
    }
}
