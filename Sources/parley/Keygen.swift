import ArgumentParser
import Foundation
import ParleyClient
import ParleyCrypto

/// `parley keygen`: creates this device's identity key file (mode 0600).
struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a device identity (Ed25519 + X25519 signed by it) and print its public part.")

    @Option(name: .shortAndLong, help: "Key file to write.")
    var out: String = FileManager.default.homeDirectoryForCurrentUser.path + "/.parley/device.key"

    @Flag(help: "Overwrite an existing key file (its identity is lost).")
    var force = false

    @Flag(help: "Print the public part of an existing key file instead of creating one.")
    var show = false

    func run() throws {
        let out = ClientFiles.absolute(out)  // relative to the working directory, `~` expanded
        let identity: DeviceIdentity
        if show {
            identity = try KeyFile.read(from: out)
        } else {
            let dir = (out as NSString).deletingLastPathComponent
            if dir != "/" {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
            }
            identity = DeviceIdentity.generate()
            try KeyFile.write(identity, to: out, force: force)
            FileHandle.standardError.write(Data("wrote \(out) (mode 0600)\n".utf8))
        }
        print(identity.publicBundle.encoded)
        FileHandle.standardError.write(Data("fingerprint: \(identity.publicBundle.fingerprint)\n".utf8))
    }
}
