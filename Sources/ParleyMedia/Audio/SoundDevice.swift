import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// The machine's sound devices through ALSA (Debian package libasound2).
//
// libasound is loaded at run time with dlopen, so building Parley needs no ALSA headers and a
// machine without ALSA (or without a sound card) still runs everything else. Every failure, from
// a missing library to a missing device, becomes a `SoundDeviceError` whose description says what
// was tried and what ALSA answered.

// MARK: - Errors

/// Errors of the sound-device layer: loading libasound, opening a device, reading or writing it.
public enum SoundDeviceError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The ALSA library could not be loaded from `path`; `reason` is `dlerror()`'s text.
    case libraryMissing(path: String, reason: String)
    /// The ALSA library at `path` was loaded but lacks the function `symbol`.
    case symbolMissing(symbol: String, path: String)
    /// ALSA could not open or configure `device`; `reason` includes `snd_strerror` text.
    case openFailed(device: String, reason: String)
    /// Reading or writing a running device failed and could not be recovered.
    case ioFailed(reason: String)
    /// An argument (latency, buffer size, frame) was outside what the device layer accepts.
    case invalidArgument(reason: String)

    /// A readable explanation, suitable for logs and the command line.
    public var description: String {
        switch self {
        case .libraryMissing(let path, let reason):
            return "ALSA library \(path) could not be loaded (\(reason)); install Debian package libasound2 for sound devices"
        case .symbolMissing(let symbol, let path):
            return "ALSA library \(path) has no function \(symbol)"
        case .openFailed(let device, let reason):
            return "sound device \"\(device)\" could not be opened: \(reason)"
        case .ioFailed(let reason):
            return "sound device I/O failed: \(reason)"
        case .invalidArgument(let reason):
            return "invalid sound device argument: \(reason)"
        }
    }
}

// MARK: - Library loader

/// libasound (ALSA's user-space library) loaded at run time with `dlopen`.
///
/// Only the handful of functions Parley needs are resolved: the simple `snd_pcm_set_params` API,
/// interleaved blocking reads and writes, and error recovery. A loaded library is cached per path
/// and never unloaded (ALSA keeps process-wide configuration state).
public final class ALSALibrary: @unchecked Sendable {
    /// The soname Debian's libasound2 package installs.
    public static let defaultPath = "libasound.so.2"

    /// `SND_PCM_STREAM_PLAYBACK` / `SND_PCM_STREAM_CAPTURE`.
    public enum Stream: Int32, Sendable {
        case playback = 0
        case capture = 1
    }

    // snd_pcm_format_t values for signed 16-bit samples in each byte order.
    static let formatS16LE: Int32 = 2
    static let formatS16BE: Int32 = 3
    /// Signed 16-bit in host byte order, as Parley's `[Int16]` frames are laid out in memory.
    static var formatS16Native: Int32 {
        #if _endian(little)
        return formatS16LE
        #else
        return formatS16BE
        #endif
    }
    /// `SND_PCM_ACCESS_RW_INTERLEAVED`.
    static let accessRWInterleaved: Int32 = 3
    /// `SND_PCM_NONBLOCK`: open flag used only when probing devices, so a busy device fails fast.
    static let modeNonBlock: Int32 = 1

