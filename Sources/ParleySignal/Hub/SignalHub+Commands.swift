import Foundation
import Logging
import NIOCore
import ParleyCrypto
import ParleyStore
import ParleyWire

extension SignalHub {
    // MARK: Commands

    func execute(_ command: SignalCommand, from party: CallParty, id: ObjectIdentifier) {
        let cseq = command.cseq
        switch command.verb {
        case .keys(let user):
            let devices = directory.devices(of: user)
            guard !devices.isEmpty else { return complete(cseq, .nak(code: .unknownUser, reason: "no such user"), on: id) }
            recordCSeq(cseq, party)
            var result = [user.text, devices.map { "\($0.name)=\($0.bundle.encoded)" }.joined(separator: ",")]
            if let list = deviceLists[user] { result.append(SignalBlob(bytes: list.wire).text) }
            complete(cseq, .ack(result: result), on: id)
        case .lists(let user, let since):
            recordCSeq(cseq, party)
            guard deviceLists[user] != nil else { return complete(cseq, .nak(code: .unknownUser, reason: "no device list"), on: id) }
            let store = self.store
            Task {
                let lists = (try? await store.deviceLists(of: user.text, after: Int64(min(since, UInt64(Int64.max))), limit: 6)) ?? []
                let blobs = lists.compactMap { try? DeviceList(text: $0) }.map { SignalBlob(bytes: $0.wire).text }
                self.loop.execute { self.complete(cseq, .ack(result: [user.text, blobs.joined(separator: ",")]), on: id) }
            }
        case .publish(let blob):
            publish(blob, cseq: cseq, from: party, id: id)
        case .linkRequest(let requestID):
            recordCSeq(cseq, party)
            let now = clock()
            guard let request = linkRequests[requestID], request.user == party.user, request.expires > now else {
                return complete(cseq, .nak(code: .badArgument, reason: "no such link request"), on: id)
            }
            complete(cseq, .ack(result: [request.device.text, request.bundle.encoded]), on: id)
        case .message(let msgID, let to, let sealed):
            sendMessage(msgID, to: to, sealed: sealed, cseq: cseq, from: party, id: id)
        case .call(_, let callee, _) where directory.devices(of: callee).isEmpty:
            recordCSeq(cseq, party)
            complete(cseq, .nak(code: .unknownUser, reason: "no such user"), on: id)
        case .call, .cancel, .prepare, .candidate, .accept, .reject, .busy, .end:
            recordCSeq(cseq, party)
            let online: (SignalName) -> [SignalName] = { user in
                self.presence.devices(of: user).map(\.device).filter { device in
                    (self.queues[CallParty(user: user, device: device)]?.count ?? 0) < self.configuration.queueCapacity
                }
            }
            guard let callCommand = CallCommand(command.verb, onlineDevicesOf: online) else {
                return complete(cseq, .nak(code: .badArgument, reason: "not a call command"), on: id)
            }
            let actions = calls.handle(.command(callCommand, from: party), now: clock())
            performCalls(actions, replyTo: (cseq, id))
        }
    }

    /// `publish`: the user's next device list (docs/PROTOCOL.md §3.8). The server cannot make a list; it
    /// checks the one given continues the last (same user key, next version, previous hash) — or, for the
    /// first, that it certifies the publishing device with the key it logged in with — stores it with the
    /// account following it, and closes the sessions of devices it no longer certifies.
    func publish(_ blob: SignalBlob, cseq: UInt64, from party: CallParty, id: ObjectIdentifier) {
        recordCSeq(cseq, party)
        let list: DeviceList
        do {
            list = try DeviceList(wire: blob.bytes)
        } catch {
            return complete(cseq, .nak(code: .badArgument, reason: "\(error)"), on: id)
        }
        guard list.user == party.user else {
            return complete(cseq, .nak(code: .notAllowed, reason: "a list of another user"), on: id)
        }
        if let current = deviceLists[party.user] {
            guard list.userKey == current.userKey, list.version == current.version + 1, list.previous == current.hash else {
                return complete(
                    cseq, .nak(code: .notAllowed, reason: "the list does not continue version \(current.version)"), on: id)
            }
        } else {
            // The first list of an account (version 1), or a list the holder of the user key puts back on a
            // server that lost its store: either way it must certify the publishing device's key.
            guard let bundle = directory.device(user: party.user, device: party.device), list.certifies(party.device, bundle) else {
                return complete(
                    cseq, .nak(code: .notAllowed, reason: "a first list must certify this device's key"), on: id)
            }
        }
        let store = self.store
        let now = Date(timeIntervalSince1970: Double(clock()) / 1000)
        Task {
            do {
                try await store.publishDeviceList(
                    user: party.user.text, version: Int64(list.version), list: list.text,
                    devices: list.devices.map { ($0.name.text, $0.bundle.encoded) }, at: now)
                self.loop.execute {
                    let before = self.directory
                    self.adopt(list)
                    self.logger.info(
                        "device list published",
                        metadata: ["user": "\(party.user)", "version": "\(list.version)", "devices": "\(list.devices.count)"])
                    self.complete(cseq, .ack(result: ["\(list.version)"]), on: id)
                    // Devices the list no longer certifies, or certifies with another key, lose their sessions now.
                    for state in self.connections.values {
                        guard let who = state.session.identity, who.user == party.user else { continue }
                        let key = before.device(user: who.user, device: who.device)
                        if key.map({ list.certifies(who.device, $0) }) != true { state.connection.close() }
                    }
                }
            } catch let error as SignalStoreError {
                self.loop.execute { self.complete(cseq, .nak(code: .notAllowed, reason: error.description), on: id) }
            } catch {
                self.logger.error("cannot store a device list", metadata: ["error": "\(error)"])
                self.loop.execute { self.connections[id]?.connection.close() }
            }
        }
    }

