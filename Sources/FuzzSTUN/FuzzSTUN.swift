import NIOCore
import ParleyRelay
import ParleyWire

/// libFuzzer entry point: one input through the STUN decoder, every message accessor, integrity
/// verification, and the server core in two configurations. Crashes, traps and failed preconditions are
/// findings; a well-formed answer to anything is the expected outcome.
///
/// Built with `-DFUZZING` and `--sanitize=fuzzer` (scripts/fuzz.sh) libFuzzer supplies `main`; built
/// normally, ``FuzzSTUNReplay`` runs files given on the command line through the same function.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size))
    FuzzTarget.decodeAndWalk(input)
    for server in FuzzTarget.servers {
        for (source, transport, endpoint) in FuzzTarget.peers {
            FuzzTarget.serve(input, server: server, source: source, transport: transport, endpoint: endpoint)
        }
    }
    return 0
}

/// What the fuzz function exercises, set up once per process.
enum FuzzTarget {
    static let now: UInt64 = 1_700_000_000
    static let behaviour = BehaviourDiscovery(
        primaryIP: .v4(0xC000_020A, port: 0), alternateIP: .v4(0xC000_020B, port: 0), primaryPort: 3478,
        alternatePort: 3479)
    /// Plain, and with RFC 5780 discovery plus long-term credentials.
    static let servers = [
        STUNServer(configuration: STUNServerConfiguration()),
        STUNServer(configuration: STUNServerConfiguration(
            behaviourDiscovery: behaviour,
            authentication: LongTermAuthenticator(realm: "example.org", secrets: ["fuzz-secret"]))),
    ]
    /// Sources, transports and receiving endpoints each input is sent from, over and to.
    static let peers: [(STUNAddress, STUNTransport, STUNEndpoint)] = [
        (.v4(0xC633_6401, port: 40000), .udp, .primary),
        (.v6(0x2001_0db8_0000_0000, 1, port: 40000), .udp, STUNEndpoint(alternateIP: true, alternatePort: false)),
        (.v4(0xC633_6401, port: 40000), .tcp, .primary),
    ]
    static let keys = [
        STUNIntegrityKey.shortTerm(password: "VOkJxbRl1RmTxUk/WvJxBt"),
        STUNIntegrityKey.longTerm(username: "user", realm: "example.org", password: "pass"),
        STUNIntegrityKey.longTerm(username: "user", realm: "example.org", password: "pass", algorithm: .sha256),
    ]
    static let addressTypes: [STUNAttributeType] = [
        .mappedAddress, .xorMappedAddress, .responseOrigin, .otherAddress, .alternateServer, .sourceAddress,
        .changedAddress, .xorPeerAddress, .xorRelayedAddress,
    ]

    /// The decoder and everything a decoded message offers.
    static func decodeAndWalk(_ input: ByteBuffer) {
        guard let message = try? STUNDecoder.decode(input) else { return }
        precondition(message.length == input.readableBytes)
        var seen = 0
        message.forEachAttribute { type, offset, length in
            seen += 1
            precondition(offset >= STUNDecoder.headerLength && offset + 4 + length <= message.length)
            let value = message.value(of: type)
            precondition(value != nil && message.contains(type))
            _ = message.address(of: type, xor: true)
            _ = message.address(of: type, xor: false)
            return true
        }
        precondition(seen <= message.attributeCount && message.attributeCount <= STUNDecoder.maxAttributes)
        for type in addressTypes {
            _ = message.address(of: type, xor: true)
            _ = message.address(of: type, xor: false)
        }
        _ = message.errorCode
        for key in keys {
            let verdict = STUNIntegrity.verify(message, key: key)
            let offered = message.messageIntegrityOffset != nil || message.messageIntegritySHA256Offset != nil
            precondition((verdict == .absent) == !offered)
        }
    }

    /// One request through the server; any answer must decode, answer the same transaction and respect
    /// the amplification allowance (no fuzz input can hold valid credentials).
    static func serve(_ input: ByteBuffer, server: STUNServer, source: STUNAddress, transport: STUNTransport,
                      endpoint: STUNEndpoint) {
        var out = ByteBuffer()
        let action = server.handle(input, from: source, on: endpoint, transport: transport, now: now, into: &out)
        switch action {
        case .drop:
            precondition(out.readableBytes == 0, "a drop wrote \(out.readableBytes) bytes")
        case .respond:
            let allowed = input.readableBytes + server.configuration.amplificationAllowance
            precondition(out.readableBytes <= allowed, "answer \(out.readableBytes) bytes, allowed \(allowed)")
            let answer: STUNMessage
            do {
                answer = try STUNDecoder.decode(out)
            } catch {
                preconditionFailure("the server's answer does not decode: \(error)")
            }
            precondition(answer.transactionID.high == input.getInteger(at: input.readerIndex + 8, as: UInt64.self))
            precondition(answer.type.messageClass == .successResponse || answer.type.messageClass == .errorResponse)
            decodeAndWalk(out)
        }
    }
}

#if !FUZZING
import Foundation
import FuzzReplay

/// Regression replay: `FuzzSTUN FILE|DIR...` runs each file (each file of each directory) through
/// ``fuzz(_:_:)``, e.g. the crash inputs kept in Tests/ParleyWireTests/Corpus.
@main
struct FuzzSTUNReplay {
    static func main() throws {
        try FuzzReplay.run(Array(CommandLine.arguments.dropFirst()),
                           usage: "usage: FuzzSTUN FILE|DIR...  (replays inputs through LLVMFuzzerTestOneInput)") {
            _ = fuzz($0.baseAddress!, $0.count)
        }
    }
}
#endif
