import Crypto
import ParleyWire
import XCTest

@testable import ParleyCrypto

/// docs/PROTOCOL.md §5.2–5.3: AEAD media packets, replay window, key generations.
final class MediaProtectionTests: XCTestCase {
    func traffic(_ suite: MediaCipherSuite = .chaCha20Poly1305, interval: UInt64 = MediaTrafficSecret.defaultRekeyInterval)
        -> MediaTrafficSecret
    {
        MediaTrafficSecret(suite: suite, secret: SymmetricKey(data: [UInt8](repeating: 7, count: 32)), rekeyInterval: interval)
    }

    func testRoundTripBothSuitesAndHeaderIsAuthenticated() throws {
        for suite in MediaCipherSuite.allCases {
            var sealer = MediaSealer(traffic(suite))
            var opener = MediaOpener(traffic(suite))
            let packet = try sealer.seal(.report, [UInt8](repeating: 0x55, count: 100))
            XCTAssertEqual(packet.count, MediaHeader.size + 100 + 16)
            XCTAssertEqual(MediaHeader(parsing: packet), MediaHeader(type: .report, keyPhase: false, sequence: 0))
            // Flipping any bit, header included, fails authentication (or parsing), never opens.
            for i in 0..<packet.count {
                var bad = packet
                bad[i] ^= 0x01
                var o = MediaOpener(traffic(suite))
                XCTAssertThrowsError(try o.open(bad), "bit flip at \(i)")
            }
            let opened = try opener.open(packet)
            XCTAssertEqual(opened.type, .report)
            XCTAssertEqual(opened.plaintext, [UInt8](repeating: 0x55, count: 100))
            // Ciphertext is not the plaintext.
            XCTAssertFalse(packet.dropFirst(MediaHeader.size).starts(with: [0x55, 0x55, 0x55, 0x55]))
        }
    }

    func testReplayAndReorderWithinAndOutsideTheWindow() throws {
        var sealer = MediaSealer(traffic())
        var packets: [[UInt8]] = []
        for i in 0..<1100 { packets.append(try sealer.seal(.audio, [UInt8(i & 0xFF)])) }
        var opener = MediaOpener(traffic())
        // Reordered within the window: all accepted once.
        for i in [5, 3, 4, 0, 2, 1] { XCTAssertEqual(try opener.open(packets[i]).sequence, UInt64(i)) }
        // Replays of each are refused.
        for i in 0..<6 { XCTAssertThrowsError(try opener.open(packets[i])) { XCTAssertEqual($0 as? MediaProtectionError, .replayed) } }
        // Jump ahead to 1030: 6 is now 1024 behind → too old; 7 is still inside (1023 behind).
        XCTAssertNoThrow(try opener.open(packets[1030]))
        XCTAssertThrowsError(try opener.open(packets[6])) { XCTAssertEqual($0 as? MediaProtectionError, .tooOld) }
        XCTAssertNoThrow(try opener.open(packets[7]))
        XCTAssertThrowsError(try opener.open(packets[7])) { XCTAssertEqual($0 as? MediaProtectionError, .replayed) }
        XCTAssertThrowsError(try opener.open(packets[1030])) { XCTAssertEqual($0 as? MediaProtectionError, .replayed) }
        // A forged packet with a far-ahead sequence does not move the window.
        var forged = packets[1099]
        forged[forged.count - 1] ^= 0xFF
        XCTAssertThrowsError(try opener.open(forged)) { XCTAssertEqual($0 as? MediaProtectionError, .authenticationFailed) }
        XCTAssertNoThrow(try opener.open(packets[8]))
        XCTAssertEqual(opener.window.highest, 1030)
    }

    func testReplayWindowMatchesASimpleModel() {
        var window = ReplayWindow()
        var accepted = Set<UInt64>()
        var highest: UInt64 = 0
        var generator = SplitMix(seed: 42)
        for _ in 0..<20_000 {
            let jump = generator.next() % 8 == 0
            let base = highest + (jump ? generator.next() % 3000 : 0)
            let seq = base >= 1500 ? base - generator.next() % 1500 : generator.next() % 1500
            let expected: ReplayWindow.Verdict =
                accepted.isEmpty || seq > highest ? .fresh
                : highest - seq >= ReplayWindow.width ? .tooOld : accepted.contains(seq) ? .duplicate : .fresh
            XCTAssertEqual(window.check(seq), expected, "seq \(seq) highest \(highest)")
            if expected == .fresh {
                window.accept(seq)
                accepted.insert(seq)
                highest = max(highest, seq)
            }
        }
    }

    func testRekeyFlipsPhaseForgetsOldKeysAndSurvivesReordering() throws {
        let interval: UInt64 = 4
        var sealer = MediaSealer(traffic(interval: interval))
        var packets: [[UInt8]] = []
        for i in 0..<20 { packets.append(try sealer.seal(.audio, [UInt8(i)])) }
        XCTAssertEqual(sealer.generation, 4)
        XCTAssertEqual(packets.map { MediaHeader(parsing: $0)!.keyPhase }, (0..<20).map { ($0 / 4) % 2 == 1 })
        // Generations use different keys: the same plaintext at the same position differs.
        var opener = MediaOpener(traffic(interval: interval))
        // Packets across the generation boundary out of order (3 after 4).
        for i in [0, 1, 2, 4, 3, 5, 6, 8, 7, 9] { XCTAssertEqual(try opener.open(packets[i]).plaintext, [UInt8(i)]) }
        XCTAssertEqual(opener.heldGenerations, [1, 2, 3])
        // Generation 0's key is gone: a late packet 10 from generation 0 is refused (it is also still
        // inside the window, so the refusal is the key's absence).
        XCTAssertThrowsError(try opener.open(packets[2]))
        // A wrong key phase bit is refused before any crypto.
        var flipped = packets[10]
        flipped[0] ^= 0b1000
        XCTAssertThrowsError(try opener.open(flipped)) { XCTAssertEqual($0 as? MediaProtectionError, .wrongKeyPhase) }
        // Jumping two generations ahead is not derived on demand (a forged sequence cannot make us ratchet).
        XCTAssertThrowsError(try opener.open(packets[19])) { XCTAssertEqual($0 as? MediaProtectionError, .keyUnavailable) }
        for i in 10..<20 { XCTAssertNoThrow(try opener.open(packets[i]), "packet \(i)") }
    }

    func testMalformedDatagramsAreRefused() {
        var opener = MediaOpener(traffic())
        var generator = SplitMix(seed: 7)
        for length in 0..<64 {
            for _ in 0..<50 {
                let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
                XCTAssertThrowsError(try opener.open(bytes))
            }
        }
        XCTAssertNil(MediaHeader(parsing: [0x91, 0, 0]))
        XCTAssertNil(MediaHeader(parsing: [0xB1, 0, 0, 0, 0, 0, 0]))  // version 3: a handshake datagram
        XCTAssertNil(MediaHeader(parsing: [0x90, 0, 0, 0, 0, 0, 0]))  // type 0
        XCTAssertNil(MediaHeader(parsing: [0x01, 0, 0, 0, 0, 0, 0]))  // STUN range
        XCTAssertEqual(MediaHeader(parsing: [0x9A, 0, 0, 0, 1, 0, 2])?.sequence, 0x1_0002)
        XCTAssertEqual(MediaHeader(parsing: [0x9A, 0, 0, 0, 1, 0, 2])?.keyPhase, true)
    }
}

/// A small deterministic generator for reproducible tests.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
