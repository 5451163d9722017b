import ArgumentParser
import NIOCore
import ParleyNAT
import ParleyWire

/// `parley nat SERVER`: RFC 5780 NAT behaviour discovery against a Parley (or any RFC 5780) server.
struct NAT: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Discover this host's NAT mapping and filtering behaviour (RFC 5780).",
        discussion: "The server must have RFC 5780 enabled (stun.alternate_address and stun.alternate_port).")

    @Argument(help: "The STUN server: ADDRESS, ADDRESS:PORT or [IPv6]:PORT (default port 3478).")
    var server: String

    func run() async throws {
        guard let address = STUNAddress(parsing: server, defaultPort: 3478) else {
            throw ValidationError("'\(server)' is not an ADDRESS[:PORT]")
        }
        do {
            let behaviour = try await NATDiscoveryClient.discover(server: address.socketAddress())
            print("NAT behaviour discovery (RFC 5780) against \(address)")
            print(behaviour.report)
        } catch {
            print("parley nat: \(error)")
            throw ExitCode(2)
        }
    }
}