    /// A stored list becomes its user's newest, and the user's served devices are exactly those it certifies.
    func adopt(_ list: DeviceList) {
        deviceLists[list.user] = list
        directory = AccountTableDirectory(table: directory.table.replacing(user: list.user.text, devices: list.certifiedBundles))
    }

    /// A `register` or `link` before login (docs/PROTOCOL.md §3.8).
    func enrol(_ request: Enrolment, id: ObjectIdentifier) {
        func answer(_ frame: ServerFrame) {
            guard let state = connections[id] else { return }
            perform(state.session.enrolmentAnswered(frame, now: clock()), on: id)
        }
        let now = clock()
        switch request {
        case .link(let requestID, let user, let device, let blob):
            guard deviceLists[user] != nil else {
                return answer(.refused(code: .unknownUser, reason: "no account with a user key by that name"))
            }
            guard let bundle = try? DevicePublicBundle(encoded: DevicePublicBundle.prefix + blob.text) else {
                return answer(.refused(code: .badList, reason: "the bundle does not verify"))
            }
            linkRequests = linkRequests.filter { $0.value.expires > now }
            guard linkRequests.values.filter({ $0.user == user }).count < configuration.linkRequestsPerUser,
                linkRequests[requestID] == nil
            else { return answer(.refused(code: .tooMany, reason: "too many link requests waiting for this user")) }
            linkRequests[requestID] = LinkRequest(
                user: user, device: device, bundle: bundle, expires: now + configuration.linkRequestLifetime)
            logger.info("link request", metadata: ["user": "\(user)", "device": "\(device)"])
            answer(.enrolled(kind: .linking, detail: requestID))
        case .register(let invite, let blob):
            let mode = configuration.registration
            guard mode != .closed else { return answer(.refused(code: .registrationClosed, reason: "registration is closed")) }
            guard invite != nil || mode == .open else {
                return answer(.refused(code: .inviteNeeded, reason: "registration needs an invite"))
            }
            guard let list = try? DeviceList(wire: blob.bytes), list.version == 1, list.devices.count == 1 else {
                return answer(.refused(code: .badList, reason: "a first device list: version 1, one device, signed by its user key"))
            }
            guard directory.devices(of: list.user).isEmpty, deviceLists[list.user] == nil else {
                return answer(.refused(code: .userExists, reason: "that name is taken"))
            }
            let inviteHash = invite.map { InviteToken.hash($0.bytes) }
            let store = self.store
            let at = Date(timeIntervalSince1970: Double(now) / 1000)
            Task {
                do {
                    try await store.register(
                        user: list.user.text, list: list.text, version: 1,
                        devices: list.devices.map { ($0.name.text, $0.bundle.encoded) }, inviteHash: inviteHash, at: at)
                    self.loop.execute {
                        self.adopt(list)
                        self.logger.info("registered", metadata: ["user": "\(list.user)", "invite": "\(inviteHash != nil)"])
                        answer(.enrolled(kind: .registered, detail: list.user.text))
                    }
                } catch let error as SignalStoreError {
                    let code: ServerFrame.RefusalCode =
                        switch error.code {
                        case .inviteUnknown: .inviteUnknown
                        case .inviteUsed: .inviteUsed
                        case .inviteExpired: .inviteExpired
                        case .inviteOtherUser: .inviteOtherUser
                        case .userExists, .revoked: .userExists
                        default: .unavailable
                        }
                    self.loop.execute { answer(.refused(code: code, reason: error.description)) }
                } catch {
                    self.logger.error("cannot register", metadata: ["error": "\(error)"])
                    self.loop.execute { answer(.refused(code: .unavailable, reason: "the server could not store the account")) }
                }
            }
        }
    }

