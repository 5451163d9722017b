/// Frames from client to server (docs/PROTOCOL.md §3.2–§3.4).
public enum ClientFrame: Sendable, Hashable {
    /// A blank line / empty message.
    case keepalive
    case login(user: SignalName, device: SignalName, timestamp: UInt64, signature: SignalBlob)
    /// Cumulative acknowledgement of server events.
    case got(sseq: UInt64)
    case command(SignalCommand)
    /// Before login only: make an account or ask to join one (docs/PROTOCOL.md §3.8).
    case enrol(Enrolment)
}

/// A request made before login (docs/PROTOCOL.md §3.8).
public enum Enrolment: Sendable, Hashable {
    /// `register|<invite or ->|<device list>`: a new account whose first device list (version 1, one device,
    /// signed by the new user key) is given; the invite token (16 bytes) unless registration is open.
    case register(invite: SignalBlob?, list: SignalBlob)
    /// `link|<request id>|<user>|<device>|<bundle>`: a new device asks to join `user`'s account; the request
    /// (id: 16 lowercase hex digits, the link code's first 8 bytes) waits for a device holding the user key.
    /// The bundle is the 128 bytes after `parley1.`.
    case link(request: String, user: SignalName, device: SignalName, bundle: SignalBlob)

    /// Whether `text` is a request id: 16 lowercase hex digits.
    public static func isRequestID(_ text: some StringProtocol) -> Bool {
        text.utf8.count == 16 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }
}

/// Frames from server to client.
public enum ServerFrame: Sendable, Hashable {
    case keepalive
    case hello(version: UInt64, challenge: SignalBlob, serverTime: UInt64)
    case welcome(user: SignalName, device: SignalName, lastCSeq: UInt64, serverTime: UInt64)
    /// The command was processed; `result` are extra fields (e.g. for `keys`).
    case ack(cseq: UInt64, result: [String])
    /// The command was processed and refused.
    case nak(cseq: UInt64, code: NakCode, reason: String)
    case event(sseq: UInt64, timestamp: UInt64, event: SignalEvent)
    /// Fatal: the connection closes.
    case error(code: ErrorCode, reason: String)
    /// An enrolment succeeded: `registered|<user>` or `linking|<request id>`. The connection stays, awaiting login.
    case enrolled(kind: EnrolledKind, detail: String)
    /// An enrolment was refused; the connection stays, awaiting login (it may not enrol again).
    case refused(code: RefusalCode, reason: String)

    public enum EnrolledKind: String, Sendable, Hashable, CaseIterable {
        case registered, linking
    }

    public enum RefusalCode: String, Sendable, Hashable, CaseIterable {
        case registrationClosed = "registration-closed", inviteNeeded = "invite-needed", inviteUnknown = "invite-unknown"
        case inviteUsed = "invite-used", inviteExpired = "invite-expired", inviteOtherUser = "invite-other-user"
        case userExists = "user-exists", badList = "bad-list", unknownUser = "unknown-user", tooMany = "too-many"
        case unavailable
    }

    public enum NakCode: String, Sendable, Hashable, CaseIterable {
        case stale, unknownUser = "unknown-user", unknownCall = "unknown-call", notAllowed = "not-allowed"
        case answeredElsewhere = "answered-elsewhere", ended, quota, tooLarge = "too-large", badArgument = "bad-argument"
    }

    public enum ErrorCode: String, Sendable, Hashable, CaseIterable {
        case badLogin = "bad-login", stale, replay, timeout, notLoggedIn = "not-logged-in", tooLong = "too-long", protocolError = "protocol"
    }
}

/// Why a frame could not be parsed. Every failure after login that is not about the frame's shape is
/// a `nak`, decided by the server, not here.
public struct SignalParseError: Error, Sendable, Hashable, CustomStringConvertible {
    public let reason: String
    init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// Parses and formats frames. Total: every input line yields a frame or a ``SignalParseError``.
public enum SignalCodec {
    /// Longest reason phrase, in characters.
    public static let maxReason = 200

