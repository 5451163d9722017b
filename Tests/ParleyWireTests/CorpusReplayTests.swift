import Foundation
import NIOCore
import ParleyWire
import XCTest

/// Replays every file of the fuzzing corpus (`Corpus/`, a test resource) through the decoder and the
/// message accessors. Seeds are valid messages and must decode; `crash-*` files are inputs the fuzzer
/// once crashed on (see scripts/fuzz.sh) and must now merely be survived.
final class CorpusReplayTests: XCTestCase {
    private func corpusFiles() throws -> [URL] {
        let dir = try XCTUnwrap(Bundle.module.url(forResource: "Corpus", withExtension: nil))
        return try FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)
            .filter { !$0.lastPathComponent.hasPrefix(".") }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    func testCorpusIsSeeded() throws {
        let names = try corpusFiles().map(\.lastPathComponent)
        XCTAssertGreaterThanOrEqual(names.count, 5)
        for vector in ["rfc5769-2.1-request.bin", "rfc5769-2.2-ipv4-response.bin", "rfc5769-2.3-ipv6-response.bin",
                       "rfc5769-2.4-long-term-request.bin"] {
            XCTAssertTrue(names.contains(vector), "missing seed \(vector)")
        }
    }

    /// The RFC 5769 seed files are the vectors of ``RFC5769``, byte for byte.
    func testRFCSeedsMatchVectors() throws {
        let expected: [String: [UInt8]] = [
            "rfc5769-2.1-request.bin": RFC5769.request,
            "rfc5769-2.2-ipv4-response.bin": RFC5769.ipv4Response,
            "rfc5769-2.3-ipv6-response.bin": RFC5769.ipv6Response,
            "rfc5769-2.4-long-term-request.bin": RFC5769.longTermRequest,
            "rfc8489-b.1-sha256-request.bin": RFC5769.rfc8489B1Request,
        ]
        for file in try corpusFiles() {
            guard let bytes = expected[file.lastPathComponent] else { continue }
            XCTAssertEqual(Array(try Data(contentsOf: file)), bytes, file.lastPathComponent)
        }
    }

    func testEveryCorpusFileReplaysWithoutCrashing() throws {
        for file in try corpusFiles() {
            let name = file.lastPathComponent
            let bytes = Array(try Data(contentsOf: file))
            let decoded = replay(bytes)
            if !name.hasPrefix("crash-") {
                XCTAssertTrue(decoded, "seed \(name) no longer decodes")
            }
        }
    }

    /// Decodes and walks one input the way the fuzzer does; true if it decoded.
    private func replay(_ bytes: [UInt8]) -> Bool {
        guard let m = try? STUNDecoder.decode(byteBuffer(bytes)) else { return false }
        var walked = 0
        m.forEachAttribute { type, offset, length in
            walked += 1
            XCTAssertLessThanOrEqual(offset + 4 + length, m.length)
            _ = m.value(of: type)
            return true
        }
        XCTAssertLessThanOrEqual(walked, m.attributeCount)
        for type in [STUNAttributeType.xorMappedAddress, .mappedAddress, .otherAddress, .responseOrigin,
                     .alternateServer] {
            _ = m.address(of: type, xor: true)
            _ = m.address(of: type, xor: false)
        }
        _ = m.errorCode
        _ = STUNIntegrity.verify(m, key: .shortTerm(password: RFC5769.shortTermPassword))
        return true
    }
}
