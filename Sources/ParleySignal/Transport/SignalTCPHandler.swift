import NIOCore

/// A signaling connection over TCP (or TLS, with NIOSSL's handler in front): lines out, lines in.
final class SignalTCPConnection: SignalConnection, @unchecked Sendable {
    let channel: any Channel
    let peer: String

    init(channel: any Channel) {
        self.channel = channel
        self.peer = channel.remoteAddress.map { "\($0)" } ?? "?"
    }

    func send(_ frame: String) {
        var buffer = channel.allocator.buffer(capacity: frame.utf8.count + 1)
        buffer.writeString(frame)
        buffer.writeInteger(UInt8(ascii: "\n"))
        channel.writeAndFlush(buffer, promise: nil)
    }

    func close() {
        channel.close(promise: nil)
    }
}

/// Feeds framed lines of one TCP connection to the hub.
final class SignalTCPHandler: ChannelInboundHandler {
    typealias InboundIn = SignalLine

    private let hub: SignalHub
    private var connection: SignalTCPConnection?

    init(hub: SignalHub) {
        self.hub = hub
    }

    func channelActive(context: ChannelHandlerContext) {
        let c = SignalTCPConnection(channel: context.channel)
        connection = c
        hub.connected(c)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let connection else { return }
        switch unwrapInboundIn(data) {
        case .line(let text): hub.received(text, from: connection)
        case .tooLong: hub.tooLong(from: connection)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let connection { hub.closed(connection) }
        connection = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
