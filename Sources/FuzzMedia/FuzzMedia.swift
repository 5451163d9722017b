import Crypto
import NIOCore
import ParleyClient
import ParleyCrypto
import ParleyMedia
import ParleyNAT
import ParleyWire

/// libFuzzer entry point for the call media parsers and state machines (docs/PROTOCOL.md §5–6): one input
/// through the media header, handshake datagram and audio payload parsers, offer/answer payloads, ICE candidate, credential
/// and `cand` payload parsers, the media opener (nothing opens under a key it was not sealed with, nothing
/// opens twice, a packet sealed from the input opens to exactly the input, once), both roles of the call core, an ICE agent, the gatherer,
/// a TURN client, the WAV reader and the Opus decoder. Any crash, trap or broken invariant is a finding.
///
/// Built with `-DFUZZING` and `--sanitize=fuzzer` (scripts/fuzz.sh FuzzMedia) libFuzzer supplies `main`;
/// built normally, ``FuzzMediaReplay`` runs files given on the command line through the same function.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    MediaFuzz.parsers(bytes)
    MediaFuzz.protection(bytes)
    MediaFuzz.cores(bytes)
    MediaFuzz.traversal(bytes)
    MediaFuzz.audio(bytes)
    return 0
}

/// Fixed inputs of the harness: a failure is a bug in the harness itself.
func fixed<T>(_ body: () throws -> T) -> T {
    do { return try body() } catch { preconditionFailure("fixed fuzz input refused: \(error)") }
}

enum MediaFuzz {
    static let traffic = MediaTrafficSecret(suite: .chaCha20Poly1305, secret: SymmetricKey(data: [UInt8](repeating: 0x42, count: 32)))
    static let call = SignalID("0f4b6c1e-8d2a-4c3b-9e5f-1a2b3c4d5e6f")!
    static let source = fixed { try SocketAddress(ipAddress: "198.51.100.9", port: 4000) }

    static func parsers(_ bytes: [UInt8]) {
        if let header = MediaHeader(parsing: bytes) {
            precondition(header.bytes == Array(bytes.prefix(MediaHeader.size)), "header does not re-encode to its bytes")
        }
        if let datagram = MediaHandshakeDatagram(parsing: bytes) {
            precondition(MediaHandshakeDatagram(parsing: datagram.bytes) == datagram, "handshake datagram round trip")
        }
        for type in MediaPacketType.allCases {
            if let audio = AudioPayload(parsing: bytes, type: type) {
                precondition(audio.bytes == bytes && audio.type == type, "audio payload does not re-encode to its bytes")
            }
        }
        if let offer = try? CallOffer(decoding: bytes) { _ = offer.encoded }
        if let answer = try? CallAnswer(decoding: bytes) { _ = answer.encoded }
        if let candidate = ICECandidate(decoding: bytes) {
            let again = ICECandidate(decoding: candidate.encoded)
            precondition(again?.address == candidate.address && again?.priority == candidate.priority, "candidate round trip")
        }
        _ = ICECredentials(decoding: bytes)
        _ = ICEFields(payload: bytes)
        _ = CallCandidatePayload(decoding: bytes)
        _ = MediaCandidate(decoding: bytes)
    }

    static func protection(_ bytes: [UInt8]) {
        // Under another key nothing the fuzzer makes may open (the seeds are sealed with `traffic`).
        var stranger = MediaOpener(
            MediaTrafficSecret(suite: .chaCha20Poly1305, secret: SymmetricKey(data: [UInt8](repeating: 0x43, count: 32))))
        if (try? stranger.open(bytes)) != nil {
            preconditionFailure("bytes opened under a key they were not sealed with")
        }
        var opener = MediaOpener(traffic)
        if let opened = try? opener.open(bytes) {
            precondition((try? opener.open(bytes)) == nil, "the same packet opened twice (sequence \(opened.sequence))")
        }
        var sealer = MediaSealer(traffic)
        var fresh = MediaOpener(traffic)
        guard let packet = try? sealer.seal(.audio, bytes) else { preconditionFailure("seal failed") }
        guard let opened = try? fresh.open(packet), opened.plaintext == bytes else { preconditionFailure("sealed input did not open") }
        if (try? fresh.open(packet)) != nil { preconditionFailure("replay accepted") }
    }

