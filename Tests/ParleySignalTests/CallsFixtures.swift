@testable import ParleySignal
import ParleyWire
import XCTest

/// The base of the call tests: names, ids, blobs, a driver with a manual clock, and builders for the
/// exact actions the tests expect. Everything is scoped here so it cannot clash with other test files.
class CallsTestCase: XCTestCase {
    static func user(_ text: String) -> SignalName { SignalName(text)! }

    static func party(_ user: String, _ device: String) -> CallParty {
        CallParty(user: SignalName(user)!, device: SignalName(device)!)
    }

    /// A deterministic call id: `00000000-0000-4000-8000-` followed by `n` in 12 decimal digits.
    static func callID(_ n: Int) -> SignalID {
        let digits = String(n)
        return SignalID("00000000-0000-4000-8000-" + String(repeating: "0", count: 12 - digits.count) + digits)!
    }

    /// A blob whose bytes are the UTF-8 of `text` (offers, answers and candidates are opaque to the server).
    static func blob(_ text: String) -> SignalBlob { SignalBlob(bytes: Array(text.utf8)) }

    static let offer = blob("offer-from-alice")

    let alice = CallsTestCase.user("alice")
    let bob = CallsTestCase.user("bob")
    let alicePhone = CallsTestCase.party("alice", "phone")
    let aliceLaptop = CallsTestCase.party("alice", "laptop")
    let bobLaptop = CallsTestCase.party("bob", "laptop")
    let bobPhone = CallsTestCase.party("bob", "phone")
    let bobTablet = CallsTestCase.party("bob", "tablet")
    let carolPhone = CallsTestCase.party("carol", "phone")
    let x = CallsTestCase.callID(1)
    let y = CallsTestCase.callID(2)
    let offer = CallsTestCase.offer

    func blob(_ text: String) -> SignalBlob { Self.blob(text) }
    func callID(_ n: Int) -> SignalID { Self.callID(n) }

    /// Drives a ``CallBook`` with a manual clock (ms). Nothing sleeps; time moves only when a test says so.
    struct Driver {
        var book: CallBook
        var now: UInt64 = 1_000_000

        init(_ configuration: CallBookConfiguration = CallBookConfiguration()) {
            book = CallBook(configuration: configuration)
        }

        var ringTimeout: UInt64 { book.configuration.ringTimeout }
        var grace: UInt64 { book.configuration.disconnectGrace }

        mutating func handle(_ event: CallBookEvent) -> [CallAction] { book.handle(event, now: now) }

        mutating func send(_ command: CallCommand, from party: CallParty) -> [CallAction] {
            handle(.command(command, from: party))
        }

        mutating func call(_ id: SignalID, from caller: CallParty, to callee: String,
                           offer: SignalBlob = CallsTestCase.offer, online: [String]) -> [CallAction] {
            let devices = online.map { SignalName($0)! }
            let callee = CallsTestCase.user(callee)
            return send(.call(id, callee: callee, offer: offer, onlineDevices: devices), from: caller)
        }

        mutating func cancel(_ id: SignalID, from party: CallParty) -> [CallAction] { send(.cancel(id), from: party) }
        mutating func prepare(_ id: SignalID, _ answer: SignalBlob, from party: CallParty) -> [CallAction] {
            send(.prepare(id, answer: answer), from: party)
        }
        mutating func cand(_ id: SignalID, _ candidate: SignalBlob, from party: CallParty) -> [CallAction] {
            send(.candidate(id, candidate: candidate), from: party)
        }
        mutating func accept(_ id: SignalID, _ answer: SignalBlob? = nil, from party: CallParty) -> [CallAction] {
            send(.accept(id, answer: answer), from: party)
        }
        mutating func reject(_ id: SignalID, from party: CallParty) -> [CallAction] { send(.reject(id), from: party) }
        mutating func busy(_ id: SignalID, from party: CallParty) -> [CallAction] { send(.busy(id), from: party) }
        mutating func end(_ id: SignalID, from party: CallParty) -> [CallAction] { send(.end(id), from: party) }

        mutating func disconnect(_ party: CallParty) -> [CallAction] { handle(.deviceDisconnected(party)) }
        mutating func reconnect(_ party: CallParty) -> [CallAction] { handle(.deviceReconnected(party)) }

        /// Moves the clock to `time` and fires the timer there.
        mutating func fire(at time: UInt64) -> [CallAction] {
            precondition(time >= now, "the clock never goes back")
            now = time
            return handle(.timerFired)
        }

        /// Moves the clock forward without firing anything.
        mutating func advance(by ms: UInt64) { now += ms }

        /// Alice's phone calls Bob's `devices` with call `id`, started at the current time.
        mutating func ringBob(_ id: SignalID, devices: [String] = ["laptop", "phone"]) {
            _ = call(id, from: CallsTestCase.party("alice", "phone"), to: "bob", online: devices)
        }
    }

    // MARK: Expected actions

    let ack = CallAction.reply(.ack)
    let unknownCall = CallAction.reply(.nak(.unknownCall, reason: "no such call"))
    let notPartOfCall = CallAction.reply(.nak(.notAllowed, reason: "this device is not part of the call"))
    let answeredElsewhere = CallAction.reply(
        .nak(.answeredElsewhere, reason: "the call was answered on another device"))

    /// The refusal of a callee verb from anyone but a called device.
    func calleeOnly(_ verb: String) -> CallAction { nak(.notAllowed, "only a called device can send \(verb)") }

    func nak(_ code: ServerFrame.NakCode, _ reason: String) -> CallAction { .reply(.nak(code, reason: reason)) }

    func deliver(_ party: CallParty, _ event: SignalEvent) -> CallAction { .deliver(to: party, event: event) }

    func log(_ event: CallLogEvent) -> CallAction { .log(event) }

    func ring(_ id: SignalID, from caller: CallParty? = nil, offer: SignalBlob? = nil) -> SignalEvent {
        let caller = caller ?? alicePhone
        return .ring(call: id, caller: caller.user, callerDevice: caller.device, offer: offer ?? self.offer)
    }

    func ended(_ id: SignalID, _ reason: SignalEvent.EndReason) -> SignalEvent { .ended(call: id, reason: reason) }

    func candidate(_ id: SignalID, from party: CallParty, _ candidate: SignalBlob) -> SignalEvent {
        .candidate(call: id, user: party.user, device: party.device, candidate: candidate)
    }

    /// Asserts the book holds nothing for live calls: no call, no index entry, no pending deadline.
    func assertNoLiveCalls(_ book: inout CallBook, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(book.count, 0, "live calls", file: file, line: line)
        XCTAssertEqual(book.indexSizes, CallBook.IndexSizes(parties: 0, ringingPairs: 0), file: file, line: line)
        XCTAssertNil(book.nextDeadline, "pending deadline", file: file, line: line)
    }
}