    /// Reason phrases are free text, but may not contain the separator or line breaks.
    static func cleanReason(_ s: String) -> String {
        String(s.map { $0 == "|" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" ? " " : $0 }.prefix(maxReason))
    }

    /// Splits a frame into fields on the `|` byte (§3.1). Splitting on Characters would let a combining
    /// mark glue a `|` to the next field; a peer that splits bytes must see the same fields. CR and LF
    /// are refused anywhere (the framer has already removed the terminator).
    static func fields(_ line: Substring) throws(SignalParseError) -> [Substring] {
        // One pass over the bytes: refuse CR/LF, cut at `|` (empty fields kept). Every signaling frame
        // the server reads goes through here.
        let u = line.utf8
        var result: [Substring] = []
        result.reserveCapacity(8)
        var start = u.startIndex
        var i = start
        while i != u.endIndex {
            let c = u[i]
            if c == UInt8(ascii: "|") {
                result.append(Substring(u[start..<i]))
                start = u.index(after: i)
            } else if c == UInt8(ascii: "\r") || c == UInt8(ascii: "\n") {
                throw SignalParseError("CR or LF inside a frame")
            }
            i = u.index(after: i)
        }
        result.append(Substring(u[start..<u.endIndex]))
        return result
    }

    static func reason(_ field: Substring) throws(SignalParseError) -> String {
        guard field.count <= maxReason else { throw SignalParseError("reason longer than \(maxReason) characters") }
        return String(field)
    }

    // MARK: Client frames

    public static func parseClient(_ line: Substring) throws(SignalParseError) -> ClientFrame {
        if line.isEmpty { return .keepalive }
        let f = try fields(line)
        switch f[0] {
        case "login":
            guard f.count == 5, let user = SignalName(f[1]), let device = SignalName(f[2]), let ts = SignalInt.parse(f[3]),
                let sig = SignalBlob(f[4], maxBytes: 64), sig.byteCount == 64
            else { throw SignalParseError("login: expected login|user|device|ts|signature") }
            return .login(user: user, device: device, timestamp: ts, signature: sig)
        case "got":
            guard f.count == 2, let sseq = SignalInt.parse(f[1]) else { throw SignalParseError("got: expected got|sseq") }
            return .got(sseq: sseq)
        case "register":
            guard f.count == 3, let list = SignalBlob(f[2]) else { throw SignalParseError("register: expected register|invite|list") }
            if f[1] == "-" { return .enrol(.register(invite: nil, list: list)) }
            guard let invite = SignalBlob(f[1], maxBytes: 16), invite.byteCount == 16 else {
                throw SignalParseError("register: the invite is 16 bytes of base64url, or -")
            }
            return .enrol(.register(invite: invite, list: list))
        case "link":
            guard f.count == 5, Enrolment.isRequestID(f[1]), let user = SignalName(f[2]), let device = SignalName(f[3]),
                let bundle = SignalBlob(f[4], maxBytes: 128), bundle.byteCount == 128
            else { throw SignalParseError("link: expected link|request id|user|device|bundle") }
            return .enrol(.link(request: String(f[1]), user: user, device: device, bundle: bundle))
        default:
            guard f.count >= 3 else { throw SignalParseError("unknown or short frame '\(f[0].prefix(16))'") }
            guard let cseq = SignalInt.parse(f[1]), cseq > 0 else { throw SignalParseError("bad cseq") }
            guard let ts = SignalInt.parse(f[2]) else { throw SignalParseError("bad timestamp") }
            let a = f.dropFirst(3)
            return .command(SignalCommand(cseq: cseq, timestamp: ts, verb: try parseVerb(f[0], Array(a))))
        }
    }

    static func parseVerb(_ verb: Substring, _ a: [Substring]) throws(SignalParseError) -> SignalCommand.Verb {
        func id(_ i: Int) throws(SignalParseError) -> SignalID {
            guard i < a.count, let v = SignalID(a[i]) else { throw SignalParseError("\(verb): bad id") }
            return v
        }
        func name(_ i: Int) throws(SignalParseError) -> SignalName {
            guard i < a.count, let v = SignalName(a[i]) else { throw SignalParseError("\(verb): bad name") }
            return v
        }
        func blob(_ i: Int) throws(SignalParseError) -> SignalBlob {
            guard i < a.count, let v = SignalBlob(a[i]) else { throw SignalParseError("\(verb): bad blob") }
            return v
        }
        func arity(_ n: ClosedRange<Int>) throws(SignalParseError) {
            guard n.contains(a.count) else { throw SignalParseError("\(verb): expected \(n.lowerBound) arguments") }
        }
        switch verb {
        case "keys":
            try arity(1...1)
            return .keys(user: try name(0))
        case "call":
            try arity(3...3)
            return .call(call: try id(0), callee: try name(1), offer: try blob(2))
        case "cancel":
            try arity(1...1)
            return .cancel(call: try id(0))
        case "prepare":
            try arity(2...2)
            return .prepare(call: try id(0), answer: try blob(1))
        case "cand":
            try arity(2...2)
            return .candidate(call: try id(0), candidate: try blob(1))
        case "accept":
            try arity(1...2)
            return .accept(call: try id(0), answer: a.count == 2 ? try blob(1) : nil)
        case "reject":
            try arity(1...1)
            return .reject(call: try id(0))
        case "busy":
            try arity(1...1)
            return .busy(call: try id(0))
        case "end":
            try arity(1...1)
            return .end(call: try id(0))
        case "lists":
            try arity(2...2)
            guard let since = SignalInt.parse(a[1]) else { throw SignalParseError("lists: bad version") }
            return .lists(user: try name(0), since: since)
        case "publish":
            try arity(1...1)
            return .publish(list: try blob(0))
        case "linkget":
            try arity(1...1)
            guard Enrolment.isRequestID(a[0]) else { throw SignalParseError("linkget: bad request id") }
            return .linkRequest(id: String(a[0]))
        case "msg":
            try arity(3...3)
            var copies: [SignalCommand.SealedCopy] = []
            var seen = Set<SignalName>()
            for item in a[2].split(separator: ",", omittingEmptySubsequences: false) {
                guard let eq = item.firstIndex(of: "="), let device = SignalName(item[..<eq]),
                    let ct = SignalBlob(item[item.index(after: eq)...], maxBytes: SignalCommand.maxSealedBytes),
                    seen.insert(device).inserted, copies.count < 64
                else { throw SignalParseError("msg: expected device=ciphertext,… (at most 64 distinct devices)") }
                copies.append(.init(device: device, ciphertext: ct))
            }
            return .message(id: try id(0), to: try name(1), sealed: copies)
        default:
            throw SignalParseError("unknown verb '\(verb.prefix(16))'")
        }
    }

    public static func format(_ frame: ClientFrame) -> String {
        switch frame {
        case .keepalive: return ""
        case .login(let u, let d, let ts, let sig): return "login|\(u)|\(d)|\(ts)|\(sig.text)"
        case .got(let sseq): return "got|\(sseq)"
        case .enrol(.register(let invite, let list)): return "register|\(invite?.text ?? "-")|\(list.text)"
        case .enrol(.link(let id, let user, let device, let bundle)): return "link|\(id)|\(user)|\(device)|\(bundle.text)"
        case .command(let c):
            let head = "\(c.verb.name)|\(c.cseq)|\(c.timestamp)"
            switch c.verb {
            case .keys(let u): return "\(head)|\(u)"
            case .call(let id, let callee, let offer): return "\(head)|\(id)|\(callee)|\(offer.text)"
            case .cancel(let id), .reject(let id), .busy(let id), .end(let id): return "\(head)|\(id)"
            case .prepare(let id, let b), .candidate(let id, let b): return "\(head)|\(id)|\(b.text)"
            case .accept(let id, let b): return b.map { "\(head)|\(id)|\($0.text)" } ?? "\(head)|\(id)"
            case .message(let id, let to, let sealed):
                return "\(head)|\(id)|\(to)|" + sealed.map { "\($0.device)=\($0.ciphertext.text)" }.joined(separator: ",")
            case .lists(let u, let since): return "\(head)|\(u)|\(since)"
            case .publish(let list): return "\(head)|\(list.text)"
            case .linkRequest(let id): return "\(head)|\(id)"
            }
        }
    }

    // MARK: Server frames

    public static func parseServer(_ line: Substring) throws(SignalParseError) -> ServerFrame {
        if line.isEmpty { return .keepalive }
        let f = try fields(line)
        switch f[0] {
        case "hello":
            guard f.count == 4, let v = SignalInt.parse(f[1]), let c = SignalBlob(f[2], maxBytes: 64),
                let t = SignalInt.parse(f[3])
            else { throw SignalParseError("hello: bad frame") }
            return .hello(version: v, challenge: c, serverTime: t)
        case "welcome":
            guard f.count == 5, let u = SignalName(f[1]), let d = SignalName(f[2]), let l = SignalInt.parse(f[3]),
                let t = SignalInt.parse(f[4])
            else { throw SignalParseError("welcome: bad frame") }
            return .welcome(user: u, device: d, lastCSeq: l, serverTime: t)
        case "ack":
            guard f.count >= 3, let c = SignalInt.parse(f[1]), f[2] == "ok" else { throw SignalParseError("ack: bad frame") }
            return .ack(cseq: c, result: f.dropFirst(3).map(String.init))
        case "nak":
            guard f.count == 4, let c = SignalInt.parse(f[1]), let code = ServerFrame.NakCode(rawValue: String(f[2])) else {
                throw SignalParseError("nak: bad frame")
            }
            return .nak(cseq: c, code: code, reason: try reason(f[3]))
        case "error":
            guard f.count == 3, let code = ServerFrame.ErrorCode(rawValue: String(f[1])) else {
                throw SignalParseError("error: bad frame")
            }
            return .error(code: code, reason: try reason(f[2]))
        case "enrolled":
            guard f.count == 3, let kind = ServerFrame.EnrolledKind(rawValue: String(f[1])) else {
                throw SignalParseError("enrolled: bad frame")
            }
            switch kind {
            case .registered: guard SignalName(f[2]) != nil else { throw SignalParseError("enrolled: bad user") }
            case .linking: guard Enrolment.isRequestID(f[2]) else { throw SignalParseError("enrolled: bad request id") }
            }
            return .enrolled(kind: kind, detail: String(f[2]))
        case "refused":
            guard f.count == 3, let code = ServerFrame.RefusalCode(rawValue: String(f[1])) else {
                throw SignalParseError("refused: bad frame")
            }
            return .refused(code: code, reason: try reason(f[2]))
        case "ev":
            guard f.count >= 4, let s = SignalInt.parse(f[1]), let t = SignalInt.parse(f[2]) else {
                throw SignalParseError("ev: bad frame")
            }
            return .event(sseq: s, timestamp: t, event: try parseEvent(f[3], Array(f.dropFirst(4))))
        default:
            throw SignalParseError("unknown server frame '\(f[0].prefix(16))'")
        }
    }

    static func parseEvent(_ kind: Substring, _ a: [Substring]) throws(SignalParseError) -> SignalEvent {
        let bad = SignalParseError("ev \(kind): bad fields")
        switch (kind, a.count) {
        case ("ring", 4):
            guard let c = SignalID(a[0]), let u = SignalName(a[1]), let d = SignalName(a[2]), let o = SignalBlob(a[3]) else { throw bad }
            return .ring(call: c, caller: u, callerDevice: d, offer: o)
        case ("answer", 3):
            guard let c = SignalID(a[0]), let d = SignalName(a[1]), let b = SignalBlob(a[2]) else { throw bad }
            return .answer(call: c, device: d, answer: b)
        case ("cand", 4):
            guard let c = SignalID(a[0]), let u = SignalName(a[1]), let d = SignalName(a[2]), let b = SignalBlob(a[3]) else { throw bad }
            return .candidate(call: c, user: u, device: d, candidate: b)
        case ("elsewhere", 2):
            guard let c = SignalID(a[0]), let d = SignalName(a[1]) else { throw bad }
            return .elsewhere(call: c, device: d)
        case ("ended", 2):
            guard let c = SignalID(a[0]), let r = SignalEvent.EndReason(rawValue: String(a[1])) else { throw bad }
            return .ended(call: c, reason: r)
        case ("merged", 2):
            guard let c = SignalID(a[0]), let i = SignalID(a[1]) else { throw bad }
            return .merged(call: c, into: i)
        case ("msg", 4):
            guard let m = SignalID(a[0]), let u = SignalName(a[1]), let d = SignalName(a[2]),
                let b = SignalBlob(a[3], maxBytes: SignalCommand.maxSealedBytes)
            else { throw bad }
            return .message(id: m, from: u, fromDevice: d, sealed: b)
        default:
            throw bad
        }
    }

    public static func format(_ frame: ServerFrame) -> String {
        switch frame {
        case .keepalive: return ""
        case .hello(let v, let c, let t): return "hello|\(v)|\(c.text)|\(t)"
        case .welcome(let u, let d, let l, let t): return "welcome|\(u)|\(d)|\(l)|\(t)"
        case .ack(let c, let result): return (["ack", "\(c)", "ok"] + result).joined(separator: "|")
        case .nak(let c, let code, let reason): return "nak|\(c)|\(code.rawValue)|\(cleanReason(reason))"
        case .error(let code, let reason): return "error|\(code.rawValue)|\(cleanReason(reason))"
        case .enrolled(let kind, let detail): return "enrolled|\(kind.rawValue)|\(detail)"
        case .refused(let code, let reason): return "refused|\(code.rawValue)|\(cleanReason(reason))"
        case .event(let s, let t, let e):
            let head = "ev|\(s)|\(t)|\(e.name)"
            switch e {
            case .ring(let c, let u, let d, let o): return "\(head)|\(c)|\(u)|\(d)|\(o.text)"
            case .answer(let c, let d, let b): return "\(head)|\(c)|\(d)|\(b.text)"
            case .candidate(let c, let u, let d, let b): return "\(head)|\(c)|\(u)|\(d)|\(b.text)"
            case .elsewhere(let c, let d): return "\(head)|\(c)|\(d)"
            case .ended(let c, let r): return "\(head)|\(c)|\(r.rawValue)"
            case .merged(let c, let i): return "\(head)|\(c)|\(i)"
            case .message(let m, let u, let d, let b): return "\(head)|\(m)|\(u)|\(d)|\(b.text)"
            }
        }
    }

    /// The exact bytes a device signs to log in (docs/PROTOCOL.md §3.2).
    public static func loginSigningInput(challenge: SignalBlob, user: SignalName, device: SignalName, timestamp: UInt64) -> [UInt8] {
        Array("parley-login-v1|\(challenge.text)|\(user)|\(device)|\(timestamp)".utf8)
    }
}