    typealias PCMOpen = @convention(c) (
        UnsafeMutablePointer<OpaquePointer?>?, UnsafePointer<CChar>?, Int32, Int32
    ) -> Int32
    typealias PCMSetParams = @convention(c) (OpaquePointer?, Int32, Int32, UInt32, UInt32, Int32, UInt32) -> Int32
    typealias PCMReadI = @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, UInt) -> Int
    typealias PCMWriteI = @convention(c) (OpaquePointer?, UnsafeRawPointer?, UInt) -> Int
    typealias PCMRecover = @convention(c) (OpaquePointer?, Int32, Int32) -> Int32
    typealias PCMClose = @convention(c) (OpaquePointer?) -> Int32
    typealias PCMPrepare = @convention(c) (OpaquePointer?) -> Int32
    typealias StrError = @convention(c) (Int32) -> UnsafePointer<CChar>?

    /// The path this library was loaded from.
    public let path: String

    let pcmOpen: PCMOpen
    let pcmSetParams: PCMSetParams
    let pcmReadI: PCMReadI
    let pcmWriteI: PCMWriteI
    let pcmRecover: PCMRecover
    let pcmClose: PCMClose
    let pcmPrepare: PCMPrepare
    let strError: StrError

    private static let cacheLock = NSLock()
    nonisolated(unsafe) private static var cache: [String: ALSALibrary] = [:]

    /// Loads libasound from `path` (a soname searched the usual way, or an absolute path), or
    /// returns the copy already loaded from that path.
    ///
    /// - Throws: ``SoundDeviceError/libraryMissing(path:reason:)`` when `dlopen` fails,
    ///   ``SoundDeviceError/symbolMissing(symbol:path:)`` when a needed function is absent.
    public static func load(path: String = defaultPath) throws(SoundDeviceError) -> ALSALibrary {
        cacheLock.lock()
        defer { cacheLock.unlock() }
        if let loaded = cache[path] { return loaded }
        let library = try ALSALibrary(path: path)
        cache[path] = library
        return library
    }

    private init(path: String) throws(SoundDeviceError) {
        self.path = path
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "dlopen failed"
            throw .libraryMissing(path: path, reason: reason)
        }
        func resolve<F>(_ symbol: String, as type: F.Type) throws(SoundDeviceError) -> F {
            guard let address = dlsym(handle, symbol) else {
                throw .symbolMissing(symbol: symbol, path: path)
            }
            return unsafeBitCast(address, to: type)
        }
        do {
            pcmOpen = try resolve("snd_pcm_open", as: PCMOpen.self)
            pcmSetParams = try resolve("snd_pcm_set_params", as: PCMSetParams.self)
            pcmReadI = try resolve("snd_pcm_readi", as: PCMReadI.self)
            pcmWriteI = try resolve("snd_pcm_writei", as: PCMWriteI.self)
            pcmRecover = try resolve("snd_pcm_recover", as: PCMRecover.self)
            pcmClose = try resolve("snd_pcm_close", as: PCMClose.self)
            pcmPrepare = try resolve("snd_pcm_prepare", as: PCMPrepare.self)
            strError = try resolve("snd_strerror", as: StrError.self)
        } catch {
            dlclose(handle)
            throw error
        }
        // The handle is deliberately kept open for the life of the process.
    }

    /// ALSA's text for a (negative) error code, from `snd_strerror`.
    public func errorText(_ code: Int32) -> String {
        strError(code).map { String(cString: $0) } ?? "unknown ALSA error"
    }

    /// `"<operation>: <snd_strerror text> (error <code>)"`.
    func describe(_ operation: String, _ code: Int32) -> String {
        "\(operation): \(errorText(code)) (error \(code))"
    }

    /// Opens `device` for `stream` and configures it for Parley's format (mono, S16, 48 kHz).
    /// The caller owns the returned handle and must close it with `pcmClose`.
    func openConfigured(
        device: String, stream: Stream, latencyMicroseconds: UInt32, nonBlocking: Bool = false
    ) throws(SoundDeviceError) -> OpaquePointer {
        var pcm: OpaquePointer?
        let opened = pcmOpen(&pcm, device, stream.rawValue, nonBlocking ? Self.modeNonBlock : 0)
        guard opened >= 0, let pcm else {
            throw .openFailed(device: device, reason: describe("snd_pcm_open", opened))
        }
        let configured = pcmSetParams(
            pcm, Self.formatS16Native, Self.accessRWInterleaved,
            UInt32(AudioFormat.channels), UInt32(AudioFormat.sampleRate),
            1,  // allow ALSA's resampler when the hardware lacks 48 kHz
            latencyMicroseconds)
        guard configured >= 0 else {
            _ = pcmClose(pcm)
            throw .openFailed(
                device: device,
                reason: describe("snd_pcm_set_params(mono, S16, \(AudioFormat.sampleRate) Hz)", configured))
        }
        return pcm
    }
}

// MARK: - Availability

/// Whether sound devices can be used on this machine, and why not.
public enum SoundDevices {
    /// The device name ALSA maps to the user's default card (or the sound server).
    public static let defaultDevice = "default"

