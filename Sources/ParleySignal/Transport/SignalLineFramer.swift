import NIOCore

/// What the line framer hands up: a complete line (without LF, and without a CR before it), or the
/// news that the peer sent a line longer than the limit (after which the framer discards everything).
public enum SignalLine: Sendable, Equatable {
    case line(String)
    case tooLong
}

/// Splits a TCP byte stream into signaling lines (docs/PROTOCOL.md §3.1) with a hard limit, so a peer
/// that never sends LF cannot make the server buffer without bound. Bytes that are not UTF-8 still
/// produce a line (with replacement characters), which the codec then refuses as a protocol error.
public struct SignalLineFramer: ByteToMessageDecoder {
    public typealias InboundOut = SignalLine

    /// Largest line accepted, counting the LF.
    public let maxLine: Int
    private var overflowed = false
    private var scanned = 0

    public init(maxLine: Int) {
        self.maxLine = maxLine
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if overflowed {
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return .needMoreData
        }
        let view = buffer.readableBytesView
        let start = view.startIndex + scanned
        guard let lf = view[start...].firstIndex(of: UInt8(ascii: "\n")) else {
            scanned = view.count
            if view.count >= maxLine {
                overflowed = true
                buffer.moveReaderIndex(to: buffer.writerIndex)
                context.fireChannelRead(wrapInboundOut(.tooLong))
            }
            return .needMoreData
        }
        let length = lf - view.startIndex
        scanned = 0
        if length + 1 > maxLine {
            overflowed = true
            buffer.moveReaderIndex(to: buffer.writerIndex)
            context.fireChannelRead(wrapInboundOut(.tooLong))
            return .needMoreData
        }
        var lineLength = length
        if lineLength > 0, buffer.getInteger(at: buffer.readerIndex + lineLength - 1, as: UInt8.self) == UInt8(ascii: "\r") {
            lineLength -= 1
        }
        let text = buffer.getString(at: buffer.readerIndex, length: lineLength) ?? ""
        buffer.moveReaderIndex(forwardBy: length + 1)
        context.fireChannelRead(wrapInboundOut(.line(text)))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A partial line at EOF is dropped: a command is only a command once its LF arrived.
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return .needMoreData
    }
}
