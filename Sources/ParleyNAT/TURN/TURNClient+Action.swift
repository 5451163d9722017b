import ParleyWire

extension TURNClient {
    /// What the I/O layer does after a call into the client. Actions come back in the order to perform them.
    public enum Action: Sendable, Hashable {
        /// Send these bytes to the server over the one transport (a STUN message or ChannelData).
        case send([UInt8])
        /// The allocation exists: its relayed transport address (XOR-RELAYED-ADDRESS), the address the
        /// server saw us at (XOR-MAPPED-ADDRESS, a server-reflexive candidate for free; nil if the server
        /// left it out) and the lifetime the server granted, seconds.
        case allocated(relayed: STUNAddress, mapped: STUNAddress?, lifetime: UInt32)
        /// A Refresh succeeded; the allocation now lasts this many seconds from when it was sent.
        case refreshed(lifetime: UInt32)
        /// Data from a peer, by Data indication or ChannelData.
        case data([UInt8], from: STUNAddress)
        /// The permission for this peer IP (port 0) is installed. Said once; refreshes are silent.
        case permissionCreated(STUNAddress)
        /// A CreatePermission for this peer IP (port 0) failed; the client stops asking for it.
        case permissionFailed(STUNAddress, TURNClientError)
        /// The channel to this peer (address and port) is bound: data to it now goes as ChannelData.
        /// Said once; refreshes are silent.
        case channelBound(STUNAddress, channel: UInt16)
        /// A ChannelBind for this peer failed; data to it goes by Send indication again.
        case channelFailed(STUNAddress, TURNClientError)
        /// The allocation could not be made or was lost. The client is finished: every call returns nothing.
        case failed(TURNClientError)
        /// ``TURNClient/close(now:)`` is complete (the server deleted the allocation, or did not answer).
        /// The client is finished.
        case closed
    }
}

/// Why a TURN client transaction or allocation failed: a code to act on and a diagnostic to log. Equal by
/// code, so tests and callers match on what happened rather than on wording.
public struct TURNClientError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: Sendable, Hashable {
        /// No answer after every retransmission (RFC 8489 §6.2.1).
        case timeout
        /// 401 to a request carrying credentials fresh from a challenge: wrong username or password, or an
        /// expired TURN REST username.
        case unauthenticated
        /// Any other error response, with its code (RFC 8489 §14.8; 437, 441, 442, 486, 508…).
        case errorResponse(Int)
        /// 438 again and again: the server's nonces go stale faster than we can use them.
        case staleNonce
        /// A challenge named another realm after the keys were derived (the password is no longer held).
        case realmChanged
        /// The server's PASSWORD-ALGORITHMS names neither MD5 nor (allowed) SHA-256, or a challenge lacks
        /// REALM or NONCE.
        case badChallenge
        /// A success response without what it must carry (XOR-RELAYED-ADDRESS for Allocate).
        case malformedResponse
        /// The allocation reached its lifetime without a successful Refresh.
        case expired
    }

    public let code: Code
    private let detail: String

    private init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    static func timeout(_ method: STUNMethod) -> TURNClientError {
        TURNClientError(.timeout, "\(method): no answer from the server")
    }
    static func unauthenticated(_ method: STUNMethod) -> TURNClientError {
        TURNClientError(.unauthenticated, "\(method): 401 with fresh credentials (wrong username or password?)")
    }
    static func errorResponse(_ method: STUNMethod, code: Int, reason: String) -> TURNClientError {
        TURNClientError(.errorResponse(code), "\(method): error \(code)\(reason.isEmpty ? "" : " " + reason)")
    }
    static func staleNonce(_ method: STUNMethod) -> TURNClientError {
        TURNClientError(.staleNonce, "\(method): 438 Stale Nonce after every retry")
    }
    static func realmChanged(from old: String, to new: String) -> TURNClientError {
        TURNClientError(.realmChanged, "the server's realm changed from \(old) to \(new)")
    }
    static func badChallenge(_ why: String) -> TURNClientError {
        TURNClientError(.badChallenge, why)
    }
    static func malformedResponse(_ method: STUNMethod, _ why: String) -> TURNClientError {
        TURNClientError(.malformedResponse, "\(method): \(why)")
    }
    static let expired = TURNClientError(.expired, "the allocation expired before a Refresh succeeded")

    public static func == (a: TURNClientError, b: TURNClientError) -> Bool { a.code == b.code }
    public func hash(into h: inout Hasher) { h.combine(code) }
    public var description: String { detail }
}
