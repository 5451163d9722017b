import Foundation
import ParleyCrypto
import ParleyWire

/// What ``ParleyClient/send(_:to:acceptNewKeys:)`` did.
public struct SentMessage: Sendable, Hashable {
    /// The message id.
    public let id: SignalID
    /// The recipient's devices it was sealed to, in name order.
    public let devices: [SignalName]
    /// The key check that chose them (new devices, first contact).
    public let keys: KeyLookup
}

/// Keys, calls and messages: the commands of docs/PROTOCOL.md §3.3.
extension ParleyClient {
    // MARK: Keys

    /// The user's devices and their bundles, checked against the pins (trust on first use).
    ///
    /// First sight of a user or device pins its key (``PinStatus/firstContact``, ``PinStatus/newDevice``).
    /// A key that differs from its pin throws ``KeyChangeWarning`` and pins nothing, unless `acceptNewKeys`,
    /// when the new key replaces the pin (``PinStatus/changed(previous:)``).
    /// - Throws: ``KeyChangeWarning``, or ``ClientError`` (``ClientError/Code/unknownUser``,
    ///   ``ClientError/Code/invalidBundle``, ``ClientError/Code/refused``, …).
    public func lookUp(_ user: SignalName, acceptNewKeys: Bool = false) async throws -> KeyLookup {
        // A `keys` answered on a lost connection comes back as processed without its result: ask again.
        for _ in 0..<3 {
            switch try await perform(.keys(user: user)) {
            case .ack(let result):
                let presented = try Self.parseKeys(result, user: user)
                guard !presented.isEmpty else { throw ClientError.unknownUser(user) }
                if result.count == 3 {
                    return try await certify(user, presented: presented, listBlob: result[2], acceptNewUserKey: acceptNewKeys)
                }
                // No device list: trust on first use per device, unless this account pinned a list for the
                // user (then the server is trying to decide the user's devices itself).
                if trust.list(of: user) != nil { throw ListRefusal.withheld(user: user) }
                let before = pins
                let lookup = try pins.review(user, presented: presented, acceptChanges: acceptNewKeys, now: now())
                if pins != before { savePins() }
                return lookup
            case .nak(.unknownUser, _):
                throw ClientError.unknownUser(user)
            case .nak(let code, let reason):
                throw ClientError.refused(code, reason: reason, verb: "keys")
            case .processedEarlier:
                continue
            }
        }
        throw ClientError.disconnected("keys for \(user) kept being lost to reconnects")
    }

    /// The devices of a user with a device list: the list is reviewed against the trust store (fetching the
    /// versions between when the pinned one is older than the one before last), and only devices it
    /// certifies with exactly the presented bundle are returned; the rest are ``KeyLookup/uncertified``.
    func certify(
        _ user: SignalName, presented: [SignalName: DevicePublicBundle], listBlob: String, acceptNewUserKey: Bool
    ) async throws -> KeyLookup {
        let newest: DeviceList
        do {
            guard let blob = SignalBlob(listBlob) else { throw DeviceListError.malformed("not base64url") }
            newest = try DeviceList(wire: blob.bytes)
        } catch let error as DeviceListError {
            throw ListRefusal.invalid(user: user, error)
        }
        var chain = [newest]
        let review: ListReview
        do {
            review = try trust.review(user, chain: chain, acceptNewUserKey: acceptNewUserKey)
        } catch .missingVersions(_, let pinned, _) {
            chain = try await lists(of: user, since: pinned, until: newest.version) + [newest]
            review = try trust.review(user, chain: chain, acceptNewUserKey: acceptNewUserKey)
        }
        if review.status != .unchanged { saveTrust() }
        let list = review.list
        var devices: [SignalName: DevicePublicBundle] = [:]
        var uncertified: [SignalName: DevicePublicBundle] = [:]
        var status: [SignalName: PinStatus] = [:]
        for (device, bundle) in presented {
            if list.certifies(device, bundle) {
                devices[device] = bundle
                status[device] =
                    review.status == .firstContact ? .firstContact : review.added.contains(device) ? .newDevice : .pinned
            } else {
                uncertified[device] = bundle
            }
        }
        if !uncertified.isEmpty {
            logger.warning(
                "the server lists devices the user's key does not certify; ignoring them",
                metadata: ["user": "\(user)", "devices": "\(uncertified.keys.sorted().map(\.text))"])
        }
        return KeyLookup(user: user, devices: devices, status: status, list: list, uncertified: uncertified, review: review)
    }

