// Part 1 and 2: per-packet seal+open cost, raw swift-crypto against Parley's MediaSealer/MediaOpener.

import Crypto
import ParleyCrypto
import ParleyWire

/// The 7-byte AAD a raw AEAD user would authenticate per packet: the same layout as MediaHeader
/// (first byte, 48-bit sequence), built by hand.
@inline(__always)
private func rawHeader(_ sequence: UInt64) -> [UInt8] {
    var aad = [UInt8](repeating: 0, count: 7)
    aad[0] = 0x91
    for i in 0..<6 { aad[1 + i] = UInt8(truncatingIfNeeded: sequence >> UInt64(40 - 8 * i)) }
    return aad
}

/// The 12-byte nonce a raw AEAD user would build per packet: a fixed IV XOR the sequence number.
@inline(__always)
private func rawNonce(_ iv: [UInt8], _ sequence: UInt64) -> [UInt8] {
    var nonce = iv
    for i in 0..<8 { nonce[4 + i] ^= UInt8(truncatingIfNeeded: sequence >> UInt64(56 - 8 * i)) }
    return nonce
}

/// `pairs` raw seal+open pairs; returns the elapsed time and a checksum (keeps the optimizer honest).
func rawPairs(suite: MediaCipherSuite, payload: [UInt8], pairs: Int, startSequence: UInt64) throws -> (Elapsed, UInt64) {
    let key = SymmetricKey(size: .bits256)
    let iv: [UInt8] = (0..<12).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
    var checksum: UInt64 = 0
    let elapsed = try measure {
        switch suite {
        case .chaCha20Poly1305:
            for i in 0..<pairs {
                let sequence = startSequence &+ UInt64(i)
                let aad = rawHeader(sequence)
                let box = try ChaChaPoly.seal(payload, using: key, nonce: ChaChaPoly.Nonce(data: rawNonce(iv, sequence)), authenticating: aad)
                let opened = try ChaChaPoly.open(box, using: key, authenticating: aad)
                checksum &+= UInt64(opened[opened.startIndex]) &+ UInt64(opened.count)
            }
        case .aes256GCM:
            for i in 0..<pairs {
                let sequence = startSequence &+ UInt64(i)
                let aad = rawHeader(sequence)
                let box = try AES.GCM.seal(payload, using: key, nonce: AES.GCM.Nonce(data: rawNonce(iv, sequence)), authenticating: aad)
                let opened = try AES.GCM.open(box, using: key, authenticating: aad)
                checksum &+= UInt64(opened[opened.startIndex]) &+ UInt64(opened.count)
            }
        }
    }
    return (elapsed, checksum)
}

/// `pairs` Parley seal+open pairs through a fresh sealer and opener (sequence 0 up, every packet fresh for
/// the replay window, one key generation).
func parleyPairs(suite: MediaCipherSuite, payload: [UInt8], pairs: Int) throws -> (Elapsed, UInt64) {
    let traffic = MediaTrafficSecret(suite: suite, secret: SymmetricKey(size: .bits256))
    var sealer = MediaSealer(traffic)
    var opener = MediaOpener(traffic)
    var checksum: UInt64 = 0
    let elapsed = try measure {
        for _ in 0..<pairs {
            let datagram = try sealer.seal(.audio, payload)
            let opened = try opener.open(datagram)
            checksum &+= UInt64(opened.plaintext[0]) &+ UInt64(opened.plaintext.count) &+ UInt64(datagram.count)
        }
    }
    return (elapsed, checksum)
}

/// Medians of one seal+open series.
struct PairFigures {
    var nsPerPair: Double
    var wallNsPerPair: Double
    var pairsPerSecond: Double { 1e9 / nsPerPair }
}

/// Warm-up, then `repeats` rounds of `pairs` pairs each, raw and Parley interleaved within each round (the
/// machine is shared: a busy spell hits both sides of the ratio alike); medians of CPU and wall ns per pair.
func pairSeries(
    repeats: Int, pairs: Int, checksum: inout UInt64,
    raw: (Int) throws -> (Elapsed, UInt64), parley: (Int) throws -> (Elapsed, UInt64)
) rethrows -> (raw: PairFigures, parley: PairFigures, ratio: Double) {
    checksum &+= try raw(max(pairs / 5, 1000)).1
    checksum &+= try parley(max(pairs / 5, 1000)).1
    var cpu: [[Double]] = [[], []]
    var wall: [[Double]] = [[], []]
    var ratios: [Double] = []
    for _ in 0..<repeats {
        for i in 0..<2 {
            let (elapsed, sum) = try (i == 0 ? raw(pairs) : parley(pairs))
            checksum &+= sum
            cpu[i].append(Double(elapsed.cpuNanos) / Double(pairs))
            wall[i].append(Double(elapsed.wallNanos) / Double(pairs))
        }
        ratios.append(cpu[1].last! / cpu[0].last!)
    }
    return (
        PairFigures(nsPerPair: median(cpu[0]), wallNsPerPair: median(wall[0])),
        PairFigures(nsPerPair: median(cpu[1]), wallNsPerPair: median(wall[1])),
        median(ratios)
    )
}
