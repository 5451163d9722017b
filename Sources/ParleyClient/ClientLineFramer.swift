import NIOCore

/// One unit the client's framer hands up: a complete line (without its LF and a CR before it), or the news
/// that the server sent a line longer than the limit.
enum ClientLine: Sendable, Equatable {
    /// A complete line; empty for a keepalive.
    case line(String)
    /// The server sent more than `maxLine` bytes without an LF; the framer discards the rest of the stream.
    case tooLong
}

/// Splits the server's byte stream into lines (docs/PROTOCOL.md §3.1) with a hard limit, so a misbehaving
/// server cannot make the client buffer without bound.
///
/// The limit counts the LF. After an overlong line the framer reports ``ClientLine/tooLong`` once and then
/// drops everything: the caller closes the connection. A partial line at EOF is dropped.
struct ClientLineFramer: ByteToMessageDecoder {
    typealias InboundOut = ClientLine

    /// Largest accepted line, counting the LF.
    let maxLine: Int
    private var overflowed = false
    /// Bytes already searched for an LF, so a line arriving in many reads is scanned once.
    private var scanned = 0

    init(maxLine: Int) {
        precondition(maxLine >= 2, "a line needs room for at least one byte and its LF")
        self.maxLine = maxLine
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let line = try next(from: &buffer) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(line))
        return line == .tooLong ? .needMoreData : .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws
        -> DecodingState
    {
        while let line = try next(from: &buffer) {
            context.fireChannelRead(wrapInboundOut(line))
            if line == .tooLong { break }
        }
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return .needMoreData
    }

    /// The framing logic without a channel: the next line in `buffer`, or nil when more bytes are needed.
    mutating func next(from buffer: inout ByteBuffer) throws -> ClientLine? {
        if overflowed {
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return nil
        }
        let view = buffer.readableBytesView
        let searchStart = view.startIndex + min(scanned, view.count)
        guard let lf = view[searchStart...].firstIndex(of: UInt8(ascii: "\n")) else {
            scanned = view.count
            if view.count >= maxLine { return overflow(&buffer) }
            return nil
        }
        scanned = 0
        let length = lf - view.startIndex
        if length + 1 > maxLine { return overflow(&buffer) }
        var textLength = length
        if textLength > 0, view[lf - 1] == UInt8(ascii: "\r") { textLength -= 1 }
        let text = buffer.getString(at: buffer.readerIndex, length: textLength) ?? ""
        buffer.moveReaderIndex(forwardBy: length + 1)
        return .line(text)
    }

    private mutating func overflow(_ buffer: inout ByteBuffer) -> ClientLine {
        overflowed = true
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return .tooLong
    }
}
