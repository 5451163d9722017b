import COpus

/// An Opus encoder for Parley's media format (48 kHz mono, 20 ms frames), set up for speech.
///
/// Wraps a libopus `OpusEncoder` created with `OPUS_APPLICATION_VOIP` and `OPUS_SIGNAL_VOICE`.
/// The instance owns the C state and frees it in `deinit`. It is not `Sendable`: use it from one
/// task or thread at a time.
///
/// With DTX on, libopus answers frames of silence with packets of one or two bytes that carry no
/// audio; see ``isDTXPacket(_:)``. With in-band FEC on and a non-zero ``expectedLossPercent``,
/// each packet also carries a low-bitrate copy of the previous frame that
/// ``OpusDecoder/decodeFEC(from:)`` can recover when that frame was lost.
public final class OpusEncoder {
    /// The largest packet ``encode(_:)`` can return (RFC 6716 §3.2.1 allows 1275 bytes per frame).
    public static let maximumPacketSize = 1_500

    /// Accepted target bitrates in bits per second (libopus's own range).
    public static let bitrateRange = 6_000...510_000

    /// A packet of at most this many bytes is a DTX packet: the encoder found nothing worth sending.
    public static let dtxPacketMaximumSize = 2

    private let state: OpaquePointer

    /// Target bitrate in bits per second. Change it with ``setBitrate(_:)``.
    public private(set) var bitrate: Int
    /// Encoder complexity, 0 (fastest) to 10 (best). Change it with ``setComplexity(_:)``.
    public private(set) var complexity: Int
    /// Whether in-band forward error correction is on. Change it with ``setInbandFEC(_:)``.
    public private(set) var inbandFEC: Bool
    /// Whether discontinuous transmission is on. Change it with ``setDTX(_:)``.
    public private(set) var dtx: Bool
    /// The packet loss the encoder plans for, 0–100 %. Change it with ``setExpectedLossPercent(_:)``.
    public private(set) var expectedLossPercent: Int

    /// Creates an encoder for 48 kHz mono speech.
    ///
    /// - Parameters:
    ///   - bitrate: target bitrate in bits per second, within ``bitrateRange``.
    ///   - complexity: 0 (fastest) to 10 (best quality).
    ///   - inbandFEC: carry a low-bitrate copy of the previous frame in each packet.
    ///   - dtx: send (almost) nothing during silence.
    ///   - expectedLossPercent: expected packet loss, 0–100; libopus only spends bits on FEC when this
    ///     is above zero.
    /// - Throws: ``MediaError/invalidArgument(reason:)`` for out-of-range settings,
    ///   ``MediaError/opus(operation:code:)`` if libopus refuses them.
    public init(
        bitrate: Int = 32_000,
        complexity: Int = 9,
        inbandFEC: Bool = true,
        dtx: Bool = true,
        expectedLossPercent: Int = 0
    ) throws(MediaError) {
        var error: Int32 = OPUS_OK
        guard
            let state = opus_encoder_create(
                opus_int32(AudioFormat.sampleRate), Int32(AudioFormat.channels), OPUS_APPLICATION_VOIP, &error)
        else {
            throw .opus(operation: "opus_encoder_create", code: error == OPUS_OK ? OPUS_ALLOC_FAIL : error)
        }
        self.state = state
        self.bitrate = bitrate
        self.complexity = complexity
        self.inbandFEC = inbandFEC
        self.dtx = dtx
        self.expectedLossPercent = expectedLossPercent
        try Self.check(parley_opus_set_signal_voice(state), "OPUS_SET_SIGNAL")
        try setBitrate(bitrate)
        try setComplexity(complexity)
        try setInbandFEC(inbandFEC)
        try setDTX(dtx)
        try setExpectedLossPercent(expectedLossPercent)
    }

    deinit {
        opus_encoder_destroy(state)
    }

    // MARK: Settings

    /// Sets the target bitrate in bits per second.
    /// - Throws: ``MediaError/invalidArgument(reason:)`` outside ``bitrateRange``.
    public func setBitrate(_ bitsPerSecond: Int) throws(MediaError) {
        guard Self.bitrateRange.contains(bitsPerSecond) else {
            throw .invalidArgument(reason: "bitrate \(bitsPerSecond) b/s is outside \(Self.bitrateRange)")
        }
        try Self.check(parley_opus_set_bitrate(state, opus_int32(bitsPerSecond)), "OPUS_SET_BITRATE")
        bitrate = bitsPerSecond
    }

    /// Sets the complexity, 0 (fastest) to 10 (best quality).
    /// - Throws: ``MediaError/invalidArgument(reason:)`` outside 0...10.
    public func setComplexity(_ value: Int) throws(MediaError) {
        guard (0...10).contains(value) else {
            throw .invalidArgument(reason: "complexity \(value) is outside 0...10")
        }
        try Self.check(parley_opus_set_complexity(state, opus_int32(value)), "OPUS_SET_COMPLEXITY")
        complexity = value
    }

