import NIOCore
import NIOPosix
import ParleyWire

/// Runs ``NATDiscovery`` over a real UDP socket (SwiftNIO): the machine decides, this sends, waits and
/// feeds answers back.
public enum NATDiscoveryClient {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Discovers the NAT between this host and `server` (which must have RFC 5780 enabled).
    public static func discover(server: SocketAddress, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton)
        async throws -> NATBehaviour
    {
        // The local address the route to the server uses, so "no NAT" can be recognised.
        let probe = try await DatagramBootstrap(group: group).connect(to: server).get()
        let localIP = probe.localAddress?.ipAddress
        try await probe.close()
        guard let localIP else { throw Failure(description: "cannot determine the local address towards \(server)") }

        let channel = try await DatagramBootstrap(group: group)
            .bind(host: localIP, port: 0)
            .flatMapThrowing { channel in
                try NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>(
                    wrappingChannelSynchronously: channel)
            }.get()
        guard let local = channel.channel.localAddress.flatMap(STUNAddress.init), let target = STUNAddress(server) else {
            throw Failure(description: "bad local or server address")
        }
        let clock = ContinuousClock()
        let origin = clock.now
        func millis() -> UInt64 {
            // One reading: seconds and attoseconds of two different readings could straddle a second
            // boundary and make the clock jump back by up to a second.
            let elapsed = (clock.now - origin).components
            return UInt64(elapsed.seconds * 1000 + elapsed.attoseconds / 1_000_000_000_000_000)
        }

        return try await channel.executeThenClose { inbound, outbound in
            var machine = NATDiscovery(server: target, local: local)
            let (events, continuation) = AsyncStream.makeStream(of: Event.self)
            let reader = Task {
                do {
                    for try await envelope in inbound {
                        if let from = STUNAddress(envelope.remoteAddress) { continuation.yield(.datagram(envelope.data, from)) }
                    }
                } catch {}
            }
            var timer: Task<Void, Never>?
            defer {
                reader.cancel()
                timer?.cancel()
                continuation.finish()
            }
            var pending = machine.start(now: millis())
            while true {
                for action in pending {
                    switch action {
                    case .send(let bytes, let to):
                        try await outbound.write(AddressedEnvelope(remoteAddress: to.socketAddress(), data: bytes))
                    case .wake(let at):
                        timer?.cancel()
                        let current = millis()
                        let delay = at > current ? at - current : 0
                        timer = Task {
                            try? await Task.sleep(for: .milliseconds(delay))
                            if !Task.isCancelled { continuation.yield(.tick) }
                        }
                    case .finished(let behaviour):
                        return behaviour
                    case .failed(let why):
                        throw Failure(description: why)
                    }
                }
                pending = []
                for await event in events {
                    switch event {
                    case .datagram(let bytes, let from): pending = machine.receive(bytes, from: from, now: millis())
                    case .tick: pending = machine.timerFired(now: millis())
                    }
                    if !pending.isEmpty { break }
                }
            }
        }
    }

    enum Event: Sendable {
        case datagram(ByteBuffer, STUNAddress)
        case tick
    }
}
