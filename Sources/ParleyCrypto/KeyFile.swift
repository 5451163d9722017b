import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Stores a ``DeviceIdentity`` on disk as a small text file readable only by its owner:
///
/// ```
/// parley-device-key v1
/// ed25519 <base64url, no padding, of the 32-byte Ed25519 private key>
/// x25519 <base64url, no padding, of the 32-byte X25519 private key>
/// ```
///
/// Writes are atomic (temporary file in the same directory, created `0600` with `O_EXCL`, fsynced,
/// then renamed into place) and never clobber an existing file unless asked to. Reads refuse files
/// that group or others may access, as ssh does for private keys.
public enum KeyFile {
    /// The first line of every key file.
    public static let header = "parley-device-key v1"
    /// Larger files are rejected unread; a real key file is about 120 bytes.
    public static let maximumSize = 4096

    /// Writes `identity` to `path` with mode `0600`.
    ///
    /// - Parameter force: replace an existing file at `path`; without it an existing file is an error,
    ///   including one that appears while writing (the final step is then a `link`, which cannot clobber).
    /// - Throws: ``KeyFileError`` with code ``KeyFileError/Code/fileExists`` or
    ///   ``KeyFileError/Code/systemCallFailed``. No partial file is left behind.
    public static func write(_ identity: DeviceIdentity, to path: String, force: Bool) throws {
        try writeSecret(render(identity), to: path, force: force)
    }

    /// Writes any secret file the way key files are written: `0600`, atomic, fsynced, never clobbering
    /// an existing file unless `force`. Used for the user key and its recovery file too.
    static func writeSecret(_ bytes: [UInt8], to path: String, force: Bool) throws {
        if !force, exists(path) { throw KeyFileError.fileExists(path: path) }
        let (fd, temporary) = try createTemporaryFile(near: path)
        var published = false
        defer { if !published { unlink(temporary) } }
        do {
            defer { close(fd) }
            // The umask may have cleared bits of 0600 (or a future caller may widen them): set exactly 0600.
            guard fchmod(fd, 0o600) == 0 else {
                throw KeyFileError.systemCallFailed("fchmod", path: temporary, errno: errno)
            }
            try writeAll(bytes, to: fd, path: temporary)
            guard fsync(fd) == 0 else { throw KeyFileError.systemCallFailed("fsync", path: temporary, errno: errno) }
        }
        try publish(temporary, at: path, force: force)
        published = true
        syncDirectory(of: path)
    }

    /// Reads the identity stored at `path`.
    ///
    /// - Throws: ``KeyFileError`` with code ``KeyFileError/Code/insecurePermissions`` (mode allows group
    ///   or other access), ``KeyFileError/Code/malformedKeyFile`` (with the line, when there is one), or
    ///   ``KeyFileError/Code/systemCallFailed``.
    public static func read(from path: String) throws -> DeviceIdentity {
        try parse(readSecret(from: path), path: path)
    }

    /// Reads a secret file, refusing anything but a regular file only its owner may access (as ssh does).
    static func readSecret(from path: String) throws -> [UInt8] {
        // O_NONBLOCK so a FIFO cannot hang us; it is rejected below as not a regular file.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw KeyFileError.systemCallFailed("open", path: path, errno: errno) }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw KeyFileError.systemCallFailed("fstat", path: path, errno: errno) }
        guard status.st_mode & S_IFMT == S_IFREG else {
            throw KeyFileError.malformedKeyFile(path: path, line: nil, "not a regular file")
        }
        guard status.st_mode & 0o077 == 0 else {
            throw KeyFileError.insecurePermissions(path: path, mode: status.st_mode)
        }
        return try readAll(from: fd, path: path)
    }

    // MARK: Format

    /// The file's content for `identity`.
    static func render(_ identity: DeviceIdentity) -> [UInt8] {
        let signing = Base64URL.encode(identity.signingKey.rawRepresentation)
        let agreement = Base64URL.encode(identity.agreementKey.rawRepresentation)
        return Array("\(header)\ned25519 \(signing)\nx25519 \(agreement)\n".utf8)
    }

