/// The STUN attributes of ICE connectivity checks (RFC 8445 §16.1).
extension STUNAttributeType {
    /// PRIORITY: the priority a peer-reflexive candidate learned from this check would get (32 bits).
    public static let priority = STUNAttributeType(rawValue: 0x0024)
    /// USE-CANDIDATE: the controlling agent nominates this pair (empty).
    public static let useCandidate = STUNAttributeType(rawValue: 0x0025)
    /// ICE-CONTROLLED: the sender is the controlled agent; its 64-bit tie-breaker.
    public static let iceControlled = STUNAttributeType(rawValue: 0x8029)
    /// ICE-CONTROLLING: the sender is the controlling agent; its 64-bit tie-breaker.
    public static let iceControlling = STUNAttributeType(rawValue: 0x802A)
}
