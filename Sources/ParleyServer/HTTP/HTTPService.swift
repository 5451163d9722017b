import Hummingbird
import Logging
import NIOCore
import Prometheus

/// The HTTP side of `parley serve`: `/metrics` (Prometheus text format) and `/healthz`.
/// (The web client and `/ws` arrive with the signaling issue.)
public enum HTTPService {
    public static func makeApplication(host: String, port: Int, registry: PrometheusCollectorRegistry, logger: Logger,
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
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
    }
}
