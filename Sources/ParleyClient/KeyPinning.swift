import ParleyCrypto
import ParleyWire

/// How a device's current key relates to what this client pinned before (trust on first use).
public enum PinStatus: Sendable, Hashable {
    /// The user was unknown to this client; the key is now pinned.
    case firstContact
    /// The user was known but this device was not; its key is now pinned. Worth telling the person: a new
    /// device can read their messages from now on.
    case newDevice
    /// The key matches the pin.
    case pinned
    /// The key differs from the pin `previous`, and the caller accepted it: it is now pinned instead.
    case changed(previous: DevicePublicBundle)
}

/// A user's devices as the server listed them, checked against the pins.
public struct KeyLookup: Sendable, Hashable {
    /// Whose devices these are.
    public let user: SignalName
    /// Every active device's bundle (self-signature verified).
    public let devices: [SignalName: DevicePublicBundle]
    /// Each device's pin status.
    public let status: [SignalName: PinStatus]

    /// The user's device list that certified ``devices`` (docs/PROTOCOL.md §3.8); nil for a user without
    /// one (trust on first use per device, as before).
    public var list: DeviceList? = nil
    /// Devices the server listed that the user's device list does not certify: never sealed to, rung or
    /// answered. A server (or whoever runs `parley user add` on it) tried to add them.
    public var uncertified: [SignalName: DevicePublicBundle] = [:]
    /// What accepting the list changed, when there is one.
    public var review: ListReview? = nil

    /// Devices pinned by this lookup although their user was already known.
    public var newDevices: [SignalName] { status.filter { $0.value == .newDevice }.map(\.key).sorted() }
}

/// A changed key for a device this client had pinned: someone may be in the middle (or the device was
/// re-installed). Thrown by lookups that do not accept new keys; nothing is pinned then.
public struct KeyChangeWarning: Error, Sendable, Hashable, CustomStringConvertible {
    /// One device whose key changed.
    public struct Change: Sendable, Hashable {
        /// The device.
        public let device: SignalName
        /// What this client pinned.
        public let pinned: DevicePublicBundle
        /// What the server now presents.
        public let presented: DevicePublicBundle
    }

    /// Whose keys changed.
    public let user: SignalName
    /// Each changed device, in name order.
    public let changes: [Change]
    /// Devices of the same user seen for the first time in the same lookup (not pinned either).
    public let newDevices: [SignalName]

    /// Several lines, fingerprints included, meant to be shown as they are.
    public var description: String {
        var lines = [
            "WARNING: THE KEY OF \(changes.count == 1 ? "A DEVICE" : "\(changes.count) DEVICES") OF \(user) CHANGED."
        ]
        for change in changes {
            lines.append("  \(user)/\(change.device): pinned     \(change.pinned.fingerprint)")
            let indent = String(repeating: " ", count: "\(user)/\(change.device)".count)
            lines.append("  \(indent)  now        \(change.presented.fingerprint)")
        }
        if !newDevices.isEmpty { lines.append("  new devices: \(newDevices.map(\.text).joined(separator: ", "))") }
        lines.append("Someone may be impersonating \(user), or the device was reinstalled. Compare fingerprints")
        lines.append("with \(user) in person or by voice before accepting the new key.")
        return lines.joined(separator: "\n")
    }
}

/// Pinned device keys, per user and device, with the decisions of trust on first use (no I/O).
struct KeyPins: Sendable, Hashable {
    /// When a key was pinned, and the key.
    struct Pin: Sendable, Hashable {
        var bundle: DevicePublicBundle
        var pinnedAt: UInt64
    }

    private(set) var pins: [SignalName: [SignalName: Pin]] = [:]

    /// The pinned bundle of `user`'s `device`.
    func pinned(_ user: SignalName, _ device: SignalName) -> DevicePublicBundle? { pins[user]?[device]?.bundle }

    /// Checks `presented` against the pins. Pins first contacts and new devices; a changed key throws
    /// ``KeyChangeWarning`` (pinning nothing) unless `acceptChanges`, when it replaces the pin.
    mutating func review(
        _ user: SignalName, presented: [SignalName: DevicePublicBundle], acceptChanges: Bool, now: UInt64
    ) throws(KeyChangeWarning) -> KeyLookup {
        let known = pins[user] ?? [:]
        var status: [SignalName: PinStatus] = [:]
        var changes: [KeyChangeWarning.Change] = []
        for (device, bundle) in presented {
            switch known[device] {
            case nil: status[device] = known.isEmpty ? .firstContact : .newDevice
            case let pin? where pin.bundle == bundle: status[device] = .pinned
            case let pin?:
                status[device] = .changed(previous: pin.bundle)
                changes.append(.init(device: device, pinned: pin.bundle, presented: bundle))
            }
        }
        if !changes.isEmpty, !acceptChanges {
            throw KeyChangeWarning(
                user: user, changes: changes.sorted { $0.device < $1.device },
                newDevices: status.filter { $0.value == .newDevice }.map(\.key).sorted())
        }
        for (device, bundle) in presented where status[device] != .pinned {
            pins[user, default: [:]][device] = Pin(bundle: bundle, pinnedAt: now)
        }
        return KeyLookup(user: user, devices: presented, status: status)
    }

    /// `disk` with this process's own decisions since `baseline` (what it loaded) applied on top: another
    /// process sharing the contacts file (another account in the same key directory) keeps its pins.
    func merged(onto disk: KeyPins, since baseline: KeyPins) -> KeyPins {
        var result = disk
        for (user, devices) in pins {
            for (device, pin) in devices where baseline.pins[user]?[device] != pin {
                result.pins[user, default: [:]][device] = pin
            }
        }
        return result
    }

    // MARK: Contacts file

    /// The first line of a contacts file.
    static let header = "parley-contacts v1"

    /// The contacts file: the header, then `<user> <device> <bundle> <pinned-at ms>` per pin, sorted.
    func render() -> String {
        var lines = [Self.header]
        for user in pins.keys.sorted() {
            for (device, pin) in pins[user]!.sorted(by: { $0.key < $1.key }) {
                lines.append("\(user) \(device) \(pin.bundle.encoded) \(pin.pinnedAt)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Parses a contacts file, verifying every bundle's self-signature.
    static func parse(_ text: String, path: String) throws(ClientError) -> KeyPins {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last == "" { lines.removeLast() }
        guard lines.first == Substring(header) else { throw .stateFile(path, "line 1: expected '\(header)'") }
        var result = KeyPins()
        for (index, line) in lines.enumerated().dropFirst() {
            let f = line.split(separator: " ", omittingEmptySubsequences: false)
            guard f.count == 4, let user = SignalName(f[0]), let device = SignalName(f[1]),
                let bundle = try? DevicePublicBundle(encoded: String(f[2])), let at = UInt64(f[3]),
                result.pins[user]?[device] == nil
            else { throw .stateFile(path, "line \(index + 1): expected '<user> <device> <bundle> <pinned-at>'") }
            result.pins[user, default: [:]][device] = Pin(bundle: bundle, pinnedAt: at)
        }
        return result
    }

    /// The pins stored at `path`; none when the file does not exist.
    static func load(from path: String) throws(ClientError) -> KeyPins {
        guard let bytes = try PrivateFile.read(path) else { return KeyPins() }
        return try parse(String(decoding: bytes, as: UTF8.self), path: path)
    }
}
