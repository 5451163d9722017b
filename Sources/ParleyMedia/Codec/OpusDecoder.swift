import COpus

/// An Opus decoder producing Parley's media format (48 kHz mono Int16).
///
/// Wraps a libopus `OpusDecoder`; the instance owns the C state and frees it in `deinit`. It is
/// not `Sendable`: use it from one task or thread at a time.
///
/// For each 20 ms slot the jitter buffer either has the packet (``decode(_:)``), has the *next*
/// packet and can recover this one from its in-band FEC (``decodeFEC(from:)``), or has nothing
/// (``conceal()``).
public final class OpusDecoder {
    /// The most samples one packet can decode to: 120 ms at 48 kHz (RFC 6716 §3.2.5).
    public static let maximumPacketSamples = 5_760

    private let state: OpaquePointer

    /// Creates a decoder for 48 kHz mono output.
    /// - Throws: ``MediaError/opus(operation:code:)`` if libopus cannot allocate it.
    public init() throws(MediaError) {
        var error: Int32 = OPUS_OK
        guard let state = opus_decoder_create(opus_int32(AudioFormat.sampleRate), Int32(AudioFormat.channels), &error)
        else {
            throw .opus(operation: "opus_decoder_create", code: error == OPUS_OK ? OPUS_ALLOC_FAIL : error)
        }
        self.state = state
    }

    deinit {
        opus_decoder_destroy(state)
    }

    /// Decodes one packet.
    ///
    /// - Returns: the decoded samples: ``AudioFormat/frameSamples`` (960) for packets from a Parley
    ///   ``OpusEncoder``; a packet from another encoder may hold 2.5 to 120 ms, and all of it is returned.
    /// - Throws: ``MediaError/malformedPacket(reason:)`` for an empty packet (use ``conceal()`` for a
    ///   missing one), ``MediaError/opus(operation:code:)`` when libopus rejects the packet
    ///   (`OPUS_INVALID_PACKET` for corrupt data). Never traps on hostile input.
    public func decode(_ packet: [UInt8]) throws(MediaError) -> [Int16] {
        guard !packet.isEmpty else { throw .malformedPacket(reason: "packet is empty") }
        guard packet.count <= Int(Int32.max) else { throw .malformedPacket(reason: "packet is too large") }
        return try run(packet, frameSize: Self.maximumPacketSamples, fec: false, operation: "opus_decode")
    }

    /// Recovers the frame *before* `next` from the in-band FEC data that `next` carries.
    ///
    /// Call it when packet *k* is lost and packet *k + 1* has arrived, then decode packet *k + 1*
    /// normally with ``decode(_:)``. If `next` holds no FEC data (FEC was off, the encoder expected no
    /// loss, or the frame was CELT-only), libopus conceals the frame instead, as ``conceal()`` would.
    /// A malformed `next` also falls back to concealment, so this never fails.
    ///
    /// - Returns: ``AudioFormat/frameSamples`` (960) samples.
    public func decodeFEC(from next: [UInt8]) -> [Int16] {
        guard !next.isEmpty, next.count <= Int(Int32.max) else { return conceal() }
        do {
            return try run(next, frameSize: AudioFormat.frameSamples, fec: true, operation: "opus_decode(FEC)")
        } catch {
            return conceal()
        }
    }

    /// Conceals one lost 20 ms frame (packet loss concealment: libopus extrapolates from the audio
    /// decoded so far).
    ///
    /// - Returns: ``AudioFormat/frameSamples`` (960) samples; silence in the unlikely case libopus fails.
    public func conceal() -> [Int16] {
        var pcm = [Int16](repeating: 0, count: AudioFormat.frameSamples)
        let count = pcm.withUnsafeMutableBufferPointer { out -> Int32 in
            guard let outBase = out.baseAddress else { return OPUS_BUFFER_TOO_SMALL }
            return opus_decode(state, nil, 0, outBase, Int32(out.count), 0)
        }
        guard count == Int32(AudioFormat.frameSamples) else {
            return [Int16](repeating: 0, count: AudioFormat.frameSamples)
        }
        return pcm
    }

    /// Forgets the decoding history, as for a new stream.
    public func reset() throws(MediaError) {
        let code = parley_opus_decoder_reset(state)
        guard code == OPUS_OK else { throw .opus(operation: "opus_decoder_ctl(OPUS_RESET_STATE)", code: code) }
    }

    /// Duration in samples of the last packet decoded or concealed (`OPUS_GET_LAST_PACKET_DURATION`).
    public var lastPacketDuration: Int {
        var value: opus_int32 = 0
        guard parley_opus_decoder_last_packet_duration(state, &value) == OPUS_OK else { return 0 }
        return Int(value)
    }

    private func run(_ packet: [UInt8], frameSize: Int, fec: Bool, operation: String) throws(MediaError) -> [Int16] {
        var pcm = [Int16](repeating: 0, count: frameSize)
        let count = packet.withUnsafeBufferPointer { input -> Int32 in
            pcm.withUnsafeMutableBufferPointer { out -> Int32 in
                guard let inBase = input.baseAddress, let outBase = out.baseAddress else { return OPUS_BAD_ARG }
                return opus_decode(state, inBase, opus_int32(input.count), outBase, Int32(out.count), fec ? 1 : 0)
            }
        }
        guard count >= 0 else { throw .opus(operation: operation, code: count) }
        pcm.removeSubrange(Int(count)...)
        return pcm
    }
}