    /// Why sound devices cannot be used, or `nil` when they can.
    ///
    /// - Parameters:
    ///   - device: when given, the device is also opened (non-blocking) for `stream` and closed
    ///     again; when `nil`, only the library is checked.
    ///   - stream: the direction to probe.
    ///   - libraryPath: where to load libasound from.
    public static func unavailableReason(
        device: String? = nil, stream: ALSALibrary.Stream = .playback,
        libraryPath: String = ALSALibrary.defaultPath
    ) -> SoundDeviceError? {
        do {
            let library = try ALSALibrary.load(path: libraryPath)
            if let device {
                let pcm = try library.openConfigured(
                    device: device, stream: stream, latencyMicroseconds: 40_000, nonBlocking: true)
                _ = library.pcmClose(pcm)
            }
            return nil
        } catch {
            return error
        }
    }

    /// `true` when libasound loads (and, if `device` is given, that device opens for `stream`).
    public static func isAvailable(
        device: String? = nil, stream: ALSALibrary.Stream = .playback,
        libraryPath: String = ALSALibrary.defaultPath
    ) -> Bool {
        unavailableReason(device: device, stream: stream, libraryPath: libraryPath) == nil
    }
}

// MARK: - Shared device thread plumbing

/// State shared between a public device object and its I/O thread. The thread owns the PCM
/// handle: it is the only code that touches it, and it closes it on the way out.
private class DeviceCore: @unchecked Sendable {
    let library: ALSALibrary
    let device: String
    let lock = NSLock()
    private let finished = NSCondition()
    private var stopRequested = false
    private var isFinished = false
    private var failure: SoundDeviceError?
    private var xrunCount = 0

    init(library: ALSALibrary, device: String) {
        self.library = library
        self.device = device
    }

    var shouldStop: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopRequested
    }

    var running: Bool {
        lock.lock()
        defer { lock.unlock() }
        return !stopRequested && !isFinished
    }

    var lastError: SoundDeviceError? {
        lock.lock()
        defer { lock.unlock() }
        return failure
    }

    var xruns: Int {
        lock.lock()
        defer { lock.unlock() }
        return xrunCount
    }

    func requestStop() {
        lock.lock()
        stopRequested = true
        lock.unlock()
    }

    /// Waits until the thread has closed the device, up to `timeout`. Returns whether it did.
    @discardableResult
    func waitUntilFinished(timeout: TimeInterval) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        finished.lock()
        defer { finished.unlock() }
        while !isFinished {
            if !finished.wait(until: deadline) { return isFinished }
        }
        return true
    }

    /// Recovers from a negative return of `snd_pcm_readi`/`snd_pcm_writei`. Returns `false`
    /// (after recording the failure) when the device is unusable.
    func recover(_ pcm: OpaquePointer, code: Int, operation: String) -> Bool {
        let code = Int32(truncatingIfNeeded: code)
        if code == -EAGAIN || code == -EINTR { return true }
        if code == -EPIPE || code == -ESTRPIPE {
            lock.lock()
            xrunCount += 1
            lock.unlock()
        }
        let recovered = library.pcmRecover(pcm, code, 1)
        if recovered >= 0 { return true }
        fail(.ioFailed(reason: "\(library.describe(operation, code)) on \"\(device)\"; recovery failed: \(library.errorText(recovered))"))
        return false
    }

    func fail(_ error: SoundDeviceError) {
        lock.lock()
        if failure == nil { failure = error }
        stopRequested = true
        lock.unlock()
    }

    /// Called by the thread as its last act, after closing the handle.
    func markFinished() {
        finished.lock()
        lock.lock()
        isFinished = true
        lock.unlock()
        finished.broadcast()
        finished.unlock()
    }

    func start(name: String, body: @escaping @Sendable () -> Void) {
        let thread = Thread(block: body)
        thread.name = name
        thread.qualityOfService = .userInteractive
        thread.start()
    }
}

private func latencyMicroseconds(_ latency: Duration) throws(SoundDeviceError) -> UInt32 {
    let micros = latency.components.seconds * 1_000_000 + latency.components.attoseconds / 1_000_000_000_000
    guard micros >= 1_000, micros <= 2_000_000 else {
        throw .invalidArgument(reason: "latency \(latency) is outside 1 ms ... 2 s")
    }
    return UInt32(micros)
}

