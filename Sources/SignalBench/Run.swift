import Foundation
import NIOCore
import NIOPosix
import ParleyCrypto
import ParleyWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The targets of issue "must show" #5, for this 2-core machine.
enum Targets {
    static let loginsPerSecond = 5000.0
    static let setupsPerSecond = 5000.0
    static let p99Millis = 1.0
    static let bytesPerConnection = 16.0 * 1024
}

/// `SignalBench run`: the four measurements, in one process, against one running server.
struct BenchRun {
    let host: String
    let port: Int
    let serverPID: Int32
    let keys: String
    let users: Int
    let sources: [String]
    let threads: Int
    let window: Int
    let settle: Double
    let pairs: Int
    let closedSeconds: Double
    let openSeconds: Double
    let warmup: Double
    let rate: Double
    let blobBytes: Int
    let samplesOut: String

    init(options o: inout Options) throws {
        host = o.string("host", "127.0.0.1")
        port = try o.int("port", 0)
        serverPID = Int32(try o.int("server-pid", 0))
        keys = o.string("keys", "")
        users = try o.int("users", 20000)
        sources = try Self.parseSources(o.string("sources", "127.0.0.2-127.0.0.9"))
        threads = try o.int("threads", 2)
        window = try o.int("window", 1000)
        settle = try o.double("settle", 3)
        pairs = try o.int("pairs", 1000)
        closedSeconds = try o.double("closed-seconds", 10)
        openSeconds = try o.double("open-seconds", 10)
        warmup = try o.double("warmup", 2)
        rate = try o.double("rate", 1000)
        blobBytes = try o.int("blob-bytes", 512)
        samplesOut = o.string("samples-out", "")
        try o.checkAllUsed()
        guard port > 0, serverPID > 0, !keys.isEmpty else { throw BenchError("run needs --port, --server-pid and --keys\n\(usage)") }
        guard users >= 2 * pairs, pairs > 0, threads > 0, window > 0 else {
            throw BenchError("need --users ≥ 2 × --pairs, and positive --pairs, --threads, --window")
        }
        guard closedSeconds == 0 || closedSeconds > warmup, openSeconds == 0 || openSeconds > warmup, rate > 0 else {
            throw BenchError("phases must be longer than --warmup (or 0 to skip them), and --rate positive")
        }
    }

    /// `127.0.0.2-127.0.0.9` (last octet range) or a comma list; empty for none.
    static func parseSources(_ text: String) throws -> [String] {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.isEmpty { return [] }
        if let dash = t.firstIndex(of: "-") {
            let a = String(t[..<dash])
            let b = String(t[t.index(after: dash)...])
            let pa = a.split(separator: ".")
            let pb = b.split(separator: ".")
            guard pa.count == 4, pb.count == 4, pa.prefix(3) == pb.prefix(3), let lo = Int(pa[3]), let hi = Int(pb[3]), lo <= hi, hi < 256
            else { throw BenchError("--sources: expected A.B.C.D-A.B.C.E, got '\(t)'") }
            return (lo...hi).map { "\(pa.prefix(3).joined(separator: ".")).\($0)" }
        }
        return t.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    }

    func serverRSS() -> Int { Proc.statusKB(pid: serverPID, "VmRSS") ?? -1 }

    func sleep(_ seconds: Double) { usleep(UInt32(max(0, seconds) * 1e6)) }

    // MARK: The run

