import Foundation
import ParleyMedia
import XCTest

/// Sound devices through ALSA loaded at run time. The test machine has no sound card, so the real
/// device paths are exercised with ALSA's software devices: `null` (capture yields silence, playback
/// discards) and `file` (playback written to a raw file, which the test reads back).
final class SoundDeviceTests: XCTestCase {
    private let bogusPath = "/nonexistent/parley-test/libasound-bogus.so.2"

    /// The real libasound, or a skip that says why it is absent.
    private func requireALSA() throws -> ALSALibrary {
        do {
            return try ALSALibrary.load()
        } catch {
            throw XCTSkip("libasound.so.2 is not installed here (Debian package libasound2): \(error)")
        }
    }

    /// ALSA's `null` device, or a skip when this ALSA configuration lacks it (libasound2-data).
    private func requireNullDevice() throws {
        _ = try requireALSA()
        if let reason = SoundDevices.unavailableReason(device: "null", stream: .capture) {
            throw XCTSkip("ALSA's software device \"null\" is not available: \(reason)")
        }
    }

    private func waitUntil(timeout: TimeInterval = 5, _ condition: () -> Bool) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.005)
        }
        return condition()
    }

    // MARK: Missing library

    func testBogusLibraryPathIsReportedWithThePath() {
        XCTAssertThrowsError(try SoundCapture(libraryPath: bogusPath)) { error in
            guard case .libraryMissing(let path, let reason)? = error as? SoundDeviceError else {
                return XCTFail("expected libraryMissing, got \(error)")
            }
            XCTAssertEqual(path, bogusPath)
            XCTAssertFalse(reason.isEmpty)
            XCTAssertTrue("\(error)".contains(bogusPath), "\(error)")
            XCTAssertTrue("\(error)".contains("libasound2"), "\(error)")
        }
        XCTAssertThrowsError(try SoundPlayback(libraryPath: bogusPath)) { error in
            guard case .libraryMissing(let path, _)? = error as? SoundDeviceError else {
                return XCTFail("expected libraryMissing, got \(error)")
            }
            XCTAssertEqual(path, bogusPath)
        }
        XCTAssertFalse(SoundDevices.isAvailable(libraryPath: bogusPath))
        guard case .libraryMissing(let path, _)? = SoundDevices.unavailableReason(libraryPath: bogusPath) else {
            return XCTFail("expected libraryMissing")
        }
        XCTAssertEqual(path, bogusPath)
    }

    func testLibraryWithoutALSASymbolsIsRejected() throws {
        // libc loads fine but is not ALSA: the loader names the first missing function.
        let libc = "libc.so.6"
        XCTAssertThrowsError(try ALSALibrary.load(path: libc)) { error in
            guard case .symbolMissing(let symbol, let path)? = error as? SoundDeviceError else {
                return XCTFail("expected symbolMissing, got \(error)")
            }
            XCTAssertEqual(symbol, "snd_pcm_open")
            XCTAssertEqual(path, libc)
        }
    }

    func testInvalidArgumentsAreRejectedBeforeLoading() {
        for attempt in [
            { _ = try SoundCapture(bufferedFrames: 0, libraryPath: self.bogusPath) },
            { _ = try SoundCapture(latency: .zero, libraryPath: self.bogusPath) },
            { _ = try SoundPlayback(queuedFrames: 0, libraryPath: self.bogusPath) },
            { _ = try SoundPlayback(latency: .seconds(10), libraryPath: self.bogusPath) },
        ] as [() throws -> Void] {
            XCTAssertThrowsError(try attempt()) { error in
                guard case .invalidArgument? = error as? SoundDeviceError else {
                    return XCTFail("expected invalidArgument, got \(error)")
                }
            }
        }
    }

    // MARK: Missing device

    func testMissingDeviceReportsALSAErrorText() throws {
        let library = try requireALSA()
        XCTAssertTrue(SoundDevices.isAvailable())
        let device = "nonexistent_device_xyz"
        // snd_pcm_open answers -ENOENT for a PCM name no configuration defines.
        let alsaText = library.errorText(-ENOENT)
        XCTAssertFalse(alsaText.isEmpty)
        for open in [
            { _ = try SoundCapture(device: device) },
            { _ = try SoundPlayback(device: device) },
        ] as [() throws -> Void] {
            XCTAssertThrowsError(try open()) { error in
                guard case .openFailed(let failedDevice, let reason)? = error as? SoundDeviceError else {
                    return XCTFail("expected openFailed, got \(error)")
                }
                XCTAssertEqual(failedDevice, device)
                XCTAssertTrue(reason.contains("snd_pcm_open"), reason)
                XCTAssertTrue(reason.contains(alsaText), "\(reason) lacks \(alsaText)")
                XCTAssertTrue("\(error)".contains(device), "\(error)")
            }
        }
        XCTAssertFalse(SoundDevices.isAvailable(device: device))
        guard case .openFailed? = SoundDevices.unavailableReason(device: device, stream: .capture) else {
            return XCTFail("expected openFailed")
        }
    }

    func testErrorTextComesFromALSA() throws {
        let library = try requireALSA()
        XCTAssertEqual(library.errorText(-EPIPE), String(cString: strerror(EPIPE)))
        XCTAssertEqual(library.path, ALSALibrary.defaultPath)
    }

    // MARK: Software devices (no sound card needed)

    func testNullCaptureDeliversSilentFrames() throws {
        try requireNullDevice()
        let capture = try SoundCapture(device: "null")
        XCTAssertTrue(capture.isRunning)
        var frames: [[Int16]] = []
        XCTAssertTrue(waitUntil {
            if let frame = capture.takeFrame() { frames.append(frame) }
            return frames.count >= 3
        }, "no frames captured from the null device")
        for frame in frames {
            XCTAssertEqual(frame.count, AudioFormat.frameSamples)
            XCTAssertTrue(frame.allSatisfy { $0 == 0 })
        }
        XCTAssertTrue(capture.stop())
        XCTAssertFalse(capture.isRunning)
        XCTAssertNil(capture.lastError)
        XCTAssertTrue(capture.stop(), "stop is idempotent")
    }

    func testCaptureDropsOldestWhenConsumerFallsBehind() throws {
        try requireNullDevice()
        let capture = try SoundCapture(device: "null", bufferedFrames: 2)
        defer { capture.stop() }
        XCTAssertTrue(waitUntil { capture.overruns >= 2 }, "overruns \(capture.overruns)")
        XCTAssertLessThanOrEqual(capture.bufferedSamples, 2 * AudioFormat.frameSamples)
        XCTAssertNotNil(capture.takeFrame())
    }

    func testTakeFrameIsNilBeforeAWholeFrame() throws {
        try requireNullDevice()
        let capture = try SoundCapture(device: "null")
        capture.stop()
        // Whatever was captured before stop, draining leaves fewer than a frame: nil, never a partial frame.
        while capture.takeFrame() != nil {}
        XCTAssertNil(capture.takeFrame())
        XCTAssertLessThan(capture.bufferedSamples, AudioFormat.frameSamples)
    }

    func testPlaybackToFileWritesQueuedFramesInOrder() throws {
        try requireNullDevice()
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("parley-playback-\(UUID().uuidString).raw")
        defer { try? FileManager.default.removeItem(at: url) }
        let device = "file:FILE=\(url.path),FORMAT=raw"
        if let reason = SoundDevices.unavailableReason(device: device) {
            throw XCTSkip("ALSA's file device is not available: \(reason)")
        }

        var tone = ToneGenerator(frequency: 1_000, levelDBFS: -6)
        let frames = (0..<5).map { _ in tone.nextFrame() }
        let playback = try SoundPlayback(device: device, queuedFrames: 10)
        for frame in frames { playback.enqueue(frame) }
        XCTAssertTrue(waitUntil { playback.playedFrames == frames.count }, "played \(playback.playedFrames)")
        // Let silence follow so the tone has certainly passed through the plugin's buffer.
        let silenceBefore = playback.silenceFrames
        XCTAssertTrue(waitUntil { playback.silenceFrames >= silenceBefore + 10 })
        XCTAssertTrue(playback.stop())
        XCTAssertNil(playback.lastError)
        XCTAssertEqual(playback.droppedFrames, 0)

        let data = try Data(contentsOf: url)
        let written: [Int16] = data.withUnsafeBytes { raw in
            Array(raw.bindMemory(to: Int16.self).prefix(data.count / 2))
        }
        let expected = frames.flatMap { $0 }
        // Every write is a whole frame (queued or silence), so the tone starts on a frame boundary.
        let start = stride(from: 0, through: written.count - expected.count, by: AudioFormat.frameSamples)
            .first { Array(written[$0..<$0 + expected.count]) == expected }
        guard let start else {
            return XCTFail("the queued frames are not in the \(written.count) samples written")
        }
        XCTAssertTrue(written[..<start].allSatisfy { $0 == 0 }, "only silence before the tone")
        XCTAssertTrue(written[(start + expected.count)...].allSatisfy { $0 == 0 }, "only silence after it")
    }

    func testPlaybackQueueIsBoundedWhileRunning() throws {
        try requireNullDevice()
        let playback = try SoundPlayback(device: "null", queuedFrames: 3)
        let frame = [Int16](repeating: 100, count: AudioFormat.frameSamples)
        for _ in 0..<1_000 {
            playback.enqueue(frame)
            XCTAssertLessThanOrEqual(playback.queuedFrames, 3)
        }
        playback.enqueue([])  // ignored
        XCTAssertTrue(playback.stop())
        XCTAssertFalse(playback.isRunning)
        XCTAssertNil(playback.lastError)
        // Every frame was either played, dropped or is still queued.
        XCTAssertEqual(playback.droppedFrames + playback.playedFrames + playback.queuedFrames, 1_000)
    }

    func testPlaybackDropsOldestWhenQueueIsFull() throws {
        try requireNullDevice()
        let playback = try SoundPlayback(device: "null", queuedFrames: 3)
        XCTAssertTrue(playback.stop())
        // With the writing thread gone nothing drains the queue, so the bound is exact.
        let before = playback.droppedFrames
        for value in 1...5 { playback.enqueue([Int16](repeating: Int16(value), count: AudioFormat.frameSamples)) }
        XCTAssertEqual(playback.queuedFrames, 3)
        XCTAssertEqual(playback.droppedFrames - before, 2)
    }
}