    /// Parses file content; error messages name `path` and the line but never echo what is on it.
    static func parse(_ bytes: [UInt8], path: String) throws -> DeviceIdentity {
        guard let text = String(bytes: bytes, encoding: .utf8) else {
            throw KeyFileError.malformedKeyFile(path: path, line: nil, "not UTF-8 text")
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last == "" { lines.removeLast() }
        guard let first = lines.first, first == header else {
            throw KeyFileError.malformedKeyFile(path: path, line: 1, "first line must be '\(header)'")
        }
        var signingRaw: Data?
        var agreementRaw: Data?
        for (index, line) in lines.enumerated().dropFirst() {
            let number = index + 1
            let parts = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0] == "ed25519" || parts[0] == "x25519" else {
                throw KeyFileError.malformedKeyFile(
                    path: path,
                    line: number,
                    "expected 'ed25519 <key>' or 'x25519 <key>'"
                )
            }
            let keyword = String(parts[0])
            guard let raw = Base64URL.decode(parts[1]) else {
                throw KeyFileError.malformedKeyFile(path: path, line: number, "\(keyword) key is not valid base64url")
            }
            guard raw.count == 32 else {
                throw KeyFileError.malformedKeyFile(
                    path: path,
                    line: number,
                    "\(keyword) key must be 32 bytes, got \(raw.count)"
                )
            }
            let alreadySeen = keyword == "ed25519" ? signingRaw != nil : agreementRaw != nil
            guard !alreadySeen else {
                throw KeyFileError.malformedKeyFile(path: path, line: number, "second \(keyword) line")
            }
            if keyword == "ed25519" { signingRaw = raw } else { agreementRaw = raw }
        }
        guard let signingRaw else { throw KeyFileError.malformedKeyFile(path: path, line: nil, "no ed25519 line") }
        guard let agreementRaw else { throw KeyFileError.malformedKeyFile(path: path, line: nil, "no x25519 line") }
        do {
            return try DeviceIdentity(
                signingKey: Curve25519.Signing.PrivateKey(rawRepresentation: signingRaw),
                agreementKey: Curve25519.KeyAgreement.PrivateKey(rawRepresentation: agreementRaw)
            )
        } catch {
            // Lengths were checked above; do not pass on a library error that might describe the input.
            throw KeyFileError.malformedKeyFile(path: path, line: nil, "keys were rejected by the crypto library")
        }
    }

    // MARK: System calls

    private static func exists(_ path: String) -> Bool {
        var status = stat()
        return lstat(path, &status) == 0
    }

    /// Creates `.<name>.tmp-<random>` next to `path` with `O_CREAT | O_EXCL`, mode `0600`.
    private static func createTemporaryFile(near path: String) throws -> (fd: Int32, path: String) {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[...$0]) } ?? ""
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        while true {
            let temporary = "\(directory).\(name).tmp-\(String(UInt64.random(in: .min ... .max), radix: 16))"
            let fd = open(temporary, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
            if fd >= 0 { return (fd, temporary) }
            // EEXIST: a 64-bit random name collided; try another.
            guard errno == EEXIST else { throw KeyFileError.systemCallFailed("open", path: temporary, errno: errno) }
        }
    }

    /// Moves the finished temporary file to `path`: `rename` when clobbering is allowed, else `link`.
    private static func publish(_ temporary: String, at path: String, force: Bool) throws {
        if !force {
            if link(temporary, path) == 0 {
                unlink(temporary)  // the file now lives at `path`; drop the temporary name
                return
            }
            let error = errno
            if error == EEXIST { throw KeyFileError.fileExists(path: path) }
            // Filesystems without hard links: fall back to a (racy) check and rename.
            guard error == EPERM || error == EOPNOTSUPP || error == ENOSYS else {
                throw KeyFileError.systemCallFailed("link", path: path, errno: error)
            }
            if exists(path) { throw KeyFileError.fileExists(path: path) }
        }
        guard rename(temporary, path) == 0 else {
            throw KeyFileError.systemCallFailed("rename", path: path, errno: errno)
        }
    }

    /// Best effort: make the new directory entry durable. Failure here does not undo a finished write.
    private static func syncDirectory(of path: String) {
        let directory = path.lastIndex(of: "/").map { String(path[...$0]) } ?? "."
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }

    private static func writeAll(_ bytes: [UInt8], to fd: Int32, path: String) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { systemWrite(fd, $0.baseAddress, $0.count) }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { throw KeyFileError.systemCallFailed("write", path: path, errno: errno) }
            offset += written
        }
    }

    /// Reads at most ``maximumSize`` + 1 bytes, so an oversized file is noticed without reading it all.
    private static func readAll(from fd: Int32, path: String) throws -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: maximumSize + 1)
        while bytes.count <= maximumSize {
            let wanted = maximumSize + 1 - bytes.count
            let count = chunk.withUnsafeMutableBytes { systemRead(fd, $0.baseAddress, wanted) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw KeyFileError.systemCallFailed("read", path: path, errno: errno) }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[..<count])
        }
        guard bytes.count <= maximumSize else {
            throw KeyFileError.malformedKeyFile(path: path, line: nil, "larger than \(maximumSize) bytes")
        }
        return bytes
    }
}

// `KeyFile.write(_:to:force:)` and `KeyFile.read(from:)` shadow the C functions inside the enum.
private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, buffer, count)
    #elseif canImport(Musl)
    return Musl.write(fd, buffer, count)
    #else
    return Darwin.write(fd, buffer, count)
    #endif
}

private func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.read(fd, buffer, count)
    #elseif canImport(Musl)
    return Musl.read(fd, buffer, count)
    #else
    return Darwin.read(fd, buffer, count)
    #endif
}
