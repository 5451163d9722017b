import Foundation
import ParleyWire
import XCTest

/// The signaling line codec against docs/PROTOCOL.md §3: every frame kind round trips, the §3.7
/// transcript parses, and frames that break §3.1's field rules are refused.
final class SignalCodecTests: XCTestCase {
    // MARK: Fixtures

    static let callID = SignalID("7c9e6679-7425-40de-944b-e07fc1f90ae7")!
    static let messageID = SignalID("0f8fad5b-d9cb-469f-a165-70867728950e")!
    static func n(_ text: String) -> SignalName { SignalName(text)! }
    /// A blob of `count` bytes.
    static func b(_ count: Int, seed: Int = 1) -> SignalBlob {
        SignalBlob(bytes: (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ seed) })
    }
    static func command(_ verb: SignalCommand.Verb, cseq: UInt64 = 42, ts: UInt64 = 1_795_435_201_000) -> ClientFrame {
        .command(SignalCommand(cseq: cseq, timestamp: ts, verb: verb))
    }
    static func copies(_ count: Int) -> [SignalCommand.SealedCopy] {
        (0..<count).map { .init(device: n("d\($0)"), ciphertext: b(16 + $0, seed: $0)) }
    }

    static let clientFrames: [ClientFrame] = {
        let id = callID
        return [
            .keepalive,
            .login(user: n("alice"), device: n("phone"), timestamp: 1_795_435_200_123, signature: b(64)),
            .got(sseq: 0), .got(sseq: 999_999_999_999_999_999),
            command(.keys(user: n("bob"))),
            command(.call(call: id, callee: n("bob"), offer: b(300)), cseq: 999_999_999_999_999_999),
            command(.call(call: id, callee: n("b.o_b-9"), offer: b(0))),
            command(.cancel(call: id)), command(.prepare(call: id, answer: b(200))),
            command(.candidate(call: id, candidate: b(41))),
            command(.accept(call: id, answer: nil)), command(.accept(call: id, answer: b(16 * 1024))),
            command(.reject(call: id)), command(.busy(call: id)), command(.end(call: id)),
            command(.message(id: messageID, to: n("bob"), sealed: copies(1))),
            command(.message(id: messageID, to: n("bob"), sealed: copies(64))),
            command(
                .message(id: messageID, to: n("bob"), sealed: [.init(device: n("phone"), ciphertext: b(64 * 1024))])),
        ]
    }()

    static let serverFrames: [ServerFrame] = {
        let id = callID
        let alice = n("alice")
        let phone = n("phone")
        var frames: [ServerFrame] = [
            .keepalive,
            .hello(version: 1, challenge: b(32), serverTime: 1_795_435_200_000),
            .welcome(user: alice, device: phone, lastCSeq: 0, serverTime: 1_795_435_200_125),
            .ack(cseq: 42, result: []),
            .ack(cseq: 7, result: ["bob", "laptop=parley1.AAAA,phone=parley1.BBBB"]),
        ]
        frames += ServerFrame.NakCode.allCases.map { .nak(cseq: 9, code: $0, reason: "because \($0.rawValue)") }
        frames += ServerFrame.ErrorCode.allCases.map { .error(code: $0, reason: "fatal: \($0.rawValue)") }
        let events: [SignalEvent] =
            [
                .ring(call: id, caller: alice, callerDevice: phone, offer: b(500)),
                .answer(call: id, device: n("laptop"), answer: b(400)),
                .candidate(call: id, user: n("bob"), device: n("laptop"), candidate: b(60)),
                .elsewhere(call: id, device: n("laptop")),
                .merged(call: id, into: messageID),
                .message(id: messageID, from: alice, fromDevice: phone, sealed: b(64 * 1024)),
            ] + SignalEvent.EndReason.allCases.map { .ended(call: id, reason: $0) }
        frames += events.enumerated().map {
            .event(sseq: UInt64($0.offset + 1), timestamp: 1_795_435_204_001, event: $0.element)
        }
        return frames
    }()

    private func client(_ line: String) -> ClientFrame? { try? SignalCodec.parseClient(line[...]) }
    private func server(_ line: String) -> ServerFrame? { try? SignalCodec.parseServer(line[...]) }

    private func assertClientRejects(_ lines: [String], file: StaticString = #filePath, line: UInt = #line) {
        for text in lines { XCTAssertNil(client(text), "accepted \(text.prefix(100))", file: file, line: line) }
    }

    private func assertServerRejects(_ lines: [String], file: StaticString = #filePath, line: UInt = #line) {
        for text in lines { XCTAssertNil(server(text), "accepted \(text.prefix(100))", file: file, line: line) }
    }

    // MARK: Round trips

    func testEveryClientFrameRoundTrips() throws {
        for frame in Self.clientFrames {
            let line = SignalCodec.format(frame)
            XCTAssertEqual(try SignalCodec.parseClient(line[...]), frame, String(line.prefix(100)))
            XCTAssertEqual(SignalCodec.format(try SignalCodec.parseClient(line[...])), line)
        }
        let verbs = Set(Self.clientFrames.compactMap { if case .command(let c) = $0 { c.verb.name } else { nil } })
        XCTAssertEqual(verbs, ["keys", "call", "cancel", "prepare", "cand", "accept", "reject", "busy", "end", "msg"])
    }

    func testEveryServerFrameRoundTrips() throws {
        for frame in Self.serverFrames {
            let line = SignalCodec.format(frame)
            XCTAssertEqual(try SignalCodec.parseServer(line[...]), frame, String(line.prefix(100)))
            XCTAssertEqual(SignalCodec.format(try SignalCodec.parseServer(line[...])), line)
        }
        let kinds = Set(Self.serverFrames.compactMap { if case .event(_, _, let e) = $0 { e.name } else { nil } })
        XCTAssertEqual(kinds, ["ring", "answer", "cand", "elsewhere", "ended", "merged", "msg"])
    }

    // MARK: §3.7 transcript

    /// The §3.7 example. Its blobs are illustrative and end in "…", which is not base64url; in this copy
    /// each is made valid: the ellipsis dropped where the rest already is (`b2ZmZXI` = "offer",
    /// `Y2FuZDE`, `YW5zd2Vy`, `Y2FuZDI`), and the challenge and signature filled with `A` to 32 and 64
    /// bytes (the doc's `MEUCIQ…` looks like a DER ECDSA signature; a login carries 64 raw Ed25519 bytes).
    static let transcriptFixes = [
        "q8Xr…": "q8Xr" + String(repeating: "A", count: 39),
        "MEUCIQ…": "MEUCIQ" + String(repeating: "A", count: 80),
        "b2ZmZXI…": "b2ZmZXI", "Y2FuZDE…": "Y2FuZDE", "YW5zd2Vy…": "YW5zd2Vy", "Y2FuZDI…": "Y2FuZDI",
    ]

    /// Lines of the §3.7 code block from docs/PROTOCOL.md, with ``transcriptFixes`` applied; nil if the
    /// doc is not next to the sources.
    private func transcriptFromDoc() throws -> [String]? {
        let doc = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "../../docs/PROTOCOL.md")
        guard let text = try? String(contentsOf: doc, encoding: .utf8) else { return nil }
        let section = try XCTUnwrap(text.components(separatedBy: "### 3.7").dropFirst().first)
        let block = try XCTUnwrap(section.components(separatedBy: "```").dropFirst().first)
        return block.split(separator: "\n").map { line in
            Self.transcriptFixes.reduce(String(line)) { $0.replacingOccurrences(of: $1.key, with: $1.value) }
        }
    }

    func testProtocolTranscriptParses() throws {
        guard let lines = try transcriptFromDoc() else { throw XCTSkip("docs/PROTOCOL.md not found") }
        var client = 0
        var server = 0
        var events: [String] = []
        for line in lines where line.contains(":") && !line.contains("media flows") {
            let colon = line.firstIndex(of: ":")!
            let who = line[..<colon]
            let frame = String(line[line.index(after: colon)...].drop { $0 == " " })
            if who.hasPrefix("S→") {
                let parsed = try SignalCodec.parseServer(frame[...])
                XCTAssertEqual(SignalCodec.format(parsed), frame)
                if case .event(_, _, let e) = parsed { events.append(e.name) }
                server += 1
            } else {
                XCTAssertTrue(who.hasSuffix("→S"), String(who))
                XCTAssertEqual(SignalCodec.format(try SignalCodec.parseClient(frame[...])), frame)
                client += 1
            }
        }
        XCTAssertEqual(client, 13)
        XCTAssertEqual(server, 15)
        XCTAssertEqual(events, ["ring", "ring", "answer", "cand", "cand", "elsewhere", "ended"])
    }

    func testTranscriptLoginVerifiesAgainstItsSigningInput() throws {
        let challenge = try XCTUnwrap(SignalBlob(Self.transcriptFixes["q8Xr…"]!, maxBytes: 32))
        XCTAssertEqual(challenge.byteCount, 32)
        let input = SignalCodec.loginSigningInput(
            challenge: challenge, user: Self.n("alice"), device: Self.n("phone"),
            timestamp: 1_795_435_200_123)
        XCTAssertEqual(
            String(decoding: input, as: UTF8.self), "parley-login-v1|\(challenge.text)|alice|phone|1795435200123")
    }

    // MARK: Field kinds (§3.1)

    func testNames() {
        let long = String(repeating: "a", count: 33)
        for bad in [
            "Alice", "ALICE", "bOb", long, ".alice", "-alice", "_alice", "", "al ice", "alicé", "al/ice", "al\rice",
        ] {
            assertClientRejects([
                "keys|1|2|\(bad)", "login|\(bad)|phone|1|\(Self.b(64).text)",
                "login|alice|\(bad)|1|\(Self.b(64).text)",
            ])
            assertServerRejects(["welcome|\(bad)|phone|0|1", "ev|1|2|elsewhere|\(Self.callID)|\(bad)"])
        }
        for good in ["a", "0", String(repeating: "z", count: 32), "a.b_c-d", "9lives", "a."] {
            XCTAssertEqual(client("keys|1|2|\(good)"), Self.command(.keys(user: Self.n(good)), cseq: 1, ts: 2))
        }
    }

    func testBase64URL() {
        let id = Self.callID
        // Non-canonical (bits set past the data), padded, standard alphabet, impossible length, other bytes.
        for bad in ["QB", "QUJ", "QR", "QQ==", "QUI=", "QQ=", "ab+c", "ab/c", "QUJDR", "Q", "QU J", "QUI\r", "ÄÄ"] {
            assertClientRejects([
                "call|1|2|\(id)|bob|\(bad)", "prepare|1|2|\(id)|\(bad)", "cand|1|2|\(id)|\(bad)",
                "accept|1|2|\(id)|\(bad)", "msg|1|2|\(id)|bob|phone=\(bad)",
            ])
            assertServerRejects(["ev|1|2|answer|\(id)|laptop|\(bad)", "hello|1|\(bad)|1"])
        }
        for good in ["", "QQ", "QUI", "QUJD", "-_-_", "AAA"] {
            XCTAssertNotNil(client("cand|1|2|\(id)|\(good)"), good)
        }
    }

    func testBlobLimits() {
        let id = Self.callID
        let max = Self.b(16 * 1024).text
        let over = Self.b(16 * 1024 + 1).text
        XCTAssertNotNil(client("call|1|2|\(id)|bob|\(max)"))
        assertClientRejects([
            "call|1|2|\(id)|bob|\(over)", "prepare|1|2|\(id)|\(over)", "cand|1|2|\(id)|\(over)",
            "accept|1|2|\(id)|\(over)",
        ])
        assertServerRejects(["ev|1|2|ring|\(id)|alice|phone|\(over)", "ev|1|2|answer|\(id)|laptop|\(over)"])
        // A sealed copy may be 64 KiB.
        XCTAssertNotNil(client("msg|1|2|\(id)|bob|phone=\(Self.b(64 * 1024).text)"))
        assertClientRejects(["msg|1|2|\(id)|bob|phone=\(Self.b(64 * 1024 + 1).text)"])
        assertServerRejects(["ev|1|2|msg|\(id)|alice|phone|\(Self.b(64 * 1024 + 1).text)"])
        // The login signature is exactly 64 bytes; the hello challenge at most 64.
        for size in [0, 32, 63, 65] { assertClientRejects(["login|alice|phone|1|\(Self.b(size).text)"]) }
        assertServerRejects(["hello|1|\(Self.b(65).text)|1"])
    }

    func testIDs() {
        let u = Self.callID.text
        let ids = [
            u.uppercased(), u.replacingOccurrences(of: "6679-", with: "6679"), String(u.dropLast()), u + "7", "{\(u)}",
            u.replacingOccurrences(of: "944b-", with: "944b_"), u.replacingOccurrences(of: "944b", with: "944g"),
            u.replacingOccurrences(of: "7c9e6679-7", with: "7c9e667-97"), "", "call",
        ]
        for bad in ids {
            assertClientRejects(["cancel|1|2|\(bad)", "end|1|2|\(bad)", "msg|1|2|\(bad)|bob|phone=QQ"])
            assertServerRejects(["ev|1|2|ended|\(bad)|hangup", "ev|1|2|merged|\(Self.callID)|\(bad)"])
        }
    }

    func testIntegers() {
        let nineteen = "1234567890123456789"
        let eighteen = "999999999999999999"
        let ints = ["01", "00", "007", nineteen, "18446744073709551615", "+1", "-1", "1.0", " 1", "1 ", "", "１", "0x1"]
        for bad in ints {
            assertClientRejects([
                "keys|\(bad)|2|bob", "keys|1|\(bad)|bob", "got|\(bad)", "login|alice|phone|\(bad)|\(Self.b(64).text)",
            ])
            assertServerRejects([
                "ack|\(bad)|ok", "ev|\(bad)|1|elsewhere|\(Self.callID)|laptop", "welcome|a|b|\(bad)|1",
                "hello|\(bad)|\(Self.b(32).text)|1",
            ])
        }
        let big: UInt64 = 999_999_999_999_999_999
        XCTAssertEqual(
            client("keys|\(eighteen)|\(eighteen)|bob"), Self.command(.keys(user: Self.n("bob")), cseq: big, ts: big))
        XCTAssertEqual(client("got|0"), .got(sseq: 0))
        // cseq numbers commands from 1.
        assertClientRejects(["keys|0|2|bob", "end|0|2|\(Self.callID)"])
    }

    // MARK: Frame shape

    func testWrongArityForEveryVerb() {
        let id = Self.callID
        let blob = "QUJD"
        let valid = [
            "keys|1|2|bob", "call|1|2|\(id)|bob|\(blob)", "cancel|1|2|\(id)", "prepare|1|2|\(id)|\(blob)",
            "cand|1|2|\(id)|\(blob)", "accept|1|2|\(id)", "reject|1|2|\(id)", "busy|1|2|\(id)", "end|1|2|\(id)",
            "msg|1|2|\(id)|bob|phone=\(blob)", "login|alice|phone|1|\(Self.b(64).text)", "got|1",
        ]
        for line in valid {
            XCTAssertNotNil(client(line), line)
            let fields = line.split(separator: "|", omittingEmptySubsequences: false)
            assertClientRejects([fields.dropLast().joined(separator: "|")])
            // One more field of the last one's kind (accept's optional answer is the exception below).
            if !line.hasPrefix("accept") { assertClientRejects([line + "|" + fields.last!]) }
        }
        // accept takes one or two arguments, never three.
        XCTAssertNotNil(client("accept|1|2|\(id)|\(blob)"))
        assertClientRejects(["accept|1|2|\(id)|\(blob)|\(blob)"])
        let validServer = [
            "hello|1|\(Self.b(32).text)|5", "welcome|alice|phone|0|5", "nak|1|stale|late", "error|replay|again",
            "ev|1|2|ring|\(id)|alice|phone|\(blob)", "ev|1|2|answer|\(id)|laptop|\(blob)",
            "ev|1|2|cand|\(id)|bob|laptop|\(blob)", "ev|1|2|elsewhere|\(id)|laptop", "ev|1|2|ended|\(id)|busy",
            "ev|1|2|merged|\(id)|\(id)", "ev|1|2|msg|\(id)|alice|phone|\(blob)",
        ]
        for line in validServer {
            XCTAssertNotNil(server(line), line)
            let fields = line.split(separator: "|", omittingEmptySubsequences: false)
            assertServerRejects([
                fields.dropLast().joined(separator: "|"), line + "|" + (fields.last.map(String.init) ?? ""),
            ])
        }
        assertServerRejects(["ack|1", "ack|1|OK", "ack|1|okay", "ev|1|2", "ev|1|2|ended|\(id)|hungup"])
    }

    func testUnknownVerbs() {
        assertClientRejects([
            "dial|1|2|bob", "KEYS|1|2|bob", "Keys|1|2|bob", "keys |1|2|bob", "hello|1|2|x", "ack|1|ok",
            "ev|1|2|ring", "error|protocol|x", "welcome|a|b|1|2", "LOGIN|alice|phone|1|\(Self.b(64).text)",
            "x", "got",
        ])
        assertServerRejects([
            "got|1", "pong", "login|alice|phone|1|\(Self.b(64).text)", "keys|1|2|bob",
            "ev|1|2|ringing|\(Self.callID)|alice|phone|QQ", "nak|1|stale-ish|x", "error|fatal|x",
        ])
    }

    func testSeparatorCountErrors() {
        let id = Self.callID
        assertClientRejects([
            "|", "||", "|keys|1|2|bob", "keys||1|2|bob", "keys|1||2|bob", "keys|1|2||bob", "keys|1|2|bob|",
            "keys|1|2|bob||", "got|", "got||1", "got|1|", "cancel|1|2|\(id)|", "accept|1|2|\(id)||",
            "login|alice|phone|1|\(Self.b(64).text)|", "login||alice|phone|1|\(Self.b(64).text)",
            "msg|1|2|\(id)|bob|phone=QQ|",
        ])
        assertServerRejects([
            "hello|1|\(Self.b(32).text)|5|", "nak|1|stale|a|b", "error|replay|a|b", "ev|1|2|ended|\(id)|busy|",
        ])
    }

    func testMessageCopies() {
        let id = Self.callID
        let many = (0..<65).map { "d\($0)=QQ" }.joined(separator: ",")
        XCTAssertNotNil(client("msg|1|2|\(id)|bob|" + (0..<64).map { "d\($0)=QQ" }.joined(separator: ",")))
        assertClientRejects([
            "msg|1|2|\(id)|bob|phone=QQ,phone=QUI", "msg|1|2|\(id)|bob|a=QQ,b=QQ,a=QQ",
            "msg|1|2|\(id)|bob|\(many)", "msg|1|2|\(id)|bob|", "msg|1|2|\(id)|bob|phone",
            "msg|1|2|\(id)|bob|=QQ", "msg|1|2|\(id)|bob|phone=QQ,", "msg|1|2|\(id)|bob|,phone=QQ",
            "msg|1|2|\(id)|bob|Phone=QQ", "msg|1|2|\(id)|bob|phone=QQ=", "msg|1|2|\(id)|Bob|phone=QQ",
        ])
    }

    // MARK: Fuzz corpus

    /// Replays Tests/ParleyWireTests/SignalCorpus (read from the source tree, not a bundled resource) with
    /// the fuzzer's property: every line either fails to parse or formats to a line that parses back to
    /// the same frame.
    func testSignalCorpusReplays() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("SignalCorpus")
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir.path) else {
            throw XCTSkip("SignalCorpus not found next to the test sources")
        }
        var parsed = 0
        for name in names.sorted() where !name.hasPrefix(".") {
            let bytes = try Data(contentsOf: dir.appendingPathComponent(name))
            for raw in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
                let body = raw.last == UInt8(ascii: "\r") ? raw.dropLast() : raw
                let line = String(decoding: body, as: UTF8.self)
                if let frame = client(line) {
                    XCTAssertEqual(client(SignalCodec.format(frame)), frame, name)
                    parsed += 1
                }
                if let frame = server(line) {
                    XCTAssertEqual(server(SignalCodec.format(frame)), frame, name)
                    parsed += 1
                }
            }
        }
        XCTAssertGreaterThan(parsed, 30)
    }

    // MARK: Codec bugs the fuzzer found (inputs kept in SignalCorpus/crash-*), fixed

    /// §3.1 "no field may contain `|`, CR or LF" — also the free text of `ack`, `nak` and `error`.
    func testCarriageReturnIsRefusedEvenInServerFreeText() throws {
        for line in ["ack|7|ok|\r7", "nak|42|stale|a\rb", "error|protocol|a\rb"] {
            XCTAssertNil(server(line), line.debugDescription)
        }
    }

    /// A reason that parses formats back to itself: reasons are at most 200 characters both ways.
    func testReasonLimitIsTheSameForParseAndFormat() throws {
        XCTAssertNil(server("nak|42|stale|" + String(repeating: "x", count: 201)))
        XCTAssertNil(server("error|protocol|" + String(repeating: "y", count: 300)))
        let line = "nak|42|stale|" + String(repeating: "x", count: 200)
        XCTAssertEqual(SignalCodec.format(try XCTUnwrap(server(line))), line)
    }

    /// Fields are separated by the `|` byte; a combining mark after it starts the next field rather than
    /// gluing the two together.
    func testCombiningMarkAfterSeparatorStartsANewField() throws {
        XCTAssertNil(server("nak|1|stale|a|\u{301}b"), "five fields: not a nak")
        XCTAssertNil(server("error|protocol|a|\u{301}b"), "four fields: not an error")
        let ack = try XCTUnwrap(server("ack|1|ok|x|\u{301}y"))
        XCTAssertEqual(ack, .ack(cseq: 1, result: ["x", "\u{301}y"]))
        XCTAssertEqual(SignalCodec.format(ack), "ack|1|ok|x|\u{301}y")
        assertClientRejects(["keys|1|2|bob|\u{301}x", "keys|1|2\u{301}|bob", "got|\u{301}1"])
    }
}