    static func cores(_ bytes: [UInt8]) {
        let alice = fixedIdentity(1)
        let bob = fixedIdentity(2)
        let handshake = CallerHandshake(
            callID: call.text, suites: [.chaCha20Poly1305],
            ephemeral: fixed { try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: [UInt8](repeating: 3, count: 32)) })
        var caller = CallMediaCore(
            caller: handshake, call: call, callee: SignalName("bob")!, myIdentityKey: Array(alice.publicBundle.signingKey),
            devices: [SignalName("phone")!: (bob.publicBundle, true)])
        _ = caller.receive(bytes, from: source, now: 1)
        _ = caller.answered(by: SignalName("phone")!, answer: bytes, now: 2)
        _ = caller.receive(bytes, from: source, now: 3)
        guard let callee = try? CalleeHandshake(callID: call.text, offer: handshake.offer) else { return }
        var core = CallMediaCore(
            callee: callee, call: call, callee: SignalName("bob")!, device: SignalName("phone")!,
            myIdentityKey: Array(bob.publicBundle.signingKey), signedAnswer: [], callerBundle: alice.publicBundle,
            callerCandidates: [source])
        _ = core.receive(bytes, from: source, now: 1)
        _ = core.revealedThroughSignaling(bytes, now: 2)
        _ = core.accept(now: 3)
        _ = core.receive(bytes, from: source, now: 4)
    }

    static func traversal(_ bytes: [UInt8]) {
        let credentials = ICECredentials(ufrag: "fuzz", password: "fuzzfuzzfuzzfuzzfuzzfuzz")
        var agent = ICEAgent(role: .controlled, local: credentials, remote: credentials, tieBreaker: 7)
        agent.addLocal(ICECandidate(type: .host, address: fixed { try SocketAddress(ipAddress: "10.0.0.1", port: 5000) }, base: 0))
        _ = agent.receive(bytes, base: 0, from: source, now: 1)
        _ = agent.tick(now: 2)
        var gatherer = ICEGatherer(server: source)
        _ = gatherer.start(now: 0)
        _ = gatherer.receive(bytes, from: source, now: 1)
        var client = TURNClient(configuration: .init(server: STUNAddress(source)!, username: "fuzz", password: "fuzz"))
        _ = client.start(now: 0)
        _ = client.receive(bytes, now: 1)
    }

    static func audio(_ bytes: [UInt8]) {
        _ = try? WAVFile.decode(bytes)
        if bytes.count <= 1275, let decoder = try? OpusDecoder() { _ = try? decoder.decode(bytes) }
    }

    static func fixedIdentity(_ seed: UInt8) -> DeviceIdentity {
        fixed {
            try DeviceIdentity(
                signingKey: Curve25519.Signing.PrivateKey(rawRepresentation: [UInt8](repeating: seed, count: 32)),
                agreementKey: Curve25519.KeyAgreement.PrivateKey(rawRepresentation: [UInt8](repeating: seed &+ 100, count: 32)))
        }
    }
}

#if !FUZZING
import Foundation
import FuzzReplay

/// Regression replay: `FuzzMedia FILE|DIR...`; `FuzzMedia --write-seeds DIR` writes valid inputs of each kind.
@main
struct FuzzMediaReplay {
    static func main() throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "--write-seeds", arguments.count == 2 {
            try writeSeeds(to: arguments[1])
            return
        }
        try FuzzReplay.run(arguments, usage: "usage: FuzzMedia FILE|DIR...\n       FuzzMedia --write-seeds DIR") {
            _ = fuzz($0.baseAddress!, $0.count)
        }
    }

    static func writeSeeds(to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var sealer = MediaSealer(MediaFuzz.traffic)
        let handshake = CallerHandshake(callID: MediaFuzz.call.text, suites: [.chaCha20Poly1305])
        let callee = try CalleeHandshake(callID: MediaFuzz.call.text, offer: handshake.offer)
        let seeds: [String: [UInt8]] = [
            "media-audio": try sealer.seal(.audio, [0, 0, 0, 1, 0xF8, 0xFF, 0xFE]),
            "audio-redundant": AudioPayload(frame: 9, opus: [0xF8, 0xFF, 0xFE], redundant: [.init(distance: 2, opus: [0xF8, 0xFF, 0xFE])]).bytes,
            "hello": MediaHandshakeDatagram.hello(call: MediaFuzz.call, device: SignalName("phone")!, signedAnswer: [1] + [UInt8](repeating: 0, count: 64) + callee.answer).bytes,
            "reveal": MediaHandshakeDatagram.reveal(call: MediaFuzz.call, ephemeral: [UInt8](repeating: 9, count: 32)).bytes,
            "offer": handshake.offer,
            "answer": callee.answer,
            "ice-candidate": ICECandidate(type: .serverReflexive, address: MediaFuzz.source).encoded,
            "wav": WAVFile.encode(samples: [0, 1000, -1000, 0]),
        ]
        for (name, bytes) in seeds {
            try Data(bytes).write(to: URL(fileURLWithPath: directory + "/" + name))
        }
    }
}
#endif
