import NIOCore
import ParleyWire

/// Cuts a TCP connection to a TURN server into STUN messages and ChannelData frames (RFC 8656 §12.5:
/// ChannelData padded to four bytes on streams). Anything else is a protocol error that closes it.
struct TURNStreamFramer: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    static let maxFrame = 4 + 65_535 + 3

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self), buffer.readableBytes >= 4 else {
            return .needMoreData
        }
        let length: Int?
        if STUNDecoder.looksLikeSTUN(first) {
            length = STUNDecoder.frameLength(buffer)
        } else if ChannelData.looksLikeChannelData(first) {
            length = ChannelData.frameLength(buffer)
        } else {
            throw TURNStreamError()
        }
        guard let length, length <= Self.maxFrame else { throw TURNStreamError() }
        guard buffer.readableBytes >= length, let frame = buffer.readSlice(length: length) else { return .needMoreData }
        context.fireChannelRead(NIOAny(frame))
        return .continue
    }
}

struct TURNStreamError: Error {}

/// Hands each frame of TCP connection `index` to the engine (on its loop).
final class TURNStreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let engine: CallMediaEngine
    let index: Int

    init(engine: CallMediaEngine, index: Int) {
        self.engine = engine
        self.index = index
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        engine.emit(engine.traversal.receiveStream(Array(frame.readableBytesView), index: index, now: engine.now))
        engine.channel.flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        // The connection ended (reset, a dead network): an allocation it carried is gone too. At hang-up
        // the engine closes its connections itself; nothing to replace then.
        if !engine.closed {
            engine.emit(engine.traversal.streamClosed(index, now: engine.now))
            engine.channel.flush()
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
