import Foundation

/// Where a device's client files live: the state file, the pinned contacts and the NAT behaviour cache,
/// all beside its key file, as absolute paths worked out once from the key's path.
///
/// A key given as a relative path (`alice.key`) is taken relative to the working directory and a leading
/// `~` or `~name` is expanded, so the files always land in the key's own directory. (Before, the directory
/// of `alice.key` was the empty string and the contacts went to `/contacts`, shared by every account on the
/// machine.)
public struct ClientFiles: Sendable, Hashable {
    /// The key file, absolute and normalized (no `.`, `..` or repeated slashes).
    public let key: String
    /// The key's directory, which holds every other file.
    public let directory: String

    /// - Parameters:
    ///   - key: the key file's path as the user gave it.
    ///   - workingDirectory: what a relative path is relative to (default: the process's).
    ///   - home: what `~` stands for (default: `$HOME`, else the user database).
    public init(key: String, workingDirectory: String? = nil, home: String? = nil) {
        self.key = Self.absolute(key, workingDirectory: workingDirectory, home: home)
        let parent = (self.key as NSString).deletingLastPathComponent
        self.directory = parent.isEmpty ? "/" : parent
    }

    /// The client state file (cseq/sseq, queued commands): `KEY.state`.
    public var state: String { key + ".state" }
    /// The pinned device keys of users without a device list (trust on first use per device), this account's
    /// own: `KEY.contacts`.
    public var contacts: String { key + ".contacts" }
    /// Where earlier versions kept every account's pins in one file per directory: read when ``contacts``
    /// does not exist yet, never written.
    public var sharedContacts: String { join("contacts") }
    /// This account's trust store (user keys, device lists, verification marks): `KEY.trust`.
    public var trust: String { key + ".trust" }
    /// The user key, on the device that holds it (docs/PROTOCOL.md §3.8): `KEY.user`, mode 0600.
    public var userKey: String { key + ".user" }
    /// The user key sealed for recovery (opened only with the printed recovery code): `KEY.user.recovery`.
    public var userKeyRecovery: String { key + ".user.recovery" }
    /// The NAT behaviour cache (docs/PROTOCOL.md §6.1): `nat-cache` in the key's directory.
    public var natCache: String { join("nat-cache") }

    private func join(_ name: String) -> String { directory == "/" ? "/" + name : directory + "/" + name }

    /// `path` made absolute: `~` and `~/…` from `home`, `~name/…` from the user database, anything else not
    /// starting with `/` relative to `workingDirectory`; then `.`, `..` and repeated slashes resolved
    /// (textually: symbolic links are left as they are).
    public static func absolute(_ path: String, workingDirectory: String? = nil, home: String? = nil) -> String {
        var expanded = path
        if path == "~" || path.hasPrefix("~/") {
            let base = home ?? ProcessInfo.processInfo.environment["HOME"] ?? FileManager.default.homeDirectoryForCurrentUser.path
            expanded = base + path.dropFirst()
        } else if path.hasPrefix("~") {
            let name = String(path.dropFirst().prefix { $0 != "/" })
            if let base = FileManager.default.homeDirectory(forUser: name)?.path {
                expanded = base + path.dropFirst(1 + name.count)
            }
        }
        if !expanded.hasPrefix("/") {
            expanded = (workingDirectory ?? FileManager.default.currentDirectoryPath) + "/" + expanded
        }
        var parts: [Substring] = []
        for part in expanded.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".": continue
            case "..": if !parts.isEmpty { parts.removeLast() }
            default: parts.append(part)
            }
        }
        return "/" + parts.joined(separator: "/")
    }
}