    func complete(_ cseq: UInt64, _ answer: CommandAnswer, on id: ObjectIdentifier) {
        guard let state = connections[id] else { return }
        perform(state.session.complete(cseq: cseq, with: answer, now: clock()), on: id)
        state.executing = false
        runNextCommand(id)
    }

    /// Records the cseq as processed: at once in memory (the next `welcome` in this process reports it),
    /// and in the store within ``cseqFlushInterval`` — one write per device per interval rather than a
    /// synchronous commit per command. A crash in between makes the client resend those call commands
    /// after the restart, when every call has ended anyway; a `msg` records its cseq in the same
    /// transaction as the message instead, so no acknowledged message depends on this.
    func recordCSeq(_ cseq: UInt64, _ party: CallParty) {
        processedCSeq[party] = max(processedCSeq[party] ?? 0, cseq)
        // Every device's pending value goes in one transaction per interval.
        cseqDirty.insert(party)
        guard !cseqFlushPending else { return }
        cseqFlushPending = true
        loop.scheduleTask(in: cseqFlushInterval) { [weak self] in
            guard let self else { return }
            self.cseqFlushPending = false
            let batch = self.cseqDirty.compactMap { p in self.processedCSeq[p].map { (Int64($0), p.user.text, p.device.text) } }
            self.cseqDirty = []
            let store = self.store
            let logger = self.logger
            Task {
                do {
                    try await store.recordProcessedCSeqs(batch)
                } catch {
                    logger.warning("cannot record cseqs", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    // MARK: Call actions

    func performCalls(_ actions: [CallAction], replyTo: (cseq: UInt64, id: ObjectIdentifier)? = nil) {
        for action in actions {
            switch action {
            case .reply(let reply):
                guard let replyTo else { continue }
                switch reply {
                case .ack: complete(replyTo.cseq, .ok, on: replyTo.id)
                case .nak(let code, let reason): complete(replyTo.cseq, .nak(code: code, reason: reason), on: replyTo.id)
                }
            case .deliver(let party, let event):
                deliver(event, to: party)
            case .log(let event):
                // Who called whom and how it ended are the operator's record (info); the steps between
                // (rang, answered, merged, stopped ringing) are debug: at thousands of calls a second,
                // writing them all costs the hub loop more than the calls themselves.
                switch event {
                case .started, .ended: logger.info("call", metadata: ["event": "\(event)"])
                default: logger.debug("call", metadata: ["event": "\(event)"])
                }
            case .armTimer(let at):
                callTimer?.cancel()
                let delay = Int64(at) - Int64(clock())
                callTimer = loop.scheduleTask(in: .milliseconds(max(0, delay))) { [weak self] in
                    guard let self else { return }
                    self.callTimer = nil
                    self.performCalls(self.calls.handle(.timerFired, now: self.clock()))
                }
            case .cancelTimer:
                callTimer?.cancel()
                callTimer = nil
            }
        }
    }

    /// Queues an event for a device and sends it at once if the device is online.
    @discardableResult
    func deliver(_ event: SignalEvent, to party: CallParty, storeSeq: Int64? = nil) -> Bool {
        let now = clock()
        // Mutated in place in the dictionary: a copy taken out and put back would share the event array
        // with the dictionary's and copy all of it on every append.
        let capacity = configuration.queueCapacity
        let sseq = max((queues[party]?.lastSSeq ?? 0) + 1, now * 1000)
        let result = queues[party, default: DeviceQueue(user: party.user, device: party.device, capacity: capacity)]
            .enqueue(event, sseq: sseq, now: now)
        switch result {
        case .queued(let frame):
            if let storeSeq {
                messageRefs[party, default: [:]][sseq] = storeSeq
            }
            if let id = presence.connection(user: party.user, device: party.device), let state = connections[id] {
                state.connection.send(SignalCodec.format(frame))
            }
            return true
        case .full, .outOfOrder:
            logger.warning("device queue refused an event", metadata: ["user": "\(party.user)", "device": "\(party.device)"])
            return false
        }
    }

    func acknowledge(_ party: CallParty, upTo sseq: UInt64) {
        guard queues[party] != nil else { return }
        let removed = queues[party]!.acknowledge(upTo: sseq)
        let delivered = removed.compactMap { messageRefs[party]?.removeValue(forKey: $0.sseq) }
        if !delivered.isEmpty {
            let store = self.store
            let logger = self.logger
            Task {
                do {
                    // Exactly the copies acknowledged: stored mail is not always delivered in store order.
                    _ = try await store.acknowledge(user: party.user.text, device: party.device.text, sseqs: delivered)
                } catch {
                    logger.warning("cannot delete delivered messages", metadata: ["user": "\(party.user)", "error": "\(error)"])
                }
            }
        }
        if !removed.isEmpty, pumpBlocked.remove(party) != nil { pumpStoredMessages(for: party) }
    }

    // MARK: Sealed messages

    func sendMessage(_ msgID: SignalID, to recipient: SignalName, sealed: [SignalCommand.SealedCopy], cseq: UInt64,
                     from party: CallParty, id: ObjectIdentifier) {
        let devices = Set(directory.devices(of: recipient).map(\.name))
        guard !devices.isEmpty else {
            recordCSeq(cseq, party)
            return complete(cseq, .nak(code: .unknownUser, reason: "no such user"), on: id)
        }
        guard sealed.allSatisfy({ devices.contains($0.device) }) else {
            recordCSeq(cseq, party)
            return complete(cseq, .nak(code: .badArgument, reason: "a ciphertext names a device the recipient does not have"), on: id)
        }
        let message = OutgoingMessage(
            id: msgID.text, senderUser: party.user.text, senderDevice: party.device.text, recipient: recipient.text,
            copies: sealed.map { SealedCopy(device: $0.device.text, ciphertext: $0.ciphertext.text) },
            cseq: Int64(cseq))
        let store = self.store
        let now = Date(timeIntervalSince1970: Double(clock()) / 1000)
        Task {
            do {
                let receipt = try await store.enqueueMessage(message, at: now)
                self.loop.execute {
                    self.processedCSeq[party] = max(self.processedCSeq[party] ?? 0, cseq)
                    // Stored mail reaches queues only through the pump, in store order.
                    for delivery in receipt.deliveries {
                        if let device = SignalName(delivery.device) {
                            self.mayHaveMail.insert(CallParty(user: recipient, device: device))
                            self.pumpStoredMessages(for: CallParty(user: recipient, device: device))
                        }
                    }
                    self.complete(cseq, .ok, on: id)
                }
            } catch let error as SignalStoreError where error.code == .quotaExceeded {
                self.loop.execute {
                    self.recordCSeq(cseq, party)
                    self.complete(cseq, .nak(code: .quota, reason: "the recipient's mailbox is full"), on: id)
                }
            } catch {
                self.logger.error("cannot store a message", metadata: ["error": "\(error)"])
                // Not acknowledged: the client keeps it queued and resends after reconnecting.
                self.loop.execute { self.connections[id]?.connection.close() }
            }
        }
    }

    /// Moves the device's stored mail into its queue, in store order, after what this process already
    /// moved, as far as the queue has room; only for a device that is online. One store read per device
    /// at a time; a request that arrives meanwhile runs another read when this one lands. Called at
    /// login, when a message for the device is committed, and when an acknowledgement frees room.
    func pumpStoredMessages(for party: CallParty) {
        guard presence.isOnline(user: party.user, device: party.device) else { return }
        if pumping.contains(party) {
            pumpAgain.insert(party)
            return
        }
        let room = configuration.queueCapacity - (queues[party]?.count ?? 0)
        guard room > 0 else {
            pumpBlocked.insert(party)
            return
        }
        pumping.insert(party)
        let after = storeCursor[party] ?? 0
        let store = self.store
        Task {
            let pending = (try? await store.pendingMessages(user: party.user.text, device: party.device.text, after: after,
                                                            limit: room)) ?? []
            self.loop.execute {
                self.pumping.remove(party)
                var full = false
                for m in pending where m.sseq > (self.storeCursor[party] ?? 0) {
                    guard let msgID = SignalID(m.id), let from = SignalName(m.senderUser), let fromDevice = SignalName(m.senderDevice),
                        let blob = SignalBlob(m.ciphertext, maxBytes: SignalCommand.maxSealedBytes)
                    else {
                        self.storeCursor[party] = m.sseq  // unreadable row: skip it rather than stall behind it
                        continue
                    }
                    guard self.deliver(.message(id: msgID, from: from, fromDevice: fromDevice, sealed: blob), to: party,
                                       storeSeq: m.sseq)
                    else {
                        full = true
                        break
                    }
                    self.storeCursor[party] = m.sseq
                }
                let again = self.pumpAgain.remove(party) != nil
                if full { self.pumpBlocked.insert(party) }
                if !full && (again || pending.count == room) { self.pumpStoredMessages(for: party) }
            }
        }
    }
}
