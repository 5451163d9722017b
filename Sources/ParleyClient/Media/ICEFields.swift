import ParleyCrypto
import ParleyNAT
import ParleyWire

/// The ICE part of an offer or answer (docs/PROTOCOL.md §6.1): credentials (field 0x12) and candidates
/// (field 0x11, one per candidate).
public struct ICEFields: Sendable, Hashable {
    public var credentials: ICECredentials?
    public var candidates: [ICECandidate]

    public init(credentials: ICECredentials?, candidates: [ICECandidate]) {
        self.credentials = credentials
        self.candidates = candidates
    }

    /// As extension fields.
    public var fields: [CallField] {
        (credentials.map { [CallField(type: ICECredentials.fieldType, value: $0.encoded)] } ?? [])
            + candidates.map { CallField(type: ICECandidate.fieldType, value: $0.encoded) }
    }

    /// From an offer's or answer's extension fields (unparseable candidates are skipped, at most 32 kept).
    public init(_ fields: [CallField]) {
        credentials = fields.first { $0.type == ICECredentials.fieldType }.flatMap { ICECredentials(decoding: $0.value) }
        candidates = Array(
            fields.filter { $0.type == ICECandidate.fieldType }.compactMap { ICECandidate(decoding: $0.value) }.prefix(32))
    }

    /// From an offer or answer payload.
    public init(payload: [UInt8]) {
        if let answer = try? CallAnswer(decoding: payload) {
            self.init(answer.extensions)
        } else if let offer = try? CallOffer(decoding: payload) {
            self.init(offer.extensions)
        } else {
            self.init(credentials: nil, candidates: [])
        }
    }
}

/// Candidate payloads sent with `cand` (docs/PROTOCOL.md §5.1, §6.1): a reveal (0x01) or a trickled ICE
/// candidate (0x02).
public enum CallCandidatePayload: Sendable, Hashable {
    case reveal([UInt8])
    case ice(ICECandidate)

    public var encoded: [UInt8] {
        switch self {
        case .reveal(let key): [0x01] + key
        case .ice(let candidate): [0x02] + candidate.encoded
        }
    }

    public init?(decoding payload: [UInt8]) {
        switch payload.first {
        case 0x01 where payload.count == 33: self = .reveal(Array(payload.dropFirst()))
        case 0x02: guard let c = ICECandidate(decoding: Array(payload.dropFirst())) else { return nil }
            self = .ice(c)
        default: return nil
        }
    }
}