    /// The device lists of `user` after version `since` up to (excluding) `until`, from the server's history.
    func lists(of user: SignalName, since: UInt64, until: UInt64) async throws -> [DeviceList] {
        var out: [DeviceList] = []
        var after = since
        while after + 1 < until {
            guard case .ack(let result) = try await perform(.lists(user: user, since: after)), result.count == 2,
                result[0] == user.text
            else { throw ListRefusal.missingVersions(user: user, pinned: since, presented: until) }
            let batch = try result[1].split(separator: ",").map { text -> DeviceList in
                guard let blob = SignalBlob(text), let list = try? DeviceList(wire: blob.bytes) else {
                    throw ListRefusal.invalid(user: user, .malformed("a list in the history does not parse"))
                }
                return list
            }
            let useful = batch.filter { $0.version > after && $0.version < until }
            guard let last = useful.last else { throw ListRefusal.missingVersions(user: user, pinned: since, presented: until) }
            out += useful
            after = last.version
        }
        return out
    }

    /// Publishes this user's next device list (signed with the user key); returns its version once stored.
    public func publish(_ list: DeviceList) async throws -> UInt64 {
        switch try await perform(.publish(list: SignalBlob(bytes: list.wire))) {
        case .ack(let result):
            guard let version = result.first.flatMap({ UInt64($0) }) else { throw ClientError.violation("publish answer has no version") }
            return version
        case .nak(let code, let reason):
            throw ClientError.refused(code, reason: reason, verb: "publish")
        case .processedEarlier:
            return list.version
        }
    }

    /// This account's view of `user` after checking their list again: the accepted list, if any.
    public func trustedList(of user: SignalName) -> DeviceList? { trust.list(of: user) }

    /// Marks `user`'s pinned user key as verified by the person (safety number compared) and saves it.
    public func markVerified(_ user: SignalName) -> Bool {
        let done = trust.markVerified(user)
        if done { saveTrust() }
        return done
    }

    /// The user's devices and bundles (see ``lookUp(_:acceptNewKeys:)``, which also reports pin status).
    public func keys(_ user: SignalName) async throws -> [SignalName: DevicePublicBundle] {
        try await lookUp(user).devices
    }

    /// The bundle pinned for `user`'s `device`, without asking the server.
    public func pinnedKey(_ user: SignalName, device: SignalName) -> DevicePublicBundle? {
        if let list = trust.list(of: user) { return list.device(device)?.bundle }
        return pins.pinned(user, device)
    }

    /// Parses `ack|<cseq>|ok|<user>|<device>=<bundle>,…`: every bundle must verify.
    static func parseKeys(_ result: [String], user: SignalName) throws(ClientError) -> [SignalName: DevicePublicBundle]
    {
        guard (1...3).contains(result.count), result[0] == user.text else {
            throw .violation("keys answer is not <user>|<device>=<bundle>,…")
        }
        var devices: [SignalName: DevicePublicBundle] = [:]
        guard result.count >= 2, !result[1].isEmpty else { return devices }
        for item in result[1].split(separator: ",", omittingEmptySubsequences: false) {
            guard let eq = item.firstIndex(of: "="), let device = SignalName(item[..<eq]), devices[device] == nil else {
                throw .violation("keys answer has a malformed or repeated device")
            }
            guard let bundle = try? DevicePublicBundle(encoded: String(item[item.index(after: eq)...])) else {
                throw .invalidBundle(user, device.text)
            }
            devices[device] = bundle
        }
        return devices
    }

    // MARK: Calls

    /// Calls `user` with `offer` (opaque to the SDK, signed with this device's key) and returns the call id.
    /// The id is fresh unless given (an encrypted call binds it into its handshake before calling).
    /// Events about the call arrive on ``events``.
    public func call(_ user: SignalName, offer: [UInt8], id: SignalID = .random()) async throws -> SignalID {
        let me = try loggedIn()
        let blob = try SignedBlob.sign(offer, kind: .offer, call: id, callee: user, by: me.identity)
        calls[id] = CallRecord(caller: me.user, callee: user)
        do {
            _ = try await acknowledged(.call(call: id, callee: user, offer: blob))
        } catch {
            calls[id] = nil
            throw error
        }
        return id
    }

    /// Caller: stops the call before it is answered (afterwards, the same as ``end(_:)``).
    public func cancel(_ call: SignalID) async throws {
        _ = try await acknowledged(.cancel(call: call))
    }

