import NIOCore
import ParleyCrypto
import ParleyNAT
import ParleyWire
import XCTest

@testable import ParleyClient

/// ICE credentials and candidates travel in the offer and answer (docs/PROTOCOL.md §6.1).
final class ICEFieldsTests: XCTestCase {
    func testOfferAndAnswerCarryCredentialsAndCandidates() throws {
        let candidates = [
            ICECandidate(type: .host, address: try SocketAddress(ipAddress: "10.0.1.2", port: 60142), base: 0),
            ICECandidate(type: .serverReflexive, address: try SocketAddress(ipAddress: "198.51.100.2", port: 60142)),
            ICECandidate(type: .relayed, address: STUNAddress(parsing: "203.0.113.10:57692")!.socketAddress(), base: 1),
        ]
        let fields = ICEFields(credentials: ICECredentials.random(), candidates: candidates)
        let offer = CallerHandshake(callID: "0f4b6c1e-8d2a-4c3b-9e5f-1a2b3c4d5e6f", extensions: fields.fields)
        let parsed = ICEFields(payload: offer.offer)
        XCTAssertEqual(parsed.credentials, fields.credentials)
        XCTAssertEqual(parsed.candidates.map(\.address), candidates.map(\.address))
        let callee = try CalleeHandshake(callID: offer.callID, offer: offer.offer, extensions: fields.fields)
        XCTAssertEqual(ICEFields(payload: callee.answer).candidates.map(\.type), [.host, .serverReflexive, .relayed])
    }
}
