import ParleyWire

/// One request of a ``TURNClient`` in flight: its bytes (resent unchanged, RFC 8489 §6.2.1), the key its
/// answer must verify with, and its retransmission timer.
struct TURNClientTransaction: Sendable {
    /// What the request is for; decides what its answer does.
    enum Purpose: Sendable, Hashable {
        case allocate
        /// LIFETIME 0 deletes the allocation (``TURNClient/close(now:)``).
        case refresh(lifetime: UInt32)
        /// Peer IPs (port 0), batched.
        case createPermission([STUNAddress])
        case channelBind(UInt16, peer: STUNAddress)

        var method: STUNMethod {
            switch self {
            case .allocate: .allocate
            case .refresh: .refresh
            case .createPermission: .createPermission
            case .channelBind: .channelBind
            }
        }
    }

    /// How requests are retransmitted (RFC 8489 §6.2.1 over UDP, §6.2.2 over streams).
    struct Retransmission: Sendable {
        /// Initial RTO, µs.
        var rto: UInt64
        /// Rc: sends in all.
        var maxTransmissions: Int
        /// Rm: the wait after the last send is `rto` × this.
        var lastWaitMultiplier: UInt64
        /// Streams: one send, then Ti.
        var reliable: Bool

        /// RFC 8489 §6.2.2: Ti = 39.5 s.
        static let streamTimeout: UInt64 = 39_500_000
    }

    let purpose: Purpose
    let bytes: [UInt8]
    /// The key the request was protected with; nil for the unauthenticated first Allocate.
    let key: STUNIntegrityKey?
    /// When the first copy was sent, µs. Lifetimes granted by the answer count from here: the server
    /// cannot have started them earlier.
    let started: UInt64
    /// Copies sent so far.
    private(set) var sends = 1
    /// Wait after the latest copy.
    private var interval: UInt64
    /// When the timer fires next: a resend, or after the last one, the timeout.
    private(set) var deadline: UInt64
    /// 438 answers this logical request has had (a retry after one is a new transaction that inherits it).
    let staleNonces: Int
    /// The nonce in this request came in a challenge to this very request (the 401 leg, or a 438): a 401
    /// now means the credentials are wrong, not that the nonce had been forgotten.
    let freshNonce: Bool

    init(purpose: Purpose, bytes: [UInt8], key: STUNIntegrityKey?, now: UInt64, retransmission r: Retransmission,
         staleNonces: Int, freshNonce: Bool) {
        self.purpose = purpose
        self.bytes = bytes
        self.key = key
        self.started = now
        self.staleNonces = staleNonces
        self.freshNonce = freshNonce
        if r.reliable {
            interval = Retransmission.streamTimeout
        } else {
            interval = r.maxTransmissions > 1 ? r.rto : r.rto * r.lastWaitMultiplier
        }
        deadline = now + interval
    }

    /// The timer fired at `now` (≥ ``deadline``): true if the request is to be sent again (the timer is
    /// rearmed), false if it has timed out.
    mutating func fire(now: UInt64, _ r: Retransmission) -> Bool {
        guard !r.reliable, sends < r.maxTransmissions else { return false }
        sends += 1
        interval = sends == r.maxTransmissions ? r.rto * r.lastWaitMultiplier : interval * 2
        deadline = now + interval
        return true
    }
}