// MARK: - Capture

/// Records from a sound device: mono, signed 16-bit, 48 kHz, in ``AudioFormat/frameSamples`` frames.
///
/// A dedicated thread reads the device one 20 ms period at a time into a bounded buffer;
/// ``takeFrame()`` takes frames out without blocking. When the consumer falls behind, the oldest
/// audio is dropped (counted in ``overruns``) so latency stays bounded.
///
/// ```swift
/// let mic = try SoundCapture()
/// while let frame = mic.takeFrame() { try encoder.encode(frame) }
/// mic.stop()
/// ```
public final class SoundCapture: @unchecked Sendable {
    private final class Core: DeviceCore, @unchecked Sendable {
        let capacity: Int  // samples
        private var ring: [Int16]
        private var head = 0  // index of the oldest sample
        private var count = 0
        private var droppedFrames = 0
        private var droppedSamples = 0

        init(library: ALSALibrary, device: String, bufferedFrames: Int) {
            capacity = bufferedFrames * AudioFormat.frameSamples
            ring = [Int16](repeating: 0, count: capacity)
            super.init(library: library, device: device)
        }

        var overruns: Int {
            lock.lock()
            defer { lock.unlock() }
            return droppedFrames
        }

        var bufferedSamples: Int {
            lock.lock()
            defer { lock.unlock() }
            return count
        }

        func push(_ samples: UnsafeBufferPointer<Int16>) {
            lock.lock()
            defer { lock.unlock() }
            for sample in samples {
                if count == capacity {
                    head = (head + 1) % capacity
                    count -= 1
                    droppedSamples += 1
                    if droppedSamples % AudioFormat.frameSamples == 0 { droppedFrames += 1 }
                }
                ring[(head + count) % capacity] = sample
                count += 1
            }
        }

        func take() -> [Int16]? {
            lock.lock()
            defer { lock.unlock() }
            let frame = AudioFormat.frameSamples
            guard count >= frame else { return nil }
            var out = [Int16](repeating: 0, count: frame)
            for index in 0..<frame { out[index] = ring[(head + index) % capacity] }
            head = (head + frame) % capacity
            count -= frame
            return out
        }

        func run(_ pcm: OpaquePointer) {
            var period = [Int16](repeating: 0, count: AudioFormat.frameSamples)
            while !shouldStop {
                let read = period.withUnsafeMutableBytes { raw in
                    library.pcmReadI(pcm, raw.baseAddress, UInt(AudioFormat.frameSamples))
                }
                if read > 0 {
                    period.withUnsafeBufferPointer { all in
                        push(UnsafeBufferPointer(rebasing: all[0..<min(read, all.count)]))
                    }
                } else if read < 0 {
                    if !recover(pcm, code: read, operation: "snd_pcm_readi") { break }
                }
            }
            _ = library.pcmClose(pcm)
            markFinished()
        }
    }

    private let core: Core

    /// The ALSA device name this capture reads from.
    public var device: String { core.device }

    /// Opens `device` for capture and starts reading.
    ///
    /// - Parameters:
    ///   - device: an ALSA PCM name such as `"default"`, `"hw:1,0"` or `"null"`.
    ///   - latency: the device buffer ALSA is asked for (`snd_pcm_set_params`).
    ///   - bufferedFrames: how many 20 ms frames are kept for ``takeFrame()`` before the oldest are dropped.
    ///   - libraryPath: where to load libasound from (tests point this elsewhere).
    /// - Throws: ``SoundDeviceError`` when the library or the device is missing or refuses the format.
    public init(
        device: String = SoundDevices.defaultDevice, latency: Duration = .milliseconds(40),
        bufferedFrames: Int = 10, libraryPath: String = ALSALibrary.defaultPath
    ) throws(SoundDeviceError) {
        guard bufferedFrames >= 1, bufferedFrames <= 1_000 else {
            throw .invalidArgument(reason: "bufferedFrames \(bufferedFrames) is outside 1 ... 1000")
        }
        let micros = try latencyMicroseconds(latency)
        let library = try ALSALibrary.load(path: libraryPath)
        let pcm = try library.openConfigured(device: device, stream: .capture, latencyMicroseconds: micros)
        let core = Core(library: library, device: device, bufferedFrames: bufferedFrames)
        self.core = core
        let handle = UnsafeSendableHandle(pcm)
        core.start(name: "parley.capture.\(device)") { core.run(handle.pointer) }
    }

