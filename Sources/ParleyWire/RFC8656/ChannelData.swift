import NIOCore

/// The ChannelData message of RFC 8656 §12.4: four bytes of header (channel number, length) then the
/// application data, padded to a multiple of four on stream transports.
///
///      0                   1                   2                   3
///      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
///     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///     |         Channel Number        |            Length             |
///     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///     /                       Application Data                        /
///     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///
/// The first two bits (01) tell it apart from STUN (00) on the same socket (RFC 7983 demultiplexing).
public enum ChannelData {
    /// Channel numbers a client may bind (RFC 8656 §12: 0x4000 through 0x4FFF).
    public static let channelRange: ClosedRange<UInt16> = 0x4000...0x4FFF
    public static let headerLength = 4

    /// True if the first byte of a datagram or frame starts a ChannelData message (0x40–0x4F: the
    /// 0x50–0x7F part of RFC 7983's range holds channel numbers RFC 8656 no longer allows).
    @inline(__always)
    public static func looksLikeChannelData(_ firstByte: UInt8) -> Bool { firstByte & 0xC0 == 0x40 }

    /// Why a ChannelData message is not accepted. Every case is a silent drop (RFC 8656 §12.5: "the
    /// server MUST discard"), counted by reason.
    public enum DecodeError: Error, Sendable, Hashable {
        /// Fewer than four bytes.
        case truncated
        /// A channel number outside 0x4000–0x4FFF.
        case badChannel
        /// The length field claims more data than the datagram holds.
        case lengthOverrun
    }

    /// A decoded datagram's channel and the slice holding exactly its application data. Over UDP, bytes
    /// after `length` are padding and are ignored (§12.5).
    @inlinable
    public static func decodeDatagram(_ buffer: ByteBuffer) -> Result<(channel: UInt16, data: ByteBuffer), DecodeError> {
        let base = buffer.readerIndex
        guard let channel = buffer.getInteger(at: base, as: UInt16.self),
            let length = buffer.getInteger(at: base + 2, as: UInt16.self)
        else { return .failure(.truncated) }
        guard channelRange.contains(channel) else { return .failure(.badChannel) }
        guard Int(length) <= buffer.readableBytes - headerLength,
            let data = buffer.getSlice(at: base + headerLength, length: Int(length))
        else { return .failure(.lengthOverrun) }
        return .success((channel, data))
    }

    /// On a stream: the length of the whole frame at the reader index (header, data and padding to a
    /// multiple of four), or nil if the four header bytes have not all arrived.
    @inlinable
    public static func frameLength(_ buffer: ByteBuffer) -> Int? {
        guard let length = buffer.getInteger(at: buffer.readerIndex + 2, as: UInt16.self) else { return nil }
        return headerLength + ((Int(length) + 3) & ~3)
    }

    /// Writes a ChannelData message; `pad` adds zero bytes to a multiple of four (required on TCP/TLS).
    @inlinable
    public static func write(channel: UInt16, data: ByteBuffer, pad: Bool, into out: inout ByteBuffer) {
        let n = data.readableBytes
        let padding = pad ? (4 - n & 3) & 3 : 0
        out.reserveCapacity(minimumWritableBytes: headerLength + n + padding)
        out.writeInteger(channel)
        out.writeInteger(UInt16(n))
        var data = data
        out.writeBuffer(&data)
        if padding > 0 { out.writeRepeatingByte(0, count: padding) }
    }
}