/// The frames of docs/PROTOCOL.md §3.8: enrolment before login, the list verbs, the enrolment answers.
final class IdentityFramesTests: XCTestCase {
    func testEveryNewFrameRoundTripsAndTheCorpusSeedsParse() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("SignalCorpus")
        for name in ["client-register.txt", "client-link.txt", "client-identity-verbs.txt"] {
            let text = try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
            for line in text.split(separator: "\n") {
                let frame = try SignalCodec.parseClient(line)
                XCTAssertEqual(SignalCodec.format(frame), String(line), name)
            }
        }
        let text = try String(contentsOf: dir.appendingPathComponent("server-enrolment.txt"), encoding: .utf8)
        for line in text.split(separator: "\n") {
            let frame = try SignalCodec.parseServer(line)
            XCTAssertEqual(SignalCodec.format(frame), String(line))
        }
    }

    func testMalformedIdentityFramesAreRefused() {
        let bundle = SignalBlob(bytes: [UInt8](repeating: 3, count: 128)).text
        for line in [
            "register|-", "register|x|AAAA", "register|AAAAAAAAAAAAAAAAAAAAAAAA|AAAA", "link|0011|alice|laptop|\(bundle)",
            "link|0011223344556677|Alice|laptop|\(bundle)", "link|0011223344556677|alice|laptop|AAAA",
            "lists|1|1|alice", "lists|1|1|alice|01", "publish|1|1", "linkget|1|1|XYZ",
        ] {
            XCTAssertThrowsError(try SignalCodec.parseClient(Substring(line)), line)
        }
        for line in ["enrolled|registered|Alice", "enrolled|linking|xyz", "enrolled|other|a", "refused|nope|x", "refused|invite-used"] {
            XCTAssertThrowsError(try SignalCodec.parseServer(Substring(line)), line)
        }
    }
}
