// NIOEcho: the UDP echo server `benchmarks/udpecho.c` is, written on SwiftNIO with the socket options
// `parley serve` uses for STUN (recvmmsg vectors of 64, 2 KiB slots, four reads per wake-up, 4 MiB buffers,
// one event loop) and the same write pattern (one write per datagram, one flush per read burst, which NIO
// turns into one sendmmsg). It does no work per datagram beyond handing the received buffer back: what it
// costs above udpecho is what SwiftNIO's datagram path itself costs, the floor under any NIO UDP server.
// scripts/bench-stun.sh measures it beside parley, coturn and udpecho.
//
//   NIOEcho [IP [VECTOR [READS]]]   (defaults 127.0.0.1, 64, 4; loopback only) — prints "port=N" once bound,
//                                   echoes until killed. VECTOR and READS are for trying other NIO settings.
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        context.write(wrapOutboundOut(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: envelope.data)), promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {}
}

let ip = CommandLine.arguments.dropFirst().first ?? "127.0.0.1"
guard ip.hasPrefix("127.") else {
    print("NIOEcho: \(ip) is not an IPv4 loopback address")
    exit(2)
}
let vector = CommandLine.arguments.count > 2 ? max(Int(CommandLine.arguments[2]) ?? 64, 1) : 64
let reads = CommandLine.arguments.count > 3 ? max(Int(CommandLine.arguments[3]) ?? 4, 1) : 4
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let channel = try DatagramBootstrap(group: group)
    .channelOption(.datagramVectorReadMessageCount, value: vector)
    .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 2048 * vector))
    .channelOption(.maxMessagesPerRead, value: UInt(reads))
    .channelOption(.socketOption(.so_rcvbuf), value: 4 << 20)
    .channelOption(.socketOption(.so_sndbuf), value: 4 << 20)
    .channelInitializer { channel in
        channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(EchoHandler()) }
    }
    .bind(host: ip, port: 0).wait()
print("port=\(channel.localAddress?.port ?? 0)")
fflush(nil)  // all streams: the script waits for the port line
try channel.closeFuture.wait()