    deinit {
        core.requestStop()
    }

    /// The oldest buffered frame of ``AudioFormat/frameSamples`` samples, or `nil` if a whole
    /// frame has not been captured yet. Never blocks.
    public func takeFrame() -> [Int16]? { core.take() }

    /// Samples currently buffered and not yet taken.
    public var bufferedSamples: Int { core.bufferedSamples }

    /// Frames of audio dropped because ``takeFrame()`` was not called often enough.
    public var overruns: Int { core.overruns }

    /// Overruns the device itself reported (`-EPIPE`), each recovered with `snd_pcm_recover`.
    public var deviceXruns: Int { core.xruns }

    /// `false` once ``stop()`` was called or the device failed (see ``lastError``).
    public var isRunning: Bool { core.running }

    /// Why the reading thread ended on its own, if it did.
    public var lastError: SoundDeviceError? { core.lastError }

    /// Stops reading and closes the device. Waits up to `timeout` for the reading thread; if the
    /// device hangs past that, the thread closes it when its read returns. Safe to call repeatedly.
    ///
    /// - Returns: `true` when the device was closed within `timeout`.
    @discardableResult
    public func stop(timeout: Duration = .seconds(2)) -> Bool {
        core.requestStop()
        return core.waitUntilFinished(timeout: timeout.timeInterval)
    }
}

// MARK: - Playback

/// Plays to a sound device: mono, signed 16-bit, 48 kHz.
///
/// ``enqueue(_:)`` hands frames to a bounded queue without blocking; a dedicated thread writes them
/// to the device, writing silence whenever the queue is empty so the device keeps running at its
/// own pace (after waiting up to 5 ms for a late frame). When the producer runs ahead, the oldest queued frames are dropped (``droppedFrames``)
/// so latency stays bounded. Device underruns are recovered with `snd_pcm_recover`.
public final class SoundPlayback: @unchecked Sendable {
    private final class Core: DeviceCore, @unchecked Sendable {
        let capacity: Int  // frames
        /// Guards the queue and its counters; signalled when a frame is queued or stop is requested.
        private let arrival = NSCondition()
        private var queue: [[Int16]] = []
        private var dropped = 0
        private var silence = 0
        private var played = 0

        init(library: ALSALibrary, device: String, queuedFrames: Int) {
            capacity = queuedFrames
            super.init(library: library, device: device)
        }

        private func withQueue<T>(_ body: () -> T) -> T {
            arrival.lock()
            defer { arrival.unlock() }
            return body()
        }

        var droppedFrames: Int { withQueue { dropped } }
        var silenceFrames: Int { withQueue { silence } }
        var playedFrames: Int { withQueue { played } }
        var queuedFrames: Int { withQueue { queue.count } }

        func enqueue(_ frame: [Int16]) {
            withQueue {
                if queue.count >= capacity {
                    queue.removeFirst(queue.count - capacity + 1)
                    dropped += 1
                }
                queue.append(frame)
                arrival.signal()
            }
        }

        func wake() {
            withQueue { arrival.broadcast() }
        }

        /// The next queued frame, or `nil` (silence) if none arrives within `grace`. The short wait
        /// lets a slightly late frame play instead of silence, and keeps devices that accept data
        /// faster than real time (ALSA's `null` and `file`) from spinning.
        private func next(grace: TimeInterval = 0.005) -> [Int16]? {
            withQueue {
                if queue.isEmpty && !shouldStop {
                    _ = arrival.wait(until: Date(timeIntervalSinceNow: grace))
                }
                if queue.isEmpty {
                    silence += 1
                    return nil
                }
                played += 1
                return queue.removeFirst()
            }
        }

