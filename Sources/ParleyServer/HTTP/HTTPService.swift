import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import ParleySignal
import Prometheus

/// The HTTP side of `parley serve`: `/metrics` (Prometheus text format), `/healthz`, signaling over
/// WebSocket at `/ws` when a hub is given, and the browser client's files at `/` from `webRoot` when set.
public enum HTTPService {
    public static func makeApplication(host: String, port: Int, registry: PrometheusCollectorRegistry, logger: Logger,
                                       signal: SignalHub? = nil, maxMessage: Int = 131072, webRoot: String? = nil,
                                       onRunning: @escaping @Sendable (Int) async -> Void = { _ in })
        -> some ApplicationProtocol
    {
        let router = Router()
        router.get("/healthz") { _, _ in "ok\n" }
        router.get("/metrics") { _, _ -> Response in
            var bytes: [UInt8] = []
            registry.emit(into: &bytes)
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        // The browser client, when a root is configured (deny by default: nothing else is served at `/`).
        if let webRoot, let files = WebClientFiles(root: webRoot) {
            router.get("/") { request, _ in files.response(for: request.uri.path) }
            router.get("/**") { request, _ in files.response(for: request.uri.path) }
        }
        return Application(
            router: router,
            // Frames may be up to twice the message limit so that an over-long message is answered with
            // error|too-long by the hub; only a frame beyond that is refused by the WebSocket layer (1009).
            server: .http1WebSocketUpgrade(configuration: .init(maxFrameSize: 2 * maxMessage)) { request, channel, _ in
                guard request.path == "/ws" || request.path?.hasPrefix("/ws?") == true, let hub = signal else { return .dontUpgrade }
                let peer = channel.remoteAddress.map { "\($0)" } ?? "?"
                return .upgrade([:]) { inbound, outbound, _ in
                    await WebSocketSignalConnection.serve(hub: hub, maxMessage: maxMessage, peer: peer, inbound: inbound,
                                                          outbound: outbound)
                }
            },
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
    }
}
