import ParleyMedia
import ParleyWire

/// Where a call's outgoing audio comes from.
public enum AudioSource: Sendable {
    /// 48 kHz mono samples (a WAV file, already resampled), played once in real time, then silence.
    case samples([Int16])
    /// A generated tone, for as long as the call lasts.
    case tone(frequency: Double, levelDBFS: Double)
    /// Silence (DTX sends almost nothing).
    case silence
    /// The machine's sound card (ALSA), read a 20 ms frame at a time (silence while it has none ready).
    case capture(SoundCapture)
}

/// Opus settings for a call (docs/PROTOCOL.md §5.4).
public struct AudioSettings: Sendable, Hashable {
    /// Starting bitrate, bits/s; the rate controller moves it with measured loss.
    public var bitrate = 32_000
    /// Encoder complexity 0–10.
    public var complexity = 9
    /// Discontinuous transmission during silence.
    public var dtx = true
    /// FEC planned for this much loss until the peer's first report says how much there is. 0: libopus
    /// codes no redundancy on a clean path (it costs ~25 % more encoder time and bits); the rate controller
    /// turns it on within a second of the first reported loss, as WebRTC does from RTCP.
    public var initialExpectedLossPercent = 0
    /// Jitter buffer tunables.
    public var jitter = JitterBuffer.Configuration()

    /// Defaults: 32 kb/s, complexity 9, in-band FEC on, DTX on.
    public init() {}
}

/// One side's audio for a call, sans I/O and confined to one thread: source → Opus → (core seals and sends);
/// (core opens) → jitter buffer → Opus decode / FEC / concealment → sink; plus the statistics.
/// Every time is microseconds on the monotonic clock of the caller's choosing.
final class AudioPipeline {
    let encoder: OpusEncoder
    let decoder: OpusDecoder
    var jitter: JitterBuffer
    var arrivals = ArrivalStats()
    /// Which missing frames the peer never sent (DTX) and how much it sends at all.
    var gaps = SenderGaps()
    var rtt = RTTEstimator()
    /// Loss tunes FEC; only congestion (the bandwidth estimate) lowers the bitrate. Stepping the bitrate down
    /// for random loss starves Opus's in-band FEC (LBRR needs bits), which conceals more, not less: the
    /// high-loss bitrate is therefore the preferred one.
    var rate = RateController(configuration: .init(preferredBitrate: 32_000, highLossBitrate: 32_000))
    /// Copies of earlier frames under heavy loss (docs/PROTOCOL.md §5.4).
    var redundancy = RedundancyPolicy()
    /// The last frames sent (frame index, Opus packet), newest last, for the copies.
    private var recentlySent: [(frame: UInt64, opus: [UInt8])] = []
    var source: AudioSource
    var sourcePosition = 0
    var tone: ToneGenerator?
    let sink: WAVWriter?
    /// The sound card to play what we hear on, if any.
    let speaker: SoundPlayback?
    /// Frames produced by the source so far (including DTX frames not sent): the next frame's index.
    private(set) var frameIndex: UInt64 = 0
    private(set) var sentPackets = 0
    private(set) var decodedPackets = 0
    /// Audio packets received (authenticated); reports are not counted.
    private(set) var receivedAudio = 0
    private(set) var firstDecrypted: UInt64?
    private(set) var firstPlayed: UInt64?
    private(set) var writtenFrames = 0
    /// When media started (the playout and recording clock's origin), nil before.
    private(set) var playoutStart: UInt64?
    /// Playout ticks run since ``playoutStart``: one per 20 ms of real time.
    private(set) var playoutTicks: UInt64 = 0
    /// When the last authenticated packet (audio or report) came from the peer.
    private(set) var lastHeard: UInt64?
    /// When ``quality(now:)`` last looked at how much the peer sends.
    private var lastActivityCheck: UInt64?
    /// How the peer's audio was at the last ``quality(now:)``.
    private(set) var peerAudio = CallQuality.PeerAudio.sending
    /// The peer's report time we last saw and when (for echoing).
    private var peerReport: (time: UInt64, at: UInt64)?
    private(set) var peerLossPercent = 0.0
    private(set) var peerJitterMilliseconds = 0.0
    /// The mean queuing delay the peer measured on our packets over its last report interval, ms.
    private(set) var peerQueuingMilliseconds = 0.0
    /// Audio datagram bytes received since the last report we sent (for the peer's bandwidth estimate).
    private var receivedBytes: UInt64 = 0
    private var lastReportSent: UInt64?
    /// The last bandwidth estimate handed to the rate controller, bits/s (nil: the path is not the limit).
    private(set) var bandwidthEstimate: Int?
    /// Bytes a protected audio datagram adds to the Opus packet: frame index 4, header 7, tag 16, UDP/IPv4 28.
    static let packetOverhead = 4 + 7 + 16 + 28