        /// Writes all of `samples`, recovering from underruns. Returns `false` on a fatal error or stop.
        private func write(_ pcm: OpaquePointer, _ samples: UnsafeBufferPointer<Int16>) -> Bool {
            var offset = 0
            while offset < samples.count {
                if shouldStop { return false }
                let written = library.pcmWriteI(
                    pcm, UnsafeRawPointer(samples.baseAddress! + offset), UInt(samples.count - offset))
                if written > 0 {
                    offset += written
                } else if written < 0 {
                    if !recover(pcm, code: written, operation: "snd_pcm_writei") { return false }
                }
            }
            return true
        }

        func run(_ pcm: OpaquePointer) {
            let silenceFrame = [Int16](repeating: 0, count: AudioFormat.frameSamples)
            while !shouldStop {
                let frame = next() ?? silenceFrame
                if frame.isEmpty { continue }
                let ok = frame.withUnsafeBufferPointer { write(pcm, $0) }
                if !ok { break }
            }
            _ = library.pcmClose(pcm)
            markFinished()
        }
    }

    private let core: Core

    /// The ALSA device name this playback writes to.
    public var device: String { core.device }

    /// Opens `device` for playback and starts the writing thread (playing silence until frames arrive).
    ///
    /// - Parameters:
    ///   - device: an ALSA PCM name such as `"default"`, `"hw:1,0"` or `"null"`.
    ///   - latency: the device buffer ALSA is asked for (`snd_pcm_set_params`).
    ///   - queuedFrames: how many frames ``enqueue(_:)`` may queue before the oldest are dropped.
    ///   - libraryPath: where to load libasound from (tests point this elsewhere).
    /// - Throws: ``SoundDeviceError`` when the library or the device is missing or refuses the format.
    public init(
        device: String = SoundDevices.defaultDevice, latency: Duration = .milliseconds(40),
        queuedFrames: Int = 10, libraryPath: String = ALSALibrary.defaultPath
    ) throws(SoundDeviceError) {
        guard queuedFrames >= 1, queuedFrames <= 1_000 else {
            throw .invalidArgument(reason: "queuedFrames \(queuedFrames) is outside 1 ... 1000")
        }
        let micros = try latencyMicroseconds(latency)
        let library = try ALSALibrary.load(path: libraryPath)
        let pcm = try library.openConfigured(device: device, stream: .playback, latencyMicroseconds: micros)
        let core = Core(library: library, device: device, queuedFrames: queuedFrames)
        self.core = core
        let handle = UnsafeSendableHandle(pcm)
        core.start(name: "parley.playback.\(device)") { core.run(handle.pointer) }
    }

    deinit {
        core.requestStop()
        core.wake()
    }

    /// Queues a frame (normally ``AudioFormat/frameSamples`` samples) for playback. Never blocks;
    /// when the queue is full the oldest queued frame is dropped. Empty frames are ignored.
    public func enqueue(_ frame: [Int16]) {
        guard !frame.isEmpty else { return }
        core.enqueue(frame)
    }

    /// Frames waiting to be written to the device.
    public var queuedFrames: Int { core.queuedFrames }

    /// Frames dropped from the queue because ``enqueue(_:)`` ran ahead of the device.
    public var droppedFrames: Int { core.droppedFrames }

    /// Queued frames written to the device so far.
    public var playedFrames: Int { core.playedFrames }

    /// Frames of silence written because the queue was empty.
    public var silenceFrames: Int { core.silenceFrames }

    /// Underruns the device reported (`-EPIPE`), each recovered with `snd_pcm_recover`.
    public var deviceXruns: Int { core.xruns }

    /// `false` once ``stop()`` was called or the device failed (see ``lastError``).
    public var isRunning: Bool { core.running }

    /// Why the writing thread ended on its own, if it did.
    public var lastError: SoundDeviceError? { core.lastError }

    /// Stops writing and closes the device (audio still in the device buffer is dropped). Waits up to
    /// `timeout` for the writing thread. Safe to call repeatedly.
    ///
    /// - Returns: `true` when the device was closed within `timeout`.
    @discardableResult
    public func stop(timeout: Duration = .seconds(2)) -> Bool {
        core.requestStop()
        core.wake()
        return core.waitUntilFinished(timeout: timeout.timeInterval)
    }
}

// MARK: - Helpers

/// A PCM handle handed from the opening thread to the I/O thread, which alone uses it afterwards.
private struct UnsafeSendableHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
}

extension Duration {
    fileprivate var timeInterval: TimeInterval {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