    /// Turns in-band forward error correction on or off.
    public func setInbandFEC(_ on: Bool) throws(MediaError) {
        try Self.check(parley_opus_set_inband_fec(state, on ? 1 : 0), "OPUS_SET_INBAND_FEC")
        inbandFEC = on
    }

    /// Audio bandwidths the encoder may be limited to (OPUS_SET_MAX_BANDWIDTH).
    public enum Bandwidth: Int32, Sendable, CaseIterable {
        /// 4 kHz audio.
        case narrowband = 1101
        /// 6 kHz.
        case mediumband = 1102
        /// 8 kHz: SILK only, the usual choice for voice over the Internet.
        case wideband = 1103
        /// 12 kHz.
        case superWideband = 1104
        /// 20 kHz (hybrid SILK+CELT for voice: the most expensive to encode).
        case fullband = 1105
    }

    /// Limits the coded audio bandwidth.
    public func setMaxBandwidth(_ bandwidth: Bandwidth) throws(MediaError) {
        try Self.check(parley_opus_set_max_bandwidth(state, bandwidth.rawValue), "OPUS_SET_MAX_BANDWIDTH")
    }

    /// Turns discontinuous transmission on or off.
    public func setDTX(_ on: Bool) throws(MediaError) {
        try Self.check(parley_opus_set_dtx(state, on ? 1 : 0), "OPUS_SET_DTX")
        dtx = on
    }

    /// Tells the encoder how much packet loss to expect (0–100 %), typically from RTCP or the
    /// call-quality estimate. With FEC on, a higher value makes libopus spend more bits on redundancy.
    /// - Throws: ``MediaError/invalidArgument(reason:)`` outside 0...100.
    public func setExpectedLossPercent(_ percent: Int) throws(MediaError) {
        guard (0...100).contains(percent) else {
            throw .invalidArgument(reason: "expected loss \(percent) % is outside 0...100")
        }
        try Self.check(parley_opus_set_packet_loss_perc(state, opus_int32(percent)), "OPUS_SET_PACKET_LOSS_PERC")
        expectedLossPercent = percent
    }

    /// Whether the last encoded frame was treated as silence by DTX (`OPUS_GET_IN_DTX`).
    public var isInDTX: Bool {
        var value: opus_int32 = 0
        guard parley_opus_get_in_dtx(state, &value) == OPUS_OK else { return false }
        return value != 0
    }

    /// Forgets the audio history, as for a new stream. Settings are kept.
    public func reset() throws(MediaError) {
        try Self.check(parley_opus_encoder_reset(state), "OPUS_RESET_STATE")
    }

    // MARK: Encoding

    /// Encodes exactly one frame of ``AudioFormat/frameSamples`` (960) samples.
    ///
    /// - Returns: the Opus packet. A packet of at most ``dtxPacketMaximumSize`` bytes means DTX
    ///   judged the frame silent: there is nothing worth sending (check with ``isDTXPacket(_:)``).
    /// - Throws: ``MediaError/wrongFrameSize(expected:actual:)`` for any other sample count,
    ///   ``MediaError/opus(operation:code:)`` if libopus fails.
    public func encode(_ pcm: UnsafeBufferPointer<Int16>) throws(MediaError) -> [UInt8] {
        guard pcm.count == AudioFormat.frameSamples, let base = pcm.baseAddress else {
            throw .wrongFrameSize(expected: AudioFormat.frameSamples, actual: pcm.count)
        }
        var packet = [UInt8](repeating: 0, count: Self.maximumPacketSize)
        let length = packet.withUnsafeMutableBufferPointer { out -> Int32 in
            guard let outBase = out.baseAddress else { return OPUS_BUFFER_TOO_SMALL }
            return opus_encode(state, base, Int32(AudioFormat.frameSamples), outBase, opus_int32(out.count))
        }
        guard length >= 0 else { throw .opus(operation: "opus_encode", code: length) }
        packet.removeSubrange(Int(length)...)
        return packet
    }

    /// Encodes exactly one frame of ``AudioFormat/frameSamples`` (960) samples.
    /// See ``encode(_:)``.
    public func encode(_ pcm: [Int16]) throws(MediaError) -> [UInt8] {
        try pcm.withUnsafeBufferPointer { buffer throws(MediaError) in try encode(buffer) }
    }

    /// Whether `packet` is a DTX packet (at most ``dtxPacketMaximumSize`` bytes): the encoder had
    /// nothing worth sending, and a sender may skip it.
    public static func isDTXPacket(_ packet: [UInt8]) -> Bool {
        packet.count <= dtxPacketMaximumSize
    }

    private static func check(_ code: Int32, _ request: String) throws(MediaError) {
        guard code == OPUS_OK else { throw .opus(operation: "opus_encoder_ctl(\(request))", code: code) }
    }
}
