import Foundation
import ParleyCrypto
import ParleyWire

/// The client's decoded events as an async sequence (one consumer).
///
/// Acknowledgement follows consumption: when the loop asks for the next event, the previous one is
/// acknowledged to the server (`got|<sseq>`, cumulative), so an event is only dropped from the server's
/// queue after the application finished with it. An event delivered but not acknowledged when the process
/// dies comes again on the next run.
public struct ClientEvents: AsyncSequence, Sendable {
    /// Each element is a checked event.
    public typealias Element = ClientEvent
    /// Iteration does not throw; it ends when the client closes.
    public typealias Failure = Never

    let stream: AsyncStream<ClientEvent>
    let client: ParleyClient

    /// Starts the single iteration.
    public func makeAsyncIterator() -> Iterator {
        Iterator(base: stream.makeAsyncIterator(), client: client)
    }

    /// Yields events, acknowledging each one when asked for the next.
    public struct Iterator: AsyncIteratorProtocol {
        var base: AsyncStream<ClientEvent>.Iterator
        let client: ParleyClient
        var unacknowledged: UInt64?

        /// Acknowledges the previous event, then waits for the next; nil once the client is closed.
        public mutating func next() async -> ClientEvent? {
            if let sseq = unacknowledged {
                unacknowledged = nil
                await client.acknowledge(upTo: sseq)
            }
            let event = await base.next()
            unacknowledged = event?.sseq
            return event
        }
    }
}

/// Why a signed or sealed event was not accepted (internal form of ``RejectedEvent``).
struct Rejection: Error {
    var reason: RejectedEvent.Reason
    var detail: String
}

extension ParleyClient {
    /// Decodes the events the session delivered, one at a time and in order, and hands them to ``events``.
    func processEvents() async {
        for await (sseq, timestamp, event) in rawEvents {
            let kind = await decode(event)
            if case .rejected(let rejected) = kind { logger.warning("\(rejected)") }
            eventOutput.yield(ClientEvent(sseq: sseq, timestamp: timestamp, kind: kind))
        }
    }

    /// Checks one event: signatures against pinned keys (fetching and pinning keys on first sight), sealed
    /// messages opened. Records and forgets calls as they ring and end.
    func decode(_ event: SignalEvent) async -> ClientEvent.Kind {
        guard let me = credentials else { preconditionFailure("events before login") }
        func rejected(_ r: Rejection, _ name: String, _ id: SignalID, _ user: SignalName?, _ device: SignalName)
            -> ClientEvent.Kind
        {
            .rejected(
                RejectedEvent(event: name, id: id, user: user, device: device, reason: r.reason, detail: r.detail))
        }
        switch event {
        case .ring(let call, let caller, let callerDevice, let offer):
            calls[call] = CallRecord(caller: caller, callee: me.user)
            do {
                let (signer, payload) = try await verify(
                    offer, kind: .offer, call: call, callee: me.user, user: caller, device: callerDevice)
                return .ring(call: call, from: signer, offer: payload)
            } catch {
                calls[call] = nil
                return rejected(error, "ring", call, caller, callerDevice)
            }
        case .answer(let call, let device, let answer):
            guard let record = calls[call], record.caller == me.user else {
                return rejected(
                    Rejection(reason: .unknownCall, detail: "an answer for a call this client did not place"),
                    "answer", call, nil, device)
            }
            do {
                let (signer, payload) = try await verify(
                    answer, kind: .answer, call: call, callee: record.callee, user: record.callee, device: device)
                return .answer(call: call, by: signer, answer: payload)
            } catch {
                return rejected(error, "answer", call, record.callee, device)
            }
        case .candidate(let call, let user, let device, let candidate):
            guard let record = calls[call] else {
                return rejected(
                    Rejection(reason: .unknownCall, detail: "a candidate for an unknown call"), "cand", call, user,
                    device)
            }
            guard user == (record.caller == me.user ? record.callee : record.caller) else {
                return rejected(
                    Rejection(reason: .wrongParty, detail: "\(user) is not the other party of this call"),
                    "cand", call, user, device)
            }
            do {
                let (signer, payload) = try await verify(
                    candidate, kind: .candidate, call: call, callee: record.callee, user: user, device: device)
                return .candidate(call: call, from: signer, candidate: payload)
            } catch {
                return rejected(error, "cand", call, user, device)
            }
        case .elsewhere(let call, let device):
            calls[call] = nil
            return .elsewhere(call: call, device: device)
        case .ended(let call, let reason):
            calls[call] = nil
            return .ended(call: call, reason: reason)
        case .merged(let call, let into):
            calls[call] = nil
            return .merged(call: call, into: into)
        case .message(let id, let from, let fromDevice, let sealed):
            do {
                let (signer, text) = try await open(sealed, id: id, from: from, device: fromDevice, me: me)
                return .message(id: id, from: signer, text: text)
            } catch {
                return rejected(error, "msg", id, from, fromDevice)
            }
        }
    }

