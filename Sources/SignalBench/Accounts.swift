import Foundation
import ParleyCrypto
import ParleyWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Generated bench users: `u0` … `u<N-1>`, each with one device `bench`. Their key files are ordinary
/// Parley key files (`DIR/keys/u<i>.key`, the format of ``KeyFile``, mode 0600) and `DIR/accounts.conf`
/// lists their public bundles in the accounts-file format the server reads (`signal.accounts_file`).
enum BenchAccounts {
    static let device = "bench"

    static func user(_ i: Int) -> String { "u\(i)" }

    static func keyPath(_ dir: String, _ i: Int) -> String { "\(dir)/keys/\(user(i)).key" }

    /// Generates `users` identities and writes the key files and `accounts.conf`. Key files are written
    /// without fsync (they are throwaway bench keys; KeyFile.write would fsync 20,000 times).
    static func generate(users: Int, dir: String) throws {
        try FileManager.default.createDirectory(atPath: dir + "/keys", withIntermediateDirectories: true)
        var conf = "# SignalBench accounts: \(users) users u0…u\(users - 1), one device '\(device)' each\n"
        conf.reserveCapacity(users * 200)
        for i in 0..<users {
            let identity = DeviceIdentity.generate()
            let text = "\(KeyFile.header)\ned25519 \(Base64URL.encode(Array(identity.signingKey.rawRepresentation)))\n"
                + "x25519 \(Base64URL.encode(Array(identity.agreementKey.rawRepresentation)))\n"
            try writePrivate(text, to: keyPath(dir, i))
            conf += "\(user(i)).\(device) = \(identity.publicBundle.encoded)\n"
        }
        try writePrivate(conf, to: dir + "/accounts.conf")
    }

    /// Reads the first `users` key files back.
    static func load(users: Int, dir: String) throws -> [DeviceIdentity] {
        try (0..<users).map { try KeyFile.read(from: keyPath(dir, $0)) }
    }

    private static func writePrivate(_ text: String, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BenchError("cannot create \(path): errno \(errno)") }
        defer { close(fd) }
        guard fchmod(fd, 0o600) == 0 else { throw BenchError("cannot chmod \(path): errno \(errno)") }
        let bytes = Array(text.utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes[done...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw BenchError("cannot write \(path): errno \(errno)") }
            done += n
        }
    }
}
