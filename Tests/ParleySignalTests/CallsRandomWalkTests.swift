@testable import ParleySignal
import ParleyWire
import XCTest

/// Random but reproducible event sequences against the book, checking the rules that must hold whatever
/// clients do: one reply per command and none otherwise, a timer the session can mirror, no event to a
/// device about a call after that call ended or went elsewhere for it, and an empty book in the end.
final class CallsRandomWalkTests: CallsTestCase {
    /// A small deterministic generator (SplitMix64), so a failing seed can be replayed.
    struct SplitMix64: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    func testRandomWalksKeepTheRules() {
        var seen: Set<String> = []
        for seed in UInt64(1)...40 { walk(seed: seed, steps: 1_500, seen: &seen) }
        // The walks went everywhere: every kind of log line and every end reason.
        let everything = Set(["started", "rang", "merged", "stoppedRinging", "answered"])
            .union(SignalEvent.EndReason.allCases.map { "ended \($0.rawValue)" })
        XCTAssertEqual(everything.subtracting(seen), [])
    }

    private func walk(seed: UInt64, steps: Int, seen: inout Set<String>) {
        var rng = SplitMix64(state: seed)
        var d = Driver(CallBookConfiguration(maxHeldCandidates: 4))
        let users = ["alice", "bob", "carol"]
        let devices = ["laptop", "phone"]
        let parties = users.flatMap { u in devices.map { CallsTestCase.party(u, $0) } }
        let ids = (1...6).map(callID)
        var hostTimer: UInt64?
        var over: [SignalID: Set<CallParty>] = [:]  // devices that must hear nothing more about a call

        func check(_ actions: [CallAction], isCommand: Bool, firedTimer: Bool, _ what: String) {
            let replies = actions.filter { if case .reply = $0 { true } else { false } }
            XCTAssertEqual(replies.count, isCommand ? 1 : 0, "seed \(seed): \(what)")
            if isCommand { XCTAssertTrue(replies.first == actions.first, "seed \(seed): reply first, \(what)") }
            if firedTimer, let armed = hostTimer, armed <= d.now { hostTimer = nil }
            for case .log(.started(let call, _, _)) in actions {
                over[call] = nil  // a forgotten id was used again (the log line comes after the rings)
            }
            for action in actions {
                switch action {
                case .armTimer(let at): hostTimer = at
                case .cancelTimer: hostTimer = nil
                case .deliver(let to, let event):
                    let late = "seed \(seed): \(event) to \(to) after its end"
                    switch event {
                    case .ring(let call, _, _, _), .answer(let call, _, _), .candidate(let call, _, _, _):
                        XCTAssertFalse(over[call]?.contains(to) == true, late)
                    case .elsewhere(let call, _), .ended(let call, _):
                        XCTAssertFalse(over[call]?.contains(to) == true, late)
                        over[call, default: []].insert(to)
                    case .merged(_, let into):
                        over[into]?.remove(to)  // a counter-caller rings again for the surviving call
                    case .message:
                        XCTFail("seed \(seed): the call book sent a message")
                    }
                case .log(let line):
                    switch line {
                    case .started: seen.insert("started")
                    case .rang: seen.insert("rang")
                    case .merged: seen.insert("merged")
                    case .stoppedRinging: seen.insert("stoppedRinging")
                    case .answered: seen.insert("answered")
                    case .ended(_, let reason): seen.insert("ended \(reason.rawValue)")
                    }
                case .reply: break
                }
            }
            XCTAssertEqual(d.book.nextDeadline, hostTimer, "seed \(seed): the session's timer, \(what)")
        }

        for step in 0..<steps {
            let party = parties.randomElement(using: &rng)!
            let id = ids.randomElement(using: &rng)!
            let data = blob("b\(step)")
            let command: CallCommand?
            switch UInt8.random(in: 0..<16, using: &rng) {
            case 0, 1:
                let online = devices.filter { _ in Bool.random(using: &rng) }.map { SignalName($0)! }
                let callee = CallsTestCase.user(users.randomElement(using: &rng)!)
                command = .call(id, callee: callee, offer: data, onlineDevices: online)
            case 2: command = .cancel(id)
            case 3: command = .prepare(id, answer: data)
            case 4, 5: command = .candidate(id, candidate: data)
            case 6: command = .accept(id, answer: Bool.random(using: &rng) ? data : nil)
            case 7: command = .reject(id)
            case 8: command = .busy(id)
            case 9: command = .end(id)
            default: command = nil
            }
            if let command {
                check(d.send(command, from: party), isCommand: true, firedTimer: false, "\(command) from \(party)")
                continue
            }
            switch UInt8.random(in: 0..<3, using: &rng) {
            case 0: check(d.disconnect(party), isCommand: false, firedTimer: false, "disconnect \(party)")
            case 1: check(d.reconnect(party), isCommand: false, firedTimer: false, "reconnect \(party)")
            default:
                d.advance(by: UInt64.random(in: 0...12_000, using: &rng))
                if let armed = hostTimer, armed <= d.now {
                    check(d.handle(.timerFired), isCommand: false, firedTimer: true, "timer")
                }
            }
        }
        // Everyone leaves: every call ends within the grace, and is forgotten after the retention.
        for party in parties { check(d.disconnect(party), isCommand: false, firedTimer: false, "final disconnect") }
        let end = d.now + max(d.grace, d.ringTimeout)
        check(d.fire(at: end), isCommand: false, firedTimer: true, "final timer")
        assertNoLiveCalls(&d.book)
        XCTAssertEqual(d.book.queuedDeadlines, 0, "seed \(seed)")
        _ = d.fire(at: end + d.book.configuration.endedRetention)
        XCTAssertEqual(d.book.rememberedEndedCount, 0, "seed \(seed)")
    }
}