    init(source: AudioSource, sink: WAVWriter?, speaker: SoundPlayback? = nil, settings: AudioSettings) throws {
        self.speaker = speaker
        encoder = try OpusEncoder(
            bitrate: settings.bitrate, complexity: settings.complexity, inbandFEC: true, dtx: settings.dtx,
            expectedLossPercent: settings.initialExpectedLossPercent)
        decoder = try OpusDecoder()
        jitter = JitterBuffer(configuration: settings.jitter)
        self.source = source
        self.sink = sink
        if case .tone(let frequency, let level) = source { tone = ToneGenerator(frequency: frequency, levelDBFS: level) }
    }

    /// True when a sample source has been played to its end.
    var sourceFinished: Bool {
        if case .samples(let samples) = source { return sourcePosition >= samples.count }
        return false
    }

    /// The next 20 ms of the source, encoded: (frame index, Opus packet), or nil for a frame DTX leaves out.
    func nextFrame() throws -> (frame: UInt64, opus: [UInt8])? {
        var pcm: [Int16]
        switch source {
        case .samples(let samples):
            let end = min(sourcePosition + AudioFormat.frameSamples, samples.count)
            pcm = sourcePosition < end ? Array(samples[sourcePosition..<end]) : []
            sourcePosition = end
            if pcm.count < AudioFormat.frameSamples { pcm += [Int16](repeating: 0, count: AudioFormat.frameSamples - pcm.count) }
        case .tone:
            pcm = tone!.nextFrame()
        case .silence:
            pcm = [Int16](repeating: 0, count: AudioFormat.frameSamples)
        case .capture(let device):
            pcm = device.takeFrame() ?? [Int16](repeating: 0, count: AudioFormat.frameSamples)
        }
        let index = frameIndex
        frameIndex += 1
        let packet = try encoder.encode(pcm)
        if OpusEncoder.isDTXPacket(packet) { return nil }
        sentPackets += 1
        recentlySent.append((index, packet))
        if recentlySent.count > Int(redundancy.distance) + 1 { recentlySent.removeFirst() }
        return (index, packet)
    }

    /// The copies of earlier frames to send with `frame` (just returned by ``nextFrame()``): none unless
    /// the policy is on; then the frame ``RedundancyPolicy/distance`` back, if it was sent (DTX leaves
    /// gaps) and its index is not before the call's first frame.
    func redundantCopies(for frame: UInt64) -> [AudioPayload.Redundant] {
        guard redundancy.enabled, frame >= UInt64(redundancy.distance), frame <= UInt64(UInt32.max) else { return [] }
        let wanted = frame - UInt64(redundancy.distance)
        guard let earlier = recentlySent.first(where: { $0.frame == wanted }) else { return [] }
        return [AudioPayload.Redundant(distance: redundancy.distance, opus: earlier.opus)]
    }

    /// Bytes of redundant copies received since the last report (they count toward the received rate).
    func receivedRedundant(frame: UInt64, opus: [UInt8], distance: UInt64, now: UInt64) {
        receivedBytes += UInt64(opus.count + 3)
        jitter.insertRedundant(frame: frame, payload: opus, distance: distance, arrival: now)
    }

    /// A decrypted audio packet arrived.
    func received(frame: UInt64, opus: [UInt8], sequence: UInt64, now: UInt64) {
        if firstDecrypted == nil { firstDecrypted = now }
        lastHeard = now
        receivedAudio += 1
        if let unsent = gaps.audio(frame: frame, sequence: sequence) { jitter.markUnsent(unsent) }
        receivedBytes += UInt64(opus.count + Self.packetOverhead)
        arrivals.record(sequence: sequence, frame: frame, arrival: now)
        jitter.insert(frame: frame, payload: opus, arrival: now)
    }

