import NIOCore
import NIOPosix
import NIOSSL
import ParleyWire

/// Connections: open, log in, pump lines both ways, keep alive, and reconnect with backoff.
extension ParleyClient {
    /// Connection attempts until stopped. Failures before the first login, and failures that would recur
    /// (a refused login), stop the client; any other loss reconnects after a growing, jittered delay.
    func runConnections() async {
        var failures = 0
        while stopped == nil, let target {
            let (loggedIn, error) = await runOneConnection(target)
            guard stopped == nil else { return }
            guard everLoggedIn, error.isRetryable else {
                // Before the first login the caller of connect/login gets the error; afterwards only the log does.
                logger.log(
                    level: everLoggedIn ? .error : .debug, "signaling session stopped", metadata: ["error": "\(error)"])
                stop(error)
                return
            }
            failures = loggedIn ? 1 : failures + 1
            let delay = reconnectDelay(after: failures)
            logger.notice("connection lost; reconnecting", metadata: ["error": "\(error)", "delay": "\(delay)"])
            do {
                try await Task.sleep(for: delay)
            } catch {
                return
            }
        }
    }

    /// `initial × 2^(failures−1)`, capped, times a random factor in [0.5, 1] so clients do not reconnect in step.
    func reconnectDelay(after failures: Int) -> Duration {
        let base = options.initialReconnectDelay * (1 << min(max(failures - 1, 0), 20))
        return min(base, options.maximumReconnectDelay) * Double.random(in: 0.5...1.0)
    }

    /// One connection from connect to close. Returns whether it got as far as `welcome`, and why it ended.
    nonisolated func runOneConnection(_ target: Target) async -> (loggedIn: Bool, error: ClientError) {
        let channel: NIOAsyncChannel<ClientLine, ByteBuffer>
        do {
            channel = try await openChannel(target)
        } catch {
            return (false, .connectionFailed("cannot connect to \(target.host):\(target.port): \(error)"))
        }
        let (outbox, outboxInput) = AsyncStream<ClientFrame>.makeStream()
        guard let epoch = await beginConnection(outbox: outboxInput) else {
            try? await channel.channel.close()
            return (false, .closed())
        }
        let keepalive = options.keepaliveInterval
        let loginTimeout = options.loginTimeout
        var failure = ClientError.disconnected("the server closed the connection")
        do {
            try await channel.executeThenClose { inbound, outbound in
                try await withThrowingTaskGroup(of: Bool.self) { group in
                    // Reader: every line through the session machine. Ends the connection at EOF.
                    group.addTask {
                        for try await line in inbound { await self.receive(line, epoch: epoch) }
                        return true
                    }
                    // Writer: the only writer, so frames leave in the order the machine produced them.
                    // Ends the connection when the outbox is finished (after draining it).
                    group.addTask {
                        for await frame in outbox {
                            try await outbound.write(ByteBuffer(string: SignalCodec.format(frame) + "\n"))
                        }
                        return true
                    }
                    // Keepalive: a blank line every interval (§3.1), whatever else is sent.
                    group.addTask {
                        while true {
                            try await Task.sleep(for: keepalive)
                            outboxInput.yield(.keepalive)
                        }
                    }
                    // Login deadline: hello and welcome must arrive in time.
                    group.addTask {
                        try await Task.sleep(for: loginTimeout)
                        await self.loginDeadlinePassed(epoch: epoch)
                        return false
                    }
                    while let essential = try await group.next() {
                        if essential { break }
                    }
                    group.cancelAll()
                    channel.channel.close(promise: nil)
                }
            }
        } catch let error as ClientError {
            failure = error
        } catch {
            failure = .disconnected("connection failed: \(error)")
        }
        let (loggedIn, greeted, reason) = await endConnection(epoch: epoch)
        if reason == nil, !greeted, failure.code == .disconnected {
            // TLS handshake failures and resets before the greeting: the connection never really worked.
            failure = .connectionFailed("\(target.host):\(target.port): \(failure)")
        }
        return (loggedIn, reason ?? failure)
    }

    /// TCP (and TLS) to `target`, with the line framer in front of an async channel.
    nonisolated func openChannel(_ target: Target) async throws -> NIOAsyncChannel<ClientLine, ByteBuffer> {
        let sslContext = try target.tls?.makeContext()
        let maxLine = options.maxInboundLine
        let timeout = options.connectTimeout.components
        return try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.nanoseconds(timeout.seconds * 1_000_000_000 + timeout.attoseconds / 1_000_000_000))
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connect(host: target.host, port: target.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext, let tls = target.tls {
                        try channel.pipeline.syncOperations.addHandler(
                            tls.makeHandler(context: sslContext, host: target.host))
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(ClientLineFramer(maxLine: maxLine)))
                    return try NIOAsyncChannel<ClientLine, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
    }

    // MARK: Connection bookkeeping (actor-isolated)

    /// Makes `outbox` the current connection's; nil when stopped.
    func beginConnection(outbox: AsyncStream<ClientFrame>.Continuation) -> UInt64? {
        guard stopped == nil else {
            outbox.finish()
            return nil
        }
        epoch += 1
        link = Link(epoch: epoch, outbox: outbox, closeReason: nil)
        session.connectionOpened()
        return epoch
    }

    /// One line from connection `epoch`; lines of a connection that is no longer current are dropped.
    func receive(_ line: ClientLine, epoch: UInt64) {
        guard link?.epoch == epoch else { return }
        perform(session.receive(line, now: now()))
    }

    /// Closes connection `epoch` if it has not logged in yet (and is not waiting for the application's `login`).
    func loginDeadlinePassed(epoch: UInt64) {
        guard link?.epoch == epoch, loggedInEpoch != epoch else { return }
        if case .awaitingCredentials = session.state { return }
        let what =
            session.state == .awaitingHello
            ? "no hello within the login timeout (a TLS server reached without TLS, or the reverse?)"
            : "no welcome within the login timeout"
        perform([.close(ClientError(.loginTimeout, what))])
    }

    /// Forgets connection `epoch`: whether it logged in, whether it was greeted, and why we closed it (if we did).
    func endConnection(epoch: UInt64) -> (loggedIn: Bool, greeted: Bool, reason: ClientError?) {
        guard link?.epoch == epoch else { return (loggedInEpoch == epoch, true, stopped) }
        let reason = link?.closeReason
        let greeted = session.state != .awaitingHello
        link = nil
        session.connectionClosed()
        return (loggedInEpoch == epoch, greeted, reason)
    }
}