    /// Callee device: holds `answer` at the server while ringing.
    public func prepare(_ call: SignalID, answer: [UInt8]) async throws {
        let blob = try signed(answer, kind: .answer, call: call)
        _ = try await acknowledged(.prepare(call: call, answer: blob))
    }

    /// Sends a connectivity candidate for `call`, signed.
    public func candidate(_ call: SignalID, _ candidate: [UInt8]) async throws {
        let blob = try signed(candidate, kind: .candidate, call: call)
        _ = try await acknowledged(.candidate(call: call, candidate: blob))
    }

    /// Callee device: takes the call with `answer`, or with the prepared answer when nil.
    public func accept(_ call: SignalID, answer: [UInt8]?) async throws {
        let blob = try answer.map { answer throws(ClientError) in try signed(answer, kind: .answer, call: call) }
        _ = try await acknowledged(.accept(call: call, answer: blob))
    }

    /// Callee device: declines the call for every device.
    public func reject(_ call: SignalID) async throws {
        _ = try await acknowledged(.reject(call: call))
    }

    /// Callee device: this device is busy.
    public func busy(_ call: SignalID) async throws {
        _ = try await acknowledged(.busy(call: call))
    }

    /// Either party: hangs up an answered call.
    public func end(_ call: SignalID) async throws {
        _ = try await acknowledged(.end(call: call))
        calls[call] = nil
    }

    private func signed(_ payload: [UInt8], kind: SignedBlob.Kind, call: SignalID) throws(ClientError) -> SignalBlob {
        let me = try loggedIn()
        guard let record = calls[call] else { throw .unknownCall(call) }
        return try SignedBlob.sign(payload, kind: kind, call: call, callee: record.callee, by: me.identity)
    }

    private func loggedIn() throws(ClientError) -> ClientSession.Credentials {
        if let stopped { throw stopped }
        guard let credentials else { throw .notReady("log in first") }
        return credentials
    }

    // MARK: Messages

    /// Seals `text` to every device of `user` (keys checked as in ``lookUp(_:acceptNewKeys:)``) and sends
    /// it as one `msg`. Returns once the server has stored it (`ack`).
    /// - Throws: ``KeyChangeWarning`` when a pinned key changed (nothing is sent), or ``ClientError``
    ///   (``ClientError/Code/tooLarge``, ``ClientError/Code/unknownUser``, ``ClientError/Code/refused``…).
    public func send(_ text: String, to user: SignalName, acceptNewKeys: Bool = false) async throws -> SentMessage {
        let me = try loggedIn()
        let plaintext = Data(text.utf8)
        guard plaintext.count + SealedMessage.overhead <= SignalCommand.maxSealedBytes else {
            throw ClientError.tooLarge("a message of \(plaintext.count) bytes exceeds the per-device limit")
        }
        let lookup = try await lookUp(user, acceptNewKeys: acceptNewKeys)
        let id = SignalID.random()
        var copies: [SignalCommand.SealedCopy] = []
        for (device, bundle) in lookup.devices.sorted(by: { $0.key < $1.key }) {
            let context = Self.messageContext(id: id, from: me.user, device: me.device, to: user, device: device)
            // A device that does not speak Parley's own media is a browser (docs/PROTOCOL.md §3.6.1): it has
            // WebCrypto, which has AES-256-GCM but no ChaCha20-Poly1305.
            let media = lookup.list?.device(device)?.media ?? ["parley"]
            let suite: SealedMessage.Suite = media.contains("parley") ? .chacha20Poly1305 : .aes256GCM
            let sealed = try SealedMessage.seal(plaintext, to: bundle, from: me.identity, context: context, suite: suite)
            copies.append(.init(device: device, ciphertext: SignalBlob(bytes: sealed.bytes)))
        }
        _ = try await acknowledged(.message(id: id, to: user, sealed: copies))
        return SentMessage(id: id, devices: copies.map(\.device), keys: lookup)
    }

    /// What a sealed text message is bound to (``SealedMessage`` context): its id, sender and recipient device,
    /// so the server can neither replay it under another id nor relabel who sent it to whom.
    static func messageContext(
        id: SignalID, from user: SignalName, device: SignalName, to recipient: SignalName,
        device recipientDevice: SignalName
    ) -> Data {
        Data("parley-msg-v1|\(id)|\(user)|\(device)|\(recipient)|\(recipientDevice)".utf8)
    }
}