    /// Verifies a signed blob from `user`'s `device` and returns the signer and the payload.
    func verify(
        _ blob: SignalBlob, kind: SignedBlob.Kind, call: SignalID, callee: SignalName, user: SignalName,
        device: SignalName
    ) async throws(Rejection) -> (VerifiedDevice, [UInt8]) {
        let (bundle, pin) = try await signerKey(user, device)
        do {
            let payload = try SignedBlob.open(blob, kind: kind, call: call, callee: callee, signer: bundle)
            return (VerifiedDevice(user: user, device: device, fingerprint: bundle.fingerprint, pin: pin), payload)
        } catch {
            if pin == .pinned, let warning = await keyChange(user, device),
                let presented = warning.changes.first(where: { $0.device == device })?.presented,
                (try? SignedBlob.open(blob, kind: kind, call: call, callee: callee, signer: presented)) != nil
            {
                throw Rejection(reason: .keyChanged(warning), detail: "signed with a new, unaccepted key")
            }
            throw Rejection(reason: .badSignature, detail: error.description)
        }
    }

    /// Opens a sealed message from `user`'s `device` to this device.
    func open(
        _ sealed: SignalBlob, id: SignalID, from user: SignalName, device: SignalName, me: ClientSession.Credentials
    ) async throws(Rejection) -> (VerifiedDevice, String) {
        let (bundle, pin) = try await signerKey(user, device)
        let context = Self.messageContext(id: id, from: user, device: device, to: me.user, device: me.device)
        let plaintext: Data
        do {
            plaintext = try SealedMessage(bytes: sealed.bytes).open(as: me.identity, from: bundle, context: context)
        } catch {
            guard error.code == .badSignature else {
                throw Rejection(reason: .undecryptable, detail: error.description)
            }
            if pin == .pinned, let warning = await keyChange(user, device),
                let presented = warning.changes.first(where: { $0.device == device })?.presented,
                (try? SealedMessage(bytes: sealed.bytes).open(as: me.identity, from: presented, context: context))
                    != nil
            {
                throw Rejection(reason: .keyChanged(warning), detail: "sealed with a new, unaccepted key")
            }
            throw Rejection(reason: .badSignature, detail: error.description)
        }
        guard let text = String(bytes: plaintext, encoding: .utf8) else {
            throw Rejection(reason: .notText, detail: "the message is not UTF-8 text")
        }
        return (VerifiedDevice(user: user, device: device, fingerprint: bundle.fingerprint, pin: pin), text)
    }

    /// The pinned key of `user`'s `device`, fetching (and pinning, on first sight) when there is none.
    func signerKey(_ user: SignalName, _ device: SignalName) async throws(Rejection) -> (DevicePublicBundle, PinStatus)
    {
        // A user with a device list: only what the list certifies, after one refresh for a device it does
        // not name yet (it may have been linked since). Never the per-device pins.
        if let list = trust.list(of: user) {
            if let entry = list.device(device) { return (entry.bundle, .pinned) }
            do {
                let lookup = try await lookUp(user)
                if let bundle = lookup.devices[device] { return (bundle, lookup.status[device] ?? .newDevice) }
                throw Rejection(reason: .uncertified, detail: "\(user)'s device list does not certify a device \(device)")
            } catch let rejection as Rejection {
                throw rejection
            } catch let refusal as ListRefusal {
                throw Rejection(reason: .uncertified, detail: refusal.description)
            } catch {
                throw Rejection(reason: .unknownDevice, detail: "could not fetch the keys of \(user): \(error)")
            }
        }
        if let pinned = pins.pinned(user, device) { return (pinned, .pinned) }
        do {
            let lookup = try await lookUp(user)
            if lookup.uncertified[device] != nil {
                throw Rejection(reason: .uncertified, detail: "\(user)'s device list does not certify a device \(device)")
            }
            guard let bundle = lookup.devices[device], let status = lookup.status[device] else {
                throw Rejection(reason: .unknownDevice, detail: "the server lists no device \(device) for \(user)")
            }
            return (bundle, status)
        } catch let rejection as Rejection {
            throw rejection
        } catch let warning as KeyChangeWarning {
            throw Rejection(
                reason: .keyChanged(warning), detail: "another device of \(user) changed its key; nothing pinned")
        } catch let refusal as ListRefusal {
            throw Rejection(reason: .uncertified, detail: refusal.description)
        } catch {
            throw Rejection(reason: .unknownDevice, detail: "could not fetch the keys of \(user): \(error)")
        }
    }

    /// The server's key change for `user`'s `device`, when it presents a key other than the pinned one.
    func keyChange(_ user: SignalName, _ device: SignalName) async -> KeyChangeWarning? {
        do {
            _ = try await lookUp(user)
            return nil
        } catch let warning as KeyChangeWarning {
            return warning.changes.contains { $0.device == device } ? warning : nil
        } catch {
            return nil
        }
    }
}