    /// Media started: the playout and recording clock begins now. From here on exactly one 20 ms frame is
    /// played (and recorded) per 20 ms of real time, whatever arrives: audio, concealment, comfort noise
    /// or silence while the peer sends nothing or is gone. So a recording is as long as the call.
    func startPlayout(now: UInt64) {
        guard playoutStart == nil else { return }
        playoutStart = now
    }

    /// Most playout ticks caught up in one call after a stall (one second); frames beyond are recorded as
    /// silence without asking the jitter buffer (its frames are stale by then; it sheds the delay itself).
    static let maximumCatchUp: UInt64 = 50

    /// Plays out every frame whose time has begun by `now` (normally one per 20 ms engine tick; more after
    /// the loop was held up, so the recording keeps real time): the jitter buffer's decision, decoded, to
    /// the speaker and the recording. Nothing before ``startPlayout(now:)``.
    func playout(now: UInt64) throws {
        guard let start = playoutStart, now >= start else { return }
        let due = (now - start) / JitterBuffer.frameDuration + 1
        guard due > playoutTicks else { return }
        let behind = due - playoutTicks
        if behind > Self.maximumCatchUp {
            let silence = [Int16](repeating: 0, count: AudioFormat.frameSamples)
            for _ in 0..<(behind - Self.maximumCatchUp) { try write(silence) }
            playoutTicks += behind - Self.maximumCatchUp
        }
        while playoutTicks < due {
            playoutTicks += 1
            try playOne(now: now)
        }
    }

    /// One playout tick.
    private func playOne(now: UInt64) throws {
        let pcm: [Int16]
        switch jitter.pull(now: now) {
        case .frame(let packet):
            pcm = (try? decoder.decode(packet)) ?? decoder.conceal()
            decodedPackets += 1
            if firstPlayed == nil { firstPlayed = now }
        case .recover(let next):
            pcm = decoder.decodeFEC(from: next)
        case .conceal:
            pcm = decoder.conceal()
        case .silence:
            pcm = [Int16](repeating: 0, count: AudioFormat.frameSamples)
        }
        speaker?.enqueue(pcm)
        try write(pcm)
    }

    private func write(_ pcm: [Int16]) throws {
        guard let sink else { return }
        try sink.append(pcm)
        writtenFrames += 1
    }

    /// Builds a receiver report (docs/PROTOCOL.md §5.5):
    /// `time (8) || echoed peer time (8) || hold µs (4) || loss ‰ (2) || jitter 0.1 ms (2) ||
    /// received bits/s since the last report (4) || mean queuing delay ms since the last report (2)`.
    func report(now: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        func put(_ value: UInt64, _ bytes: Int) {
            for i in (0..<bytes).reversed() { out.append(UInt8(truncatingIfNeeded: value >> UInt64(8 * i))) }
        }
        put(now, 8)
        put(peerReport?.time ?? 0, 8)
        put(peerReport.map { min(now - $0.at, UInt64(UInt32.max)) } ?? 0, 4)
        put(UInt64(min(1000, max(0, arrivals.takeIntervalLossFraction() * 1000)).rounded()), 2)
        put(UInt64(min(65535, arrivals.jitterMilliseconds * 10)), 2)
        let interval = lastReportSent.map { now - $0 } ?? 0
        put(interval > 0 ? min(receivedBytes * 8 * 1_000_000 / interval, UInt64(UInt32.max)) : 0, 4)
        put(min(arrivals.takeIntervalQueuingDelay() / 1000, 65535), 2)
        receivedBytes = 0
        lastReportSent = now
        return out
    }