    func run() throws -> Int32 {
        say("SignalBench: \(users) users, \(threads) client event loops, server pid \(serverPID) at \(host):\(port)")
        say("machine: \(ProcessInfo.processInfo.activeProcessorCount) CPUs, load average \(Proc.loadAverage()) at start")

        var t = monoNanos()
        let identities = try BenchAccounts.load(users: users, dir: keys)
        log("loaded \(users) key files in \(fmt(Double(monoNanos() - t) / 1e9, 1)) s")

        // The bound logins cannot beat: the hub verifies every login signature on its one event loop.
        let verify = measureEd25519(identities[0])
        say("Ed25519 on this machine, one core (this process, before the run): verify \(grouped(verify.verify))/s, sign \(grouped(verify.sign))/s")

        // Workers and connections. Users 2k and 2k+1 form pair k; pair k lives on worker k mod T, so both
        // ends of a call are on one client thread.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        var loops: [any EventLoop] = []
        var it = group.makeIterator()
        while let l = it.next() { loops.append(l) }
        let server = try SocketAddress(ipAddress: host, port: port)
        let sourceAddresses = try sources.map { try SocketAddress(ipAddress: $0, port: 0) }
        var g = SystemRandomNumberGenerator()
        let offer = Base64URL.encode((0..<blobBytes).map { _ in UInt8.random(in: 0...255, using: &g) })
        let answer = Base64URL.encode((0..<blobBytes).map { _ in UInt8.random(in: 0...255, using: &g) })
        let prefix = hex(UInt64.random(in: 0...UInt64(UInt32.max), using: &g), 8)
        let workers = loops.enumerated().map { i, loop in
            Worker(id: i, workerCount: loops.count, loop: loop, server: server, sources: sourceAddresses,
                   offerBlob: offer, answerBlob: answer, idPrefix: prefix)
        }
        for i in 0..<users {
            let w = workers[(i / 2) % workers.count]
            w.conns.append(Conn(index: i, identity: identities[i], worker: w))
        }
        for k in 0..<pairs {
            let w = workers[k % workers.count]
            let a = w.conns.first { $0.index == 2 * k }!
            let b = w.conns.first { $0.index == 2 * k + 1 }!
            let p = Pair(a: a, b: b)
            a.pair = p
            a.isCaller = true
            b.pair = p
            w.pairs.append(p)
        }
        for w in workers { try w.loop.submit { w.startKeepalives() }.wait() }

        // 1 + 4. Logins, and the memory they hold.
        let rss0 = serverRSS()
        let c0 = CPUSnapshot(serverPID: serverPID)
        say("\n[1] logins: \(users) connections, \(window) in flight, sources \(sources.isEmpty ? "default" : "\(sources.first!)…\(sources.last!)")")
        let perWindow = max(1, window / workers.count)
        let futures = workers.map { w in w.loop.flatSubmit { w.startLogins(window: perWindow) } }
        for f in futures { try f.wait() }
        let c1 = CPUSnapshot(serverPID: serverPID)
        let login = try workers.map { w in
            try w.loop.submit { (w.loginsOK, w.loginsFailed, w.tFirstConnect, w.tLastWelcome, w.loginLatencies) }.wait()
        }
        let loginsOK = login.reduce(0) { $0 + $1.0 }
        let loginsFailed = login.reduce(0) { $0 + $1.1 }
        let loginSpan = Double(login.map(\.3).max()! - login.map(\.2).min()!) / 1e9
        let loginRate = Double(loginsOK) / loginSpan
        let loginLat = login.flatMap(\.4).sorted()
        let loginCPU = c0.delta(to: c1)
        say("    \(loginsOK) logged in, \(loginsFailed) failed, in \(fmt(loginSpan, 2)) s: \(grouped(loginRate)) logins/s")
        say("    login latency (connect → welcome, \(window) in flight): p50 \(fmt(percentile(loginLat, 50) / 1000, 2)) ms, p99 \(fmt(percentile(loginLat, 99) / 1000, 2)) ms")
        say("    CPU: \(loginCPU.summary)")
        say("    server CPU per login: \(fmt((c1.server - c0.server) / Double(max(loginsOK, 1)) * 1e6, 1)) µs")

        sleep(settle)
        let rss1 = serverRSS()
        let perConnection = Double(rss1 - rss0) * 1024 / Double(max(loginsOK, 1))
        say("\n[4] memory: server VmRSS \(grouped(Double(rss0))) kB before, \(grouped(Double(rss1))) kB with \(loginsOK) idle logged-in connections (after \(fmt(settle, 0)) s)")
        say("    → \(fmt(perConnection / 1024, 2)) KiB per connection (RssAnon \(Proc.statusKB(pid: serverPID, "RssAnon") ?? -1) kB, VmHWM \(Proc.statusKB(pid: serverPID, "VmHWM") ?? -1) kB)")

        // 2. Closed-loop call setups.
        var setupRate = Double.nan
        if closedSeconds > 0 {
        say("\n[2] call setups, closed loop: \(pairs) pairs (\(pairs) calls in flight), \(fmt(closedSeconds, 0)) s, first \(fmt(warmup, 0)) s left out; the other \(loginsOK - 2 * pairs) connections stay idle")
        say("    one setup: caller `call` → callee `ring` → callee `prepare`+`accept` (pipelined) → caller `answer`; then `end` (→ callee `ended`) and the next call; every event acknowledged with `got`")
        t = monoNanos()
        let recordFrom = t + UInt64(warmup * 1e9)
        for w in workers { try w.loop.submit { w.startClosed(recordAfter: recordFrom) }.wait() }
        sleep(warmup - Double(monoNanos() - t) / 1e9)
        let ca = CPUSnapshot(serverPID: serverPID)
        let setupsA = try workers.map { w in try w.loop.submit { w.setups }.wait() }.reduce(0, +)
        sleep(closedSeconds - Double(monoNanos() - t) / 1e9)
        let setupsB = try workers.map { w in try w.loop.submit { w.setups }.wait() }.reduce(0, +)
        let cb = CPUSnapshot(serverPID: serverPID)
        let stuckClosed = try workers.map { w in w.loop.flatSubmit { w.stop(timeout: .seconds(5)) } }.map { try $0.wait() }.reduce(0, +)
        setupRate = Double(setupsB - setupsA) / (Double(cb.at - ca.at) / 1e9)
        var closedSamples = Worker.Samples()
        for w in workers { closedSamples.merge(try w.loop.submit { w.samples }.wait()) }
        let closedCPU = ca.delta(to: cb)
        say("    \(grouped(setupRate)) setups/s (\(setupsB - setupsA) in \(fmt(Double(cb.at - ca.at) / 1e9, 2)) s); \(stuckClosed) pairs still busy after stopping")
        say("    latency under this load: p50 \(ms(closedSamples.total, 50)) ms, p99 \(ms(closedSamples.total, 99)) ms")
        say("    CPU: \(closedCPU.summary)")
        say("    server CPU per setup (incl. its `end`): \(fmt((cb.server - ca.server) / Double(max(setupsB - setupsA, 1)) * 1e6, 1)) µs")
        let cs0 = CPUSnapshot(serverPID: serverPID)
        sleep(2)
        let cs1 = CPUSnapshot(serverPID: serverPID)
        say("    after the phase, 2 s with no load: \(cs0.delta(to: cs1).summary)")
        say("    server VmRSS now \(grouped(Double(serverRSS()))) kB")
        }

        // 3. Open-loop latency.
        var total: [UInt32] = []
        var skipped = 0
        if openSeconds > 0 {
        say("\n[3] call setup latency, open loop: \(grouped(rate)) setups/s offered on a fixed schedule, \(fmt(openSeconds, 0)) s, first \(fmt(warmup, 0)) s left out")
        let t0 = monoNanos() + 100_000_000
        let openFrom = t0 + UInt64(warmup * 1e9)
        let co0 = CPUSnapshot(serverPID: serverPID)
        for w in workers { try w.loop.submit { w.startOpen(t0: t0, rate: rate, seconds: openSeconds, recordAfter: openFrom) }.wait() }
        sleep(Double(t0 - monoNanos()) / 1e9 + openSeconds + 0.2)
        let co1 = CPUSnapshot(serverPID: serverPID)
        let stuckOpen = try workers.map { w in w.loop.flatSubmit { w.stop(timeout: .seconds(5)) } }.map { try $0.wait() }.reduce(0, +)
        var open = Worker.Samples()
        var done = 0
        for w in workers {
            let r = try w.loop.submit { (w.samples, w.openSkipped, w.setups) }.wait()
            open.merge(r.0)
            skipped += r.1
            done += r.2
        }
        let openCPU = co0.delta(to: co1)
        if !samplesOut.isEmpty {
            // One line per measured setup: slot (s from the phase start), total, call leg, turnaround, answer leg, lag (µs).
            var text = "slot_s total_us call_leg_us turnaround_us answer_leg_us lag_us\n"
            for i in open.total.indices {
                text += "\(fmt(Double(open.slot[i] &- t0) / 1e9, 6)) \(open.total[i]) \(open.callLeg[i]) \(open.turnaround[i]) \(open.answerLeg[i]) \(open.lag[i])\n"
            }
            try text.write(toFile: samplesOut, atomically: true, encoding: .utf8)
        }
        total = open.total.sorted()
        let fromSlot = open.fromSlot.sorted()
        let legs = zip(open.callLeg, open.answerLeg).map { $0 &+ $1 }.sorted()
        say("    \(done) setups completed, \(open.total.count) measured, \(skipped) slots skipped (no idle pair), \(stuckOpen) unfinished")
        say("    client-side, `call` written → `answer` read:   p50 \(ms(total, 50)) ms  p90 \(ms(total, 90)) ms  p99 \(ms(total, 99)) ms  p99.9 \(ms(total, 99.9)) ms  max \(ms(total, 100)) ms")
        say("    from the schedule slot (incl. generator lag): p50 \(ms(fromSlot, 50)) ms  p99 \(ms(fromSlot, 99)) ms  (generator lag p99 \(ms(open.lag.sorted(), 99)) ms)")
        say("    the two server round trips only (call→ring + accept→answer, callee turnaround removed): p50 \(ms(legs, 50)) ms  p99 \(ms(legs, 99)) ms")
        say("      call → ring p50/p99 \(ms(open.callLeg.sorted(), 50))/\(ms(open.callLeg.sorted(), 99)) ms; callee turnaround p50/p99 \(ms(open.turnaround.sorted(), 50))/\(ms(open.turnaround.sorted(), 99)) ms; accept → answer p50/p99 \(ms(open.answerLeg.sorted(), 50))/\(ms(open.answerLeg.sorted(), 99)) ms")
        say("    CPU: \(openCPU.summary)")
        }

        // Problems seen.
        var notes: [String] = []
        var noteCount = 0
        var counters = (naks: 0, stray: 0, failures: 0, closed: 0, keepalives: 0, hangups: 0)
        for w in workers {
            let r = try w.loop.submit { (w.notes, w.noteCount, w.naks, w.stray, w.failures, w.closedUnexpectedly, w.keepalivesSent, w.hangups) }.wait()
            notes += r.0
            noteCount += r.1
            counters.naks += r.2
            counters.stray += r.3
            counters.failures += r.4
            counters.closed += r.5
            counters.keepalives += r.6
            counters.hangups += r.7
        }
        say("\nclient counters: naks \(counters.naks), failed calls \(counters.failures), `ended|hangup` at callees \(counters.hangups), unexpected events \(counters.stray), connections closed by the server \(counters.closed), keepalives sent \(counters.keepalives)")
        for n in notes.prefix(10) { say("  note: \(n)") }
        if noteCount > 10 { say("  … \(noteCount - 10) more notes") }
        say("server VmRSS at the end \(grouped(Double(serverRSS()))) kB, VmHWM \(grouped(Double(Proc.statusKB(pid: serverPID, "VmHWM") ?? -1))) kB; load average \(Proc.loadAverage())")

        // Summary.
        let p99 = percentile(total, 99) / 1000
        let rows: [(String, String, String, Double)] = [
            ("logins/s (connect→hello→login→welcome)", grouped(loginRate), "≥ 5,000", loginRate / Targets.loginsPerSecond),
            ("call setups/s (closed loop, \(pairs) pairs)", grouped(setupRate), "≥ 5,000", setupRate / Targets.setupsPerSecond),
            ("call setup p99 @ \(grouped(rate))/s open loop (client-side)", "\(fmt(p99, 3)) ms", "≤ 1 ms", Targets.p99Millis / p99),
            ("server memory per idle logged-in conn.", "\(fmt(perConnection / 1024, 2)) KiB", "≤ 16 KiB", Targets.bytesPerConnection / perConnection),
        ]
        say("\n| measurement | result | target | ratio (≥ 1 meets it) |")
        say("|---|---:|---:|---:|")
        for r in rows { say("| \(r.0) | \(r.1) | \(r.2) | \(fmt(r.3, 2)) |") }
        say("\nlogins/s vs the Ed25519-verify bound of one core (\(grouped(verify.verify))/s): \(fmt(loginRate / verify.verify * 100, 0)) %")
        say("RESULT logins_per_s=\(Int(loginRate)) setups_per_s=\(fmt(setupRate, 0)) p50_ms=\(fmt(percentile(total, 50) / 1000, 3)) p99_ms=\(fmt(p99, 3)) kib_per_conn=\(fmt(perConnection / 1024, 2)) verify_per_s=\(Int(verify.verify))")
        let clean = loginsFailed == 0 && counters.failures == 0 && counters.naks == 0 && counters.closed == 0 && skipped == 0
        if !clean { say("WARNING: the run had failures (see the counters above)") }
        try? group.syncShutdownGracefully()
        return rows.allSatisfy { $0.3 >= 1 } ? 0 : 3
    }

    func ms(_ samples: [UInt32], _ p: Double) -> String {
        let sorted = samples.sorted()
        return fmt(percentile(sorted, p) / 1000, 3)
    }

    /// Ed25519 verify and sign rates on one core, the way the server verifies a login (a 130-byte input).
    func measureEd25519(_ identity: DeviceIdentity) -> (verify: Double, sign: Double) {
        let message = Array("parley-login-v1|\(String(repeating: "A", count: 43))|u12345|bench|1795435200123".utf8)
        guard let signature = try? identity.signingKey.signature(for: message),
            let key = identity.publicBundle.signingPublicKey
        else { return (.nan, .nan) }
        let n = 3000
        var ok = 0
        var t = monoNanos()
        for _ in 0..<n where key.isValidSignature(signature, for: message) { ok += 1 }
        let verify = Double(n) / (Double(monoNanos() - t) / 1e9)
        precondition(ok == n)
        t = monoNanos()
        for _ in 0..<n { _ = try? identity.signingKey.signature(for: message) }
        let sign = Double(n) / (Double(monoNanos() - t) / 1e9)
        return (verify, sign)
    }
}
