import HummingbirdWebSocket
import Logging
import NIOCore
import ParleySignal

struct WebSocketMessageTooLong: Error {}

/// A signaling connection over WebSocket (`/ws`): one frame per text message (docs/PROTOCOL.md §3.1).
/// Outbound frames go through an AsyncStream to the one task allowed to write to the socket.
final class WebSocketSignalConnection: SignalConnection, @unchecked Sendable {
    let peer: String
    private let continuation: AsyncStream<Outbound>.Continuation
    let outboundFrames: AsyncStream<Outbound>

    enum Outbound: Sendable {
        case text(String)
        case close
    }

    init(peer: String) {
        self.peer = peer
        (outboundFrames, continuation) = AsyncStream.makeStream(of: Outbound.self)
    }

    func send(_ frame: String) { continuation.yield(.text(frame)) }

    func close() {
        continuation.yield(.close)
        continuation.finish()
    }

    /// Runs the connection until either side closes.
    static func serve(hub: SignalHub, maxMessage: Int, peer: String, inbound: WebSocketInboundStream,
                      outbound: WebSocketOutboundWriter) async {
        let connection = WebSocketSignalConnection(peer: peer)
        hub.connected(connection)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await item in connection.outboundFrames {
                    switch item {
                    case .text(let text):
                        do { try await outbound.write(.text(text)) } catch { return }
                    case .close:
                        try? await outbound.close(.normalClosure, reason: nil)
                        return
                    }
                }
            }
            group.addTask {
                do {
                    for try await message in inbound.messages(maxSize: maxMessage) {
                        switch message {
                        case .text(let text) where text.utf8.count > maxMessage:
                            // messages(maxSize:) bounds reassembled messages; a single frame is bounded
                            // only by maxFrameSize, so the limit is checked here too.
                            throw WebSocketMessageTooLong()
                        case .text(let text): hub.received(text, from: connection)
                        case .binary: hub.received("\u{0}binary", from: connection)  // not a frame: protocol error
                        }
                    }
                } catch {
                    // The hub answers error|too-long and then closes the connection itself; closing here
                    // first would end the outbound stream before that frame is in it. A peer that
                    // never reads gets closed anyway a second later.
                    hub.tooLong(from: connection)
                    try? await Task.sleep(for: .seconds(1))
                }
                hub.closed(connection)
                connection.close()
            }
            await group.waitForAll()
        }
    }
}