    /// A decrypted report from the peer: RTT from the echo, the peer's view of our loss for the encoder.
    /// Returns the encoder settings when they changed (for the trace), nil otherwise.
    @discardableResult
    func receivedReport(_ bytes: [UInt8], sequence: UInt64, now: UInt64) -> RateController.Decision? {
        arrivals.record(sequence: sequence)
        gaps.other(sequence: sequence)
        lastHeard = now
        // 28 bytes without the queuing delay (the first version), 30 with it; anything else is not a report.
        guard bytes.count == 28 || bytes.count == 30 else { return nil }
        func get(_ offset: Int, _ count: Int) -> UInt64 { bytes[offset..<(offset + count)].reduce(0) { $0 << 8 | UInt64($1) } }
        peerReport = (get(0, 8), now)
        let echoed = get(8, 8)
        if echoed != 0 { rtt.record(echoedTime: echoed, holdTime: get(16, 4), now: now) }
        peerLossPercent = Double(get(20, 2)) / 10
        peerJitterMilliseconds = Double(get(22, 2)) / 10
        peerQueuingMilliseconds = bytes.count == 30 ? Double(get(28, 2)) : 0
        // Bandwidth: only when the path shows congestion — a queue standing on it — is what arrived taken as
        // what the path can carry, with or without loss (a deep buffer delays for seconds before it drops
        // anything, and while it drops little the loss rule alone climbs back toward 32 kb/s and keeps the
        // queue full: netlab with a 48 kb/s uplink ran at 1.5 s RTT). A queue is 80 ms or more of the
        // peer's measured queuing delay (every packet of the interval, one way: it shows a queue at the
        // first report) or the smoothed RTT 80 ms above its minimum. Random loss on an uncongested path
        // leaves both flat and the bitrate to the loss rule. The smoothed RTT, not the latest sample: with
        // ±30 ms of jitter each way single samples lie 80 ms above the minimum often enough to cut the
        // bitrate, and with it Opus's in-band FEC, on a path that has no queue at all (netlab at 20 % loss:
        // 9.4 % of frames concealed, not ~5 %).
        let received = Int(get(24, 4))
        let rttQueue = rtt.smoothed.flatMap { smoothed in rtt.minimum.map { smoothed > Double($0 + 80_000) } } ?? false
        if received > 0, rttQueue || peerQueuingMilliseconds >= 80 {
            // The Opus rate at which the whole stream (Opus + 55 bytes per packet, 50 packets/s) is what
            // arrived: the rate controller keeps the bitrate at 85 % of this. (85 % of the Opus part alone
            // left the total at ~92 % of the path on a narrow link, too little to drain the queue.)
            let overhead = Double(Self.packetOverhead * 8 * 50)
            bandwidthEstimate = max(0, Int(Double(received) - overhead / rate.configuration.bandwidthHeadroom))
        } else {
            bandwidthEstimate = nil
        }
        redundancy.update(lossFraction: peerLossPercent / 100, congested: bandwidthEstimate != nil)
        let decision = rate.update(lossFraction: peerLossPercent / 100, bandwidthEstimate: bandwidthEstimate, now: now)
        guard decision.changed else { return nil }
        try? encoder.setBitrate(decision.bitrate)
        try? encoder.setExpectedLossPercent(decision.expectedLossPercent)
        return decision
    }

    /// The live quality figures of what we receive, with how the peer's audio is since the previous call:
    /// ``CallQuality/PeerAudio/unheard`` when nothing authenticated came for ``unheardAfter``,
    /// ``CallQuality/PeerAudio/silent`` when the peer sent under a tenth of the frames the time held
    /// (DTX sends one comfort-noise update per 400 ms, a twentieth), else sending.
    func quality(now: UInt64) -> CallQuality {
        let since = lastActivityCheck ?? playoutStart ?? now
        lastActivityCheck = now
        let sent = gaps.takeSentFrames()
        let frames = (now - min(since, now)) / JitterBuffer.frameDuration
        if lastHeard.map({ now - min($0, now) >= Self.unheardAfter }) ?? true {
            peerAudio = .unheard
        } else if frames >= 10 {
            peerAudio = sent * 10 < frames ? .silent : .sending
        }
        return snapshot(peerAudio)
    }

    /// The whole call's figures (for the summary): silent when the peer sent under a tenth of the call's frames.
    func callQuality(now: UInt64) -> CallQuality {
        let frames = playoutStart.map { (now - min($0, now)) / JitterBuffer.frameDuration } ?? 0
        let audio: CallQuality.PeerAudio =
            lastHeard == nil ? .unheard : frames >= 10 && gaps.sentFrames * 10 < frames ? .silent : .sending
        return snapshot(audio)
    }

    /// No authenticated packet for this long (1.5 s: reports alone come every second) means the peer is not heard.
    static let unheardAfter: UInt64 = 1_500_000

    private func snapshot(_ audio: CallQuality.PeerAudio) -> CallQuality {
        var quality = CallQuality(rtt: rtt, arrivals: arrivals, playout: jitter.statistics)
        quality.peerAudio = audio
        return quality
    }

    /// Closes the sink (fixes up the WAV header) and stops the sound card threads.
    func close() throws {
        if case .capture(let device) = source { _ = device.stop() }
        _ = speaker?.stop()
        try sink?.close()
    }
}
