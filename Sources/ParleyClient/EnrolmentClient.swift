import Foundation
import NIOCore
import NIOPosix
import ParleyCrypto
import ParleyWire

/// Why an enrolment did not go through.
public enum EnrolmentError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The server refused it, with its code (invite used, expired, for another name, registration closed…).
    case refused(ServerFrame.RefusalCode, reason: String)
    /// The server answered something that is not an enrolment answer, or nothing in time.
    case protocolViolation(String)

    public var description: String {
        switch self {
        case .refused(let code, let reason): "refused (\(code.rawValue)): \(reason)"
        case .protocolViolation(let what): "the server did not answer the enrolment: \(what)"
        }
    }
}

/// Requests made before login (docs/PROTOCOL.md §3.8), each on a connection of its own: connect, wait for
/// `hello`, send `register` or `link`, read `enrolled` or `refused`, close.
public enum EnrolmentClient {
    /// Sends `request` to `host:port` and returns the `enrolled` detail (the user, or the request id).
    public static func send(
        _ request: Enrolment, host: String, port: Int, tls: ClientTLS? = nil, timeout: Duration = .seconds(10)
    ) async throws -> String {
        let sslContext = try tls?.makeContext()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(10))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext, let tls { try channel.pipeline.syncOperations.addHandler(tls.makeHandler(context: sslContext, host: host)) }
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(ClientLineFramer(maxLine: 1 << 16)))
                    return try NIOAsyncChannel<ClientLine, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await withThrowingTaskGroup(of: String.self) { group in
            group.addTask {
                try await channel.executeThenClose { inbound, outbound in
                    var sent = false
                    for try await line in inbound {
                        guard case .line(let text) = line else { throw EnrolmentError.protocolViolation("an over-long line") }
                        guard !text.isEmpty else { continue }
                        let frame: ServerFrame
                        do {
                            frame = try SignalCodec.parseServer(Substring(text))
                        } catch {
                            throw EnrolmentError.protocolViolation("\(error)")
                        }
                        switch frame {
                        case .hello where !sent:
                            sent = true
                            try await outbound.write(ByteBuffer(string: SignalCodec.format(.enrol(request)) + "\n"))
                        case .enrolled(_, let detail) where sent:
                            return detail
                        case .refused(let code, let reason) where sent:
                            throw EnrolmentError.refused(code, reason: reason)
                        case .error(let code, let reason):
                            throw EnrolmentError.protocolViolation("error \(code.rawValue): \(reason)")
                        default:
                            throw EnrolmentError.protocolViolation("unexpected \(text.prefix(32))")
                        }
                    }
                    throw EnrolmentError.protocolViolation("the connection closed")
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw EnrolmentError.protocolViolation("no answer within \(timeout)")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    /// Registers the account `list` makes: its version 1, one device, signed by the account's new user key
    /// (which the caller keeps).
    public static func register(
        _ list: DeviceList, invite: [UInt8]?, host: String, port: Int, tls: ClientTLS? = nil
    ) async throws {
        _ = try await send(
            .register(invite: invite.map { SignalBlob(bytes: $0) }, list: SignalBlob(bytes: list.wire)), host: host, port: port,
            tls: tls)
    }

    /// Asks to join `user`'s account as `device`: returns the link code to show (text and URI), once the
    /// server holds the request.
    public static func requestLink(
        user: SignalName, device: SignalName, identity: DeviceIdentity, host: String, port: Int, tls: ClientTLS? = nil
    ) async throws -> LinkCode {
        let code = LinkCode.make(user: user, device: device, bundle: identity.publicBundle)
        let payload = SignalBlob(String(identity.publicBundle.encoded.dropFirst(DevicePublicBundle.prefix.count)), maxBytes: 128)!
        _ = try await send(.link(request: code.requestID, user: user, device: device, bundle: payload), host: host, port: port, tls: tls)
        return code
    }
}

extension ParleyClient {
    /// The link request `code` names, fetched from the server and checked against the code: the device name and
    /// bundle the new device committed to. A request the server altered (another bundle or name) or a code
    /// altered on its way here does not match and is refused.
    public func linkRequest(_ code: LinkCode) async throws -> DeviceList.Entry {
        guard let me = credentials else { throw ClientError.notReady("log in first") }
        switch try await perform(.linkRequest(id: code.requestID)) {
        case .ack(let result):
            guard result.count == 2, let device = SignalName(result[0]), let bundle = try? DevicePublicBundle(encoded: result[1]) else {
                throw ClientError.violation("linkget answer is not <device>|<bundle>")
            }
            guard code.matches(user: me.user, device: device, bundle: bundle) else {
                throw LinkMismatch(device: device)
            }
            return DeviceList.Entry(name: device, bundle: bundle)
        case .nak(let code, let reason):
            throw ClientError.refused(code, reason: reason, verb: "linkget")
        case .processedEarlier:
            throw ClientError.disconnected("linkget was lost to a reconnect; ask again")
        }
    }
}

/// The link request the server handed over is not the one the code was made for: the server substituted a
/// device, or the code was altered on its way. Nothing is certified.
public struct LinkMismatch: Error, Sendable, Hashable, CustomStringConvertible {
    public let device: SignalName
    public var description: String {
        "REFUSED the link request: the device the server presents (\(device)) does not match the code; "
            + "the code was altered or the server substituted the device"
    }
}
