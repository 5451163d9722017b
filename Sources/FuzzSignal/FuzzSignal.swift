import ParleyCrypto
import ParleyWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Fuzz target for the signaling line codec (docs/PROTOCOL.md §3.1). One input is a byte stream as a
/// TCP connection would carry it: it is split on LF, a CR before the LF is dropped (what the transport's
/// line framer does), invalid UTF-8 is repaired the same way, and every line goes to both
/// ``SignalCodec/parseClient(_:)`` and ``SignalCodec/parseServer(_:)``.
///
/// Property, checked with `precondition` so libFuzzer reports it as a crash: every frame that parses
/// formats to one line that survives the framing (no LF; no CR, which §3.1 forbids in every field) and
/// parses back to an equal frame (fields are split on `|` bytes), and formatting that frame again gives
/// the same bytes. The three codec bugs this found (CR in free text, over-long reasons, `|` followed by
/// a combining mark) are fixed; their inputs stay in SignalCorpus/crash-*.
///
/// Built with `-DFUZZING` and `--sanitize=fuzzer` (`scripts/fuzz.sh FuzzSignal`) libFuzzer supplies
/// `main`; built normally, ``FuzzSignalReplay`` runs files given on the command line through
/// ``fuzzSignalLines(_:)``, e.g. `swift run FuzzSignal Tests/ParleyWireTests/SignalCorpus`.
public func fuzzSignalLines(_ input: UnsafeBufferPointer<UInt8>) {
    IdentityFuzzTarget.checkList(Array(input))
    for raw in input.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
        let body = raw.last == UInt8(ascii: "\r") ? raw.dropLast() : raw[...]
        let line = String(decoding: body, as: UTF8.self)
        SignalFuzzTarget.checkClient(line)
        SignalFuzzTarget.checkServer(line)
        IdentityFuzzTarget.checkText(line)
    }
}

/// The identity formats (docs/PROTOCOL.md §3.8) a hostile server or peer hands a client: device lists in
/// wire and text form, link codes and URIs, user key files. Property: a refusal or a value that encodes
/// back to exactly the input.
enum IdentityFuzzTarget {
    static func checkList(_ bytes: [UInt8]) {
        guard let list = try? DeviceList(wire: bytes) else { return }
        precondition(list.wire == bytes, "device list does not re-encode to its wire bytes")
        precondition((try? DeviceList(text: list.text)) == list, "device list text form does not round-trip")
    }

    static func checkText(_ line: String) {
        if let list = try? DeviceList(text: line) { precondition(list.text == line, "device list text is not canonical") }
        if let code = LinkCode(text: line) { precondition(LinkCode(text: code.text) == code, "link code does not round-trip") }
        if let (code, user, server) = LinkCode.parse(uri: line) {
            let again = LinkCode.parse(uri: code.uri(user: user, server: server))
            precondition(again?.code == code && again?.user == user && again?.server == server, "link URI does not round-trip")
        }
        _ = try? UserKeyFile.parse(Array(line.utf8), path: "fuzz")
    }
}

#if FUZZING
/// libFuzzer entry point.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    fuzzSignalLines(UnsafeBufferPointer(start: data, count: size))
    return 0
}
#endif

/// The round-trip checks, one per direction.
enum SignalFuzzTarget {
    static func checkClient(_ line: String) {
        guard let frame = try? SignalCodec.parseClient(line[...]) else { return }
        let out = SignalCodec.format(frame)
        checkFramable(out, from: line)
        let again: ClientFrame
        do {
            again = try SignalCodec.parseClient(out[...])
        } catch {
            preconditionFailure("client frame formats to a line that does not parse (\(error)): \(excerpt(out))")
        }
        precondition(again == frame, "client frame changes in a round trip: \(excerpt(line)) -> \(excerpt(out))")
        precondition(
            Array(SignalCodec.format(again).utf8) == Array(out.utf8), "client format is not stable: \(excerpt(out))")
    }

    static func checkServer(_ line: String) {
        guard let frame = try? SignalCodec.parseServer(line[...]) else { return }
        let out = SignalCodec.format(frame)
        checkFramable(out, from: line)
        let again: ServerFrame
        do {
            again = try SignalCodec.parseServer(out[...])
        } catch {
            preconditionFailure("server frame formats to a line that does not parse (\(error)): \(excerpt(out))")
        }
        precondition(again == frame, "server frame changes in a round trip: \(excerpt(line)) -> \(excerpt(out))")
        precondition(
            Array(SignalCodec.format(again).utf8) == Array(out.utf8), "server format is not stable: \(excerpt(out))")
    }

    /// A formatted frame must be one line that the framer hands back unchanged, and a peer that splits
    /// fields on `|` bytes must see the fields the codec saw.
    static func checkFramable(_ out: String, from line: String) {
        precondition(!out.utf8.contains(UInt8(ascii: "\n")), "formatted frame contains LF: \(excerpt(line))")
        precondition(!out.utf8.contains(UInt8(ascii: "\r")), "formatted frame contains CR: \(excerpt(line))")
        // Fields are split on the `|` byte (§3.1), so a peer splitting bytes sees what the codec saw: the
        // re-parse below compares the frames field by field.
    }

    /// The start of a line, with control bytes escaped, for a failure message.
    static func excerpt(_ s: String) -> String {
        String(
            s.unicodeScalars.prefix(120).map { $0.value < 0x20 ? "\\u{\(String($0.value, radix: 16))}" : String($0) }
                .joined())
    }
}

#if !FUZZING
import Foundation
import FuzzReplay

/// Regression replay: `FuzzSignal FILE|DIR...` runs each file (each file of each directory) through
/// ``fuzzSignalLines(_:)``, e.g. the seeds and kept crash inputs in Tests/ParleyWireTests/SignalCorpus.
@main
struct FuzzSignalReplay {
    static func main() throws {
        try FuzzReplay.run(Array(CommandLine.arguments.dropFirst()),
                           usage: "usage: FuzzSignal FILE|DIR...  (replays inputs through the signaling codec fuzz target)") {
            fuzzSignalLines($0)
        }
    }
}
#endif
